"""IVOA SIA 2.0 at ``/sia2``: ``/query`` (GET, POST), ``/capabilities``, ``/availability``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from skyreg.service import dependencies, documents, params, queries
from skyreg.service.routers.ivoa_common import (
    dali_params,
    documented,
    note_request,
    request_infos,
    votable,
)

router = APIRouter(prefix="/sia2", tags=["IVOA SIA 2.0"])

_SIA_DOC = documented("POS", "BAND", "TIME", "POL", "FOV", "SPATRES", "EXPTIME", "ID",
                      "COLLECTION", "FACILITY", "INSTRUMENT", "DPTYPE", "CALIB", "TARGET",
                      "TIMERES", "SPECRP", "FORMAT", "RELEASEDATE", "MAXREC",
                      "RESPONSEFORMAT", "RUNID")


@router.get("/query", openapi_extra=_SIA_DOC,
                  summary="Images whose footprint overlaps POS (and the other constraints)",
                  response_class=Response,
                  responses={200: {"content": {"application/x-votable+xml": {}}},
                             400: {"description": "DALI error document (UsageFault)"}})
async def query(request: Request) -> Response:
    settings = dependencies.settings_of(request)
    sia = params.sia_query(await dali_params(request))
    limit = settings.default_rows if sia.maxrec is None else min(sia.maxrec, settings.max_rows)
    base_url = dependencies.base_url_of(request)

    note_request(request, sia.dali)

    def answer() -> bytes:
        with dependencies.pool(request).registry() as registry:
            found = queries.sia_search(registry, sia, limit, base_url, settings.max_area_deg2)
        # A MAXREC above the service's limit is cut to it: that is an overflow too.
        return documents.sia_results(found.rows, found.overflow, base_url,
                                     request_infos(sia.dali))

    return votable(await run_in_threadpool(answer), media_type=sia.dali.media_type)


@router.get("/capabilities", summary="VOSI capabilities", response_class=Response,
            responses={200: {"content": {"text/xml": {}}}})
def capabilities(request: Request) -> Response:
    settings = dependencies.settings_of(request)
    note = documents.soda_note(settings.max_cutout_regions, settings.max_cutout_pixels,
                               settings.max_request_pixels)
    return Response(documents.capabilities(dependencies.base_url_of(request), note),
                    media_type="text/xml")


@router.get("/availability", summary="VOSI availability", response_class=Response,
            responses={200: {"content": {"text/xml": {}}}})
def availability(request: Request) -> Response:
    ok = dependencies.pool(request).ping()
    note = "the registry database answers" if ok else "the registry database does not answer"
    return Response(documents.availability(ok, note), media_type="text/xml")


# POST takes the same parameters as a form; documented once, under GET.
router.add_api_route("/query", query, methods=["POST"], include_in_schema=False)
