"""Collects input problems so one run reports many of them, each naming file, row and field."""

from __future__ import annotations

from skyreg.errors import InputError, InputErrors

#: How many problems are kept in full; the rest are only counted.
MAX_REPORTED = 25


class Problems:
    """A bounded list of :class:`InputError`; :meth:`raise_if_any` turns it into one error."""

    def __init__(self) -> None:
        self.kept: list[InputError] = []
        self.total = 0

    def add(self, file: str, message: str, *, row: int | None = None,
            field: str | None = None) -> None:
        self.total += 1
        if len(self.kept) < MAX_REPORTED:
            self.kept.append(InputError(message, file=file, row=row, field=field))

    def __bool__(self) -> bool:
        return self.total > 0

    def raise_if_any(self) -> None:
        if self.total:
            raise InputErrors(self.kept, self.total)
