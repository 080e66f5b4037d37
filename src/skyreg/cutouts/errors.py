"""Errors of stamp and cutout requests.

The web service maps them to DALI errors: :class:`RegionError` and :class:`TargetError` are the
caller's fault (HTTP 400 with the message); a request whose region holds no pixel of a file is
not an error at all (the SODA function returns None: HTTP 204). :class:`FileReadError` is a
problem with one file; batch requests report it per file and carry on with the others.
"""

from __future__ import annotations

from skyreg.errors import InputError, SkyregError


class StampError(SkyregError):
    """Base class of every error a stamp or cutout request raises on purpose."""


class RegionError(StampError, ValueError):
    """A region (CIRCLE/POLYGON/RANGE string, sphgeom region, pixel mask) that cannot be used."""


class TargetError(InputError, StampError):
    """A bad target list: names the file (when read from one), row and field."""


class StampRequestError(StampError, ValueError):
    """Arguments of a stamp request that do not make sense (size, planes, modes, sky map)."""


class FileReadError(StampError):
    """A registered file that cannot be read (missing, not FITS, unknown URI scheme...)."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{uri}: {reason}")
        self.uri = uri
        self.reason = reason
