"""Database stage of ingest: COPY into staging tables, refuse conflicts, insert what is new.

Everything runs in one transaction that first takes an advisory lock, so that

* nothing of a run is visible unless all of it is (a crash or an error rolls back everything),
* concurrent ingests queue up instead of racing: the second one finds the first one's rows and
  inserts nothing (no duplicates, no unique-violation failures),
* re-ingesting the same input inserts nothing and consumes no id sequence values.

A load into an empty table (the first bulk load of a registry) drops the pixel index and the
foreign keys inside that transaction and re-creates them after the insert: one sort and one
validating join instead of a B-tree descent and a trigger call per row. Being DDL inside the
same transaction, this too is all or nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
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

from skyreg.errors import ConflictError, InputError, InputErrors
from skyreg.ingest.binary_copy import COPY_HEADER, COPY_TRAILER, Columns
from skyreg.ingest.binary_copy import Column as BinaryColumn
from skyreg.ingest.footprints import PixelSets
from skyreg.ingest.report import KindCount

#: Key of the advisory lock that serialises ingest transactions.
INGEST_LOCK_KEY = 0x736B7972_65670002
#: work_mem and maintenance_work_mem of the ingest transaction (sorts, joins, index builds).
BULK_WORK_MEM = "256MB"
#: maintenance_work_mem of the ingest transaction: index builds of bulk loads sort in memory.
BULK_MAINTENANCE_MEM = "1GB"

Progress = Callable[[str, int, int], None]


@dataclass
class Batch:
    """Rows of one kind to load into ``target`` (in ``columns`` order), plus pixel coverage."""

    kind: str
    target: Table
    key: tuple[str, ...]
    columns: tuple[str, ...]
    #: Row tuples in ``columns`` order, or the same data column-wise (fast COPY).
    rows: Sequence[Sequence[Any]] | Columns
    pixel_table: Table | None = None
    id_column: str | None = None
    #: Pixels per row, or a function that returns them (called when they are first needed,
    #: so their computation can overlap the copy of the rows).
    pixels: PixelSets | Callable[[], PixelSets] | None = None
    source: str = ""
    #: Columns that must equal the stored row's for an existing key (None: all but the key).
    compare: tuple[str, ...] | None = None
    #: Sort new rows by their first pixel before inserting (False: already in spatial order).
    spatial_order: bool = True
    #: For rows without pixels of their own: a per-row key to store them in (e.g. the first
    #: pixel of the footprint they belong to), so that they too sit in spatial order.
    sort_key: npt.NDArray[np.int64] | None = None


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


def _staging_table(batch: Batch, metadata: MetaData) -> Table:
    """A temporary table shaped like the batch, dropped at commit."""
    columns = [Column(name, batch.target.c[name].type) for name in batch.columns]
    if batch.pixels is not None:
        columns.append(Column("row_no", BigInteger))
    return Table(f"stage_{batch.kind}", metadata, *columns, prefixes=["TEMPORARY"],
                 postgresql_on_commit="DROP")


def _pixel_staging_table(batch: Batch, metadata: MetaData) -> Table:
    """Temporary (row_no, pix) pairs: the pixels of staged row ``row_no``."""
    return Table(f"stage_{batch.kind}_pixel", metadata, Column("row_no", BigInteger),
                 Column("pix", BigInteger), prefixes=["TEMPORARY"], postgresql_on_commit="DROP")


def _copy_pixels(connection: Connection, stage: Table, pixels: PixelSets) -> None:
    """Binary COPY of (row_no, pix) pairs, formatted by numpy rather than row by row."""
    pairs = Columns([BinaryColumn("int8", pixels.owners()), BinaryColumn("int8", pixels.flat)],
                    len(pixels.flat))
    _copy_columns(connection, stage, ["row_no", "pix"], pairs)
    analyze(connection, stage.name)


def _copy_columns(connection: Connection, stage: Table, names: Sequence[str],
                  columns: Columns, progress: Callable[[int], None] | None = None) -> None:
    driver = connection.connection.driver_connection
    assert driver is not None
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(stage.name), sql.SQL(", ").join(map(sql.Identifier, names)))
    done = 0
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(COPY_HEADER)
        for chunk in columns.chunks():
            copy.write(chunk)
            done += 1
            if progress is not None:
                progress(done)
        copy.write(COPY_TRAILER)


def _copy_rows(connection: Connection, stage: Table, batch: Batch,
               progress: Progress | None) -> None:
    names = [column.name for column in stage.columns]
    total = len(batch.rows)
    if isinstance(batch.rows, Columns):
        columns = batch.rows
        if batch.pixels is not None:
            columns = columns.with_columns(
                BinaryColumn("int8", np.arange(total, dtype=np.int64)))
        _copy_columns(connection, stage, names, columns)
    else:
        _copy_row_by_row(connection, stage, names, batch, progress)
    if progress is not None:
        progress(f"copying {batch.kind}", total, total)
    analyze(connection, stage.name)  # temporary tables get no autovacuum


def _copy_row_by_row(connection: Connection, stage: Table, names: list[str], batch: Batch,
                     progress: Progress | None) -> None:
    driver = connection.connection.driver_connection
    assert driver is not None
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(stage.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    rows = batch.rows
    assert not isinstance(rows, Columns)
    total = len(rows)
    step = max(total // 100, 1000)
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types([_copy_type(column.type) for column in stage.columns])
        if batch.pixels is None:
            for i, row in enumerate(rows):
                copy.write_row(row)
                if progress is not None and i % step == 0:
                    progress(f"copying {batch.kind}", i, total)
        else:
            for i, row in enumerate(rows):
                copy.write_row((*row, i))
                if progress is not None and i % step == 0:
                    progress(f"copying {batch.kind}", i, total)


def analyze(connection: Connection, table_name: str) -> None:
    """Refresh the planner statistics of one table."""
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table_name)))


def vacuum_analyze(connection: Connection, table_name: str) -> None:
    """VACUUM (ANALYZE) one table; needs a connection in autocommit mode."""
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table_name)))


def _key_match(a: Any, b: Any, key: Sequence[str]) -> Any:
    return and_(*(a.c[name] == b.c[name] for name in key))


def _describe(key: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in zip(key, values, strict=True))


def _refuse_conflicts(connection: Connection, stage: Table, batch: Batch) -> None:
    """Raise ConflictError if a staged row's key is stored with different content."""
    compared = [name for name in batch.columns if name not in batch.key] \
        if batch.compare is None else list(batch.compare)
    if not compared:
        return
    differs = or_(*(stage.c[name].is_distinct_from(batch.target.c[name]) for name in compared))
    statement = (
        select(*(stage.c[name] for name in batch.columns),
               *(batch.target.c[name] for name in compared))
        .select_from(stage.join(batch.target, _key_match(stage, batch.target, batch.key)))
        .where(differs)
        .limit(5)
    )
    rows = connection.execute(statement).all()
    if not rows:
        return
    lines = []
    for row in rows:
        staged = dict(zip(batch.columns, row[:len(batch.columns)], strict=True))
        stored = dict(zip(compared, row[len(batch.columns):], strict=True))
        fields = [name for name in compared if staged[name] != stored[name]]
        what = "footprint" if any(f.endswith(("region", "_ra", "_dec")) or f in ("ra", "dec")
                                  for f in fields) else "values"
        detail = f"different {what} ({', '.join(fields)})"
        if "hash_sha1_hex" in fields:
            detail = (f"a different definition: stored hash {stored['hash_sha1_hex']}, "
                      f"this input has {staged['hash_sha1_hex']}")
        key_values = [staged[name] for name in batch.key]
        lines.append(f"{batch.source}: {batch.kind} ({_describe(batch.key, key_values)}) is "
                     f"already registered with {detail}")
    raise ConflictError("\n".join(lines) + "\nnothing was written")


