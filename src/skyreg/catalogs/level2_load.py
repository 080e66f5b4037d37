"""``skyreg catalog load``: any Parquet object catalog into a table of the ``catalogs`` schema.

One transaction per load, so a failure leaves nothing behind: the catalog's table (on a first
load) and its ``catalogs.skyreg_catalog`` row are created in it, every file is sent by binary
COPY into a temporary staging table, and only when all files are read and checked are the
new rows inserted. Idempotent by id: rows already stored identically are skipped, so loading
the same files again adds nothing; a row whose id is stored (or given twice) with other
values is refused, naming both places. Loads of one catalog are serialised by an advisory
lock; loads of different catalogs run side by side.

Rows are inserted in pixel order and, on a first load, the indexes are built afterwards: the
table is then clustered by ``skyreg_pix`` without a CLUSTER pass, and a cone touches a few
consecutive pages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql
from sqlalchemy import Engine

from skyreg.catalogs import positions
from skyreg.catalogs.arrow_copy import (
    COPY_HEADER,
    COPY_TRAILER,
    Encoded,
    PgType,
    UnsupportedType,
    copy_rows,
    encode_column,
    fixed_column,
    pg_type,
    stored_type,
)
from skyreg.catalogs.store import (
    PIXEL_COLUMN,
    REGISTRY_TABLE,
    RESERVED_PREFIX,
    SCHEMA,
    X_COLUMN,
    Y_COLUMN,
    Z_COLUMN,
    CatalogColumn,
    CatalogInfo,
    check_catalog_name,
    driver_fetch,
    find_catalog,
)
from skyreg.errors import ConflictError, InputError

Progress = Callable[[str, int, int], None]

#: Rows per COPY batch: a few tens of MB of a wide catalog at a time.
BATCH_ROWS = 65_536
_FILE, _ROW = "skyreg_file", "skyreg_row"


@dataclass(frozen=True)
class CatalogLoadReport:
    """What a load did: rows read from the files, inserted, and already stored."""

    name: str
    files: int
    rows_read: int
    inserted: int
    row_count: int

    @property
    def already_present(self) -> int:
        return self.rows_read - self.inserted


@dataclass(frozen=True)
class _Plan:
    columns: tuple[CatalogColumn, ...]
    arrow_names: tuple[str, ...]
    total_rows: int


def load_catalog(engine: Engine, name: str, files: Sequence[str | Path], *, ra: str, dec: str,
                 id: str, progress: Progress | None = None) -> CatalogLoadReport:
    """Load Parquet ``files`` into catalog ``name`` (created on the first load).

    ``ra``/``dec`` name the position columns (degrees, ICRS) and ``id`` the unique row id.
    Raises :class:`~skyreg.errors.InputError` for unreadable files, missing or unusable
    columns and bad positions (naming file, row and column), and
    :class:`~skyreg.errors.ConflictError` for an id stored with other values.
    """
    name = check_catalog_name(name)
    paths = [Path(f) for f in files]
    if not paths:
        raise InputError("give at least one Parquet file")
    plan = _plan(paths, ra=ra, dec=dec, id=id)
    report = progress or (lambda stage, done, total: None)
    with engine.begin() as connection:
        driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
        driver.execute("SELECT pg_advisory_xact_lock(hashtext('skyreg catalog ' || %s))",
                       (name,))
        # The insert sorts the rows by pixel, the indexes are built at the end: memory
        # keeps both off disk (for this transaction only).
        driver.execute("SET LOCAL work_mem = '256MB'")
        driver.execute("SET LOCAL maintenance_work_mem = '512MB'")
        existing = find_catalog(driver_fetch(driver), name)
        if existing is not None:
            _check_same_layout(existing, plan, ra=ra, dec=dec, id=id, file=paths[0])
            info = existing
        else:
            info = CatalogInfo(name, name, id, ra, dec, plan.columns, 0, positions.PIXEL_ORDER)
            _create_table(driver, info)
        staging = _stage(driver, info, plan, paths, report)
        repeated = _has_repeated_ids(driver, info, staging)
        _refuse_conflicts(driver, info, staging, paths, repeated=repeated,
                          fresh=existing is None)
        inserted = _insert(driver, info, staging, fresh=existing is None, repeated=repeated)
        if existing is None:
            _index(driver, info)
        row_count = info.row_count + inserted
        _record(driver, info, row_count, fresh=existing is None)
        driver.execute(sql.SQL("ANALYZE {}").format(info.table_sql()))
    return CatalogLoadReport(name, len(paths), plan.total_rows, inserted, row_count)


# -- reading and checking the files -----------------------------------------------------------


def _plan(paths: list[Path], *, ra: str, dec: str, id: str) -> _Plan:
    """Column names and types from the files' schemas, which must agree."""
    first_schema: pa.Schema | None = None
    total = 0
    for path in paths:
        try:
            meta = pq.ParquetFile(path)
        except FileNotFoundError as err:
            raise InputError("no such file", file=str(path)) from err
        except (OSError, pa.ArrowException) as err:
            raise InputError(f"not a readable Parquet file ({err})", file=str(path)) from err
        schema = meta.schema_arrow
        total += meta.metadata.num_rows
        if first_schema is None:
            first_schema = schema
            _check_schema(path, schema, ra=ra, dec=dec, id=id)
            continue
        if schema.names != first_schema.names:
            missing = [c for c in first_schema.names if c not in schema.names]
            extra = [c for c in schema.names if c not in first_schema.names]
            detail = (f"missing {', '.join(missing)}" if missing else "") + (
                f"{'; ' if missing else ''}extra {', '.join(extra)}" if extra else "")
            raise InputError(f"its columns differ from those of {paths[0]} "
                             f"({detail or 'same names in another order'})", file=str(path))
        for field in schema:
            other = first_schema.field(field.name)
            if pg_type(field.type).sql != pg_type(other.type).sql:
                raise InputError(f"type {field.type} differs from {other.type} in {paths[0]}",
                                 file=str(path), field=field.name)
    assert first_schema is not None
    columns = tuple(CatalogColumn(field.name, pg_type(field.type).sql) for field in first_schema)
    return _Plan(columns, tuple(first_schema.names), total)


