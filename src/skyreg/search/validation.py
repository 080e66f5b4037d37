"""Checks of query arguments that are not geometry: time ranges and filter names.

Kept apart from the query engine so that what is refused (and how it is worded) stays the same
whichever way the queries themselves are run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import CompoundSelect, Select, any_, bindparam, func, select, union
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from skyreg.db.connection import ReadConnection
from skyreg.errors import SkyregError, UnknownNameWarning
from skyreg.schema import instrument, patch_dataset, skymap, visit

NameKind = Literal["instrument", "band", "skymap"]


class QueryError(SkyregError, ValueError):
    """A query was asked with arguments that do not make sense."""


#: Longest name accepted for what the registry stores by name (B-tree keys must fit a page).
MAX_NAME_LENGTH = 256


def stored_name(value: Any, what: str) -> str:
    """A name the registry will store (sky map, dataset type): text PostgreSQL can hold."""
    if not isinstance(value, str) or not value:
        raise QueryError(f"{what}: expected a non-empty name, got {value!r}")
    if "\x00" in value:
        raise QueryError(f"{what}: {value!r} contains a NUL character")
    if len(value) > MAX_NAME_LENGTH:
        raise QueryError(f"{what}: {value[:20]!r}... is {len(value)} characters long; at most "
                         f"{MAX_NAME_LENGTH}")
    return value


def stored_text(value: Any, what: str) -> str:
    """Free text the registry will store (a description): a string without NUL."""
    if not isinstance(value, str):
        raise QueryError(f"{what}: expected text, got {value!r}")
    if "\x00" in value:
        raise QueryError(f"{what}: contains a NUL character, which PostgreSQL cannot store")
    return value


def mjd_tai(value: Any, what: str) -> float:
    """MJD (TAI) from an astropy Time or a finite number already in MJD TAI."""
    if hasattr(value, "tai") and hasattr(value, "mjd"):
        try:
            result = float(value.tai.mjd)
        except (TypeError, ValueError) as err:  # an array-valued Time, say
            raise QueryError(f"{what}: expected one time, got {value!r}") from err
    else:
        if isinstance(value, (str, bytes)):
            raise QueryError(f"{what}: expected an astropy Time or an MJD (TAI) number, "
                             f"got the string {value!r}")
        try:
            result = float(value)
        except (TypeError, ValueError) as err:
            raise QueryError(f"{what}: expected an astropy Time or an MJD (TAI) number, "
                             f"got {value!r}") from err
    if not math.isfinite(result):
        raise QueryError(f"{what}: must be finite, got {result}")
    return result


def time_range(value: Any) -> tuple[float, float]:
    """(start, end) in MJD TAI from a pair of Times or MJDs; a reversed range is refused.

    A range that ends before it starts would silently select nothing, which reads as "no
    data" when it is a slip of the argument order. start == end is an instant, and is fine.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise QueryError(f"time: expected (start, end), got {value!r}")
    start, end = mjd_tai(value[0], "time[0]"), mjd_tai(value[1], "time[1]")
    if end < start:
        raise QueryError(f"time: the range ends (MJD {end}) before it starts (MJD {start}); "
                         "give (start, end)")
    return start, end


def _known(kind: NameKind) -> Select[Any] | CompoundSelect[Any]:
    """Those of the bound ``names`` that the registry holds, for one kind of name."""
    names = any_(bindparam("names", type_=ARRAY(Text)))
    if kind == "instrument":
        return select(instrument.c.name).where(instrument.c.name == names)
    if kind == "skymap":
        return select(skymap.c.name).where(skymap.c.name == names)
    # Bands: those an instrument declares (a tiny table), those of stored visits and those of
    # coadd files (no index leads with band, so this scans; it runs only for names not seen
    # before).
    declared = select(func.unnest(instrument.c.bands).label("band")).subquery()
    return union(select(declared.c.band).where(declared.c.band == names),
                 select(visit.c.band).where(visit.c.band == names).distinct(),
                 select(patch_dataset.c.band).where(patch_dataset.c.band == names).distinct())


class NameChecker:
    """Warns (:class:`UnknownNameWarning`) about filter names the registry does not hold.

    Names found once are remembered, so the hot path of repeated queries costs nothing; a name
    not found is looked up again next time (another process may have added it since).
    """

    def __init__(self) -> None:
        self._seen: dict[NameKind, set[str]] = {"instrument": set(), "band": set(),
                                                "skymap": set()}

    def check(self, connection: ReadConnection, kind: NameKind, names: Sequence[str] | None,
              stacklevel: int = 3) -> None:
        """Warn about the ``names`` of ``kind`` not in the registry (``stacklevel`` as for
        :func:`warnings.warn`, counted from the caller of this method)."""
        if not names:
            return
        seen = self._seen[kind]
        missing = sorted({name for name in names if name not in seen})
        if not missing:
            return
        found: set[str] = set(connection.execute(_known(kind), {"names": missing}).scalars())
        seen |= found
        unknown = [name for name in missing if name not in found]
        if unknown:
            listed = ", ".join(repr(name) for name in unknown)
            noun = {"instrument": "instrument", "band": "band", "skymap": "sky map"}[kind]
            warnings.warn(f"{kind}: no {noun} {listed} in this registry; that filter matches "
                          "nothing", UnknownNameWarning, stacklevel=stacklevel)
