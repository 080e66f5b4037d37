"""Tract layout of the rings sky map (``lsst.skymap.RingsSkyMap``, version 1 numbering).

Layout, as in lsst.skymap: the sphere is cut into ``num_rings`` declination rings plus two
polar caps, each ring ``ring_size = pi / (num_rings + 1)`` high (the two caps together count as
one ring). Ring ``k`` (0 = southernmost) is centred at ``dec = ring_size * (k + 1) - pi/2`` and
split into ``int(2 pi cos(d) / ring_size) + 1`` tracts, ``d`` being the ring edge declination
closest to the equator. Tract 0 is the south cap, then each ring from south to north with its
tracts in increasing RA starting at ``ra_start``, and the last tract is the north cap. Tract
``t`` of ring ``k`` is centred at ``ra_start + 2 pi t / N_k``; every tract (caps included) is
an ``ExplicitTractInfo`` of radius ``ring_size / 2``.

Inner regions ("the part of the sky the tract owns"): lsst.skymap describes a ring tract's
inner region as an RA/Dec box (``sphgeom.Box``: ``ra_center ± pi/N_k`` by the ring's
declination band) and a cap as the cap itself; ``findTract`` assigns points by exactly these
rules (:func:`tract_of`). Neither shape is a great-circle polygon, so skyreg stores, per tract,
a strictly convex polygon whose vertices all lie on the boundary of lsst's region:

* a ring tract gets its four box corners, plus, on its edge nearest the equator, the box corners
  of the neighbouring ring on that side that fall strictly inside its RA range;
* a cap gets a regular polygon on the cap boundary with vertices at the corner RAs of the
  adjacent ring.

Edges between vertices on a parallel are great-circle chords, which bow towards the pole. On a
tract's poleward edge the chord therefore overlaps the next ring (or, for the last ring, exactly
matches the cap polygon's edge); on the equatorward edge the extra vertices make the tract's
edge a subdivision lying entirely under the neighbouring ring's poleward chords. Hence the
polygons cover the whole sphere without gaps, overlapping only in slivers a few arcseconds wide
(at most about ``(RA width)^2 / 8 * tan(dec)``). Edges on the equator itself are great circles
already and get no extra vertices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from skyreg.skymaps.definitions import RingsDefinition
from skyreg.skymaps.tan_wcs import wrap_ra_deg

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Edge declinations closer to the equator than this (radians) count as on the equator.
_EQUATOR_EPS = 1e-9
#: Extra vertices closer than this (radians of RA) to a corner are dropped: they would make
#: the polygon nearly degenerate while closing a gap far below any measurement precision.
_MIN_VERTEX_SEPARATION = 1e-5


@dataclass(frozen=True)
class RingLayout:
    """Tract ids, rings and centres of a rings sky map (angles in degrees)."""

    ring_size_rad: float
    ring_counts: IntArray  # tracts per ring, south to north
    tract: IntArray
    ring: IntArray  # -1 south cap, num_rings north cap
    index_in_ring: IntArray
    ra_center: FloatArray
    dec_center: FloatArray


def ring_size_rad(num_rings: int) -> float:
    """Height of one ring in radians: the caps together count as one more ring."""
    return float(np.pi / (num_rings + 1))


def ring_counts(num_rings: int) -> IntArray:
    """Tracts per ring, computed at the ring edge nearest the equator (as lsst.skymap does)."""
    size = ring_size_rad(num_rings)
    counts = []
    for k in range(num_rings):
        start = size * (k + 0.5) - 0.5 * np.pi
        stop = start + size
        dec = min(abs(start), abs(stop))
        counts.append(int(2 * np.pi * np.cos(dec) / size) + 1)
    return np.array(counts, dtype=np.int64)


def ring_boundaries_rad(num_rings: int) -> FloatArray:
    """Declinations of the ``num_rings + 1`` ring edges, south to north (cap edges included)."""
    size = ring_size_rad(num_rings)
    return np.asarray(size * (np.arange(num_rings + 1) + 0.5) - 0.5 * np.pi, dtype=np.float64)


def layout(defn: RingsDefinition) -> RingLayout:
    """Tract ids, ring membership and centres, numbered as lsst.skymap version 1."""
    size = ring_size_rad(defn.num_rings)
    counts = ring_counts(defn.num_rings)
    total = int(counts.sum()) + 2
    ring = np.empty(total, dtype=np.int64)
    index = np.zeros(total, dtype=np.int64)
    ring[0], ring[-1] = -1, defn.num_rings
    ring[1:-1] = np.repeat(np.arange(defn.num_rings), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    index[1:-1] = np.arange(total - 2) - np.repeat(starts, counts)
    inner = slice(1, total - 1)
    ra = np.zeros(total)
    dec = np.empty(total)
    dec[0], dec[-1] = -90.0, 90.0
    ring_inner = ring[inner]
    dec[inner] = np.degrees(size * (ring_inner + 1) - 0.5 * np.pi)
    ra_rad = 2 * np.pi * index[inner] / counts[ring_inner] + np.radians(defn.ra_start_deg)
    ra[inner] = wrap_ra_deg(np.degrees(ra_rad))
    return RingLayout(
        ring_size_rad=size,
        ring_counts=counts,
        tract=np.arange(total, dtype=np.int64),
        ring=ring,
        index_in_ring=index,
        ra_center=ra,
        dec_center=dec,
    )


def tract_of(defn: RingsDefinition, ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> IntArray:
    """The tract owning each position, by lsst.skymap's ``findTractIdArray`` rule (version 1)."""
    ra = np.radians(np.atleast_1d(np.asarray(ra_deg, dtype=np.float64)))
    dec = np.radians(np.atleast_1d(np.asarray(dec_deg, dtype=np.float64)))
    size = ring_size_rad(defn.num_rings)
    counts = ring_counts(defn.num_rings)
    first = size * 0.5 - 0.5 * np.pi
    ring = np.clip(np.floor((dec - first) / size).astype(np.int64), 0, defn.num_rings - 1)
    ring = np.where(dec < first, -1, np.where(dec > -first, defn.num_rings, ring))
    in_ring = (ring >= 0) & (ring < defn.num_rings)
    safe_ring = np.clip(ring, 0, defn.num_rings - 1)
    n = counts[safe_ring]
    delta = np.mod(ra - np.radians(defn.ra_start_deg), 2 * np.pi)
    num = (delta / (2 * np.pi / n) + 0.5).astype(np.int64)
    num = np.where(num == n, 0, num)
    cumulative = np.concatenate([[0], np.cumsum(counts)])
    tract = cumulative[safe_ring] + num + 1
    total = int(counts.sum()) + 2
    return np.where(in_ring, tract, np.where(ring < 0, 0, total - 1)).astype(np.int64)


