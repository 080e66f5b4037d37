"""SQL statements of the patch and tract searches, answered from the overlap relations.

``find_ccds(patch=...)``, ``find_ccds(tract=...)``, ``find_patches(ccd=...)`` and
``find_tracts(ccd=...)`` need no geometry at query time: ingest stores every (CCD, tile) pair
whose polygons overlap (``ccd_patch_overlap``, ``ccd_tract_overlap``, decided by the same exact
test the pixel path applies; see :mod:`skyreg.schema.overlaps`). So each statement here is one
index-only range scan of a relation, for the id of the stored key: the relations store each
CCD's key too (the lookups of the other rows are only made for the columns asked for); the rows
have the same columns as the candidate statements of
:mod:`skyreg.search.statements` (key, then the extras asked for) minus the polygon, which no
exact test needs any more.

These are builders taking only the statement's shape; nothing is composed on import and
:func:`skyreg.search.sql.compiled` compiles each shape once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    FromClause,
    Select,
    Table,
    Text,
    bindparam,
    select,
)

from skyreg.schema import ccd, ccd_patch_overlap, ccd_tract_overlap, patch, tract
from skyreg.search.columns import ColumnSpec
from skyreg.search.statements import (
    CcdFilters,
    ccd_statement,
    restrict_tiles,
    tile_columns,
)


@dataclass(frozen=True)
class _Kind:
    """One kind of tile: its table, its relation with CCDs, and its key."""

    table: Table
    relation: Table
    id_column: str
    keys: tuple[str, ...]


def _kind(name: str) -> _Kind:
    # A function, not a module constant, so that importing this module builds nothing.
    if name == "patch":
        return _Kind(patch, ccd_patch_overlap, "patch_id", ("skymap", "tract", "patch"))
    if name == "tract":
        return _Kind(tract, ccd_tract_overlap, "tract_id", ("skymap", "tract"))
    raise ValueError(f"no overlap relation for {name!r}")


def _key_param(name: str) -> Any:
    return bindparam(name, type_=Text if name in ("skymap", "instrument") else BigInteger)


def _overlap(relation: Table, inner: bool) -> ColumnElement[bool]:
    return relation.c.inner_overlap if inner else relation.c.outer_overlap


def ccds_of_tile(kind: str, inner: bool, filters: CcdFilters,
                 extras: tuple[ColumnSpec, ...] = ()) -> Select[Any]:
    """CCDs overlapping one patch or tract (``kind``): key, then ``extras``.

    Parameters: the tile's key (``skymap``, ``tract``[, ``patch``]), those of ``filters`` and
    ``dataset_type`` for file columns, as :func:`skyreg.search.statements.ccd_candidates`.
    An unknown tile selects no id, hence no rows.
    """
    tiles = _kind(kind)
    relation = tiles.relation
    tile_id = select(tiles.table.c[tiles.id_column]).where(
        *(tiles.table.c[name] == _key_param(name) for name in tiles.keys))
    # The relation holds each CCD's key: ``ccd`` is joined only for footprint columns.
    source: FromClause = relation
    if any(spec.source == "ccd" for spec in extras):
        source = relation.join(ccd, ccd.c.ccd_id == relation.c.ccd_id)
    return ccd_statement(source, [relation.c[tiles.id_column] == tile_id.scalar_subquery(),
                                  _overlap(relation, inner)], filters, extras, polygon=False,
                         keys=relation)


def tiles_of_ccd(kind: str, by_skymap: bool, inner: bool,
                 extras: tuple[ColumnSpec, ...] = ()) -> Select[Any]:
    """Patches or tracts (``kind``) overlapping one CCD: key, then ``extras``.

    Parameters: ``instrument``, ``visit``, ``detector``; ``skymaps`` (text array) with
    ``by_skymap``. An unknown CCD selects no id, hence no rows.
    """
    tiles = _kind(kind)
    relation, table = tiles.relation, tiles.table
    ccd_id = select(ccd.c.ccd_id).where(
        *(ccd.c[name] == _key_param(name) for name in ("instrument", "visit", "detector")))
    statement = (
        select(*tile_columns(table, tiles.keys, extras))
        .select_from(relation.join(table, table.c[tiles.id_column] == relation.c[tiles.id_column]))
        .where(relation.c.ccd_id == ccd_id.scalar_subquery(), _overlap(relation, inner))
    )
    return restrict_tiles(statement, table, by_skymap)
