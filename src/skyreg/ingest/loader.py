"""Database stage of ingest: COPY into staging tables, refuse conflicts, insert what is new.

Everything runs in one transaction that first takes an advisory lock, so that

* nothing of a run is visible unless all of it is (a crash or an error rolls back everything),
* concurrent ingests queue up instead of racing: the second one finds the first one's rows and
  inserts nothing (no duplicates, no unique-violation failures),
* re-ingesting the same input inserts nothing and consumes no id sequence values.

The transaction has two steps. **Staging**, kind by kind (parents first): find which input
rows are stored already (their keys, copied into a small table, joined with the target's
unique index), compute pixel coverage for the new rows only, COPY all rows into a staging
table — the new ones first, in spatial order — and refuse conflicts and unknown parents.
**Inserting**: each kind's new rows are the first ``new`` rows of its staging table, so the
insert is a plain ``INSERT ... SELECT ... WHERE row_no < new``. It never joins the table it
fills: an anti-join against the target reads a table that grows while the statement runs,
and with statistics that call the target empty (a fresh registry, or the empty tables a
rolled-back run leaves once vacuumed) the planner makes that a nested loop over a sequential
scan, re-reading the growing table once per staged row.

A load into an empty table (the first bulk load of a registry) drops the pixel index and the
foreign keys and re-creates them after the insert: one sort and one validating join instead of
a B-tree descent and a trigger call per row. That DDL takes ``ACCESS EXCLUSIVE`` locks (on the
parent tables too, for the foreign keys), which block readers until the commit, so it happens
only in the inserting step, after every COPY and all client-side work: readers wait for the
inserts and index builds, nothing else.

A client killed mid-run must not leave its backend running (and holding the ingest lock) until
its statement ends: the session checks its client connection every
:data:`CLIENT_CHECK_INTERVAL` (``client_connection_check_interval``, PostgreSQL 14+), and TCP
keepalives make a vanished client host show up as a closed connection. A statement or idle
timeout would not do: the statements of a big load legitimately run for minutes.
"""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import sql
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    Connection,
    Double,
    Engine,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    and_,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.schema import AddConstraint, Constraint, CreateIndex, DropConstraint, DropIndex
from sqlalchemy.types import TypeEngine

from skyreg.db.binary_copy import COPY_HEADER, COPY_TRAILER, Columns, encoded_polygons
from skyreg.db.binary_copy import Column as BinaryColumn
from skyreg.db.machine_memory import usable_memory
from skyreg.errors import ConflictError, InputError, InputErrors
from skyreg.ingest.footprints import PixelSets
from skyreg.ingest.overlap_jobs import OverlapJobs
from skyreg.ingest.report import KindCount
from skyreg.schema import overlaps
from skyreg.schema.tables import ccd_pixel

#: Key of the advisory lock that serialises ingest transactions.
INGEST_LOCK_KEY = 0x736B7972_65670002
#: work_mem and maintenance_work_mem of the ingest transaction (sorts, joins, index builds).
BULK_WORK_MEM = "256MB"
#: maintenance_work_mem of the ingest transaction on a server elsewhere: index builds of bulk
#: loads sort in memory.
BULK_MAINTENANCE_MEM = "1GB"
#: ... and the most it may be raised to on a server on this machine (see _maintenance_memory).
LOCAL_MAINTENANCE_MEM_MAX = 4 * 2**30
#: How often the server checks, while a statement runs, that the ingest client is still there.
CLIENT_CHECK_INTERVAL = "1s"
#: TCP keepalive of the ingest session (idle seconds, interval, probes): a client host that
#: vanished without closing its connection is noticed after about a minute.
TCP_KEEPALIVES = ("30", "10", "3")

Progress = Callable[[str, int, int], None]
Rows = Sequence[Sequence[Any]] | Columns
#: Pixels of some rows of a batch: called with their row numbers (indices into ``rows``).
PixelsOf = Callable[[npt.NDArray[np.int64]], PixelSets]
#: Sort keys of some rows of a batch, called likewise.
SortKeysOf = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.int64]]


@dataclass
class Batch:
    """Rows of one kind to load into ``target`` (in ``columns`` order), plus pixel coverage."""

    kind: str
    target: Table
    key: tuple[str, ...]
    columns: tuple[str, ...]
    #: Row tuples in ``columns`` order, or the same data column-wise (fast COPY).
    rows: Rows
    pixel_table: Table | None = None
    id_column: str | None = None
    #: Pixels per row, or a function that computes those of the given rows: it is asked only
    #: for rows that are not stored yet, so a re-run does no pixel work for them.
    pixels: PixelSets | PixelsOf | None = None
    source: str = ""
    #: Columns that must equal the stored row's for an existing key (None: all but the key).
    compare: tuple[str, ...] | None = None
    #: Sort new rows by their first pixel before inserting (False: already in spatial order).
    spatial_order: bool = True
    #: For rows without pixels of their own: a per-row key to store them in (e.g. the first
    #: pixel of the footprint they belong to), so that they too sit in spatial order; or a
    #: function that gives the keys of the given rows.
    sort_key: npt.NDArray[np.int64] | SortKeysOf | None = None


@dataclass(frozen=True)
class Reference:
    """A batch column group that must name a row of ``parent`` (checked before insert)."""

    kind: str
    columns: tuple[str, ...]
    parent: Table
    parent_columns: tuple[str, ...]


@dataclass
class Staged:
    """One batch after staging: what the inserting step needs to know."""

    batch: Batch
    #: All input rows: the ``new`` ones first (row_no 0 .. new - 1, in spatial order), then
    #: those stored already. None for a batch copied straight into its empty target at
    #: insert time (:func:`_copies_directly`).
    table: Table | None
    new: int
    #: (row_no, pix) of the new rows, when the batch has pixels.
    pixel_table: Table | None
    #: The target held no row when staging began (under the ingest lock).
    target_was_empty: bool
    #: Positions in ``batch.rows`` of the new rows, by row_no.
    new_positions: npt.NDArray[np.int64]
    #: Pixels of the new rows (by row_no) of a batch copied straight into its target.
    pixels: PixelSets | None = None


