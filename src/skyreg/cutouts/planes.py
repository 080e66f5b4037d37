"""Where a coadd file keeps its planes, and reading pixel boxes of them.

A registered file names one HDU: the science image. Its other planes are the image HDUs right
after it whose EXTNAME names an auxiliary plane (``MASK``, ``VARIANCE``, ...) and that have
the image's shape -- the layout of Rubin's ``deepCoadd`` (``IMAGE``, ``MASK``, ``VARIANCE``
after an empty primary HDU) and of HST/JWST-style files (``SCI``, ``ERR``, ``DQ``).

Pixels are read in one of two ways, never by reading a whole image:

* uncompressed HDUs: a ``numpy.memmap`` of the data section (offset and type from the header
  walk of :mod:`skyreg.fits.headers`), sliced per stamp; only the pages a stamp touches are
  read, and the byte swap happens in the copy into the stamp's block;
* tile-compressed HDUs (RICE, GZIP, HCOMPRESS, PLIO): ``fitsio`` subset reads, which
  decompress only the tiles a box touches. fitsio was measured at 2x astropy's
  ``CompImageHDU.section`` for 64x64 cutouts from 64x64 tiles (see docs/benchmarks.md).
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS

from skyreg.fits.headers import (
    CardHeader,
    FitsStructureError,
    RawHdu,
    has_lookup_distortion,
    iter_hdus,
    wcs_header,
)
from skyreg.fits.streams import FitsStream

#: EXTNAMEs of planes that go with a science image (distortion arrays are not planes).
PLANE_EXTNAMES = frozenset(
    {"MASK", "VARIANCE", "VAR", "ERR", "ERROR", "DQ", "WEIGHT", "WHT", "IVAR", "INVVAR",
     "SIGMA", "EXPMAP", "BPM"}
)

_BITPIX_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


class LayoutError(Exception):
    """The file or its HDU cannot be read as an image (message for a per-file problem)."""


@dataclass(frozen=True)
class Plane:
    """One image plane of a file: which HDU, how its pixels are stored."""

    name: str  # "image" for the registered HDU, else its EXTNAME in lower case
    hdu: int
    compressed: bool
    bitpix: int
    width: int
    height: int
    data_offset: int = 0
    bzero: float = 0.0
    bscale: float = 1.0
    #: Compression tile (columns, rows); (0, 0) for uncompressed planes.
    tile: tuple[int, int] = (0, 0)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of the pixel values as read: scaled ones native, unscaled as stored."""
        if self.compressed:
            # fitsio returns quantised float images as float32/64 and integers as stored.
            return np.dtype(_BITPIX_DTYPES[self.bitpix]).newbyteorder("=")
        raw = np.dtype(_BITPIX_DTYPES[self.bitpix])
        if self.bscale == 1.0 and self.bzero == 0.0:
            # As stored (big-endian), as astropy.io.fits returns it: no byte-swapping pass.
            return raw
        if self.bitpix > 8 and self.bscale == 1.0 and self.bzero == 2.0 ** (self.bitpix - 1):
            return np.dtype(f"u{self.bitpix // 8}")
        if self.bitpix == 8 and self.bscale == 1.0 and self.bzero == -128.0:
            return np.dtype("i1")
        return np.dtype("f8") if self.bitpix in (32, 64, -64) else np.dtype("f4")

    @property
    def fill(self) -> Any:
        """Value of stamp pixels outside the image: NaN for floats, 0 for integers."""
        return np.nan if self.dtype.kind == "f" else 0


@dataclass
class FileLayout:
    """The planes of one registered file and the WCS card text of its image HDU."""

    path: str
    hdu: int
    planes: list[Plane]
    wcs_text: str
    lookup_distortion: bool
    header: CardHeader

    @property
    def width(self) -> int:
        return self.planes[0].width

    @property
    def height(self) -> int:
        return self.planes[0].height


def _image_shape(header: CardHeader) -> tuple[int, int, int, bool] | None:
    """(width, height, bitpix, compressed) of a 2-D image or tile-compressed image HDU."""
    compressed = header.get("ZIMAGE") is True
    prefix = "Z" if compressed else ""
    naxis = header.get(f"{prefix}NAXIS")
    if not isinstance(naxis, int) or naxis < 2:
        return None
    if not compressed and not ("SIMPLE" in header or
                               str(header.get("XTENSION", "")).strip() == "IMAGE"):
        return None
    axes = [header.get(f"{prefix}NAXIS{i}") for i in range(1, naxis + 1)]
    if not all(isinstance(a, int) for a in axes) or any(a != 1 for a in axes[2:]):
        return None
    bitpix = header.get(f"{prefix}BITPIX")
    if bitpix not in _BITPIX_DTYPES:
        return None
    return int(axes[0]), int(axes[1]), int(bitpix), compressed  # type: ignore[arg-type]


def _extname(header: CardHeader) -> str | None:
    value = header.get("EXTNAME")
    return str(value).strip().upper() if isinstance(value, str) and value.strip() else None


def _plane(name: str, raw: RawHdu, shape: tuple[int, int, int, bool]) -> Plane:
    width, height, bitpix, compressed = shape
    header = raw.header
    bzero = 0.0 if compressed else float(header.get("BZERO", 0.0) or 0.0)
    bscale = 1.0 if compressed else float(header.get("BSCALE", 1.0) or 1.0)
    tile = (0, 0)
    if compressed:  # FITS tile compression defaults: whole rows
        tile_x, tile_y = header.get("ZTILE1", width), header.get("ZTILE2", 1)
        tile = (int(tile_x) if isinstance(tile_x, int) and tile_x > 0 else width,
                int(tile_y) if isinstance(tile_y, int) and tile_y > 0 else 1)
    return Plane(name, raw.index, compressed, bitpix, width, height, raw.data_offset, bzero,
                 bscale, tile)


