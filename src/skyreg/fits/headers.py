"""Read the headers of a FITS file straight from its 2880-byte blocks, never its data.

``astropy.io.fits.open`` builds HDU objects and full ``Header`` objects for every extension;
a registry scan needs a handful of keywords per HDU and must never touch pixel data, so this
module walks the file itself: read header blocks up to the END card, work out the data size
from BITPIX/NAXISn/PCOUNT/GCOUNT, and step over the data (``skyreg.fits.streams``: a seek in a
plain file, inflation in a gzip or bzip2 one). Card values are parsed only when a
keyword is actually looked up: plain cards here, anything unusual by astropy (``Card.fromstring``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from astropy.io import fits
from astropy.io.fits.verify import VerifyError

from skyreg.fits.streams import CompressedStreamError, FitsStream

BLOCK = 2880
CARD = 80
_END = b"END" + b" " * 77
_COMMENTARY = {"COMMENT", "HISTORY", "", "CONTINUE"}


class FitsStructureError(Exception):
    """The file is not (or no longer) a valid FITS file; ``hdu`` is None for file-level."""

    def __init__(self, reason: str, hdu: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hdu = hdu


_NOT_SIMPLE = object()
_KEYWORD = re.compile(r"[A-Za-z0-9_-]+ *")
_INTEGER = re.compile(r"[+-]?\d+")
#: 'field: number' strings are record-valued keyword cards to astropy (distortion keywords).
_RECORD = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*\s*:\s*[+-]?[0-9.]")
_REAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([EeDd][+-]?\d+)?")


def _simple_value(image: str) -> Any:
    """The value of a plain 80-character ``KEYWORD = value / comment`` card, or _NOT_SIMPLE.

    Parsing a card with astropy costs ~30 µs (verification, configuration lookups); the plain
    cards that make up almost every header — quoted strings, logicals, integers, reals — are
    read here in a few µs. Anything else (complex values, long strings, HIERARCH, undefined
    values) is left to astropy.
    """
    if len(image) != 80 or image[8:10] != "= " or not _KEYWORD.fullmatch(image[:8]):
        return _NOT_SIMPLE
    field = image[10:].lstrip()
    if field.startswith("'"):
        end = field.find("'", 1)
        if end < 0 or field[end + 1:end + 2] == "'":
            # No closing quote, or an escaped quote (''): astropy reads some of those
            # differently from a plain scan, and its reading is the reference.
            return _NOT_SIMPLE
        rest = field[end + 1:].strip()
        if (rest and not rest.startswith("/")) or "'" in rest:
            return _NOT_SIMPLE  # not plain, or ambiguous: astropy's reading is the reference
        value = field[1:end].rstrip()
        return _NOT_SIMPLE if _RECORD.match(value) else value
    token = field.split("/", 1)[0].strip()
    if token == "T":
        return True
    if token == "F":
        return False
    if _INTEGER.fullmatch(token):
        return int(token)
    if _REAL.fullmatch(token):
        return float(token.replace("D", "E").replace("d", "e"))
    return _NOT_SIMPLE


class UnparsableCard(ValueError):
    """A card whose value is not valid FITS (``CRVAL1 = NaN``, an unquoted string, ...).

    astropy refuses to read such values too; the scan turns this into a problem of the HDU
    rather than guess what the writer meant.
    """

    def __init__(self, keyword: str, image: str) -> None:
        self.keyword = keyword
        self.text = image[10:].split(" /", 1)[0].strip() if image[8:10] == "= " else image[8:]
        super().__init__(f"keyword {keyword} value {self.text!r} is not a valid FITS value")


class CardHeader(Mapping[str, Any]):
    """A read-only header: keyword -> value, each card parsed by astropy on first access.

    A value that is not valid FITS raises :class:`UnparsableCard` (a ValueError) when looked
    up, so ``get`` does not mistake it for an absent keyword.

    The first card of a keyword wins, as in ``astropy.io.fits.Header``; HIERARCH keywords are
    stored without the ``HIERARCH`` prefix.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._cards: dict[str, str] = {}
        self._values: dict[str, Any] = {}
        count = len(text) // CARD
        i = 0
        while i < count:
            image = text[i * CARD : (i + 1) * CARD]
            i += 1
            keyword = image[:8].rstrip()
            if keyword == "END":
                break
            if keyword == "HIERARCH":
                keyword = image[9:].split("=", 1)[0].strip()
            # Long strings continue on CONTINUE cards that belong to this card's image.
            while i < count and text[i * CARD : i * CARD + 8] == "CONTINUE":
                image += text[i * CARD : (i + 1) * CARD]
                i += 1
            keyword = keyword.upper()
            if keyword in _COMMENTARY or keyword in self._cards:
                continue
            self._cards[keyword] = image

    def __getitem__(self, keyword: str) -> Any:
        keyword = keyword.upper()
        if keyword in self._values:
            return self._values[keyword]
        image = self._cards[keyword]
        value = _simple_value(image)
        if value is _NOT_SIMPLE:
            try:
                value = fits.Card.fromstring(image).value
            except (VerifyError, ValueError):
                raise UnparsableCard(keyword, image) from None
        self._values[keyword] = value
        return value

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and keyword.upper() in self._cards

    def __iter__(self) -> Iterator[str]:
        return iter(self._cards)

    def __len__(self) -> int:
        return len(self._cards)

    def card_images(self) -> Iterator[tuple[str, str]]:
        """(keyword, 80-character card image or images) for every non-commentary keyword."""
        return iter(self._cards.items())