# -- COPY -------------------------------------------------------------------------------------


def _copy_type(column_type: TypeEngine[Any]) -> str:
    """psycopg type name for binary COPY of a column type."""
    if isinstance(column_type, ARRAY):
        return _copy_type(column_type.item_type) + "[]"
    for kind, name in ((BigInteger, "int8"), (SmallInteger, "int2"), (Integer, "int4"),
                       (Double, "float8"), (Text, "text"), (LargeBinary, "bytea"),
                       (JSONB, "jsonb")):
        if isinstance(column_type, kind):
            return name
    raise TypeError(f"no COPY type for {column_type!r}")


def _temporary(name: str, metadata: MetaData, *columns: Column[Any]) -> Table:
    """A temporary table, dropped at commit (or rollback)."""
    return Table(name, metadata, *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")


def _driver(connection: Connection) -> Any:
    driver = connection.connection.driver_connection
    if driver is None:  # only for a closed connection; never inside a transaction
        raise RuntimeError("the ingest connection is closed")
    return driver


#: Exclusive bound of the magnitude of each integer COPY type.
_INTEGER_BOUNDS = {"int2": 2**15, "int4": 2**31, "int8": 2**63}


def _fixed_column(kind: str, values: Sequence[Any] | npt.NDArray[Any]) -> BinaryColumn | None:
    """``values`` as one numpy COPY column of type ``kind``, or None if they have no fixed width.

    None also for anything this would not store exactly as psycopg's row-wise COPY does
    (mixed NULLs, integers out of range, ragged arrays, several strings). A numeric numpy
    array (no NULLs possible) is taken as it is.
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu" and values.ndim == 1 \
            and kind in ("float8", *_INTEGER_BOUNDS):
        return _numeric_column(kind, values)
    # One pass, in C (map with operator.is_; not ==, which numpy values would broadcast).
    nulls = sum(map(operator.is_, values, itertools.repeat(None)))
    if nulls == len(values):
        return BinaryColumn("null")
    if nulls:
        return None
    if kind == "text":
        first = values[0]
        if isinstance(first, str) and all(value == first for value in values):
            return BinaryColumn("text", first)
        return BinaryColumn("texts", list(values)) \
            if all(isinstance(value, str) for value in values) else None
    if kind == "bytea":
        if not all(isinstance(value, bytes) for value in values):
            return None
        blobs = encoded_polygons(list(values))
        return None if blobs is None or blobs.shape[1] == 0 else BinaryColumn("bytea", blobs)
    element = kind.removesuffix("[]")
    if element not in (*_INTEGER_BOUNDS, "float8"):
        return None
    try:
        array = np.asarray(values)
    except ValueError:  # ragged nested lists
        return None
    if array.ndim != (2 if kind.endswith("[]") else 1) or 0 in array.shape:
        return None
    return _numeric_column(kind, array)


def _numeric_column(kind: str, array: npt.NDArray[Any]) -> BinaryColumn | None:
    """A numeric array (1-D, or 2-D for an array type) as a COPY column of type ``kind``;
    None for integers out of the type's range, or floats for an integer type."""
    element = kind.removesuffix("[]")
    if element == "float8":
        return BinaryColumn(kind, array.astype(np.float64)) if array.dtype.kind in "fiu" \
            else None
    bound = _INTEGER_BOUNDS[element]
    if array.dtype.kind not in "iu" or (array.size and (array.min() < -bound
                                                        or array.max() >= bound)):
        return None
    return BinaryColumn(kind, array.astype(np.int64))


def column_rows(target: Table, names: Sequence[str],
                values: Sequence[Sequence[Any] | npt.NDArray[Any]]) -> Rows:
    """A batch's rows given column by column (``values[i]`` for column ``names[i]`` of
    ``target``): numpy COPY columns when every column has a fixed width, else row tuples.

    Batch builders that hold their input as columns use this instead of zipping rows: for
    1.89 M CCDs the row tuples, and turning them back into columns for the COPY, cost ~10 s.
    """
    fixed = _fixed_columns([target.c[name] for name in names], values)
    return fixed if fixed is not None else list(zip(*values, strict=True))


def _column_wise(columns: Sequence[Column[Any]], rows: Sequence[Sequence[Any]]
                 ) -> Columns | None:
    """Row tuples as numpy columns (one ``tobytes`` instead of a ``write_row`` per row).

    None when some column has no fixed width (polygons with different vertex counts, say):
    those rows are copied row by row.
    """
    return _fixed_columns(columns, list(zip(*rows, strict=True))) if rows else None


def _fixed_columns(columns: Sequence[Column[Any]],
                   values: Sequence[Sequence[Any] | npt.NDArray[Any]]) -> Columns | None:
    """Each column's values as a numpy COPY column; None if there are no rows or some
    column has no fixed width."""
    count = len(values[0]) if values else 0
    if not count:
        return None
    fixed = []
    for column, column_values in zip(columns, values, strict=True):
        one = _fixed_column(_copy_type(column.type), column_values)
        if one is None:
            return None
        fixed.append(one)
    return Columns(fixed, count)


def _copy(connection: Connection, table: Table, rows: Rows) -> None:
    """Binary COPY of ``rows`` (tuples, or numpy columns) into all columns of ``table``."""
    _copy_into(connection, table, list(table.columns), rows)
    analyze(connection, table.name)  # temporary tables get no autovacuum


def _copy_into(connection: Connection, table: Table, columns: Sequence[Column[Any]],
               rows: Rows, freeze: bool = False) -> None:
    """Binary COPY of ``rows`` into ``columns`` of ``table`` (``FREEZE``: see
    :func:`_copy_into_empty`)."""
    if not isinstance(rows, Columns):
        rows = _column_wise(columns, rows) or rows
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY{})").format(
        sql.Identifier(table.name),
        sql.SQL(", ").join(sql.Identifier(column.name) for column in columns),
        sql.SQL(", FREEZE" if freeze else ""))
    with _driver(connection).cursor() as cursor, cursor.copy(statement) as copy:
        if isinstance(rows, Columns):
            copy.write(COPY_HEADER)
            for chunk in rows.chunks():
                copy.write(chunk)
            copy.write(COPY_TRAILER)
        else:
            copy.set_types([_copy_type(column.type) for column in columns])
            for row in rows:
                copy.write_row(row)


