"""Vectorised spherical helpers for the synthetic survey generator.

Everything here works on whole numpy arrays at once because the generator projects millions of
CCD corners; a per-point Python loop would dominate the run time. The gnomonic (TAN) projection
is used throughout because it maps great circles to straight lines: a convex polygon drawn on a
tangent plane projects to a convex spherical polygon with great-circle edges, which is exactly
the polygon model of the survey manifest format.

Tangent-plane coordinates are "degrees on the tangent plane": ``xi`` grows towards the east and
``eta`` towards the north, both as ``degrees(tan(angle))`` so that near the tangent point they
agree with angular offsets in degrees.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

__all__ = [
    "FloatArray",
    "convex_hull_2d",
    "lonlat_to_xyz",
    "sky_to_tangent",
    "tangent_to_sky",
    "wrap_ra",
    "xyz_to_lonlat",
]


def wrap_ra(ra_deg: ArrayLike) -> FloatArray:
    """Return ``ra`` reduced to [0, 360).

    ``np.mod`` alone is not enough: a tiny negative input such as ``-1e-17`` rounds to exactly
    360.0, which the manifest format forbids, so that case is folded back to 0.
    """
    ra = np.mod(np.asarray(ra_deg, dtype=np.float64), 360.0)
    return np.where(ra >= 360.0, 0.0, ra)


def lonlat_to_xyz(
    ra_deg: ArrayLike, dec_deg: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Convert (ra, dec) in degrees to the three components of unit vectors."""
    ra = np.radians(np.asarray(ra_deg, dtype=np.float64))
    dec = np.radians(np.asarray(dec_deg, dtype=np.float64))
    cos_dec = np.cos(dec)
    return cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)


def xyz_to_lonlat(x: FloatArray, y: FloatArray, z: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Convert (not necessarily normalised) vectors to (ra in [0, 360), dec) in degrees.

    ``arctan2`` is used for both angles so that the result stays accurate near the poles, where
    ``arcsin(z)`` would lose precision.
    """
    ra = wrap_ra(np.degrees(np.arctan2(y, x)))
    dec = np.degrees(np.arctan2(z, np.hypot(x, y)))
    return ra, dec


def _tangent_basis(
    ra0_deg: ArrayLike, dec0_deg: ArrayLike
) -> tuple[
    tuple[FloatArray, FloatArray, FloatArray],
    tuple[FloatArray, FloatArray, FloatArray],
    tuple[FloatArray, FloatArray, FloatArray],
]:
    """Return the centre, east and north unit vectors of the tangent plane at (ra0, dec0).

    At a pole "east" and "north" are still well defined through ``ra0``, which then simply fixes
    the orientation of the plane; this keeps polar tracts and visits free of special cases.
    """
    ra0 = np.radians(np.asarray(ra0_deg, dtype=np.float64))
    dec0 = np.radians(np.asarray(dec0_deg, dtype=np.float64))
    sin_a, cos_a = np.sin(ra0), np.cos(ra0)
    sin_d, cos_d = np.sin(dec0), np.cos(dec0)
    centre = (cos_d * cos_a, cos_d * sin_a, sin_d)
    east = (-sin_a, cos_a, np.zeros_like(sin_a))
    north = (-sin_d * cos_a, -sin_d * sin_a, cos_d)
    return centre, east, north


def tangent_to_sky(
    ra0_deg: ArrayLike, dec0_deg: ArrayLike, xi_deg: ArrayLike, eta_deg: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Inverse gnomonic projection: tangent-plane (xi, eta) around (ra0, dec0) to (ra, dec).

    All arguments broadcast against each other, so one call projects every corner of every CCD
    of many visits (tangent points shaped ``(n, 1, 1)``, offsets shaped ``(n, m, 4)``).
    """
    centre, east, north = _tangent_basis(ra0_deg, dec0_deg)
    u = np.radians(np.asarray(xi_deg, dtype=np.float64))
    v = np.radians(np.asarray(eta_deg, dtype=np.float64))
    x = centre[0] + u * east[0] + v * north[0]
    y = centre[1] + u * east[1] + v * north[1]
    z = centre[2] + u * east[2] + v * north[2]
    return xyz_to_lonlat(x, y, z)


def sky_to_tangent(
    ra0_deg: ArrayLike, dec0_deg: ArrayLike, ra_deg: ArrayLike, dec_deg: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Forward gnomonic projection of (ra, dec) onto the tangent plane at (ra0, dec0).

    Only meaningful for points in the hemisphere around the tangent point, which is all the
    generator ever asks for (tract corners lie within a few degrees of the tract centre).
    """
    centre, east, north = _tangent_basis(ra0_deg, dec0_deg)
    px, py, pz = lonlat_to_xyz(ra_deg, dec_deg)
    along = px * centre[0] + py * centre[1] + pz * centre[2]
    xi = (px * east[0] + py * east[1] + pz * east[2]) / along
    eta = (px * north[0] + py * north[1] + pz * north[2]) / along
    return np.degrees(xi), np.degrees(eta)


def convex_hull_2d(points: FloatArray) -> FloatArray:
    """Strictly convex hull of 2-d points, counter-clockwise, without collinear vertices.

    Collinear points are dropped on purpose: after projection they would lie on one great
    circle, and a polygon with such a redundant vertex is not "strictly convex", which some
    readers (and sphgeom's hull construction) would silently simplify.
    """
    pts = np.unique(np.asarray(points, dtype=np.float64).reshape(-1, 2), axis=0)
    if len(pts) < 3:
        return pts
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    pts = pts[order]

    def half(seq: FloatArray) -> list[FloatArray]:
        chain: list[FloatArray] = []
        for p in seq:
            while len(chain) >= 2:
                o, a = chain[-2], chain[-1]
                cross = (a[0] - o[0]) * (p[1] - o[1]) - (a[1] - o[1]) * (p[0] - o[0])
                if cross > 1e-15:
                    break
                chain.pop()
            chain.append(p)
        return chain

    lower = half(pts)
    upper = half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)