def _check_schema(path: Path, schema: pa.Schema, *, ra: str, dec: str, id: str) -> None:
    names = schema.names
    seen: set[str] = set()
    for field in schema:
        where = {"file": str(path), "field": field.name}
        if field.name in seen:
            raise InputError("the column appears twice", **where)
        seen.add(field.name)
        if not field.name or "\x00" in field.name or len(field.name.encode()) > 63:
            raise InputError("column names must be 1-63 bytes without NUL characters", **where)
        if field.name.startswith(RESERVED_PREFIX):
            raise InputError(f"column names starting with {RESERVED_PREFIX!r} are reserved",
                             **where)
        try:
            pg_type(field.type)
        except UnsupportedType as err:
            raise InputError(str(err), **where) from err
    for role, column in (("--ra", ra), ("--dec", dec), ("--id", id)):
        if column not in names:
            raise InputError(f"no column {column!r} (given as {role}); the file has "
                             f"{', '.join(names[:12])}{', ...' if len(names) > 12 else ''}",
                             file=str(path), field=column)
    for column in (ra, dec):
        if not pa.types.is_floating(schema.field(column).type):
            raise InputError(f"position columns must be floating point (degrees), not "
                             f"{schema.field(column).type}", file=str(path), field=column)
    id_type = schema.field(id).type
    if not (pa.types.is_integer(id_type) or pa.types.is_string(id_type)
            or pa.types.is_large_string(id_type)):
        raise InputError(f"the id column must hold integers or strings, not {id_type}",
                         file=str(path), field=id)


def _check_same_layout(info: CatalogInfo, plan: _Plan, *, ra: str, dec: str, id: str,
                       file: Path) -> None:
    given = (id, ra, dec)
    stored = (info.id_column, info.ra_column, info.dec_column)
    if given != stored:
        raise InputError(f"catalog {info.name!r} was loaded with --id {stored[0]} --ra "
                         f"{stored[1]} --dec {stored[2]}; give the same columns", file=str(file))
    if plan.columns != info.columns:
        stored_types = {c.name: c.sql_type for c in info.columns}
        for column in plan.columns:
            if column.name not in stored_types:
                raise InputError(f"catalog {info.name!r} has no such column", file=str(file),
                                 field=column.name)
            if stored_types[column.name] != column.sql_type:
                raise InputError(f"stored as {stored_types[column.name]} in catalog "
                                 f"{info.name!r}, the file has {column.sql_type}",
                                 file=str(file), field=column.name)
        missing = [c for c in info.column_names if c not in plan.arrow_names]
        raise InputError(f"catalog {info.name!r} has columns the file lacks: "
                         f"{', '.join(missing) or '(other order)'}", file=str(file))


