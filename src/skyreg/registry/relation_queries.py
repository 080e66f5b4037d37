"""SQL statements of the patch and tract searches, answered from the overlap relations.

``find_ccds(patch=...)``, ``find_ccds(tract=...)``, ``find_patches(ccd=...)`` and
``find_tracts(ccd=...)`` need no geometry at query time: every overlapping (CCD, tile) pair
is stored by ingest (``ccd_patch_overlap``, ``ccd_tract_overlap``; see
:mod:`skyreg.schema.overlaps`). Each statement is one index-only range scan of a relation plus
the key lookups of the rows it returns. Building a statement has no side effects.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Double,
    Select,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY

from skyreg.registry.queries import CcdFilters
from skyreg.schema import ccd, ccd_patch_overlap, ccd_tract_overlap, patch, tract, visit

#: kind → (tile table, relation, id column, key columns)
_TILES: dict[str, tuple[Table, Table, str, tuple[str, ...]]] = {
    "patch": (patch, ccd_patch_overlap, "patch_id", ("skymap", "tract", "patch")),
    "tract": (tract, ccd_tract_overlap, "tract_id", ("skymap", "tract")),
}


def stored_kind(stored: dict[str, Any], *others: Any) -> str | None:
    """The kind of stored footprint a search names when it names exactly one and no other
    region (then a relation answers it); None otherwise (geometry, or an error to report)."""
    given = [kind for kind, value in stored.items() if value is not None]
    if len(given) == 1 and all(value is None for value in others):
        return given[0]
    return None


def _param(name: str) -> Any:
    return bindparam(name, type_=Text if name in ("skymap", "instrument") else BigInteger)


def _overlap(relation: Table, inner: bool) -> ColumnElement[bool]:
    return relation.c.inner_overlap if inner else relation.c.outer_overlap


def ccds_of_tile(kind: str, inner: bool, filters: CcdFilters) -> Select[tuple[str, int, int]]:
    """CCDs (instrument, visit, detector) overlapping one patch or tract.

    Parameters: the tile's key (``skymap``, ``tract``[, ``patch``]) and those of ``filters``
    (as :func:`skyreg.registry.queries.ccd_candidates`).
    """
    tiles, relation, id_column, keys = _TILES[kind]
    tile_id = select(tiles.c[id_column]).where(*(tiles.c[k] == _param(k) for k in keys))
    statement = (
        select(ccd.c.instrument, ccd.c.visit, ccd.c.detector)
        .select_from(relation.join(ccd, ccd.c.ccd_id == relation.c.ccd_id))
        .where(relation.c[id_column] == tile_id.scalar_subquery(), _overlap(relation, inner))
    )
    conditions: list[ColumnElement[bool]] = []
    if filters.instrument:
        conditions.append(ccd.c.instrument == any_(_texts("instruments")))
    if filters.band or filters.time:
        statement = statement.join(
            visit, and_(visit.c.instrument == ccd.c.instrument, visit.c.visit == ccd.c.visit))
    if filters.band:
        conditions.append(visit.c.band == any_(_texts("bands")))
    if filters.time:
        conditions.append(visit.c.mjd_tai_end >= bindparam("mjd_start", type_=Double))
        conditions.append(visit.c.mjd_tai_start <= bindparam("mjd_end", type_=Double))
    return statement.where(and_(true(), *conditions))


def tiles_of_ccd(kind: str, by_skymap: bool, inner: bool) -> Select[Any]:
    """Patches (skymap, tract, patch) or tracts (skymap, tract) overlapping one CCD.

    Parameters: ``instrument``, ``visit``, ``detector``; ``skymaps`` (text array) with
    ``by_skymap``.
    """
    tiles, relation, id_column, keys = _TILES[kind]
    ccd_id = select(ccd.c.ccd_id).where(
        *(ccd.c[k] == _param(k) for k in ("instrument", "visit", "detector")))
    statement = (
        select(*(tiles.c[k] for k in keys))
        .select_from(relation.join(tiles, tiles.c[id_column] == relation.c[id_column]))
        .where(relation.c.ccd_id == ccd_id.scalar_subquery(), _overlap(relation, inner))
    )
    if by_skymap:
        statement = statement.where(tiles.c.skymap == any_(_texts("skymaps")))
    return statement


def _texts(name: str) -> Any:
    return bindparam(name, type_=ARRAY(Text))
