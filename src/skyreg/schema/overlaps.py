"""Filling the overlap relations (``ccd_patch_overlap``, ``ccd_tract_overlap``).

A (CCD, tile) pair belongs to a relation when sphgeom's ``ConvexPolygon.overlaps`` says the
CCD's footprint overlaps the tile's outer or inner polygon — the predicate the searches
applied to every candidate before the relations existed, so answers do not change.

The loader (every ingest) calls :func:`stage_overlaps` in its transaction once every kind is
staged and before anything is inserted, and :func:`insert_staged_overlaps` after its inserts:
the pairs of the new CCDs with every tile (stored or new), and of the new tiles with the CCDs
stored before, are computed — so a sky map registered after the CCDs gets its pairs, and so
do CCDs ingested after the sky map, and a re-run that inserts nothing adds nothing. The
backfilling migration uses :func:`add_overlaps` on stored rows (ids above :func:`high_water`
marks, all of them for a backfill). Candidates come from the pixel tables (two footprints that
overlap share a pixel, since covers are conservative); the exact test runs vectorised
(:mod:`skyreg.geometry.batch_overlap`), sphgeom deciding only the pairs numpy cannot prove.

This module sits below ingest (the migration that backfills existing registries uses it too),
so it talks to the database through the connection it is given and imports no ingest code.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import ConvexPolygon
from psycopg import sql
from sqlalchemy import Connection, Table, func, select, text, true
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex

from skyreg.geometry import batch_overlap
from skyreg.schema.tables import (
    ccd,
    ccd_patch_overlap,
    ccd_pixel,
    ccd_tract_overlap,
    patch,
    patch_pixel,
    tract,
    tract_pixel,
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Candidate pairs tested per round (bounds the client's memory on huge backfills).
PAIRS_PER_ROUND = 2_000_000

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_COPY_TRAILER = b"\xff\xff"
_OVERLAP_ROW = np.dtype([("fields", ">i2"), ("len_t", ">i4"), ("tile", ">i8"),
                         ("len_c", ">i4"), ("ccd", ">i8"), ("len_o", ">i4"), ("outer", "u1"),
                         ("len_i", ">i4"), ("inner", "u1")])


@dataclass(frozen=True)
class Tiles:
    """One kind of tile and its relation."""

    kind: str
    table: Table
    pixels: Table
    relation: Table
    id_column: str


TILES = (
    Tiles("patch", patch, patch_pixel, ccd_patch_overlap, "patch_id"),
    Tiles("tract", tract, tract_pixel, ccd_tract_overlap, "tract_id"),
)


@dataclass(frozen=True)
class HighWater:
    """The largest ids stored before a write: rows with larger ids are the write's own.

    Ids come from identity sequences, drawn only under the ingest lock, so every row a write
    adds has an id above the marks taken when it started.
    """

    ccd: int
    patch: int
    tract: int

    def of(self, kind: str) -> int:
        return int(getattr(self, kind))


NOTHING_STORED = HighWater(0, 0, 0)


def high_water(connection: Connection) -> HighWater:
    """The marks to pass to :func:`add_overlaps` after this transaction's inserts."""
    marks = connection.execute(select(*(
        select(func.coalesce(func.max(column), 0)).scalar_subquery()
        for column in (ccd.c.ccd_id, patch.c.patch_id, tract.c.tract_id)))).one()
    return HighWater(int(marks[0]), int(marks[1]), int(marks[2]))


