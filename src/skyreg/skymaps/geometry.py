"""Full tract and patch geometry of a sky map definition, as numpy arrays.

:func:`build_skymap` is the entry point. It dispatches on the definition kind for the tract
layout (ids, centres, inner regions; see :mod:`rings`, :mod:`healpix_tracts`,
:mod:`discrete`), then builds every tract's pixel box and TAN WCS (:mod:`tract_frames`) and
every patch (:mod:`patches`) with the same vectorised code for all kinds.

Conventions, shared by all arrays:

* angles in degrees, RA in [0, 360);
* pixel positions 0-based with pixel centres on integers (lsst.geom), CRPIX in FITS 1-based
  convention; tract boxes span pixels ``[0, width) x [0, height)``;
* patch boxes are half-open ``[x0, x1)`` ranges; sky polygons of boxes run through the pixel
  edges (``x0 - 0.5``, ``x1 - 0.5``) in the cyclic order (x0,y0), (x1,y0), (x1,y1), (x0,y1);
* tract inner polygons have a variable number of vertices: polygon ``i`` is
  ``inner_ra[inner_offsets[i]:inner_offsets[i + 1]]`` (the layout
  :func:`skyreg.geometry.polygons.encode_flat_polygons` takes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS

from skyreg.skymaps import discrete, healpix_tracts, rings
from skyreg.skymaps.definitions import (
    DiscreteDefinition,
    HealpixDefinition,
    RingsDefinition,
    SkyMapDefinition,
)
from skyreg.skymaps.patches import PatchTable, box_corners_sky, build_patches
from skyreg.skymaps.tan_wcs import astropy_tan_wcs, pixel_to_sky
from skyreg.skymaps.tract_frames import (
    TractFrames,
    build_frames,
    explicit_extent_points,
    vertex_extent_points,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TractTable:
    """All tracts, sorted by id. See the module docstring for conventions."""

    tract: IntArray
    ring: npt.NDArray[np.int32]  # rings maps: -1 south cap ... num_rings north cap; else -1
    ra_center: FloatArray
    dec_center: FloatArray
    crval_ra: FloatArray
    crval_dec: FloatArray
    crpix_x: FloatArray  # FITS 1-based
    crpix_y: FloatArray
    cd: FloatArray  # (n, 2, 2) degrees per pixel
    width: IntArray
    height: IntArray
    num_patches_x: IntArray
    num_patches_y: IntArray
    inner_ra: FloatArray  # flat vertices, see inner_offsets
    inner_dec: FloatArray
    inner_offsets: IntArray  # (n + 1,)
    outer_ra: FloatArray  # (n, 4)
    outer_dec: FloatArray
    patch_offsets: IntArray  # (n + 1,): patches of tract row i are rows [p[i], p[i+1])

    def __len__(self) -> int:
        return int(self.tract.shape[0])

    def inner_polygon(self, row: int) -> tuple[FloatArray, FloatArray]:
        """Vertices (RA, Dec) of the inner polygon of tract row ``row``."""
        start, stop = int(self.inner_offsets[row]), int(self.inner_offsets[row + 1])
        return self.inner_ra[start:stop], self.inner_dec[start:stop]


@dataclass(frozen=True)
class SkyMapGeometry:
    """Tracts and patches of one sky map definition."""

    definition: SkyMapDefinition
    tracts: TractTable
    patches: PatchTable

    def tract_row(self, tract: int) -> int:
        """Row of tract id ``tract`` in :attr:`tracts` (ids are 0..n-1 for every kind)."""
        if not 0 <= tract < len(self.tracts):
            raise KeyError(f"tract {tract} is not in this sky map (0..{len(self.tracts) - 1})")
        return tract

    def patch_row(self, tract: int, patch: int) -> int:
        """Row of (tract, patch) in :attr:`patches`."""
        row = self.tract_row(tract)
        start, stop = self.tracts.patch_offsets[row], self.tracts.patch_offsets[row + 1]
        if not 0 <= patch < stop - start:
            raise KeyError(f"tract {tract} has no patch {patch} (0..{stop - start - 1})")
        return int(start + patch)


@dataclass(frozen=True)
class _Layout:
    """What each kind contributes: ids, centres, inner polygons and the box's extent points."""

    ring: npt.NDArray[np.int32]
    ra_center: FloatArray
    dec_center: FloatArray
    extent_ra: FloatArray
    extent_dec: FloatArray
    inner_ra: FloatArray | None  # None: derived from the tract box (ExplicitTractInfo vertices)
    inner_dec: FloatArray | None
    inner_offsets: IntArray | None


def _rings_layout(defn: RingsDefinition) -> _Layout:
    lay = rings.layout(defn)
    radius = np.full(lay.tract.shape, np.degrees(lay.ring_size_rad) / 2.0)
    ext_ra, ext_dec = explicit_extent_points(
        lay.ra_center, lay.dec_center, radius, defn.tract_overlap_deg
    )
    inner_ra, inner_dec, offsets = rings.inner_polygons(defn, lay)
    return _Layout(
        lay.ring.astype(np.int32), lay.ra_center, lay.dec_center, ext_ra, ext_dec,
        inner_ra, inner_dec, offsets,
    )  # fmt: skip


