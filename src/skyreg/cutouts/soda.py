"""The pixel core of SODA cutouts: one registered file, one or more regions, FITS bytes back.

:func:`soda_cutout` is what the web service's SODA endpoint calls; :func:`soda_cuts` gives the
same pixels as arrays (the service renders PNG previews from them). Their contract:

* each region is a DALI shape string (``CIRCLE``, ``POLYGON``, ``RANGE``; ICRS degrees) or a
  sphgeom region; a malformed or impossible one raises :class:`RegionError` (HTTP 400);
* a cutout is the bounding rectangle, clipped to the image, of the pixels whose centres the
  region contains -- every pixel of the rectangle is returned, as SODA asks (no masking);
* every plane of the file is cut (image, and mask/variance/... HDUs when present, see
  :mod:`skyreg.cutouts.planes`), tile-compressed source HDUs included, each as an
  **uncompressed** image extension with the cutout's exact WCS (the source WCS with CRPIX
  moved, distortion terms kept) after an empty primary HDU that names the source;
* several regions give one multi-extension file with one group of plane HDUs per region that
  holds pixels: ``EXTVER`` is the region's 1-based position in the request and ``POS`` its
  text, so ``hdul["IMAGE", 2]`` is the image plane of the second region; the primary header
  lists every region (``POSn``) and flags those without pixels (``NOPIXn = T``);
* None when no region holds a pixel centre of the image (HTTP 204 / empty result);
* limits: ``max_side`` pixels along either axis of a cutout, ``max_pixels`` pixels over all
  cutouts and planes of a request, checked before any pixel is read
  (:class:`CutoutTooLarge`);
* a file that is missing or not a readable image raises :class:`FileReadError`.

Only the headers and the pixels of the rectangles are read (memory map or tile subsets); the
header walk of a file is cached by (path, HDU, size, modification time), because alert and
deblending clients ask for many cutouts of few files.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS
from lsst.sphgeom import Region

from skyreg.cutouts import fits_writer
from skyreg.cutouts.errors import FileReadError, StampRequestError
from skyreg.cutouts.geometry import Boxes, candidate_box, region_mask, shifted_wcs
from skyreg.cutouts.planes import FileLayout, LayoutError, PlaneReader, layout_wcs, read_layout
from skyreg.cutouts.regions import contains, parse_region

#: Source header keywords copied to every plane of a cutout when present.
COPIED_KEYWORDS = ("BUNIT", "BAND", "FILTER", "EXPTIME", "FLUXMAG0", "MAGZERO", "TELESCOP",
                   "INSTRUME", "DETECTOR", "CCDNUM", "OBJECT", "DATE-OBS", "MJD-OBS",
                   "AIRMASS")

#: Pixels whose centres are tested at once when a region's rectangle is searched.
_MASK_CHUNK = 1 << 20


class CutoutTooLarge(StampRequestError):
    """A cutout larger than the caller's limits (the service answers HTTP 413)."""


@dataclass(frozen=True)
class SodaCut:
    """The pixels of one region in one file: every plane of the rectangle ``box``."""

    index: int  # 1-based position of the region in the request
    region: str  # the region as given (shape text), for provenance
    box: tuple[int, int, int, int]  # x0, y0, x1, y1: half-open source pixels
    wcs: WCS  # the cutout's own WCS
    planes: dict[str, npt.NDArray[Any]]


@dataclass(frozen=True)
class SodaCuts:
    """What :func:`soda_cuts` found: the file's layout and one entry per region (None: none of
    its pixel centres is in the image)."""

    layout: FileLayout
    cuts: list[SodaCut | None]

    @property
    def empty(self) -> bool:
        return all(cut is None for cut in self.cuts)


_layouts: OrderedDict[tuple[str, int, int, int], FileLayout] = OrderedDict()
_layouts_lock = threading.Lock()
_LAYOUT_CACHE_SIZE = 256


