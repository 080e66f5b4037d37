"""Two caps per convex polygon, one inside it and one around it, for a cheap first verdict.

A cone search in plain SQL tests thousands of candidate footprints, and the exact test of a
polygon against a circle costs PostgreSQL's expression evaluator ~3.5 µs per candidate (the
vertex vectors from trigonometry, then ~150 float operations). Most candidates are decided by
far less: a circle that meets the polygon's *inscribed* cap overlaps the polygon, and a
circle that misses its *bounding* cap misses it. Stored once per footprint (a centre and the
cosine and sine of each radius), those two tests are ~15 float operations in SQL and decide
~85% of a cone's candidates; only the rest need the full test.

Both caps share a centre ``c`` inside the polygon (the normalised mean of the vertices, or a
vertex for a polygon too thin for that to be safely inside). The inner radius is a *lower*
bound of the distance from ``c`` to every edge's great circle, so the cap lies inside the
polygon; the outer radius an *upper* bound of the distance from ``c`` to every vertex, so the
polygon (the convex hull of its vertices, inside any cap of radius < 90° holding them) lies
inside the cap. Each is moved by :data:`ANGLE_MARGIN` the safe way; a polygon whose bounding
cap would reach 90° gets the outer radius 180°, which the SQL test reads as "no bound".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from skyreg.geometry.encoded_polygons import EncodedPolygons

FloatArray = npt.NDArray[np.float64]

#: Radians by which the inner radius is shrunk and the outer one grown: far above the
#: ~1e-15 rad to which they are computed, far below anything a footprint's size depends on.
ANGLE_MARGIN = 1e-12
#: sin(distance) from the centre to an edge below which the mean of the vertices does not
#: count as inside (a sliver); the first vertex is the centre then, with inner radius 0.
INSIDE_MARGIN = 1e-12
#: Values below this magnitude are stored as 0, so that no product of a stored value with a
#: query's (themselves 0 or above 1e-100) can underflow, which PostgreSQL reports as an error.
FLUSH_BELOW = 1e-30
#: Names of the seven values, in the order :func:`footprint_caps` returns them.
CAP_COLUMNS = ("cap_x", "cap_y", "cap_z", "cap_inner_cos", "cap_inner_sin",
               "cap_outer_cos", "cap_outer_sin")


def footprint_caps(vertices: FloatArray) -> FloatArray:
    """Centre and inner/outer radii (cosine, sine) of each polygon, an ``(n, 7)`` array in
    the order of :data:`CAP_COLUMNS`.

    ``vertices``: ``(n, k, 3)`` unit vectors of ``n`` strictly convex polygons of ``k``
    vertices each, in either orientation.
    """
    v = np.asarray(vertices, dtype=np.float64)
    n = v.shape[0]
    out = np.empty((n, 7), dtype=np.float64)
    if n == 0:
        return out
    normals = np.cross(v, np.roll(v, -1, axis=1))               # (n, k, 3), edge i -> i+1
    lengths = np.linalg.norm(normals, axis=2)
    mean = v.sum(axis=1)
    centre = mean / np.linalg.norm(mean, axis=1)[:, None]
    sines = np.einsum("nj,nkj->nk", centre, normals) / lengths  # sin(distance to each edge)
    # The orientation: the sign of the centre's side of the edges (all the same when inside).
    sines *= np.where(sines.sum(axis=1) < 0, -1.0, 1.0)[:, None]
    nearest = sines.min(axis=1)
    inside = nearest > INSIDE_MARGIN
    centre[~inside] = v[~inside, 0]
    inner = np.where(inside, np.arcsin(np.clip(nearest, 0.0, 1.0)) - ANGLE_MARGIN, 0.0)
    inner = np.maximum(inner, 0.0)
    # Distance to the farthest vertex, from the cross and dot products (accurate when small).
    cosines = np.einsum("nj,nkj->nk", centre, v)
    sines_v = np.linalg.norm(np.cross(centre[:, None, :], v), axis=2)
    outer = np.arctan2(sines_v, cosines).max(axis=1) + ANGLE_MARGIN
    outer = np.where(outer < np.pi / 2 - 1e-9, outer, np.pi)
    out[:, :3] = centre
    out[:, 3], out[:, 4] = np.cos(inner), np.sin(inner)
    out[:, 5], out[:, 6] = np.cos(outer), np.sin(outer)
    out[np.abs(out) < FLUSH_BELOW] = 0.0
    return out


def caps_of_encoded(blobs: Sequence[bytes], strict: bool = True) -> FloatArray:
    """:func:`footprint_caps` of encoded sphgeom polygons (``ConvexPolygon.encode()``), from
    the exact vertex vectors they hold.

    A blob that is not a polygon encoding raises ValueError (ingest stores only polygons it
    encoded itself), or with ``strict=False`` gets NaN caps (the migration stores NULL for
    such a row written by another program).
    """
    polygons = EncodedPolygons.from_blobs(blobs)
    out = np.full((len(polygons), 7), np.nan)
    for rows, vertices in polygons.groups():
        out[rows] = footprint_caps(vertices)
    if strict and np.isnan(out[:, 0]).any():
        raise ValueError("caps_of_encoded: a footprint is not an encoded polygon")
    return out