def _numbered(rows: Rows, positions: Sequence[int] | None = None) -> Rows:
    """``rows`` (or only their columns at ``positions``) with the row number appended."""
    if isinstance(rows, Columns):
        columns = rows.columns if positions is None else [rows.columns[i] for i in positions]
        return Columns([*columns, BinaryColumn("int8", np.arange(len(rows), dtype=np.int64))],
                       len(rows))
    if positions is None:
        return [(*row, number) for number, row in enumerate(rows)]
    return [(*(row[i] for i in positions), number) for number, row in enumerate(rows)]


def _take(rows: Rows, order: npt.NDArray[np.int64]) -> Rows:
    if len(order) == len(rows) and np.array_equal(order, np.arange(len(rows))):
        return rows
    return rows.take(order) if isinstance(rows, Columns) else [rows[i] for i in order]


def analyze(connection: Connection, table_name: str) -> None:
    """Refresh the planner statistics of one table."""
    _driver(connection).execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table_name)))


def vacuum_analyze(connection: Connection, table_name: str) -> None:
    """VACUUM (ANALYZE) one table; needs a connection in autocommit mode."""
    _driver(connection).execute(
        sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table_name)))


# -- staging ----------------------------------------------------------------------------------


def _key_match(a: Any, b: Any, key: Sequence[str]) -> Any:
    return and_(*(a.c[name] == b.c[name] for name in key))


def _describe(key: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in zip(key, values, strict=True))


def _is_empty(connection: Connection, table: Table) -> bool:
    return not connection.execute(select(exists().select_from(table))).scalar_one()


def _stored_rows(connection: Connection, batch: Batch, metadata: MetaData
                 ) -> npt.NDArray[np.int64]:
    """Row numbers (sorted) of the batch rows whose key is stored already.

    Only the keys are copied for this; the target does not change while it is read, and its
    unique index on the key serves the join whatever the statistics say.
    """
    target = batch.target
    probe = _temporary(f"probe_{batch.kind}", metadata,
                       *(Column(name, target.c[name].type) for name in batch.key),
                       Column("row_no", BigInteger))
    probe.create(connection)
    _copy(connection, probe, _numbered(batch.rows, [batch.columns.index(k) for k in batch.key]))
    found = connection.execute(select(probe.c.row_no).where(
        exists().where(_key_match(target, probe, batch.key))).order_by(probe.c.row_no))
    stored = np.array(found.scalars().all(), dtype=np.int64)
    probe.drop(connection)
    metadata.remove(probe)
    return stored


def _pixels_of(batch: Batch, rows: npt.NDArray[np.int64]) -> PixelSets:
    if isinstance(batch.pixels, PixelSets):
        return batch.pixels.take(rows)
    if batch.pixels is None:
        raise TypeError(f"batch {batch.kind} has no pixels")
    return batch.pixels(rows)


def _new_in_order(batch: Batch, new: npt.NDArray[np.int64], with_pixels: bool
                  ) -> tuple[npt.NDArray[np.int64], PixelSets | None]:
    """The new rows in the order to store them, and their pixels if that order needs them.

    Footprints stored in spatial order (by first pixel) put the rows of one patch's CCDs on
    few pages, and ids handed out in that order keep the primary key correlated with the heap.
    """
    if not with_pixels:
        return new, None
    if batch.pixels is not None:
        if not batch.spatial_order:
            return new, None  # already in order: pixels can wait until the rows are copied
        pixels = _pixels_of(batch, new)
        order = np.argsort(pixels.first(), kind="stable")
        return new[order], pixels.take(order)
    if batch.sort_key is not None:
        keys = batch.sort_key[new] if isinstance(batch.sort_key, np.ndarray) \
            else batch.sort_key(new)
        return new[np.argsort(keys, kind="stable")], None
    return new, None


def _refuse_conflicts(connection: Connection, staged: Staged) -> None:
    """Raise ConflictError if a staged row's key is stored with different content."""
    batch, stage = staged.batch, _staging_table(staged)
    compared = [name for name in batch.columns if name not in batch.key] \
        if batch.compare is None else list(batch.compare)
    if not compared or staged.new == len(batch.rows):
        return
    differs = or_(*(stage.c[name].is_distinct_from(batch.target.c[name]) for name in compared))
    statement = (
        select(*(stage.c[name] for name in batch.columns),
               *(batch.target.c[name] for name in compared))
        .select_from(stage.join(batch.target, _key_match(stage, batch.target, batch.key)))
        .where(and_(stage.c.row_no >= staged.new, differs))
        .limit(5)
    )
    rows = connection.execute(statement).all()
    if not rows:
        return
    lines = []
    for row in rows:
        staged_values = dict(zip(batch.columns, row[:len(batch.columns)], strict=True))
        stored = dict(zip(compared, row[len(batch.columns):], strict=True))
        fields = [name for name in compared if staged_values[name] != stored[name]]
        what = "footprint" if any(f.endswith(("region", "_ra", "_dec")) or f in ("ra", "dec")
                                  for f in fields) else "values"
        detail = f"different {what} ({', '.join(fields)})"
        if "hash_sha1_hex" in fields:
            detail = (f"a different definition: stored hash {stored['hash_sha1_hex']}, "
                      f"this input has {staged_values['hash_sha1_hex']}")
        key_values = [staged_values[name] for name in batch.key]
        lines.append(f"{batch.source}: {batch.kind} ({_describe(batch.key, key_values)}) is "
                     f"already registered with {detail}")
    raise ConflictError("\n".join(lines) + "\nnothing was written")