def add_overlaps(connection: Connection, since: HighWater,
                 timings: dict[str, float] | None = None) -> dict[str, int]:
    """Add the pairs of rows stored after ``since`` (see the module docstring).

    Returns the number of pairs added per tile kind.
    """
    now = high_water(connection)
    added: dict[str, int] = {}
    for tiles in TILES:
        started = time.perf_counter()
        new_ccds, new_tiles = now.ccd > since.ccd, now.of(tiles.kind) > since.of(tiles.kind)
        count = 0
        if new_ccds or new_tiles:
            # Into an empty relation (a registry's first load, a backfill), drop the indexes
            # and build each once afterwards: a sort instead of a B-tree descent per pair.
            bulk = _is_empty(connection, tiles.relation)
            if bulk:
                _drop_indexes(connection, tiles.relation)
                # A first load's tables were filled in this transaction, so the planner's
                # statistics still call them empty: without fresh ones the candidate join
                # became a nested loop over sequential scans.
                for table in (ccd_pixel, tiles.pixels, ccd, tiles.table):
                    connection.execute(text(f'ANALYZE "{table.name}"'))
            steps = {"candidates": 0.0, "exact test and copy": 0.0, "indexes": 0.0}
            clock = time.perf_counter()
            for ccd_ids, tile_ids in _candidates(connection, tiles, since, new_ccds, new_tiles):
                steps["candidates"] += time.perf_counter() - clock
                clock = time.perf_counter()
                count += _test_and_store(connection, tiles, ccd_ids, tile_ids)
                steps["exact test and copy"] += time.perf_counter() - clock
                clock = time.perf_counter()
            if bulk:
                _create_indexes(connection, tiles.relation)
                steps["indexes"] = time.perf_counter() - clock
            if timings is not None:
                timings.update({f"overlaps {tiles.kind}: {k}": v for k, v in steps.items()})
        added[tiles.kind] = count
        if timings is not None:
            timings[f"overlaps {tiles.kind}"] = time.perf_counter() - started
    return added


def _is_empty(connection: Connection, relation: Table) -> bool:
    """Whether the relation holds no row and this session may rebuild its indexes (owner)."""
    if connection.execute(select(true()).select_from(relation).limit(1)).first() is not None:
        return False
    owns = text("SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class "
                "WHERE oid = CAST(:name AS regclass)")
    return bool(connection.execute(owns, {"name": relation.name}).scalar_one())


def _drop_indexes(connection: Connection, relation: Table) -> None:
    assert relation.primary_key.name is not None
    connection.execute(DropConstraint(relation.primary_key))
    for index in sorted(relation.indexes, key=lambda index: str(index.name)):
        connection.execute(DropIndex(index))


def _create_indexes(connection: Connection, relation: Table) -> None:
    connection.execute(AddConstraint(relation.primary_key))
    for index in sorted(relation.indexes, key=lambda index: str(index.name)):
        connection.execute(CreateIndex(index))


def _driver(connection: Connection) -> object:
    return connection.connection.driver_connection


def _candidates(connection: Connection, tiles: Tiles, since: HighWater, new_ccds: bool,
                new_tiles: bool) -> Iterator[tuple[IntArray, IntArray]]:
    """Distinct (ccd_id, tile_id) sharing a pixel, new CCDs with any tile, new tiles with the
    CCDs stored before; in rounds of at most :data:`PAIRS_PER_ROUND` pairs."""
    ccd_pixels = sql.SQL("SELECT pix, ccd_id AS ref FROM {}").format(
        sql.Identifier(ccd_pixel.name))
    tile_pixels = sql.SQL("SELECT pix, {} AS ref FROM {}").format(
        sql.Identifier(tiles.id_column), sql.Identifier(tiles.pixels.name))
    joins: list[tuple[sql.Composable, sql.Composable, sql.Composable]] = []
    if new_ccds:
        joins.append((ccd_pixels, tile_pixels, sql.SQL("c.ref > {}").format(
            sql.Literal(since.ccd))))
    if new_tiles:
        joins.append((ccd_pixels, tile_pixels, sql.SQL("t.ref > {} AND c.ref <= {}").format(
            sql.Literal(since.of(tiles.kind)), sql.Literal(since.ccd))))
    yield from _pairs(connection, joins)


