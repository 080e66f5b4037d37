"""Arrow columns → PostgreSQL types, and PostgreSQL binary COPY data built with numpy.

Catalog files are wide (hundreds of columns) and long (millions of rows); formatting them
row by row in Python would dominate the load. Here each column is turned into a length array
(-1 for NULL) and one flat byte buffer of its values in network byte order, and the rows are
assembled by scatter indexing: every operation touches each byte once, in C.

Format reference: PostgreSQL documentation, "COPY — Binary Format" (per row an int16 field
count, per field an int32 length or -1 then the value in the type's send format: big-endian
integers and IEEE floats, one byte for boolean, UTF-8 for text, int32 days since 2000-01-01
for date, int64 µs since 2000-01-01 for timestamps).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

#: The binary COPY file header (signature, flags, no extension) and trailer.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)

#: Days and microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
_PG_EPOCH_DAYS = 10_957
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400 * 1_000_000


class UnsupportedType(ValueError):
    """An Arrow type with no PostgreSQL column type here (the caller names file and column)."""


@dataclass(frozen=True)
class PgType:
    """The PostgreSQL type of a column and how its values are sent."""

    sql: str          # type in CREATE TABLE
    numpy: str | None  # big-endian numpy type of a fixed-width value, None for text/bytea


_FIXED: dict[str, PgType] = {
    "smallint": PgType("smallint", ">i2"),
    "integer": PgType("integer", ">i4"),
    "bigint": PgType("bigint", ">i8"),
    "real": PgType("real", ">f4"),
    "double precision": PgType("double precision", ">f8"),
    "boolean": PgType("boolean", "u1"),
    "date": PgType("date", ">i4"),
    "timestamp": PgType("timestamp", ">i8"),
    "timestamptz": PgType("timestamptz", ">i8"),
}
_VARIABLE = {"text": PgType("text", None), "bytea": PgType("bytea", None)}


def stored_type(sql_type: str) -> PgType:
    """The :class:`PgType` of a stored column type (as :func:`pg_type` named it)."""
    return _FIXED.get(sql_type) or _VARIABLE[sql_type]


def pg_type(arrow: pa.DataType) -> PgType:
    """The PostgreSQL type that holds every value of an Arrow type exactly."""
    t = pa.types
    if t.is_int8(arrow) or t.is_int16(arrow) or t.is_uint8(arrow):
        return _FIXED["smallint"]
    if t.is_int32(arrow) or t.is_uint16(arrow):
        return _FIXED["integer"]
    if t.is_int64(arrow) or t.is_uint32(arrow):
        return _FIXED["bigint"]
    if t.is_uint64(arrow):
        # Values past 2**63 are refused when the column is encoded.
        return _FIXED["bigint"]
    if t.is_float16(arrow) or t.is_float32(arrow):
        return _FIXED["real"]
    if t.is_float64(arrow):
        return _FIXED["double precision"]
    if t.is_boolean(arrow):
        return _FIXED["boolean"]
    if t.is_date32(arrow) or t.is_date64(arrow):
        return _FIXED["date"]
    if t.is_timestamp(arrow):
        return _FIXED["timestamptz" if arrow.tz is not None else "timestamp"]
    if t.is_string(arrow) or t.is_large_string(arrow) or t.is_string_view(arrow):
        return _VARIABLE["text"]
    if t.is_binary(arrow) or t.is_large_binary(arrow) or t.is_fixed_size_binary(arrow):
        return _VARIABLE["bytea"]
    if t.is_dictionary(arrow):
        return pg_type(arrow.value_type)
    raise UnsupportedType(f"Arrow type {arrow} has no PostgreSQL column type here "
                          "(numbers, booleans, strings, binary, dates and timestamps do)")


@dataclass
class Encoded:
    """One column of a batch: per-row lengths (-1 = NULL) and the non-NULL values' bytes."""

    lengths: npt.NDArray[np.int32]
    data: npt.NDArray[np.uint8]
    width: int | None  # bytes per value when fixed-width


