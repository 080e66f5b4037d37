"""Archived files of a dataset type, found through their CCD's or patch's footprint."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from skyreg.db.connection import ReadConnection
from skyreg.geometry.pixelization import PixelScheme
from skyreg.search import dataset_statements
from skyreg.search.centres import matching_ccd_ids, searchable
from skyreg.search.columns import resolve
from skyreg.search.exact import exact_rows
from skyreg.search.regions import names, query_region
from skyreg.search.results import DatasetRef, ResultTable, dataset_results
from skyreg.search.sql import compiled
from skyreg.search.validation import NameChecker, QueryError

_DATASET_TYPES = "SELECT name, dimensions FROM dataset_type"


def dataset_types(conn: ReadConnection) -> dict[str, str]:
    """Registered dataset types and their dimensions (``'ccd'`` or ``'patch'``)."""
    return {str(name): str(dims) for name, dims in conn.fetch(_DATASET_TYPES, {})}


def find_datasets(
    conn: ReadConnection,
    scheme: PixelScheme,
    dataset_type: str,
    *,
    patch: Any = None,
    tract: Any = None,
    cone: Any = None,
    polygon: Any = None,
    point: Any = None,
    region: Any = None,
    instrument: str | Sequence[str] | None = None,
    skymap: str | Sequence[str] | None = None,
    band: str | Sequence[str] | None = None,
    inner: bool = False,
    columns: str | Iterable[str] | None = None,
    checker: NameChecker | None = None,
    stacklevel: int = 3,
) -> ResultTable[DatasetRef]:
    """Files of ``dataset_type`` whose footprint overlaps a region, or all of them (see
    :meth:`skyreg.Registry.find_datasets`)."""
    types = dataset_types(conn)
    dimensions = types.get(dataset_type)
    if dimensions is None:
        known = ", ".join(sorted(types)) or "none"
        raise QueryError(f"dataset type {dataset_type!r} is not registered (known: {known})")
    extras = resolve(f"{dimensions}_dataset", columns, DatasetRef._fields,
                     f"find_datasets of {dimensions} type {dataset_type!r}")
    spatial = any(value is not None for value in (patch, tract, cone, polygon, point, region))
    instruments, skymaps = names(instrument, "instrument"), names(skymap, "skymap")
    bands = names(band, "band")
    checker = checker or NameChecker()
    checker.check(conn, "instrument", instruments, stacklevel=stacklevel)
    checker.check(conn, "skymap", skymaps, stacklevel=stacklevel)
    checker.check(conn, "band", bands, stacklevel=stacklevel)
    filters = dataset_statements.DatasetFilters(spatial, instruments is not None,
                                                skymaps is not None, bands is not None)
    params: dict[str, Any] = {"dataset_type": dataset_type}
    for name, values in (("instruments", instruments), ("skymaps", skymaps),
                         ("bands", bands)):
        if values is not None:
            params[name] = list(values)
    builder = (dataset_statements.ccd_datasets if dimensions == "ccd"
               else dataset_statements.patch_datasets)
    if spatial:
        query = query_region(conn, stored=("patch", "tract"), patch=patch, tract=tract,
                             cone=cone, polygon=polygon, point=point, region=region,
                             inner=inner)
        if dimensions == "ccd" and searchable(query):
            params["ids"] = matching_ccd_ids(conn, query).tolist()
        else:
            footprints = (compiled(dataset_statements.ccd_footprints) if dimensions == "ccd"
                          else compiled(dataset_statements.patch_footprints, inner))
            params["ids"] = [row[0] for row in exact_rows(conn, scheme, footprints, query, {})]
        if not params["ids"]:
            return dataset_results([], extras)
    return dataset_results(conn.fetch(compiled(builder, filters, extras), params), extras)
