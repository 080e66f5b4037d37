"""A "rings" sky map in the style of LSST's RingsSkyMap (as used for HSC's ``hsc_rings_v1``).

The sphere is cut into ``num_rings`` declination rings of equal height plus two polar caps.
The ring height is ``180° / (num_rings + 1)``, so each cap is half a ring high. Ring ``i``
(counted from the south) is divided in RA into ``int(360° cos(d) / height) + 1`` equal cells,
``d`` being the smaller |dec| of the ring's two edges, which keeps cells roughly square. Tract
ids start with the south cap (tract 0), go ring by ring northwards, each ring starting at RA
``ra_start`` and increasing in RA, and end with the north cap. With 120 rings this gives 18938
tracts and puts tract 9813 over COSMOS, matching the public HSC numbering, which makes the
synthetic data look familiar to anyone used to real Rubin/HSC repositories.

Each tract has a TAN projection centred on it. Its *inner* polygon is the cell it owns (the
four RA/Dec corners of the cell, or the polygon of ring-edge vertices for a cap). Its *outer*
polygon is the pixel box bounding the inner polygon on the tract's tangent plane, grown by
the tract overlap and rounded up to whole patches. The box is tiled into
``patch_grid x patch_grid`` patches; a patch's outer polygon is its tile grown by
``patch_border`` pixels and clipped to the tract box, as in lsst.skymap, so that patch outer
regions never reach beyond their tract.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from .sphere import FloatArray, sky_to_tangent, tangent_to_sky, wrap_ra

__all__ = ["PatchTable", "RingsSkyMap", "RingsSkyMapConfig", "TractTable"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RingsSkyMapConfig:
    """Parameters that define the sky map; together they determine its hash.

    The defaults mirror HSC's rings sky map (0.168"/pixel, 1 arcmin tract overlap, 100-pixel
    patch border), except that tracts are tiled into a fixed 10 x 10 grid of patches.
    """

    num_rings: int = 120
    ra_start: float = 0.0
    pixel_scale_arcsec: float = 0.168
    tract_overlap_deg: float = 1.0 / 60.0
    patch_grid: int = 10
    patch_border_px: int = 100

    def parameters(self) -> dict[str, Any]:
        """The definition as plain JSON-able values (stored verbatim in skymap.json)."""
        return {
            "num_rings": self.num_rings,
            "ra_start": self.ra_start,
            "projection": "TAN",
            "pixel_scale_arcsec": self.pixel_scale_arcsec,
            "tract_overlap_deg": self.tract_overlap_deg,
            "patch_grid": [self.patch_grid, self.patch_grid],
            "patch_border_px": self.patch_border_px,
            "tract_numbering": "south cap = 0, then rings northwards, RA increasing",
        }

    def sha1_hex(self) -> str:
        """SHA-1 of the canonical JSON of ``kind`` and the parameters.

        Canonical means sorted keys and no insignificant whitespace, so the digest depends
        only on the definition. It deliberately does not depend on which tracts a manifest
        happens to contain: two synthetic surveys over different areas share one sky map.
        """
        canonical = json.dumps(
            {"kind": "rings", "parameters": self.parameters()},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha1(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TractTable:
    """Geometry of a set of tracts, column-oriented for writing to Parquet.

    Polygons are lists of per-tract vertex arrays because cap tracts have more vertices than
    ring tracts. ``x0, y0, width, height`` give each tract's pixel box in its own TAN frame
    (pixel origin at the tract centre, x growing towards the west like a FITS image with
    north up and east left).
    """

    tract: IntArray
    ring: npt.NDArray[np.int32]
    ra_center: FloatArray
    dec_center: FloatArray
    inner_ra: list[FloatArray]
    inner_dec: list[FloatArray]
    outer_ra: FloatArray  # (n, 4)
    outer_dec: FloatArray  # (n, 4)
    x0: FloatArray
    y0: FloatArray
    patch_width: FloatArray
    patch_height: FloatArray
    node_ra: FloatArray  # (n, grid+1, grid+1), indexed [tract, y, x]
    node_dec: FloatArray


@dataclass(frozen=True)
class PatchTable:
    """Geometry of all patches of a set of tracts; polygon columns are ``(n, 4)`` arrays."""

    tract: IntArray
    patch: IntArray
    cell_x: npt.NDArray[np.int32]
    cell_y: npt.NDArray[np.int32]
    inner_ra: FloatArray
    inner_dec: FloatArray
    outer_ra: FloatArray
    outer_dec: FloatArray


def _pixel_range(values: FloatArray, overlap_px: float, grid: int) -> tuple[int, int]:
    """Integer pixel range ``(start, size)`` covering ``values`` plus the overlap border.

    The size is rounded up to a multiple of ``grid`` (whole patches of integer size), the
    extra pixels split evenly on both sides so the tract stays centred.
    """
    lo = math.floor(float(values.min()) - overlap_px)
    hi = math.ceil(float(values.max()) + overlap_px)
    size = hi - lo
    padded = -(-size // grid) * grid
    return lo - (padded - size) // 2, padded


class RingsSkyMap:
    """Tract numbering, selection and geometry of a rings sky map."""

    def __init__(self, config: RingsSkyMapConfig = RingsSkyMapConfig()) -> None:
        self.config = config
        n = config.num_rings
        self.ring_height = 180.0 / (n + 1)
        counts = []
        for i in range(n):
            lo, hi = self.ring_dec_bounds(i)
            d = math.radians(min(abs(lo), abs(hi)))
            counts.append(int(2.0 * math.pi * math.cos(d) / math.radians(self.ring_height)) + 1)
        self.ring_counts: list[int] = counts
        # Tract id of the first tract of each ring (the south cap is tract 0).
        first = [1]
        for c in counts[:-1]:
            first.append(first[-1] + c)
        self.ring_first: list[int] = first
        self.n_tracts: int = sum(counts) + 2

    # -- numbering -------------------------------------------------------------------------

    def ring_dec_bounds(self, ring: int) -> tuple[float, float]:
        """Declination range [lo, hi] of a ring in degrees; -1 and ``num_rings`` are caps."""
        if ring < 0:
            return -90.0, -90.0 + 0.5 * self.ring_height
        if ring >= self.config.num_rings:
            return 90.0 - 0.5 * self.ring_height, 90.0
        lo = -90.0 + (ring + 0.5) * self.ring_height
        return lo, lo + self.ring_height

    def ring_of(self, tract: int) -> int:
        """Ring index of a tract (-1 for the south cap, ``num_rings`` for the north cap)."""
        if tract == 0:
            return -1
        if tract == self.n_tracts - 1:
            return self.config.num_rings
        if not 0 < tract < self.n_tracts:
            raise ValueError(f"tract {tract} is not in this sky map (0..{self.n_tracts - 1})")
        return int(np.searchsorted(self.ring_first, tract, side="right")) - 1

    def ra_step(self, ring: int) -> float:
        """RA width of the cells of a ring, in degrees."""
        return 360.0 / self.ring_counts[ring]

    def tract_center(self, tract: int) -> tuple[float, float]:
        """Centre (ra, dec) of a tract; a cap is centred on its pole."""
        ring = self.ring_of(tract)
        if ring < 0:
            return self.config.ra_start % 360.0, -90.0
        if ring >= self.config.num_rings:
            return self.config.ra_start % 360.0, 90.0
        j = tract - self.ring_first[ring]
        ra = float(wrap_ra(self.config.ra_start + j * self.ra_step(ring)))
        return ra, -90.0 + (ring + 1) * self.ring_height

    def find_tract(self, ra: float, dec: float) -> int:
        """Id of the tract whose cell contains (ra, dec) in degrees."""
        pos = (dec + 90.0) / self.ring_height - 0.5
        if pos < 0.0:
            return 0
        ring = int(pos)
        if ring >= self.config.num_rings:
            return self.n_tracts - 1
        step = self.ra_step(ring)
        j = math.floor(((ra - self.config.ra_start) % 360.0) / step + 0.5)
        return self.ring_first[ring] + j % self.ring_counts[ring]

    # -- selection -------------------------------------------------------------------------

    def select_tracts(
        self, ra_center: float, ra_half_width: float, dec_lo: float, dec_hi: float
    ) -> IntArray:
        """Ids of all tracts whose cell meets the RA/Dec box (RA half-width in RA degrees).

        The test is done on cells in RA/Dec space, which is conservative enough once the
        caller has widened the box by a margin: any point within the margin of the box lies
        in one of the selected cells.
        """
        selected: list[int] = []
        if dec_lo <= self.ring_dec_bounds(-1)[1]:
            selected.append(0)
        for ring in range(self.config.num_rings):
            lo, hi = self.ring_dec_bounds(ring)
            if hi < dec_lo or lo > dec_hi:
                continue
            count = self.ring_counts[ring]
            step = self.ra_step(ring)
            if ra_half_width + 0.5 * step >= 180.0:
                selected.extend(range(self.ring_first[ring], self.ring_first[ring] + count))
                continue
            centres = self.config.ra_start + np.arange(count) * step
            diff = (centres - ra_center + 180.0) % 360.0 - 180.0
            hits = np.nonzero(np.abs(diff) <= ra_half_width + 0.5 * step)[0]
            selected.extend(int(self.ring_first[ring] + j) for j in hits)
        if dec_hi >= self.ring_dec_bounds(self.config.num_rings)[0]:
            selected.append(self.n_tracts - 1)
        return np.array(sorted(selected), dtype=np.int64)

    # -- geometry --------------------------------------------------------------------------

    def inner_vertices(self, tract: int) -> tuple[FloatArray, FloatArray]:
        """Vertices (ra, dec) of the region a tract owns.

        A ring tract uses the four corners of its RA/Dec cell, so its constant-Dec sides
        become great-circle arcs. They bow poleward of the true cell edge by under 10" for
        |dec| < 30°, ~27" at |dec| = 60° and up to ~6.5' in the ring next to a cap, where
        cells are 36° wide in RA; the polygon is still convex and inside the tract's outer
        box. A cap uses the cell corners of the adjacent ring, so that cap and ring share
        those edges exactly.
        """
        ring = self.ring_of(tract)
        n = self.config.num_rings
        if ring < 0 or ring >= n:
            edge_ring = 0 if ring < 0 else n - 1
            dec = self.ring_dec_bounds(ring)[1 if ring < 0 else 0]
            step = self.ra_step(edge_ring)
            count = self.ring_counts[edge_ring]
            ra = self.config.ra_start + (np.arange(count, dtype=np.float64) + 0.5) * step
            return wrap_ra(ra), np.full(count, dec, dtype=np.float64)
        ra_c, _ = self.tract_center(tract)
        half = 0.5 * self.ra_step(ring)
        lo, hi = self.ring_dec_bounds(ring)
        ra = wrap_ra([ra_c - half, ra_c + half, ra_c + half, ra_c - half])
        return ra, np.array([lo, lo, hi, hi], dtype=np.float64)

    @cached_property
    def _scale_deg(self) -> float:
        """Pixel scale in degrees per pixel."""
        return self.config.pixel_scale_arcsec / 3600.0

    def pixel_to_sky(
        self, ra0: FloatArray, dec0: FloatArray, x: FloatArray, y: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Tract pixel coordinates to sky, for tract centres broadcast against pixels.

        The x axis points west (east to the left, as on a north-up sky image), so the
        transformation is the TAN projection with a flipped first axis.
        """
        return tangent_to_sky(ra0, dec0, -x * self._scale_deg, y * self._scale_deg)

    def tracts(self, tract_ids: IntArray) -> TractTable:
        """Geometry (centres, inner and outer polygons, pixel boxes) of the given tracts."""
        cfg = self.config
        n = len(tract_ids)
        ra_c = np.empty(n)
        dec_c = np.empty(n)
        rings = np.empty(n, dtype=np.int32)
        inner_ra: list[FloatArray] = []
        inner_dec: list[FloatArray] = []
        x0 = np.empty(n)
        y0 = np.empty(n)
        width = np.empty(n)
        height = np.empty(n)
        overlap_px = cfg.tract_overlap_deg / self._scale_deg
        grid = cfg.patch_grid
        for k, tract in enumerate(tract_ids):
            t = int(tract)
            rings[k] = self.ring_of(t)
            ra_c[k], dec_c[k] = self.tract_center(t)
            ira, idec = self.inner_vertices(t)
            inner_ra.append(ira)
            inner_dec.append(idec)
            xi, eta = sky_to_tangent(ra_c[k], dec_c[k], ira, idec)
            # Great circles are straight lines on the TAN plane, so the box around the
            # vertices contains the whole inner polygon.
            px = -xi / self._scale_deg
            py = eta / self._scale_deg
            x0[k], width[k] = _pixel_range(px, overlap_px, grid)
            y0[k], height[k] = _pixel_range(py, overlap_px, grid)
        patch_w = width / grid
        patch_h = height / grid
        # Project the patch grid's nodes once; the tract's outer corners and every patch's
        # inner corners are then picked from the same numbers, so shared vertices are
        # bit-identical instead of equal up to rounding.
        steps = np.arange(grid + 1, dtype=np.float64)
        node_x = x0[:, None, None] + steps[None, None, :] * patch_w[:, None, None]
        node_y = y0[:, None, None] + steps[None, :, None] * patch_h[:, None, None]
        node_x, node_y = np.broadcast_arrays(node_x, node_y)
        node_ra, node_dec = self.pixel_to_sky(
            ra_c[:, None, None], dec_c[:, None, None], node_x, node_y
        )
        corner_y = np.array([0, 0, grid, grid])
        corner_x = np.array([0, grid, grid, 0])
        outer_ra = node_ra[:, corner_y, corner_x]
        outer_dec = node_dec[:, corner_y, corner_x]
        return TractTable(
            tract=np.asarray(tract_ids, dtype=np.int64),
            ring=rings,
            ra_center=ra_c,
            dec_center=dec_c,
            inner_ra=inner_ra,
            inner_dec=inner_dec,
            outer_ra=outer_ra,
            outer_dec=outer_dec,
            x0=x0,
            y0=y0,
            patch_width=patch_w,
            patch_height=patch_h,
            node_ra=node_ra,
            node_dec=node_dec,
        )

    def patches(self, tracts: TractTable) -> PatchTable:
        """All patches of the given tracts, computed for every tract at once.

        Inner corners are taken from the tracts' shared grid of projected nodes, so
        neighbouring patches (and the tract's outer corners) have bit-identical vertices:
        they share edges exactly instead of up to rounding.
        """
        cfg = self.config
        g = cfg.patch_grid
        n = len(tracts.tract)
        ra0 = tracts.ra_center[:, None, None]
        dec0 = tracts.dec_center[:, None, None]
        cy, cx = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
        cx_f, cy_f = cx.ravel(), cy.ravel()
        # Corner order (x0,y0), (x1,y0), (x1,y1), (x0,y1): same sense as the tract box.
        ix = np.stack([cx_f, cx_f + 1, cx_f + 1, cx_f], axis=1)
        iy = np.stack([cy_f, cy_f, cy_f + 1, cy_f + 1], axis=1)
        inner_ra = tracts.node_ra[:, iy, ix].reshape(n * g * g, 4)
        inner_dec = tracts.node_dec[:, iy, ix].reshape(n * g * g, 4)

        border = float(cfg.patch_border_px)
        tx0 = tracts.x0[:, None]
        ty0 = tracts.y0[:, None]
        tx1 = tx0 + g * tracts.patch_width[:, None]
        ty1 = ty0 + g * tracts.patch_height[:, None]
        px0 = np.maximum(tx0 + cx_f[None, :] * tracts.patch_width[:, None] - border, tx0)
        px1 = np.minimum(tx0 + (cx_f[None, :] + 1) * tracts.patch_width[:, None] + border, tx1)
        py0 = np.maximum(ty0 + cy_f[None, :] * tracts.patch_height[:, None] - border, ty0)
        py1 = np.minimum(ty0 + (cy_f[None, :] + 1) * tracts.patch_height[:, None] + border, ty1)
        ox = np.stack([px0, px1, px1, px0], axis=2)
        oy = np.stack([py0, py0, py1, py1], axis=2)
        outer_ra, outer_dec = self.pixel_to_sky(ra0, dec0, ox, oy)

        return PatchTable(
            tract=np.repeat(tracts.tract, g * g),
            patch=np.tile((cy_f * g + cx_f).astype(np.int64), n),
            cell_x=np.tile(cx_f.astype(np.int32), n),
            cell_y=np.tile(cy_f.astype(np.int32), n),
            inner_ra=inner_ra,
            inner_dec=inner_dec,
            outer_ra=outer_ra.reshape(n * g * g, 4),
            outer_dec=outer_dec.reshape(n * g * g, 4),
        )
