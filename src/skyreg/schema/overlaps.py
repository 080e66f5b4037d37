"""Filling the overlap relations (``ccd_patch_overlap``, ``ccd_tract_overlap``).

A (CCD, tile) pair belongs to a relation when sphgeom's ``ConvexPolygon.overlaps`` says the
CCD's footprint overlaps the tile's outer or inner polygon — the predicate the searches
applied to every candidate before the relations existed, so answers do not change.

Every ingest goes through the loader, which in its transaction computes the pairs of the new
CCDs with every tile (stored or new) and of the new tiles with the CCDs stored before — so a
sky map registered after the CCDs gets its pairs, and so do CCDs ingested after the sky map,
and a re-run that inserts nothing adds nothing. The new CCDs' pairs come from the loader's own
pixels and polygons (:class:`Shapes`): candidates are the (CCD, tile) pairs sharing a pixel
(covers are conservative, so overlapping footprints share one), joined with a :class:`TileSet`
and decided by :func:`chunk_pairs` on the ingest's worker processes, while the loader copies
its rows; the new tiles' pairs with stored CCDs are joined on the server
(:func:`stored_ccd_pairs`). Once every kind is staged the loader lays the rows out with the ids
the new rows will get (:func:`prepare_overlaps`), each pair with its CCD's key (the relations
store it, so that a patch's CCDs are read without a lookup per CCD), and, after its inserts,
streams them into the relations (:func:`store_overlaps`). The backfilling migration uses
:func:`add_overlaps` on stored rows (ids above :func:`high_water` marks, all of them for a
backfill), candidates from the pixel tables. The exact test runs vectorised
(:mod:`skyreg.geometry.batch_overlap`), sphgeom deciding only the pairs numpy cannot prove.

This module sits below ingest (the migration that backfills existing registries uses it too),
so it talks to the database through the connection it is given and imports no ingest code.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import ConvexPolygon
from psycopg import sql
from sqlalchemy import Connection, Table, func, select, text, true

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
#: Largest pixel range of a tile set given a lookup table (HTM 9 needs 2 M at most).
LOOKUP_SPAN = 1 << 22
#: Relation rows per piece of a COPY (bounds the bytes object built at once).
_COPY_ROWS = 1_000_000

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_COPY_TRAILER = b"\xff\xff"
#: A relation row as revision 0007 created the relations: (tile, CCD id, flags).
_BARE_ROW = np.dtype([("fields", ">i2"), ("len_t", ">i4"), ("tile", ">i8"),
                      ("len_c", ">i4"), ("ccd", ">i8"), ("len_o", ">i4"), ("outer", "u1"),
                      ("len_i", ">i4"), ("inner", "u1")])
#: The COPY column lists of the two layouts (0014 added the CCD key).
_BARE_COLUMNS = ("{tile}", "ccd_id", "outer_overlap", "inner_overlap")
_KEYED_COLUMNS = ("{tile}", "instrument", "visit", "detector", "ccd_id", "outer_overlap",
                  "inner_overlap")


def _keyed_row(instrument: bytes) -> np.dtype[np.void]:
    """A relation row with the CCD key, for one instrument name (a fixed-width text field)."""
    return np.dtype([("fields", ">i2"), ("len_t", ">i4"), ("tile", ">i8"),
                     ("len_n", ">i4"), ("instrument", f"S{len(instrument)}"),
                     ("len_v", ">i4"), ("visit", ">i8"), ("len_d", ">i4"), ("detector", ">i8"),
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
class CcdKeys:
    """The keys (instrument, visit, detector) of some CCDs, column-wise.

    ``instrument[i]`` indexes ``names``: a survey has a handful of instruments and millions of
    CCDs, so the names are stored once.
    """

    names: tuple[str, ...]
    instrument: IntArray
    visit: IntArray
    detector: IntArray

    def __len__(self) -> int:
        return len(self.visit)

    @classmethod
    def concat(cls, parts: Sequence[CcdKeys]) -> CcdKeys:
        """One set of keys from several (their name tables merged)."""
        names = tuple(sorted({name for part in parts for name in part.names}))
        position = {name: i for i, name in enumerate(names)}
        codes = [np.array([position[name] for name in part.names], dtype=np.int64)
                 [part.instrument] if len(part.names) else part.instrument for part in parts]
        empty = np.empty(0, np.int64)
        return cls(names, np.concatenate(codes) if codes else empty,
                   np.concatenate([p.visit for p in parts]) if parts else empty,
                   np.concatenate([p.detector for p in parts]) if parts else empty)


NO_KEYS = CcdKeys((), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64))


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
            keys = _IndexKeys.of(connection, tiles.relation.name) if bulk else None
            if keys is not None:
                keys.drop(connection)
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
            if keys is not None:
                keys.create(connection)
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


@dataclass(frozen=True)
class _IndexKeys:
    """A relation's primary key and indexes as the catalog has them, to drop and rebuild.

    Read from the server rather than from :mod:`skyreg.schema.tables`, because the backfill
    of revision 0007 runs on the relations as that revision created them, not as they are now.
    """

    relation: str
    #: (name, definition) of the primary key, and of every other index.
    primary_key: tuple[str, str]
    indexes: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, connection: Connection, relation: str) -> _IndexKeys:
        table = {"table": relation}
        primary = connection.execute(text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:table AS regclass) AND contype = 'p'"), table).one()
        indexes = connection.execute(text(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index AS i "
            "JOIN pg_class AS c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = CAST(:table AS regclass) AND NOT i.indisprimary "
            "ORDER BY c.relname"), table).all()
        return cls(relation, (str(primary[0]), str(primary[1])),
                   tuple((str(name), str(definition)) for name, definition in indexes))

    def drop(self, connection: Connection) -> None:
        connection.exec_driver_sql(f'ALTER TABLE "{self.relation}" '
                                   f'DROP CONSTRAINT "{self.primary_key[0]}"')
        for name, _ in self.indexes:
            connection.exec_driver_sql(f'DROP INDEX "{name}"')

    def create(self, connection: Connection) -> None:
        name, definition = self.primary_key
        connection.exec_driver_sql(f'ALTER TABLE "{self.relation}" ADD CONSTRAINT "{name}" '
                                   f"{definition}")
        for _, index in self.indexes:
            connection.exec_driver_sql(index)


def _is_keyed(connection: Connection, relation: str) -> bool:
    """Whether the relation stores the CCD key (revision 0014 on), as the catalog says."""
    return bool(connection.execute(text(
        "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = CAST(:table AS regclass) "
        "AND attname = 'instrument' AND NOT attisdropped)"), {"table": relation}).scalar_one())


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
                    tile_ids: IntArray) -> int:
    """Exact test of candidate pairs of stored rows; COPY the overlapping ones into the
    relation (with the CCD keys when it has them: see :class:`_IndexKeys`)."""
    if not len(ccd_ids):
        return 0
    found = _test_candidates(connection, tiles, ccd_ids, tile_ids,
                             _stored(ccd, "ccd_id", ("region",)),
                             _stored(tiles.table, tiles.id_column, _TILE_COLUMNS))
    ccds: IntArray | PairCcds = found.ccd_refs
    if _is_keyed(connection, tiles.relation.name):
        distinct = _distinct(found.ccd_refs)
        ccds = PairCcds(distinct, stored_ccd_keys(connection, distinct),
                        np.searchsorted(distinct, found.ccd_refs))
    _copy_rows(connection, tiles, _overlap_rows(found.tile_refs, found.outer, found.inner, ccds,
                                                ordered=True))
    return len(found)


def stored_ccd_keys(connection: Connection, ids: IntArray) -> CcdKeys:
    """The keys of stored CCDs, in the order of ``ids`` (sorted, distinct; all must exist)."""
    if not len(ids):
        return NO_KEYS
    # One bytea of big-endian (id, visit, detector) per instrument: a handful of values to
    # transfer, read by numpy, instead of a row object per CCD (millions for a sky map
    # registered after a survey's CCDs). Never prepared, as in _regions.
    statement = sql.SQL(
        "SELECT instrument, string_agg(int8send(ccd_id) || int8send(visit) "
        "|| int8send(detector), '') FROM {} WHERE ccd_id = ANY(CAST(%s AS bigint[])) "
        "GROUP BY instrument ORDER BY instrument").format(sql.Identifier(ccd.name))
    with _driver(connection).cursor(binary=True) as cursor:  # type: ignore[attr-defined]
        rows = cursor.execute(statement, ["{" + ",".join(ids.astype(str).tolist()) + "}"],
                              prepare=False).fetchall()
    names = tuple(str(row[0]) for row in rows)
    parts = [np.frombuffer(row[1], dtype=">i8").reshape(-1, 3).astype(np.int64) for row in rows]
    values = np.concatenate(parts)
    codes = np.repeat(np.arange(len(parts), dtype=np.int64), [len(part) for part in parts])
    order = np.argsort(values[:, 0], kind="stable")
    if len(order) != len(ids) or not np.array_equal(values[order, 0], ids):
        raise LookupError("overlap pairs name CCD ids that are not stored")
    return CcdKeys(names, codes[order], values[order, 1].copy(), values[order, 2].copy())


@dataclass(frozen=True)
class PairCcds:
    """The CCDs of some pairs: each distinct CCD once (``ids`` and ``keys`` row by row) and,
    per pair, its CCD's row there. A survey's patch pairs name each CCD ~8 times: ordering and
    packing work on the CCDs once, the pairs only gather."""

    ids: IntArray
    keys: CcdKeys
    rows: IntArray


def _overlap_rows(tile_ids: IntArray, outer: BoolArray, inner: BoolArray,
                  ccds: IntArray | PairCcds, ordered: bool) -> list[npt.NDArray[np.void]]:
    """Relation rows in binary COPY format (without header and trailer), in pieces.

    ``ccds``: the CCD id of each pair (a relation without the CCD key, as revision 0007
    created it), or the pairs' CCDs with their keys; then there is one piece per instrument,
    whose name has one width within it, and each piece's rows are in the primary key's order
    (tile, visit, detector) whenever the keys pack into one integer (:func:`_packed_order`,
    nearly always), else only when ``ordered`` (B-tree inserts into a relation with indexes).
    A relation filled in key order builds its primary key without sorting: PostgreSQL's sort
    finds presorted input in one pass (measured on 14 M pairs: 19 s instead of 36 s).
    """
    if not isinstance(ccds, PairCcds):
        ccd_ids = ccds
        if ordered:
            by_key = np.lexsort((ccd_ids, tile_ids))
            tile_ids, ccd_ids, outer, inner = (tile_ids[by_key], ccd_ids[by_key], outer[by_key],
                                               inner[by_key])
        rows = np.empty(len(tile_ids), dtype=_BARE_ROW)
        rows["fields"], rows["len_t"], rows["len_c"], rows["len_o"], rows["len_i"] = 4, 8, 8, 1, 1
        rows["tile"], rows["ccd"] = tile_ids, ccd_ids
        rows["outer"], rows["inner"] = outer, inner
        return [rows]
    if not len(tile_ids):
        return []
    # Codes in the order of the names' bytes, which is text order in the C collation.
    names = sorted(ccds.keys.names)
    renamed = np.array([names.index(name) for name in ccds.keys.names], dtype=np.int64)
    table_codes = renamed[ccds.keys.instrument]
    packed = _packed_order(tile_ids, outer, inner, ccds, table_codes)
    if packed is not None:
        codes, tile_ids, table_rows, outer, inner = packed
    else:
        table_rows = ccds.rows
        codes = table_codes[table_rows]
        order: IntArray | None = None
        if ordered:
            order = np.lexsort((ccds.keys.detector[table_rows], ccds.keys.visit[table_rows],
                                tile_ids, codes))
        elif len(names) > 1:
            order = np.argsort(codes, kind="stable")
        if order is not None:
            codes, tile_ids, table_rows = codes[order], tile_ids[order], table_rows[order]
            outer, inner = outer[order], inner[order]
    bounds = np.flatnonzero(np.diff(codes)) + 1
    pieces = []
    for first, last in itertools.pairwise([0, *bounds.tolist(), len(codes)]):
        at = table_rows[first:last]
        name = names[int(codes[first])].encode()
        rows = np.empty(last - first, dtype=_keyed_row(name))
        rows["fields"], rows["len_t"], rows["len_n"], rows["len_v"] = 7, 8, len(name), 8
        rows["len_d"], rows["len_c"], rows["len_o"], rows["len_i"] = 8, 8, 1, 1
        rows["tile"], rows["instrument"] = tile_ids[first:last], name
        rows["visit"], rows["detector"] = ccds.keys.visit[at], ccds.keys.detector[at]
        rows["ccd"] = ccds.ids[at]
        rows["outer"], rows["inner"] = outer[first:last], inner[first:last]
        pieces.append(rows)
    return pieces


def _packed_order(tile_ids: IntArray, outer: BoolArray, inner: BoolArray, ccds: PairCcds,
                  table_codes: IntArray
                  ) -> tuple[IntArray, IntArray, IntArray, BoolArray, BoolArray] | None:
    """(instrument code, tile, CCD table row, outer, inner) of the pairs in key order
    (instrument, tile, visit, detector), or None when that order does not pack into 63 bits.

    Each pair becomes one integer — instrument code, tile id, the rank of its CCD's
    (instrument, visit, detector) among the CCDs, and its two flags — and one sort of plain
    integers orders them all: 0.4 s for 14 M pairs where a three-key ``np.lexsort`` took 14.5 s
    and an ``argsort`` 2.5 s. The CCDs themselves (an eighth as many) are ranked by a sort of
    their own packed keys.
    """
    by_key = _ccd_order(ccds.keys, table_codes)
    if by_key is None or int(tile_ids.min()) < 0:
        return None
    code_bits = int(table_codes.max()).bit_length()
    tile_bits = int(tile_ids.max()).bit_length()
    rank_bits = max(len(by_key) - 1, 1).bit_length()
    if code_bits + tile_bits + rank_bits + 2 > 63:
        return None
    rank = np.empty(len(by_key), dtype=np.int64)
    rank[by_key] = np.arange(len(by_key), dtype=np.int64)
    rows = ccds.rows
    key = table_codes[rows] << (tile_bits + rank_bits + 2)
    key |= tile_ids << (rank_bits + 2)
    key |= rank[rows] << 2
    key |= outer.astype(np.int64) << 1
    key |= inner.astype(np.int64)
    key.sort()
    return (key >> (tile_bits + rank_bits + 2), (key >> (rank_bits + 2)) & ((1 << tile_bits) - 1),
            by_key[(key >> 2) & ((1 << rank_bits) - 1)], (key & 2).astype(bool),
            (key & 1).astype(bool))


def _ccd_order(keys: CcdKeys, codes: IntArray) -> IntArray | None:
    """The CCD table's rows in (instrument code, visit, detector) order, sorting one packed
    integer per CCD; None when the three do not pack into 63 bits."""
    if not len(keys):
        return np.empty(0, np.int64)
    visit = keys.visit - int(keys.visit.min())
    detector = keys.detector - int(keys.detector.min())
    visit_bits = int(visit.max()).bit_length()
    detector_bits = int(detector.max()).bit_length()
    if int(codes.max()).bit_length() + visit_bits + detector_bits > 63:
        return None
    packed = (codes << (visit_bits + detector_bits)) | (visit << detector_bits) | detector
    return np.argsort(packed).astype(np.int64)


def _copy_rows(connection: Connection, tiles: Tiles, pieces: Sequence[npt.NDArray[np.void]],
               freeze: bool = False) -> None:
    """COPY rows of :func:`_overlap_rows` into the relation of ``tiles``; ``freeze``: the
    relation was created or truncated in this transaction (COPY FREEZE)."""
    if not pieces:
        return
    keyed = pieces[0].dtype.names is not None and "instrument" in pieces[0].dtype.names
    columns = [name.format(tile=tiles.id_column)
               for name in (_KEYED_COLUMNS if keyed else _BARE_COLUMNS)]
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY{})").format(
        sql.Identifier(tiles.relation.name),
        sql.SQL(", ").join(sql.Identifier(name) for name in columns),
        sql.SQL(", FREEZE") if freeze else sql.SQL(""))
    with _driver(connection).cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
        copy.write(_COPY_HEADER)
        for rows in pieces:
            for start in range(0, len(rows), _COPY_ROWS):
                copy.write(rows[start:start + _COPY_ROWS].tobytes())
        copy.write(_COPY_TRAILER)


# -- pairs of rows the loader has staged but not inserted yet --------------------------------


#: Encoded polygons of some staged rows: called with their row numbers and a column name.
PolygonsOf = Callable[[IntArray, str], Sequence[bytes]]


@dataclass(frozen=True)
class Shapes:
    """The new rows of one kind the loader has staged, in staging order (``row_no``).

    Row ``i`` owns the pixels ``pixels[offsets[i]:offsets[i + 1]]``; ``polygons`` gives the
    encoded polygons of any of the rows (``region`` of a CCD, ``outer_region`` and
    ``inner_region`` of a tile). Until ids are handed out a new row is referred to as
    ``-(row_no + 1)``. Everything stays in the client's memory: nothing is read back from
    the staging tables.
    """

    count: int
    pixels: IntArray
    offsets: IntArray
    polygons: PolygonsOf


@dataclass(frozen=True)
class TileSet:
    """The tiles of one kind that new CCDs may overlap, ready for the exact test.

    ``refs[k]`` is tile ``k``'s id (stored) or ``-(row_no + 1)`` (staged); ``pix`` is every
    pixel row of these tiles, sorted, and ``owner`` the tile of each.
    """

    kind: str
    refs: IntArray
    outer: batch_overlap.PolygonArrays
    inner: batch_overlap.PolygonArrays
    #: The inner polygon may not lie within the outer one (then both are always tested).
    sticks_out: BoolArray
    pix: IntArray
    owner: IntArray
    #: ``pix[starts[p - base]:starts[p - base + 1]]`` are the rows of pixel ``p`` (a lookup
    #: table instead of two binary searches per CCD pixel), when the pixel range is small.
    starts: IntArray | None = None
    base: int = 0

    def __len__(self) -> int:
        return len(self.refs)

    def rows_of(self, pixels: IntArray) -> tuple[IntArray, IntArray]:
        """(first row in ``pix``, number of rows) of each pixel."""
        if self.starts is None:
            low = np.searchsorted(self.pix, pixels, side="left")
            return low, np.searchsorted(self.pix, pixels, side="right") - low
        span = len(self.starts) - 2  # the last bucket is empty: pixels out of range
        at = pixels - self.base
        at[(at < 0) | (at >= span)] = span
        low = self.starts[at]
        return low, self.starts[at + 1] - low


@dataclass(frozen=True)
class Pairs:
    """Overlapping (tile, CCD) pairs, by reference (ids, or ``-(row_no + 1)`` if staged)."""

    tile_refs: IntArray
    ccd_refs: IntArray
    outer: BoolArray
    inner: BoolArray

    def __len__(self) -> int:
        return len(self.tile_refs)

    @classmethod
    def concat(cls, parts: Sequence[Pairs]) -> Pairs:
        if not parts:
            return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, bool),
                       np.empty(0, bool))
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("tile_refs", "ccd_refs", "outer", "inner")))


def _owners(offsets: IntArray) -> IntArray:
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))


def distinct_pixels(shapes: Shapes) -> IntArray:
    """Every pixel some staged row touches, once."""
    return _distinct(shapes.pixels)


def tile_set(connection: Connection, tiles: Tiles, new: Shapes | None,
             ccd_pixels: IntArray | None) -> TileSet:
    """The stored tiles sharing a pixel with ``ccd_pixels`` (the new CCDs' distinct pixels;
    None: the tile table is known to be empty) and the staged ones (``new``).

    A sky map of a survey's footprint is small; of a full-sky map only the tiles under the new
    CCDs are fetched.
    """
    refs: list[IntArray] = []
    outer: list[bytes] = []
    inner: list[bytes] = []
    pix: list[IntArray] = []
    owner: list[IntArray] = []
    if ccd_pixels is not None and len(ccd_pixels):
        statement = sql.SQL("SELECT {id}, pix FROM {table} WHERE pix = ANY(CAST(%s AS bigint[]))"
                            ).format(id=sql.Identifier(tiles.id_column),
                                     table=sql.Identifier(tiles.pixels.name))
        rows = _fetch_pairs(connection, statement,
                            "{" + ",".join(ccd_pixels.astype(str).tolist()) + "}")
        if len(rows):
            ids = _distinct(rows[:, 0])
            found, (outer_blobs, inner_blobs) = _regions(
                connection, _stored(tiles.table, tiles.id_column, _TILE_COLUMNS), _TILE_COLUMNS,
                ids)
            refs.append(found)
            outer.extend(outer_blobs)
            inner.extend(inner_blobs)
            pix.append(rows[:, 1])
            owner.append(np.searchsorted(found, rows[:, 0]))
    if new is not None and new.count:
        rows_new = np.arange(new.count, dtype=np.int64)
        keep = np.ones(new.count, dtype=bool)
        tile_pix, tile_rows = new.pixels, _owners(new.offsets)
        if ccd_pixels is not None:
            # Only the tiles under the new CCDs can overlap them (a full-sky map is big).
            touched = np.isin(tile_pix, ccd_pixels)
            keep[:] = False
            keep[tile_rows[touched]] = True
            tile_pix, tile_rows = tile_pix[touched], tile_rows[touched]
        chosen = rows_new[keep]
        position = np.cumsum(keep) - 1 + sum(len(r) for r in refs)
        refs.append(-(chosen + 1))
        outer.extend(new.polygons(chosen, "outer_region"))
        inner.extend(new.polygons(chosen, "inner_region"))
        pix.append(tile_pix)
        owner.append(position[tile_rows])
    all_pix = np.concatenate(pix) if pix else np.empty(0, np.int64)
    all_owner = np.concatenate(owner) if owner else np.empty(0, np.int64)
    order = np.argsort(all_pix, kind="stable")
    all_pix = all_pix[order]
    starts, base = None, 0
    if len(all_pix) and int(all_pix[-1]) - int(all_pix[0]) < LOOKUP_SPAN:
        base = int(all_pix[0])
        starts = np.zeros(int(all_pix[-1]) - base + 3, dtype=np.int64)
        np.cumsum(np.bincount(all_pix - base, minlength=len(starts) - 1), out=starts[1:])
    decode = ConvexPolygon.decode
    sticks_out = np.array([not decode(o).contains(decode(i))
                           for o, i in zip(outer, inner, strict=True)], dtype=bool)
    return TileSet(tiles.kind, np.concatenate(refs) if refs else np.empty(0, np.int64),
                   batch_overlap.PolygonArrays.from_encoded(outer),
                   batch_overlap.PolygonArrays.from_encoded(inner), sticks_out,
                   all_pix, all_owner[order].astype(np.int64), starts, base)


def _fetch_pairs(connection: Connection, statement: sql.Composable, *params: object
                 ) -> IntArray:
    """The (a, b) bigint rows of a statement, as one bytea of big-endian pairs read by numpy."""
    query = sql.SQL("SELECT coalesce(string_agg(int8send(a) || int8send(b), ''), '') "
                    "FROM ({}) AS s(a, b)").format(statement)
    with _driver(connection).cursor(binary=True) as cursor:  # type: ignore[attr-defined]
        data = cursor.execute(query, list(params) or None, prepare=False).fetchone()[0]
    return np.frombuffer(data, dtype=">i8").reshape(-1, 2).astype(np.int64)


_TILE_COLUMNS = ("outer_region", "inner_region")


def exact_flags(ccds: batch_overlap.PolygonArrays, ccd_rows: IntArray,
                tiles: TileSet, tile_rows: IntArray) -> tuple[BoolArray, BoolArray]:
    """(overlaps the outer polygon, overlaps the inner polygon) of candidate pairs."""
    outer_hit = batch_overlap.overlaps(ccds, ccd_rows, tiles.outer, tile_rows)
    # The inner polygon lies within the outer one for nearly every tile: then a CCD missing
    # the outer polygon misses the inner one too, and only outer hits need the inner test.
    ask = np.flatnonzero(outer_hit | tiles.sticks_out[tile_rows])
    inner_hit = np.zeros(len(ccd_rows), dtype=bool)
    inner_hit[ask] = batch_overlap.overlaps(ccds, ccd_rows[ask], tiles.inner, tile_rows[ask])
    return outer_hit, inner_hit


def chunk_pairs(ccds: Shapes, tile_sets: Sequence[TileSet], start: int, stop: int
                ) -> list[Pairs]:
    """The overlapping pairs of staged CCD rows ``start .. stop - 1`` with each tile set.

    Candidates are the (CCD, tile) pairs sharing a pixel (covers are conservative, so every
    overlapping pair shares one), joined with two binary searches into the sorted tile pixels;
    the exact test decides them. Pure numpy and sphgeom: worker processes run it.
    """
    offsets = ccds.offsets[start:stop + 1]
    flat = ccds.pixels[offsets[0]:offsets[-1]]
    owners = _owners(offsets - offsets[0])
    rows = np.arange(start, stop, dtype=np.int64)
    polygons = batch_overlap.PolygonArrays.from_encoded(ccds.polygons(rows, "region"))
    found: list[Pairs] = []
    for tiles in tile_sets:
        low, count = tiles.rows_of(flat)
        total = int(count.sum())
        if not total:
            found.append(Pairs.concat([]))
            continue
        within = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        width = np.int64(len(tiles))
        keys = _distinct(np.repeat(owners, count) * width
                         + tiles.owner[np.repeat(low, count) + within])
        ccd_rows, tile_rows = keys // width, keys % width
        outer_hit, inner_hit = exact_flags(polygons, ccd_rows, tiles, tile_rows)
        keep = np.flatnonzero(outer_hit | inner_hit)
        found.append(Pairs(tiles.refs[tile_rows[keep]], -(ccd_rows[keep] + start + 1),
                           outer_hit[keep], inner_hit[keep]))
    return found


@dataclass(frozen=True)
class Staging:
    """One kind's staging tables on the server: ``rows`` (``row_no`` and the footprint
    columns) and ``pixels`` (``row_no``, ``pix``); rows ``0 .. new - 1`` are new."""

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


def stored_ccd_pairs(connection: Connection, tiles: Tiles, staging: Staging) -> Pairs:
    """The pairs of the staged new tiles of one kind with the CCDs stored before.

    A sky map registered after the CCDs: as many CCD pixel rows as the registry holds, so the
    candidate join runs on the server, in rounds of :data:`PAIRS_PER_ROUND`.
    """
    found: list[Pairs] = []
    joins = [(sql.SQL("SELECT pix, ccd_id AS ref FROM {}").format(
        sql.Identifier(ccd_pixel.name)), _staged_pixels(staging), sql.SQL("true"))]
    tile_source = _staged_rows(staging, _stored(tiles.table, tiles.id_column, _TILE_COLUMNS),
                               _TILE_COLUMNS)
    for ccd_ids, tile_refs in _pairs(connection, joins):
        found.append(_test_candidates(connection, tiles, ccd_ids, tile_refs,
                                      _stored(ccd, "ccd_id", ("region",)), tile_source))
    return Pairs.concat(found)


def _test_candidates(connection: Connection, tiles: Tiles, ccd_ids: IntArray,
                     tile_refs: IntArray, ccd_source: sql.Composable,
                     tile_source: sql.Composable) -> Pairs:
    found_ccds, (ccd_blobs,) = _regions(connection, ccd_source, ("region",), _distinct(ccd_ids))
    found_tiles, (outer_blobs, inner_blobs) = _regions(connection, tile_source, _TILE_COLUMNS,
                                                       _distinct(tile_refs))
    decode = ConvexPolygon.decode
    tile_set = TileSet(
        tiles.kind, found_tiles, batch_overlap.PolygonArrays.from_encoded(outer_blobs),
        batch_overlap.PolygonArrays.from_encoded(inner_blobs),
        np.array([not decode(o).contains(decode(i))
                  for o, i in zip(outer_blobs, inner_blobs, strict=True)], dtype=bool),
        np.empty(0, np.int64), np.empty(0, np.int64))
    tile_rows = np.searchsorted(found_tiles, tile_refs)
    outer_hit, inner_hit = exact_flags(batch_overlap.PolygonArrays.from_encoded(ccd_blobs),
                                       np.searchsorted(found_ccds, ccd_ids), tile_set,
                                       tile_rows)
    keep = np.flatnonzero(outer_hit | inner_hit)
    return Pairs(tile_refs[keep], ccd_ids[keep], outer_hit[keep], inner_hit[keep])


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



@dataclass(frozen=True)
class Prepared:
    """One relation's new rows, laid out for a binary COPY (:func:`prepare_overlaps`)."""

    tiles: Tiles
    rows: list[npt.NDArray[np.void]]
    #: The relation is empty: truncate it, COPY FREEZE, build its keys afterwards.
    bulk: bool


