"""Level-1 catalogs over HTTP: ``/api/v1/apdb/...``, the read calls of ``reg.apdb``.

Regions are given as in the rest of the JSON API (``cone=RA,DEC,RADIUS``,
``polygon=RA,DEC,RA,DEC,...``, degrees, area-limited by the service settings); history reads
take ``visit_time`` (MJD TAI) and ``months`` (30-day months before it, as dax_apdb) and may
select by ``object_ids=ID,ID,...`` instead of, or as well as, a region. Answers are exact
(only rows inside the region), sorted by key, paged with ``limit``/``offset`` and returned as
columnar JSON (NULL and NaN as null), CSV or Parquet.
"""

from __future__ import annotations

import io
import math
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Query, Request, Response
from lsst.sphgeom import Region

from skyreg.geometry.query_regions import make_query_region
from skyreg.service import columnar, dependencies
from skyreg.service.errors import LimitExceeded, UsageFault
from skyreg.service.routers.api import _PAGE_RESPONSES, _int, _limit, region_arguments
from skyreg.service.settings import ServiceSettings

Format = Literal["json", "csv", "parquet"]

_CONE = Query(None, description="RA,DEC,RADIUS (degrees)", examples=["150.1,2.2,0.2"])
_POLYGON = Query(None, description="RA,DEC,RA,DEC,RA,DEC,... (degrees, convex)",
                 examples=["150,2,150.3,2,150.3,2.3"])
_LIMIT = Query(None, ge=1, description="Rows per page (default and maximum: service settings)")
_OFFSET = Query(0, ge=0, le=2**62, description="Rows to skip")
_FORMAT = Query("json", description="json (columnar), csv or parquet")

router = APIRouter(prefix="/api/v1/apdb", tags=["Level-1 catalogs (APDB)"])

SettingsDep = Annotated[ServiceSettings, Depends(dependencies.settings)]

_OBJECT_IDS = Query(None, description="ID,ID,...: only these DiaObjects' rows",
                    examples=["1001,1002"])
_VISIT_TIME = Query(None, description="MJD (TAI) of the visit the history is read for",
                    examples=[60400.1])
_MONTHS = Query(12.0, ge=0, le=1200,
                description="History window: 30-day months before visit_time")
_ALL = Query(False, description="The whole history (ignores months)")

_KEYS = {"DiaObject": ["diaObjectId"], "DiaSource": ["diaSourceId"],
         "DiaForcedSource": ["diaObjectId", "visit", "detector"]}


def _region(settings: ServiceSettings, cone: str | None, polygon: str | None,
            required: bool) -> Region | None:
    if cone is None and polygon is None and not required:
        return None
    arguments = region_arguments(settings, cone=cone, polygon=polygon)
    query = make_query_region(**arguments)
    assert query is not None
    return query.region


def _object_ids(text: str | None, settings: ServiceSettings) -> list[int] | None:
    if text is None:
        return None
    parts = [part.strip() for part in text.split(",")]
    if not parts or any(part == "" for part in parts):
        raise UsageFault(f"object_ids: expected ID,ID,..., got {text!r}")
    if len(parts) > settings.max_rows:
        raise LimitExceeded(f"object_ids: at most {settings.max_rows} ids")
    return [_int(part, "object_ids") for part in parts]


def _visit_time(value: float | None) -> float:
    if value is None:
        raise UsageFault("visit_time: required (MJD TAI), or give all=true")
    if not math.isfinite(value):
        raise UsageFault("visit_time: must be finite")
    return value


