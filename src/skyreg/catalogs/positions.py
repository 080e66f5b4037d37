"""Positions of catalog rows: unit vectors, HEALPix pixels, and the pixel ranges of a region.

Every row of a catalog table carries its unit vector (``skyreg_x/y/z``) and the nested
HEALPix pixel of order :data:`PIXEL_ORDER` holding it (``skyreg_pix``, B-tree indexed, rows
clustered by it). A query turns its region into ranges of that column — the conservative
(inclusive) HEALPix disc cover of its bounding circle at a coarser order chosen from the
region's size, each coarse pixel ``p`` being the range ``[p << 2d, (p + 1) << 2d)`` at the
stored order — and then keeps only the rows that pass the exact test on the stored vector.
The exact test and the brute-force check in the tests evaluate the same IEEE expressions on
the same stored numbers, so "inside" means one thing everywhere, also on the boundary.

Order 17 (1.6″ pixels, the finest sphgeom's HEALPix supports, so the column can be used
with sphgeom too): finer would not speed up any query, a 1″ cone is already covered by a
handful of pixels. Pixels come from hpgeom, vectorised (10 M rows in about a second).
"""

from __future__ import annotations

import math

import hpgeom
import numpy as np
import numpy.typing as npt
from lsst.sphgeom import Circle, LonLat, Region
from psycopg import sql

#: Nested HEALPix order of the stored ``skyreg_pix`` column.
PIXEL_ORDER = 17

