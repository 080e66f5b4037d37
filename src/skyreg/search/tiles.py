"""Patches and tracts overlapping a CCD or a region, with the columns asked for."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Select

from skyreg.db.connection import ReadConnection
from skyreg.geometry.pixelization import PixelScheme
from skyreg.search import relation_statements, relations, statements
from skyreg.search.columns import ColumnSpec, resolve
from skyreg.search.exact import exact_rows
from skyreg.search.regions import names, query_region
from skyreg.search.results import PatchRef, ResultTable, TractRef, patch_results, tract_results
from skyreg.search.sql import compiled
from skyreg.search.validation import NameChecker

Regions = dict[str, Any]


def find_patches(conn: ReadConnection, scheme: PixelScheme, *,
                 skymap: str | Sequence[str] | None = None, inner: bool = False,
                 columns: str | Iterable[str] | None = None,
                 checker: NameChecker | None = None, stacklevel: int = 3,
                 **regions: Any) -> ResultTable[PatchRef]:
    """Patches whose outer (inner) polygon overlaps a CCD (``ccd=``) or region (``cone=``,
    ``polygon=``, ``point=``, ``region=``)."""
    extras = resolve("patch", columns, PatchRef._fields, "find_patches")
    rows = _tiles(conn, scheme, "patch", statements.patch_candidates, skymap, inner, extras,
                  checker, stacklevel, regions)
    return patch_results(rows, extras)


def find_tracts(conn: ReadConnection, scheme: PixelScheme, *,
                skymap: str | Sequence[str] | None = None, inner: bool = False,
                columns: str | Iterable[str] | None = None,
                checker: NameChecker | None = None, stacklevel: int = 3,
                **regions: Any) -> ResultTable[TractRef]:
    """Tracts whose outer (inner) polygon overlaps a CCD or region (as :func:`find_patches`)."""
    extras = resolve("tract", columns, TractRef._fields, "find_tracts")
    rows = _tiles(conn, scheme, "tract", statements.tract_candidates, skymap, inner, extras,
                  checker, stacklevel, regions)
    return tract_results(rows, extras)


def _tiles(conn: ReadConnection, scheme: PixelScheme, kind: str,
           builder: Callable[[bool, bool, tuple[ColumnSpec, ...]], Select[Any]],
           skymap: str | Sequence[str] | None, inner: bool, extras: tuple[ColumnSpec, ...],
           checker: NameChecker | None, stacklevel: int, regions: Regions
           ) -> list[tuple[Any, ...]]:
    """Rows of ``kind`` tiles: from the overlap relation for a CCD (an index scan), else
    pixel candidates from ``builder`` and the exact test. Both give the same rows."""
    ccd = regions.get("ccd")
    by_ccd = relations.stored_kind({"ccd": ccd},
                                   {name: value for name, value in regions.items()
                                    if name != "ccd"}) is not None
    query = None if by_ccd else query_region(conn, stored=("ccd",), **regions)
    ccd_params = relations.key_params("ccd", ccd) if by_ccd else {}
    skymaps = names(skymap, "skymap")
    (checker or NameChecker()).check(conn, "skymap", skymaps, stacklevel=stacklevel + 1)
    params = {"skymaps": list(skymaps)} if skymaps is not None else {}
    if query is None:
        sql = compiled(relation_statements.tiles_of_ccd, kind, skymaps is not None, inner,
                       extras)
        return relations.related_rows(conn, "ccd", ccd, sql, {**params, **ccd_params})
    return exact_rows(conn, scheme, compiled(builder, skymaps is not None, inner, extras),
                      query, params)
