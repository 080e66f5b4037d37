"""Pixel geometry of stamp requests, free of files: boxes, clipping, masks and stamp WCSs.

Conventions (those of :mod:`skyreg.skymaps`): pixel positions are 0-based with pixel centres
on integers; boxes are half-open ``[x0, x1) x [y0, y1)`` of pixel indices. A stamp of
``width x height`` pixels around a position ``(x, y)`` starts at ``ceil(x - width / 2)``: the
box whose centre is nearest the position, as astropy's ``Cutout2D`` chooses it.

The stamp WCS is the source WCS with its reference pixel moved by the stamp's origin, so a
stamp pixel ``(i, j)`` maps to exactly the sky position of source pixel ``(x0 + i, y0 + j)``;
SIP polynomials (relative to CRPIX) move with it and lookup-table distortions (indexed by
image pixel) get their reference value shifted, so distorted files keep their distortions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS, DistortionLookupTable, Sip
from lsst.sphgeom import Region

from skyreg.cutouts.regions import contains, outline

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Boxes:
    """Half-open pixel boxes, one per row (numpy int64 arrays)."""

    x0: IntArray
    y0: IntArray
    x1: IntArray
    y1: IntArray

    def __len__(self) -> int:
        return int(self.x0.shape[0])

    def clip(self, width: int, height: int) -> Boxes:
        """The boxes cut to an image of ``width x height`` pixels (may become empty)."""
        return Boxes(np.clip(self.x0, 0, width), np.clip(self.y0, 0, height),
                     np.clip(self.x1, 0, width), np.clip(self.y1, 0, height))

    def intersect(self, other: Boxes) -> Boxes:
        """Row-wise intersection with boxes of the same length (or broadcastable)."""
        return Boxes(np.maximum(self.x0, other.x0), np.maximum(self.y0, other.y0),
                     np.minimum(self.x1, other.x1), np.minimum(self.y1, other.y1))

    @property
    def nonempty(self) -> BoolArray:
        return np.asarray((self.x1 > self.x0) & (self.y1 > self.y0), dtype=bool)

    def shift(self, dx: npt.ArrayLike, dy: npt.ArrayLike) -> Boxes:
        ddx, ddy = np.asarray(dx, dtype=np.int64), np.asarray(dy, dtype=np.int64)
        return Boxes(self.x0 + ddx, self.y0 + ddy, self.x1 + ddx, self.y1 + ddy)

    def take(self, rows: npt.ArrayLike) -> Boxes:
        index = np.asarray(rows)
        return Boxes(self.x0[index], self.y0[index], self.x1[index], self.y1[index])


def stamp_boxes(x: npt.ArrayLike, y: npt.ArrayLike, width: npt.ArrayLike,
                height: npt.ArrayLike) -> Boxes:
    """Requested boxes of ``width x height`` pixels nearest-centred on pixel positions.

    Positions that are not finite (a sky position with no image in a projection) get empty
    boxes far outside any image.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    w = np.broadcast_to(np.asarray(width, dtype=np.int64), xs.shape)
    h = np.broadcast_to(np.asarray(height, dtype=np.int64), xs.shape)
    finite = np.isfinite(xs) & np.isfinite(ys) & (np.abs(xs) < 2**52) & (np.abs(ys) < 2**52)
    far = np.int64(-(2**60))
    with np.errstate(invalid="ignore"):
        x0 = np.where(finite, np.ceil(np.where(finite, xs, 0.0) - w / 2.0), far).astype(np.int64)
        y0 = np.where(finite, np.ceil(np.where(finite, ys, 0.0) - h / 2.0), far).astype(np.int64)
    return Boxes(x0, y0, x0 + np.where(finite, w, 0), y0 + np.where(finite, h, 0))


def shifted_wcs(wcs: WCS, dx: float, dy: float, shape: tuple[int, int] | None = None) -> WCS:
    """``wcs`` for an array whose pixel (0, 0) is pixel ``(dx, dy)`` of the original.

    ``shape`` (rows, columns) sets the new WCS's ``array_shape``.
    """
    new = copy.deepcopy(wcs)  # copy.copy would share the wcsprm with the source
    new.wcs.crpix = np.asarray(wcs.wcs.crpix, dtype=np.float64) - np.array([dx, dy])
    if wcs.sip is not None:
        sip = wcs.sip
        new.sip = Sip(sip.a, sip.b, sip.ap, sip.bp,
                      np.asarray(sip.crpix, dtype=np.float64) - np.array([dx, dy]))
    for name in ("cpdis1", "cpdis2", "det2im1", "det2im2"):
        table = getattr(wcs, name)
        if table is not None:
            setattr(new, name, DistortionLookupTable(
                np.asarray(table.data, dtype=np.float32), tuple(table.crpix),
                tuple(np.asarray(table.crval, dtype=np.float64) - np.array([dx, dy])),
                tuple(table.cdelt)))
    new.wcs.set()
    if shape is not None:
        new.array_shape = shape
    return new


