"""Pixels for SODA: one image HDU of a registered file + a sky region → FITS or PNG bytes.

This module is the service's only pixel code and has a narrow face — :func:`cutout_fits` and
:func:`cutout_png` — so that a fuller pixel package (several planes, many stamps per file) can
replace it behind the same two calls.

How a cutout is made:

1. The region's boundary (CIRCLE, POLYGON or RANGE, densely sampled) is mapped to pixels
   through the HDU's WCS (distortions included); the pixel box covering it is clipped at the
   image edges. A region that contains the whole image gives the whole image.
2. If the clipped box is empty, or its sky footprint does not overlap the region (a circle
   beside a corner), no pixel falls inside: the caller answers HTTP 204.
3. Only that box is read: a memory-mapped slice for plain images, ``section`` for scaled and
   tile-compressed ones (only the tiles that hold the box are decompressed).
4. The header is the image's own, with CRPIX (and the SIP reference, which is CRPIX) and
   LTV shifted by the box origin, so world coordinates of every pixel are unchanged.

Open files, headers and WCS are cached per (path, HDU, size, mtime): alert cutouts ask for
many stamps of few files. Each cached file has a lock, because astropy's HDU objects are not
safe to share between threads.
"""

from __future__ import annotations

import copy
import io
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

from skyreg.service.errors import LimitExceeded, NotFoundFault, UsageFault
from skyreg.service.regions import (
    CircleShape,
    PolygonShape,
    RangeShape,
    Shape,
    polygon_overlaps_box,
)

_CACHE_SIZE = 32
_STRUCTURAL = {"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3",
               "EXTEND", "PCOUNT", "GCOUNT", "CHECKSUM", "DATASUM", "BZERO", "BSCALE",
               "BLANK", "ZQUANTIZ", "ZDITHER0", "INHERIT", "EXTNAME", "EXTVER", "COMMENT",
               "HISTORY", ""}


@dataclass
class _OpenImage:
    hdul: Any
    hdu: Any
    header: Any
    wcs: Any
    shape: tuple[int, int]  # (ny, nx)
    primary_cards: list[Any]
    plain: bool
    lock: threading.Lock


_cache: OrderedDict[tuple[str, int, int, int], _OpenImage] = OrderedDict()
_cache_lock = threading.Lock()


def _open(path: Path, hdu_index: int) -> _OpenImage:
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    try:
        stat = path.stat()
    except OSError as err:
        raise NotFoundFault(f"the registered file cannot be read: {err.strerror}") from None
    key = (str(path), hdu_index, stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None:
            _cache.move_to_end(key)
            return entry
    try:
        hdul = fits.open(path, memmap=True, lazy_load_hdus=True)
        hdu = hdul[hdu_index]
    except (OSError, IndexError, ValueError) as err:
        raise NotFoundFault(f"HDU {hdu_index} of the registered file cannot be read: "
                            f"{err}") from None
    header = hdu.header
    if header.get("NAXIS", 0) < 2 or header.get("NAXIS1", 0) < 1 or header.get("NAXIS2", 0) < 1:
        hdul.close()
        raise UsageFault(f"HDU {hdu_index} of the file is not an image")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header, fobj=hdul, relax=True)
    if not wcs.has_celestial:
        hdul.close()
        raise UsageFault(f"HDU {hdu_index} of the file has no celestial WCS")
    is_compressed = isinstance(hdu, fits.CompImageHDU)
    scaled = header.get("BZERO", 0) != 0 or header.get("BSCALE", 1) != 1
    primary_cards = [] if hdu_index == 0 else [
        card for card in hdul[0].header.cards
        if card.keyword not in _STRUCTURAL and card.keyword not in header]
    entry = _OpenImage(hdul, hdu, header, wcs.celestial,
                       (int(header["NAXIS2"]), int(header["NAXIS1"])), primary_cards,
                       plain=not is_compressed and not scaled, lock=threading.Lock())
    with _cache_lock:
        _cache[key] = entry
        while len(_cache) > _CACHE_SIZE:
            _, old = _cache.popitem(last=False)
            with old.lock:
                old.hdul.close()
    return entry


