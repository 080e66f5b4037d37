"""Result rows of registry queries: small named tuples, and a list that becomes an astropy Table."""

from __future__ import annotations

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


def ccd_results(rows: Any) -> ResultList[CcdRef]:
    """Wrap CCD rows, sorted for stable output."""
    return ResultList(sorted(rows), CcdRef._fields)


def patch_results(rows: Any) -> ResultList[PatchRef]:
    """Wrap patch rows, sorted for stable output."""
    return ResultList(sorted(rows), PatchRef._fields)


def tract_results(rows: Any) -> ResultList[TractRef]:
    """Wrap tract rows, sorted for stable output."""
    return ResultList(sorted(rows), TractRef._fields)
