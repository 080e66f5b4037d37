"""Nested HEALPix pixel centres and corners, in numpy (no healpy needed).

The formulas are the standard HEALPix ones (Górski et al. 2005; ``xyf2loc`` in the HEALPix C++
library): a nested index splits into a base face and interleaved (x, y) bits; a position
(x, y) in [0, 1]^2 on a face maps to (z = sin dec, phi). Tests cross-check the result against
``lsst.sphgeom.HealpixPixelization`` (nested), which is installed.

Tract inner region: the polygon of the pixel's four corners. HEALPix pixel edges are not great
circles, so this is an approximation of the pixel (it neither contains nor is contained in it;
the difference is a sliver along each edge). As in ``lsst.skymap.HealpixSkyMap`` the tract box
is built from those four vertices plus the tract overlap (see :mod:`tract_frames`), so an
overlap of a few arcminutes covers the slivers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from skyreg.skymaps.tan_wcs import wrap_ra_deg

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_JRLL = np.array([2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4], dtype=np.float64)
_JPLL = np.array([1, 3, 5, 7, 0, 2, 4, 6, 1, 3, 5, 7], dtype=np.float64)


def _compact_bits(value: IntArray, order: int) -> IntArray:
    """Every other bit of ``value`` (bits 0, 2, 4, ...) packed together."""
    result = np.zeros_like(value)
    for bit in range(order):
        result |= ((value >> (2 * bit)) & 1) << bit
    return result


def nest_to_xyf(pixels: IntArray, order: int) -> tuple[IntArray, IntArray, IntArray]:
    """Face-local integer coordinates (ix, iy) and base face of nested pixel indices."""
    face = pixels >> (2 * order)
    local = pixels & ((1 << (2 * order)) - 1)
    return _compact_bits(local, order), _compact_bits(local >> 1, order), face


def xyf_to_radec(x: FloatArray, y: FloatArray, face: IntArray) -> tuple[FloatArray, FloatArray]:
    """RA/Dec (degrees) of continuous face coordinates (x, y) in [0, 1]."""
    jr = _JRLL[face] - x - y
    north = jr < 1.0
    south = jr > 3.0
    nr = np.where(north, jr, np.where(south, 4.0 - jr, 1.0))
    z = np.where(
        north, 1.0 - nr * nr / 3.0, np.where(south, nr * nr / 3.0 - 1.0, (2.0 - jr) * 2.0 / 3.0)
    )
    tmp = _JPLL[face] * nr + x - y
    tmp = np.where(tmp < 0.0, tmp + 8.0, tmp)
    tmp = np.where(tmp >= 8.0, tmp - 8.0, tmp)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(nr < 1e-15, 0.0, (np.pi / 4.0) * tmp / np.where(nr < 1e-15, 1.0, nr))
    dec = np.degrees(np.arcsin(np.clip(z, -1.0, 1.0)))
    return wrap_ra_deg(np.degrees(phi)), dec


def pixel_centers(order: int) -> tuple[FloatArray, FloatArray]:
    """Centres of all nested pixels of ``order``, in index order."""
    nside = 1 << order
    ix, iy, face = nest_to_xyf(np.arange(12 * nside * nside, dtype=np.int64), order)
    return xyf_to_radec((ix + 0.5) / nside, (iy + 0.5) / nside, face)


def pixel_corners(order: int) -> tuple[FloatArray, FloatArray]:
    """Corners (n, 4) of all nested pixels, in cyclic order around each pixel."""
    nside = 1 << order
    ix, iy, face = nest_to_xyf(np.arange(12 * nside * nside, dtype=np.int64), order)
    # Corners (x, y), (x+1, y), (x+1, y+1), (x, y+1) of the face grid: a cycle round the pixel.
    dx = np.array([0.0, 1.0, 1.0, 0.0])
    dy = np.array([0.0, 0.0, 1.0, 1.0])
    x = (ix[:, None] + dx[None, :]) / nside
    y = (iy[:, None] + dy[None, :]) / nside
    return xyf_to_radec(x, y, np.broadcast_to(face[:, None], x.shape))
