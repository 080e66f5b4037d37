"""DataLink 1.1 ``/datalink/links`` (GET and POST, several IDs) and the files it links to.

``/files?ID=`` serves a registered file: the path comes from the registry's URI for that
dataset, never from the request. Files the service cannot read itself (``s3://``, ...) are not
served; http(s) URIs are redirected to.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from skyreg.registry.dataset_ids import DatasetIdError, DatasetKey, parse_dataset_id
from skyreg.service import dependencies, documents, params, queries
from skyreg.service.errors import NotFoundFault, UsageFault
from skyreg.service.routers.ivoa_common import (
    dali_params,
    documented,
    note_request,
    request_infos,
    votable,
)
from skyreg.service.soda_pixels import local_path

router = APIRouter(tags=["IVOA DataLink"])


@router.get("/datalink/links", openapi_extra=documented("ID", "RESPONSEFORMAT", "RUNID"),
                  summary="Links of one or more images (file, cutout service, preview)",
                  response_class=Response,
                  responses={200: {"content": {"application/x-votable+xml": {}}},
                             400: {"description": "DALI error document"}})
async def links(request: Request) -> Response:
    settings = dependencies.settings(request)
    given = await dali_params(request)
    dali = params.dali_request(given, frozenset({"ID"}), what="DataLink",
                               formats=params.VOTABLE_FORMATS)
    note_request(request, dali)
    # DataLink 1.1: no ID is a normal (empty) answer; beyond the service's limit, the first
    # IDs are answered and the overflow is signalled.
    ids = given.get("ID", [])
    overflow = len(ids) > settings.max_ids
    ids = ids[:settings.max_ids]
    base_url = dependencies.base_url(request)
    keys: dict[str, DatasetKey | str] = {}
    for text in ids:
        try:
            keys[text] = parse_dataset_id(text)
        except DatasetIdError as err:
            keys[text] = str(err)

    def answer() -> bytes:
        with dependencies.pool(request).registry() as registry:
            rows = queries.dataset_rows(
                registry, [k for k in keys.values() if isinstance(k, DatasetKey)], base_url)
        found: list[documents.Link] = []
        cutouts = False
        for text in ids:
            key = keys[text]
            if not isinstance(key, DatasetKey):
                found.append(documents.Link(text, error_message=f"UsageFault: {key}"))
                continue
            row = rows.get(key)
            if row is None:
                found.append(documents.Link(
                    text, error_message=f"NotFoundFault: {text} is not registered"))
                continue
            file = queries.file_of_row(key, row)
            local = local_path(file.uri) is not None
            size = file.size_kb * 1000 if file.size_kb is not None else None
            found.append(documents.Link(
                text, access_url=documents.file_url(base_url, text) if local else file.uri,
                semantics="#this", description=f"the file (image in HDU {file.hdu})",
                content_type=file.access_format, content_length=size))
            if local:
                cutouts = True
                found.append(documents.Link(text, service_def="soda", semantics="#cutout",
                                            description="cutout service (SODA sync)",
                                            content_type="image/fits"))
                found.append(documents.Link(text, access_url=documents.preview_url(base_url,
                                                                                   text),
                                            semantics="#preview",
                                            description="PNG rendering of the image",
                                            content_type="image/png"))
        return documents.datalink_results(found, base_url, cutouts, overflow,
                                          request_infos(dali))

    return votable(await run_in_threadpool(answer), media_type=dali.media_type)


# POST (pyvo sends batches of IDs so) takes the same parameters as a form.
router.add_api_route("/datalink/links", links, methods=["POST"], include_in_schema=False)


@router.get("/files", summary="A registered file, by dataset identifier",
            response_class=Response,
            responses={200: {"content": {"image/fits": {}}}, 303: {"description": "Elsewhere"},
                       404: {"description": "Not registered or not served here"}})
def files(request: Request, ID: str = Query(description="dataset identifier")) -> Response:
    try:
        key = parse_dataset_id(ID)
    except DatasetIdError as err:
        raise UsageFault(str(err)) from None
    with dependencies.pool(request).registry() as registry:
        file = queries.dataset_file(registry, key, dependencies.base_url(request))
    if file is None:
        raise NotFoundFault(f"{ID} is not registered")
    path = local_path(file.uri)
    if path is None:
        if file.uri.startswith(("http://", "https://")):
            return RedirectResponse(file.uri, status_code=303)
        raise NotFoundFault(f"{ID} is stored at {file.uri}, which this service does not serve")
    if not path.is_file():
        raise NotFoundFault(f"the registered file of {ID} is missing")
    return FileResponse(path, media_type=file.access_format, filename=path.name)


