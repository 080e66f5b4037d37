"""Result rows of registry queries: small named tuples, and a list that becomes an astropy Table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

if TYPE_CHECKING:
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


Row = TypeVar("Row", CcdRef, PatchRef, TractRef, "DatasetRef")


class ResultList(list[Row], Generic[Row]):
    """A list of result rows that knows its column names (for tables, JSON and CSV)."""

    def __init__(self, rows: Any, columns: tuple[str, ...]) -> None:
        super().__init__(rows)
        self.columns = columns

    def to_table(self) -> Table:
        """The rows as an astropy Table (one column per field, even when empty)."""
        from astropy.table import Table  # astropy is slow to import; only load it when asked

        if not self:
            return Table(names=self.columns, dtype=[_empty_dtype(c) for c in self.columns])
        return Table(rows=[tuple(row) for row in self], names=self.columns)

    def to_dicts(self) -> list[dict[str, Any]]:
        """The rows as plain dicts, for JSON output."""
        return [dict(zip(self.columns, row, strict=True)) for row in self]


_TEXT_COLUMNS = ("instrument", "skymap", "dataset_type", "band", "uri", "format", "checksum")


def _empty_dtype(column: str) -> str:
    return "U1" if column in _TEXT_COLUMNS else "i8"


def _rows(kind: type[Row], rows: Iterable[tuple[Any, ...]]) -> list[Row]:
    """Key fields of each row, sorted (stable output), as ``kind`` named tuples."""
    # tuple.__new__ skips the named tuple's Python-level constructor: this runs per result row.
    new, width = tuple.__new__, len(kind._fields)
    return [new(kind, key) for key in sorted(row[:width] for row in rows)]


def ccd_results(rows: Iterable[tuple[Any, ...]]) -> ResultList[CcdRef]:
    """CCD rows (instrument, visit, detector, ...) as a sorted result list."""
    return ResultList(_rows(CcdRef, rows), CcdRef._fields)


def patch_results(rows: Iterable[tuple[Any, ...]]) -> ResultList[PatchRef]:
    """Patch rows (skymap, tract, patch, ...) as a sorted result list."""
    return ResultList(_rows(PatchRef, rows), PatchRef._fields)


def tract_results(rows: Iterable[tuple[Any, ...]]) -> ResultList[TractRef]:
    """Tract rows (skymap, tract, ...) as a sorted result list."""
    return ResultList(_rows(TractRef, rows), TractRef._fields)


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


def dataset_results(rows: Iterable[tuple[Any, ...]]) -> ResultList[DatasetRef]:
    """Dataset rows (the DatasetRef fields) as a result list sorted by data ID.

    One query returns one dataset type, whose data IDs have values in the same fields (the
    others are None in every row), so plain tuple order works.
    """
    new = tuple.__new__
    return ResultList([new(DatasetRef, row) for row in sorted(rows)], DatasetRef._fields)