def _values(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Rows as JSON-ready tuples: NULL and NaN become None, numpy scalars Python ones."""
    columns = []
    for name in frame.columns:
        series = frame[name]
        values = series.to_numpy(dtype=object, copy=True)  # (may be a read-only view)
        if series.dtype.kind == "f":
            values[~np.isfinite(series.to_numpy(dtype=np.float64))] = None
        else:
            values[series.isna().to_numpy()] = None
        columns.append(values.tolist())
    return list(zip(*columns, strict=True)) if columns else []


def _page(request: Request, settings: ServiceSettings, frame: pd.DataFrame, table: str,
          fmt: str, limit: int | None, offset: int) -> Response:
    size = _limit(settings, limit)
    frame = frame.sort_values(_KEYS[table], kind="stable")
    total = len(frame)
    chosen = frame.iloc[offset:offset + size]
    next_url = None
    headers = {"X-Total-Count": str(total)}
    if offset + size < total:
        params = dict(request.query_params)
        params.update({"offset": str(offset + size), "limit": str(size)})
        next_url = f"{str(request.url).split('?', 1)[0]}?{urlencode(params)}"
        headers["Link"] = f'<{next_url}>; rel="next"'
    if fmt == "csv":
        return Response(chosen.to_csv(index=False).encode(),
                        media_type=columnar.MEDIA_TYPES["csv"],
                        headers={**headers, "Content-Disposition":
                                 f'attachment; filename="{table}.csv"'})
    if fmt == "parquet":
        buffer = io.BytesIO()
        chosen.to_parquet(buffer, index=False)
        return Response(buffer.getvalue(), media_type=columnar.MEDIA_TYPES["parquet"],
                        headers={**headers, "Content-Disposition":
                                 f'attachment; filename="{table}.parquet"'})
    return Response(columnar.as_json(tuple(str(c) for c in chosen.columns), _values(chosen),
                                     total=total, offset=offset, limit=size,
                                     next_url=next_url),
                    media_type="application/json", headers=headers)


@router.get("/dia-objects", responses=_PAGE_RESPONSES, response_model=None,
            summary="Latest versions of the DiaObjects inside a region")
def dia_objects(request: Request, settings: SettingsDep, cone: str | None = _CONE,
                polygon: str | None = _POLYGON, limit: int | None = _LIMIT,
                offset: int = _OFFSET, format: Format = _FORMAT) -> Response:
    region = _region(settings, cone, polygon, required=True)
    assert region is not None
    with dependencies.lend(request) as registry:
        frame = registry.apdb.get_dia_objects(region)
    return _page(request, settings, frame, "DiaObject", format, limit, offset)


def _history(request: Request, settings: ServiceSettings, table: str, cone: str | None,
             polygon: str | None, object_ids: str | None, visit_time: float | None,
             months: float, all_history: bool, fmt: str, limit: int | None,
             offset: int) -> Response:
    ids = _object_ids(object_ids, settings)
    region = _region(settings, cone, polygon, required=ids is None)
    time = None if all_history else _visit_time(visit_time)
    window = None if all_history else months
    with dependencies.lend(request) as registry:
        read = (registry.apdb.get_dia_sources if table == "DiaSource"
                else registry.apdb.get_dia_forced_sources)
        frame = read(region, ids, visit_time=time, months=window)
    return _page(request, settings, frame, table, fmt, limit, offset)


@router.get("/dia-sources", responses=_PAGE_RESPONSES, response_model=None,
            summary="DiaSource history inside a region and/or of DiaObjects")
def dia_sources(request: Request, settings: SettingsDep, cone: str | None = _CONE,
                polygon: str | None = _POLYGON, object_ids: str | None = _OBJECT_IDS,
                visit_time: float | None = _VISIT_TIME, months: float = _MONTHS,
                all: bool = _ALL, limit: int | None = _LIMIT, offset: int = _OFFSET,
                format: Format = _FORMAT) -> Response:
    return _history(request, settings, "DiaSource", cone, polygon, object_ids, visit_time,
                    months, all, format, limit, offset)


@router.get("/dia-forced-sources", responses=_PAGE_RESPONSES, response_model=None,
            summary="DiaForcedSource history inside a region and/or of DiaObjects")
def dia_forced_sources(request: Request, settings: SettingsDep, cone: str | None = _CONE,
                       polygon: str | None = _POLYGON, object_ids: str | None = _OBJECT_IDS,
                       visit_time: float | None = _VISIT_TIME, months: float = _MONTHS,
                       all: bool = _ALL, limit: int | None = _LIMIT, offset: int = _OFFSET,
                       format: Format = _FORMAT) -> Response:
    return _history(request, settings, "DiaForcedSource", cone, polygon, object_ids,
                    visit_time, months, all, format, limit, offset)


@router.get("/contains-visit-detector", summary="Whether a CCD's Level-1 rows are stored",
            responses={400: {"description": "Bad input"}})
def contains_visit_detector(
        request: Request,
        visit: Annotated[int, Query(ge=0, le=2**63 - 1)],
        detector: Annotated[int, Query(ge=0, le=32767)]) -> dict[str, Any]:
    with dependencies.lend(request) as registry:
        found = registry.apdb.contains_visit_detector(visit, detector)
    return {"visit": visit, "detector": detector, "stored": found}

