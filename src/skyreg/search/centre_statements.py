"""SQL of the cone and point searches by the CCDs' centre pixels (``ccd.centre_pix``).

One index entry per CCD (:mod:`skyreg.geometry.centre_pixels`) instead of a pixel row per
trixel it touches: the ranges of the cone's cover select the candidates by an index-only scan
of ``ix_ccd_centre_pix``, which holds each CCD's key, caps and polygon, so no candidate is
deduplicated and none is read from the table. ``skyreg_bounds_verdict``
(the caps' test, revision 0016) then keeps the CCDs the cone surely reaches without their
polygon, drops the ones it surely misses, and only the undecided rest (~15% of a 0.2° cone's
candidates) bring their polygon for the exact test in Python.

Builders only, as in :mod:`skyreg.search.statements`: nothing is composed at import.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    Select,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)

from skyreg.schema import ccd
from skyreg.search.statements import CcdFilters, ccd_statement, range_table


def _in_ranges(lo: str, hi: str, *, verdict: bool = True) -> Select[Any]:
    """CCDs whose centre pixel lies in the bound ranges, with the caps' verdict.

    Each range is its own index range scan (a LATERAL subquery that refers to the range): as
    a plain join, the planner's estimate for range conditions on parameters made it scan the
    whole index once and filter.
    """
    ranges = range_table(lo, hi, f"r_{lo}")
    columns: list[Any] = [ccd.c.ccd_id]
    if verdict:
        test = func.skyreg_bounds_verdict(
            ccd.c.cap_x, ccd.c.cap_y, ccd.c.cap_z, ccd.c.cap_inner_cos, ccd.c.cap_inner_sin,
            ccd.c.cap_outer_cos, ccd.c.cap_outer_sin,
            *(bindparam(name, type_=Double) for name in ("qx", "qy", "qz", "t", "s")))
        columns += [ccd.c.instrument, ccd.c.visit, ccd.c.detector, test.label("verdict"),
                    ccd.c.region]
    scan = (select(*columns)
            .where(ccd.c.centre_pix >= ranges.c.lo, ccd.c.centre_pix < ranges.c.hi)
            .offset(literal_column("0")).lateral(f"in_{lo}"))
    return select(*(scan.c[column.name] for column in columns)).select_from(ranges).join(
        scan, true())


def _candidates() -> Any:
    """Every candidate (``ccd_id``, key, ``verdict``, ``region``) of the bound ranges, and
    every CCD without a centre pixel (undecided)."""
    unindexed = (select(ccd.c.ccd_id, ccd.c.instrument, ccd.c.visit, ccd.c.detector,
                        null().label("verdict"), ccd.c.region)
                 .where(ccd.c.centre_pix.is_(None)))
    return union_all(_in_ranges("lo", "hi"), unindexed).subquery("candidate")


def _undecided_region(found: Any) -> Any:
    """The polygon of an undecided candidate, NULL for one the caps decided. (The index holds
    the polygon too: the undecided need no visit to the table.)"""
    return case((found.c.verdict.is_(None), found.c.region), else_=null())


def _kept(found: Any) -> ColumnElement[bool]:
    """Candidates the caps did not reject."""
    return or_(found.c.verdict.is_(None), found.c.verdict)


def _length(region: Any) -> Any:
    """int4 length of a polygon, -1 for none (accepted by its caps)."""
    return func.int4send(func.coalesce(func.octet_length(region), literal_column("-1")))


def _stale(width: int) -> Select[Any]:
    """A row of ``width`` NULLs when a centre pixel lies in the ``other_*`` ranges."""
    nulls: list[Any] = [null() for _ in range(width)]
    return select(*nulls).where(exists(_in_ranges("other_lo", "other_hi", verdict=False)))


def centre_candidate_columns(filters: CcdFilters) -> Select[Any]:
    """The CCDs a cone may overlap, by centre pixel, as one row per instrument:
    ``(instrument, keys, regions)``, plus a row ``(NULL, NULL, NULL)`` when a CCD's centre
    pixel lies in the ``other_lo``/``other_hi`` ranges (outside the levels the caller
    searched: its list of levels is out of date and the answer incomplete).

    ``keys`` concatenates, per CCD the caps did not reject, its visit and detector (int8) and
    the length of its polygon (int4), or -1 for a CCD the caps accept; ``regions``
    concatenates the polygons of the others, which the exact test decides. CCDs without a
    centre pixel (written by a program that did not compute one) are all undecided.

    Parameters: ``lo``/``hi`` (centre pixel ranges), ``other_lo``/``other_hi``, the cone's
    centre ``qx``, ``qy``, ``qz`` and the cosine ``t`` and sine ``s`` of its radius, and the
    filters' as :func:`~skyreg.search.statements.ccd_candidates`.
    """
    found = _candidates()
    rows = (ccd_statement(found, [_kept(found)], filters, (), polygon=False, keys=found)
            .add_columns(_undecided_region(found).label("region"))
            # OFFSET 0 keeps the subquery apart, so the polygon is chosen once per row.
            .offset(literal_column("0"))
            .subquery("kept"))
    record = (func.int8send(rows.c.visit).op("||")(func.int8send(rows.c.detector))
              .op("||")(_length(rows.c.region)))
    empty: ColumnElement[Any] = literal_column("''::bytea")
    groups = (select(rows.c.instrument, func.string_agg(record, empty).label("keys"),
                     func.string_agg(rows.c.region, empty).label("regions"))
              .group_by(rows.c.instrument))
    return union_all(groups, _stale(3))  # type: ignore[return-value]


def centre_candidate_ids() -> Select[Any]:
    """The CCDs a cone may overlap, by centre pixel, as one row ``(ids, regions)``: per CCD
    the caps did not reject, its ``ccd_id`` (int8) and polygon length (int4, or -1), and the
    polygons of the undecided, as :func:`centre_candidate_columns` (no filters); plus its
    ``(NULL, NULL)`` row when the levels are out of date. Parameters as there."""
    found = _candidates()
    rows = (select(found.c.ccd_id, _undecided_region(found).label("region"))
            .where(_kept(found)).offset(literal_column("0")).subquery("kept"))
    empty: ColumnElement[Any] = literal_column("''::bytea")
    record = func.int8send(rows.c.ccd_id).op("||")(_length(rows.c.region))
    # coalesce: no candidate gives '' rather than NULL, which would read as out of date.
    one = select(func.coalesce(func.string_agg(record, empty), empty).label("ids"),
                 func.string_agg(rows.c.region, empty).label("regions"))
    return union_all(one, _stale(2))  # type: ignore[return-value]


def centre_levels_present(levels: tuple[int, ...]) -> Select[Any]:
    """The ``levels`` (of :data:`skyreg.geometry.centre_pixels.LEVELS`) at which some CCD's
    centre pixel is stored: one index probe each."""
    probes: list[Select[Any]] = [select(literal_column(str(level)).label("level")).where(exists(
        select(ccd.c.ccd_id).where(ccd.c.centre_pix >= literal_column(str(8 * 4**level)),
                                   ccd.c.centre_pix < literal_column(str(16 * 4**level)))))
        for level in levels]
    return union_all(*probes)  # type: ignore[return-value]
