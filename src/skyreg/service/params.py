"""Parsing of DALI-style request parameters (SIA, SODA, DataLink), without any I/O.

DALI parameter names are case-insensitive and may repeat; values are strings. Every parser
raises :class:`UsageFault` with a message naming the parameter, which the protocol routers
turn into a DALI error document.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from skyreg.geometry.polygons import GeometryError
from skyreg.service.errors import UsageFault
from skyreg.service.regions import Shape, shape_from_numbers

Params = dict[str, list[str]]


def collect(pairs: Iterable[tuple[str, str]]) -> Params:
    """Parameters by upper-case name, values in request order."""
    params: Params = {}
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            raise UsageFault(f"parameter {name!r}: NUL characters are not allowed")
        params.setdefault(name.upper(), []).append(value)
    return params


def number(text: str, what: str) -> float:
    """A float; ``Inf``, ``+Inf``, ``-Inf`` and ``Infinity`` as DALI allows."""
    word = text.strip()
    try:
        value = float(word)
    except ValueError:
        raise UsageFault(f"{what}: {text!r} is not a number") from None
    if math.isnan(value):
        raise UsageFault(f"{what}: NaN is not allowed")
    return value


def numbers(text: str, what: str) -> list[float]:
    return [number(word, what) for word in text.split()]


def shape(text: str, what: str = "POS") -> Shape:
    """``CIRCLE ra dec r``, ``RANGE ra1 ra2 dec1 dec2`` or ``POLYGON ra1 dec1 ...``."""
    words = text.split()
    if not words:
        raise UsageFault(f"{what}: empty value")
    kind = words[0].upper()
    try:
        return shape_from_numbers(kind, [number(w, what) for w in words[1:]], what)
    except GeometryError as err:
        raise UsageFault(str(err)) from None


def bare_shape(kind: str, text: str) -> Shape:
    """SODA's CIRCLE / POLYGON parameters: the numbers without the keyword."""
    try:
        return shape_from_numbers(kind, numbers(text, kind), kind)
    except GeometryError as err:
        raise UsageFault(str(err)) from None


def interval(text: str, what: str) -> tuple[float, float]:
    """``lo hi`` (either may be infinite), or one value meaning ``[v, v]``."""
    values = numbers(text, what)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise UsageFault(f"{what}: expected 'low high', got {text!r}")
    lo, hi = values
    if lo > hi:
        raise UsageFault(f"{what}: low {lo} is greater than high {hi}")
    return lo, hi


def integer(text: str, what: str, low: int = 0, high: int = 2**63 - 1) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise UsageFault(f"{what}: {text!r} is not an integer") from None
    if not low <= value <= high:
        raise UsageFault(f"{what}: {value} is outside [{low}, {high}]")
    return value


def single(params: Params, name: str) -> str | None:
    """The one value of a parameter that may not repeat (None if absent)."""
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise UsageFault(f"{name}: given {len(values)} times; only one value is allowed")
    return values[0]


#: SIA 2.0 query parameters this service understands (others are refused by name).
SIA_PARAMETERS = frozenset({
    "POS", "BAND", "TIME", "POL", "FOV", "SPATRES", "EXPTIME", "ID", "COLLECTION", "FACILITY",
    "INSTRUMENT", "DPTYPE", "CALIB", "TARGET", "TIMERES", "SPECRP", "FORMAT", "MAXREC",
    "RESPONSEFORMAT", "REQUEST", "LANG", "VERSION", "RUNID", "UPLOAD",
})
_INTERVALS = ("BAND", "TIME", "EXPTIME", "FOV", "SPATRES", "SPECRP", "TIMERES")
_TEXTS = ("ID", "COLLECTION", "FACILITY", "INSTRUMENT", "DPTYPE", "TARGET", "FORMAT")
_VOTABLE_FORMATS = frozenset({"votable", "application/x-votable+xml", "text/xml",
                              "application/x-votable+xml;serialization=tabledata"})


@dataclass(frozen=True)
class SiaQuery:
    """An SIA 2.0 query: values of one parameter are ORed, parameters ANDed."""

    shapes: tuple[Shape, ...] = ()
    intervals: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    calib: list[int] | None = None
    pol: list[str] | None = None
    maxrec: int | None = None