def _refuse_unknown_values(connection: Connection, batch: Batch, new: npt.NDArray[np.int64],
                           ref: Reference, metadata: MetaData, parent_stage: Table | None
                           ) -> None:
    """:func:`_refuse_unknown` for a batch without a staging table: the distinct values its
    new rows refer to are copied into a small probe table, checked the same way."""
    values = _distinct_values(batch, new, ref.columns)
    probe = _temporary(f"probe_{batch.kind}_{ref.parent.name}", metadata,
                       *(Column(name, batch.target.c[name].type) for name in ref.columns),
                       Column("row_no", BigInteger))
    probe.create(connection)
    _copy(connection, probe, [(*row, number) for number, row in enumerate(values)])
    _refuse_unknown(connection, Staged(batch, probe, len(values), None, True, new), ref,
                    parent_stage)
    probe.drop(connection)
    metadata.remove(probe)


def _distinct_values(batch: Batch, positions: npt.NDArray[np.int64],
                     columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """The distinct tuples of ``columns`` over the rows at ``positions``."""
    rows = batch.rows
    at = [batch.columns.index(name) for name in columns]
    if not isinstance(rows, Columns):
        return sorted({tuple(rows[int(i)][j] for j in at) for i in positions}, key=repr)
    if not len(positions):
        return []
    parts = [rows.columns[i] for i in at]
    # Column-wise text and NULL are one value for every row (db.binary_copy.Column).
    shared = [part.kind in ("text", "null") for part in parts]
    arrays = [np.asarray(part.values)[positions]
              for part, same in zip(parts, shared, strict=True) if not same]
    if any(array.ndim != 1 for array in arrays):
        raise TypeError(f"batch {batch.kind}: a reference to array columns {columns}")
    distinct: list[Sequence[Any]]
    if not arrays:
        distinct = [()]
    elif any(array.dtype.kind not in "iuf" for array in arrays):  # texts of each row
        distinct = sorted(set(zip(*(array.tolist() for array in arrays), strict=True)),
                          key=repr)
    else:
        distinct = np.unique(np.stack(arrays, axis=1), axis=0).tolist()
    out = []
    for row in distinct:
        values = iter(row)
        out.append(tuple(part.values if same else next(values)
                         for part, same in zip(parts, shared, strict=True)))
    return out


def _staging_table(staged: Staged) -> Table:
    if staged.table is None:
        raise RuntimeError(f"{staged.batch.kind} rows were copied directly: no staging table")
    return staged.table


def _refuse_unknown(connection: Connection, staged: Staged, ref: Reference,
                    parent_stage: Table | None) -> None:
    """New rows that refer to a parent that is neither stored nor in this input."""
    stage, batch = _staging_table(staged), staged.batch
    unknown = ~exists().where(and_(*(ref.parent.c[p] == stage.c[c] for c, p in
                                     zip(ref.columns, ref.parent_columns, strict=True))))
    if parent_stage is not None:
        unknown = and_(unknown, ~exists().where(and_(*(
            parent_stage.c[p] == stage.c[c]
            for c, p in zip(ref.columns, ref.parent_columns, strict=True)))))
    rows = connection.execute(
        select(*(stage.c[c] for c in ref.columns))
        .where(and_(stage.c.row_no < staged.new, unknown)).distinct().limit(5)
    ).all()
    if rows:
        raise InputErrors([
            InputError(f"{ref.parent.name} ({_describe(ref.parent_columns, row)}) is neither in "
                       f"this manifest nor registered", file=batch.source, field=ref.columns[-1])
            for row in rows
        ])


#: Told the new rows of a batch (positions in ``rows``, in staging order) and their pixels.
PixelsKnown = Callable[[Batch, npt.NDArray[np.int64], PixelSets], None]


def _stage(connection: Connection, batch: Batch, metadata: MetaData,
           parents: dict[str, Table], references: Sequence[Reference], with_pixels: bool,
           timings: dict[str, float], progress: Progress | None,
           pixels_known: PixelsKnown | None = None) -> Staged:
    """Stage one batch (see the module docstring); ``parents``: staging tables by target.

    ``pixels_known`` is called as soon as the new rows' pixels are computed — before their
    COPY when they are stored in spatial order, so that work started then (the overlap pairs)
    runs while the rows are copied.
    """
    started = time.perf_counter()
    count = len(batch.rows)
    empty = _is_empty(connection, batch.target)
    stored = np.empty(0, dtype=np.int64) if empty else _stored_rows(connection, batch, metadata)
    is_new = np.ones(count, dtype=bool)
    is_new[stored] = False
    pixels_started = time.perf_counter()
    new, pixels = _new_in_order(batch, np.flatnonzero(is_new).astype(np.int64), with_pixels)
    pixel_seconds = time.perf_counter() - pixels_started
    if pixels is not None and pixels_known is not None:
        pixels_known(batch, new, pixels)

    def remaining_pixels() -> PixelSets | None:
        """The new rows' pixels, computed now unless ordering them needed them (timed)."""
        nonlocal pixel_seconds
        result = pixels
        if with_pixels and batch.pixels is not None and result is None:
            computing = time.perf_counter()
            result = _pixels_of(batch, new)
            pixel_seconds += time.perf_counter() - computing
            if pixels_known is not None:
                pixels_known(batch, new, result)
        if result is not None:
            timings[f"pixels {batch.kind}"] = pixel_seconds
        return result

    if empty and with_pixels and _copies_directly(connection, batch, references):
        # Nothing to compare against: the rows wait in memory for the insert, once their
        # references are checked.
        for ref in references:
            if ref.kind == batch.kind:
                _refuse_unknown_values(connection, batch, new, ref, metadata,
                                       parents.get(ref.parent.name))
        pixels = remaining_pixels()
        timings[f"stage {batch.kind}"] = time.perf_counter() - started
        return Staged(batch, None, len(new), None, True, new, pixels)

    if progress is not None:
        progress(f"copying {batch.kind}", 0, count)
    columns = [Column(name, batch.target.c[name].type) for name in batch.columns]
    table = _temporary(f"stage_{batch.kind}", metadata, *columns, Column("row_no", BigInteger))
    table.create(connection)
    _copy(connection, table, _numbered(_take(batch.rows, np.concatenate([new, stored]))))
    pixels = remaining_pixels()
    pixel_table = None
    if pixels is not None and len(new):
        pixel_table = _temporary(f"stage_{batch.kind}_pixel", metadata,
                                 Column("row_no", BigInteger), Column("pix", BigInteger))
        pixel_table.create(connection)
        _copy(connection, pixel_table, Columns(
            [BinaryColumn("int8", pixels.owners()), BinaryColumn("int8", pixels.flat)],
            len(pixels.flat)))
    if progress is not None:
        progress(f"copying {batch.kind}", count, count)

    staged = Staged(batch, table, len(new), pixel_table, empty, new)
    _refuse_conflicts(connection, staged)
    for ref in references:
        if ref.kind == batch.kind:
            _refuse_unknown(connection, staged, ref, parents.get(ref.parent.name))
    timings[f"stage {batch.kind}"] = time.perf_counter() - started
    return staged


#: Batches smaller than this are staged even into an empty table: the direct copy's
#: TRUNCATE locks the tables that refer to the target too, which is not worth it for them.
DIRECT_COPY_MIN_ROWS = 10_000


def _copies_directly(connection: Connection, batch: Batch,
                     references: Sequence[Reference]) -> bool:
    """Whether a batch bound for an empty table skips its staging table.

    Staging exists to find stored rows, refuse conflicts and unknown parents, and join new
    tiles with stored CCDs on the server. For a large batch loaded into an empty table that
    this session owns, there are no stored rows to find or conflict with; its references are
    checked from the distinct values it refers to (:func:`_refuse_unknown_values`), and no
    batch may check references against it; for tiles no CCDs may be stored. Its rows are
    then COPYed once, straight into the target (:func:`_copy_into_empty`), instead of into
    a temporary table and again by ``INSERT ... SELECT``.
    """
    target = batch.target
    if len(batch.rows) < DIRECT_COPY_MIN_ROWS or not _owns(connection, target):
        return False
    # A parent of a reference is always staged, so that the checks of its children (staged
    # or direct) find its new rows in its staging table.
    if any(ref.parent is target for ref in references):
        return False
    if target.name in _TILE_TABLES and connection.execute(
            select(exists().select_from(ccd_pixel))).scalar_one():
        return False
    return all(_is_empty(connection, table) for table in _referring(connection, target))


def _referring(connection: Connection, table: Table) -> list[Table]:
    """The tables whose foreign keys refer to ``table``, directly or through others (from the
    catalog, so all of them: TRUNCATE must name each)."""
    names = connection.execute(text("""
        WITH RECURSIVE referring(oid) AS (
            SELECT conrelid FROM pg_constraint
            WHERE contype = 'f' AND confrelid = CAST(:name AS regclass)
            UNION
            SELECT c.conrelid FROM pg_constraint AS c JOIN referring AS r ON c.confrelid = r.oid
            WHERE c.contype = 'f'
        )
        SELECT relname FROM referring JOIN pg_class USING (oid)
        WHERE oid <> CAST(:name AS regclass) ORDER BY 1"""), {"name": table.name}).scalars()
    return [Table(str(name), MetaData()) for name in names]


# -- inserting --------------------------------------------------------------------------------


def _first_id(connection: Connection, staged: Staged) -> int:
    """Reserve the ids of a staged batch's new rows; the first one (0: kinds without ids).

    Ids are handed out before the inserts, one per new row (id = first_id + row_no), so that
    the pixel rows and the overlap pairs get theirs without reading the inserted rows back.
    """
    batch = staged.batch
    if batch.pixel_table is None:
        return 0
    if not batch.id_column:
        raise TypeError(f"batch {batch.kind}: a pixel table needs an id column")
    return _reserve_ids(connection, batch.target, batch.id_column, staged.new)


def _insert(connection: Connection, staged: Staged, first_id: int) -> None:
    """Insert the new rows of a staged batch and their pixel rows (no join with the target),
    the ids (for kinds with pixels) from ``first_id`` on, in staging order."""
    batch, stage, target = staged.batch, staged.table, staged.batch.target
    if stage is None:
        _copy_into_empty(connection, staged, first_id)
        return
    columns: list[Any] = [stage.c[name] for name in batch.columns]
    id_column = batch.id_column or ""
    if batch.pixel_table is not None:
        columns.insert(0, (literal(first_id, BigInteger) + stage.c.row_no).label(id_column))
    # A freshly copied temporary table is read back in the order it was written: the new
    # rows, in spatial order, come first.
    rows = select(*columns)
    if staged.new < len(batch.rows):
        rows = rows.where(stage.c.row_no < staged.new)
    bulk = staged.target_was_empty and _owns(connection, target)
    with _keys_built_after(connection, batch, bulk):
        connection.execute(insert(target).from_select([column.name for column in columns],
                                                      rows))
        if batch.pixel_table is not None and staged.pixel_table is not None:
            pixel_stage = staged.pixel_table
            pixel_id = (literal(first_id, BigInteger) + pixel_stage.c.row_no).label(id_column)
            pixel_rows = select(pixel_stage.c.pix, pixel_id)
            if not bulk:  # B-tree inserts in key order
                pixel_rows = pixel_rows.order_by(pixel_stage.c.pix)
            connection.execute(insert(batch.pixel_table).from_select(["pix", id_column],
                                                                     pixel_rows))


@contextmanager
def _keys_built_after(connection: Connection, batch: Batch, bulk: bool,
                      referring_empty: bool = False) -> Iterator[None]:
    """For a bulk load into an empty table (``bulk``), drop the target's deferrable
    constraints and indexes and build them once the rows are in: one sort instead of millions
    of B-tree descents and trigger calls. Other loads keep them. (An error rolls the whole
    transaction back, drops included.)

    ``referring_empty``: the tables whose foreign keys refer to the target are empty (the
    direct copy truncated them). If this session owns them, those foreign keys are dropped
    too, so that the keys they refer to can be built after the rows as well, and re-created
    (checking no row) at the end.
    """
    referring = _referring_keys(batch) if bulk and referring_empty else []
    if referring and not all(_owns(connection, fk.table) for fk in referring):
        referring = []
    constraints = _deferrable_constraints(batch, bool(referring)) if bulk else []
    indexes = sorted(batch.target.indexes, key=lambda index: str(index.name)) if bulk else []
    for constraint in [*referring, *constraints]:
        connection.execute(DropConstraint(constraint))
    for index in indexes:
        connection.execute(DropIndex(index))
    yield
    for constraint in [*constraints, *referring]:
        connection.execute(AddConstraint(constraint))  # builds the index / validates once
    for index in indexes:
        connection.execute(CreateIndex(index))


def _copy_into_empty(connection: Connection, staged: Staged, first_id: int) -> None:
    """COPY a batch's rows and pixel rows straight into its empty target, frozen.

    The target (and its pixel table, and every table that refers to it: all empty, which
    :func:`_copies_directly` checked under the ingest lock) is truncated first, so that
    ``COPY ... FREEZE`` may write the rows frozen and all-visible: the VACUUM after the
    commit then has nothing to rewrite, and with ``wal_level = minimal`` the rows are not
    written to the WAL either (the files are synced at commit). As with the bulk insert, the
    indexes and constraints are dropped before and built once after.

    TRUNCATE takes ``ACCESS EXCLUSIVE`` locks on those tables until the commit, as the bulk
    path's index drops do on the target. Frozen rows are visible to every snapshot: a reader
    inside an older ``REPEATABLE READ`` transaction sees the rows once committed (the
    documented price of ``FREEZE``; readers of an empty table lose nothing they had).
    """
    batch, target = staged.batch, staged.batch.target
    referring = _referring(connection, target)
    # Children are inserted after their parents, so these are still empty; should a batch
    # order ever break that, TRUNCATE must not take their rows with it.
    filled = [table.name for table in referring if not _is_empty(connection, table)]
    if filled:
        raise RuntimeError(f"cannot copy {target.name} directly: {', '.join(filled)} "
                           "received rows first")
    emptied = [target, *([batch.pixel_table] if batch.pixel_table is not None else []),
               *referring]
    names = list(dict.fromkeys(table.name for table in emptied))
    _driver(connection).execute(sql.SQL("TRUNCATE {}").format(
        sql.SQL(", ").join(sql.Identifier(name) for name in names)))
    with _keys_built_after(connection, batch, bulk=True, referring_empty=True):
        _copy_rows_frozen(connection, staged, first_id)


def _copy_rows_frozen(connection: Connection, staged: Staged, first_id: int) -> None:
    """The COPY ... FREEZE of :func:`_copy_into_empty`: the rows with their ids, then the
    pixel rows."""
    batch, target = staged.batch, staged.batch.target
    rows = _take(batch.rows, staged.new_positions)
    columns = [target.c[name] for name in batch.columns]
    if batch.pixel_table is not None:
        id_column = batch.id_column or ""
        ids = first_id + np.arange(staged.new, dtype=np.int64)
        # Row tuples become columns first (when they have fixed widths), so that the ids are
        # one more column rather than a new tuple per row.
        if not isinstance(rows, Columns):
            rows = _column_wise(columns, rows) or rows
        columns.insert(0, target.c[id_column])
        rows = (Columns([BinaryColumn("int8", ids), *rows.columns], staged.new)
                if isinstance(rows, Columns)
                else [(int(i), *row) for i, row in zip(ids.tolist(), rows, strict=True)])
    _copy_into(connection, target, columns, rows, freeze=True)
    if batch.pixel_table is not None and staged.pixels is not None and staged.new:
        pixels = staged.pixels
        _copy_into(connection, batch.pixel_table,
                   [batch.pixel_table.c.pix, batch.pixel_table.c[batch.id_column or ""]],
                   Columns([BinaryColumn("int8", pixels.flat),
                            BinaryColumn("int8", first_id + pixels.owners())],
                           len(pixels.flat)), freeze=True)


def _reserve_ids(connection: Connection, table: Table, column: str, count: int) -> int:
    """Take ``count`` consecutive values of the identity sequence; return the first.

    Runs under the ingest lock, the only writer of these tables, so nothing else draws from
    the sequence meanwhile. Values of a rolled-back run are skipped, as sequences always are.
    """
    sequence = func.pg_get_serial_sequence(table.name, column)
    last = connection.execute(select(func.setval(
        sequence, func.nextval(sequence) + max(count, 1) - 1))).scalar_one()
    return int(last) - max(count, 1) + 1


def _owns(connection: Connection, table: Table) -> bool:
    """Whether this session may drop and re-create the table's constraints (owner's right).

    A writer role that is not the owner loads the slower way, maintaining the indexes.
    """
    owns = text("SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class "
                "WHERE oid = CAST(:name AS regclass)")
    return bool(connection.execute(owns, {"name": table.name}).scalar_one())


def _referring_keys(batch: Batch) -> list[ForeignKeyConstraint]:
    """The foreign keys of other tables that refer to the batch's target."""
    return sorted((fk for table in batch.target.metadata.tables.values()
                   for fk in table.foreign_key_constraints
                   if fk.referred_table is batch.target and table is not batch.target),
                  key=lambda fk: str(fk.name))


def _deferrable_constraints(batch: Batch, referring_dropped: bool = False) -> list[Constraint]:
    """Constraints a bulk load into an empty table drops and re-creates, in drop order.

    The pixel table's primary key, the target's foreign keys, and the target's primary key and
    unique constraints unless a foreign key of another table refers to them (all of them with
    ``referring_dropped``: those foreign keys are dropped first and re-created last). Rows
    arrive in spatial order, so maintaining a natural-key index row by row means random
    B-tree inserts: the CCDs' (instrument, visit, detector), which the archive's foreign key
    refers to, made the COPY of 1.89 M CCDs take 9-12 s instead of ~4.5 s.
    """
    target = batch.target
    referenced = set() if referring_dropped else {
        frozenset(element.column.name for element in fk.elements)
        for fk in _referring_keys(batch)}
    keys: list[Constraint] = []
    if batch.pixel_table is not None:
        keys.append(batch.pixel_table.primary_key)
    keys.extend(sorted(target.foreign_key_constraints, key=lambda c: str(c.name)))
    unique = [c for c in target.constraints
              if isinstance(c, PrimaryKeyConstraint | UniqueConstraint)
              and frozenset(column.name for column in c.columns) not in referenced]
    keys.extend(sorted(unique, key=lambda c: str(c.name)))
    return keys


# -- the transaction --------------------------------------------------------------------------


def _maintenance_memory(connection: Connection) -> str:
    """maintenance_work_mem for the ingest transaction's index builds.

    The largest builds sort ~15 M rows (the CCD x patch pairs of 1.89 M CCDs, ~1.6 GB of
    sort tuples): with 1 GB, which a parallel build splits between its leader and workers,
    they spill to disk; measured on that relation's primary key, 15.8 s with 1 GB and 9.5 s
    with 4 GB. A server on this machine (reached through a Unix socket or the loopback
    interface) gets up to a quarter of this machine's memory (or of its container's limit),
    at most LOCAL_MAINTENANCE_MEM_MAX; a sort takes only what it needs. A server elsewhere keeps
    BULK_MAINTENANCE_MEM: this machine's memory says nothing about its.
    """
    local = connection.execute(text(
        "SELECT inet_server_addr() IS NULL OR inet_server_addr() << '127.0.0.0/8' "
        "OR inet_server_addr() = '::1'")).scalar_one()
    budget = min(LOCAL_MAINTENANCE_MEM_MAX, usable_memory() // 4)
    if not local or budget <= 2**30:
        return BULK_MAINTENANCE_MEM
    return f"{budget // 2**20}MB"


def _prepare_session(connection: Connection) -> None:
    """Set this transaction's resources and liveness checks, then take the ingest lock.

    The checks come first so that a client killed while it waits for the lock leaves the
    queue at once.
    """
    settings = {
        # Joins and sorts over a whole batch must stay in memory (defaults spill to disk).
        "work_mem": BULK_WORK_MEM,
        "maintenance_work_mem": _maintenance_memory(connection),
        # Ignored on Unix-domain sockets (the embedded server's).
        "tcp_keepalives_idle": TCP_KEEPALIVES[0],
        "tcp_keepalives_interval": TCP_KEEPALIVES[1],
        "tcp_keepalives_count": TCP_KEEPALIVES[2],
    }
    if (connection.dialect.server_version_info or (0,)) >= (14,):
        settings["client_connection_check_interval"] = CLIENT_CHECK_INTERVAL
    for name, value in settings.items():
        connection.execute(select(func.set_config(name, value, True)))
    connection.execute(select(func.pg_advisory_xact_lock(INGEST_LOCK_KEY)))


def load(engine: Engine, batches: Sequence[Batch], references: Sequence[Reference] = (),
         progress: Progress | None = None,
         timings: dict[str, float] | None = None,
         before: Callable[[Connection], None] | None = None,
         after: Callable[[Connection], None] | None = None,
         vacuum: bool = True, check: bool = False) -> dict[str, KindCount]:
    """Load the batches (parents first) in one transaction; return counts per kind.

    ``timings``, when given, receives the seconds spent staging each kind (``stage KIND``; of
    which ``pixels KIND`` computing pixel coverage) and inserting it (``insert KIND``).
    ``before`` and ``after`` run inside the transaction (under the ingest lock) before the
    first batch and after the last one. ``vacuum=False`` leaves the VACUUM (ANALYZE) to the
    caller, for runs made of several transactions. ``check=True`` stages and checks
    everything, computes no pixels, and rolls back: the counts say what would be inserted,
    and nothing (not even a sequence value) is used up.
    """
    counts: dict[str, KindCount] = {}
    timings = timings if timings is not None else {}
    metadata = MetaData()
    with engine.connect() as connection:
        transaction = connection.begin()
        _prepare_session(connection)
        if before is not None:
            before(connection)
        jobs = OverlapJobs(connection, frozenset(
            batch.target.name for batch in batches
            if batch.target.name in _SPATIAL and batch.pixels is not None))
        try:
            staged: list[Staged] = []
            parents: dict[str, Table] = {}
            for batch in batches:
                staged.append(_stage(
                    connection, batch, metadata, parents, references, not check, timings,
                    progress, _shapes_to(jobs) if batch.target.name in _SPATIAL else None))
                table = staged[-1].table
                if table is not None:
                    parents[batch.target.name] = table
                counts[batch.kind] = KindCount(in_input=len(batch.rows),
                                               inserted=staged[-1].new)
            if check:
                transaction.rollback()
                return counts
            # The overlap pairs of the new rows are complete before the inserts, whose index
            # rebuilds take locks that block readers (see skyreg.schema.overlaps).
            if progress is not None:
                progress("overlaps", 0, 1)
            pairs = _overlap_pairs(connection, staged, jobs, timings)
            if progress is not None:
                progress("overlaps", 1, 1)
        finally:
            jobs.close()
        first_ids = {item.batch.target.name: _first_id(connection, item)
                     for item in staged if item.new}
        # The relation rows are laid out before the inserts take their locks.
        started = time.perf_counter()
        prepared = overlaps.prepare_overlaps(
            connection, first_ids, pairs,
            next((_ccd_keys(item) for item in staged if item.batch.target.name == "ccd"),
                 overlaps.NO_KEYS))
        timings["overlaps: prepare rows"] = time.perf_counter() - started
        for item in staged:
            if not item.new:
                continue
            started = time.perf_counter()
            if progress is not None:
                progress(f"inserting {item.batch.kind}", 0, 1)
            _insert(connection, item, first_ids[item.batch.target.name])
            if progress is not None:
                progress(f"inserting {item.batch.kind}", 1, 1)
            timings[f"insert {item.batch.kind}"] = time.perf_counter() - started
        if prepared:
            started = time.perf_counter()
            overlaps.store_overlaps(connection, prepared, timings)
            timings["insert overlaps"] = time.perf_counter() - started
        if after is not None:
            after(connection)
        transaction.commit()
    if vacuum:
        started = time.perf_counter()
        vacuum_tables(engine, [b for b in batches if counts[b.kind].inserted], progress)
        vacuum_overlaps(engine, {kind: len(found) for kind, found in pairs.items()})
        timings["vacuum, analyze"] = time.perf_counter() - started
    return counts


def _shapes_to(jobs: OverlapJobs) -> PixelsKnown:
    """A :data:`PixelsKnown` that hands a spatial batch's new rows to ``jobs``."""
    def known(batch: Batch, new: npt.NDArray[np.int64], pixels: PixelSets) -> None:
        jobs.staged(batch.target.name, overlaps.Shapes(
            len(new), pixels.flat, pixels.offsets, _polygons_of(batch, new)))
    return known


def _polygons_of(batch: Batch, new: npt.NDArray[np.int64]) -> overlaps.PolygonsOf:
    """Encoded polygons of staged rows (row numbers), read from the batch's own rows."""
    rows = batch.rows

    def polygons(row_nos: npt.NDArray[np.int64], column: str) -> list[bytes]:
        index = batch.columns.index(column)
        positions = new[row_nos]
        if isinstance(rows, Columns):
            blobs = np.asarray(rows.columns[index].values)
            return [blob.tobytes() for blob in blobs[positions]]
        return [rows[int(i)][index] for i in positions]
    return polygons


def _ccd_keys(staged: Staged) -> overlaps.CcdKeys:
    """The keys of a CCD batch's new rows, by row_no (the overlap relations store them)."""
    batch, positions = staged.batch, staged.new_positions
    at = [batch.columns.index(name) for name in ("instrument", "visit", "detector")]
    rows = batch.rows
    if isinstance(rows, Columns):
        # Column-wise text is one value shared by every row (db.binary_copy.Column).
        name_column, visit_column, detector_column = (rows.columns[i] for i in at)
        visits = np.asarray(visit_column.values, dtype=np.int64)[positions]
        detectors = np.asarray(detector_column.values, dtype=np.int64)[positions]
        if name_column.kind == "text":
            return overlaps.CcdKeys((str(name_column.values),),
                                    np.zeros(len(positions), dtype=np.int64), visits, detectors)
        if name_column.kind != "texts":
            raise TypeError(f"batch {batch.kind}: instrument column of kind {name_column.kind}")
        names, codes = np.unique(np.asarray(name_column.values, dtype=str)[positions],
                                 return_inverse=True)
        return overlaps.CcdKeys(tuple(str(name) for name in names), codes.astype(np.int64),
                                visits, detectors)
    picked = [rows[int(i)] for i in positions]
    names, codes = np.unique(np.array([str(row[at[0]]) for row in picked], dtype=str),
                             return_inverse=True)
    return overlaps.CcdKeys(tuple(str(name) for name in names), codes.astype(np.int64),
                            np.array([row[at[1]] for row in picked], dtype=np.int64),
                            np.array([row[at[2]] for row in picked], dtype=np.int64))


def _overlap_pairs(connection: Connection, staged: Sequence[Staged], jobs: OverlapJobs,
                   timings: dict[str, float]) -> dict[str, overlaps.Pairs]:
    """Every pair the new rows add: those of the new CCDs (``jobs``), then those of new tiles
    with the CCDs stored before (joined on the server)."""
    found = jobs.results()
    started = time.perf_counter()
    by_kind = {item.batch.target.name: item for item in staged}
    stored_ccds = connection.execute(select(exists().select_from(ccd_pixel))).scalar_one()
    for tiles in overlaps.TILES:
        item = by_kind.get(tiles.kind)
        if not stored_ccds or item is None or not item.new or item.pixel_table is None:
            continue
        # (_copies_directly stages tiles whenever CCDs are stored.)
        more = overlaps.stored_ccd_pairs(connection, tiles, overlaps.Staging(
            _staging_table(item).name, item.pixel_table.name, item.new))
        found[tiles.kind] = overlaps.Pairs.concat(
            [found[tiles.kind], more] if tiles.kind in found else [more])
    timings.update(jobs.timings)
    timings["overlaps: stored CCDs"] = time.perf_counter() - started
    return found


#: Tables whose new rows get overlap pairs (:mod:`skyreg.schema.overlaps`).
_SPATIAL = frozenset(("ccd", "patch", "tract"))
#: Of those, the tiles: their pairs with stored CCDs are joined from their staging tables.
_TILE_TABLES = frozenset(("patch", "tract"))


def vacuum_overlaps(engine: Engine, pairs: dict[str, int]) -> None:
    """VACUUM (ANALYZE) the overlap relations that received pairs.

    Patch and tract searches are index-only scans of these relations, which only skip the
    heap on pages the visibility map marks all-visible.
    """
    relations = [tiles.relation for tiles in overlaps.TILES if pairs.get(tiles.kind)]
    if relations:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for relation in relations:
                vacuum_analyze(connection, relation.name)


def vacuum_tables(engine: Engine, touched: Sequence[Batch], progress: Progress | None = None
                  ) -> None:
    """VACUUM (ANALYZE) the tables (and pixel tables) of the batches that inserted rows."""
    # Fresh statistics make the first queries after a big load use the indexes, and a
    # vacuumed pixel table (visibility map set) answers from its index alone. VACUUM skips
    # pages already all-visible, so the cost follows the amount of new data.
    if touched:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            tables = [table for batch in touched for table in (batch.target, batch.pixel_table)
                      if table is not None]
            for done, table in enumerate(tables):
                if progress is not None:
                    progress("vacuum, analyze", done, len(tables))
                vacuum_analyze(connection, table.name)
            if progress is not None:
                progress("vacuum, analyze", len(tables), len(tables))