def region_box(region: Region, wcs: WCS, width: int, height: int) -> Boxes | None:
    """The bounding rectangle, within the image, of the pixels whose centres ``region`` holds.

    Returns one box, or None when no pixel of the image is selected. Exact: a candidate box
    from the region's outline (or the whole image, when the region holds an image corner or
    the outline leaves the projection) is cut down to the pixels the mask selects.
    """
    mask_box = candidate_box(region, wcs, width, height)
    if mask_box is None:
        return None
    mask = region_mask(region, wcs, mask_box)
    return tight_box(mask, mask_box)


def candidate_box(region: Region, wcs: WCS, width: int, height: int) -> Boxes | None:
    """A box within the image that holds every pixel centre the region contains."""
    ra, dec = outline(region)
    x, y = _world_to_pixel(wcs, ra, dec)
    corners_x = np.array([-0.5, width - 0.5, width - 0.5, -0.5, (width - 1) / 2.0])
    corners_y = np.array([-0.5, -0.5, height - 0.5, height - 0.5, (height - 1) / 2.0])
    c_ra, c_dec = wcs.all_pix2world(corners_x, corners_y, 0)
    whole = (not np.all(np.isfinite(x) & np.isfinite(y))) or bool(
        contains(region, c_ra, c_dec).any())
    if whole:
        x0, y0, x1, y1 = 0, 0, width, height
    else:
        # Two pixels of margin: the outline is sampled, and distortions bend straight edges.
        x0 = int(np.floor(x.min() + 0.5)) - 2
        y0 = int(np.floor(y.min() + 0.5)) - 2
        x1 = int(np.floor(x.max() + 0.5)) + 3
        y1 = int(np.floor(y.max() + 0.5)) + 3
    box = Boxes(*(np.array([v], dtype=np.int64) for v in (x0, y0, x1, y1))).clip(width, height)
    return box if bool(box.nonempty[0]) else None


def region_mask(region: Region, wcs: WCS, box: Boxes, row: int = 0) -> BoolArray:
    """Pixels of ``box[row]`` whose centres the region contains (rows = y, columns = x)."""
    x0, y0 = int(box.x0[row]), int(box.y0[row])
    xs = np.arange(x0, int(box.x1[row]), dtype=np.float64)
    ys = np.arange(y0, int(box.y1[row]), dtype=np.float64)
    gx, gy = np.meshgrid(xs, ys)
    ra, dec = wcs.all_pix2world(gx.ravel(), gy.ravel(), 0)
    return contains(region, ra, dec).reshape(gx.shape)


def tight_box(mask: BoolArray, box: Boxes, row: int = 0) -> Boxes | None:
    """The smallest box (in the same frame as ``box``) holding every True pixel of ``mask``."""
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        return None
    j = np.flatnonzero(rows)
    i = np.flatnonzero(cols)
    x0, y0 = int(box.x0[row]), int(box.y0[row])
    return Boxes(np.array([x0 + i[0]]), np.array([y0 + j[0]]), np.array([x0 + i[-1] + 1]),
                 np.array([y0 + j[-1] + 1]))


def _world_to_pixel(wcs: WCS, ra: FloatArray, dec: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Pixel positions (0-based) of sky positions; NaN where the WCS has no answer."""
    import warnings

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        try:
            x, y = wcs.all_world2pix(ra, dec, 0, quiet=True)
        except Exception:
            x, y = wcs.wcs_world2pix(ra, dec, 0)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def world_to_pixel(wcs: WCS, ra: npt.ArrayLike, dec: npt.ArrayLike
                   ) -> tuple[FloatArray, FloatArray]:
    """One vectorised world -> pixel call for all positions of a file (degrees, 0-based)."""
    return _world_to_pixel(wcs, np.asarray(ra, dtype=np.float64),
                           np.asarray(dec, dtype=np.float64))
