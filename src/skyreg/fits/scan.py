"""Turn one FITS file into CCD records (header-only), or into problems, one line each.

HDU rule (documented in docs/instrument-profiles.md):

- HDUs without an image (NAXIS = 0, tables) are not images and are passed over.
- Image HDUs whose EXTNAME names an auxiliary plane (MASK, VARIANCE, ERR, DQ, WEIGHT, ...) are
  passed over and listed in ``FileScan.skipped``: in LSST calexps and HST-style files they
  repeat the science plane's WCS.
- Every other image HDU (tile-compressed ones included) with a celestial WCS is one record, or
  a problem if its keywords or WCS are bad (a transform card that is not a finite number, such
  as ``CRVAL1 = NaN``, is an invalid WCS: wcslib would silently use its default instead).
- An image HDU with no celestial WCS that carries in its own header a keyword the profile
  reads the detector from (CCDNUM, DET-ID, RAFTBAY, ...) is a CCD without a usable WCS: a
  problem ("no celestial WCS"), so its file is refused. Without such a keyword (coadds have
  none) it is not a CCD of this instrument: listed in ``FileScan.skipped`` when the file yields
  records, a problem otherwise, so that a file never gives nothing without a word.

``scan_file`` never raises for a bad input file; file-level problems (not FITS, truncated,
unreadable, no matching profile) yield no records.
"""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from skyreg.fits.checksums import header_checksum, sha256_file
from skyreg.fits.extract import FieldError, HeaderView, extract_fields
from skyreg.fits.headers import (
    CardHeader,
    FitsStructureError,
    RawHdu,
    UnparsableCard,
    has_lookup_distortion,
    iter_hdus,
    wcs_header,
    wcs_value_problem,
)
from skyreg.fits.profiles import InstrumentProfile, ProfileError, resolve_profile
from skyreg.fits.streams import FitsStream
from skyreg.fits.wcs_footprint import FootprintError, footprint_from_wcs

Checksum = Literal["header", "sha256", "none"]

#: EXTNAMEs of planes that accompany a science image and are not CCDs of their own.
AUXILIARY_EXTNAMES = frozenset(
    {"MASK", "VARIANCE", "VAR", "ERR", "ERROR", "DQ", "WEIGHT", "WHT", "IVAR", "INVVAR",
     "SIGMA", "EXPMAP", "BPM", "SAMP", "TIME", "D2IMARR", "WCSDVARR"}
)
#: Keywords a coadd may give its band in, when no profile-like list is passed.
COADD_BAND_KEYWORDS = ("BAND", "FILTER", "FILTBAND", "FILTER01")


@dataclass(frozen=True)
class WcsSummary:
    """Enough of a WCS to compare it with a registered patch WCS (no distortion terms)."""

    ctype: tuple[str, str]
    crval: tuple[float, float]
    crpix: tuple[float, float]
    cd: tuple[tuple[float, float], tuple[float, float]]
    naxis1: int
    naxis2: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "ctype": list(self.ctype),
            "crval": list(self.crval),
            "crpix": list(self.crpix),
            "cd": [list(row) for row in self.cd],
            "naxis1": self.naxis1,
            "naxis2": self.naxis2,
        }


@dataclass(frozen=True)
class HduProblem:
    """Why an HDU (or, with ``hdu`` None, the whole file) gave no record."""

    path: str
    hdu: int | None
    reason: str

    def __str__(self) -> str:
        where = self.path if self.hdu is None else f"{self.path}[{self.hdu}]"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class ImageRecord:
    """What every image HDU record has: its place in the file, footprint and WCS."""

    hdu: int
    extname: str | None
    footprint_ra: list[float]
    footprint_dec: list[float]
    wcs_summary: WcsSummary


