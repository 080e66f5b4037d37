"""The sky viewer: the page at ``/``, its static files, and its JSON under ``/api/v1/sky``.

The page (``skyreg/service/viewer/``) draws with d3 (d3-geo projections on SVG), vendored in
the package with its licence; nothing is fetched from elsewhere at run time, so the viewer
works on a machine without network access.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from skyreg.registry.sky import COVERAGE_LEVELS
from skyreg.service import dependencies, sky
from skyreg.service.errors import LimitExceeded, NotFoundFault, UsageFault
from skyreg.service.routers.api import region_arguments
from skyreg.service.settings import ServiceSettings
from skyreg.service.targets import TargetError, parse_target

router = APIRouter(tags=["Sky viewer"])

SettingsDep = Annotated[ServiceSettings, Depends(dependencies.settings)]
BaseUrlDep = Annotated[str, Depends(dependencies.base_url)]

STATIC_PATH = "/viewer"
#: Most CCDs one field answer draws (and at most the service's --max-rows).
FIELD_CCDS = 5000

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad input (the reason is in `detail`)"},
    404: {"description": "The named CCD, patch or tract is not registered"},
    413: {"description": "The region exceeds a limit of the service"}}


def mount_static(app: FastAPI) -> None:
    """Serve the viewer's own and vendored files under ``/viewer``."""
    app.mount(STATIC_PATH, StaticFiles(directory=str(files("skyreg.service") / "viewer")),
              name="viewer")


@lru_cache(maxsize=1)
def _page() -> str:
    return (files("skyreg.service") / "viewer" / "index.html").read_text(encoding="utf-8")


@router.get("/", include_in_schema=False, response_class=HTMLResponse)
def index() -> HTMLResponse:
    """The sky viewer (links to the API documentation are on the page)."""
    return HTMLResponse(_page())


@router.get("/api/v1/sky/resolve", summary="Parse a typed position, tract or patch",
            responses=_ERRORS)
def resolve(q: Annotated[str, Query(max_length=200, description="e.g. '150.1 2.2 0.3', "
                                    "'10:00:28.6 +02:12:21', 'tract rings 9813'")]
            ) -> dict[str, object]:
    """Positions in degrees or sexagesimal, with an optional radius; ``tract SKYMAP TRACT``
    or ``patch SKYMAP TRACT PATCH``. Object names are refused with the reason (resolving
    them needs a network service)."""
    try:
        return parse_target(q).as_dict()
    except TargetError as err:
        raise UsageFault(str(err)) from None


@router.get("/api/v1/sky/field", responses=_ERRORS,
            summary="CCDs (with vertices), patches and tracts overlapping a cone, tract or "
                    "patch")
def field(request: Request, settings: SettingsDep,
          cone: Annotated[str | None, Query(description="RA,DEC,RADIUS (degrees)")] = None,
          tract: Annotated[str | None, Query(description="SKYMAP,TRACT")] = None,
          patch: Annotated[str | None, Query(description="SKYMAP,TRACT,PATCH")] = None,
          band: Annotated[list[str] | None, Query(description="repeatable")] = None,
          limit: Annotated[int | None, Query(ge=1, description="most CCDs drawn")] = None,
          ) -> dict[str, Any]:
    region = region_arguments(settings, cone=cone, tract=tract, patch=patch)
    most = min(FIELD_CCDS, settings.max_rows)
    if limit is not None and limit > settings.max_rows:
        raise LimitExceeded(f"limit: at most {settings.max_rows} CCDs")
    with dependencies.lend(request) as registry:
        return sky.field(registry, region, band=band or None, max_ccds=limit or most)


@router.get("/api/v1/sky/details", responses=_ERRORS,
            summary="Data ID, polygons and files (with DataLink and preview URLs) of one "
                    "CCD, patch or tract")
def details(request: Request, settings: SettingsDep, base_url: BaseUrlDep,
            ccd: Annotated[str | None, Query(description="INSTRUMENT,VISIT,DETECTOR")] = None,
            patch: Annotated[str | None, Query(description="SKYMAP,TRACT,PATCH")] = None,
            tract: Annotated[str | None, Query(description="SKYMAP,TRACT")] = None,
            ) -> dict[str, Any]:
    given = region_arguments(settings, ccd=ccd, patch=patch, tract=tract)
    kind, key = next(iter(given.items()))
    with dependencies.lend(request) as registry:
        answer = sky.details(registry, kind, tuple(key), base_url)
    if answer is None:
        raise NotFoundFault(f"{kind} {tuple(key)} is not in the registry")
    return answer


@router.get("/api/v1/sky/coverage", responses={**_ERRORS, 304: {"description": "Unchanged"}},
            summary="Visits per sky cell (total and per band), with the cells' polygons")
def coverage(request: Request,
             level: Annotated[int | None, Query(ge=COVERAGE_LEVELS[0], le=COVERAGE_LEVELS[1],
                                                description="pixelization level of the "
                                                            "cells (default 6)")] = None,
             if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """Computed from the CCD pixel index in one SQL aggregate, then kept until CCDs are
    added (the ETag changes then)."""
    cache: sky.CoverageCache = _coverage_cache(request)
    with dependencies.lend(request) as registry:
        etag, answer = cache.get(registry, level)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if if_none_match == etag:
        return Response(status_code=304, headers=headers)
    return JSONResponse(answer, headers=headers)


_CACHE_LOCK = threading.Lock()


def _coverage_cache(request: Request) -> sky.CoverageCache:
    """The app's coverage cache (one per worker process, made on first use)."""
    state = request.app.state
    with _CACHE_LOCK:
        cache: sky.CoverageCache | None = getattr(state, "coverage_cache", None)
        if cache is None:
            cache = state.coverage_cache = sky.CoverageCache()
    return cache