def _check_positions(path: Path, offset: int, batch: pa.RecordBatch, info: CatalogInfo
                     ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """RA/Dec of a batch as float64 after checking them; bad ones name file, row, column."""
    ra_array, dec_array = batch.column(info.ra_column), batch.column(info.dec_column)
    ra = np.asarray(ra_array.to_numpy(zero_copy_only=False), dtype=np.float64)
    dec = np.asarray(dec_array.to_numpy(zero_copy_only=False), dtype=np.float64)
    for column, values, low, high in ((info.ra_column, ra, -np.inf, np.inf),
                                      (info.dec_column, dec, -90.0, 90.0)):
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values < low) | (values > high)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value = values[row]
            reason = ("is NULL or not a number" if np.isnan(value) else
                      f"{value} is not a position in degrees"
                      + (" within [-90, 90]" if column == info.dec_column else ""))
            raise InputError(reason, file=str(path), row=offset + row, field=column)
    ids = batch.column(info.id_column)
    if ids.null_count:
        row = int(np.flatnonzero(~np.asarray(ids.is_valid()))[0])
        raise InputError("the id is NULL", file=str(path), row=offset + row,
                         field=info.id_column)
    return ra, dec


# -- the database side -------------------------------------------------------------------------


def _column_list(info: CatalogInfo, *extra: str) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in (*info.column_names, *extra))


_EXTRA_DEFS = ((PIXEL_COLUMN, "bigint"), (X_COLUMN, "double precision"),
               (Y_COLUMN, "double precision"), (Z_COLUMN, "double precision"))


def _create_table(driver: psycopg.Connection[Any], info: CatalogInfo) -> None:
    definitions = [sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.sql_type))
                   for c in info.columns]
    definitions += [sql.SQL("{} {} NOT NULL").format(sql.Identifier(n), sql.SQL(t))
                    for n, t in _EXTRA_DEFS]
    driver.execute(sql.SQL("CREATE TABLE {} ({})").format(
        info.table_sql(), sql.SQL(", ").join(definitions)))
    driver.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(
        info.table_sql(), sql.Literal(f"skyreg catalog {info.name}: rows of the loaded files, "
                                      f"skyreg_pix = nested HEALPix order {info.pixel_order}")))


def _stage(driver: psycopg.Connection[Any], info: CatalogInfo, plan: _Plan, paths: list[Path],
           progress: Progress) -> sql.Composable:
    """Every row of every file in a temporary table (with its file and row number)."""
    # Qualified with pg_temp: an ordinary table of that name elsewhere is never touched.
    staging = sql.SQL("pg_temp.{}").format(sql.Identifier("skyreg_catalog_staging"))
    driver.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(staging))
    driver.execute(sql.SQL(
        "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT *, 0::integer AS {}, "
        "0::bigint AS {} FROM {} WITH NO DATA").format(
            staging, sql.Identifier(_FILE), sql.Identifier(_ROW), info.table_sql()))
    kinds = [stored_type(c.sql_type) for c in info.columns]
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        staging, _column_list(info, PIXEL_COLUMN, X_COLUMN, Y_COLUMN, Z_COLUMN, _FILE, _ROW))
    stage = f"load {info.name}"
    done = 0
    progress(stage, 0, plan.total_rows)
    with driver.cursor() as cursor, cursor.copy(copy_sql) as copy:
        copy.write(COPY_HEADER)
        for number, path in enumerate(paths):
            offset = 0
            try:
                batches = pq.ParquetFile(path).iter_batches(
                    batch_size=BATCH_ROWS, columns=list(info.column_names))
                for batch in batches:
                    copy.write(_encode_batch(path, number, offset, batch, info, kinds))
                    offset += batch.num_rows
                    done += batch.num_rows
                    progress(stage, done, plan.total_rows)
            except (OSError, pa.ArrowException) as err:
                raise InputError(f"cannot read the file after row {offset}: {err}",
                                 file=str(path)) from err
        copy.write(COPY_TRAILER)
    driver.execute(sql.SQL("CREATE INDEX ON {} ({})").format(
        staging, sql.Identifier(info.id_column)))
    driver.execute(sql.SQL("ANALYZE {}").format(staging))
    return staging


def _encode_batch(path: Path, number: int, offset: int, batch: pa.RecordBatch,
                  info: CatalogInfo, kinds: list[PgType]) -> bytes:
    ra, dec = _check_positions(path, offset, batch, info)
    encoded: list[Encoded] = []
    for column, kind in zip(info.column_names, kinds, strict=True):
        try:
            encoded.append(encode_column(batch.column(column), kind))
        except UnsupportedType as err:
            raise InputError(str(err), file=str(path), field=column) from err
    x, y, z = positions.unit_vectors(ra, dec)
    encoded += [fixed_column(positions.pixels(ra, dec), "bigint"),
                fixed_column(x, "double precision"), fixed_column(y, "double precision"),
                fixed_column(z, "double precision"),
                fixed_column(np.full(batch.num_rows, number), "integer"),
                fixed_column(np.arange(offset, offset + batch.num_rows), "bigint")]
    return copy_rows(encoded)


