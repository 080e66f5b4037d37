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
from skyreg.service.errors import LimitExceeded, UsageFault
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


#: SIA query parameters: those of SIA 2.0, and RELEASEDATE of SIA 2.1.
SIA_PARAMETERS = frozenset({
    "POS", "BAND", "TIME", "POL", "FOV", "SPATRES", "EXPTIME", "ID", "COLLECTION", "FACILITY",
    "INSTRUMENT", "DPTYPE", "CALIB", "TARGET", "TIMERES", "SPECRP", "FORMAT", "RELEASEDATE",
})
#: DALI parameters of every DALI-sync endpoint. UPLOAD is refused where the protocol does
#: not use it; VERSION (dropped by DALI 1.1) and REQUEST (no value defined by SIA, DataLink
#: or SODA) are accepted and have no effect.
DALI_PARAMETERS = frozenset({"RESPONSEFORMAT", "MAXREC", "RUNID", "UPLOAD", "REQUEST",
                             "VERSION"})
_INTERVALS = ("BAND", "TIME", "EXPTIME", "FOV", "SPATRES", "SPECRP", "TIMERES")
_TEXTS = ("ID", "COLLECTION", "FACILITY", "INSTRUMENT", "DPTYPE", "TARGET", "FORMAT")
VOTABLE = "application/x-votable+xml"
_VOTABLE_TYPES = frozenset({VOTABLE, "text/xml"})
_RUNID_LENGTH = 64


@dataclass(frozen=True)
class DaliRequest:
    """What every DALI-sync request may carry besides its protocol's own parameters.

    ``media_type`` is the Content-Type of the answer: the media type the client asked for
    with RESPONSEFORMAT (DALI: a requested media type is echoed), else the protocol's own.
    ``ignored`` names the parameters that mean nothing to the endpoint: like TAP and Cone
    Search (which require it), and as SIA 2.0, DataLink and SODA leave open, they are
    ignored — the answer lists them, so a misspelt constraint is visible.
    """

    media_type: str
    runid: str | None = None
    ignored: tuple[str, ...] = ()


def dali_request(params: Params, known: frozenset[str], *, what: str,
                 formats: dict[str, str]) -> DaliRequest:
    """Check the DALI parameters: RESPONSEFORMAT (one of ``formats``: short form or media
    type → the media type to answer with; the first is the default), RUNID (at most 64
    characters; logged), UPLOAD (refused); every one of them single-valued."""
    for name in ("RESPONSEFORMAT", "MAXREC", "RUNID", "REQUEST"):
        single(params, name)
    if "UPLOAD" in params:
        raise UsageFault(f"UPLOAD: {what} takes no uploads")
    runid = single(params, "RUNID")
    if runid is not None and len(runid) > _RUNID_LENGTH:
        raise UsageFault(f"RUNID: at most {_RUNID_LENGTH} characters, got {len(runid)}")
    default = next(iter(formats.values()))
    media_type = default
    text = single(params, "RESPONSEFORMAT")
    if text is not None and text.strip():
        media_type = response_media_type(text, formats, what)
    ignored = tuple(sorted(set(params) - known - DALI_PARAMETERS))
    return DaliRequest(media_type, runid, ignored)


def response_media_type(text: str, formats: dict[str, str], what: str) -> str:
    """The Content-Type answering RESPONSEFORMAT=``text``.

    A short form gives the format's media type; a media type is answered with itself, MIME
    parameters included (VOTable: ``serialization`` may only be TABLEDATA, which is what the
    service writes). Media types compare case-insensitively (RFC 2045).
    """
    word = text.strip()
    base, _, rest = word.partition(";")
    base = base.strip().lower()
    if not rest and base in formats:
        return formats[base]
    if base not in formats.values():
        choices = ", ".join(sorted(set(formats) | set(formats.values())))
        raise UsageFault(f"RESPONSEFORMAT {text!r} is not supported by {what} (use one of: "
                         f"{choices})")
    for parameter in filter(None, (p.strip() for p in rest.split(";"))):
        key, _, value = parameter.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"')
        if base in _VOTABLE_TYPES and key == "serialization" and value.upper() != "TABLEDATA":
            raise UsageFault(f"RESPONSEFORMAT {text!r}: this service writes VOTable "
                             "serialization TABLEDATA only")
    return base + "".join(f";{p.strip()}" for p in rest.split(";") if p.strip())