def read_layout(path: str | os.PathLike[str], hdu: int) -> FileLayout:
    """Walk the headers of ``path`` (no pixel data read) and find the planes of HDU ``hdu``."""
    name = str(path)
    try:
        size = os.stat(name).st_size
        with open(name, "rb") as stored:
            stream = FitsStream(stored, size)
            if stream.format != "fits":
                # A whole-file gzip/bzip2 stream has no random access: a stamp would mean
                # inflating everything before it. Tile compression is the way to go.
                raise LayoutError(f"the file is compressed whole ({stream.format}); stamps "
                                  "need plain or tile-compressed FITS")
            hdus = list(iter_hdus(stream))
    except FileNotFoundError:
        raise LayoutError("file not found") from None
    except FitsStructureError as err:
        raise LayoutError(f"not a readable FITS file: {err.reason}") from None
    except OSError as err:
        raise LayoutError(f"unreadable: {err.strerror or err}") from None
    if not 0 <= hdu < len(hdus):
        raise LayoutError(f"the file has {len(hdus)} HDUs, the archive names HDU {hdu}")
    raw = hdus[hdu]
    shape = _image_shape(raw.header)
    if shape is None:
        raise LayoutError(f"HDU {hdu} is not a 2-D image")
    planes = [_plane("image", raw, shape)]
    for other in hdus[hdu + 1:]:
        other_shape = _image_shape(other.header)
        extname = _extname(other.header)
        if other_shape is None:
            continue
        if extname not in PLANE_EXTNAMES:
            break  # the next science image: its planes are not ours
        if other_shape[:2] == shape[:2] and extname.lower() not in {p.name for p in planes}:
            planes.append(_plane(extname.lower(), other, other_shape))
    return FileLayout(name, hdu, planes, wcs_header(raw.header),
                      has_lookup_distortion(raw.header), raw.header)


_WCS_CACHES = threading.local()
_WCS_CACHE_LIMIT = 4096


def layout_wcs(layout: FileLayout) -> WCS:
    """The image HDU's WCS, distortions included; shared by files with identical WCS cards.

    Coadds of one patch in every band and kind carry the same WCS cards, so the cache makes
    one astropy WCS per patch instead of one per file. The cache is per thread: astropy WCS
    objects are not safe to use from several threads at once, and the web service cuts
    concurrent requests in its thread pool.
    """
    if layout.lookup_distortion:
        from astropy.io import fits

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(layout.path, lazy_load_hdus=True, memmap=True) as hdul:
                return WCS(hdul[layout.hdu].header, hdul)
    cache: dict[str, WCS] | None = getattr(_WCS_CACHES, "cache", None)
    if cache is None:
        cache = _WCS_CACHES.cache = {}
    cached = cache.get(layout.wcs_text)
    if cached is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cached = WCS(layout.wcs_text)
        if len(cache) >= _WCS_CACHE_LIMIT:
            cache.clear()
        cache[layout.wcs_text] = cached
    return cached


@dataclass
class PlaneReader:
    """Reads boxes of the planes of one open file; :meth:`close` releases it."""

    layout: FileLayout
    _maps: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    _fitsio: Any = None

    def read_into(self, plane: Plane, out: npt.NDArray[Any], x0: int, y0: int, x1: int,
                  y1: int) -> None:
        """Copy pixels ``[y0:y1, x0:x1]`` (inside the image) of ``plane`` into ``out``."""
        if plane.compressed:
            out[...] = self._compressed(plane)[y0:y1, x0:x1]
            return
        data = self._map(plane)[y0:y1, x0:x1]
        if plane.bscale == 1.0 and plane.bzero == 0.0:
            out[...] = data
        elif out.dtype.kind == "u" or out.dtype == np.dtype("i1"):
            # BZERO = 2**(bits-1): the unsigned values are the stored ones with the top bit
            # flipped, exactly (no float round trip).
            size = out.dtype.itemsize
            stored = data.astype(data.dtype.newbyteorder("=")).view(f"u{size}")
            out[...] = (stored ^ np.array(1 << (8 * size - 1), dtype=f"u{size}")).view(out.dtype)
        else:
            out[...] = data * plane.bscale + plane.bzero

    def array(self, plane: Plane) -> npt.NDArray[Any]:
        """The stored pixels of an uncompressed plane, memory-mapped (big-endian, unscaled)."""
        return self._map(plane)

    def _map(self, plane: Plane) -> npt.NDArray[Any]:
        mapped = self._maps.get(plane.name)
        if mapped is None:
            memmap = np.memmap(self.layout.path, dtype=np.dtype(_BITPIX_DTYPES[plane.bitpix]),
                               mode="r", offset=plane.data_offset,
                               shape=(plane.height, plane.width))
            # A plain ndarray view: slicing a memmap subclass costs several times more.
            mapped = memmap.view(np.ndarray)
            self._maps[plane.name] = mapped
        return mapped

    def release(self, plane: Plane) -> None:
        """Unmap an uncompressed plane (it is mapped again if read again)."""
        self._maps.pop(plane.name, None)

    def _compressed(self, plane: Plane) -> Any:
        if self._fitsio is None:
            import fitsio

            self._fitsio = fitsio.FITS(self.layout.path)
        return self._fitsio[plane.hdu]

    def close(self) -> None:
        self._maps.clear()
        if self._fitsio is not None:
            self._fitsio.close()
            self._fitsio = None


def local_path(uri: str) -> str | None:
    """The path of a ``file://`` URI or a plain path; None for other schemes."""
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path)
    if "://" not in uri:
        return str(Path(uri))
    return None