def _has_repeated_ids(driver: psycopg.Connection[Any], info: CatalogInfo,
                      staging: sql.Composable) -> bool:
    """Whether an id appears more than once in the files (an index-only count)."""
    row = driver.execute(sql.SQL(
        "SELECT count(*) <> count(DISTINCT {id}) FROM {s}").format(
            id=sql.Identifier(info.id_column), s=staging)).fetchone()
    return bool(row and row[0])


def _refuse_conflicts(driver: psycopg.Connection[Any], info: CatalogInfo,
                      staging: sql.Composable, paths: list[Path], *, repeated: bool,
                      fresh: bool) -> None:
    """ConflictError for an id given twice with other values, or stored with other values."""
    id_column = sql.Identifier(info.id_column)
    twice = None if not repeated else driver.execute(sql.SQL(
        "SELECT a.{f}, a.{r}, b.{f}, b.{r}, a.{id}::text FROM {s} AS a JOIN {s} AS b "
        "ON a.{id} = b.{id} AND (a.{f}, a.{r}) < (b.{f}, b.{r}) "
        "WHERE ({a}) IS DISTINCT FROM ({b}) LIMIT 1").format(
            f=sql.Identifier(_FILE), r=sql.Identifier(_ROW), id=id_column, s=staging,
            a=_prefixed("a", info), b=_prefixed("b", info))).fetchone()
    if twice is not None:
        raise ConflictError(
            f"{paths[twice[0]]}: row {twice[1]}: id {twice[4]} ({info.id_column}) is given "
            f"again with other values in {paths[twice[2]]}, row {twice[3]}")
    if fresh:
        return
    stored = driver.execute(sql.SQL(
        "SELECT s.{f}, s.{r}, s.{id}::text FROM {s} AS s JOIN {t} AS t USING ({id}) "
        "WHERE ({a}) IS DISTINCT FROM ({b}) ORDER BY s.{f}, s.{r} LIMIT 1").format(
            f=sql.Identifier(_FILE), r=sql.Identifier(_ROW), id=id_column, s=staging,
            t=info.table_sql(), a=_prefixed("s", info), b=_prefixed("t", info))).fetchone()
    if stored is not None:
        raise ConflictError(
            f"{paths[stored[0]]}: row {stored[1]}: id {stored[2]} ({info.id_column}) is "
            f"already stored in catalog {info.name!r} with other values; nothing was loaded")


def _prefixed(alias: str, info: CatalogInfo) -> sql.Composed:
    return sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(n))
                              for n in info.column_names)


def _insert(driver: psycopg.Connection[Any], info: CatalogInfo, staging: sql.Composable, *,
            fresh: bool, repeated: bool) -> int:
    """Insert the rows not stored yet, in pixel order; returns how many. (Identical repeats
    were checked to be identical: one of each is kept.)"""
    columns = _column_list(info, PIXEL_COLUMN, X_COLUMN, Y_COLUMN, Z_COLUMN)
    id_column = sql.Identifier(info.id_column)
    absent = sql.SQL("") if fresh else sql.SQL(
        " WHERE NOT EXISTS (SELECT 1 FROM {t} AS t WHERE t.{id} = s.{id})").format(
            t=info.table_sql(), id=id_column)
    source = sql.SQL("(SELECT DISTINCT ON ({id}) * FROM {s} ORDER BY {id})").format(
        id=id_column, s=staging) if repeated else staging
    cursor = driver.execute(sql.SQL(
        "INSERT INTO {t} ({c}) SELECT {c} FROM {source} AS s{absent} ORDER BY {pix}").format(
            t=info.table_sql(), c=columns, source=source, absent=absent,
            pix=sql.Identifier(PIXEL_COLUMN)))
    return max(cursor.rowcount, 0)


def _index(driver: psycopg.Connection[Any], info: CatalogInfo) -> None:
    driver.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
        info.table_sql(), sql.Identifier(info.id_column)))
    driver.execute(sql.SQL("CREATE INDEX {} ON {} ({})").format(
        sql.Identifier(f"{info.table}_skyreg_pix_idx"), info.table_sql(),
        sql.Identifier(PIXEL_COLUMN)))


def _record(driver: psycopg.Connection[Any], info: CatalogInfo, row_count: int, *,
            fresh: bool) -> None:
    registry = sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(REGISTRY_TABLE))
    if fresh:
        columns = json.dumps([{"name": c.name, "type": c.sql_type} for c in info.columns])
        driver.execute(sql.SQL(
            "INSERT INTO {} (name, table_name, id_column, ra_column, dec_column, columns, "
            "row_count, pixel_order) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)").format(
                registry), (info.name, info.table, info.id_column, info.ra_column,
                            info.dec_column, columns, row_count, info.pixel_order))
    else:
        driver.execute(sql.SQL(
            "UPDATE {} SET row_count = %s, updated_at = now() WHERE name = %s").format(registry),
            (row_count, info.name))
