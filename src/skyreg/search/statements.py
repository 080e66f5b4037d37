"""SQL statements of the spatial searches, composed with SQLAlchemy Core.

Every spatial query has the same two steps, both here in one statement: the pixel ranges of the
query region select candidate ids from a ``*_pixel`` table (a B-tree range scan per range, joined
against ``unnest(lo, hi)`` so one statement serves any number of ranges), and the candidates'
keys, the extra columns asked for (``columns=``) and the encoded polygons come back for the exact
test done by :mod:`skyreg.search.exact`. The polygon is always the last column.

These are builders: nothing is composed when the module is imported. Each builder takes only
the statement's *shape* (hashable), so :func:`skyreg.search.sql.compiled` compiles it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Double,
    FromClause,
    Select,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY

from skyreg.schema import (
    ccd,
    ccd_dataset,
    ccd_pixel,
    patch,
    patch_pixel,
    tract,
    tract_pixel,
    visit,
)
from skyreg.search.columns import ColumnSpec


@dataclass(frozen=True)
class CcdFilters:
    """Which non-spatial restrictions a CCD search applies (values are bound parameters).

    Only the *shape* of the filter is part of the statement, so a handful of statements serve
    every query and each is compiled and prepared once.
    """

    instrument: bool = False
    band: bool = False
    time: bool = False


def range_table(lo: str, hi: str, name: str) -> Any:
    """The half-open ranges bound as the bigint arrays ``lo`` and ``hi``, as a table
    ``name (lo, hi)``: one statement serves any number of ranges."""
    return (func.unnest(bindparam(lo, type_=ARRAY(BigInteger)),
                        bindparam(hi, type_=ARRAY(BigInteger)))
            .table_valued("lo", "hi").render_derived(name=name))


def candidate_ids(pixel_table: object, id_column: str) -> ColumnElement[bool]:
    """Array of ids whose pixel rows fall into any of the bound half-open ranges [lo, hi).

    Returned as ``ARRAY(subquery)`` to compare with ``= ANY(...)``: the planner then fetches
    candidates by primary key, whereas ``IN (subquery)`` with its pessimistic estimate for
    range conditions on bind parameters chose a sequential scan of the footprint table.

    The subquery is ordered by id: each footprint sits in several pixels, and the index scan
    sorts and deduplicates the array before probing. A tuple sort of the ids is cheaper than
    that array sort (which calls the comparison function through fmgr), and the array sort
    only checks that an ordered array is ordered (2.0 ms less per 16,000 pixel rows).
    Hash-based DISTINCT or GROUP BY was slower: the planner's estimate of the range join
    (millions of rows) makes it size the hash table for that.
    """
    pixels = pixel_table.c  # type: ignore[attr-defined]
    ranges = range_table("lo", "hi", "r")
    ids = (
        select(pixels[id_column])
        .select_from(ranges)
        .join(pixel_table, and_(pixels.pix >= ranges.c.lo, pixels.pix < ranges.c.hi))  # type: ignore[arg-type]
        .order_by(pixels[id_column])
    )
    return any_(func.array(ids.scalar_subquery()))


def ccd_candidates(filters: CcdFilters, extras: tuple[ColumnSpec, ...] = ()) -> Select[Any]:
    """CCDs with a pixel in the bound ranges that pass ``filters``: key, ``extras``, polygon.

    Parameters: ``lo``, ``hi`` (pixel ranges), and per filter ``instruments``/``bands``
    (text arrays) and ``mjd_start``/``mjd_end`` (visits whose exposure overlaps the span).
    File columns among ``extras`` (``uri``, ...) are those of the bound ``dataset_type``'s
    file of each CCD, NULL for a CCD without one (an outer join on the archive's primary key).
    Visit values (filters, extra columns) and files are looked up per candidate by primary
    key, never by joining whole tables.
    """
    return ccd_statement(ccd, [ccd.c.ccd_id == candidate_ids(ccd_pixel, "ccd_id")], filters,
                         extras, polygon=True)


def ccd_candidate_columns(filters: CcdFilters) -> Select[Any]:
    """The candidates of :func:`ccd_candidates` without extra columns, as columns: one row
    per instrument, ``(instrument, keys, regions)``.

    ``keys`` concatenates, per CCD, its visit and detector (int8, network order) and the
    length of its encoded polygon (int4), 20 bytes each; ``regions`` concatenates the
    polygons in the same order (the two aggregates of one group see its rows in one order).
    Two values per instrument instead of a row per candidate: the rows, their values and
    their Python objects were most of the time of a cone search with thousands of
    candidates. Parameters as :func:`ccd_candidates`.
    """
    rows = ccd_candidates(filters)
    record = (func.int8send(ccd.c.visit).op("||")(func.int8send(ccd.c.detector))
              .op("||")(func.int4send(func.octet_length(ccd.c.region))))
    empty: ColumnElement[Any] = literal_column("''::bytea")
    return rows.with_only_columns(
        ccd.c.instrument,
        func.string_agg(record, empty).label("keys"),
        func.string_agg(ccd.c.region, empty).label("regions"),
        maintain_column_froms=False,
    ).group_by(ccd.c.instrument)


def ccd_rows_by_id(filters: CcdFilters, extras: tuple[ColumnSpec, ...]) -> Select[Any]:
    """The CCDs of the bound ``ids`` (the survivors of an exact test) that pass ``filters``:
    key and ``extras``. Parameters as :func:`ccd_candidates`, ``ids`` for the pixel ranges."""
    return ccd_statement(ccd, [ccd.c.ccd_id == any_(bindparam("ids", type_=ARRAY(BigInteger)))],
                         filters, extras, polygon=False)


def ccd_statement(source: FromClause, where: list[ColumnElement[bool]], filters: CcdFilters,
                  extras: tuple[ColumnSpec, ...], *, polygon: bool,
                  keys: FromClause | None = None) -> Select[Any]:
    """CCD rows from ``source`` (``ccd``, or a join holding it) meeting ``where`` and
    ``filters``: key, ``extras``, and the polygon with ``polygon``. Every CCD search builds its
    statement here, so all apply the filters and fetch the extras the same way.

    ``keys`` is the table of ``source`` whose ``instrument``, ``visit`` and ``detector`` are
    the CCD key (default ``ccd``; an overlap relation stores them too, so that ``source`` need
    not join ``ccd`` unless a footprint column is asked for).

    Parameters as :func:`ccd_candidates` (without the pixel ranges).
    """
    key = (keys if keys is not None else ccd).c
    sources = {spec.source for spec in extras}
    # Visit values of each row by primary key (a LATERAL kept apart by OFFSET 0), for the
    # filters and the extra columns alike: a plain join let the planner hash the whole visit
    # table for every query.
    fields = [*(["band"] if filters.band else []),
              *(["mjd_tai_start", "mjd_tai_end"] if filters.time else []),
              *(spec.stored for spec in extras if spec.source == "visit")]
    visit_columns: Any = None
    if fields:
        visit_columns = (
            select(*(visit.c[field] for field in dict.fromkeys(fields)))
            .where(visit.c.instrument == key.instrument, visit.c.visit == key.visit)
            .offset(literal_column("0")).lateral("visit_values"))
    file_columns: Any = None
    if "file" in sources:
        # The CCD's file of the bound dataset type, by the archive's primary key (NULLs for a
        # CCD without one); LATERAL + OFFSET 0 again, so the archive is never scanned.
        file_columns = (
            select(*(ccd_dataset.c[spec.stored] for spec in extras if spec.source == "file"))
            .where(ccd_dataset.c.dataset_type == bindparam("dataset_type", type_=Text),
                   ccd_dataset.c.instrument == key.instrument,
                   ccd_dataset.c.visit == key.visit, ccd_dataset.c.detector == key.detector)
            .offset(literal_column("0")).lateral("file_values"))
    tables: dict[str, Any] = {"visit": visit_columns, "ccd": ccd, "file": file_columns}
    statement = select(key.instrument, key.visit, key.detector,
                       *(tables[spec.source].c[spec.stored].label(spec.name) for spec in extras),
                       *([ccd.c.region] if polygon else [])).select_from(source).where(*where)
    conditions: list[ColumnElement[bool]] = []
    if filters.instrument:
        conditions.append(key.instrument == any_(text_array("instruments")))
    if visit_columns is not None:
        statement = statement.join(visit_columns, true())
    if file_columns is not None:
        statement = statement.outerjoin(file_columns, true())
    if filters.band:
        conditions.append(visit_columns.c.band == any_(text_array("bands")))
    if filters.time:
        conditions.append(visit_columns.c.mjd_tai_end >= bindparam("mjd_start", type_=Double))
        conditions.append(visit_columns.c.mjd_tai_start <= bindparam("mjd_end", type_=Double))
    return statement.where(and_(true(), *conditions))


def text_array(name: str) -> BindParameter[Any]:
    """A bound text array, compared with ``= ANY(...)``."""
    return bindparam(name, type_=ARRAY(Text))


def _tile_candidates(tiles: Table, pixels: Table, id_column: str, keys: tuple[str, ...],
                     by_skymap: bool, inner: bool, extras: tuple[ColumnSpec, ...]
                     ) -> Select[Any]:
    """Patches or tracts with a pixel in the bound ranges: key, ``extras``, chosen polygon.

    The index is built from outer polygons (plus, where it sticks out, the inner one), so the
    same pixel rows serve searches with either polygon.
    """
    region = tiles.c.inner_region if inner else tiles.c.outer_region
    statement = select(*tile_columns(tiles, keys, extras), region).where(
        tiles.c[id_column] == candidate_ids(pixels, id_column)
    )
    return restrict_tiles(statement, tiles, by_skymap)


def tile_columns(tiles: Table, keys: tuple[str, ...], extras: tuple[ColumnSpec, ...]
                 ) -> list[ColumnElement[Any]]:
    """The columns of a patch or tract row: its key, then ``extras``."""
    return [*(tiles.c[key] for key in keys),
            *(tiles.c[spec.stored].label(spec.name) for spec in extras)]


def restrict_tiles(statement: Select[Any], tiles: Table, by_skymap: bool) -> Select[Any]:
    """``statement`` limited to the bound ``skymaps`` (text array) with ``by_skymap``."""
    if by_skymap:
        statement = statement.where(tiles.c.skymap == any_(text_array("skymaps")))
    return statement


def patch_candidates(by_skymap: bool, inner: bool, extras: tuple[ColumnSpec, ...] = ()
                     ) -> Select[Any]:
    """Patches (skymap, tract, patch, extras..., polygon) for the bound pixel ranges."""
    return _tile_candidates(patch, patch_pixel, "patch_id", ("skymap", "tract", "patch"),
                            by_skymap, inner, extras)


def tract_candidates(by_skymap: bool, inner: bool, extras: tuple[ColumnSpec, ...] = ()
                     ) -> Select[Any]:
    """Tracts (skymap, tract, extras..., polygon) for the bound pixel ranges."""
    return _tile_candidates(tract, tract_pixel, "tract_id", ("skymap", "tract"), by_skymap,
                            inner, extras)


def ccd_region() -> Select[tuple[bytes]]:
    """The encoded footprint of one CCD (parameters ``instrument``, ``visit``, ``detector``)."""
    return select(ccd.c.region).where(
        ccd.c.instrument == bindparam("instrument", type_=Text),
        ccd.c.visit == bindparam("visit", type_=BigInteger),
        ccd.c.detector == bindparam("detector", type_=BigInteger),
    )


def _tile_region(tiles: Table, keys: tuple[str, ...], inner: bool) -> Select[tuple[bytes]]:
    """The encoded inner or outer polygon of one patch or tract, selected by its key."""
    region = tiles.c.inner_region if inner else tiles.c.outer_region
    return select(region).where(*(
        tiles.c[key] == bindparam(key, type_=Text if key == "skymap" else BigInteger)
        for key in keys
    ))


def patch_region(inner: bool) -> Select[tuple[bytes]]:
    """The encoded inner or outer polygon of one patch (``skymap``, ``tract``, ``patch``)."""
    return _tile_region(patch, ("skymap", "tract", "patch"), inner)


def tract_region(inner: bool) -> Select[tuple[bytes]]:
    """The encoded inner or outer polygon of one tract (``skymap``, ``tract``)."""
    return _tile_region(tract, ("skymap", "tract"), inner)