def _layout(path: str, hdu: int) -> FileLayout:
    """The file's layout, from the cache while the file is unchanged."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise FileReadError(path, "file not found") from None
    except OSError as err:
        raise FileReadError(path, f"unreadable: {err.strerror or err}") from None
    key = (path, hdu, stat.st_size, stat.st_mtime_ns)
    with _layouts_lock:
        found = _layouts.get(key)
        if found is not None:
            _layouts.move_to_end(key)
            return found
    try:
        layout = read_layout(path, hdu)
    except LayoutError as err:
        raise FileReadError(path, str(err)) from None
    with _layouts_lock:
        _layouts[key] = layout
        while len(_layouts) > _LAYOUT_CACHE_SIZE:
            _layouts.popitem(last=False)
    return layout


def clear_cache() -> None:
    """Forget cached file layouts (tests; a long-lived process whose files were rewritten in
    place within one mtime tick)."""
    with _layouts_lock:
        _layouts.clear()


def _text(region: str | Region) -> str:
    return " ".join(region.split()) if isinstance(region, str) else str(region)


def soda_cuts(path: str | os.PathLike[str], hdu: int, regions: Sequence[str | Region],
              max_side: int | None = None, max_pixels: int | None = None) -> SodaCuts:
    """Every plane of the rectangle of each region in HDU ``hdu`` of ``path`` (module doc)."""
    shapes = [parse_region(region, "POS" if len(regions) == 1 else f"POS {k}")
              for k, region in enumerate(regions, 1)]
    name = os.fspath(path)
    layout = _layout(name, hdu)
    wcs = layout_wcs(layout)
    boxes = [_region_rectangle(shape, wcs, layout.width, layout.height) for shape in shapes]
    total = 0
    for k, box in enumerate(boxes, 1):
        if box is None:
            continue
        width, height = box[2] - box[0], box[3] - box[1]
        which = "the cutout" if len(boxes) == 1 else f"the cutout of region {k}"
        if max_side is not None and max(width, height) > max_side:
            raise CutoutTooLarge(f"{which} would be {width} x {height} pixels; at most "
                                 f"{max_side} pixels along each axis")
        total += width * height * len(layout.planes)
    if max_pixels is not None and total > max_pixels:
        raise CutoutTooLarge(f"the cutouts would hold {total} pixels over "
                             f"{len(layout.planes)} planes; at most {max_pixels} per request")
    cuts: list[SodaCut | None] = []
    reader = PlaneReader(layout)
    try:
        for k, (region, box) in enumerate(zip(regions, boxes, strict=True), 1):
            if box is None:
                cuts.append(None)
                continue
            x0, y0, x1, y1 = box
            planes: dict[str, npt.NDArray[Any]] = {}
            for plane in layout.planes:
                out = np.empty((y1 - y0, x1 - x0), dtype=plane.dtype)
                reader.read_into(plane, out, x0, y0, x1, y1)
                planes[plane.name] = out
            cuts.append(SodaCut(k, _text(region), box,
                                shifted_wcs(wcs, x0, y0, (y1 - y0, x1 - x0)), planes))
    except (OSError, ValueError) as err:
        raise FileReadError(name, f"unreadable pixels: {err}") from None
    finally:
        reader.close()
    return SodaCuts(layout, cuts)


def _region_rectangle(region: Region, wcs: WCS, width: int, height: int
                      ) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the pixels whose centres the region holds, or None.

    The candidate box (from the region's outline, or the whole image) is shrunk from its
    edges: a first or last row or column of the box without a selected pixel cannot be part
    of the answer and is dropped, and an edge holding a selected pixel keeps holding one when
    the others move (they only drop unselected rows and columns), so it is never tested again.
    When every edge holds a selected pixel the box is the answer -- exact for any region, and
    a few hundred centres are tested instead of every pixel of the box (a region holding a
    whole 4k x 4k image costs 16k tests, not 16M). A box that does not settle in a few steps
    (a thin region across a large candidate) is finished with the mask, in chunks of rows.
    """
    box = candidate_box(region, wcs, width, height)
    if box is None:
        return None
    x0, y0, x1, y1 = (int(v[0]) for v in (box.x0, box.y0, box.x1, box.y1))
    settled = [False, False, False, False]  # bottom row, top row, left column, right column
    for _ in range(_SHRINK_STEPS):
        for side in range(4):
            if x1 <= x0 or y1 <= y0:
                return None
            if settled[side]:
                continue
            xs, ys = _edge(side, x0, y0, x1, y1)
            if _selects(region, wcs, xs, ys).any():
                settled[side] = True
            elif side == 0:
                y0 += 1
            elif side == 1:
                y1 -= 1
            elif side == 2:
                x0 += 1
            else:
                x1 -= 1
        if all(settled):
            return x0, y0, x1, y1
    if x1 <= x0 or y1 <= y0:
        return None
    rows_any = np.zeros(y1 - y0, dtype=bool)
    cols_any = np.zeros(x1 - x0, dtype=bool)
    step = max(1, _MASK_CHUNK // (x1 - x0))
    for start in range(y0, y1, step):
        stop = min(y1, start + step)
        chunk = Boxes(*(np.array([v], dtype=np.int64) for v in (x0, start, x1, stop)))
        mask = region_mask(region, wcs, chunk)
        rows_any[start - y0:stop - y0] = mask.any(axis=1)
        cols_any |= mask.any(axis=0)
    if not rows_any.any():
        return None
    rows, cols = np.flatnonzero(rows_any), np.flatnonzero(cols_any)
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


#: Rounds of edge shrinking before the mask finishes the job.
_SHRINK_STEPS = 8


def _edge(side: int, x0: int, y0: int, x1: int, y1: int
          ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Pixel centres of one edge of a box (0: row y0, 1: row y1 - 1, 2: column x0, 3: x1 - 1)."""
    if side < 2:
        xs = np.arange(x0, x1, dtype=np.float64)
        return xs, np.full(xs.shape, float(y0 if side == 0 else y1 - 1))
    ys = np.arange(y0, y1, dtype=np.float64)
    return np.full(ys.shape, float(x0 if side == 2 else x1 - 1)), ys


def _selects(region: Region, wcs: WCS, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
             ) -> npt.NDArray[np.bool_]:
    ra, dec = wcs.all_pix2world(x, y, 0)
    return contains(region, ra, dec)


def soda_cutout(path: str | os.PathLike[str], hdu: int,
                region: str | Region | Sequence[str | Region],
                max_side: int | None = None, max_pixels: int | None = None) -> bytes | None:
    """FITS bytes of the cutouts of ``region`` (one, or a list) from HDU ``hdu`` of ``path``."""
    regions: Sequence[str | Region] = [region] if isinstance(region, str | Region) else region
    found = soda_cuts(path, hdu, regions, max_side, max_pixels)
    if found.empty:
        return None
    return cutout_fits(os.fspath(path), hdu, found)


def cutout_fits(path: str, hdu: int, found: SodaCuts) -> bytes:
    """The multi-extension FITS file of :func:`soda_cuts`' answer (see the module doc)."""
    layout = found.layout
    card = fits_writer.card
    copied = [card(k, layout.header[k]) for k in COPIED_KEYWORDS
              if k in layout.header and _plain(layout.header[k])]
    source = [card("SRCFILE", os.path.basename(path), "source file"),
              card("SRCHDU", hdu, "source HDU of the image plane")]
    listing = [card("NPOS", len(found.cuts), "regions requested")]
    for k, cut in enumerate(found.cuts, 1):
        if cut is None:
            listing.append(card(f"NOPIX{k}", True, f"region {k} holds no pixel"))
        else:
            listing.append(card(f"POS{k}", cut.region))
    chunks = [fits_writer.primary_hdu([*source, card("PLANES", ",".join(
        p.name for p in layout.planes), "planes, one extension each"), *listing])]
    for cut in found.cuts:
        if cut is None:
            continue
        x0, y0 = cut.box[0], cut.box[1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs_cards = [str(c.image) for c in cut.wcs.to_header(relax=True).cards
                         if c.keyword not in ("DATE-OBS", "MJD-OBS", "DATEREF", "MJDREFI",
                                              "MJDREFF")]
        provenance = [*source, card("POS", cut.region, "the region of this cutout"),
                      card("SRCX0", x0, "source pixel of this (0, 0), x"),
                      card("SRCY0", y0, "source pixel of this (0, 0), y"),
                      card("LTV1", -x0), card("LTV2", -y0)]
        for name, pixels in cut.planes.items():
            chunks.append(fits_writer.image_hdu(pixels, [
                card("EXTNAME", name.upper()), card("EXTVER", cut.index, "region number"),
                *provenance, *copied, *wcs_cards]))
    return b"".join(chunks)


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)
