"""SODA 1.0 sync cutouts at ``/soda/sync`` (GET and POST): FITS, or PNG for web pages."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from skyreg.registry.dataset_ids import DatasetIdError, parse_dataset_id
from skyreg.service import dependencies, params, queries, soda_pixels
from skyreg.service.errors import NotFoundFault, UsageFault
from skyreg.service.routers.ivoa_common import dali_params, documented

router = APIRouter(prefix="/soda", tags=["IVOA SODA"])


@router.get("/sync",
                  openapi_extra=documented("ID", "CIRCLE", "POLYGON", "POS", "RESPONSEFORMAT",
                                           "STRETCH", "INTERVAL"),
                  summary="Cutout of a registered image: the pixel box of a sky region",
                  response_class=Response,
                  responses={200: {"content": {"image/fits": {}, "image/png": {}}},
                             204: {"description": "No pixel of the image falls inside"},
                             400: {"description": "DALI error document"},
                             404: {"description": "The dataset is not registered"},
                             413: {"description": "The cutout exceeds the size limit"}})
async def sync(request: Request) -> Response:
    settings = dependencies.settings(request)
    soda = params.soda_request(await dali_params(request))
    try:
        key = parse_dataset_id(soda.dataset_id)
    except DatasetIdError as err:
        raise UsageFault(str(err)) from None
    if soda.shape is not None:
        queries.check_area([soda.shape], settings.max_area_deg2)
    base_url = dependencies.base_url(request)

    def answer() -> Response:
        with dependencies.pool(request).registry() as registry:
            file = queries.dataset_file(registry, key, base_url)
        if file is None:
            raise NotFoundFault(f"{soda.dataset_id} is not registered")
        path = soda_pixels.local_path(file.uri)
        if path is None:
            raise NotFoundFault(f"{soda.dataset_id} is stored at {file.uri}, which this "
                                "service cannot cut")
        if soda.png:
            body = soda_pixels.cutout_png(path, file.hdu, soda.shape,
                                          settings.max_cutout_pixels, soda.dataset_id,
                                          soda.stretch, soda.interval)
            media = "image/png"
        else:
            body = soda_pixels.cutout_fits(path, file.hdu, soda.shape,
                                           settings.max_cutout_pixels, soda.dataset_id)
            media = "image/fits"
        if body is None:
            return Response(status_code=204)
        return Response(body, media_type=media)

    return await run_in_threadpool(answer)


router.add_api_route("/sync", sync, methods=["POST"], include_in_schema=False)