def _insert_new(connection: Connection, stage: Table, pixel_stage: Table | None,
                batch: Batch) -> int:
    """Insert staged rows whose key is not stored yet (and their pixel rows); return count."""
    target = batch.target
    missing = ~exists().where(_key_match(target, stage, batch.key))
    new_count = int(connection.execute(
        select(func.count()).select_from(stage).where(missing)).scalar_one())
    if new_count == 0:
        return 0
    columns = [stage.c[name] for name in batch.columns]
    first_id = 0
    if batch.pixel_table is not None:
        # Ids are handed out here, one per staged row (id = first_id + row_no), so that the
        # pixel rows get theirs without reading the inserted rows back.
        assert batch.id_column is not None
        first_id = _reserve_ids(connection, target, batch.id_column, len(batch.rows))
        columns.insert(0, (literal(first_id, BigInteger) + stage.c.row_no)  # type: ignore[arg-type]
                       .label(batch.id_column))
    # Staged rows are in spatial order already (see _in_spatial_order); a freshly copied
    # temporary table is read back in that order, so no sort is needed.
    rows = select(*columns).where(missing)
    # Into an empty table, drop the index and the checks of each row and rebuild them once
    # afterwards: one sort instead of millions of B-tree descents and trigger calls.
    bulk = _is_empty(connection, target) and _owns(connection, target)
    constraints = _deferrable_constraints(batch) if bulk else []
    indexes = sorted(target.indexes, key=lambda index: str(index.name)) if bulk else []
    for constraint in constraints:
        connection.execute(DropConstraint(constraint))
    for index in indexes:
        connection.execute(DropIndex(index))
    connection.execute(insert(target).from_select([column.name for column in columns], rows))
    if batch.pixel_table is not None:
        assert batch.id_column is not None and pixel_stage is not None
        pixel_id = (literal(first_id, BigInteger) + pixel_stage.c.row_no).label(batch.id_column)
        pixel_rows = select(pixel_stage.c.pix, pixel_id)
        if not bulk:
            # Only rows inserted just now have ids from the reserved range.
            pixel_rows = pixel_rows.where(exists().where(
                target.c[batch.id_column] == literal(first_id, BigInteger)
                + pixel_stage.c.row_no)).order_by("pix")  # B-tree inserts in key order
        connection.execute(
            insert(batch.pixel_table).from_select(["pix", batch.id_column], pixel_rows)
        )
    for constraint in constraints:
        connection.execute(AddConstraint(constraint))  # builds the index / validates once
    for index in indexes:
        connection.execute(CreateIndex(index))
    return new_count


