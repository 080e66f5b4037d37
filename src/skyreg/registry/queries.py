"""SQL statements of the spatial queries, composed with SQLAlchemy Core.

Every spatial query has the same two steps, both here in one statement: the pixel ranges of the
query region select candidate ids from a ``*_pixel`` table (a B-tree range scan per range, joined
against ``unnest(lo, hi)`` so one statement serves any number of ranges), and the candidates'
keys and encoded polygons come back for the exact test done by :mod:`skyreg.registry.registry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import BigInteger, ColumnElement, Select, and_, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY

from skyreg.schema import ccd, ccd_pixel, patch, patch_pixel, tract, tract_pixel, visit

_LO = bindparam("lo", type_=ARRAY(BigInteger))
_HI = bindparam("hi", type_=ARRAY(BigInteger))


@dataclass(frozen=True)
class CcdFilters:
    """Non-spatial restrictions on CCD searches (None means no restriction)."""

    instruments: tuple[str, ...] | None = None
    bands: tuple[str, ...] | None = None
    mjd_tai_range: tuple[float, float] | None = None

    @property
    def needs_visit(self) -> bool:
        return self.bands is not None or self.mjd_tai_range is not None


def _candidate_ids(pixel_table: object, id_column: str) -> Select[tuple[int]]:
    """Ids whose pixel rows fall into any of the bound half-open ranges [lo, hi)."""
    pixels = pixel_table.c  # type: ignore[attr-defined]
    ranges = func.unnest(_LO, _HI).table_valued("lo", "hi").render_derived(name="r")
    return (
        select(pixels[id_column])
        .select_from(ranges)
        .join(pixel_table, and_(pixels.pix >= ranges.c.lo, pixels.pix < ranges.c.hi))  # type: ignore[arg-type]
    )


def ccd_candidates(filters: CcdFilters) -> Select[tuple[str, int, int, bytes]]:
    """CCDs with a pixel in the bound ranges that pass ``filters``, with their polygons."""
    statement = select(ccd.c.instrument, ccd.c.visit, ccd.c.detector, ccd.c.region).where(
        ccd.c.ccd_id.in_(_candidate_ids(ccd_pixel, "ccd_id"))
    )
    conditions: list[ColumnElement[bool]] = []
    if filters.instruments is not None:
        conditions.append(ccd.c.instrument.in_(filters.instruments))
    if filters.needs_visit:
        statement = statement.join(
            visit, and_(visit.c.instrument == ccd.c.instrument, visit.c.visit == ccd.c.visit)
        )
        if filters.bands is not None:
            conditions.append(visit.c.band.in_(filters.bands))
        if filters.mjd_tai_range is not None:
            start, end = filters.mjd_tai_range
            conditions.append(and_(visit.c.mjd_tai_end >= start, visit.c.mjd_tai_start <= end))
    return statement.where(and_(true(), *conditions))


def patch_candidates(
    skymaps: Sequence[str] | None, inner: bool
) -> Select[tuple[str, int, int, bytes]]:
    """Patches with a pixel in the bound ranges (outer-polygon index), with the chosen polygon.

    The index is built from outer polygons only: an inner polygon lies within its outer one, so
    the outer pixels are a valid (superset) cover for inner-polygon searches too.
    """
    region = patch.c.inner_region if inner else patch.c.outer_region
    statement = select(patch.c.skymap, patch.c.tract, patch.c.patch, region).where(
        patch.c.patch_id.in_(_candidate_ids(patch_pixel, "patch_id"))
    )
    if skymaps is not None:
        statement = statement.where(patch.c.skymap.in_(skymaps))
    return statement


def tract_candidates(skymaps: Sequence[str] | None, inner: bool) -> Select[tuple[str, int, bytes]]:
    """Tracts with a pixel in the bound ranges, with the chosen polygon (see patch_candidates)."""
    region = tract.c.inner_region if inner else tract.c.outer_region
    statement = select(tract.c.skymap, tract.c.tract, region).where(
        tract.c.tract_id.in_(_candidate_ids(tract_pixel, "tract_id"))
    )
    if skymaps is not None:
        statement = statement.where(tract.c.skymap.in_(skymaps))
    return statement


def ccd_region(instrument: str, visit_id: int, detector: int) -> Select[tuple[bytes]]:
    """The encoded footprint of one CCD."""
    return select(ccd.c.region).where(
        ccd.c.instrument == instrument, ccd.c.visit == visit_id, ccd.c.detector == detector
    )


def patch_region(skymap: str, tract_id: int, patch_id: int, inner: bool) -> Select[tuple[bytes]]:
    """The encoded inner or outer polygon of one patch."""
    region = patch.c.inner_region if inner else patch.c.outer_region
    return select(region).where(
        patch.c.skymap == skymap, patch.c.tract == tract_id, patch.c.patch == patch_id
    )


def tract_region(skymap: str, tract_id: int, inner: bool) -> Select[tuple[bytes]]:
    """The encoded inner or outer polygon of one tract."""
    region = tract.c.inner_region if inner else tract.c.outer_region
    return select(region).where(tract.c.skymap == skymap, tract.c.tract == tract_id)
