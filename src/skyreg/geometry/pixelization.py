"""Pixel coverage of regions, used as the database's spatial index.

A registry indexes every footprint by the pixels of one hierarchical pixelization (HTM or
HEALPix nested, at one level) that its region touches. The envelope sphgeom computes is
conservative — it never misses a pixel the region touches — so two overlapping regions always
share a pixel, and the pixel index can only produce extra candidates, which the exact test then
removes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import HealpixPixelization, HtmPixelization, Region

from skyreg.geometry.polygons import GeometryError

SchemeName = Literal["htm", "healpix"]

#: Levels accepted per scheme: coarser is useless for CCD-sized regions, finer makes huge indexes.
LEVEL_RANGE: dict[str, tuple[int, int]] = {"htm": (4, 14), "healpix": (4, 14)}


@dataclass(frozen=True)
class PixelScheme:
    """One pixelization (scheme + level), chosen once per registry and stored in it."""

    scheme: SchemeName = "htm"
    level: int = 9

    def __post_init__(self) -> None:
        if self.scheme not in LEVEL_RANGE:
            raise GeometryError(f"unknown pixelization {self.scheme!r}: use 'htm' or 'healpix'",
                                field="pixelization")
        low, high = LEVEL_RANGE[self.scheme]
        if not isinstance(self.level, int) or not low <= self.level <= high:
            raise GeometryError(f"{self.scheme} level must be an integer within [{low}, {high}], "
                                f"got {self.level!r}", field="pixelization")

    @cached_property
    def _pixelization(self) -> HtmPixelization | HealpixPixelization:
        if self.scheme == "htm":
            return HtmPixelization(self.level)
        return HealpixPixelization(self.level)

    def __str__(self) -> str:
        return f"{self.scheme}{self.level}"

    def ranges(self, region: Region, max_ranges: int = 0) -> list[tuple[int, int]]:
        """Half-open pixel index ranges covering ``region`` (at most ``max_ranges`` if > 0).

        Limiting the number of ranges merges neighbouring ranges, which keeps the cover
        conservative while keeping a query over a huge region short.
        """
        if self.scheme == "htm":
            return [(int(a), int(b)) for a, b in self._pixelization.envelope(region, max_ranges)]
        if max_ranges <= 0:
            return [(int(a), int(b)) for a, b in self._pixelization.envelope(region)]
        # sphgeom's HEALPix envelope has no max_ranges and grows very slow (and memory hungry)
        # for large regions at fine orders. Cover at a coarser order instead — a nested pixel
        # p of order k is the range [p * 4**d, (p + 1) * 4**d) at order k + d — then merge.
        order = _coarse_healpix_order(region, self.level)
        shift = 2 * (self.level - order)
        coarse = HealpixPixelization(order).envelope(region)
        spans = [(int(a) << shift, int(b) << shift) for a, b in coarse]
        return _merge_smallest_gaps(spans, max_ranges)

    def envelope(self, region: Region) -> Any:
        """sphgeom's RangeSet of pixels touched by ``region`` (iterates as (begin, end))."""
        return self._pixelization.envelope(region)

    def pixels(self, region: Region) -> npt.NDArray[np.int64]:
        """Every pixel index touched by ``region``, sorted."""
        spans = self.ranges(region)
        if not spans:
            return np.empty(0, dtype=np.int64)
        return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in spans])


def _coarse_healpix_order(region: Region, level: int) -> int:
    """The finest order <= level at which ``region`` spans at most ~16 pixels across."""
    radius = region.getBoundingCircle().getOpeningAngle().asDegrees()
    if radius <= 0.0:
        return level
    # A HEALPix pixel of order k is about 58.6 / 2**k degrees wide.
    order = int(np.floor(np.log2(58.6 * 8.0 / (2.0 * radius))))
    return max(0, min(level, order))


def _merge_smallest_gaps(spans: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """At most ``limit`` ranges covering ``spans``, by bridging the smallest gaps first."""
    if len(spans) <= limit:
        return spans
    starts = np.array([a for a, _ in spans], dtype=np.int64)
    ends = np.array([b for _, b in spans], dtype=np.int64)
    gaps = starts[1:] - ends[:-1]
    # Keep the (limit - 1) largest gaps; every other gap is bridged.
    keep = np.sort(np.argsort(gaps, kind="stable")[len(gaps) - (limit - 1):])
    merged_starts = np.concatenate([starts[:1], starts[keep + 1]])
    merged_ends = np.concatenate([ends[keep], ends[-1:]])
    return [(int(a), int(b)) for a, b in zip(merged_starts, merged_ends, strict=True)]
