"""Exceptions that skyreg raises on purpose.

Every error meant for a user derives from :class:`SkyregError`, so the CLI can print it as one
line and exit non-zero instead of showing a traceback.
"""

from __future__ import annotations


class SkyregError(Exception):
    """Base class of all errors that carry a message fit for an end user."""


class InputError(SkyregError):
    """Bad input data, located as precisely as we can: file, row and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.field = field
        self.reason = message
        location = []
        if row is not None:
            location.append(f"row {row}")
        if field is not None:
            location.append(f"field {field!r}")
        prefix = [part for part in (file, ", ".join(location)) if part]
        super().__init__(": ".join([*prefix, message]))


class ConflictError(SkyregError):
    """A record with the same key is already stored with different content."""


class NotFoundError(SkyregError):
    """A named object (CCD, patch, tract, sky map, ...) is not in the registry."""


class DatabaseError(SkyregError):
    """The database could not be reached or set up."""


class InputErrors(SkyregError):
    """Several input problems found in one pass; each is an :class:`InputError` line."""

    def __init__(self, problems: list[InputError], total: int | None = None) -> None:
        self.problems = problems
        self.total = total if total is not None else len(problems)
        lines = [str(problem) for problem in problems]
        if self.total > len(problems):
            lines.append(f"... and {self.total - len(problems)} more problems")
        super().__init__("\n".join(lines))


class ConnectionLostError(DatabaseError):
    """The connection to the database server broke: a restart, a terminated session, the network.

    Reads are retried once on a new connection before this is raised; writes never are (see
    :class:`skyreg.registry.Registry`), so the message says what became of the interrupted work.
    """