@dataclass(frozen=True)
class HduRecord(ImageRecord):
    """One CCD of one visit. Times are MJD in TAI; angles in degrees."""

    instrument: str
    visit: int
    detector: int
    detector_name: str
    band: str
    physical_filter: str
    day_obs: int
    seq_num: int
    exposure_time: float
    mjd_tai_start: float
    mjd_tai_end: float
    boresight_ra: float | None
    boresight_dec: float | None
    rotation_deg: float | None


@dataclass(frozen=True)
class CoaddRecord(ImageRecord):
    """One coadd image: no visit or detector, optionally a band."""

    band: str | None


R = TypeVar("R", bound=ImageRecord)


@dataclass
class FileScan(Generic[R]):
    path: str
    size: int
    checksum: str | None
    format: str = "fits"
    records: list[R] = field(default_factory=list)
    problems: list[HduProblem] = field(default_factory=list)
    #: Image HDUs passed over without a problem: (hdu, reason).
    skipped: list[tuple[int, str]] = field(default_factory=list)
    #: Name of the instrument profile used (None for coadds or when none could be chosen).
    profile: str | None = None


def scan_file(
    path: str | os.PathLike[str],
    profile: InstrumentProfile | str | None = None,
    checksum: Checksum = "header",
) -> FileScan[HduRecord]:
    """CCD records of one FITS file, with the data-ID fields read through ``profile``.

    ``profile`` is a profile object, a built-in name ("DECam", "HSC", "LSSTCam"), a YAML path,
    or None to auto-detect from the primary header. A profile given by name or path that does
    not exist or does not validate raises :class:`ProfileError` (a usage error, not bad data).
    """
    if isinstance(profile, str):
        profile = resolve_profile(profile, {})  # fail fast on a bad name or profile file
    return _scan(Path(path), checksum, _CcdReader(profile))


def scan_coadd_file(
    path: str | os.PathLike[str],
    band_keywords: tuple[str, ...] = COADD_BAND_KEYWORDS,
    checksum: Checksum = "header",
) -> FileScan[CoaddRecord]:
    """Image records of a coadd file: WCS, footprint and band (first of ``band_keywords``)."""
    return _scan(Path(path), checksum, _CoaddReader(band_keywords))


class _Reader(ABC, Generic[R]):
    """Turns the HDUs of one file into records of one kind (CCD or coadd)."""

    profile_name: str | None = None

    def start(self, primary: CardHeader, candidates: list[RawHdu]) -> str | None:
        """Prepare for a file; returns a file-level problem or None."""
        return None

    @abstractmethod
    def record(self, raw: RawHdu, view: HeaderView, base: dict[str, Any]) -> R:
        """The record of one image HDU (``base`` holds the fields every kind shares)."""

    def claims(self, raw: RawHdu) -> bool:
        """Whether an image HDU without a celestial WCS is still an image of this kind (so a
        problem, not a plane to pass over). Readers that cannot tell say no."""
        return False

    #: Why an image HDU that has no celestial WCS and is not claimed is passed over.
    unclaimed_reason = "no celestial WCS"


class _CcdReader(_Reader[HduRecord]):
    def __init__(self, profile: InstrumentProfile | None) -> None:
        self.fixed = profile
        self.profile: InstrumentProfile | None = profile

    def start(self, primary: CardHeader, candidates: list[RawHdu]) -> str | None:
        if self.fixed is not None:
            self.profile_name = self.fixed.name
            return None
        headers = [primary, *(c.header for c in candidates[:1])]
        for header in headers:
            try:
                self.profile = resolve_profile(None, header)
                self.profile_name = self.profile.name
                return None
            except (ProfileError, UnparsableCard) as exc:
                problem = str(exc)
        return problem

    unclaimed_reason = "no celestial WCS and no detector keyword"

    def claims(self, raw: RawHdu) -> bool:
        assert self.profile is not None
        keywords = self.profile.detector_keywords
        return not keywords or any(keyword in raw.header for keyword in keywords)

    def record(self, raw: RawHdu, view: HeaderView, base: dict[str, Any]) -> HduRecord:
        assert self.profile is not None
        values = extract_fields(self.profile, view)
        if values["mjd_end"] < values["mjd_start"]:
            raise FieldError(f"exposure ends (MJD {values['mjd_end']}) before it starts "
                             f"(MJD {values['mjd_start']}) (mjd_end)")
        return HduRecord(
            **base,
            instrument=self.profile.instrument,
            visit=values["visit"],
            detector=values["detector"],
            detector_name=values["detector_name"],
            band=values["band"],
            physical_filter=values["physical_filter"],
            day_obs=values["day_obs"],
            seq_num=values["seq_num"],
            exposure_time=values["exposure_time"],
            mjd_tai_start=values["mjd_start"],
            mjd_tai_end=values["mjd_end"],
            boresight_ra=values["boresight_ra"],
            boresight_dec=values["boresight_dec"],
            rotation_deg=values["rotation_deg"],
        )