def _in_spatial_order(batch: Batch) -> Batch:
    """The batch with its rows sorted by their first pixel.

    Footprints stored in spatial order put the rows of one patch's CCDs on few pages, and ids
    handed out in that order keep the primary key correlated with the heap.
    """
    if batch.sort_key is not None:
        order = np.argsort(batch.sort_key, kind="stable")
        return replace(batch, rows=_take(batch.rows, order), sort_key=None)
    if batch.pixels is None or not batch.spatial_order:
        return batch
    pixels = _resolved(batch.pixels)
    order = np.argsort(pixels.first(), kind="stable")
    return replace(batch, rows=_take(batch.rows, order), pixels=pixels.take(order))


def _take(rows: Sequence[Sequence[Any]] | Columns, order: npt.NDArray[np.int64]
          ) -> Sequence[Sequence[Any]] | Columns:
    return rows.take(order) if isinstance(rows, Columns) else [rows[i] for i in order]


def _resolved(pixels: PixelSets | Callable[[], PixelSets]) -> PixelSets:
    return pixels if isinstance(pixels, PixelSets) else pixels()


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


def _is_empty(connection: Connection, table: Table) -> bool:
    return not connection.execute(select(exists().select_from(table))).scalar_one()


def _deferrable_constraints(batch: Batch) -> list[Constraint]:
    """Constraints a bulk load into an empty table drops and re-creates, in drop order.

    The pixel table's primary key, the target's foreign keys, and the target's primary key and
    unique constraints unless a foreign key of another table refers to them. (Rows arrive in
    spatial order, so maintaining a natural-key index row by row means random B-tree inserts.)
    """
    target = batch.target
    referenced = {frozenset(element.column.name for element in fk.elements)
                  for table in target.metadata.tables.values()
                  for fk in table.foreign_key_constraints if fk.referred_table is target}
    keys: list[Constraint] = []
    if batch.pixel_table is not None:
        keys.append(batch.pixel_table.primary_key)
    keys.extend(sorted(target.foreign_key_constraints, key=lambda c: str(c.name)))
    unique = [c for c in target.constraints
              if isinstance(c, PrimaryKeyConstraint | UniqueConstraint)
              and frozenset(column.name for column in c.columns) not in referenced]
    keys.extend(sorted(unique, key=lambda c: str(c.name)))
    return keys


