"""DataFrames ↔ COPY data for the APDB tables, column-wise (no per-row Python).

Writes: a frame is checked against the table (known columns, required values present, types
castable, positions valid), cast to the table's types with Arrow, given its ``pixelId`` and
written as CSV by Arrow's C++ writer — which prints every float in its shortest round-trip
form — for ``COPY ... FROM STDIN (FORMAT csv)``; that costs a few milliseconds for a CCD's rows
where a row-by-row client spends most of dax_apdb's time. Reads are binary
(:mod:`skyreg.catalogs.apdb_binary`).

Errors name the table, the row (0-based position in the frame, or the file's row) and the
column.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Table
from sqlalchemy.types import (
    REAL,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    Integer,
    SmallInteger,
    String,
)

from skyreg.errors import InputError
from skyreg.geometry.htm_index import htm_indices
from skyreg.schema.apdb import APDB_HTM_LEVEL, PIXEL_COLUMN, PIXEL_TABLES, apdb_table


def _arrow_type(kind: Any) -> pa.DataType:
    """Arrow type of a column type (order matters: subclasses first)."""
    if isinstance(kind, BigInteger):
        return pa.int64()
    if isinstance(kind, SmallInteger):
        return pa.int16()
    if isinstance(kind, Integer):
        return pa.int32()
    if isinstance(kind, REAL):
        return pa.float32()
    if isinstance(kind, Double):
        return pa.float64()
    if isinstance(kind, Boolean):
        return pa.bool_()
    if isinstance(kind, DateTime):
        return pa.timestamp("us")
    return pa.string()


@dataclass(frozen=True)
class TableLayout:
    """What the frame code needs of one APDB table."""

    name: str
    columns: tuple[str, ...]  #: Rubin's columns, in table order (without pixelId)
    types: dict[str, pa.DataType]
    required: frozenset[str]  #: NOT NULL without a default
    char_lengths: dict[str, int]
    key: tuple[str, ...]
    has_pixel: bool

    @property
    def stored_columns(self) -> tuple[str, ...]:
        """Every column of the table (Rubin's, then pixelId where present)."""
        return (*self.columns, PIXEL_COLUMN) if self.has_pixel else self.columns

    def schema(self) -> pa.Schema:
        return pa.schema([(name, self.types[name]) for name in self.columns])


@cache
def layout(name: str) -> TableLayout:
    """The layout of APDB table ``name`` (``DiaObject``, ...)."""
    table: Table = apdb_table(name)
    columns = tuple(c.name for c in table.columns if c.name != PIXEL_COLUMN)
    return TableLayout(
        name=name,
        columns=columns,
        types={c.name: _arrow_type(c.type) for c in table.columns},
        required=frozenset(c.name for c in table.columns
                           if not c.nullable and c.server_default is None
                           and c.name != PIXEL_COLUMN),
        char_lengths={c.name: int(c.type.length) for c in table.columns
                      if isinstance(c.type, String) and c.type.length},
        key=tuple(c.name for c in table.primary_key.columns),
        has_pixel=name in PIXEL_TABLES,
    )


def _first_bad(values: pa.Array | pa.ChunkedArray, target: pa.DataType) -> tuple[int, Any]:
    """Row and value of the first element that does not cast (slow: on the error path only)."""
    for row, value in enumerate(values.to_pylist()):
        try:
            pa.array([value]).cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return row, value
    return 0, None


def _cast_column(values: pa.ChunkedArray, target: pa.DataType, table: str, column: str,
                 file: str | None, rows: npt.NDArray[np.int64] | None) -> pa.ChunkedArray:
    if values.type == target:
        return values
    try:
        if pa.types.is_string(target) and not pa.types.is_string(values.type) and not (
                pa.types.is_large_string(values.type) or pa.types.is_null(values.type)):
            raise pa.ArrowInvalid("not text")
        return values.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
        row, value = _first_bad(values, target)
        raise InputError(f"{table}: {value!r} is not a valid {target} ({err})".rstrip(),
                         file=file, row=_row(row, rows), field=column) from err


def _row(position: int, rows: npt.NDArray[np.int64] | None) -> int:
    return int(rows[position]) if rows is not None else position


def _column_arrays(frame: pd.DataFrame) -> list[Any]:
    """The frame's columns, each as the array pandas holds (numpy or extension array).

    Any public way to a column builds a Series first (~20 µs: 2.6 ms for a DiaSource frame's
    103 columns, against 0.13 ms this way). ``DataFrame._get_column_array`` is the accessor
    pandas itself uses for that (pandas 1.5 to 3); without it, the public way.
    """
    column = getattr(frame, "_get_column_array", None)
    if column is None:
        return [frame.iloc[:, position] for position in range(frame.shape[1])]
    return [column(position) for position in range(frame.shape[1])]


def _from_pandas(frame: pd.DataFrame) -> pa.Table:
    """The frame as Arrow columns (NaN and None as NULL).

    ``Table.from_pandas`` spends more on its thread pool and per-column bookkeeping than on
    the data for a CCD's 1,000 rows (8 ms for a DiaSource frame of 80 rows): each column
    goes to Arrow by itself instead, as pandas holds it.
    """
    return pa.table([pa.array(values, from_pandas=True) for values in _column_arrays(frame)],
                    names=[str(c) for c in frame.columns])


def to_arrow(frame: pd.DataFrame | pa.Table, name: str, *, file: str | None = None,
             rows: npt.NDArray[np.int64] | None = None,
             fixed: Sequence[str] = (), pixel: bool = True) -> pa.Table:
    """The frame as an Arrow table of table ``name``'s types, with ``pixelId`` (unless
    ``pixel`` is false: then :func:`add_pixels` adds it, for several tables at once).

    Columns of the table absent from the frame stay absent (COPY then stores NULL or the
    column's default); ``fixed`` are required columns the caller fills in itself. ``rows``
    maps positions to the row numbers to report (a file's rows).
    """
    spec = layout(name)
    data = frame if isinstance(frame, pa.Table) else _from_pandas(frame)
    present = set(data.column_names)  # (column_names builds a new list on every call)
    unknown = [c for c in data.column_names if c not in spec.types]
    if unknown:
        raise InputError(f"{name}: unknown column {unknown[0]!r} (not in the APDB schema)",
                         file=file, field=unknown[0])
    missing = sorted(spec.required - present - set(fixed))
    if missing:
        raise InputError(f"{name}: required column {missing[0]!r} is missing", file=file,
                         field=missing[0])
    arrays: dict[str, pa.ChunkedArray] = {}
    for column in spec.columns:
        if column not in present or column in fixed:
            continue
        values = _cast_column(data.column(column), spec.types[column], name, column, file,
                              rows)
        if column in spec.required and values.null_count:
            position = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{name}: a value is required", file=file,
                             row=_row(position, rows), field=column)
        length = spec.char_lengths.get(column)
        if length is not None and len(values):
            too_long = pc.fill_null(pc.greater(pc.utf8_length(values), length),
                                    False).to_numpy(zero_copy_only=False)
            if too_long.any():
                position = int(np.flatnonzero(too_long)[0])
                raise InputError(f"{name}: longer than {length} characters", file=file,
                                 row=_row(position, rows), field=column)
        arrays[column] = values
    result = pa.table(arrays) if arrays else pa.table({})
    if spec.has_pixel:
        ra = result.column("ra").to_numpy()
        dec = result.column("dec").to_numpy()
        bad = ~(np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0))
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            field = "dec" if np.isfinite(ra[position]) else "ra"
            raise InputError(f"{name}: position ({ra[position]}, {dec[position]}) is not a "
                             "finite RA/Dec with |dec| <= 90", file=file,
                             row=_row(position, rows), field=field)
        if pixel:
            result = result.append_column(PIXEL_COLUMN, pa.array(
                htm_indices(ra, dec, APDB_HTM_LEVEL), pa.int64()))
    return result