def sia_query(params: Params) -> SiaQuery:
    """Parse and check an SIA query; unknown parameters are refused (a typo must not widen
    a search silently)."""
    unknown = sorted(set(params) - SIA_PARAMETERS)
    if unknown:
        listed = sorted(SIA_PARAMETERS - {"REQUEST", "LANG", "VERSION", "RUNID", "UPLOAD"})
        raise UsageFault(f"unknown parameter {unknown[0]} (SIA 2.0 parameters: "
                         f"{', '.join(listed)})")
    if "UPLOAD" in params:
        raise UsageFault("UPLOAD is not supported")
    response_format = single(params, "RESPONSEFORMAT")
    if response_format is not None and response_format.strip().lower() not in _VOTABLE_FORMATS:
        raise UsageFault(f"RESPONSEFORMAT {response_format!r} is not supported (only VOTable)")
    shapes = tuple(shape(value) for value in params.get("POS", []))
    intervals = {name: [interval(v, name) for v in params[name]]
                 for name in _INTERVALS if name in params}
    texts = {name: [v.strip() if name != "ID" else v for v in params[name]]
             for name in _TEXTS if name in params}
    if "DPTYPE" in texts:
        texts["DPTYPE"] = [v.lower() for v in texts["DPTYPE"]]
    calib = ([integer(v, "CALIB", 0, 4) for v in params["CALIB"]]
             if "CALIB" in params else None)
    pol = [v.strip() for v in params["POL"]] if "POL" in params else None
    maxrec_text = single(params, "MAXREC")
    maxrec = integer(maxrec_text, "MAXREC") if maxrec_text is not None else None
    return SiaQuery(shapes, intervals, texts, calib, pol, maxrec)


@dataclass(frozen=True)
class SodaRequest:
    """One SODA sync cutout: the dataset and at most one spatial filter."""

    dataset_id: str
    shape: Shape | None
    png: bool = False
    stretch: str = "asinh"
    interval: str = "zscale"


SODA_PARAMETERS = frozenset({"ID", "CIRCLE", "POLYGON", "POS", "BAND", "TIME", "POL",
                             "RESPONSEFORMAT", "FORMAT", "STRETCH", "INTERVAL", "RUNID"})
_PNG_FORMATS = frozenset({"png", "image/png"})
_FITS_FORMATS = frozenset({"fits", "image/fits", "application/fits"})


def soda_request(params: Params) -> SodaRequest:
    """Parse a SODA sync request (one ID, at most one of CIRCLE / POLYGON / POS).

    Several spatial values are refused with ``MultiValuedParamNotSupported``, as the
    capabilities document says; BAND, TIME and POL do not apply to 2-D images and are refused.
    """
    unknown = sorted(set(params) - SODA_PARAMETERS)
    if unknown:
        raise UsageFault(f"unknown parameter {unknown[0]} (SODA parameters: ID, CIRCLE, "
                         "POLYGON, POS, RESPONSEFORMAT, STRETCH, INTERVAL)")
    ids = params.get("ID", [])
    if not ids:
        raise UsageFault("ID is required")
    if len(ids) > 1:
        raise MultiValuedParamNotSupported("ID: one dataset per request")
    for name in ("BAND", "TIME", "POL"):
        if name in params:
            raise UsageFault(f"{name} does not apply to the 2-D images of this service")
    given = [(name, value) for name in ("CIRCLE", "POLYGON", "POS")
             for value in params.get(name, [])]
    if len(given) > 1:
        raise MultiValuedParamNotSupported(
            "one spatial filter (CIRCLE, POLYGON or POS) per request; got "
            + ", ".join(name for name, _ in given))
    region: Shape | None = None
    if given:
        name, value = given[0]
        region = shape(value, "POS") if name == "POS" else bare_shape(name, value)
    formats = params.get("RESPONSEFORMAT", []) + params.get("FORMAT", [])
    if len(formats) > 1:
        raise UsageFault("RESPONSEFORMAT: only one value is allowed")
    png = False
    if formats:
        word = formats[0].strip().lower()
        if word in _PNG_FORMATS:
            png = True
        elif word not in _FITS_FORMATS:
            raise UsageFault(f"RESPONSEFORMAT {formats[0]!r}: use image/fits or image/png")
    stretch = (single(params, "STRETCH") or "asinh").strip().lower()
    if stretch not in ("asinh", "linear", "sqrt", "log"):
        raise UsageFault(f"STRETCH {stretch!r}: use asinh, linear, sqrt or log")
    scale = (single(params, "INTERVAL") or "zscale").strip().lower()
    if scale not in ("zscale", "minmax", "99.5"):
        raise UsageFault(f"INTERVAL {scale!r}: use zscale, minmax or 99.5")
    return SodaRequest(ids[0], region, png, stretch, scale)


class MultiValuedParamNotSupported(UsageFault):
    """SODA's error for a parameter given several values the service cannot combine."""

    fault = "MultiValuedParamNotSupported"
