"""Write small FITS files with realistic instrument headers for scan and ingest tests.

Files are small because the images are small (``shape``, default 64 x 128 pixels) while the
pixel scale is enlarged so that each CCD still covers its real instrument's area of sky, and
the CCDs of an exposure sit on a grid around the boresight sharing one tangent point (as in a
real focal plane). ``data="sparse"`` writes realistic data sections as holes (a sparse file),
for tests that need big files without the disk cost.

Public helpers (all return the path written):

- ``write_mef(path, profile="DECam", visit=..., detectors=range(4), boresight=(ra, dec), ...)``
  a multi-extension file, one CCD per image HDU, headers as the profile expects;
- ``write_calexp(path, ...)``: LSST-style calexp (IMAGE, MASK, VARIANCE + a table);
- ``write_compressed(path, ...)``: a tile-compressed (.fits.fz style) single CCD;
- ``write_truncated(path)``, ``write_not_fits(path)``: broken files;
- ``compress(path, "gzip" | "bzip2")``: the file compressed whole (``.fits.gz``, ``.fits.bz2``);
- ``set_raw_card(path, hdu, keyword, text)``: a card value astropy would refuse to write
  (``NaN``, an unquoted string).

Problem variants of ``write_mef``: ``drop_keywords`` removes keywords everywhere,
``bad_wcs_detectors`` gives those CCDs a SIP polynomial that folds the image (no inverse),
``no_wcs_detectors`` leaves out their WCS.
"""

from __future__ import annotations

import bz2
import gzip
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from astropy.io import fits

#: Real CCD size (pixels) and pixel scale (arcsec) per instrument.
CAMERAS: dict[str, dict[str, Any]] = {
    "DECam": {"size": (2048, 4096), "scale": 0.263},
    "HSC": {"size": (2048, 4176), "scale": 0.168},
    "LSSTCam": {"size": (4072, 4000), "scale": 0.2},
}
LSST_RAFTS = ["R01", "R02", "R03", "R10", "R11", "R12", "R13", "R14", "R20", "R21", "R22",
              "R23", "R24", "R30", "R31", "R32", "R33", "R34", "R41", "R42", "R43"]
LSST_SENSORS = ["S00", "S01", "S02", "S10", "S11", "S12", "S20", "S21", "S22"]

Distortion = Literal["none", "sip", "tpv"]


def ccd_wcs_cards(
    boresight: tuple[float, float],
    offset_deg: tuple[float, float],
    shape: tuple[int, int],
    scale_deg: float,
    distortion: Distortion = "sip",
    distortion_pixels: float = 3.0,
    rotation_deg: float = 0.0,
) -> dict[str, Any]:
    """WCS keywords of a CCD whose centre is ``offset_deg`` from the shared tangent point."""
    width, height = shape
    cos_r, sin_r = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    # Pixel (u, v) relative to CRPIX maps to (xi, eta) = CD @ (u, v); RA increases to the east.
    cd = np.array([[-scale_deg * cos_r, scale_deg * sin_r], [scale_deg * sin_r, scale_deg * cos_r]])
    centre_uv = np.linalg.solve(cd, np.asarray(offset_deg))
    crpix = ((width + 1) / 2 - centre_uv[0], (height + 1) / 2 - centre_uv[1])
    suffix = {"none": "", "sip": "-SIP", "tpv": ""}[distortion]
    projection = "TPV" if distortion == "tpv" else "TAN"
    cards: dict[str, Any] = {
        "WCSAXES": 2,
        "CTYPE1": f"RA---{projection}{suffix}",
        "CTYPE2": f"DEC--{projection}{suffix}",
        "CRVAL1": boresight[0] % 360.0,
        "CRVAL2": boresight[1],
        "CRPIX1": crpix[0],
        "CRPIX2": crpix[1],
        "CD1_1": cd[0, 0],
        "CD1_2": cd[0, 1],
        "CD2_1": cd[1, 0],
        "CD2_2": cd[1, 1],
        "RADESYS": "ICRS",
    }
    # Field radius (pixels / degrees) reached by this CCD's far corner, to size the terms.
    far = float(np.hypot(abs(centre_uv[0]) + width / 2, abs(centre_uv[1]) + height / 2))
    if distortion == "sip":
        k = distortion_pixels / far**2
        cards.update({"A_ORDER": 2, "B_ORDER": 2, "A_2_0": k, "A_0_2": 0.5 * k, "A_1_1": -0.3 * k,
                      "B_0_2": k, "B_2_0": -0.4 * k, "B_1_1": 0.2 * k})
    elif distortion == "tpv":
        rho = far * scale_deg
        c = distortion_pixels * scale_deg / rho**3
        cards.update({"PV1_0": 0.0, "PV1_1": 1.0, "PV1_2": 0.0, "PV1_7": c, "PV1_9": 0.5 * c,
                      "PV2_0": 0.0, "PV2_1": 1.0, "PV2_2": 0.0, "PV2_7": c, "PV2_9": 0.5 * c})
    return cards