def encode_column(array: pa.Array | pa.ChunkedArray, kind: PgType) -> Encoded:
    """The binary COPY pieces of one column (``kind`` from :func:`pg_type`)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if kind.numpy is None:
        return _encode_variable(array, valid)
    values = _fixed_values(array, kind)
    width = np.dtype(kind.numpy).itemsize
    data = np.ascontiguousarray(values[valid].astype(kind.numpy)).view(np.uint8).ravel()
    lengths = np.where(valid, width, -1).astype(np.int32)
    return Encoded(lengths, data, width)


def _fixed_values(array: pa.Array, kind: PgType) -> npt.NDArray[np.generic]:
    """The values as numpy (NULLs filled with zero), in the units PostgreSQL sends."""
    typ = array.type
    if pa.types.is_boolean(typ):
        return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False),
                          dtype=np.uint8)
    if pa.types.is_date(typ):
        days = pc.fill_null(array.cast(pa.date32()), 0).cast(pa.int32()).to_numpy()
        return np.asarray(days, dtype=np.int64) - _PG_EPOCH_DAYS
    if pa.types.is_timestamp(typ):
        micro = pc.fill_null(array.cast(pa.timestamp("us", typ.tz)), 0).cast(pa.int64())
        return np.asarray(micro.to_numpy(), dtype=np.int64) - _PG_EPOCH_US
    if pa.types.is_float16(typ):
        array = array.cast(pa.float32())
    filled = pc.fill_null(array, 0)
    values = np.asarray(filled.to_numpy(zero_copy_only=False))
    if pa.types.is_uint64(typ) and len(values) and int(values.max()) >= 2**63:
        raise UnsupportedType("unsigned 64-bit values of 2**63 or more do not fit a bigint")
    return values


def _encode_variable(array: pa.Array, valid: npt.NDArray[np.bool_]) -> Encoded:
    typ = array.type
    if pa.types.is_string_view(typ) or pa.types.is_string(typ):
        array = array.cast(pa.large_string())
    elif pa.types.is_binary(typ) or pa.types.is_fixed_size_binary(typ):
        array = array.cast(pa.large_binary())
    # NULLs become empty values, so the buffer holds exactly the non-NULL values, in order.
    filled = pc.fill_null(array, "" if pa.types.is_large_string(array.type) else b"")
    offsets_buffer, data_buffer = filled.buffers()[1], filled.buffers()[2]
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[filled.offset:
                                                           filled.offset + len(filled) + 1]
    sizes = np.diff(offsets).astype(np.int32)
    if data_buffer is None:
        data = np.zeros(0, dtype=np.uint8)
    else:
        data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0]:offsets[-1]]
    return Encoded(np.where(valid, sizes, -1).astype(np.int32), data, None)


def copy_rows(columns: list[Encoded]) -> bytes:
    """The rows of a batch in binary COPY format (no file header or trailer)."""
    if not columns:
        raise ValueError("a row needs at least one column")
    count = len(columns[0].lengths)
    field_sizes = [4 + np.maximum(c.lengths, 0).astype(np.int64) for c in columns]
    row_sizes = 2 + np.sum(field_sizes, axis=0)
    row_starts = np.concatenate([[0], np.cumsum(row_sizes)[:-1]]).astype(np.int64)
    out = np.zeros(int(row_sizes.sum()), dtype=np.uint8)
    out[row_starts[:, None] + np.arange(2)] = np.frombuffer(
        np.array([len(columns)], dtype=">i2").tobytes(), dtype=np.uint8)
    position = row_starts + 2
    four = np.arange(4)
    for column, size in zip(columns, field_sizes, strict=True):
        length_bytes = column.lengths.astype(">i4").view(np.uint8).reshape(count, 4)
        out[position[:, None] + four] = length_bytes
        present = column.lengths >= 0
        starts = position[present] + 4
        if column.width is not None:
            if column.width:
                out[starts[:, None] + np.arange(column.width)] = column.data.reshape(
                    -1, column.width)
        else:
            lengths = column.lengths[present].astype(np.int64)
            total = int(lengths.sum())
            if total:
                source_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
                destination = np.repeat(starts - source_starts, lengths) + np.arange(total)
                out[destination] = column.data
        position = position + size
    return out.tobytes()


def fixed_column(values: npt.ArrayLike, kind: str) -> Encoded:
    """An Encoded column of non-NULL numbers (``kind``: "bigint", "double precision", ...)."""
    numpy_type = _FIXED[kind].numpy
    assert numpy_type is not None
    array = np.ascontiguousarray(np.asarray(values).astype(numpy_type))
    width = array.dtype.itemsize
    return Encoded(np.full(len(array), width, dtype=np.int32), array.view(np.uint8).ravel(),
                   width)