#: RESPONSEFORMAT values of the VOTable answers (SIA, DataLink): DALI's table of names.
VOTABLE_FORMATS = {"votable": VOTABLE, "application/x-votable+xml": VOTABLE,
                   "text/xml": "text/xml"}


@dataclass(frozen=True)
class SiaQuery:
    """An SIA 2.0 query: values of one parameter are ORed, parameters ANDed.

    ``release_dates`` is None without RELEASEDATE; with it, nothing matches (the registry
    has no release dates: obs_release_date is NULL, and NULL never matches).
    """

    shapes: tuple[Shape, ...] = ()
    intervals: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    calib: list[int] | None = None
    pol: list[str] | None = None
    maxrec: int | None = None
    release_dates: list[tuple[str, str]] | None = None
    dali: DaliRequest = DaliRequest(VOTABLE)


def sia_query(params: Params) -> SiaQuery:
    """Parse and check an SIA query (parameters other than SIA's and DALI's are ignored
    and listed in the answer, see :class:`DaliRequest`)."""
    dali = dali_request(params, SIA_PARAMETERS, what="SIA 2.0", formats=VOTABLE_FORMATS)
    shapes = tuple(shape(value) for value in params.get("POS", []))
    intervals = {name: [interval(v, name) for v in params[name]]
                 for name in _INTERVALS if name in params}
    # Values are case-sensitive (SIA 2.0 section 2.1); ID is compared as an identifier.
    texts = {name: [v.strip() if name != "ID" else v for v in params[name]]
             for name in _TEXTS if name in params}
    calib = ([integer(v, "CALIB", 0, 4) for v in params["CALIB"]]
             if "CALIB" in params else None)
    pol = [v.strip() for v in params["POL"]] if "POL" in params else None
    maxrec_text = single(params, "MAXREC")
    maxrec = integer(maxrec_text, "MAXREC") if maxrec_text is not None else None
    release = ([timestamp_interval(v, "RELEASEDATE") for v in params["RELEASEDATE"]]
               if "RELEASEDATE" in params else None)
    return SiaQuery(shapes, intervals, texts, calib, pol, maxrec, release, dali)


def timestamp_interval(text: str, what: str) -> tuple[str, str]:
    """Two DALI timestamps (ISO 8601, ``YYYY-MM-DD['T'hh:mm:ss[.SSS]]``), or one meaning an
    exact match; returned normalised to ISO text."""
    from datetime import datetime

    words = text.split()
    if len(words) == 1:
        words = words * 2
    if len(words) != 2:
        raise UsageFault(f"{what}: expected one or two ISO 8601 timestamps, got {text!r}")
    values = []
    for word in words:
        try:
            values.append(datetime.fromisoformat(word.removesuffix("Z")))
        except ValueError:
            raise UsageFault(f"{what}: {word!r} is not an ISO 8601 timestamp") from None
    if values[0] > values[1]:
        raise UsageFault(f"{what}: {words[0]} is after {words[1]}")
    return values[0].isoformat(), values[1].isoformat()


@dataclass(frozen=True)
class SodaRequest:
    """One SODA sync cutout request: the dataset, its spatial filters (none: the whole image;
    several: one cutout each, in request order), and BAND / TIME / POL filters (None when
    absent; several values are ORed)."""

    dataset_id: str
    regions: tuple[SodaRegion, ...] = ()
    png: bool = False
    stretch: str = "asinh"
    interval: str = "zscale"
    band: list[tuple[float, float]] | None = None
    time: list[tuple[float, float]] | None = None
    pol: list[str] | None = None
    dali: DaliRequest = DaliRequest("image/fits")