def prepare_overlaps(connection: Connection, first_ids: dict[str, int],
                     pairs: dict[str, Pairs], new_ccds: CcdKeys) -> list[Prepared]:
    """The relation rows of computed pairs, given the ids the new rows will get
    (``first_ids[kind] + row_no``) and the keys of the new CCDs (by ``row_no``; those of
    stored CCDs are read): everything but the COPY itself, so that the loader does it before
    its inserts take the locks that block readers."""
    prepared = []
    # Pairs of new tiles with CCDs stored before (a sky map registered after them) need
    # those CCDs' keys: read once for both relations.
    stored_ids = _distinct(np.concatenate([np.empty(0, np.int64)] + [
        found.ccd_refs[found.ccd_refs >= 0] for found in pairs.values()]))
    stored = stored_ccd_keys(connection, stored_ids)
    # One table of the CCDs the pairs name: the new ones by row_no, then the stored ones.
    count = len(new_ccds)
    table_ids = np.concatenate([first_ids.get("ccd", 0) + np.arange(count, dtype=np.int64),
                                stored_ids])
    table_keys = CcdKeys.concat([new_ccds, stored]) if len(stored) else new_ccds
    for tiles in TILES:
        found = pairs.get(tiles.kind)
        if found is None or not len(found):
            continue
        tile_ids = _resolve(found.tile_refs, first_ids.get(tiles.kind, 0))
        rows = -found.ccd_refs - 1
        old = np.flatnonzero(found.ccd_refs >= 0)
        rows[old] = count + np.searchsorted(stored_ids, found.ccd_refs[old])
        bulk = _is_empty(connection, tiles.relation)
        prepared.append(Prepared(tiles, _overlap_rows(
            tile_ids, found.outer, found.inner, PairCcds(table_ids, table_keys, rows),
            ordered=not bulk), bulk))
    return prepared


