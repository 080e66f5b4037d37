"""The ASGI application: routers, error handlers, CORS, request logging and offline docs.

``create_app()`` is what uvicorn imports in every worker (settings from the environment, see
:mod:`skyreg.service.settings`); tests and embedding applications pass settings directly.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from skyreg import __version__
from skyreg.service.access_log import AccessLog
from skyreg.service.database import RegistryPool
from skyreg.service.errors import ServiceError, classify
from skyreg.service.routers import apdb, api, datalink, scs, sia2, sky, soda, stamps
from skyreg.service.settings import ServiceSettings
from skyreg.service.votable import error_document

log = logging.getLogger(__name__)

#: Paths whose errors are DALI documents (VOTable) rather than JSON.
_IVOA_PREFIXES = ("/sia2", "/soda", "/datalink", "/files")
_STATIC = "/static-docs"
PARENT_PID_ENV = "SKYREG_SERVICE_SUPERVISOR_PID"


#: SODA 1.0's error codes (its errors are text/plain documents) for the service's faults.
_SODA_ERRORS = {"UsageFault": "UsageError", "NotFoundFault": "UsageError",
                "TransientFault": "ServiceUnavailable",
                "MultiValuedParamNotSupported": "MultiValuedParamNotSupported"}


def _error_response(request: Request, error: ServiceError) -> Response:
    message = f"{error.fault}: {error}"
    if request.url.path.startswith("/soda"):
        code = _SODA_ERRORS.get(error.fault, "Error")
        return Response(f"{code}: {error}\n", status_code=error.status,
                        media_type="text/plain; charset=utf-8")
    if request.url.path.startswith("/scs"):
        from skyreg.service.scs import error_document as scs_error

        return Response(scs_error(message), status_code=error.status,
                        media_type="application/x-votable+xml")
    if request.url.path.startswith(_IVOA_PREFIXES):
        return Response(error_document(message), status_code=error.status,
                        media_type="application/x-votable+xml")
    return JSONResponse({"detail": str(error), "fault": error.fault}, status_code=error.status)


def _watch_supervisor() -> None:
    """Leave when the supervisor (``skyreg serve`` with several workers) is gone.

    A worker whose parent died is reparented; it would otherwise keep the port (and its use
    of the embedded server) forever.
    """
    expected = os.environ.get(PARENT_PID_ENV)
    if not expected or int(expected) != os.getppid():
        return

    def watch() -> None:
        while True:
            threading.Event().wait(1.0)
            if os.getppid() != int(expected):
                log.warning("the supervisor process is gone; stopping this worker")
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The service application on the database the settings name."""
    chosen = settings if settings is not None else ServiceSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _watch_supervisor()
        app.state.pool = RegistryPool(chosen)
        try:
            yield
        finally:
            from skyreg.service import soda_pixels

            app.state.pool.close()
            soda_pixels.clear_cache()

    app = FastAPI(
        title="skyreg", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
        openapi_url="/openapi.json",
        description="Spatial registry of survey images: a JSON API over every lookup of the "
                    "Python API, and the IVOA protocols SIA 2.0 (with ObsCore), DataLink and "
                    "SODA for VO clients such as pyvo and TOPCAT.")
    app.state.settings = chosen
    for router in (api.router, apdb.router, stamps.router, sia2.router, datalink.router,
                   soda.router, scs.router,
                   sky.router):
        app.include_router(router)
    sky.mount_static(app)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return _error_response(request, exc)

    @app.exception_handler(Exception)
    async def other_error(request: Request, exc: Exception) -> Response:
        error = classify(exc)
        if error is None:
            log.exception("internal error on %s", request.url.path)
            error = ServiceError("internal error (logged by the service)", status=500)
            error.fault = "FatalFault"
        return _error_response(request, error)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
            for e in exc.errors())
        error = ServiceError(problems or "invalid request", status=422)
        return _error_response(request, error)

    if chosen.docs:
        _add_docs(app)

    if chosen.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(chosen.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["*"],
                           expose_headers=["X-Total-Count", "Link", "Server-Timing"])
    app.add_middleware(AccessLog, enabled=chosen.log_requests)
    return app


def _add_docs(app: FastAPI) -> None:
    """Swagger UI and ReDoc from the assets of the fastapi-offline package (no CDN)."""
    static = files("fastapi_offline") / "static"
    app.mount(_STATIC, StaticFiles(directory=str(static)), name="static-docs")

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json", title="skyreg API",
            swagger_js_url=f"{root}{_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{_STATIC}/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}/openapi.json", title="skyreg API",
                              redoc_js_url=f"{root}{_STATIC}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{_STATIC}/favicon.png",
                              with_google_fonts=False)