#: Query covers are made of at most this many pixel ranges (neighbouring ones are merged,
#: which keeps the cover conservative): each range is one B-tree descent.
MAX_RANGES = 24

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def unit_vectors(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike
                 ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Unit vectors (x, y, z) of RA/Dec in degrees: the one formula used for stored rows,
    query centres and cross-match inputs alike."""
    ra = np.radians(np.asarray(ra_deg, dtype=np.float64))
    dec = np.radians(np.asarray(dec_deg, dtype=np.float64))
    cos_dec = np.cos(dec)
    return cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)


def pixels(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> IntArray:
    """Nested HEALPix pixels at :data:`PIXEL_ORDER` (vectorised, C speed)."""
    ra = np.mod(np.asarray(ra_deg, dtype=np.float64), 360.0)
    dec = np.asarray(dec_deg, dtype=np.float64)
    return np.asarray(hpgeom.angle_to_pixel(2**PIXEL_ORDER, ra, dec, nest=True),
                      dtype=np.int64)


#: Coordinate differences below this are taken as zero in the squared chord: PostgreSQL
#: raises "value out of range: underflow" when a product of non-zero floats rounds to zero
#: (an angle of 1e-150 radians is far below any meaning anyway).
FLUSH = 1e-150


def squared_chord(x: npt.ArrayLike, y: npt.ArrayLike, z: npt.ArrayLike, cx: float,
                  cy: float, cz: float) -> FloatArray:
    """``|v - c|²`` of unit vectors, computed exactly as the SQL of the queries does (same
    IEEE operations in the same order, the same flush of tiny differences)."""
    total = np.zeros(np.shape(x), dtype=np.float64)
    for values, centre in ((x, cx), (y, cy), (z, cz)):
        d = np.asarray(values, dtype=np.float64) - centre
        total = total + np.where(np.abs(d) < FLUSH, 0.0, d * d)
    return total


def squared_chord_sql(stored: list[sql.Composable], centre: list[sql.Composable]
                      ) -> sql.Composed:
    """The SQL of :func:`squared_chord` (``stored``, ``centre``: x, y, z expressions)."""
    terms = [sql.SQL("CASE WHEN abs({a} - {b}) < {flush} THEN 0::float8 "
                     "ELSE ({a} - {b}) * ({a} - {b}) END").format(
                         a=a, b=b, flush=sql.Literal(FLUSH))
             for a, b in zip(stored, centre, strict=True)]
    return sql.SQL("({} + {} + {})").format(*terms)


def chord2_of_radius(radius_deg: float) -> float:
    """Squared chord length of an angular radius: ``|a - b|² <= chord2`` is the cone test."""
    half = math.radians(min(radius_deg, 180.0)) / 2.0
    return (2.0 * math.sin(half)) ** 2


def separation_arcsec(chord2: npt.ArrayLike) -> FloatArray:
    """Angular separations (arcsec) from squared chord lengths."""
    chord = np.sqrt(np.asarray(chord2, dtype=np.float64))
    return np.degrees(2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))) * 3600.0


def coarse_order(radius_deg: float) -> int:
    """The finest order <= PIXEL_ORDER at which a region of this bounding radius spans about
    eight pixels across (a pixel of order k is ~58.6°/2^k wide)."""
    if radius_deg <= 0.0:
        return PIXEL_ORDER
    order = math.floor(math.log2(58.6 * 4.0 / (2.0 * radius_deg)))
    return max(0, min(PIXEL_ORDER, order))


def region_ranges(region: Region, max_ranges: int = MAX_RANGES) -> tuple[IntArray, IntArray]:
    """Half-open ``skyreg_pix`` ranges covering any sphgeom region, conservatively: those of
    its bounding circle. (sphgeom's HEALPix envelope misses pixels of some regions — it
    returns nothing for a Box holding a pole — and is ~50x slower than hpgeom.)"""
    return cone_ranges(region.getBoundingCircle(), max_ranges)


def cone_ranges(circle: Circle, max_ranges: int = MAX_RANGES) -> tuple[IntArray, IntArray]:
    """Half-open ``skyreg_pix`` ranges covering a circle, conservatively.

    hpgeom's inclusive disc query (HEALPix's own ``query_disc``: every pixel the disc
    overlaps "and maybe a few more") costs ~15 µs; the radius is padded by a hair against
    rounding.
    """
    if circle.isEmpty():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    radius = min(circle.getOpeningAngle().asDegrees(), 180.0)
    order = coarse_order(radius)
    if order == 0:
        # A circle over 58.6° in radius holds a quarter of the sky or more: read it all.
        # (hpgeom's inclusive query at order 0 leaves out the base pixel of the antipode of
        # an equatorial centre on a pixel corner for radii of 136° and more.)
        return (np.zeros(1, dtype=np.int64),
                np.full(1, 12 << (2 * PIXEL_ORDER), dtype=np.int64))
    centre = LonLat(circle.getCenter())
    spans = np.asarray(hpgeom.query_circle(
        2**order, centre.getLon().asDegrees(), centre.getLat().asDegrees(),
        min(radius * (1.0 + 1e-9) + 1e-12, 180.0), inclusive=True, nest=True,
        return_pixel_ranges=True), dtype=np.int64).reshape(-1, 2)
    shift = 2 * (PIXEL_ORDER - order)
    return merge_ranges(spans[:, 0] << shift, spans[:, 1] << shift, max_ranges)


def merge_ranges(starts: IntArray, ends: IntArray, limit: int) -> tuple[IntArray, IntArray]:
    """At most ``limit`` sorted ranges covering the given sorted, disjoint ones, bridging the
    smallest gaps first (touching ranges always merge)."""
    if len(starts) == 0:
        return starts, ends
    gaps = starts[1:] - ends[:-1]
    keep_gap = gaps > 0
    if int(keep_gap.sum()) > limit - 1:
        order = np.argsort(gaps, kind="stable")
        keep_gap = np.zeros(len(gaps), dtype=bool)
        keep_gap[order[len(gaps) - (limit - 1):]] = True
    index = np.flatnonzero(keep_gap)
    return (np.concatenate([starts[:1], starts[index + 1]]),
            np.concatenate([ends[index], ends[-1:]]))


def neighbourhood_ranges(ra_deg: FloatArray, dec_deg: FloatArray, radius_deg: float
                         ) -> tuple[IntArray, IntArray, IntArray]:
    """Pixel ranges around many points at once, for cross-matching within ``radius_deg``.

    At an order whose pixels are at least eight radii wide, a circle around a point in pixel
    ``p`` lies within ``p`` and its (up to eight) neighbours. Returns (point index, start,
    end) with each point's ranges merged where they touch. Vectorised: no per-point sphgeom
    call, which would cost more than the whole query for 10,000 points.
    """
    order = PIXEL_ORDER
    while order > 0 and float(hpgeom.nside_to_resolution(2**order)) < 8.0 * radius_deg:
        order -= 1
    if float(hpgeom.nside_to_resolution(2**order)) < 8.0 * radius_deg:
        raise ValueError(f"radius {radius_deg}° is too large for a cross-match (at most "
                         f"{float(hpgeom.nside_to_resolution(1)) / 8.0:.1f}°)")
    nside = 2**order
    ra = np.mod(ra_deg, 360.0)
    centre = np.asarray(hpgeom.angle_to_pixel(nside, ra, dec_deg, nest=True), dtype=np.int64)
    around = np.asarray(hpgeom.neighbors(nside, centre, nest=True), dtype=np.int64)
    cells = np.concatenate([centre[:, None], around.reshape(len(centre), -1)], axis=1)
    count = cells.shape[1]
    point = np.repeat(np.arange(len(centre), dtype=np.int64), count)
    flat = cells.ravel()
    valid = flat >= 0  # hpgeom marks a missing neighbour (7-neighbour pixels) with -1
    point, flat = point[valid], flat[valid]
    # A pixel lies within max_pixel_radius of its centre (HEALPix's own inclusive queries
    # rely on it): a neighbour whose centre is farther than radius + that from the point
    # cannot meet the circle. Dropping those halves the index probes.
    reach = math.radians(radius_deg) + float(hpgeom.max_pixel_radius(nside, degrees=False))
    limit = (2.0 * math.sin(min(reach, math.pi) / 2.0)) ** 2 * (1.0 + 1e-6) + 1e-15
    cx, cy, cz = (np.asarray(a, dtype=np.float64) for a in hpgeom.pixel_to_vector(
        nside, flat, nest=True))
    tx, ty, tz = unit_vectors(ra[point], dec_deg[point])
    near = ((cx - tx) ** 2 + (cy - ty) ** 2 + (cz - tz) ** 2) <= limit
    near |= flat == centre[point]
    point, flat = point[near], flat[near]
    order_index = np.lexsort((flat, point))
    point, flat = point[order_index], flat[order_index]
    fresh = np.ones(len(flat), dtype=bool)
    fresh[1:] = (point[1:] != point[:-1]) | (flat[1:] != flat[:-1])
    point, flat = point[fresh], flat[fresh]
    # A new range starts where the point changes or the pixel is not the previous one + 1.
    starts_here = np.ones(len(flat), dtype=bool)
    starts_here[1:] = (point[1:] != point[:-1]) | (flat[1:] != flat[:-1] + 1)
    first = np.flatnonzero(starts_here)
    last = np.concatenate([first[1:], [len(flat)]]) - 1
    shift = 2 * (PIXEL_ORDER - order)
    return point[first], flat[first] << shift, (flat[last] + 1) << shift
