"""Stable identifiers of archived datasets, built from their data IDs.

A dataset is named by what it *is* — dataset type and data ID — never by a surrogate row id,
so an identifier handed out today (in an SIA answer, a DataLink document, an alert packet's
cutout URL) resolves to the same file for as long as that file is registered, whatever is
re-ingested, vacuumed or renumbered in between::

    ivo://skyreg/calexp?LSSTCam/2027010100042/94          (instrument/visit/detector)
    ivo://skyreg/deepCoadd?rings/9813/40/r                 (skymap/tract/patch/band)

Every part is percent-encoded with RFC 3986's unreserved characters left as they are
(``urllib.parse.quote(part, safe="")``), so names holding ``/``, ``?`` or spaces round-trip.
The SQL view ``ivoa.obscore`` builds the same strings (``ivoa.skyreg_uri_escape``); a test
compares the two on random names.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote, unquote

from skyreg.errors import SkyregError

#: The naming authority of the identifiers. Identifiers are resolved by data ID, so a service
#: behind another public name still answers for them.
AUTHORITY = "skyreg"
PREFIX = f"ivo://{AUTHORITY}/"


class DatasetIdError(SkyregError, ValueError):
    """A string that is not a skyreg dataset identifier."""


class DatasetKey(NamedTuple):
    """Dataset type and data ID of one archived dataset (CCD or patch fields filled)."""

    dataset_type: str
    instrument: str | None = None
    visit: int | None = None
    detector: int | None = None
    skymap: str | None = None
    tract: int | None = None
    patch: int | None = None
    band: str | None = None

    @property
    def dimensions(self) -> str:
        """``'ccd'`` or ``'patch'``: which footprint table the data ID names."""
        return "ccd" if self.instrument is not None else "patch"

    def data_id_parts(self) -> tuple[str, ...]:
        if self.dimensions == "ccd":
            return (str(self.instrument), str(self.visit), str(self.detector))
        return (str(self.skymap), str(self.tract), str(self.patch), str(self.band))


def _escape(part: str) -> str:
    return quote(part, safe="")


def dataset_id(key: DatasetKey) -> str:
    """The identifier of a dataset (see the module docstring for the layout)."""
    return (PREFIX + _escape(key.dataset_type) + "?"
            + "/".join(_escape(part) for part in key.data_id_parts()))


def ccd_dataset_key(dataset_type: str, instrument: str, visit: int, detector: int) -> DatasetKey:
    return DatasetKey(dataset_type, instrument=instrument, visit=int(visit),
                      detector=int(detector))


def patch_dataset_key(dataset_type: str, skymap: str, tract: int, patch: int,
                      band: str) -> DatasetKey:
    return DatasetKey(dataset_type, skymap=skymap, tract=int(tract), patch=int(patch),
                      band=band)


def _int(text: str, what: str, identifier: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise DatasetIdError(f"{identifier!r}: {what} {text!r} is not an integer") from None
    if not -(2**63) <= value < 2**63:
        raise DatasetIdError(f"{identifier!r}: {what} {text!r} is outside the 64-bit range")
    return value


def parse_dataset_id(identifier: str) -> DatasetKey:
    """The dataset type and data ID named by ``identifier``; DatasetIdError if malformed.

    The authority is not checked: identifiers are resolved by their data ID, so one published
    under another authority (a service renamed behind a proxy) still resolves. The scheme is
    case-insensitive (IVOA identifiers); dataset type and data ID are names and keep their
    case.
    """
    if not isinstance(identifier, str) or identifier[:6].lower() != "ivo://":
        raise DatasetIdError(f"{identifier!r} is not an ivo:// dataset identifier")
    rest = identifier[len("ivo://"):]
    authority, slash, tail = rest.partition("/")
    dataset_type, question, data_id = tail.partition("?")
    if not authority or not slash or not question or not dataset_type:
        raise DatasetIdError(
            f"{identifier!r}: expected ivo://{AUTHORITY}/<dataset type>?<data ID>")
    try:
        parts = [unquote(part, errors="strict") for part in data_id.split("/")]
        kind = unquote(dataset_type, errors="strict")
    except UnicodeDecodeError:
        raise DatasetIdError(f"{identifier!r}: percent-escapes are not UTF-8") from None
    if any("\x00" in part for part in (*parts, kind)):
        raise DatasetIdError(f"{identifier!r}: names cannot contain NUL characters")
    if len(parts) == 3:
        return ccd_dataset_key(kind, parts[0], _int(parts[1], "visit", identifier),
                               _int(parts[2], "detector", identifier))
    if len(parts) == 4:
        return patch_dataset_key(kind, parts[0], _int(parts[1], "tract", identifier),
                                 _int(parts[2], "patch", identifier), parts[3])
    raise DatasetIdError(
        f"{identifier!r}: a data ID has 3 parts (instrument/visit/detector) or 4 "
        "(skymap/tract/patch/band)")