def _boundary(shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    """RA/Dec (degrees) of points along the boundary of a shape (plus its centre)."""
    if isinstance(shape, CircleShape):
        angles = np.linspace(0.0, 2.0 * math.pi, 73)
        dec0, ra0, r = (math.radians(shape.dec), math.radians(shape.ra),
                        math.radians(shape.radius))
        dec = np.arcsin(np.sin(dec0) * np.cos(r) + np.cos(dec0) * np.sin(r) * np.cos(angles))
        ra = ra0 + np.arctan2(np.sin(angles) * np.sin(r) * np.cos(dec0),
                              np.cos(r) - np.sin(dec0) * np.sin(dec))
        return (np.append(np.degrees(ra), shape.ra) % 360.0,
                np.append(np.degrees(dec), shape.dec))
    if isinstance(shape, PolygonShape):
        vertices = [np.array([v.x(), v.y(), v.z()]) for v in shape.region().getVertices()]
        points = []
        for a, b in zip(vertices, [*vertices[1:], vertices[0]], strict=True):
            for t in np.linspace(0.0, 1.0, 17)[:-1]:
                p = a * (1 - t) + b * t
                points.append(p / np.linalg.norm(p))
        xyz = np.array(points)
        return (np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360.0,
                np.degrees(np.arcsin(np.clip(xyz[:, 2], -1, 1))))
    assert isinstance(shape, RangeShape)
    width = shape.width_deg()
    ras = shape.ra_min + np.linspace(0.0, width, 65)
    decs = np.linspace(shape.dec_min, shape.dec_max, 33)
    ra = np.concatenate([ras, ras, np.full(33, shape.ra_min), np.full(33, shape.ra_min + width)])
    dec = np.concatenate([np.full(65, shape.dec_min), np.full(65, shape.dec_max), decs, decs])
    return ra % 360.0, dec


def _pixel_box(image: _OpenImage, shape: Shape | None) -> tuple[int, int, int, int] | None:
    """(x0, x1, y0, y1), half-open, 0-based; None if no pixel falls inside."""
    ny, nx = image.shape
    if shape is None:
        return 0, nx, 0, ny
    ra, dec = _boundary(shape)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        x, y = image.wcs.all_world2pix(ra, dec, 0, quiet=True)
        # Points more than 90 degrees from the tangent point do not project: check the
        # round trip and drop them.
        back_ra, back_dec = image.wcs.all_pix2world(x, y, 0)
    ok = np.isfinite(x) & np.isfinite(y) & (np.abs(np.asarray(back_dec) - dec) < 1e-6) & (
        np.abs((np.asarray(back_ra) - ra + 180.0) % 360.0 - 180.0) < 1e-6)
    if not ok.any():
        return None if not _contains_image_centre(image, shape) else (0, nx, 0, ny)
    if not ok.all():
        # Part of the boundary is beyond the projection's horizon: the region is huge
        # compared with the image; use the whole image and let the footprint test decide.
        x0, x1, y0, y1 = 0, nx, 0, ny
    else:
        x0 = max(0, math.floor(float(np.min(x[ok])) + 0.5))
        x1 = min(nx, math.floor(float(np.max(x[ok])) + 0.5) + 1)
        y0 = max(0, math.floor(float(np.min(y[ok])) + 0.5))
        y1 = min(ny, math.floor(float(np.max(y[ok])) + 0.5) + 1)
        if _contains_image_centre(image, shape) and (x1 <= x0 or y1 <= y0):
            x0, x1, y0, y1 = 0, nx, 0, ny
    if x1 <= x0 or y1 <= y0:
        return None
    if not _box_overlaps(image, (x0, x1, y0, y1), shape):
        return None
    return x0, x1, y0, y1


def _contains_image_centre(image: _OpenImage, shape: Shape) -> bool:
    ny, nx = image.shape
    ra, dec = image.wcs.all_pix2world([(nx - 1) / 2.0], [(ny - 1) / 2.0], 0)
    return _shape_contains(shape, float(ra[0]), float(dec[0]))


def _shape_contains(shape: Shape, ra: float, dec: float) -> bool:
    if isinstance(shape, RangeShape):
        return shape.contains_lonlat(ra % 360.0, dec)
    return bool(shape.region().contains(UnitVector3d(LonLat.fromDegrees(ra, dec))))


def _box_overlaps(image: _OpenImage, box: tuple[int, int, int, int], shape: Shape) -> bool:
    """Whether the sky footprint of the pixel box (pixel edges) overlaps the region."""
    x0, x1, y0, y1 = box
    xs = np.array([x0 - 0.5, x1 - 0.5, x1 - 0.5, x0 - 0.5, (x0 + x1) / 2 - 0.5,
                   x1 - 0.5, (x0 + x1) / 2 - 0.5, x0 - 0.5])
    ys = np.array([y0 - 0.5, y0 - 0.5, y1 - 0.5, y1 - 0.5, y0 - 0.5, (y0 + y1) / 2 - 0.5,
                   y1 - 0.5, (y0 + y1) / 2 - 0.5])
    ra, dec = image.wcs.all_pix2world(xs, ys, 0)
    try:
        footprint = ConvexPolygon([UnitVector3d(LonLat.fromDegrees(float(r), float(d)))
                                   for r, d in zip(ra, dec, strict=True)])
    except Exception:  # a degenerate box (a single row of pixels): decide by its points
        return any(_shape_contains(shape, float(r), float(d)) for r, d in zip(ra, dec,
                                                                               strict=True))
    if isinstance(shape, RangeShape):
        return polygon_overlaps_box(footprint, shape)
    answer = footprint.overlaps(shape.region())
    return True if answer is None else bool(answer)


@dataclass(frozen=True)
class Cutout:
    """Pixels of a box of an image and the header that describes them."""

    data: np.ndarray
    header: Any
    box: tuple[int, int, int, int]


@contextmanager
def _image(path: Path, hdu: int) -> Iterator[_OpenImage]:
    image = _open(path, hdu)
    with image.lock:
        yield image


def cut(path: Path, hdu: int, shape: Shape | None, max_pixels: int, label: str) -> Cutout | None:
    """The pixels of ``shape`` in HDU ``hdu`` of ``path`` (None: no pixel inside)."""
    with _image(path, hdu) as image:
        box = _pixel_box(image, shape)
        if box is None:
            return None
        x0, x1, y0, y1 = box
        if x1 - x0 > max_pixels or y1 - y0 > max_pixels:
            raise LimitExceeded(f"the cutout would be {x1 - x0} x {y1 - y0} pixels; this "
                                f"service cuts at most {max_pixels} pixels along each axis")
        if image.plain:
            data = np.array(image.hdu.data[y0:y1, x0:x1])
        else:
            data = np.asarray(image.hdu.section[y0:y1, x0:x1])
        header = _cutout_header(image, box, label)
    return Cutout(data, header, box)


def _cutout_header(image: _OpenImage, box: tuple[int, int, int, int], label: str) -> Any:
    from astropy.io import fits

    x0, x1, y0, y1 = box
    # Copies of the cards: the image's header is cached and shared by every cutout, and a
    # Card appended as it is would be the same object, shifted again by the next cutout.
    header = fits.Header()
    for card in image.header.cards:
        if card.keyword not in _STRUCTURAL and not card.keyword.startswith("Z"):
            header.append(copy.copy(card))
    for card in image.primary_cards:
        header.append(copy.copy(card))
    for axis, offset in (("1", x0), ("2", y0)):
        if f"CRPIX{axis}" in header:
            header[f"CRPIX{axis}"] = float(header[f"CRPIX{axis}"]) - offset
        header[f"LTV{axis}"] = (float(header.get(f"LTV{axis}", 0.0)) - offset,
                                "offset of this cutout in the original image")
    if image.header.get("EXTNAME"):
        header["EXTNAME"] = image.header["EXTNAME"]
    header.add_history(f"cutout [{x0 + 1}:{x1}, {y0 + 1}:{y1}] of {label}")
    return header


def cutout_fits(path: Path, hdu: int, shape: Shape | None, max_pixels: int,
                label: str) -> bytes | None:
    """FITS bytes of the cutout (one primary HDU), or None when no pixel falls inside."""
    from astropy.io import fits

    result = cut(path, hdu, shape, max_pixels, label)
    if result is None:
        return None
    output = fits.PrimaryHDU(data=result.data, header=result.header)
    buffer = io.BytesIO()
    output.writeto(buffer, output_verify="silentfix")
    return buffer.getvalue()


def cutout_png(path: Path, hdu: int, shape: Shape | None, max_pixels: int, label: str,
               stretch: str = "asinh", interval: str = "zscale", max_side: int = 1024
               ) -> bytes | None:
    """PNG bytes of the cutout (north-east as in the image; first row at the bottom)."""
    from astropy import visualization as vis
    from PIL import Image

    result = cut(path, hdu, shape, max_pixels, label)
    if result is None:
        return None
    data = np.asarray(result.data, dtype=np.float64)
    step = max(1, math.ceil(max(data.shape) / max_side))
    data = data[::step, ::step]
    finite = np.isfinite(data)
    if not finite.any():
        scaled = np.zeros(data.shape)
    else:
        fill = float(np.median(data[finite]))
        data = np.where(finite, data, fill)
        limits = {"zscale": vis.ZScaleInterval(), "minmax": vis.MinMaxInterval(),
                  "99.5": vis.PercentileInterval(99.5)}[interval]
        stretches = {"asinh": vis.AsinhStretch(), "linear": vis.LinearStretch(),
                     "sqrt": vis.SqrtStretch(), "log": vis.LogStretch()}
        with np.errstate(all="ignore"):
            scaled = (stretches[stretch] + limits)(data, clip=True)
        scaled = np.nan_to_num(scaled)
    pixels = np.flipud(np.round(scaled * 255.0).astype(np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def local_path(uri: str) -> Path | None:
    """The local path of a ``file://`` URI (None for any other scheme)."""
    if not uri.startswith("file://"):
        return None
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path))


def clear_cache() -> None:
    """Close every cached file (tests, shutdown)."""
    with _cache_lock:
        while _cache:
            _, entry = _cache.popitem()
            with entry.lock:
                entry.hdul.close()


__all__ = ["Cutout", "clear_cache", "cut", "cutout_fits", "cutout_png", "local_path"]
