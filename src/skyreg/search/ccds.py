"""CCDs overlapping a patch, a tract or a region, with the columns asked for."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from skyreg.db.connection import ReadConnection
from skyreg.geometry.pixelization import PixelScheme
from skyreg.search import relation_statements, relations, statements
from skyreg.search.ccd_columns import exact_ccd_table, exact_ccd_table_by_centre
from skyreg.search.centres import matching_ccd_ids, searchable
from skyreg.search.columns import resolve
from skyreg.search.exact import exact_rows
from skyreg.search.regions import names, query_region
from skyreg.search.results import CcdRef, ResultTable, ccd_results
from skyreg.search.sql import compiled
from skyreg.search.validation import NameChecker, QueryError, time_range

_DATASET_TYPE_OF_CCDS = "SELECT dimensions FROM dataset_type WHERE name = %(name)s"


def find_ccds(
    conn: ReadConnection,
    scheme: PixelScheme,
    *,
    patch: Any = None,
    tract: Any = None,
    cone: Any = None,
    polygon: Any = None,
    point: Any = None,
    region: Any = None,
    instrument: str | Sequence[str] | None = None,
    band: str | Sequence[str] | None = None,
    time: tuple[Any, Any] | None = None,
    inner: bool = False,
    columns: str | Iterable[str] | None = None,
    dataset_type: str | None = None,
    checker: NameChecker | None = None,
    stacklevel: int = 3,
) -> ResultTable[CcdRef]:
    """CCDs whose footprint overlaps one region (see :meth:`skyreg.Registry.find_ccds`).

    A patch or a tract is answered from the overlap relation (an index scan, no geometry);
    a cone or a point by the CCDs' centre pixels (:mod:`skyreg.search.centres`), other
    regions by pixel candidates, each with the exact test (as columns when no extra column
    is asked for: :mod:`skyreg.search.ccd_columns`). All give the same rows.

    ``checker`` remembers filter names already found (warnings about unknown ones are raised
    ``stacklevel`` frames up, counted as for :func:`warnings.warn` from the checker).
    """
    kind = relations.stored_kind({"patch": patch, "tract": tract},
                                 {"cone": cone, "polygon": polygon, "point": point,
                                  "region": region})
    if kind is None:
        query = query_region(conn, stored=("patch", "tract"), patch=patch, tract=tract,
                             cone=cone, polygon=polygon, point=point, region=region,
                             inner=inner)
    else:
        stored = patch if kind == "patch" else tract
        tile_params = relations.key_params(kind, stored)
    extras = resolve("ccd", columns, CcdRef._fields, "find_ccds")
    mjd_range = time_range(time) if time is not None else None
    instruments, bands = names(instrument, "instrument"), names(band, "band")
    checker = checker or NameChecker()
    checker.check(conn, "instrument", instruments, stacklevel=stacklevel)
    checker.check(conn, "band", bands, stacklevel=stacklevel)
    filters = statements.CcdFilters(instruments is not None, bands is not None,
                                    mjd_range is not None)
    params: dict[str, Any] = {}
    if instruments is not None:
        params["instruments"] = list(instruments)
    if bands is not None:
        params["bands"] = list(bands)
    if mjd_range is not None:
        params["mjd_start"], params["mjd_end"] = mjd_range
    file_columns = [spec.name for spec in extras if spec.source == "file"]
    if file_columns or dataset_type is not None:
        params["dataset_type"] = _ccd_dataset_type(conn, dataset_type, file_columns)
    if kind is not None:
        rows = relations.related_rows(
            conn, kind, stored,
            compiled(relation_statements.ccds_of_tile, kind, inner, filters, extras),
            {**params, **tile_params})
    elif searchable(query) and not extras:
        return exact_ccd_table_by_centre(conn, filters, query, params)
    elif searchable(query):
        # Extra columns: the exact answer by centre pixel first, then its rows by id.
        ids = matching_ccd_ids(conn, query).tolist()
        rows = (conn.fetch(compiled(statements.ccd_rows_by_id, filters, extras),
                           {**params, "ids": ids}) if ids else [])
    elif not extras:
        return exact_ccd_table(conn, scheme, compiled(statements.ccd_candidate_columns, filters),
                               query, params)
    else:
        rows = exact_rows(conn, scheme, compiled(statements.ccd_candidates, filters, extras),
                          query, params)
    return ccd_results(rows, extras)


def _ccd_dataset_type(conn: ReadConnection, dataset_type: str | None, wanted: list[str]
                      ) -> str:
    """The CCD dataset type whose files the file columns describe (checked)."""
    if not wanted:
        raise QueryError(f"dataset_type={dataset_type!r} chooses the files of the uri, hdu, "
                         "size_bytes and checksum columns: ask for some with columns=")
    if dataset_type is None:
        raise QueryError(f"columns {', '.join(wanted)}: say whose files with dataset_type= "
                         "(a CCD dataset type, e.g. 'raw' or 'calexp')")
    if not isinstance(dataset_type, str):
        raise QueryError(f"dataset_type: expected a name, got {dataset_type!r}")
    rows = conn.fetch(_DATASET_TYPE_OF_CCDS, {"name": dataset_type})
    if not rows:
        raise QueryError(f"dataset type {dataset_type!r} is not registered")
    if rows[0][0] != "ccd":
        raise QueryError(f"dataset type {dataset_type!r} holds {rows[0][0]} images, not CCDs; "
                         "find its files with find_datasets")
    return dataset_type
