"""The JSON API, ``/api/v1``: every lookup of the Python API over HTTP.

Regions are written as in the CLI, comma-separated: ``patch=SKYMAP,TRACT,PATCH``,
``tract=SKYMAP,TRACT``, ``ccd=INSTRUMENT,VISIT,DETECTOR``, ``cone=RA,DEC,RADIUS``,
``polygon=RA,DEC,RA,DEC,...``, ``point=RA,DEC`` (degrees). Results are sorted, paged with
``limit``/``offset`` and returned as columnar JSON, CSV or Parquet (``format=``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from skyreg import __version__
from skyreg.service import columnar, dependencies, queries, query_args
from skyreg.service.errors import LimitExceeded, UsageFault
from skyreg.service.regions import CircleShape, PolygonShape, Shape
from skyreg.service.settings import ServiceSettings

router = APIRouter(prefix="/api/v1", tags=["JSON API"])

SettingsDep = Annotated[ServiceSettings, Depends(dependencies.settings)]
BaseUrlDep = Annotated[str, Depends(dependencies.base_url)]

_PATCH = Query(None, description="SKYMAP,TRACT,PATCH", examples=["rings,9813,40"])
_TRACT = Query(None, description="SKYMAP,TRACT", examples=["rings,9813"])
_CCD = Query(None, description="INSTRUMENT,VISIT,DETECTOR",
             examples=["LSSTCam,2027010100042,94"])
_INNER = Query(False, description="Use inner (owned) polygons of patches and tracts")


class Page(BaseModel):
    """A page of results, column by column."""

    columns: dict[str, list[Any]] = Field(description="column name → values, one per row")
    count: int = Field(description="rows in this page")
    total: int = Field(description="rows in the whole answer")
    offset: int
    limit: int
    next: str | None = Field(description="URL of the next page, if any")


_PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Page, "content": {"text/csv": {}, "application/vnd.apache.parquet": {}}},
    400: {"description": "Bad input (the reason is in `detail`)"},
    404: {"description": "A named CCD, patch, tract or dataset type is not registered"},
    413: {"description": "The request exceeds a limit of the service"},
}

_COLUMN_TYPES = {"visit": "int", "detector": "int", "tract": "int", "patch": "int", "hdu": "int",
                 "size_bytes": "int", "patches": "int", "tracts": "int"}


def _parts(text: str, count: int | None, what: str, example: str) -> list[str]:
    parts = [part.strip() for part in text.split(",")]
    if (count is not None and len(parts) != count) or any(part == "" for part in parts):
        raise UsageFault(f"{what}: expected {example}, got {text!r}")
    return parts


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageFault(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageFault(f"{what}: must be finite")
    return value


def _int(text: str, what: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise UsageFault(f"{what}: {text!r} is not an integer") from None
    if not -(2**63) <= value < 2**63:
        raise UsageFault(f"{what}: {value} is outside the 64-bit range")
    return value


def _key(text: str, what: str, example: str, name_first: bool, ints: int) -> tuple[Any, ...]:
    """``NAME,INT,...``: the name may itself hold commas (the integers are the last parts)."""
    pieces = text.rsplit(",", ints)
    if len(pieces) != ints + 1 or not pieces[0]:
        raise UsageFault(f"{what}: expected {example}, got {text!r}")
    return (pieces[0], *(_int(p.strip(), what) for p in pieces[1:]))


def _band_key(text: str) -> tuple[Any, ...]:
    return _key(text, "patch", "SKYMAP,TRACT,PATCH", True, 2)


def region_arguments(settings: ServiceSettings, *, patch: str | None = None,
                     tract: str | None = None, ccd: str | None = None, cone: str | None = None,
                     polygon: str | None = None, point: str | None = None,
                     required: bool = True) -> dict[str, Any]:
    """Exactly one region as registry keyword arguments; user geometry is area-checked."""
    given = {name: value for name, value in (("patch", patch), ("tract", tract), ("ccd", ccd),
                                             ("cone", cone), ("polygon", polygon),
                                             ("point", point)) if value is not None}
    if len(given) > 1 or (required and not given):
        raise UsageFault("give exactly one region: " + ", ".join(
            f"{name}=" for name in ("patch", "tract", "ccd", "cone", "polygon", "point")
            if name != "ccd" or ccd is not None or not patch) + f"; got {len(given)}")
    if not given:
        return {}
    name, text = next(iter(given.items()))
    shape: Shape | None = None
    value: Any
    if name == "patch":
        value = _band_key(text)
    elif name == "tract":
        value = _key(text, "tract", "SKYMAP,TRACT", True, 1)
    elif name == "ccd":
        value = _key(text, "ccd", "INSTRUMENT,VISIT,DETECTOR", True, 2)
    elif name == "cone":
        ra, dec, radius = (_float(v, "cone") for v in _parts(text, 3, "cone", "RA,DEC,RADIUS"))
        value = (ra, dec, radius)
        if -90.0 <= dec <= 90.0 and 0.0 < radius <= 180.0:
            shape = CircleShape(ra, dec, radius)
    elif name == "polygon":
        numbers = [_float(v, "polygon") for v in _parts(text, None, "polygon", "RA,DEC,...")]
        if len(numbers) < 6 or len(numbers) % 2:
            raise UsageFault("polygon: expected at least 3 RA,DEC pairs")
        value = list(zip(numbers[0::2], numbers[1::2], strict=True))
        if all(-90.0 <= d <= 90.0 for d in numbers[1::2]):
            shape = PolygonShape(tuple(n % 360.0 for n in numbers[0::2]), tuple(numbers[1::2]))
    else:
        value = tuple(_float(v, "point") for v in _parts(text, 2, "point", "RA,DEC"))
    if shape is not None:
        try:
            queries.check_area([shape], settings.max_area_deg2)
        except LimitExceeded:
            raise
        except Exception:
            pass
    return {name: value}


def _limit(settings: ServiceSettings, limit: int | None) -> int:
    if limit is None:
        return settings.default_rows
    if limit > settings.max_rows:
        raise LimitExceeded(f"limit: at most {settings.max_rows} rows per page")
    return limit


def _page(request: Request, settings: ServiceSettings, columns: tuple[str, ...],
          rows: Sequence[Any], fmt: str, limit: int | None, offset: int) -> Response:
    size = _limit(settings, limit)
    total = len(rows)
    chosen = [tuple(row) for row in rows[offset:offset + size]]
    next_url = None
    if offset + size < total:
        params = dict(request.query_params)
        params.update({"offset": str(offset + size), "limit": str(size)})
        next_url = f"{str(request.url).split('?', 1)[0]}?{urlencode(params)}"
    headers = {"X-Total-Count": str(total)}
    if next_url:
        headers["Link"] = f'<{next_url}>; rel="next"'
    if fmt == "csv":
        return Response(columnar.as_csv(columns, chosen), media_type=columnar.MEDIA_TYPES["csv"],
                        headers={**headers, "Content-Disposition":
                                 'attachment; filename="skyreg.csv"'})
    if fmt == "parquet":
        return Response(columnar.as_parquet(columns, chosen, _COLUMN_TYPES),
                        media_type=columnar.MEDIA_TYPES["parquet"],
                        headers={**headers, "Content-Disposition":
                                 'attachment; filename="skyreg.parquet"'})
    return Response(columnar.as_json(columns, chosen, total=total, offset=offset, limit=size,
                                     next_url=next_url),
                    media_type="application/json", headers=headers)


def _time(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    start, end = (_float(v, "time") for v in _parts(text, 2, "time", "START,END (MJD TAI)"))
    if start > end:
        raise UsageFault("time: START is after END")
    return start, end


_REGION_DOCS = {
    "patch": ("patch", "text", "SKYMAP,TRACT,PATCH, e.g. rings,9813,40"),
    "tract": ("tract", "text", "SKYMAP,TRACT, e.g. rings,9813"),
    "ccd": ("ccd", "text", "INSTRUMENT,VISIT,DETECTOR, e.g. LSSTCam,2027010100042,94"),
    "cone": ("cone", "text", "RA,DEC,RADIUS (degrees), e.g. 150.1,2.2,0.2"),
    "polygon": ("polygon", "text", "RA,DEC,RA,DEC,RA,DEC,... (degrees, convex)"),
    "point": ("point", "text", "RA,DEC (degrees): footprints containing it"),
}
_PAGING_DOCS = (("inner", "flag", "Use inner (owned) polygons of patches and tracts"),
                ("limit", "limit", "Rows per page (default and maximum: service settings)"),
                ("offset", "offset", "Rows to skip"),
                ("format", "format", "json (columnar), csv or parquet"))
_CCD_REGIONS = ("patch", "tract", "cone", "polygon", "point")
_TILE_REGIONS = ("ccd", "cone", "polygon", "point")


def _documented(regions: tuple[str, ...], *extra: tuple[str, str, str]) -> dict[str, Any]:
    return query_args.documented(*(_REGION_DOCS[name] for name in regions), *extra,
                                 *_PAGING_DOCS)


def _regions(args: query_args.Args, settings: ServiceSettings, names: tuple[str, ...],
             required: bool = True) -> dict[str, Any]:
    return region_arguments(settings, required=required,
                            **{name: args.text(name) for name in names})


def _paging(args: query_args.Args) -> tuple[str, int | None, int]:
    """format, limit and offset, refused before the lookup runs when bad."""
    return (args.choice("format", query_args.FORMATS, "json"), args.integer("limit", 1),
            args.integer("offset", 0, 2**62) or 0)


# The page endpoints read their query arguments themselves (skyreg.service.query_args):
# FastAPI's per-parameter validation cost more than the lookup. openapi_extra documents them.
@router.get("/ccds", responses=_PAGE_RESPONSES, response_model=None,
            summary="CCDs whose footprint overlaps a patch, tract or region",
            openapi_extra=_documented(
                _CCD_REGIONS, ("instrument", "texts", "repeatable"),
                ("band", "texts", "repeatable"),
                ("time", "text", "START,END: visits overlapping this span (MJD TAI)")))
def ccds(request: Request) -> Response:
    settings = dependencies.settings_of(request)
    args = query_args.Args(request.query_params)
    region = _regions(args, settings, _CCD_REGIONS)
    instrument, band = args.texts("instrument"), args.texts("band")
    time, inner = _time(args.text("time")), args.flag("inner")
    fmt, limit, offset = _paging(args)
    with dependencies.lend(request) as registry:
        results = queries.find_ccds(registry, region, instrument=instrument, band=band,
                                    time=time, inner=inner)
    return _page(request, settings, results.columns, results, fmt, limit, offset)


@router.get("/patches", responses=_PAGE_RESPONSES, response_model=None,
            summary="Patches whose polygon overlaps a CCD or region",
            openapi_extra=_documented(_TILE_REGIONS, ("skymap", "texts", "repeatable")))
def patches(request: Request) -> Response:
    settings = dependencies.settings_of(request)
    args = query_args.Args(request.query_params)
    region = _regions(args, settings, _TILE_REGIONS)
    skymap, inner = args.texts("skymap"), args.flag("inner")
    fmt, limit, offset = _paging(args)
    with dependencies.lend(request) as registry:
        results = queries.find_patches(registry, region, skymap=skymap, inner=inner)
    return _page(request, settings, results.columns, results, fmt, limit, offset)


@router.get("/tracts", responses=_PAGE_RESPONSES, response_model=None,
            summary="Tracts whose polygon overlaps a CCD or region",
            openapi_extra=_documented(_TILE_REGIONS, ("skymap", "texts", "repeatable")))
def tracts(request: Request) -> Response:
    settings = dependencies.settings_of(request)
    args = query_args.Args(request.query_params)
    region = _regions(args, settings, _TILE_REGIONS)
    skymap, inner = args.texts("skymap"), args.flag("inner")
    fmt, limit, offset = _paging(args)
    with dependencies.lend(request) as registry:
        results = queries.find_tracts(registry, region, skymap=skymap, inner=inner)
    return _page(request, settings, results.columns, results, fmt, limit, offset)


@router.get("/datasets/{dataset_type}", responses=_PAGE_RESPONSES, response_model=None,
            summary="Files of a dataset type whose footprint overlaps a region (or all)",
            openapi_extra=_documented(
                _CCD_REGIONS, ("instrument", "texts", "repeatable"),
                ("skymap", "texts", "repeatable"), ("band", "texts", "repeatable")))
def datasets(request: Request, dataset_type: str) -> Response:
    settings = dependencies.settings_of(request)
    args = query_args.Args(request.query_params)
    region = _regions(args, settings, _CCD_REGIONS, required=False)
    instrument, skymap = args.texts("instrument"), args.texts("skymap")
    band, inner = args.texts("band"), args.flag("inner")
    fmt, limit, offset = _paging(args)
    with dependencies.lend(request) as registry:
        results = queries.find_datasets(registry, dataset_type, region, instrument=instrument,
                                        skymap=skymap, band=band, inner=inner)
    return _page(request, settings, results.columns, results, fmt, limit, offset)


@router.get("/footprint", summary="The polygon of one CCD, patch or tract",
            responses={400: {"description": "Bad input"}, 404: {"description": "Not found"}})
def footprint(request: Request, ccd: str | None = _CCD, patch: str | None = _PATCH,
              tract: str | None = _TRACT, inner: bool = _INNER) -> dict[str, Any]:
    given = [(k, v) for k, v in (("ccd", ccd), ("patch", patch), ("tract", tract))
             if v is not None]
    if len(given) != 1:
        raise UsageFault("give exactly one of ccd=, patch=, tract=")
    kind, text = given[0]
    key = {"ccd": lambda: _key(text, "ccd", "INSTRUMENT,VISIT,DETECTOR", True, 2),
           "patch": lambda: _band_key(text),
           "tract": lambda: _key(text, "tract", "SKYMAP,TRACT", True, 1)}[kind]()
    with dependencies.lend(request) as registry:
        polygon = queries.footprint(registry, kind, key, inner)
    from lsst.sphgeom import LonLat

    points = [LonLat(v) for v in polygon.getVertices()]
    return {"kind": kind, "key": list(key), "inner": inner,
            "ra": [p.getLon().asDegrees() for p in points],
            "dec": [p.getLat().asDegrees() for p in points]}


@router.get("/dataset-types", summary="Registered dataset types and their dimensions")
def dataset_types(request: Request) -> dict[str, str]:
    with dependencies.lend(request) as registry:
        return queries.dataset_types(registry)


@router.get("/skymaps", summary="Registered sky maps")
def skymaps(request: Request) -> list[dict[str, Any]]:
    with dependencies.lend(request) as registry:
        found = queries.skymaps(registry)
    return [{"name": name, "kind": kind, "tracts": n_tracts, "patches": n_patches,
             "hash": digest}
            for name, kind, n_tracts, n_patches, digest in found]


@router.get("/counts", summary="Number of visits, CCDs, sky maps, tracts and patches")
def counts(request: Request) -> dict[str, int]:
    with dependencies.lend(request) as registry:
        return queries.counts(registry)


class CutoutUrl(BaseModel):
    url: str = Field(description="SODA URL of the stamp; stable while the file is registered")


@router.get("/cutout-url", response_model=CutoutUrl,
            summary="Stable cutout URL of a stamp around a position (for alert packets)",
            responses={400: {"description": "Bad input, or several files match"},
                       404: {"description": "No file contains the position"}})
def cutout_url(request: Request, base_url: BaseUrlDep, settings: SettingsDep,
               ra: Annotated[float, Query(description="degrees")],
               dec: Annotated[float, Query(ge=-90, le=90, description="degrees")],
               size: Annotated[float, Query(gt=0, le=10, description="stamp side, degrees")],
               dataset_type: str = "deepCoadd", band: str | None = None,
               instrument: str | None = None, visit: int | None = None,
               detector: int | None = None, skymap: str | None = None,
               format: Literal["fits", "png"] = "fits") -> CutoutUrl:
    if not math.isfinite(ra):
        raise UsageFault("ra: must be finite")
    with dependencies.lend(request) as registry:
        return CutoutUrl(url=queries.cutout_url(
            registry, ra, dec, size, dataset_type=dataset_type, band=band,
            instrument=instrument, visit=visit, detector=detector, skymap=skymap,
            base_url=base_url, fmt=format))


@router.get("", summary="Service information", include_in_schema=True)
def about(base_url: BaseUrlDep) -> dict[str, Any]:
    return {"service": "skyreg", "version": __version__, "openapi": f"{base_url}/openapi.json",
            "sia2": f"{base_url}/sia2", "datalink": f"{base_url}/datalink/links",
            "soda": f"{base_url}/soda/sync"}
