"""One pixel per footprint, chosen by its size: a spatial index of bounding caps.

A cone or point search by the footprints' pixel rows scans every pixel a footprint touches
(~9 rows per CCD at HTM 9), sorts and deduplicates the ids, then fetches and ships every
candidate's polygon: at 10,000 visits a 0.2° cone reads ~15,000 pixel rows for ~3,700
candidates, and most of its time went there. Each CCD also stores two caps, one inside its
footprint and one holding it (:mod:`skyreg.geometry.bounding_caps`). Indexing the *centre* of
those caps, once per CCD, gives a cone search one index entry per candidate and lets the
caps decide most candidates without their polygons.

A footprint whose outer cap has radius ``R`` is put in the size class ``j`` of the bound
:func:`class_bound` ``B_j = 90° / 2**j`` (the largest ``j`` with ``R <= B_j``, at most
:data:`FINEST_CLASS`), and indexed by the HTM trixel at level ``j + 2`` that holds its centre
(:data:`LEVEL_OFFSET`: trixels a quarter of the bound, so that a cover wastes little). HTM
indices of different levels lie in disjoint intervals (level ``L``: ``[8·4**L, 16·4**L)``),
so one column holds every class. A footprint without an outer cap below 90° goes to level 0
with the bound 180°.

A footprint overlapping the cone of centre ``q`` and radius ``r`` has its centre within
``r + R <= r + B_j`` of ``q``; the search covers that circle, grown by :data:`COVER_MARGIN`,
at each level present. The stored trixel holds the centre (the indexer gives sphgeom's
answer), so it touches the grown circle and is in its cover: no footprint is missed.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import Angle, Circle, HtmPixelization, UnitVector3d

from skyreg.geometry.htm_index import htm_indices_of_vectors

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: The finest size class: bound 90° / 2**12 = 0.022° (a footprint smaller than that is still
#: found, with that bound; the caps then reject the extra candidates).
FINEST_CLASS = 12
#: The HTM level of class ``j`` is ``j + LEVEL_OFFSET``.
LEVEL_OFFSET = 2
#: The level of footprints with no outer cap below 90°: searched with the bound 180°.
UNBOUNDED_LEVEL = 0
#: Radians by which a search circle is grown: far above the rounding of a stored centre and
#: of its trixel (~1e-15), far below any size a footprint or a search has.
COVER_MARGIN = 1e-9
#: Every level a centre may be stored at.
LEVELS = (UNBOUNDED_LEVEL, *range(LEVEL_OFFSET, FINEST_CLASS + LEVEL_OFFSET + 1))


def class_bound(level: int) -> float:
    """The bound (radians) on the outer radius of the footprints stored at ``level``."""
    if level == UNBOUNDED_LEVEL:
        return math.pi
    return math.ldexp(math.pi / 2, LEVEL_OFFSET - level)


def centre_levels(outer_cos: FloatArray) -> IntArray:
    """The level of each footprint's centre pixel, from the cosine of its outer radius
    (NaN, an unknown radius, counts as unbounded)."""
    cosines = np.asarray(outer_cos, dtype=np.float64)
    radius = np.arccos(np.clip(np.where(np.isnan(cosines), -1.0, cosines), -1.0, 1.0))
    bounded = radius < math.pi / 2
    # The largest j with radius <= (pi/2) / 2**j, i.e. j = floor(log2((pi/2) / radius)).
    j = np.floor(np.log2((math.pi / 2) / np.maximum(radius, 1e-300)))
    j = np.clip(j, 0, FINEST_CLASS).astype(np.int64)
    # Rounding of the logarithm must not put a footprint in a class whose bound it exceeds.
    too_big = radius > np.ldexp(math.pi / 2, -j)
    j[too_big] -= 1
    return np.where(bounded & (j >= 0), j + LEVEL_OFFSET, UNBOUNDED_LEVEL).astype(np.int64)


def centre_pixels(caps: FloatArray) -> npt.NDArray[np.float64]:
    """The ``ccd.centre_pix`` of each footprint from its caps (an ``(n, 7)`` array in
    :data:`~skyreg.geometry.bounding_caps.CAP_COLUMNS` order), NaN where the caps are NaN.

    Returned as float64 so that NaN can mark a missing value; every index is below 2**53
    (level 14: < 16·4**14 = 2**32), so the conversion is exact.
    """
    caps = np.asarray(caps, dtype=np.float64).reshape(-1, 7)
    out = np.full(len(caps), np.nan)
    known = ~np.isnan(caps).any(axis=1)
    if not known.any():
        return out
    centres = caps[known, :3]
    levels = centre_levels(caps[known, 5])
    pixels = np.empty(len(levels), dtype=np.int64)
    for level in np.unique(levels).tolist():
        rows = levels == level
        pixels[rows] = htm_indices_of_vectors(centres[rows], level)
    out[known] = pixels
    return out


def search_ranges(centre: UnitVector3d, radius: float, levels: list[int],
                  max_ranges: int = 64) -> list[tuple[int, int]]:
    """Half-open ranges of ``centre_pix`` values where the centre of a footprint stored at
    one of ``levels`` can be, for a footprint overlapping the cone (``radius`` radians).

    The ranges are disjoint and sorted (each level's lie in its own interval), at most
    ``max_ranges`` per level.
    """
    ranges: list[tuple[int, int]] = []
    for level in sorted(set(levels)):
        if level not in LEVELS:
            raise ValueError(f"centre pixels are not stored at level {level}")
        reach = radius + class_bound(level) + COVER_MARGIN
        if reach >= math.pi:
            ranges.append((8 * 4**level, 16 * 4**level))
            continue
        circle = Circle(centre, Angle(reach))
        ranges.extend((int(a), int(b)) for a, b in
                      HtmPixelization(level).envelope(circle, max_ranges))
    return ranges
