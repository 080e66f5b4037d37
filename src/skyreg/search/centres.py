"""Cone and point candidates by the CCDs' centre pixels: the cover, the levels, the rerun.

A cone's candidates are the CCDs whose centre pixel lies in the cover of the cone grown by
each stored level's bound on the outer radius (:mod:`skyreg.geometry.centre_pixels`). Which
levels hold centres is remembered per session; every statement of
:mod:`skyreg.search.centre_statements` also reports a centre pixel outside them (a CCD of a
new size class written by another process since), and :func:`centre_candidates` then looks
the levels up again and reruns it, so an answer is always that of one snapshot.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import Circle, UnitVector3d

from skyreg.db.connection import ReadConnection
from skyreg.errors import DatabaseError
from skyreg.geometry.centre_pixels import LEVELS, search_ranges
from skyreg.geometry.encoded_polygons import EncodedPolygons
from skyreg.geometry.query_regions import QueryRegion
from skyreg.search import centre_statements
from skyreg.search.sql import compiled

#: The levels of the centre pixels stored, as last seen on each session.
_LEVELS: weakref.WeakKeyDictionary[ReadConnection, tuple[int, ...]] = (
    weakref.WeakKeyDictionary())

#: One candidate of :func:`centre_statements.centre_candidate_ids`: ccd_id (int8) and the
#: length of its polygon (int4; -1: accepted by its caps, sent without it), big-endian.
ID_RECORD = np.dtype([("ccd_id", ">i8"), ("length", ">i4")])


def searchable(query: QueryRegion) -> bool:
    """Whether the centre pixels can answer ``query`` (a cone or a point)."""
    return query.kind in ("cone", "point") and isinstance(query.region, Circle)


def centre_candidates(conn: ReadConnection, sql: str, query: QueryRegion,
                      params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of centre statement ``sql`` for a cone or point ``query``, without the
    statement's "levels out of date" row; none for an empty cone."""
    circle = query.region
    if not isinstance(circle, Circle):
        raise TypeError("searches by centre pixel take a cone or a point")
    if circle.isEmpty():
        return []
    centre, radius = circle.getCenter(), circle.getOpeningAngle().asRadians()
    params = {**params, **cone_params(centre, radius)}
    levels = _LEVELS.get(conn)
    for attempt in range(2):
        if levels is None:
            rows = conn.fetch(compiled(centre_statements.centre_levels_present, LEVELS), {})
            levels = _LEVELS[conn] = tuple(int(row[0]) for row in rows)
        found = conn.fetch(sql, {**params, **range_params(centre, radius, levels)})
        if all(row[0] is not None for row in found):
            return found
        if attempt:
            break
        levels = None
    # Looked up again, the levels still leave a centre pixel outside: not a value ingest
    # writes (or the levels change faster than a search runs). Refuse rather than miss it.
    raise DatabaseError("ccd.centre_pix holds a value that is not a centre pixel at any level "
                        "skyreg uses (written by another program?); set it to NULL, which "
                        "every search handles, or write the value of "
                        "skyreg.geometry.centre_pixels")


def matching_ccd_ids(conn: ReadConnection, query: QueryRegion) -> npt.NDArray[np.int64]:
    """The ``ccd_id`` of every CCD overlapping the cone (containing the point), sorted."""
    rows = centre_candidates(conn, compiled(centre_statements.centre_candidate_ids), query, {})
    if not rows:
        return np.empty(0, dtype=np.int64)
    records = np.frombuffer(rows[0][0], dtype=ID_RECORD)
    keep = accepted_or_matching(records["length"].astype(np.int64), rows[0][1], query)
    return np.sort(records["ccd_id"][keep].astype(np.int64))


def accepted_or_matching(lengths: npt.NDArray[np.int64], regions: bytes | None,
                         query: QueryRegion) -> npt.NDArray[np.bool_]:
    """Which candidates to keep: those the caps accepted (length -1) and those whose polygon
    (concatenated in ``regions``, in candidate order) matches exactly."""
    tested = lengths >= 0
    regions = regions or b""
    footprints = EncodedPolygons(regions, lengths[tested])
    if int(footprints.lengths.sum()) != len(regions):  # the statement's promise
        raise RuntimeError("candidate keys and polygons do not line up")
    keep = ~tested
    keep[tested] = query.matching(footprints)
    return keep


def _outside(levels: tuple[int, ...]) -> list[tuple[int, int]]:
    """Every bigint value outside the intervals of ``levels`` (bar 2**63 - 1, which no
    half-open range can end after), as half-open ranges."""
    ranges, start = [], -(2**63)
    for level in sorted(levels):
        ranges.append((start, 8 * 4**level))
        start = 16 * 4**level
    ranges.append((start, 2**63 - 1))
    return [(lo, hi) for lo, hi in ranges if lo < hi]


def _bounds(lo: str, hi: str, ranges: list[tuple[int, int]]) -> dict[str, list[int]]:
    return {lo: [a for a, _ in ranges], hi: [b for _, b in ranges]}


def cone_params(centre: UnitVector3d, radius: float) -> dict[str, float]:
    """The cone as ``skyreg_bounds_verdict`` takes it; values below 1e-100 in magnitude are
    0, so that no product with a stored value underflows (an error in PostgreSQL)."""
    values = {"qx": centre.x(), "qy": centre.y(), "qz": centre.z(),
              "t": math.cos(radius), "s": math.sin(max(radius, 0.0))}
    return {name: (0.0 if abs(value) < 1e-100 else value) for name, value in values.items()}



def range_params(centre: UnitVector3d, radius: float, levels: tuple[int, ...]
                 ) -> dict[str, list[int]]:
    """The range parameters of a centre statement for the cone (``lo``/``hi``: its cover at
    ``levels``; ``other_lo``/``other_hi``: every value outside them, for the check that the
    levels are up to date)."""
    return {**_bounds("lo", "hi", search_ranges(centre, radius, list(levels))),
            **_bounds("other_lo", "other_hi", _outside(levels))}