def _pairs(connection: Connection,
           joins: Sequence[tuple[sql.Composable, sql.Composable, sql.Composable]]
           ) -> Iterator[tuple[IntArray, IntArray]]:
    """Distinct (CCD ref, tile ref) of CCD and tile pixel sources sharing a pixel."""
    if not joins:
        return
    parts = [sql.SQL("SELECT DISTINCT c.ref, t.ref FROM ({}) AS c JOIN ({}) AS t "
                     "ON t.pix = c.pix WHERE {}").format(ccds, tiles, where)
             for ccds, tiles, where in joins]
    # One bytea of big-endian (CCD, tile) pairs: a single value to transfer and one numpy
    # view to read, instead of a message and a Python object per pair.
    query = sql.SQL("SELECT coalesce(string_agg(int8send(a) || int8send(b), ''), '') "
                    "FROM ({}) AS pairs(a, b)").format(sql.SQL(" UNION ALL ").join(parts))
    with _driver(connection).cursor(binary=True) as cursor:  # type: ignore[attr-defined]
        data = cursor.execute(query).fetchone()[0]
    pairs = np.frombuffer(data, dtype=">i8").reshape(-1, 2).astype(np.int64)
    ccd_ids, tile_ids = pairs[:, 0].copy(), pairs[:, 1].copy()
    for start in range(0, len(pairs), PAIRS_PER_ROUND):
        yield ccd_ids[start:start + PAIRS_PER_ROUND], tile_ids[start:start + PAIRS_PER_ROUND]


def _regions(connection: Connection, source: sql.Composable, columns: tuple[str, ...],
             ids: IntArray) -> tuple[IntArray, list[list[bytes]]]:
    """(sorted refs, encoded polygons per column in that order) of the given rows.

    ``source`` yields ``ref`` and the columns: a stored table's id, or a staged row's
    negative reference (see :class:`Staging`).
    """
    # The ids go as one text literal of an array: psycopg adapts a long Python list element
    # by element, numpy formats it at once. Never prepared: after a few executions psycopg
    # would prepare the statement and PostgreSQL could switch to a generic plan, where the
    # array is no constant, ``= ANY`` is not hashed and every row scans the whole id list
    # (quadratic: a 10,000-visit first ingest sat in this statement for many minutes).
    statement = sql.SQL("SELECT ref, {columns} FROM ({source}) AS s "
                        "WHERE ref = ANY(CAST(%s AS bigint[])) ORDER BY ref").format(
        source=source, columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    with _driver(connection).cursor(binary=True) as cursor:  # type: ignore[attr-defined]
        rows = cursor.execute(statement, ["{" + ",".join(ids.astype(str).tolist()) + "}"],
                              prepare=False).fetchall()
    found = np.array([row[0] for row in rows], dtype=np.int64)
    return found, [[bytes(row[k + 1]) for row in rows] for k in range(len(columns))]


def _stored(table: Table, id_column: str, columns: tuple[str, ...]) -> sql.Composable:
    return sql.SQL("SELECT {id} AS ref, {columns} FROM {table}").format(
        id=sql.Identifier(id_column), table=sql.Identifier(table.name),
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns))


def _distinct(ids: IntArray) -> IntArray:
    """Sorted distinct ids (a sort and a mask: cheaper here than ``np.unique``'s hashing)."""
    ordered = np.sort(ids)
    keep = np.ones(len(ordered), dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]