def _refuse_unknown(connection: Connection, stage: Table, kind: str, source: str,
                    columns: Sequence[str], parent: Table, parent_columns: Sequence[str]) -> None:
    """Rows that refer to a parent that is neither stored nor in this input."""
    match = and_(*(parent.c[p] == stage.c[c]
                   for c, p in zip(columns, parent_columns, strict=True)))
    rows = connection.execute(
        select(*(stage.c[c] for c in columns)).where(~exists().where(match)).distinct().limit(5)
    ).all()
    if rows:
        raise InputErrors([
            InputError(f"{parent.name} ({_describe(parent_columns, row)}) is neither in this "
                       f"manifest nor registered", file=source, field=columns[-1])
            for row in rows
        ])


@dataclass(frozen=True)
class Reference:
    """A batch column group that must name a row of ``parent`` (checked before insert)."""

    kind: str
    columns: tuple[str, ...]
    parent: Table
    parent_columns: tuple[str, ...]


def load(engine: Engine, batches: Sequence[Batch], references: Sequence[Reference] = (),
         progress: Progress | None = None,
         timings: dict[str, float] | None = None,
         before: Callable[[Connection], None] | None = None,
         after: Callable[[Connection], None] | None = None,
         vacuum: bool = True) -> dict[str, KindCount]:
    """Load the batches (parents first) in one transaction; return counts per kind.

    ``timings``, when given, receives the seconds spent copying and inserting each kind.
    ``before`` and ``after`` run inside the transaction (under the ingest lock) before the
    first batch and after the last one. ``vacuum=False`` leaves the VACUUM (ANALYZE) to the
    caller, for runs made of several transactions.
    """
    counts: dict[str, KindCount] = {}
    timings = timings if timings is not None else {}
    metadata = MetaData()
    stages = {batch.kind: _staging_table(batch, metadata) for batch in batches}
    pixel_stages = {batch.kind: _pixel_staging_table(batch, metadata) for batch in batches
                    if batch.pixels is not None}
    with engine.begin() as connection:
        connection.execute(select(func.pg_advisory_xact_lock(INGEST_LOCK_KEY)))
        # Joins and sorts over a whole batch must stay in memory (defaults spill to disk).
        connection.execute(select(func.set_config("work_mem", BULK_WORK_MEM, True)))
        connection.execute(select(func.set_config("maintenance_work_mem", BULK_MAINTENANCE_MEM,
                                                  True)))
        if before is not None:
            before(connection)
        for batch in batches:
            batch = _in_spatial_order(batch)
            stage = stages[batch.kind]
            started = time.perf_counter()
            stage.create(connection)
            _copy_rows(connection, stage, batch, progress)
            pixel_stage = pixel_stages.get(batch.kind)
            if pixel_stage is not None:
                assert batch.pixels is not None
                pixel_stage.create(connection)
                _copy_pixels(connection, pixel_stage, _resolved(batch.pixels))
            timings[f"copy {batch.kind}"] = time.perf_counter() - started
            started = time.perf_counter()
            _refuse_conflicts(connection, stage, batch)
            for ref in references:
                if ref.kind == batch.kind:
                    _refuse_unknown(connection, stage, batch.kind, batch.source, ref.columns,
                                    ref.parent, ref.parent_columns)
            if progress is not None:
                progress(f"inserting {batch.kind}", 0, 1)
            inserted = _insert_new(connection, stage, pixel_stage, batch)
            if progress is not None:
                progress(f"inserting {batch.kind}", 1, 1)
            counts[batch.kind] = KindCount(in_input=len(batch.rows), inserted=inserted)
            timings[f"check+insert {batch.kind}"] = time.perf_counter() - started
        if after is not None:
            after(connection)
    if vacuum:
        started = time.perf_counter()
        vacuum_tables(engine, [b for b in batches if counts[b.kind].inserted], progress)
        timings["vacuum, analyze"] = time.perf_counter() - started
    return counts


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