def add_pixels(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """``pixelId`` for the tables (of :func:`to_arrow` with ``pixel=False``) in one pass.

    A CCD's forced sources sit at its DiaObjects' positions: each distinct position is
    indexed once (the numpy descent costs ~6 ms per 1,000 points, whatever repeats).
    """
    names = [n for n, t in tables.items()
             if layout(n).has_pixel and PIXEL_COLUMN not in t.column_names]
    if not names:
        return tables
    ra = np.concatenate([tables[n].column("ra").to_numpy() for n in names])
    dec = np.concatenate([tables[n].column("dec").to_numpy() for n in names])
    if len(ra) == 0:
        indices = np.zeros(0, dtype=np.int64)
    else:
        # A position as one complex number: np.unique sorts those natively, ~12x faster
        # than rows of a 2-D array (axis=0), and compares them by both parts, exactly.
        keys = np.empty(len(ra), dtype=np.complex128)
        keys.real, keys.imag = ra, dec
        positions, inverse = np.unique(keys, return_inverse=True)
        indices = htm_indices(positions.real, positions.imag,
                              APDB_HTM_LEVEL)[inverse.reshape(-1)]
    result = dict(tables)
    start = 0
    for name in names:
        count = tables[name].num_rows
        result[name] = tables[name].append_column(
            PIXEL_COLUMN, pa.array(indices[start:start + count], pa.int64()))
        start += count
    return result


def check_unique(table: pa.Table, name: str, *, file: str | None = None,
                 rows: npt.NDArray[np.int64] | None = None) -> None:
    """Refuse two rows with the same key (named by the second one's row)."""
    key = layout(name).key
    if table.num_rows < 2 or not key or any(k not in table.column_names for k in key):
        return
    columns = [table.column(k).to_numpy() for k in key]
    if any(c.dtype.kind not in "biuf" for c in columns):
        frame = pd.DataFrame(dict(zip(key, columns, strict=True)))
        duplicated = np.flatnonzero(frame.duplicated(list(key)).to_numpy())
    else:  # numbers: a stable sort of the keys (pandas' duplicated costs ~3 ms a frame)
        order = np.lexsort(columns[::-1])  # lexsort is stable: rows in order within keys
        equal = np.ones(len(order) - 1, dtype=bool)
        for c in columns:
            equal &= c[order][1:] == c[order][:-1]
        duplicated = order[1:][equal]
    if len(duplicated):
        position = int(duplicated.min())
        values = ", ".join(f"{k}={c[position]}" for k, c in zip(key, columns, strict=True))
        raise InputError(f"{name}: {values} appears twice", file=file,
                         row=_row(position, rows), field=key[0])


def with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """``table`` with column ``name`` set (replaced or appended)."""
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def to_csv(table: pa.Table, order: Sequence[str]) -> tuple[bytes, tuple[str, ...]]:
    """CSV bytes (no header) of ``table``'s columns in ``order``, and the column list."""
    present = set(table.column_names)
    columns = tuple(c for c in order if c in present)
    if table.num_rows == 0:
        return b"", columns
    buffer = io.BytesIO()
    pacsv.write_csv(table.select(list(columns)), buffer,
                    pacsv.WriteOptions(include_header=False))
    return buffer.getvalue(), columns