def _test_and_store(connection: Connection, tiles: Tiles, ccd_ids: IntArray,
                    tile_ids: IntArray, ccd_source: sql.Composable | None = None,
                    tile_source: sql.Composable | None = None, target: str | None = None
                    ) -> int:
    """Exact test of candidate pairs; COPY the overlapping ones into the relation (or into
    ``target``, with the sources of staged rows)."""
    if not len(ccd_ids):
        return 0
    tile_columns = ("outer_region", "inner_region")
    found_ccds, (ccd_blobs,) = _regions(
        connection, ccd_source or _stored(ccd, "ccd_id", ("region",)), ("region",),
        _distinct(ccd_ids))
    found_tiles, (outer_blobs, inner_blobs) = _regions(
        connection, tile_source or _stored(tiles.table, tiles.id_column, tile_columns),
        tile_columns, _distinct(tile_ids))
    ccd_rows = np.searchsorted(found_ccds, ccd_ids)
    tile_rows = np.searchsorted(found_tiles, tile_ids)
    ccds = batch_overlap.PolygonArrays.from_encoded(ccd_blobs)
    outer = batch_overlap.PolygonArrays.from_encoded(outer_blobs)
    inner = batch_overlap.PolygonArrays.from_encoded(inner_blobs)
    outer_hit = batch_overlap.overlaps(ccds, ccd_rows, outer, tile_rows)
    # The inner polygon lies within the outer one for nearly every tile: then a CCD missing
    # the outer polygon misses the inner one too, and only outer hits need the inner test.
    sticks_out = np.array([not ConvexPolygon.decode(o).contains(ConvexPolygon.decode(i))
                           for o, i in zip(outer_blobs, inner_blobs, strict=True)], dtype=bool)
    ask = np.flatnonzero(outer_hit | sticks_out[tile_rows])
    inner_hit = np.zeros(len(ccd_ids), dtype=bool)
    inner_hit[ask] = batch_overlap.overlaps(ccds, ccd_rows[ask], inner, tile_rows[ask])
    keep = np.flatnonzero(outer_hit | inner_hit)
    order = keep[np.lexsort((ccd_ids[keep], tile_ids[keep]))]  # B-tree inserts in key order
    _copy_overlaps(connection, target or tiles.relation.name, tile_ids[order], ccd_ids[order],
                   outer_hit[order], inner_hit[order])
    return len(order)


def _copy_overlaps(connection: Connection, relation: str, tile_ids: IntArray,
                   ccd_ids: IntArray, outer: BoolArray, inner: BoolArray) -> None:
    """Binary COPY of relation rows, built as one numpy structured array."""
    rows = np.empty(len(tile_ids), dtype=_OVERLAP_ROW)
    rows["fields"], rows["len_t"], rows["len_c"], rows["len_o"], rows["len_i"] = 4, 8, 8, 1, 1
    rows["tile"], rows["ccd"] = tile_ids, ccd_ids
    rows["outer"], rows["inner"] = outer, inner
    statement = sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(sql.Identifier(relation))
    with _driver(connection).cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
        copy.write(_COPY_HEADER)
        copy.write(rows.tobytes())
        copy.write(_COPY_TRAILER)


# -- pairs of rows the loader has staged but not inserted yet --------------------------------


@dataclass(frozen=True)
class Staging:
    """One kind's rows staged by the loader: ``rows`` (a temporary table with ``row_no`` and
    the footprint columns) and ``pixels`` (``row_no``, ``pix``); rows ``0 .. new - 1`` are
    new. Until their ids are handed out a new row is referred to as ``-(row_no + 1)``."""

    rows: str
    pixels: str
    new: int


def _staged_pixels(staging: Staging) -> sql.Composable:
    return sql.SQL("SELECT pix, -(row_no + 1) AS ref FROM {}").format(
        sql.Identifier(staging.pixels))


def _staged_rows(staging: Staging, stored: sql.Composable, columns: tuple[str, ...]
                 ) -> sql.Composable:
    return sql.SQL("SELECT -(row_no + 1) AS ref, {columns} FROM {rows} WHERE row_no < {new} "
                   "UNION ALL {stored}").format(
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        rows=sql.Identifier(staging.rows), new=sql.Literal(staging.new), stored=stored)


def _pending(tiles: Tiles) -> str:
    return f"pending_{tiles.relation.name}"