@dataclass(frozen=True)
class SodaRegion:
    """One spatial filter: the DALI shape text (``CIRCLE ...``, ``POLYGON ...``, ``RANGE ...``)
    and the parsed shape (for the area limit)."""

    text: str
    shape: Shape


SODA_PARAMETERS = frozenset({"ID", "CIRCLE", "POLYGON", "POS", "BAND", "TIME", "POL",
                             "FORMAT", "STRETCH", "INTERVAL"})
#: RESPONSEFORMAT values of SODA answers (FITS by default); FORMAT is accepted as a synonym.
SODA_FORMATS = {"fits": "image/fits", "image/fits": "image/fits",
                "application/fits": "application/fits", "png": "image/png",
                "image/png": "image/png"}


def soda_request(params: Params, max_regions: int = 50) -> SodaRequest:
    """Parse a SODA sync request: one ID, any number (up to ``max_regions``) of CIRCLE /
    POLYGON / POS values.

    Several spatial values are answered with one multi-extension FITS file holding a cutout
    per value (in the order CIRCLE, POLYGON, POS, each in request order); a PNG rendering
    takes one at most, and several IDs are refused with ``MultiValuedParamNotSupported``, as
    the capabilities document says. BAND and TIME keep the image when they overlap its band
    or exposure and select no pixel otherwise; the images have no polarization axis, so POL
    selects none. Other parameters are ignored (:class:`DaliRequest`).
    """
    if "FORMAT" in params:
        if "RESPONSEFORMAT" in params:
            raise UsageFault("give RESPONSEFORMAT or FORMAT, not both")
        params = {**params, "RESPONSEFORMAT": params["FORMAT"]}
    dali = dali_request(params, SODA_PARAMETERS, what="SODA", formats=SODA_FORMATS)
    ids = params.get("ID", [])
    if not ids:
        raise UsageFault("ID is required")
    if len(ids) > 1:
        raise MultiValuedParamNotSupported("ID: one dataset per request")
    given = [(name, value) for name in ("CIRCLE", "POLYGON", "POS")
             for value in params.get(name, [])]
    if len(given) > max_regions:
        raise LimitExceeded(f"{len(given)} spatial filters (CIRCLE, POLYGON, POS); this "
                            f"service cuts at most {max_regions} per request")
    png = dali.media_type == "image/png"
    if png and len(given) > 1:
        raise MultiValuedParamNotSupported(
            "a PNG rendering takes one spatial filter (CIRCLE, POLYGON or POS); got "
            + ", ".join(name for name, _ in given) + "; ask for FITS to get them all")
    regions = []
    for name, value in given:
        if name == "POS":
            text = " ".join(value.split())
            region = shape(value, "POS")
        else:
            text = f"{name} {' '.join(value.split())}"
            region = bare_shape(name, value)
        regions.append(SodaRegion(text, region))
    stretch = (single(params, "STRETCH") or "asinh").strip().lower()
    if stretch not in ("asinh", "linear", "sqrt", "log"):
        raise UsageFault(f"STRETCH {stretch!r}: use asinh, linear, sqrt or log")
    scale = (single(params, "INTERVAL") or "zscale").strip().lower()
    if scale not in ("zscale", "minmax", "99.5"):
        raise UsageFault(f"INTERVAL {scale!r}: use zscale, minmax or 99.5")
    band = [interval(v, "BAND") for v in params["BAND"]] if "BAND" in params else None
    time = [interval(v, "TIME") for v in params["TIME"]] if "TIME" in params else None
    pol = [v.strip() for v in params["POL"]] if "POL" in params else None
    return SodaRequest(ids[0], tuple(regions), png, stretch, scale, band, time, pol, dali)


def overlaps_any(low: float | None, high: float | None,
                 wanted: list[tuple[float, float]]) -> bool:
    """Whether [low, high] overlaps one of the intervals (an unknown range never does)."""
    if low is None or high is None:
        return False
    return any(lo <= high and hi >= low for lo, hi in wanted)


class MultiValuedParamNotSupported(UsageFault):
    """SODA's error for a parameter given several values the service cannot combine."""

    fault = "MultiValuedParamNotSupported"
