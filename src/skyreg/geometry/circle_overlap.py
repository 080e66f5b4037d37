"""Whether many convex polygons overlap one circle, with numpy, identical to sphgeom.

A cone search tests a few thousand candidate footprints against one ``Circle``; asking sphgeom
one polygon at a time costs a decode and a call per candidate. Here nearly every candidate is
decided at once, with answers *proven* to be the ones sphgeom gives; the rest (a vertex or an
edge within some milli-arcseconds of the circle, degenerate edges, circles sphgeom treats
specially) are asked of sphgeom, so the answer is always exactly sphgeom's.

What is proven is sphgeom's *computation*, not only the geometry. ``overlaps`` is "not
disjoint" of sphgeom's ``relate`` of a vertex list and a circle, which works with squared
chord lengths. With the circle's centre ``c`` and squared chord length ``sq`` it computes
``d = |v - c|²`` per vertex and answers "intersects" at once when ``|d - sq| < E``
(``E = 2.5e-15``, its bound on the error of ``d``) or when some vertices have ``d < sq`` and
others not; if every vertex is inside, it answers "within" or "intersects". If every vertex is
outside, it answers "intersects" when for some edge ``(a, b)`` the foot of ``c`` on the edge's
great circle lies within the arc (``cross(c, n)·a > 0`` and ``cross(c, n)·b < 0``, ``n`` the edge
normal) and ``4 sin²(θ/2) < sq + E``, ``θ`` the angle from ``c`` to that great circle;
otherwise "contains" if the polygon contains ``c`` (exact orientation signs), else "disjoint".

Error bounds (``u = 2⁻⁵³``; vertices used are unit vectors to 1e-12, checked, the centre too):

* a computed ``d`` is within ``γ₅ · 4 < 2.5e-15`` of the exact one, and so is sphgeom's;
* an edge normal ``n = cross(a, b)`` computed with one rounding per product and difference is
  within ``1.2e-15`` of the exact cross product; ``c · n`` is within ``2e-15`` of the exact
  ``c · cross(a, b)`` (the bound of :mod:`skyreg.geometry.batch_overlap`), ``|n|`` within
  ``2e-15`` of ``|cross(a, b)|``, and ``cross(c, n) · a`` within ``4e-15`` of its exact value.
  sphgeom's ``robustCross`` normal is ``2 cross(a, b)`` to within ``5e-15``, so its signs of
  ``cross(c, n)·a`` are ours wherever ours exceed :data:`ARC_TOLERANCE` in magnitude;
* ``sin β = |c · n| / |n|`` (``β`` the exact angle from ``c`` to the edge's great circle) is
  computed to ``4e-15 / |n|``, so ``4 sin²(β/2) = 2 sin²β / (1 + cos β)`` (slope at most 3.5
  where it is near ``sq <= 1``) to ``1.4e-14 / |n| + 3e-15``; sphgeom's ``4 sin²(θ/2)`` is
  within ``1e-14 / |n| + 1e-14`` of the exact value (the relative error of ``θ`` is that of
  ``|c · n|`` and ``|cross(c, n)|``, at most ``5e-15 / (2 |n| sin β)`` each, plus a few ``u``).
  The margin ``C + K / |n|`` (:data:`CLEARANCE`, :data:`CLEARANCE_PER_NORM`) is far above
  their sum.

**Overlaps**, when any of these holds (every path of sphgeom then answers "intersects",
"within" or "contains"):

* a vertex has computed ``d < sq -`` :data:`INSIDE_MARGIN`: sphgeom's ``d < sq`` too;
* an edge has its foot proven within the arc and ``4 sin²(β/2) < sq - C - K/|n|``: if
  sphgeom finds every vertex outside, this edge makes it answer "intersects";
* ``c · n > SLACK`` for every edge (:data:`SLACK`, above the ``2e-15`` error): the exact
  orientations are positive, so sphgeom's containment test finds ``c`` inside.

**Disjoint** (only for ``sq <= 1 - C``, radii below about 60°), when all of these hold:

1. every vertex has computed ``d > sq + INSIDE_MARGIN``: sphgeom finds all outside, none near;
2. every edge has its foot proven outside the arc (``cross(c, n)·a < -T`` or ``cross(c, n)·b > T``,
   ``T`` = :data:`ARC_TOLERANCE`: sphgeom skips the edge), or ``4 sin²(β/2) > sq + C + K/|n|``
   (sphgeom's value exceeds ``sq + E``);
3. some edge has ``-(c · n) > SLACK``: sphgeom finds that the polygon does not contain ``c``.

Empty and full circles, and polygons whose vertices are not unit vectors, are left to sphgeom.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import Circle

from skyreg.geometry.batch_overlap import DISJOINT, OVERLAPS, UNDECIDED

#: A vertex whose computed squared chord distance to the centre is below ``sq`` minus this is
#: inside for sphgeom too (above ``sq`` plus this: outside, and not near the boundary).
INSIDE_MARGIN = 1e-13
#: Squared chord length by which an edge's great circle must clear the circle (or cut it)...
CLEARANCE = 1e-12
#: ... plus this over ``|n|``: distances to the great circles of short edges are less exact.
CLEARANCE_PER_NORM = 1e-12
#: Slack on computed ``c · n``, above its error.
SLACK = 1e-14
#: Magnitude beyond which the computed sign of ``cross(c, n) · a`` is sphgeom's.
ARC_TOLERANCE = 1e-13
#: Vertices whose squared norm differs from 1 by more than this are left to sphgeom.
NORM_TOLERANCE = 1e-12

FloatArray = npt.NDArray[np.float64]
Codes = npt.NDArray[np.int8]


def circle_center(circle: Circle) -> FloatArray:
    """The centre of ``circle`` as a float64 vector (sphgeom's doubles)."""
    center = circle.getCenter()
    return np.array([center.x(), center.y(), center.z()], dtype=np.float64)


def classify_circle(vertices: FloatArray, circle: Circle) -> Codes:
    """OVERLAPS, DISJOINT or UNDECIDED for each polygon of ``vertices`` against ``circle``.

    ``vertices`` is an (n, k, 3) array: n polygons of k vertices each, in sphgeom's order.
    Decided answers are proven equal to sphgeom's ``polygon.overlaps(circle)`` (see the
    module docstring); undecided polygons must be asked of sphgeom.
    """
    n = len(vertices)
    codes = np.full(n, UNDECIDED, dtype=np.int8)
    c = circle_center(circle)
    if not n or circle.isEmpty() or circle.isFull() or abs(float(c @ c) - 1.0) > 1e-15:
        return codes
    sq = float(circle.getSquaredChordLength())
    # (coordinate, vertex, polygon) planes: every step is an elementwise operation on
    # contiguous per-polygon vectors, and reductions over the few vertices are cheap.
    x, y, z = np.ascontiguousarray(vertices.transpose(2, 1, 0))
    usable = (np.abs((x * x + y * y + z * z) - 1.0) <= NORM_TOLERANCE).all(axis=0)
    dx, dy, dz = x - c[0], y - c[1], z - c[2]
    nearest = ((dx * dx + dy * dy) + dz * dz).min(axis=0)
    inside = (nearest < sq - INSIDE_MARGIN) & usable
    codes[inside] = OVERLAPS
    if sq > 1.0 - CLEARANCE:
        return codes
    rest = np.flatnonzero(usable & ~inside)
    if not len(rest):
        return codes
    x, y, z = (a.take(rest, axis=1) for a in (x, y, z))
    # Edge j runs from vertex j to vertex j + 1 (mod k), as in sphgeom.
    following = np.roll(np.arange(len(x)), -1)
    xn, yn, zn = (a.take(following, axis=0) for a in (x, y, z))
    nx, ny, nz = y * zn - z * yn, z * xn - x * zn, x * yn - y * xn
    cn = (nx * c[0] + ny * c[1]) + nz * c[2]
    norms = np.sqrt((nx * nx + ny * ny) + nz * nz)
    gx, gy, gz = c[1] * nz - c[2] * ny, c[2] * nx - c[0] * nz, c[0] * ny - c[1] * nx
    ga = (gx * x + gy * y) + gz * z
    gb = (gx * xn + gy * yn) + gz * zn
    with np.errstate(divide="ignore", invalid="ignore"):
        # A degenerate edge (|n| = 0) gets NaN distance and an infinite margin: undecided.
        s = np.minimum(np.abs(cn) / norms, 1.0)
        to_great_circle = 2.0 * s * s / (1.0 + np.sqrt(1.0 - s * s))
        margin = CLEARANCE + CLEARANCE_PER_NORM / norms
        cut = (to_great_circle < sq - margin) & (ga > ARC_TOLERANCE) & (gb < -ARC_TOLERANCE)
        clear = (to_great_circle > sq + margin) | (ga < -ARC_TOLERANCE) | (gb > ARC_TOLERANCE)
    overlapping = cut.any(axis=0) | (cn > SLACK).all(axis=0)
    disjoint = ((nearest[rest] > sq + INSIDE_MARGIN) & clear.all(axis=0)
                & (cn < -SLACK).any(axis=0))
    # The two are exclusive (edge by edge); were both found, sphgeom would decide.
    codes[rest[overlapping & ~disjoint]] = OVERLAPS
    codes[rest[disjoint & ~overlapping]] = DISJOINT
    return codes