@dataclass(frozen=True)
class RawHdu:
    """One HDU's header and where it sits in the file."""

    index: int
    header: CardHeader
    header_offset: int
    data_offset: int
    data_size: int  # bytes, without the padding to a whole block


def data_size(header: Mapping[str, Any]) -> int:
    """Size in bytes of an HDU's data section (FITS standard 4.0, section 4.4.1)."""
    bitpix = _int(header, "BITPIX")
    if bitpix not in (8, 16, 32, 64, -32, -64):
        raise ValueError(f"invalid BITPIX {bitpix}")
    naxis = _int(header, "NAXIS")
    if naxis < 0 or naxis > 999:
        raise ValueError(f"invalid NAXIS {naxis}")
    if naxis == 0:
        return 0
    axes = [_int(header, f"NAXIS{n}") for n in range(1, naxis + 1)]
    if any(a < 0 for a in axes):
        raise ValueError("negative NAXISn")
    random_groups = header.get("GROUPS") is True and axes[0] == 0
    count = 1
    for a in axes[1:] if random_groups else axes:
        count *= a
    pcount = int(header.get("PCOUNT", 0) or 0)
    gcount = int(header.get("GCOUNT", 1) or 1)
    return abs(bitpix) // 8 * gcount * (pcount + count)


def _int(header: Mapping[str, Any], keyword: str) -> int:
    value = header.get(keyword)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"missing or non-integer {keyword}")
    return value


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def iter_hdus(stream: FitsStream) -> Iterator[RawHdu]:
    """Yield every HDU's header in order; raises :class:`FitsStructureError` on bad structure.

    Only header blocks are read; data sections are skipped (by ``seek`` in a plain file, by
    inflating them in a compressed one, except the data after the last header when the
    stream knows where the file ends).
    """
    index = 0
    while stream.size is None or stream.position < stream.size:
        offset = stream.position
        first = _read(stream, CARD, index)
        if not first and index == 0:
            return  # an empty file (or an empty compressed stream)
        if index == 0:
            if not first.startswith(b"SIMPLE  =") or first[10:30].strip() != b"T":
                raise FitsStructureError("not a FITS file")
        elif not first.startswith(b"XTENSION="):
            return  # the end, trailing special records or padding: not an HDU, not ours
        text = _read_header(stream, first, index)
        header = CardHeader(text)
        try:
            size = data_size(header)
        except ValueError as exc:
            raise FitsStructureError(f"invalid header: {exc}", index) from None
        data_offset = offset + len(text)
        padded = _padded(size)
        if stream.size is not None:
            available = stream.size - data_offset
        elif size and _ends_within(stream, data_offset + size, data_offset + padded, index):
            # The FITS bytes end with this HDU's data (a gzip trailer says so): stop here,
            # without inflating data that no header follows.
            yield RawHdu(index, header, offset, data_offset, size)
            return
        else:
            available = _skip(stream, padded, index)
        if available < size:
            raise FitsStructureError(
                f"truncated: data of HDU {index} needs {size} bytes, file ends "
                f"{available} bytes after its header", index
            )
        yield RawHdu(index, header, offset, data_offset, size)
        if stream.size is not None:
            _skip(stream, padded, index)
        index += 1


def _read(stream: FitsStream, count: int, index: int) -> bytes:
    try:
        return stream.read(count)
    except CompressedStreamError as exc:
        raise FitsStructureError(_stream_problem(exc), index) from None


