"""Convex hull of points on the sphere, as the vertex lists skyreg stores for a visit region.

Used for whole-visit footprints built from the CCD footprints of a visit. The hull is
sphgeom's (``ConvexPolygon.convexHull``, exact orientation predicate), which is also how Rubin's
pipelines make visit regions. Its vertices are input points bit for bit, so they are returned
as the input's own RA/Dec: encoding them again gives exactly that hull, which therefore
contains every input point exactly, with no enlargement. Vertices sphgeom keeps on a hull edge
(CCD corners in a row) are dropped, as :mod:`skyreg.geometry.polygons` drops them on ingest.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import ConvexPolygon, orientation

from skyreg.geometry.polygons import GeometryError, sphgeom_points, unit_vectors, wrap_ra


def hull_vertices(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> tuple[list[float], list[float]]:
    """RA/Dec vertices (degrees, counter-clockwise) of the convex hull of the points.

    RA is wrapped into [0, 360). Raises :class:`GeometryError` if the points are not finite,
    span a hemisphere or more, or lie on one great circle.
    """
    ra = wrap_ra(np.ravel(ra_deg))
    dec = np.ravel(np.asarray(dec_deg, dtype=np.float64))
    if ra.shape != dec.shape:
        raise GeometryError(f"{ra.size} RA values but {dec.size} Dec values")
    if not (np.isfinite(ra).all() and np.isfinite(dec).all()):
        raise GeometryError("points: a coordinate is NaN or infinite")
    if ((dec < -90.0) | (dec > 90.0)).any():
        raise GeometryError("points: a Dec is outside [-90, 90]")
    if ra.size == 0:
        raise GeometryError("no points; no convex hull")
    xyz = unit_vectors(ra, dec)
    # Neighbouring CCDs may share corners: a repeated point would come back as a repeated
    # hull vertex, which the exact tests treat as a zero-length edge.
    _, first = np.unique(xyz, axis=0, return_index=True)
    if len(first) < 3:
        raise GeometryError(f"{len(first)} distinct points; no polygon")
    points = sphgeom_points(xyz[np.sort(first)])
    try:
        hull = ConvexPolygon.convexHull(points)
    except ValueError as err:
        raise GeometryError(f"points have no convex polygon hull: {err}") from err
    vertices = hull.getVertices()
    m = len(vertices)
    corners = [v for k, v in enumerate(vertices)
               if orientation(vertices[k - 1], v, vertices[(k + 1) % m]) != 0]
    if len(corners) < 3:
        raise GeometryError("points lie on one great circle; no polygon")
    polygon = ConvexPolygon(corners)
    if not all(polygon.contains(p) for p in points):  # see polygons._contains_all
        raise GeometryError("points span a hemisphere or more; no convex hull")
    index = {tuple(p): i for i, p in enumerate(xyz.tolist())}
    rows = [index[(v.x(), v.y(), v.z())] for v in corners]
    return ra[rows].tolist(), dec[rows].tolist()