def _corner_ras(defn: RingsDefinition, counts: IntArray, k: int) -> FloatArray:
    """RA (radians, unwrapped) of the tract boundaries of ring ``k``."""
    n = int(counts[k])
    return np.asarray(
        np.radians(defn.ra_start_deg) + 2 * np.pi * (np.arange(n) + 0.5) / n, dtype=np.float64
    )


def inner_polygons(
    defn: RingsDefinition, rings: RingLayout
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Inner polygons (see module docstring) as flat RA/Dec vertex arrays plus offsets."""
    counts = rings.ring_counts
    edges = ring_boundaries_rad(defn.num_rings)
    polys_ra: list[FloatArray] = []
    polys_dec: list[FloatArray] = []
    sizes: list[IntArray] = []

    def cap(k: int, dec_edge: float, north: bool) -> None:
        ras = _corner_ras(defn, counts, k)
        order = ras if north else ras[::-1]
        polys_ra.append(order)
        polys_dec.append(np.full(order.shape, dec_edge))
        sizes.append(np.array([order.size]))

    cap(0, float(edges[0]), north=False)
    for k in range(defn.num_rings):
        n = int(counts[k])
        lo, hi = float(edges[k]), float(edges[k + 1])
        half = np.pi / n
        centre = np.radians(defn.ra_start_deg) + 2 * np.pi * np.arange(n) / n
        ra0 = centre - half
        # Equatorward edge and the neighbouring ring whose corners subdivide it.
        if lo > _EQUATOR_EPS:
            neighbour, edge_dec, bottom = k - 1, lo, True
        elif hi < -_EQUATOR_EPS:
            neighbour, edge_dec, bottom = k + 1, hi, False
        else:
            neighbour, edge_dec, bottom = -1, 0.0, True
        extras: list[FloatArray] = [np.empty(0)] * n
        if neighbour >= 0:
            other = np.mod(_corner_ras(defn, counts, neighbour)[None, :] - ra0[:, None], 2 * np.pi)
            cos_dec = np.cos(edge_dec)
            ok = (other * cos_dec > _MIN_VERTEX_SEPARATION) & (
                (2 * half - other) * cos_dec > _MIN_VERTEX_SEPARATION
            )
            extras = [np.sort(other[t][ok[t]]) for t in range(n)]
        for t in range(n):
            extra = extras[t]
            m = extra.size
            # Counter-clockwise seen from outside: bottom edge west to east, top east to west.
            rel = np.concatenate(
                [
                    [0.0],
                    extra if bottom else np.empty(0),
                    [2 * half, 2 * half],
                    extra[::-1] if not bottom else np.empty(0),
                    [0.0],
                ]
            )
            dec = np.concatenate(
                [
                    [lo],
                    np.full(m if bottom else 0, lo),
                    [lo, hi],
                    np.full(0 if bottom else m, hi),
                    [hi],
                ]
            )
            polys_ra.append(ra0[t] + rel)
            polys_dec.append(dec)
            sizes.append(np.array([rel.size]))
    cap(defn.num_rings - 1, float(edges[-1]), north=True)
    flat_ra = wrap_ra_deg(np.degrees(np.concatenate(polys_ra)))
    flat_dec = np.degrees(np.concatenate(polys_dec))
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(sizes))]).astype(np.int64)
    return flat_ra, flat_dec, offsets
