"""SODA 1.0 sync cutouts at ``/soda/sync`` (GET and POST): FITS, or PNG for web pages.

The FITS answer has every plane of the file (image, mask, variance when present) as image
extensions after an empty primary HDU; several CIRCLE / POLYGON / POS values give one group
of extensions per value (``EXTVER`` = the value's position), see :mod:`skyreg.cutouts.soda`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from skyreg.registry.dataset_ids import DatasetIdError, parse_dataset_id
from skyreg.service import dependencies, params, queries, soda_pixels
from skyreg.service.errors import NotFoundFault, UsageFault
from skyreg.service.routers.ivoa_common import dali_params, documented, note_request

router = APIRouter(prefix="/soda", tags=["IVOA SODA"])


@router.get("/sync",
                  openapi_extra=documented("ID", "CIRCLE", "POLYGON", "POS", "BAND", "TIME",
                                           "POL", "RESPONSEFORMAT", "STRETCH", "INTERVAL",
                                           "RUNID"),
                  summary="Cutout of a registered image: the pixel box of a sky region",
                  response_class=Response,
                  responses={200: {"content": {"image/fits": {}, "image/png": {}}},
                             204: {"description": "No pixel of the image falls inside"},
                             400: {"description": "DALI error document"},
                             404: {"description": "The dataset is not registered"},
                             413: {"description": "The cutouts exceed the size or count "
                                                  "limits"}})
async def sync(request: Request) -> Response:
    settings = dependencies.settings_of(request)
    soda = params.soda_request(await dali_params(request), settings.max_cutout_regions)
    note_request(request, soda.dali)
    try:
        key = parse_dataset_id(soda.dataset_id)
    except DatasetIdError as err:
        raise UsageFault(str(err)) from None
    if soda.regions:
        queries.check_area([r.shape for r in soda.regions], settings.max_area_deg2)
    limits = soda_pixels.CutoutLimits(settings.max_cutout_pixels, settings.max_request_pixels)
    regions = [r.text for r in soda.regions]
    base_url = dependencies.base_url_of(request)

    def answer() -> Response:
        with dependencies.pool(request).registry() as registry:
            file = queries.dataset_file(registry, key, base_url)
        if file is None:
            raise NotFoundFault(f"{soda.dataset_id} is not registered")
        path = soda_pixels.local_path(file.uri)
        if path is None:
            raise NotFoundFault(f"{soda.dataset_id} is stored at {file.uri}, which this "
                                "service cannot cut")
        if not _selects_the_plane(soda, file):
            return Response(status_code=204)
        if soda.png:
            body = soda_pixels.cutout_png(path, file.hdu, regions[0] if regions else None,
                                          limits, soda.stretch, soda.interval)
        else:
            body = soda_pixels.cutout_fits(path, file.hdu, regions, limits)
        if body is None:
            return Response(status_code=204)
        return Response(body, media_type=soda.dali.media_type)

    return await run_in_threadpool(answer)


def _selects_the_plane(soda: params.SodaRequest, file: queries.DatasetFile) -> bool:
    """Whether BAND, TIME and POL keep the image's one plane (each is a filter: SODA answers
    204 when no pixel is left). Images have no polarization axis: POL keeps nothing; a band
    or time not known for the image cannot be matched."""
    if soda.band is not None and not params.overlaps_any(*file.em, soda.band):
        return False
    if soda.time is not None and not params.overlaps_any(*file.t, soda.time):
        return False
    return soda.pol is None


router.add_api_route("/sync", sync, methods=["POST"], include_in_schema=False)