def store_overlaps(connection: Connection, prepared: Sequence[Prepared],
                   timings: dict[str, float] | None = None) -> None:
    """Store prepared relation rows: one binary COPY per relation.

    Into an empty relation (a registry's first load) the relation is truncated in this
    transaction first, which lets the COPY freeze its rows (``FREEZE``: no hint-bit writes,
    pages all-visible at once, so the index-only scans of the searches need no VACUUM pass
    over them first) and, on a server with ``wal_level = minimal`` (the embedded one), skip
    the WAL; its keys are then built once afterwards.
    """
    for item in prepared:
        started = time.perf_counter()
        relation = item.tiles.relation
        keys = _IndexKeys.of(connection, relation.name) if item.bulk else None
        if keys is not None:
            connection.execute(text(f'TRUNCATE "{relation.name}"'))
            keys.drop(connection)
        _copy_rows(connection, item.tiles, item.rows, freeze=item.bulk)
        copied = time.perf_counter()
        if keys is not None:
            keys.create(connection)
        if timings is not None:
            kind = item.tiles.kind
            timings[f"insert overlaps {kind}: copy"] = copied - started
            timings[f"insert overlaps {kind}: indexes"] = time.perf_counter() - copied


def _resolve(refs: IntArray, first_id: int) -> IntArray:
    """Ids of references: a stored id as is, staged row ``-(ref + 1)`` as ``first_id + row``."""
    return np.where(refs < 0, first_id - refs - 1, refs)