def stage_overlaps(connection: Connection, staged: dict[str, Staging],
                   timings: dict[str, float] | None = None) -> dict[str, int]:
    """Compute the pairs of staged CCDs and tiles before anything is inserted.

    The pairs go to a temporary table per relation, with staged rows referred to by
    ``-(row_no + 1)``; :func:`insert_staged_overlaps` stores them once the ids are handed
    out. This runs before the loader's inserts, whose index rebuilds take locks that block
    readers: the geometry must not run under those.
    """
    ccd_new = staged.get("ccd")
    counts: dict[str, int] = {}
    for staging in staged.values():
        connection.execute(text(f'ANALYZE "{staging.pixels}"'))
    for tiles in TILES:
        started = time.perf_counter()
        tile_new = staged.get(tiles.kind)
        connection.execute(text(
            f'CREATE TEMPORARY TABLE "{_pending(tiles)}" (tile_ref bigint, ccd_ref bigint, '
            f'outer_overlap boolean, inner_overlap boolean) ON COMMIT DROP'))
        stored_ccds = sql.SQL("SELECT pix, ccd_id AS ref FROM {}").format(
            sql.Identifier(ccd_pixel.name))
        stored_tiles = sql.SQL("SELECT pix, {} AS ref FROM {}").format(
            sql.Identifier(tiles.id_column), sql.Identifier(tiles.pixels.name))
        # Stored CCDs join on the server (see _client_pairs), staged ones in the client.
        joins: list[tuple[sql.Composable, sql.Composable, sql.Composable]] = []
        client: list[tuple[sql.Composable, sql.Composable]] = []
        if ccd_new is not None:
            client.append((_staged_pixels(ccd_new), stored_tiles))
        if tile_new is not None:
            joins.append((stored_ccds, _staged_pixels(tile_new), sql.SQL("true")))
        if ccd_new is not None and tile_new is not None:
            client.append((_staged_pixels(ccd_new), _staged_pixels(tile_new)))
        ccd_source = _stored(ccd, "ccd_id", ("region",))
        if ccd_new is not None:
            ccd_source = _staged_rows(ccd_new, ccd_source, ("region",))
        tile_columns = ("outer_region", "inner_region")
        tile_source = _stored(tiles.table, tiles.id_column, tile_columns)
        if tile_new is not None:
            tile_source = _staged_rows(tile_new, tile_source, tile_columns)
        count = 0
        for ccd_refs, tile_refs in itertools.chain(_pairs(connection, joins),
                                                   _client_pairs(connection, client)):
            count += _test_and_store(connection, tiles, ccd_refs, tile_refs, ccd_source,
                                     tile_source, _pending(tiles))
        counts[tiles.kind] = count
        if timings is not None:
            timings[f"overlaps {tiles.kind}"] = time.perf_counter() - started
    return counts


def _client_pairs(connection: Connection, joins: Sequence[tuple[sql.Composable, sql.Composable]]
                  ) -> Iterator[tuple[IntArray, IntArray]]:
    """:func:`_pairs` of (staged CCD pixels, tile pixels) sources, joined by the client.

    On the server the distinct pairs of a batch's pixel join cost a hash join and a hash
    aggregate over every shared pixel (~2.8 candidate rows per distinct pair) plus a
    function call per pair. The staged CCDs' pixel rows are bounded by the batch, so they
    and the tiles' pixel rows sharing a pixel with them come over by binary COPY, and numpy
    joins them (a sort, two binary searches) and drops duplicate pairs. Joins of the stored
    CCDs (a sky map registered after them: as many pixel rows as the registry holds) stay on
    the server.
    """
    for ccd_source, tile_source in joins:
        tile_pix, tile_refs = _fetch_pixels(connection, sql.SQL(
            "SELECT pix, ref FROM ({tiles}) AS t WHERE pix IN (SELECT pix FROM ({ccds}) AS c)"
        ).format(tiles=tile_source, ccds=ccd_source))
        if not len(tile_pix):
            continue
        ccd_pix, ccd_refs = _fetch_pixels(connection, ccd_source)
        yield from join_pixels(ccd_pix, ccd_refs, tile_pix, tile_refs, PAIRS_PER_ROUND)


