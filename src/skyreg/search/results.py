"""Results of searches: a columnar :class:`ResultTable`, and the row types it yields.

A search answers with many rows of a few fields, and what a pipeline does next is columnar
(select the r-band rows, hand the URIs to a scheduler, write a Parquet file), so results are
held as columns: numpy arrays, one per field, converted to astropy, pandas or Arrow without a
Python object per value. For compatibility with code written for lists of rows, iterating a
table and indexing it with an integer still give the row tuples (:class:`CcdRef`, ...).

Building columns costs a pass over the rows, which a key-only search that is only iterated
(the common case in Python, ``for ccd in reg.find_ccds(...)``) never needs: such a table keeps
the sorted key tuples the query produced and makes its key columns on first columnar use.
Searches that produce columns (a key-only CCD search by region, see
:mod:`skyreg.search.ccd_columns`) go the other way: their row tuples are made, in one C-level
pass, on first iteration. Extra columns (``columns=``) are stored as arrays from the start.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar, overload

import numpy as np

from skyreg.search.columns import ColumnSpec, spec_of

if TYPE_CHECKING:
    import pandas
    import pyarrow
    from astropy.table import Table


class CcdRef(NamedTuple):
    """One CCD: a detector of a visit of an instrument."""

    instrument: str
    visit: int
    detector: int


class PatchRef(NamedTuple):
    """One patch of a tract of a sky map."""

    skymap: str
    tract: int
    patch: int


class TractRef(NamedTuple):
    """One tract of a sky map."""

    skymap: str
    tract: int


class DatasetRef(NamedTuple):
    """One file (HDU) of the archive and the data ID of the image it holds.

    CCD datasets fill instrument/visit/detector, patch datasets skymap/tract/patch; both
    carry the band (for CCDs, the visit's band).
    """

    dataset_type: str
    instrument: str | None
    visit: int | None
    detector: int | None
    skymap: str | None
    tract: int | None
    patch: int | None
    band: str
    uri: str
    hdu: int
    format: str
    size_bytes: int
    checksum: str | None

    @property
    def path(self) -> str | None:
        """The local file path for a ``file://`` URI, else None."""
        if not self.uri.startswith("file://"):
            return None
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(self.uri).path)


Row = TypeVar("Row", CcdRef, PatchRef, TractRef, DatasetRef)

Array = np.ndarray[Any, Any]


def make_column(values: Sequence[Any], spec: ColumnSpec) -> Array:
    """A numpy column of ``values`` (Python values from the database) of ``spec``'s kind.

    Text and per-row arrays are object arrays (strings stay Python strings, None stays None);
    numbers are int64/float64 arrays, masked where a value is missing.
    """
    n = len(values)
    if spec.kind == "text":
        column = np.empty(n, dtype=object)
        column[:] = values
        return column
    if spec.kind in ("floats", "ints"):
        dtype = np.float64 if spec.kind == "floats" else np.int64
        column = np.empty(n, dtype=object)
        for i, value in enumerate(values):
            column[i] = None if value is None else np.asarray(value, dtype=dtype)
        return column
    dtype = np.int64 if spec.kind == "int" else np.float64
    if None in values:  # a C-level scan; numbers never equal None
        mask = np.fromiter((value is None for value in values), dtype=bool, count=n)
        data = np.array([0 if value is None else value for value in values], dtype=dtype)
        return np.ma.MaskedArray(data, mask=mask)
    return np.array(values, dtype=dtype).reshape(n)


def _fields(kind: type[tuple[Any, ...]]) -> tuple[str, ...]:
    """The key fields of a row type (a named tuple)."""
    fields: tuple[str, ...] = kind._fields  # type: ignore[attr-defined]
    return fields


def _python(column: Array) -> list[Any]:
    """A column's values as Python values (None where masked; lists for per-row arrays)."""
    values: list[Any] = column.tolist()
    if column.dtype == object:
        return [value.tolist() if isinstance(value, np.ndarray) else value
                for value in values]
    return values


