"""Whether many footprints contain one point, at once, as sphgeom answers it.

The proven-sign determinants of :mod:`skyreg.geometry.batch_overlap`, arranged for a point
search: many candidate footprints (an (n, k, 3) vertex array, as
:meth:`~skyreg.geometry.encoded_polygons.EncodedPolygons.groups` gives them) against one
point. The answer per footprint is OVERLAPS (contains), DISJOINT or UNDECIDED; undecided ones
must be asked of sphgeom.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import UnitVector3d

from skyreg.geometry.batch_overlap import (
    DISJOINT,
    NORM_TOLERANCE,
    OVERLAPS,
    SIGN_BOUND,
    UNDECIDED,
)

FloatArray = npt.NDArray[np.float64]
Codes = npt.NDArray[np.int8]


def classify_point(vertices: FloatArray, point: UnitVector3d) -> Codes:
    """Whether each polygon contains ``point``: OVERLAPS (yes), DISJOINT (no) or UNDECIDED.

    sphgeom's ``contains`` is ``det(point, v_j, v_j+1) >= 0`` for every edge, with exact
    signs; each determinant is ``point · cross(v_j, v_j+1)``, computed as
    :mod:`~skyreg.geometry.batch_overlap` bounds it (one rounding per product and difference
    of the cross product, three products and two sums of the dot product): beyond
    ``±SIGN_BOUND`` its sign is the exact one.
    """
    p = (point.x(), point.y(), point.z())
    x, y, z = np.ascontiguousarray(vertices.transpose(2, 1, 0))
    usable = (np.abs(np.sqrt((x * x + y * y) + z * z) - 1.0) <= NORM_TOLERANCE).all(axis=0)
    xn, yn, zn = (np.roll(a, -1, axis=0) for a in (x, y, z))
    dets = ((y * zn - z * yn) * p[0] + (z * xn - x * zn) * p[1]) + (x * yn - y * xn) * p[2]
    codes = np.full(len(vertices), UNDECIDED, dtype=np.int8)
    codes[usable & (dets < -SIGN_BOUND).any(axis=0)] = DISJOINT
    codes[usable & (dets > SIGN_BOUND).all(axis=0)] = OVERLAPS
    return codes
