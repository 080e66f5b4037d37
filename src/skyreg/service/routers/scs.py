"""IVOA Simple Cone Search at ``/scs/{catalog}``: one endpoint per loaded object catalog."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from skyreg.service import dependencies, scs
from skyreg.service.routers.ivoa_common import dali_params, documented, votable

router = APIRouter(prefix="/scs", tags=["IVOA Simple Cone Search 1.03"])


@router.get("/{catalog}", openapi_extra=documented("RA", "DEC", "SR", "VERB", "MAXREC"),
            summary="Rows of a loaded catalog within SR degrees of (RA, DEC)",
            response_class=Response,
            responses={200: {"content": {"application/x-votable+xml": {}}},
                       400: {"description": "SCS error document (INFO name=\"Error\")"}})
async def cone_search(request: Request, catalog: str) -> Response:
    settings = dependencies.settings_of(request)
    cone = scs.cone_request(await dali_params(request), settings.max_area_deg2)
    wanted = settings.default_rows if cone.maxrec is None else cone.maxrec
    limit = min(wanted, settings.max_rows)

    def answer() -> bytes:
        with dependencies.pool(request).registry() as registry:
            found = registry.catalog(catalog)
            columns = scs.verb_columns(found.info, cone.verb)
            if cone.radius == 0.0 or limit == 0:
                frame = found.cone(cone.ra, cone.dec, 0.0, columns=columns, limit=0)
                # MAXREC=0 asks for metadata; an overflow is only news for a real limit.
                return scs.results_document(found.info, frame, overflow=False)
            frame = found.cone(cone.ra, cone.dec, cone.radius, columns=columns,
                               limit=limit + 1)
        overflow = len(frame) > limit
        return scs.results_document(found.info, frame.iloc[:limit], overflow)

    return votable(await run_in_threadpool(answer))


# POST takes the same parameters as a form; documented once, under GET.
router.add_api_route("/{catalog}", cone_search, methods=["POST"], include_in_schema=False)