class ResultTable(Sequence[Row], Generic[Row]):
    """Rows of one kind (:class:`CcdRef`, :class:`PatchRef`, :class:`TractRef` or
    :class:`DatasetRef`) as columns, sorted by key.

    * ``len(t)``, ``for row in t``, ``t[i]``: the row tuples (key fields only);
    * ``t["band"]``: one column as a numpy array (masked where values are missing; text and
      polygons as object arrays);
    * ``t[2:5]``, ``t[t["band"] == "r"]``, ``t[[0, 3]]``: a ResultTable of those rows, with
      every column;
    * :meth:`to_table` (astropy, with units), :meth:`to_pandas`, :meth:`to_arrow`,
      :meth:`to_dicts`, :meth:`records`.

    ``columns`` names every column: the key fields first, then those asked for with
    ``columns=``. Two tables are equal when they have the same kind, columns and values; a
    table equals a list of rows holding the same rows (for code written for lists).
    """

    __slots__ = ("_data", "_rows", "columns", "kind")

    def __init__(self, kind: type[Row], rows: list[Row] | None = None,
                 columns: Mapping[str, Array] | None = None) -> None:
        """A table of ``rows`` (sorted key tuples) and/or ``columns`` (arrays by name, which
        must include the key fields when ``rows`` is not given); extra columns follow the
        key fields in the order given."""
        self.kind: type[Row] = kind
        data: dict[str, Array] = dict(columns or {})
        keys: tuple[str, ...] = _fields(kind)
        if rows is None and not all(field in data for field in keys):
            raise ValueError(f"a {kind.__name__} table needs its key columns or rows")
        self._rows: list[Row] | None = rows
        self._data: dict[str, Array] = data
        self.columns: tuple[str, ...] = (*keys, *(name for name in data if name not in keys))
        length = len(rows) if rows is not None else None
        for name, column in data.items():
            if length is None:
                length = len(column)
            elif len(column) != length:
                raise ValueError(f"column {name!r} has {len(column)} values, not {length}")

    @classmethod
    def from_rows(cls, kind: type[Row], rows: Iterable[tuple[Any, ...]],
                  extras: Sequence[ColumnSpec] = ()) -> ResultTable[Row]:
        """A table from database rows: the key fields, then one value per ``extras`` spec
        (anything after those is ignored, e.g. the polygon of the exact test). Sorted by key.
        """
        width = len(_fields(kind))
        new = tuple.__new__  # skips the named tuple's Python-level constructor, per row
        if not extras:
            return cls(kind, [new(kind, key) for key in sorted(row[:width] for row in rows)])
        ordered = sorted(rows, key=lambda row: row[:width])
        keys = [new(kind, row[:width]) for row in ordered]
        values = list(zip(*(row[width:width + len(extras)] for row in ordered), strict=True))
        if not values:
            values = [() for _ in extras]
        return cls(kind, keys, {spec.name: make_column(column, spec)
                                for spec, column in zip(extras, values, strict=True)})

    # -- rows ---------------------------------------------------------------------------------

    def _row_list(self) -> list[Row]:
        if self._rows is None:
            # Key fields hold numbers and text, never per-row arrays: plain tolist() is
            # _python() without its per-value check. tuple.__new__ skips the named tuple's
            # Python-level constructor; map and zip keep the loop in C.
            fields = [self._data[name].tolist() for name in _fields(self.kind)]
            rows: list[Row] = list(map(tuple.__new__, itertools.repeat(self.kind),
                                       zip(*fields, strict=True)))
            self._rows = rows
            return rows
        return self._rows

    def __len__(self) -> int:
        if self._rows is not None:
            return len(self._rows)
        return len(self._data[_fields(self.kind)[0]])

    def __iter__(self) -> Iterator[Row]:
        return iter(self._row_list())

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> ResultTable[Row]: ...

    @overload
    def __getitem__(self, index: str) -> Array: ...

    @overload
    def __getitem__(self, index: Array | Sequence[int] | Sequence[bool]) -> ResultTable[Row]:
        ...

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, np.integer)):
            return self._row_list()[index]
        if isinstance(index, str):
            return self.column(index)
        if isinstance(index, slice):
            rows = self._rows[index] if self._rows is not None else None
            return ResultTable(self.kind, rows,
                               {name: column[index] for name, column in self._data.items()})
        chosen = np.asarray(index)
        if chosen.dtype == bool:
            if chosen.shape != (len(self),):
                raise IndexError(f"a boolean mask of {len(self)} values is needed, "
                                 f"got shape {chosen.shape}")
            chosen = np.flatnonzero(chosen)
        elif chosen.size == 0:
            chosen = chosen.astype(np.int64)
        elif chosen.ndim != 1 or not np.issubdtype(chosen.dtype, np.integer):
            raise IndexError(f"index a ResultTable with an int, a slice, a column name, a "
                             f"boolean mask or integer positions, not {index!r}")
        rows = None
        if self._rows is not None:
            listed = self._rows
            rows = [listed[i] for i in chosen.tolist()]
        return ResultTable(self.kind, rows,
                           {name: column[chosen] for name, column in self._data.items()})

    # -- columns ------------------------------------------------------------------------------

    def column(self, name: str) -> Array:
        """One column as a numpy array (built from the rows on first use for key fields)."""
        column = self._data.get(name)
        if column is None:
            if name not in _fields(self.kind):
                raise KeyError(f"no column {name!r}; columns: {', '.join(self.columns)}")
            position = _fields(self.kind).index(name)
            column = make_column([row[position] for row in self._row_list()], spec_of(name))
            self._data[name] = column
        return column

    def records(self) -> list[tuple[Any, ...]]:
        """Every row with every column (``columns`` order), as Python values; polygons and
        boxes as lists. What the CLI and JSON answers print."""
        if len(self.columns) == len(_fields(self.kind)):
            return [tuple(row) for row in self._row_list()]
        return list(zip(*(_python(self.column(name)) for name in self.columns), strict=True))

    def to_dicts(self) -> list[dict[str, Any]]:
        """The rows as plain dicts of every column, for JSON output."""
        return [dict(zip(self.columns, record, strict=True)) for record in self.records()]

    def to_arrow(self) -> pyarrow.Table:
        """The columns as a pyarrow Table (units in each field's metadata)."""
        import pyarrow as pa

        arrays, fields = [], []
        for name in self.columns:
            spec, column = spec_of(name), self.column(name)
            kind = {"text": pa.string(), "int": pa.int64(), "float": pa.float64(),
                    "floats": pa.list_(pa.float64()), "ints": pa.list_(pa.int64())}[spec.kind]
            if spec.kind in ("int", "float"):
                mask = np.ma.getmaskarray(column) if np.ma.isMaskedArray(column) else None
                array = pa.array(np.ma.getdata(column), type=kind, mask=mask)
            else:
                array = pa.array(_python(column), type=kind)
            arrays.append(array)
            fields.append(pa.field(name, kind, metadata={"unit": spec.unit} if spec.unit
                                   else None))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def to_pandas(self) -> pandas.DataFrame:
        """The columns as a pandas DataFrame (needs pandas; missing numbers become NaN/<NA>)."""
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise ImportError("ResultTable.to_pandas needs pandas: pip install pandas") from None
        frame: pandas.DataFrame = self.to_arrow().to_pandas()
        return frame

    def to_table(self) -> Table:
        """The columns as an astropy Table: a column per field, with units (deg, s, d, byte)
        where they mean something; missing values masked; polygons as object columns of
        arrays (variable-length arrays in FITS and VOTable)."""
        from astropy.table import Column, MaskedColumn, Table

        table = Table()
        for name in self.columns:
            spec, column = spec_of(name), self.column(name)
            if spec.kind == "text":
                missing = np.array([value is None for value in column], dtype=bool)
                text = np.array(["" if value is None else value for value in column],
                                dtype=str if len(column) else "U1")
                table[name] = (MaskedColumn(text, mask=missing, description=spec.description)
                               if missing.any() else
                               Column(text, description=spec.description))
            elif spec.kind in ("floats", "ints") and not len(column):
                # No row to say how long the arrays are: a plain numeric column, which FITS
                # and VOTable writers accept (an empty object column they cannot type).
                table[name] = Column(np.zeros(0, np.float64 if spec.kind == "floats"
                                              else np.int64),
                                     unit=spec.unit, description=spec.description)
            elif np.ma.isMaskedArray(column):
                table[name] = MaskedColumn(column.data, mask=column.mask, unit=spec.unit,
                                           description=spec.description)
            else:
                table[name] = Column(column, unit=spec.unit, description=spec.description)
        return table

    # -- comparisons and display --------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResultTable):
            return (self.kind is other.kind and self.columns == other.columns
                    and self.records() == other.records())
        if isinstance(other, (list, tuple)):
            return self._row_list() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container, as lists are

    def __add__(self, other: object) -> Any:
        """Tables of one kind and columns concatenate (in order, as lists did); a table and a
        list of rows give a list."""
        if isinstance(other, ResultTable):
            if other.kind is not self.kind or other.columns != self.columns:
                raise TypeError(f"cannot concatenate a table of {self.kind.__name__} "
                                f"({', '.join(self.columns)}) and one of "
                                f"{other.kind.__name__} ({', '.join(other.columns)})")
            data: dict[str, Array] = {}
            for name in self.columns:
                pair = (self.column(name), other.column(name))
                masked = any(np.ma.isMaskedArray(column) for column in pair)
                data[name] = (np.ma.concatenate(pair)  # type: ignore[no-untyped-call]
                              if masked else np.concatenate(pair))
            return ResultTable(self.kind, self._row_list() + other._row_list(), data)
        if isinstance(other, list):
            return self._row_list() + other
        return NotImplemented

    def __radd__(self, other: object) -> Any:
        if isinstance(other, list):
            return other + self._row_list()
        return NotImplemented

    def __repr__(self) -> str:
        head = (f"<ResultTable of {len(self)} {self.kind.__name__} row"
                f"{'' if len(self) == 1 else 's'}; columns: {', '.join(self.columns)}>")
        shown: list[tuple[Any, ...]] = self[:5].records()
        lines = [head, *("  (" + ", ".join(f"[{len(value)} values]" if isinstance(value, list)
                                           else repr(value) for value in record) + ")"
                         for record in shown)]
        if len(self) > len(shown):
            lines.append(f"  ... ({len(self) - len(shown)} more)")
        return "\n".join(lines)


