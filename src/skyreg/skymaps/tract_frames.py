"""Tract pixel frames: bounding box, patch grid and WCS, as ``lsst.skymap`` builds them.

This reproduces, for many tracts at once, what ``lsst.skymap.TractInfo`` does with the
``legacy`` tract builder (``LegacyTractBuilder``) and the WCS from ``detail.WcsFactory``:

1. A TAN WCS with CRVAL at the tract centre, the reference pixel at 0-based position (0, 0),
   CD = diag(-scale, +scale) (``rotation = 0``; RA increases to the left).
2. The minimum bounding box (``Box2D``) of the sky points that must be inside the tract, in that
   WCS's pixels. For ``ExplicitTractInfo`` (rings and discrete maps) these are the tract centre
   moved by ``radius + tractOverlap`` towards E, N, W and S; for a plain ``TractInfo`` (HEALPix)
   they are each inner-region vertex moved by ``tractOverlap / 2`` in 24 directions (or the
   vertices themselves when the overlap is 0).
3. Conversion to an integer box the way ``lsst.geom.Box2I(Box2D)`` does by default (EXPAND):
   ``min = floor(min + 0.5)``, ``max = ceil(max - 0.5)``.
4. Each dimension grown to a whole number of patch inner sizes, the extra pixels split so the
   minimum moves down by ``delta // 2``.
5. The box shifted to start at (0, 0), the WCS reference pixel shifted by the same amount.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from skyreg.skymaps.tan_wcs import offset_points, sky_to_pixel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TractFrames:
    """Per-tract WCS and pixel box; ``crpix`` is FITS 1-based, boxes start at pixel (0, 0)."""

    crval_ra: FloatArray
    crval_dec: FloatArray
    crpix_x: FloatArray
    crpix_y: FloatArray
    cd: FloatArray  # (n, 2, 2), degrees per pixel
    width: IntArray
    height: IntArray
    num_patches_x: IntArray
    num_patches_y: IntArray


def cd_matrices(count: int, pixel_scale_arcsec: float) -> FloatArray:
    """WcsFactory's CD matrix with rotation 0, repeated for ``count`` tracts."""
    scale = pixel_scale_arcsec / 3600.0
    cd = np.zeros((count, 2, 2), dtype=np.float64)
    cd[:, 0, 0] = -scale
    cd[:, 1, 1] = scale
    return cd


def explicit_extent_points(
    ra: FloatArray, dec: FloatArray, radius_deg: FloatArray, overlap_deg: float
) -> tuple[FloatArray, FloatArray]:
    """``ExplicitTractInfo._minimumBoundingBox`` inputs: centre offset E, N, W, S, shape (n, 4)."""
    bearings = np.array([0.0, 90.0, 180.0, 270.0])
    return offset_points(
        ra[:, None], dec[:, None], bearings[None, :], (radius_deg + overlap_deg)[:, None]
    )


def vertex_extent_points(
    vertex_ra: FloatArray, vertex_dec: FloatArray, overlap_deg: float
) -> tuple[FloatArray, FloatArray]:
    """``TractInfo._minimumBoundingBox`` inputs for (n, m) vertices: shape (n, m) or (n, 24 m)."""
    if overlap_deg == 0.0:
        return vertex_ra, vertex_dec
    bearings = np.arange(24) * 15.0
    ra, dec = offset_points(
        vertex_ra[:, :, None], vertex_dec[:, :, None], bearings[None, None, :], overlap_deg / 2.0
    )
    n = vertex_ra.shape[0]
    return ra.reshape(n, -1), dec.reshape(n, -1)


def build_frames(
    center_ra: FloatArray,
    center_dec: FloatArray,
    extent_ra: FloatArray,
    extent_dec: FloatArray,
    pixel_scale_arcsec: float,
    patch_inner_pixels: int,
) -> TractFrames:
    """Tract boxes and WCSs from centres and the (n, m) sky points each box must hold."""
    n = center_ra.shape[0]
    cd = cd_matrices(n, pixel_scale_arcsec)
    # Initial WCS: 0-based reference pixel (0, 0), i.e. FITS CRPIX = 1.
    ones = np.ones(n)
    px, py = sky_to_pixel(
        extent_ra,
        extent_dec,
        center_ra[:, None],
        center_dec[:, None],
        ones[:, None],
        ones[:, None],
        cd[:, None, :, :],
    )
    if not (np.isfinite(px).all() and np.isfinite(py).all()):
        raise ValueError("tract extent reaches 90° from its centre; no TAN bounding box exists")
    mins, dims = [], []
    for pos in (px, py):
        lo = np.floor(pos.min(axis=1) + 0.5).astype(np.int64)
        hi = np.ceil(pos.max(axis=1) - 0.5).astype(np.int64)
        dim = hi - lo + 1
        num = (dim + patch_inner_pixels - 1) // patch_inner_pixels
        delta = patch_inner_pixels * num - dim
        lo = lo - delta // 2
        mins.append(lo)
        dims.append(patch_inner_pixels * num)
    return TractFrames(
        crval_ra=center_ra.astype(np.float64),
        crval_dec=center_dec.astype(np.float64),
        crpix_x=(1 - mins[0]).astype(np.float64),
        crpix_y=(1 - mins[1]).astype(np.float64),
        cd=cd,
        width=dims[0],
        height=dims[1],
        num_patches_x=dims[0] // patch_inner_pixels,
        num_patches_y=dims[1] // patch_inner_pixels,
    )