def _healpix_layout(defn: HealpixDefinition) -> _Layout:
    ra, dec = healpix_tracts.pixel_centers(defn.order)
    corner_ra, corner_dec = healpix_tracts.pixel_corners(defn.order)
    ext_ra, ext_dec = vertex_extent_points(corner_ra, corner_dec, defn.tract_overlap_deg)
    offsets = np.arange(0, 4 * ra.shape[0] + 1, 4, dtype=np.int64)
    return _Layout(
        np.full(ra.shape, -1, dtype=np.int32), ra, dec, ext_ra, ext_dec,
        corner_ra.ravel(), corner_dec.ravel(), offsets,
    )  # fmt: skip


def _discrete_layout(defn: DiscreteDefinition) -> _Layout:
    ra, dec = discrete.centers(defn)
    radius = np.full(ra.shape, defn.radius_deg)
    ext_ra, ext_dec = explicit_extent_points(ra, dec, radius, defn.tract_overlap_deg)
    return _Layout(
        np.full(ra.shape, -1, dtype=np.int32), ra, dec, ext_ra, ext_dec, None, None, None
    )


def _layout(defn: SkyMapDefinition) -> _Layout:
    if isinstance(defn, RingsDefinition):
        return _rings_layout(defn)
    if isinstance(defn, HealpixDefinition):
        return _healpix_layout(defn)
    return _discrete_layout(defn)


def build_skymap(defn: SkyMapDefinition) -> SkyMapGeometry:
    """Compute every tract and patch of ``defn`` (pure computation, no database)."""
    lay = _layout(defn)
    n = lay.ra_center.shape[0]
    ids = np.arange(n, dtype=np.int64)
    frames = build_frames(
        lay.ra_center,
        lay.dec_center,
        lay.extent_ra,
        lay.extent_dec,
        defn.pixel_scale_arcsec,
        defn.patch_inner_pixels,
    )
    zeros = np.zeros(n, dtype=np.int64)
    outer_ra, outer_dec = box_corners_sky(frames, ids, zeros, zeros, frames.width, frames.height)
    if lay.inner_ra is None or lay.inner_dec is None or lay.inner_offsets is None:
        inner_ra, inner_dec = _shrunk_box(frames, discrete.EXPLICIT_VERTEX_SHRINK)
        inner_ra, inner_dec = inner_ra.ravel(), inner_dec.ravel()
        inner_offsets = np.arange(0, 4 * n + 1, 4, dtype=np.int64)
    else:
        inner_ra, inner_dec, inner_offsets = lay.inner_ra, lay.inner_dec, lay.inner_offsets
    patches, patch_offsets = build_patches(
        ids, frames, defn.patch_inner_pixels, defn.patch_border_pixels
    )
    tracts = TractTable(
        tract=ids,
        ring=lay.ring,
        ra_center=lay.ra_center,
        dec_center=lay.dec_center,
        crval_ra=frames.crval_ra,
        crval_dec=frames.crval_dec,
        crpix_x=frames.crpix_x,
        crpix_y=frames.crpix_y,
        cd=frames.cd,
        width=frames.width,
        height=frames.height,
        num_patches_x=frames.num_patches_x,
        num_patches_y=frames.num_patches_y,
        inner_ra=inner_ra,
        inner_dec=inner_dec,
        inner_offsets=inner_offsets,
        outer_ra=outer_ra,
        outer_dec=outer_dec,
        patch_offsets=patch_offsets,
    )
    return SkyMapGeometry(definition=defn, tracts=tracts, patches=patches)


def _shrunk_box(frames: TractFrames, shrink: float) -> tuple[FloatArray, FloatArray]:
    """Sky corners (n, 4) of each tract's ``Box2D`` shrunk by ``shrink`` pixels."""
    lo_x = np.full(frames.width.shape, -0.5 + shrink)
    lo_y = lo_x
    hi_x = frames.width - 0.5 - shrink
    hi_y = frames.height - 0.5 - shrink
    xs = np.stack([lo_x, hi_x, hi_x, lo_x], axis=-1)
    ys = np.stack([lo_y, lo_y, hi_y, hi_y], axis=-1)
    return pixel_to_sky(
        xs,
        ys,
        frames.crval_ra[:, None],
        frames.crval_dec[:, None],
        frames.crpix_x[:, None],
        frames.crpix_y[:, None],
        frames.cd[:, None, :, :],
    )


def tract_wcs(geometry: SkyMapGeometry, tract: int) -> WCS:
    """Astropy TAN WCS of a tract; pixel (0, 0) is the tract box's first pixel."""
    t = geometry.tracts
    row = geometry.tract_row(tract)
    return astropy_tan_wcs(
        t.crval_ra[row], t.crval_dec[row], t.crpix_x[row], t.crpix_y[row], t.cd[row]
    )


def patch_wcs(geometry: SkyMapGeometry, tract: int, patch: int) -> WCS:
    """Astropy WCS of a patch image: the tract WCS with pixel (0, 0) at the outer box origin.

    This is the WCS a coadd FITS file of the patch carries (its array starts at the outer box).
    """
    t, p = geometry.tracts, geometry.patches
    row = geometry.tract_row(tract)
    prow = geometry.patch_row(tract, patch)
    return astropy_tan_wcs(
        t.crval_ra[row],
        t.crval_dec[row],
        t.crpix_x[row] - p.outer_x0[prow],
        t.crpix_y[row] - p.outer_y0[prow],
        t.cd[row],
    )
