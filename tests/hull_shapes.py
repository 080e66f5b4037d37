"""Polygons as real pipelines write them: sphgeom hulls of CCD corners, and their awkward kin.

A visit region in Rubin's pipelines is ``ConvexPolygon.convexHull`` of the visit's CCD corners,
which keeps the corners that lie on a hull edge (CCDs in a row), written out as RA/Dec degrees.
The helpers here make such hulls from skyreg.synthetic's LSSTCam-like focal plane, and variants
of any polygon with collinear runs, repeated vertices, vertices one ulp apart and RA written as
360 instead of 0. Nothing here uses skyreg's own geometry code.
"""

from __future__ import annotations

import math

import numpy as np
from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

from manifest_builder import Polygon
from skyreg.synthetic.focal_plane import lsstcam_focal_plane
from skyreg.synthetic.visits import ccd_footprints


def degrees(vector: UnitVector3d) -> tuple[float, float]:
    """RA/Dec of a unit vector as sphgeom's LonLat gives them (RA in [0, 360))."""
    lonlat = LonLat(vector)
    return lonlat.getLon().asDegrees(), lonlat.getLat().asDegrees()


def vector(ra: float, dec: float) -> UnitVector3d:
    return UnitVector3d(LonLat.fromDegrees(ra, dec))


def lsstcam_corners(ra: float, dec: float, rotation: float) -> tuple[np.ndarray, np.ndarray]:
    """RA/Dec of the 4 corners of each science CCD of one LSSTCam-like visit, (189, 4)."""
    (corner_ra, corner_dec), = ccd_footprints(lsstcam_focal_plane(), np.array([ra]),
                                              np.array([dec]), np.array([rotation]))
    return corner_ra[0], corner_dec[0]


def sphgeom_hull(ra: np.ndarray, dec: np.ndarray) -> Polygon:
    """``ConvexPolygon.convexHull`` of the points, written out in degrees."""
    hull = ConvexPolygon.convexHull([vector(r, d) for r, d in
                                     zip(np.ravel(ra), np.ravel(dec), strict=True)])
    vertices = [degrees(v) for v in hull.getVertices()]
    return [v[0] for v in vertices], [v[1] for v in vertices]


def visit_hull(ra: float, dec: float, rotation: float) -> Polygon:
    """The visit region of one LSSTCam-like visit, as Rubin's pipelines compute it."""
    return sphgeom_hull(*lsstcam_corners(ra, dec, rotation))


def has_collinear_run(poly: Polygon) -> bool:
    """Whether three consecutive vertices lie on one great circle to within 1e-15."""
    xyz = np.array([[v.x(), v.y(), v.z()] for v in (vector(r, d) for r, d in zip(*poly,
                                                                                  strict=True))])
    prev, nxt = np.roll(xyz, 1, axis=0), np.roll(xyz, -1, axis=0)
    normals = np.cross(prev, nxt)
    norms = np.linalg.norm(normals, axis=1)
    return bool((np.abs(np.einsum("ij,ij->i", normals, xyz)) < 1e-15 * norms).any())


def on_edge(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
    """The point a fraction ``t`` along the great-circle arc from a to b (slerp), in degrees."""
    va, vb = (np.array([u.x(), u.y(), u.z()]) for u in (vector(*a), vector(*b)))
    angle = math.acos(max(-1.0, min(1.0, float(va @ vb))))
    if angle == 0.0:
        return a
    point = (math.sin((1 - t) * angle) * va + math.sin(t * angle) * vb) / math.sin(angle)
    return degrees(UnitVector3d(*map(float, point)))


def with_collinear_runs(poly: Polygon, rng: np.random.Generator, per_edge: int = 3) -> Polygon:
    """The polygon with up to ``per_edge`` points added on (rounding apart) each edge."""
    ra, dec = poly
    out_ra, out_dec = [], []
    n = len(ra)
    for i in range(n):
        a, b = (ra[i], dec[i]), (ra[(i + 1) % n], dec[(i + 1) % n])
        out_ra.append(a[0])
        out_dec.append(a[1])
        for t in np.sort(rng.uniform(0.05, 0.95, int(rng.integers(0, per_edge + 1)))):
            p = on_edge(a, b, float(t))
            out_ra.append(p[0])
            out_dec.append(p[1])
    return out_ra, out_dec


def with_repeats_and_ulps(poly: Polygon, rng: np.random.Generator) -> Polygon:
    """The polygon with some vertices repeated and some followed by a copy one ulp away."""
    out_ra: list[float] = []
    out_dec: list[float] = []
    for r, d in zip(*poly, strict=True):
        out_ra.append(r)
        out_dec.append(d)
        roll = rng.random()
        if roll < 0.2:
            out_ra.append(r)
            out_dec.append(d)
        elif roll < 0.4:
            # One ulp in RA (towards 360 or 0) or in Dec (towards the equator).
            if rng.random() < 0.5:
                out_ra.append(float(np.nextafter(r, 360.0 if rng.random() < 0.5 else 0.0)))
                out_dec.append(d)
            else:
                out_ra.append(r)
                out_dec.append(float(np.nextafter(d, 0.0)))
    return out_ra, out_dec


def ra_zero_as_360(poly: Polygon) -> Polygon:
    """The polygon with every RA of exactly 0 written as 360.0."""
    return [360.0 if r == 0.0 else r for r in poly[0]], list(poly[1])


def hull_like_footprints(rng: np.random.Generator, n_visits: int,
                         boxes: list[Polygon]) -> list[Polygon]:
    """Footprints as pipelines write them, for the exactness data sets: LSSTCam-like visit
    hulls (some straddling RA 0, some near a pole), and the given boxes with collinear runs,
    repeated vertices, vertices one ulp apart and RA 0 written as 360."""
    places = [(float(rng.uniform(0, 360)), float(rng.uniform(-60, 60))), (0.5, 10.0),
              (359.0, -20.0), (float(rng.uniform(0, 360)), 86.0)]
    footprints = [visit_hull(*places[i % len(places)], float(rng.uniform(0, 360)))
                  for i in range(n_visits)]
    for poly in boxes:
        poly = with_repeats_and_ulps(with_collinear_runs(poly, rng), rng)
        footprints.append(ra_zero_as_360(poly))
    return footprints
