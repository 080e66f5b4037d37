"""Convex hull of points on the sphere, as a polygon skyreg's strict validator accepts.

Used for whole-visit footprints built from the CCD footprints of a visit. The hull is taken in
the gnomonic projection around the points' mean direction, where great circles are straight
lines, so a planar hull is exactly a spherical one. CCD corners along a focal-plane edge are
nearly collinear; such points are dropped and the hull is then enlarged by a tiny factor, so
the result is strictly convex and still contains every input point.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from skyreg.geometry.polygons import GeometryError, unit_vectors

FloatArray = npt.NDArray[np.float64]

#: Turns smaller than this (relative to the hull's size) count as collinear.
_COLLINEAR = 1e-9
#: Outward scaling applied after dropping near-collinear points (keeps them inside).
_ENLARGE = 1e-7


def _planar_hull(points: FloatArray, tolerance: float) -> FloatArray:
    """Counter-clockwise hull of 2-D points (monotone chain), without collinear points."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    ordered = points[order]

    def chain(pts: FloatArray) -> list[FloatArray]:
        out: list[FloatArray] = []
        for p in pts:
            while len(out) >= 2:
                a, b = out[-2], out[-1]
                cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
                if cross > tolerance:
                    break
                out.pop()
            out.append(p)
        return out

    lower, upper = chain(ordered), chain(ordered[::-1])
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def hull_vertices(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> tuple[list[float], list[float]]:
    """RA/Dec vertices (degrees, counter-clockwise) of a convex polygon around all points.

    Raises :class:`GeometryError` if the points span a hemisphere or are degenerate.
    """
    xyz = unit_vectors(np.ravel(ra_deg), np.ravel(dec_deg))
    centre = xyz.sum(axis=0)
    norm = float(np.linalg.norm(centre))
    if norm == 0.0:
        raise GeometryError("points are spread over the whole sphere; no convex hull")
    centre /= norm
    helper = np.array([0.0, 0.0, 1.0]) if abs(centre[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    east = np.cross(helper, centre)
    east /= np.linalg.norm(east)
    north = np.cross(centre, east)
    depth = xyz @ centre
    if np.any(depth <= 1e-6):
        raise GeometryError("points span a hemisphere or more; no convex hull")
    plane = np.stack([xyz @ east / depth, xyz @ north / depth], axis=1)
    extent = float(np.ptp(plane, axis=0).max())
    if extent == 0.0:
        raise GeometryError("all points coincide; no polygon")
    hull = _planar_hull(plane, _COLLINEAR * extent * extent)
    if len(hull) < 3:
        raise GeometryError("points are collinear; no polygon")
    middle = hull.mean(axis=0)
    hull = middle + (hull - middle) * (1.0 + _ENLARGE)
    vectors = centre[None, :] + hull[:, :1] * east[None, :] + hull[:, 1:] * north[None, :]
    vectors /= np.linalg.norm(vectors, axis=1)[:, None]
    ra = np.degrees(np.arctan2(vectors[:, 1], vectors[:, 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(vectors[:, 2], -1.0, 1.0)))
    ra = np.where(ra >= 360.0, 0.0, ra)
    return ra.tolist(), dec.tolist()
