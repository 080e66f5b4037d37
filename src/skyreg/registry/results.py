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


Row = TypeVar("Row", CcdRef, PatchRef, TractRef)


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


def _empty_dtype(column: str) -> str:
    return "U1" if column in ("instrument", "skymap") else "i8"


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