def _fetch_pixels(connection: Connection, source: sql.Composable) -> tuple[IntArray, IntArray]:
    """(pix, ref) of a source's rows, as one bytea of big-endian pairs read by numpy.

    (A binary COPY out sends a message per row, which psycopg hands over one by one.)
    """
    statement = sql.SQL("SELECT coalesce(string_agg(int8send(pix) || int8send(ref), ''), '') "
                        "FROM ({}) AS s").format(source)
    with _driver(connection).cursor(binary=True) as cursor:  # type: ignore[attr-defined]
        data = cursor.execute(statement).fetchone()[0]
    rows = np.frombuffer(data, dtype=">i8").reshape(-1, 2).astype(np.int64)
    return rows[:, 0].copy(), rows[:, 1].copy()


def join_pixels(ccd_pix: IntArray, ccd_refs: IntArray, tile_pix: IntArray, tile_refs: IntArray,
                budget: int) -> Iterator[tuple[IntArray, IntArray]]:
    """Distinct (CCD ref, tile ref) sharing a pixel, in rounds of about ``budget`` shared
    pixels (at most one CCD's more; rounds split between CCDs, so no pair comes twice)."""
    if not len(ccd_pix):
        return
    ccd_values, ccd_dense = np.unique(ccd_refs, return_inverse=True)
    tile_values, tile_dense = np.unique(tile_refs, return_inverse=True)
    by_pix = np.argsort(tile_pix, kind="stable")
    sorted_pix = tile_pix[by_pix]
    by_ccd = np.argsort(ccd_dense, kind="stable")
    ccd_dense, ccd_pix = ccd_dense[by_ccd], ccd_pix[by_ccd]
    low = np.searchsorted(sorted_pix, ccd_pix, side="left")
    matches = np.searchsorted(sorted_pix, ccd_pix, side="right") - low
    ends = np.cumsum(matches)
    # Rounds start at a CCD's first pixel row, about every ``budget`` shared pixels.
    firsts = np.flatnonzero(np.r_[True, ccd_dense[1:] != ccd_dense[:-1]])
    spent = np.r_[0, ends][firsts]
    marks = np.arange(budget, int(ends[-1]), budget)
    holders = np.searchsorted(spent, marks, side="right") - 1
    cuts = np.unique(np.r_[0, firsts[holders], len(ccd_pix)]).tolist()
    width = np.int64(len(tile_values))
    for first, last in itertools.pairwise(cuts):
        count = matches[first:last]
        total = int(count.sum())
        if not total:
            continue
        rows = np.repeat(np.arange(first, last), count)
        within = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        tiles = tile_dense[by_pix[low[rows] + within]]
        keys = _distinct(ccd_dense[rows] * width + tiles)
        yield ccd_values[keys // width], tile_values[keys % width]


def insert_staged_overlaps(connection: Connection, first_ids: dict[str, int],
                           counts: dict[str, int]) -> None:
    """Store the pairs :func:`stage_overlaps` computed, now that new rows have ids
    (``first_ids[kind] + row_no``): one INSERT ... SELECT per relation."""
    def ref(column: str, kind: str) -> sql.Composable:
        first = sql.Literal(first_ids.get(kind, 0))
        return sql.SQL("CASE WHEN {c} < 0 THEN {first} - {c} - 1 ELSE {c} END").format(
            c=sql.Identifier(column), first=first)

    for tiles in TILES:
        if not counts.get(tiles.kind):
            continue
        bulk = _is_empty(connection, tiles.relation)
        if bulk:
            _drop_indexes(connection, tiles.relation)
        statement = sql.SQL(
            "INSERT INTO {relation} ({tile_id}, ccd_id, outer_overlap, inner_overlap) "
            "SELECT {tile}, {ccd}, outer_overlap, inner_overlap FROM {pending}{order}").format(
            relation=sql.Identifier(tiles.relation.name),
            tile_id=sql.Identifier(tiles.id_column), tile=ref("tile_ref", tiles.kind),
            ccd=ref("ccd_ref", "ccd"), pending=sql.Identifier(_pending(tiles)),
            order=sql.SQL("") if bulk else sql.SQL(" ORDER BY 1, 2"))
        with _driver(connection).cursor() as cursor:  # type: ignore[attr-defined]
            cursor.execute(statement)
        if bulk:
            _create_indexes(connection, tiles.relation)