#: The name this class had when it was a list of rows; kept so that old imports work.
ResultList = ResultTable


def ccd_results(rows: Iterable[tuple[Any, ...]], extras: Sequence[ColumnSpec] = ()
                ) -> ResultTable[CcdRef]:
    """CCD rows (instrument, visit, detector, extras..., ...) as a sorted table."""
    return ResultTable.from_rows(CcdRef, rows, extras)


def patch_results(rows: Iterable[tuple[Any, ...]], extras: Sequence[ColumnSpec] = ()
                  ) -> ResultTable[PatchRef]:
    """Patch rows (skymap, tract, patch, extras..., ...) as a sorted table."""
    return ResultTable.from_rows(PatchRef, rows, extras)


def tract_results(rows: Iterable[tuple[Any, ...]], extras: Sequence[ColumnSpec] = ()
                  ) -> ResultTable[TractRef]:
    """Tract rows (skymap, tract, extras..., ...) as a sorted table."""
    return ResultTable.from_rows(TractRef, rows, extras)


def dataset_results(rows: Iterable[tuple[Any, ...]], extras: Sequence[ColumnSpec] = ()
                    ) -> ResultTable[DatasetRef]:
    """Dataset rows (the DatasetRef fields, then extras) as a table sorted by data ID.

    One query returns one dataset type, whose data IDs have values in the same fields (the
    others are None in every row), so plain tuple order of the key works.
    """
    return ResultTable.from_rows(DatasetRef, rows, extras)