class _CoaddReader(_Reader[CoaddRecord]):
    def __init__(self, band_keywords: tuple[str, ...]) -> None:
        self.band_keywords = tuple(k.upper() for k in band_keywords)

    def record(self, raw: RawHdu, view: HeaderView, base: dict[str, Any]) -> CoaddRecord:
        band = next((view.get(k) for k in self.band_keywords if view.get(k) is not None), None)
        return CoaddRecord(**base, band=None if band is None else str(band).strip())


def _scan(path: Path, checksum: Checksum, reader: _Reader[R]) -> FileScan[R]:
    name = str(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as stored:
            stream = FitsStream(stored, size)
            hdus = list(iter_hdus(stream))
    except FitsStructureError as exc:
        return _failed(name, path, exc.reason, exc.hdu)
    except OSError as exc:
        return _failed(name, path, f"unreadable: {exc.strerror or exc}")
    if not hdus:
        return _failed(name, path, "not a FITS file (empty)")

    scan: FileScan[R] = FileScan(path=name, size=size, checksum=None, format=stream.format)
    if checksum == "sha256":
        try:
            scan.checksum = sha256_file(path)
        except OSError as exc:
            return _failed(name, path, f"unreadable: {exc.strerror or exc}")
    try:
        if checksum == "header":
            scan.checksum = header_checksum([h.header for h in hdus])
        _read_images(scan, path, hdus, reader)
    except UnparsableCard as exc:  # a file-level keyword (CHECKSUM, EXTNAME, ...) is broken
        scan.records.clear()
        scan.problems.append(HduProblem(name, None, str(exc)))
    return scan


def _read_images(scan: FileScan[R], path: Path, hdus: list[RawHdu], reader: _Reader[R]) -> None:
    """Records, problems and skipped planes of one file, by the HDU rule (module docstring)."""
    name = scan.path
    primary = hdus[0].header
    candidates = []
    for raw in hdus:
        if _image_size(raw.header) is None:
            continue  # no image: tables, empty primary HDUs
        extname = _extname(raw.header)
        if extname in AUXILIARY_EXTNAMES:
            scan.skipped.append((raw.index, f"auxiliary plane {extname}"))
        else:
            candidates.append(raw)
    problem = reader.start(primary, candidates)
    scan.profile = reader.profile_name
    if problem is not None:
        scan.problems.append(HduProblem(name, None, problem))
        return

    unclaimed: list[int] = []
    for raw in candidates:
        width, height = _image_size(raw.header) or (0, 0)
        view = HeaderView(raw.header, None if raw.index == 0 else primary)
        try:
            wcs = _build_wcs(path, raw)
            if wcs is None:
                if reader.claims(raw):
                    scan.problems.append(HduProblem(name, raw.index, "no celestial WCS"))
                else:
                    unclaimed.append(raw.index)
                continue
            ra, dec = footprint_from_wcs(wcs, width, height)
            base = {
                "hdu": raw.index,
                "extname": _extname(raw.header),
                "footprint_ra": ra.tolist(),
                "footprint_dec": dec.tolist(),
                "wcs_summary": _summary(wcs, raw.header, width, height),
            }
            scan.records.append(reader.record(raw, view, base))
        except (FieldError, FootprintError, _WcsReadError, UnparsableCard) as exc:
            scan.problems.append(HduProblem(name, raw.index, str(exc)))
    for index in unclaimed:
        if scan.records:
            scan.skipped.append((index, reader.unclaimed_reason))
        else:  # a file never gives nothing without a word
            scan.problems.append(HduProblem(name, index, "no celestial WCS"))
    scan.skipped.sort()
    if not candidates and not scan.problems:
        scan.problems.append(HduProblem(name, None, "no image HDU"))


def _failed(name: str, path: Path, reason: str, hdu: int | None = None) -> FileScan[Any]:
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return FileScan(path=name, size=size, checksum=None, problems=[HduProblem(name, hdu, reason)])


def _extname(header: CardHeader) -> str | None:
    value = header.get("EXTNAME")
    return str(value).strip().upper() if isinstance(value, str) and value.strip() else None


def _image_size(header: CardHeader) -> tuple[int, int] | None:
    """(NAXIS1, NAXIS2) of an image or tile-compressed image HDU, else None."""
    if header.get("ZIMAGE") is True:
        prefix = "ZNAXIS"
    elif header.get("XTENSION", "IMAGE") in ("IMAGE", "IMAGE   ") or "SIMPLE" in header:
        prefix = "NAXIS"
    else:
        return None
    naxis = header.get(prefix)
    if not isinstance(naxis, int) or naxis < 2:
        return None
    width, height = header.get(f"{prefix}1"), header.get(f"{prefix}2")
    if not isinstance(width, int) or not isinstance(height, int) or width < 1 or height < 1:
        return None
    return width, height


class _WcsReadError(Exception):
    pass


def _build_wcs(path: Path, raw: RawHdu) -> WCS | None:
    """The HDU's WCS, or None when it has no celestial axes."""
    header = raw.header
    if "CTYPE1" not in header and "CTYPE2" not in header:
        return None
    problem = wcs_value_problem(header)
    if problem is not None:
        raise _WcsReadError(f"invalid WCS: {problem}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if has_lookup_distortion(header):
                # The lookup tables are small extensions that WCS reads itself; the image is
                # not read (lazy_load_hdus only parses headers until an HDU's data is used).
                with fits.open(path, lazy_load_hdus=True, memmap=True) as hdul:
                    wcs = WCS(hdul[raw.index].header, hdul)
            else:
                wcs = WCS(wcs_header(header))
    except Exception as exc:  # astropy/wcslib raise many classes for malformed WCS cards
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise _WcsReadError(f"invalid WCS: {text}") from None
    if not wcs.has_celestial:
        return None
    return wcs


def _summary(wcs: WCS, header: CardHeader, width: int, height: int) -> WcsSummary:
    lng, lat = wcs.wcs.lng, wcs.wcs.lat
    axes = [lng, lat]
    cd = np.asarray(wcs.wcs.get_pc(), dtype=np.float64) * np.asarray(
        wcs.wcs.get_cdelt(), dtype=np.float64
    )[:, None]
    crval = [float(v) for v in wcs.wcs.crval]
    crpix = [float(v) for v in wcs.wcs.crpix]
    # The header's CTYPEs: wcslib reports TPV as TAN once it has parsed the distortion.
    ctype = [str(header.get(f"CTYPE{i + 1}", c)).strip() for i, c in enumerate(wcs.wcs.ctype)]
    return WcsSummary(
        ctype=(ctype[lng], ctype[lat]),
        crval=(crval[lng], crval[lat]),
        crpix=(crpix[0], crpix[1]),
        cd=(
            (float(cd[axes[0], 0]), float(cd[axes[0], 1])),
            (float(cd[axes[1], 0]), float(cd[axes[1], 1])),
        ),
        naxis1=width,
        naxis2=height,
    )
