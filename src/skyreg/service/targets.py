"""What a person types into the sky viewer's search box, parsed.

Accepted (case-insensitive keywords, commas or spaces between parts):

* ``RA DEC [RADIUS]`` in degrees: ``150.1 2.2``, ``150.1, 2.2, 0.3``;
* sexagesimal, RA in hours: ``10:00:28.6 +02:12:21``, ``10h00m28.6s +2d12m21s``,
  ``10 00 28.6 +02 12 21`` (six numbers), optionally followed by a radius;
* a radius with a unit: ``12arcmin``, ``30arcsec``, ``0.5deg`` (plain numbers are degrees);
* ``tract SKYMAP TRACT`` and ``patch SKYMAP TRACT PATCH``.

Object names (``M31``, ``NGC 1300``) need a name resolver on the network; the service works
without network access, so it says so instead of guessing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from skyreg.errors import SkyregError

#: Radius of a cone when none is typed, degrees.
DEFAULT_RADIUS_DEG = 0.3


class TargetError(SkyregError, ValueError):
    """Text that is not a position, tract or patch."""


@dataclass(frozen=True)
class Target:
    """A cone (``kind="cone"``: ra, dec, radius in degrees) or a tract/patch key."""

    kind: str
    ra: float | None = None
    dec: float | None = None
    radius: float | None = None
    skymap: str | None = None
    tract: int | None = None
    patch: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {name: value for name, value in self.__dict__.items() if value is not None}


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_UNITS = {"deg": 1.0, "d": 1.0, "°": 1.0, "arcmin": 1 / 60, "amin": 1 / 60, "'": 1 / 60,
          "arcsec": 1 / 3600, "asec": 1 / 3600, '"': 1 / 3600}
_RADIUS = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(deg|d|°|arcmin|amin|'|"
                     r"arcsec|asec|\")?$")
_HMS = re.compile(r"^(\d{1,2})[:h ](\d{1,2})(?:m|[:m ](\d{1,2}(?:\.\d*)?)s?)?$")
_DMS = re.compile(r"^([+-]?)(\d{1,2})[:d° ](\d{1,2})(?:[m']|[:m' ](\d{1,2}(?:\.\d*)?)[s\"]?)?$")


def _number(text: str) -> float | None:
    return float(text) if _NUMBER.match(text) else None


def _radius(text: str) -> float:
    match = _RADIUS.match(text)
    if not match:
        raise TargetError(f"{text!r} is not a radius (degrees, or e.g. 12arcmin)")
    value = float(match.group(1)) * _UNITS.get(match.group(2) or "deg", 1.0)
    if not 0.0 < value <= 180.0:
        raise TargetError(f"radius {text!r}: must be > 0 and at most 180 degrees")
    return value


def _hours(text: str) -> float | None:
    match = _HMS.match(text)
    if not match:
        return None
    h, m, s = int(match.group(1)), int(match.group(2)), float(match.group(3) or 0.0)
    if h >= 24 or m >= 60 or s >= 60:
        raise TargetError(f"RA {text!r}: hours < 24, minutes and seconds < 60")
    return 15.0 * (h + m / 60 + s / 3600)


def _degrees(text: str) -> float | None:
    match = _DMS.match(text)
    if not match:
        return None
    sign = -1.0 if match.group(1) == "-" else 1.0
    d, m, s = int(match.group(2)), int(match.group(3)), float(match.group(4) or 0.0)
    if m >= 60 or s >= 60:
        raise TargetError(f"Dec {text!r}: minutes and seconds < 60")
    return sign * (d + m / 60 + s / 3600)


def _int(text: str, what: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise TargetError(f"{what} {text!r} is not an integer")
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise TargetError(f"{what} {text!r} is outside the 64-bit range")
    return value


def _cone(ra: float, dec: float, radius: float) -> Target:
    if not (math.isfinite(ra) and -90.0 <= dec <= 90.0):
        raise TargetError(f"Dec {dec:g} is outside [-90, 90]")
    return Target("cone", ra=ra % 360.0, dec=dec, radius=radius)


def parse_target(text: str) -> Target:
    """The position, tract or patch named by ``text`` (TargetError with the reason if none)."""
    words = [w for w in re.split(r"[\s,]+", text.strip()) if w]
    if not words:
        raise TargetError("type a position (RA Dec, degrees or sexagesimal), "
                          "'tract SKYMAP TRACT' or 'patch SKYMAP TRACT PATCH'")
    keyword = words[0].lower()
    if keyword in ("tract", "patch"):
        parts = 3 if keyword == "tract" else 4
        if len(words) != parts:
            raise TargetError(f"expected '{keyword} SKYMAP TRACT{' PATCH' if parts == 4 else ''}'"
                              f", got {text.strip()!r}")
        if keyword == "tract":
            return Target("tract", skymap=words[1], tract=_int(words[2], "tract"))
        return Target("patch", skymap=words[1], tract=_int(words[2], "tract"),
                      patch=_int(words[3], "patch"))
    numbers = [_number(w) for w in words]
    if len(words) in (2, 3) and numbers[0] is not None and numbers[1] is not None:
        radius = _radius(words[2]) if len(words) == 3 else DEFAULT_RADIUS_DEG
        return _cone(numbers[0], numbers[1], radius)
    if len(words) in (6, 7) and all(n is not None for n in numbers[:6]):
        ra = _hours(" ".join(words[0:3]))
        dec = _degrees(" ".join(words[3:6]))
        if ra is not None and dec is not None:
            radius = _radius(words[6]) if len(words) == 7 else DEFAULT_RADIUS_DEG
            return _cone(ra, dec, radius)
    if len(words) in (2, 3):
        ra = _number(words[0])
        if ra is None:
            ra = _hours(words[0].lower())
        dec = _number(words[1])
        if dec is None:
            dec = _degrees(words[1].lower())
        if ra is not None and dec is not None:
            radius = _radius(words[2].lower()) if len(words) == 3 else DEFAULT_RADIUS_DEG
            return _cone(ra, dec, radius)
    raise TargetError(
        f"{text.strip()!r} is not a position, tract or patch. Object names need a name "
        "resolver on the network, which this service does not use: type RA Dec (degrees, "
        "or e.g. 10:00:28.6 +02:12:21)")
