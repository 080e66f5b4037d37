"""Values that pictures of the registry are drawn from: footprints and coverage count maps.

Plain data (vertices in degrees, numpy count arrays) with no database behind them, so the
plots (:mod:`skyreg.plots`) draw from them without importing the registry, and the web
service encodes them as JSON. The registry fills them (:mod:`skyreg.registry.sky`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import (
    ConvexPolygon,
    HealpixPixelization,
    HtmPixelization,
    LonLat,
    UnitVector3d,
)


@dataclass(frozen=True)
class Footprint:
    """The polygon of one CCD, patch or tract, with what a picture labels it by.

    ``ra``/``dec`` are the vertices (degrees, counter-clockwise seen from outside the sphere,
    as stored) of the CCD, or of the *outer* polygon of a patch or tract; ``inner_ra`` and
    ``inner_dec`` are the inner polygon of a patch or tract (empty for CCDs). ``band``,
    ``mjd_start`` and ``exposure_time`` are the visit's (None for patches and tracts).
    """

    kind: str
    key: tuple[Any, ...]
    ra: tuple[float, ...]
    dec: tuple[float, ...]
    inner_ra: tuple[float, ...] = ()
    inner_dec: tuple[float, ...] = ()
    band: str | None = None
    mjd_start: float | None = None
    exposure_time: float | None = None

    def polygon(self, inner: bool = False) -> ConvexPolygon:
        """The footprint as a sphgeom polygon (the inner one of a patch/tract with ``inner``)."""
        ra, dec = (self.inner_ra, self.inner_dec) if inner else (self.ra, self.dec)
        return polygon_of(ra, dec)


def polygon_of(ra: Sequence[float], dec: Sequence[float]) -> ConvexPolygon:
    return ConvexPolygon([UnitVector3d(LonLat.fromDegrees(r, d))
                          for r, d in zip(ra, dec, strict=True)])


def vertices_of(polygon: ConvexPolygon) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(RA, Dec) vertex tuples in degrees of a sphgeom polygon."""
    points = [LonLat(v) for v in polygon.getVertices()]
    return (tuple(p.getLon().asDegrees() for p in points),
            tuple(p.getLat().asDegrees() for p in points))


@dataclass(frozen=True)
class CoverageMap:
    """Visits per sky cell, in total and per band, over the cells that have any.

    ``cells`` are pixel indexes at ``level`` of ``scheme`` (the registry's pixelization),
    ``counts[i, j]`` the number of visits in band ``bands[j]`` touching cell ``cells[i]``.
    """

    scheme: str
    level: int
    cells: npt.NDArray[np.int64]
    bands: tuple[str, ...]
    counts: npt.NDArray[np.int64]

    @property
    def total(self) -> npt.NDArray[np.int64]:
        """Visits of every band per cell (a visit has one band, so the band counts add up)."""
        return self.counts.sum(axis=1) if self.bands else np.zeros(len(self.cells), np.int64)

    def band_counts(self, band: str | None) -> npt.NDArray[np.int64]:
        """Counts of one band (None: every band)."""
        if band is None:
            return self.total
        if band not in self.bands:
            return np.zeros(len(self.cells), np.int64)
        return self.counts[:, self.bands.index(band)]

    def cell_polygon(self, cell: int) -> ConvexPolygon:
        return cell_polygon(self.scheme, self.level, int(cell))


@lru_cache(maxsize=16)
def _pixelization(scheme: str, level: int) -> HtmPixelization | HealpixPixelization:
    return HtmPixelization(level) if scheme == "htm" else HealpixPixelization(level)


def cell_polygon(scheme: str, level: int, cell: int) -> ConvexPolygon:
    """The polygon of one cell: an HTM trixel, or sphgeom's polygon of a HEALPix pixel."""
    pixelization = _pixelization(scheme, level)
    if scheme == "htm":
        return pixelization.triangle(cell)  # type: ignore[union-attr]
    region = pixelization.pixel(cell)
    assert isinstance(region, ConvexPolygon)
    return region