def folding_sip(cards: dict[str, Any], shape: tuple[int, int]) -> dict[str, Any]:
    """Replace the distortion by a SIP polynomial so strong that the image folds over."""
    cards = {k: v for k, v in cards.items() if not k.startswith(("A_", "B_", "PV"))}
    cards["CTYPE1"], cards["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    k = 50.0 / max(shape)
    cards.update({"A_ORDER": 2, "B_ORDER": 2, "A_2_0": k, "B_0_2": k})
    return cards


def instrument_cards(
    profile: str, visit: int, band: str, mjd: float, exptime: float,
    boresight: tuple[float, float], rotation_deg: float,
) -> dict[str, Any]:
    """Primary-header keywords of one exposure, spelled as each instrument writes them."""
    from astropy.coordinates import Angle
    from astropy.time import Time

    ra = Angle(boresight[0] % 360.0, unit="deg").to_string(unit="hour", sep=":", precision=2)
    dec = Angle(boresight[1], unit="deg").to_string(unit="deg", sep=":", precision=1,
                                                    alwayssign=True)
    if profile == "DECam":
        utc = Time(mjd, format="mjd", scale="utc")
        return {"INSTRUME": "DECam", "EXPNUM": visit, "OBSTYPE": "object",
                "FILTER": f"{band} DECam SDSS c0002 6415.0 1480.0", "MJD-OBS": mjd,
                "DATE-OBS": utc.isot, "EXPTIME": exptime, "TELRA": ra, "TELDEC": dec}
    if profile == "HSC":
        utc = Time(mjd, format="mjd", scale="utc")
        date, time = utc.isot.split("T")
        return {"INSTRUME": "Hyper Suprime-Cam", "EXP-ID": f"HSCE{visit:08d}",
                "FILTER01": f"HSC-{band.upper()}", "DATE-OBS": date, "UT": time, "MJD": mjd,
                "EXPTIME": exptime, "RA2000": ra, "DEC2000": dec,
                "INST-PA": (270.0 - rotation_deg) % 360.0, "DATA-TYP": "OBJECT"}
    if profile == "LSSTCam":
        day_obs, seq_num = divmod(visit, 100000)
        return {"INSTRUME": "LSSTCam", "TIMESYS": "TAI", "DAYOBS": str(day_obs),
                "SEQNUM": seq_num, "OBSID": f"MC_O_{day_obs}_{seq_num:06d}",
                "FILTER": f"{band}_57", "FILTBAND": band, "MJD-BEG": mjd,
                "MJD-END": mjd + exptime / 86400.0, "EXPTIME": exptime,
                "RA": boresight[0] % 360.0, "DEC": boresight[1], "ROTPA": rotation_deg}
    raise ValueError(f"no builder for profile {profile!r}")


def detector_cards(profile: str, detector: int) -> dict[str, Any]:
    """Per-CCD keywords of an extension header."""
    if profile == "DECam":
        name = f"{'NS'[detector % 2]}{detector // 2 + 1}"
        return {"EXTNAME": name, "CCDNUM": detector, "DETPOS": name}
    if profile == "HSC":
        return {"EXTNAME": f"CCD{detector:03d}", "DET-ID": detector}
    raft, sensor = LSST_RAFTS[detector // 9], LSST_SENSORS[detector % 9]
    return {"EXTNAME": f"{raft}_{sensor}", "RAFTBAY": raft, "CCDSLOT": sensor}


def _header(cards: dict[str, Any], first: Sequence[tuple[str, Any]]) -> fits.Header:
    header = fits.Header(list(first))
    for key, value in cards.items():
        header[key] = value
    for i in range(40):  # realistic headers carry ~100-200 cards of other metadata
        header[f"HIERARCH META{i:03d}"] = (float(i), "unrelated metadata")
    return header


def _write_hdus(path: Path, hdus: Iterable[tuple[fits.Header, int]], sparse: bool) -> None:
    with path.open("wb") as stream:
        for header, nbytes in hdus:
            stream.write(header.tostring().encode("ascii"))
            padded = -(-nbytes // 2880) * 2880
            if padded and sparse:
                stream.seek(padded - 1, 1)
                stream.write(b"\0")
            elif padded:
                stream.write(b"\0" * padded)


def write_mef(
    path: str | Path,
    profile: str = "DECam",
    visit: int = 1000001,
    detectors: Iterable[int] = range(4),
    boresight: tuple[float, float] = (150.0, 2.0),
    band: str = "r",
    mjd: float = 60300.1,
    exptime: float = 30.0,
    rotation_deg: float = 0.0,
    shape: tuple[int, int] = (64, 128),
    distortion: Distortion = "sip",
    distortion_pixels: float = 3.0,
    columns: int = 8,
    data: Literal["zeros", "sparse", "none"] = "zeros",
    drop_keywords: Iterable[str] = (),
    bad_wcs_detectors: Iterable[int] = (),
    no_wcs_detectors: Iterable[int] = (),
    extra_primary: dict[str, Any] | None = None,
) -> Path:
    """A MEF with an empty primary HDU and one image HDU per detector.

    ``data="zeros"`` writes the (small) pixel data, ``"sparse"`` leaves it as a hole,
    ``"none"`` writes NAXIS=2 headers whose data section is empty by declaring BITPIX=8 and
    the real size — not valid FITS; use only to test truncation handling.
    LSSTCam visits are YYYYMMDDnnnnn (day_obs * 100000 + seq_num).
    """
    path = Path(path)
    real_w = CAMERAS[profile]["size"][0]
    scale = CAMERAS[profile]["scale"] / 3600.0 * real_w / shape[0]
    drop = {k.upper() for k in drop_keywords}
    bad, no_wcs = set(bad_wcs_detectors), set(no_wcs_detectors)
    primary_cards = instrument_cards(profile, visit, band, mjd, exptime, boresight, rotation_deg)
    primary_cards.update(extra_primary or {})
    hdus = [(_header({k: v for k, v in primary_cards.items() if k not in drop},
                     [("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True)]), 0)]
    detectors = list(detectors)
    rows = -(-len(detectors) // columns)
    for slot, detector in enumerate(detectors):
        col, row = slot % columns, slot // columns
        offset = ((col - (columns - 1) / 2) * shape[0] * scale * 1.05,
                  (row - (rows - 1) / 2) * shape[1] * scale * 1.05)
        cards = ccd_wcs_cards(boresight, offset, shape, scale, distortion, distortion_pixels,
                              rotation_deg)
        if detector in bad:
            cards = folding_sip(cards, shape)
        if detector in no_wcs:
            cards = {}
        cards.update(detector_cards(profile, detector))
        cards = {k: v for k, v in cards.items() if k not in drop}
        first = [("XTENSION", "IMAGE"), ("BITPIX", 16), ("NAXIS", 2), ("NAXIS1", shape[0]),
                 ("NAXIS2", shape[1]), ("PCOUNT", 0), ("GCOUNT", 1)]
        nbytes = 0 if data == "none" else 2 * shape[0] * shape[1]
        hdus.append((_header(cards, first), nbytes))
    _write_hdus(path, hdus, sparse=data == "sparse")
    return path


def write_calexp(
    path: str | Path, profile: str = "LSSTCam", visit: int = 2024080100012, detector: int = 94,
    boresight: tuple[float, float] = (53.0, -28.0), shape: tuple[int, int] = (64, 64),
) -> Path:
    """An LSST-style calexp: empty primary, IMAGE, MASK, VARIANCE (same WCS) and a table."""
    path = Path(path)
    write_mef(path, profile, visit, [detector], boresight, shape=shape, columns=1)
    with fits.open(path) as source:
        primary, image = source[0].copy(), source[1].copy()
    image.header["EXTNAME"] = "IMAGE"
    planes = [primary, image]
    for name in ("MASK", "VARIANCE"):
        plane = fits.ImageHDU(np.zeros(shape[::-1], dtype=np.int32), header=image.header.copy())
        plane.header["EXTNAME"] = name
        planes.append(plane)
    table = fits.BinTableHDU.from_columns([fits.Column("x", "D", array=np.zeros(3))])
    table.header["EXTNAME"] = "ARCHIVE_INDEX"
    fits.HDUList([*planes, table]).writeto(path, overwrite=True)
    return path


def write_compressed(
    path: str | Path, profile: str = "DECam", visit: int = 1000001, detector: int = 5,
    boresight: tuple[float, float] = (10.0, -45.0), shape: tuple[int, int] = (64, 128),
) -> Path:
    """A tile-compressed single CCD (RICE), as in .fits.fz files."""
    path = Path(path)
    plain = path.with_suffix(".plain.fits")
    write_mef(plain, profile, visit, [detector], boresight, shape=shape, columns=1)
    with fits.open(plain) as source:
        primary, image = source[0].copy(), source[1]
        compressed = fits.CompImageHDU(np.zeros(shape[::-1], dtype=np.int16),
                                       header=image.header.copy(), compression_type="RICE_1")
        fits.HDUList([primary, compressed]).writeto(path, overwrite=True)
    plain.unlink()
    return path


def write_truncated(path: str | Path, cut_at: int = 2880 * 3 + 1000) -> Path:
    """A DECam MEF cut off in the middle of a header."""
    path = Path(path)
    write_mef(path, detectors=range(2))
    content = path.read_bytes()
    path.write_bytes(content[:cut_at])
    return path


def compress(path: str | Path, kind: Literal["gzip", "bzip2"] = "gzip",
             level: int = 6) -> Path:
    """Compress a file whole, as archives distribute FITS files; returns the new path."""
    path = Path(path)
    if kind == "gzip":
        target = path.with_name(path.name + ".gz")
        target.write_bytes(gzip.compress(path.read_bytes(), compresslevel=level))
    else:
        target = path.with_name(path.name + ".bz2")
        target.write_bytes(bz2.compress(path.read_bytes(), compresslevel=level))
    return target


def set_raw_card(path: str | Path, hdu: int, keyword: str, text: str) -> Path:
    """Overwrite the value of ``keyword`` in HDU ``hdu`` with ``text`` as it is."""
    path = Path(path)
    with fits.open(path) as hdul:
        info = hdul.fileinfo(hdu)
        start, end = info["hdrLoc"], info["datLoc"]
    content = bytearray(path.read_bytes())
    name = keyword.upper().ljust(8).encode("ascii")
    for offset in range(start, end, 80):
        if content[offset:offset + 8] == name:
            card = f"{keyword.upper():<8}= {text:>20}".ljust(80)
            content[offset:offset + 80] = card.encode("ascii")
            path.write_bytes(bytes(content))
            return path
    raise KeyError(f"no {keyword} card in HDU {hdu} of {path}")


def write_not_fits(path: str | Path) -> Path:
    path = Path(path)
    path.write_text("this is not a FITS file\n" * 200)
    return path
