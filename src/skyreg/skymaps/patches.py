"""Patch grids of all tracts at once (``lsst.skymap.LegacyTractBuilder.getPatchInfo``).

Patch (x, y) has inner box ``[x * inner, (x + 1) * inner)`` (likewise in y); the inner boxes
tile the tract box exactly. The outer box is the inner box grown by the border on every side and
clipped to the tract box. Sequential patch index = ``y * num_patches_x + x``.

Pixel boxes are half-open integer ranges ``[x0, x1)`` of 0-based pixel indices. Their sky
polygons are the images of the box edges, i.e. of pixel coordinates ``x0 - 0.5`` and
``x1 - 0.5`` (pixel centres sit on integers, as in ``lsst.geom.Box2D(Box2I)``); under TAN
those edges are great circles, so the four corners describe the box exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from skyreg.skymaps.tan_wcs import pixel_to_sky
from skyreg.skymaps.tract_frames import TractFrames

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PatchTable:
    """All patches, sorted by (tract, patch). Boxes are half-open ``[x0, x1)`` pixel ranges."""

    tract: IntArray
    patch: IntArray
    cell_x: IntArray
    cell_y: IntArray
    inner_x0: IntArray
    inner_y0: IntArray
    inner_x1: IntArray
    inner_y1: IntArray
    outer_x0: IntArray
    outer_y0: IntArray
    outer_x1: IntArray
    outer_y1: IntArray
    inner_ra: FloatArray  # (n, 4)
    inner_dec: FloatArray
    outer_ra: FloatArray
    outer_dec: FloatArray

    def __len__(self) -> int:
        return int(self.tract.shape[0])


def box_corners_sky(
    frames: TractFrames,
    rows: IntArray,
    x0: npt.ArrayLike,
    y0: npt.ArrayLike,
    x1: npt.ArrayLike,
    y1: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """Sky corners (n, 4) of half-open pixel boxes in the frames of tracts ``rows``.

    Corner order: (x0, y0), (x1, y0), (x1, y1), (x0, y1) -- a cycle around the box.
    """
    xa = np.asarray(x0, dtype=np.float64) - 0.5
    ya = np.asarray(y0, dtype=np.float64) - 0.5
    xb = np.asarray(x1, dtype=np.float64) - 0.5
    yb = np.asarray(y1, dtype=np.float64) - 0.5
    xs = np.stack([xa, xb, xb, xa], axis=-1)
    ys = np.stack([ya, ya, yb, yb], axis=-1)
    return pixel_to_sky(
        xs,
        ys,
        frames.crval_ra[rows][:, None],
        frames.crval_dec[rows][:, None],
        frames.crpix_x[rows][:, None],
        frames.crpix_y[rows][:, None],
        frames.cd[rows][:, None, :, :],
    )


def build_patches(
    tract_ids: IntArray, frames: TractFrames, inner: int, border: int
) -> tuple[PatchTable, IntArray]:
    """Every patch of every tract, and each tract's first row in the table (length n + 1)."""
    counts = frames.num_patches_x * frames.num_patches_y
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    rows = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    patch = np.arange(int(offsets[-1]), dtype=np.int64) - offsets[rows]
    nx = frames.num_patches_x[rows]
    cell_x = patch % nx
    cell_y = patch // nx
    inner_x0 = cell_x * inner
    inner_y0 = cell_y * inner
    inner_x1 = inner_x0 + inner
    inner_y1 = inner_y0 + inner
    outer_x0 = np.maximum(inner_x0 - border, 0)
    outer_y0 = np.maximum(inner_y0 - border, 0)
    outer_x1 = np.minimum(inner_x1 + border, frames.width[rows])
    outer_y1 = np.minimum(inner_y1 + border, frames.height[rows])
    inner_ra, inner_dec = box_corners_sky(frames, rows, inner_x0, inner_y0, inner_x1, inner_y1)
    outer_ra, outer_dec = box_corners_sky(frames, rows, outer_x0, outer_y0, outer_x1, outer_y1)
    table = PatchTable(
        tract=tract_ids[rows],
        patch=patch,
        cell_x=cell_x,
        cell_y=cell_y,
        inner_x0=inner_x0,
        inner_y0=inner_y0,
        inner_x1=inner_x1,
        inner_y1=inner_y1,
        outer_x0=outer_x0,
        outer_y0=outer_y0,
        outer_x1=outer_x1,
        outer_y1=outer_y1,
        inner_ra=inner_ra,
        inner_dec=inner_dec,
        outer_ra=outer_ra,
        outer_dec=outer_dec,
    )
    return table, offsets
