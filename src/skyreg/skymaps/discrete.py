"""Tracts at explicit centres (``lsst.skymap.DiscreteSkyMap``).

Each tract is an ``ExplicitTractInfo``: a square of half-size ``radius + overlap`` around its
centre in its own TAN projection. lsst.skymap gives such a tract no separate inner region: its
vertex list (and so its inner sky polygon) is the tract pixel box shrunk by 0.001 pixel. skyreg
does the same, so a discrete tract's inner polygon is its outer polygon shrunk by 0.001 pixel.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from skyreg.skymaps.definitions import DiscreteDefinition

FloatArray = npt.NDArray[np.float64]

#: How far ExplicitTractInfo shrinks the tract box to get its vertices, in pixels.
EXPLICIT_VERTEX_SHRINK = 0.001


def centers(defn: DiscreteDefinition) -> tuple[FloatArray, FloatArray]:
    """Tract centres in list order (tract id = position)."""
    return np.array(defn.ra_deg, dtype=np.float64), np.array(defn.dec_deg, dtype=np.float64)