def _skip(stream: FitsStream, count: int, index: int) -> int:
    try:
        return stream.skip(count)
    except CompressedStreamError as exc:
        raise FitsStructureError(_stream_problem(exc), index) from None


def _ends_within(stream: FitsStream, low: int, high: int, index: int) -> bool:
    try:
        return stream.ends_within(low, high)
    except CompressedStreamError as exc:
        raise FitsStructureError(_stream_problem(exc), index) from None


def _stream_problem(exc: CompressedStreamError) -> str:
    return f"{'truncated' if exc.truncated else 'unreadable'}: {exc.reason}"


def _read_header(stream: FitsStream, first: bytes, index: int) -> str:
    """The header whose first card is ``first``, up to the block that holds its END card."""
    blocks: list[bytes] = []
    block = first + _read(stream, BLOCK - len(first), index)
    while True:
        if len(block) < BLOCK:
            cards = (sum(len(b) for b in blocks) + len(block)) // CARD
            raise FitsStructureError(
                f"truncated: header of HDU {index} ends after card {cards} without an END card",
                index,
            )
        blocks.append(block)
        for start in range(0, BLOCK, CARD):
            if block[start : start + 8] == _END[:8]:
                raw = b"".join(blocks)
                try:
                    return raw.decode("ascii")
                except UnicodeDecodeError:
                    raise FitsStructureError(
                        f"invalid header: HDU {index} has non-ASCII characters", index
                    ) from None
        block = _read(stream, BLOCK, index)


WCS_KEYWORD = re.compile(
    r"^(NAXIS\d*|WCSAXES[A-Z]?|CTYPE\d+[A-Z]?|CRVAL\d+[A-Z]?|CRPIX\d+[A-Z]?|CDELT\d+[A-Z]?"
    r"|CUNIT\d+[A-Z]?|CROTA\d+|CD\d+_\d+[A-Z]?|PC\d+_\d+[A-Z]?|PV\d+_\d+[A-Z]?|PS\d+_\d+[A-Z]?"
    r"|LONPOLE[A-Z]?|LATPOLE[A-Z]?|RADESYS[A-Z]?|RADECSYS|EQUINOX[A-Z]?|EPOCH"
    r"|A_\w+|B_\w+|AP_\w+|BP_\w+|CPDIS\d+|CPERR\d+|DP\d+|DQ\d+|D2IM\w*|WCSNAME[A-Z]?)$"
)


#: Cards of the primary WCS that define the celestial transform and must be finite numbers.
NUMERIC_WCS_KEYWORD = re.compile(
    r"^(CRVAL\d+|CRPIX\d+|CDELT\d+|CROTA\d+|CD\d+_\d+|PC\d+_\d+|PV\d+_\d+|LONPOLE|LATPOLE"
    r"|[AB]P?_\d+_\d+|[AB]P?_ORDER|[AB]_DMAX)$"
)


def wcs_value_problem(header: CardHeader) -> str | None:
    """Why the WCS cards cannot be trusted (a transform value that is not a finite number).

    wcslib passes over a card it cannot parse (``CRVAL1 = NaN``) and uses its default, which
    would put the footprint somewhere else on the sky; so these cards are checked first.
    """
    for keyword, _ in header.card_images():
        if not NUMERIC_WCS_KEYWORD.match(keyword):
            continue
        try:
            value = header[keyword]
        except UnparsableCard as exc:
            return f"{keyword} = {exc.text} is not a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{keyword} = {value!r} is not a number"
        if not math.isfinite(value):
            return f"{keyword} = {value} is not finite"
    return None


def wcs_header(header: CardHeader) -> str:
    """Only the cards the WCS needs, as header text: astropy's WCS re-serialises and re-reads
    a Header object several times, so a 30-card header builds one 3-4 times faster than a
    200-card one, and header text (parsed by wcslib directly) faster still. Dates (DATE-OBS,
    MJD-OBS) are left out on purpose: they do not affect the celestial transform and only
    trigger astropy's date-fixing warnings."""
    return "".join(image for keyword, image in header.card_images()
                   if WCS_KEYWORD.match(keyword))


def has_lookup_distortion(header: Mapping[str, Any]) -> bool:
    """Lookup-table distortions live in other extensions, which the WCS must read."""
    return any(k in header for k in ("CPDIS1", "CPDIS2", "D2IMDIS1", "D2IMDIS2", "D2IMEXT"))
