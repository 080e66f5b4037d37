"""``POST /api/v1/stamps``: postage stamps of many objects from every covering coadd.

The body is JSON: either ``positions`` (a list of ``{"ra", "dec", "size"?}``) or ``region``
(one IVOA shape string or a list of them), with ``size``, ``dataset_types``, ``bands``,
``skymap``, ``inner`` and ``mode`` as in :meth:`skyreg.Registry.postage_stamps`. The answer
is one multi-extension FITS file (``application/fits``) or, with ``format=zip``, a zip of one
FITS file per stamp and a ``manifest.json``; ``X-Stamp-Count`` and ``X-Stamp-Problems`` say
how many stamps came back and how many files could not be read.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from skyreg.service import dependencies, stamps
from skyreg.service.errors import LimitExceeded, UsageFault

router = APIRouter(prefix="/api/v1", tags=["JSON API"])

#: Largest request body (bytes): about 100,000 positions.
MAX_BODY_BYTES = 8 * 1024 * 1024


class Position(BaseModel):
    """One object: its position and, optionally, its own stamp size."""

    model_config = ConfigDict(extra="forbid")
    ra: float = Field(allow_inf_nan=False, description="degrees (ICRS)")
    dec: float = Field(ge=-90.0, le=90.0, description="degrees (ICRS)")
    size: int | None = Field(None, ge=1, le=65536, description="stamp side in pixels "
                                                                "(default: the request's)")


class StampBody(BaseModel):
    """A stamp request: positions or regions, and which coadds to cut them from."""

    model_config = ConfigDict(extra="forbid")
    positions: list[Position] | None = Field(None, description="objects (give this or region)")
    region: str | list[str] | None = Field(
        None, description="IVOA shape(s): 'CIRCLE ra dec r', 'POLYGON ra1 dec1 ...' "
                          "(convex) or 'RANGE ra1 ra2 dec1 dec2'; each gives the bounding "
                          "rectangle of the pixels it holds and a SELECTED mask plane")
    size: int = Field(64, ge=1, le=65536, description="stamp side in pixels (positions)")
    dataset_types: list[str] = Field(["deepCoadd"], min_length=1, max_length=64)
    bands: list[str] | None = Field(None, max_length=64)
    skymap: str | None = None
    inner: bool = Field(False, description="only the patch whose inner region holds the object")
    mode: Literal["trim", "partial"] = Field(
        "trim", description="trim: pixels inside each file only; partial: the whole box, "
                            "NaN/0 outside")


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/fits": {}, "application/zip": {}},
          "description": "The stamps (per-file problems listed in the FITS primary header, "
                         "PROBn cards, or in manifest.json)"},
    400: {"description": "Bad input (the reason is in `detail`)"},
    404: {"description": "A named sky map or dataset type is not registered"},
    413: {"description": "More objects, stamps or pixels than the service's limits"},
    422: {"description": "The body does not have the documented form"},
}


@router.post("/stamps", response_class=Response, responses=_RESPONSES,
             summary="Postage stamps of many objects from every coadd that covers them")
def post_stamps(request: Request, body: StampBody,
                format: Annotated[Literal["fits", "zip"], Query(
                    description="fits: one multi-extension file; zip: a FITS file per "
                                "stamp and manifest.json")] = "fits") -> Response:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise LimitExceeded(f"the body has {length} bytes; at most {MAX_BODY_BYTES}")
    settings = dependencies.settings_of(request)
    limits = stamps.StampLimits(settings.max_stamp_objects, settings.max_stamps,
                                settings.max_request_pixels, settings.max_cutout_pixels)
    query = _query(body, limits)
    with dependencies.lend(request) as registry:
        plan = stamps.plan(registry, query, limits)
    result = stamps.cut(plan, query, limits)
    headers = {"X-Stamp-Count": str(len(result.stamps)),
               "X-Stamp-Problems": str(len(result.problems))}
    if format == "zip":
        return Response(stamps.as_zip(result), media_type="application/zip",
                        headers={**headers, "Content-Disposition":
                                 'attachment; filename="stamps.zip"'})
    return Response(result.to_fits(), media_type="application/fits",
                    headers={**headers, "Content-Disposition":
                             'attachment; filename="stamps.fits"'})


def _query(body: StampBody, limits: stamps.StampLimits) -> stamps.StampQuery:
    common = {"dataset_types": tuple(body.dataset_types),
              "bands": tuple(body.bands) if body.bands else None, "skymap": body.skymap,
              "inner": body.inner, "mode": body.mode}
    if (body.positions is None) == (body.region is None):
        raise UsageFault("give either positions or region")
    sizes = [body.size] + [p.size for p in body.positions or [] if p.size is not None]
    if max(sizes) > limits.max_side:
        raise LimitExceeded(f"size: stamps of at most {limits.max_side} pixels along each axis")
    if body.positions is not None:
        positions = [(p.ra, p.dec, p.size) for p in body.positions]
        query = stamps.positions_query(positions, body.size, **common)
    else:
        regions = [body.region] if isinstance(body.region, str) else list(body.region or [])
        query = stamps.regions_query(regions, **common)
    stamps.check_objects(query, limits)
    return query
