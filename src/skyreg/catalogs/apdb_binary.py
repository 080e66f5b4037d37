"""Reads of APDB rows as fixed-width binary COPY, parsed by numpy in one step.

A DiaObject row has 83 numeric columns; formatting 80,000 floats as text on the server and
parsing them again on the client was most of a CCD read (measured: 19 ms COPY + 13 ms CSV
parsing for 890 rows under load, against 3 ms of query execution). In PostgreSQL's binary COPY
format every value is a length and its bytes, so a row whose every field has a fixed width
is one numpy structured record, and the whole answer is one ``np.frombuffer``.

Fields are made fixed-width in the SELECT: a nullable float becomes NaN (what pandas shows for
NULL anyway); a nullable integer or boolean is sent with a NULL flag (integers) or as -1/0/1
(booleans); a short text (``char(n)``/``varchar(n)``) as its UTF-8 bytes zero-padded to 4n.
The frame built from them has what Arrow's ``to_pandas`` would give: integers with NULLs as
float64 with NaN, booleans with NULLs as objects holding None, texts as objects.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg.pq import ExecStatus, TransactionStatus
from sqlalchemy.types import String

from skyreg.catalogs.apdb_frames import layout
from skyreg.schema.apdb import apdb_table

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = len(_SIGNATURE) + 8  # flags and header-extension length, both 0 here

Decode = Callable[[dict[str, npt.NDArray[np.generic]]], npt.NDArray[np.generic]]


@dataclass(frozen=True)
class _Column:
    name: str
    fields: tuple[tuple[str, str, str], ...]  # (field name, SQL expression, numpy type)
    decode: Decode


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _plain(name: str, expression: str, dtype: str) -> _Column:
    native = np.dtype(dtype).newbyteorder("=")
    return _Column(name, ((name, expression, dtype),), lambda f: f[name].astype(native))


def _nullable_int(name: str, dtype: str) -> _Column:
    q = _quote(name)
    native = np.dtype(dtype).newbyteorder("=")

    def decode(f: dict[str, npt.NDArray[np.generic]]) -> npt.NDArray[np.generic]:
        nulls = f[name + "?"].astype(bool)
        if not nulls.any():
            return f[name].astype(native)
        values = f[name].astype(np.float64)
        values[nulls] = np.nan
        return values

    return _Column(name, ((name, f"coalesce({q}, 0)", dtype),
                          (name + "?", f"({q} IS NULL)", "?")), decode)


def _nullable_bool(name: str) -> _Column:
    q = _quote(name)

    def decode(f: dict[str, npt.NDArray[np.generic]]) -> npt.NDArray[np.generic]:
        codes = f[name].astype(np.int32)
        if (codes >= 0).all():
            return codes.astype(bool)
        values = np.empty(len(codes), dtype=object)
        values[codes == 1] = True
        values[codes == 0] = False
        values[codes < 0] = None
        return values

    # A cast and a coalesce: a CASE with two tests cost the server ~10% more per flag.
    return _Column(name, ((name, f"coalesce({q}::int4, -1)", ">i4"),), decode)


#: Marks a NULL text: 0xFF never occurs in UTF-8.
_NULL_TEXT = b"\xff"


def _short_text(name: str, length: int) -> _Column:
    q = _quote(name)
    width = 4 * length  # UTF-8 bytes of at most `length` characters

    def decode(f: dict[str, npt.NDArray[np.generic]]) -> npt.NDArray[np.generic]:
        raw = np.ascontiguousarray(f[name])  # numpy "S" drops the zero padding (no NUL in texts)
        if len(raw) == 0:
            return np.zeros(0, dtype=object)
        octets = raw.view(np.uint8).reshape(len(raw), -1)
        nulls = octets[:, 0] == _NULL_TEXT[0]
        if not (octets[~nulls] & 0x80).any():
            # ASCII only (a band letter, a version): numpy decodes it in one step (a Python
            # decode per value cost ~1 ms per 3,000 forced sources).
            values = np.where(nulls, b"", raw).astype(f"U{raw.dtype.itemsize}").astype(object)
        else:
            values = np.array([b.decode("utf-8") if not null else None
                               for b, null in zip(raw.tolist(), nulls.tolist(), strict=True)],
                              dtype=object)
        values[nulls] = None
        return values

    # The UTF-8 bytes laid over `width` zero bytes (the constant is folded at plan time), a
    # NULL as 0xFF: half the server's cost of the hex round trip through rpad, and no
    # separate NULL flag to send.
    # (E'' strings: bytea hex literals that do not depend on standard_conforming_strings.)
    zeros = "E'\\\\x" + "00" * width + "'::bytea"
    expression = (f"overlay({zeros} placing coalesce(convert_to({q}::text, 'UTF8'), "
                  f"E'\\\\xff'::bytea) from 1)")
    return _Column(name, ((name, expression, f"S{width}"),), decode)


_NUMPY = {pa.int16(): ">i2", pa.int32(): ">i4", pa.int64(): ">i8", pa.float32(): ">f4",
          pa.float64(): ">f8"}


@cache
def _columns(table: str, names: tuple[str, ...]) -> tuple[_Column, ...]:
    spec = layout(table)
    sql_columns = apdb_table(table).columns
    out = []
    for name in names:
        kind, nullable, q = spec.types[name], sql_columns[name].nullable, _quote(name)
        if pa.types.is_floating(kind):
            nan = "'NaN'::float4" if kind == pa.float32() else "'NaN'::float8"
            out.append(_plain(name, f"coalesce({q}, {nan})" if nullable else q, _NUMPY[kind]))
        elif pa.types.is_integer(kind):
            out.append(_nullable_int(name, _NUMPY[kind]) if nullable
                       else _plain(name, q, _NUMPY[kind]))
        elif pa.types.is_boolean(kind):
            out.append(_nullable_bool(name) if nullable else _plain(name, q, "?"))
        else:
            column_type = sql_columns[name].type
            length = column_type.length if isinstance(column_type, String) else None
            if not length:
                raise ValueError(f"{table}.{name}: only short texts are read in binary")
            out.append(_short_text(name, int(length)))
    return tuple(out)


def select_list(table: str, names: Sequence[str]) -> str:
    """The SELECT list that makes every field of ``names`` fixed-width."""
    return ", ".join(expression for column in _columns(table, tuple(names))
                     for _, expression, _ in column.fields)


@cache
def _record(table: str, names: tuple[str, ...]) -> np.dtype[np.void]:
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for column in _columns(table, names):
        for field, _, dtype in column.fields:
            fields += [(f"length {field}", ">i4"), (field, dtype)]
    return np.dtype(fields)


def copy_out(driver: psycopg.Connection[Any], statement: str) -> bytes:
    """The data of ``COPY (...) TO STDOUT``, read from libpq in one loop.

    The server sends a message per row; psycopg's ``Copy`` iterator runs a generator and its
    wait loop for each (measured: 5.6 ms of client CPU for 9,000 rows, against 2.9 ms for
    this loop over libpq's own call). Outside a transaction it has begun, a connection that
    is not in autocommit mode takes psycopg's path, which issues the BEGIN.
    """
    if not driver.autocommit and driver.info.transaction_status == TransactionStatus.IDLE:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            return b"".join(bytes(block) for block in copy)
    pgconn = driver.pgconn
    with driver.lock:
        pgconn.send_query(statement.encode(driver.info.encoding))
        results = []
        out = bytearray()
        first = pgconn.get_result()
        if first is not None and first.status == ExecStatus.COPY_OUT:
            while True:
                size, data = pgconn.get_copy_data(0)
                if size < 0:
                    break
                out += data
        elif first is not None:
            results.append(first)
        while (result := pgconn.get_result()) is not None:
            results.append(result)
    for result in results:
        if result.status not in (ExecStatus.COMMAND_OK, ExecStatus.COPY_OUT):
            raise psycopg.errors.error_from_result(result, encoding=driver.info.encoding)
    return bytes(out)


def frame_from_binary(data: bytes, table: str, names: Sequence[str]) -> pd.DataFrame:
    """The DataFrame of a ``COPY (SELECT <select_list>) TO STDOUT (FORMAT binary)``."""
    key = tuple(names)
    record = _record(table, key)
    if not data.startswith(_SIGNATURE):
        raise ValueError("not PostgreSQL binary COPY data")
    (extension,) = struct.unpack(">i", data[len(_SIGNATURE) + 4:_HEADER])
    body = memoryview(data)[_HEADER + extension:len(data) - 2]
    if len(body) % record.itemsize:
        raise ValueError("binary COPY rows are not of the expected width")
    rows = np.frombuffer(body, dtype=record)
    fields = {name: rows[name] for name in record.names or () if not name.startswith("length ")}
    return pd.DataFrame({column.name: column.decode(fields)
                         for column in _columns(table, key)}, columns=list(key))


# -- writes -----------------------------------------------------------------------------------

#: Microseconds from the Unix epoch to PostgreSQL's (2000-01-01), for binary timestamps.
_PG_EPOCH_US = 946_684_800_000_000

_FIXED = {pa.int16(): ">i2", pa.int32(): ">i4", pa.int64(): ">i8", pa.float32(): ">f4",
          pa.float64(): ">f8", pa.bool_(): "u1"}


@dataclass(frozen=True)
class _Field:
    """One column ready to be written: big-endian bytes per row (fixed width), or UTF-8
    bytes with offsets (texts), and which rows are NULL (None: none are)."""

    width: int  # bytes per value; 0 for texts
    values: npt.NDArray[np.generic]  # (rows,) of the big-endian type, or the text bytes
    offsets: npt.NDArray[np.int64] | None  # texts: rows + 1 offsets into values
    nulls: npt.NDArray[np.bool_] | None


def _field(values: pa.ChunkedArray | pa.Array) -> _Field:
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    kind = array.type
    nulls = (np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
             if array.null_count else None)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        filled = array.fill_null("") if nulls is not None else array
        offsets_buffer, data_buffer = filled.buffers()[1:3]
        offset_type = np.int64 if pa.types.is_large_string(kind) else np.int32
        offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[
            filled.offset:filled.offset + len(filled) + 1].astype(np.int64)
        data = (np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None
                else np.zeros(0, dtype=np.uint8))
        return _Field(0, data, offsets, nulls)
    if pa.types.is_timestamp(kind):
        micro = array.cast(pa.timestamp("us")).cast(pa.int64()).fill_null(0)
        numbers = np.asarray(micro.to_numpy(zero_copy_only=False)) - _PG_EPOCH_US
        return _Field(8, numbers.astype(">i8"), None, nulls)
    code = _FIXED.get(kind)
    if code is None:
        raise ValueError(f"no binary COPY encoding for Arrow type {kind}")
    filled = array.fill_null(False if kind == pa.bool_() else 0) if nulls is not None else array
    numbers = np.asarray(filled.to_numpy(zero_copy_only=False))
    return _Field(np.dtype(code).itemsize, numbers.astype(code), None, nulls)


def to_binary(table: pa.Table, order: Sequence[str]) -> tuple[bytes, tuple[str, ...]]:
    """PostgreSQL binary COPY data (``COPY ... FROM STDIN (FORMAT binary)``) of ``table``'s
    columns in ``order`` (those present), and the column list.

    Built by numpy from the Arrow buffers: the server receives every value in its binary
    form (a float is copied, not parsed from text: measured 8-12 ms of the server's time per
    1,000 84-column DiaObject rows as CSV) and the client formats no text. When no value is
    NULL and every text column has one length, every row has the same layout and is one
    record of a structured array; otherwise each field is placed at its own offset.
    Equal tables give equal bytes (a store's digest is taken over them).
    """
    present = set(table.column_names)
    columns = tuple(c for c in order if c in present)
    rows = table.num_rows
    if rows == 0:
        return b"", columns
    fields = [_field(table.column(c)) for c in columns]
    header = _SIGNATURE + bytes(8)
    uniform = all(f.nulls is None for f in fields) and all(
        f.offsets is None or len(np.unique(np.diff(f.offsets))) == 1 for f in fields)
    if uniform:
        return header + _uniform_rows(fields, rows) + b"\xff\xff", columns
    return header + _scattered_rows(fields, rows) + b"\xff\xff", columns


def _uniform_rows(fields: Sequence[_Field], rows: int) -> bytes:
    layout_: list[tuple[str, Any]] = [("count", ">i2")]
    for position, f in enumerate(fields):
        width = f.width if f.offsets is None else int(f.offsets[1] - f.offsets[0])
        layout_ += [(f"l{position}", ">i4"),
                    (f"v{position}", f.values.dtype if f.offsets is None else f"V{width}")]
    records = np.empty(rows, dtype=np.dtype(layout_))
    records["count"] = len(fields)
    for position, f in enumerate(fields):
        if f.offsets is None:
            records[f"l{position}"] = f.width
            records[f"v{position}"] = f.values
        else:
            width = int(f.offsets[1] - f.offsets[0])
            records[f"l{position}"] = width
            if width:
                start = int(f.offsets[0])
                records[f"v{position}"] = f.values[start:start + rows * width].view(
                    f"V{width}")
    return records.tobytes()


def _scattered_rows(fields: Sequence[_Field], rows: int) -> bytes:
    """Rows of varying layout: every field's length and bytes written at its offset."""
    lengths = np.empty((rows, len(fields)), dtype=np.int64)
    for position, f in enumerate(fields):
        lengths[:, position] = f.width if f.offsets is None else np.diff(f.offsets)
        if f.nulls is not None:
            lengths[f.nulls, position] = -1
    sizes = 4 + np.maximum(lengths, 0)
    row_sizes = 2 + sizes.sum(axis=1)
    row_starts = np.concatenate([[0], np.cumsum(row_sizes)[:-1]])
    starts = row_starts[:, None] + 2 + np.cumsum(sizes, axis=1) - sizes  # of each length
    out = np.zeros(int(row_sizes.sum()), dtype=np.uint8)
    four, two = np.arange(4), np.arange(2)
    out[row_starts[:, None] + two] = np.frombuffer(
        np.full(rows, len(fields), dtype=">i2").tobytes(), dtype=np.uint8).reshape(rows, 2)
    for position, f in enumerate(fields):
        at = starts[:, position]
        out[at[:, None] + four] = np.frombuffer(
            lengths[:, position].astype(">i4").tobytes(), dtype=np.uint8).reshape(rows, 4)
        valid = slice(None) if f.nulls is None else ~f.nulls
        if f.offsets is None:
            values = np.frombuffer(f.values.tobytes(), dtype=np.uint8).reshape(rows, f.width)
            out[(at[valid] + 4)[:, None] + np.arange(f.width)] = values[valid]
        else:
            counts = np.maximum(lengths[:, position], 0)
            total = int(counts.sum())
            if total:
                # Byte k of row i's text goes to at[i] + 4 + k; it comes from offsets[i] + k.
                within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
                out[np.repeat(at + 4, counts) + within] = f.values[
                    np.repeat(f.offsets[:-1], counts) + within]
    return out.tobytes()
