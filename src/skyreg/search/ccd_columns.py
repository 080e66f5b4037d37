"""Key-only CCD searches by region, fetched and tested as columns.

The common CCD search asks for keys only (``for ccd in reg.find_ccds(cone=...)``), and a cone
at survey depth has thousands of candidates. As rows, each candidate costs a row of four
values on the wire, the Python objects psycopg makes of them, a decode and a call into sphgeom,
and its share of sorting the row tuples. Here the candidate statement
(:func:`skyreg.search.statements.ccd_candidate_columns`) sends one row per instrument with the
keys and polygons of all its candidates concatenated; the polygons are tested in bulk
(:meth:`skyreg.geometry.QueryRegion.matching`, exactly sphgeom's answers), the keys sorted
with numpy, and the result is a :class:`~skyreg.search.results.ResultTable` holding columns,
whose row tuples are made only when it is iterated.

Cones and points take their candidates from the CCDs' centre pixels instead
(:func:`exact_ccd_table_by_centre`, :mod:`skyreg.search.centre_statements`): one index entry
per candidate, and the caps decide most of them in the statement, so only the undecided
arrive with a polygon (a key with the length -1 was accepted by its caps).
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
from lsst.sphgeom import Circle, UnitVector3d

from skyreg.db.connection import ReadConnection
from skyreg.errors import DatabaseError
from skyreg.geometry.centre_pixels import LEVELS, search_ranges
from skyreg.geometry.encoded_polygons import EncodedPolygons
from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.query_regions import QueryRegion
from skyreg.search import centre_statements
from skyreg.search.exact import candidate_rows
from skyreg.search.results import CcdRef, ResultTable
from skyreg.search.sql import compiled
from skyreg.search.statements import CcdFilters

#: One CCD of a ``keys`` value: visit, detector (int8) and polygon length (int4), big-endian.
RECORD = np.dtype([("visit", ">i8"), ("detector", ">i8"), ("length", ">i4")])


def exact_ccd_table(conn: ReadConnection, scheme: PixelScheme, sql: str, query: QueryRegion,
                    params: dict[str, Any]) -> ResultTable[CcdRef]:
    """Run the columnar candidate statement ``sql`` for the region's pixels; the CCDs that
    match exactly, sorted by key, as a table of columns."""
    return _table(candidate_rows(conn, scheme, sql, query, params), query)


def exact_ccd_table_by_centre(conn: ReadConnection, filters: CcdFilters, query: QueryRegion,
                              params: dict[str, Any]) -> ResultTable[CcdRef]:
    """The CCDs overlapping a cone (or containing a point: a cone of radius 0), found by their
    centre pixels (:mod:`skyreg.search.centre_statements`), as :func:`exact_ccd_table`.

    The levels at which centres are stored are remembered per connection; the statement
    reports a centre pixel outside them (a CCD of a new size class written since), and the
    search then looks the levels up and runs again, so the answer is always that of one
    snapshot.
    """
    circle = query.region
    if not isinstance(circle, Circle):
        raise TypeError("searches by centre pixel take a cone or a point")
    if circle.isEmpty():
        return _table([], query)
    centre, radius = circle.getCenter(), circle.getOpeningAngle().asRadians()
    sql = compiled(centre_statements.centre_candidate_columns, filters)
    params = {**params, **_cone_params(centre, radius)}
    levels = _LEVELS.get(conn)
    for attempt in range(2):
        if levels is None:
            rows = conn.fetch(compiled(centre_statements.centre_levels_present, LEVELS), {})
            levels = _LEVELS[conn] = tuple(int(row[0]) for row in rows)
        searched = search_ranges(centre, radius, list(levels))
        groups = conn.fetch(sql, {**params, **_bounds("lo", "hi", searched),
                                  **_bounds("other_lo", "other_hi", _outside(levels))})
        if all(group[0] is not None for group in groups):
            return _table(groups, query)
        if attempt:
            break
        levels = None
    # Looked up again, the levels still leave a centre pixel outside: not a value ingest
    # writes (or the levels change faster than a search runs). Refuse rather than miss it.
    raise DatabaseError("ccd.centre_pix holds a value that is not a centre pixel at any level "
                       "skyreg uses (written by another program?); set it to NULL, which "
                       "every search handles, or write the value of "
                       "skyreg.geometry.centre_pixels")


def _outside(levels: tuple[int, ...]) -> list[tuple[int, int]]:
    """Every bigint value outside the intervals of ``levels`` (bar 2**63 - 1, which no
    half-open range can end after), as half-open ranges."""
    ranges, start = [], -(2**63)
    for level in sorted(levels):
        ranges.append((start, 8 * 4**level))
        start = 16 * 4**level
    ranges.append((start, 2**63 - 1))
    return [(lo, hi) for lo, hi in ranges if lo < hi]


#: The levels of the centre pixels stored, as last seen on each connection.
_LEVELS: weakref.WeakKeyDictionary[ReadConnection, tuple[int, ...]] = (
    weakref.WeakKeyDictionary())


def _bounds(lo: str, hi: str, ranges: list[tuple[int, int]]) -> dict[str, list[int]]:
    return {lo: [a for a, _ in ranges], hi: [b for _, b in ranges]}


def _cone_params(centre: UnitVector3d, radius: float) -> dict[str, float]:
    """The cone as ``skyreg_bounds_verdict`` takes it; values below 1e-100 in magnitude are
    0, so that no product with a stored value underflows (an error in PostgreSQL)."""
    values = {"qx": centre.x(), "qy": centre.y(), "qz": centre.z(),
              "t": math.cos(radius), "s": math.sin(max(radius, 0.0))}
    return {name: (0.0 if abs(value) < 1e-100 else value) for name, value in values.items()}


def _table(groups: list[tuple[Any, ...]], query: QueryRegion) -> ResultTable[CcdRef]:
    """The matching CCDs of the candidate groups ``(instrument, keys, regions)``; a key whose
    polygon length is -1 was accepted by its caps and is kept untested."""
    instruments, visits, detectors = [], [], []
    # Python's order of the names, as the row tables sort them.
    for instrument, keys, regions in sorted(groups, key=lambda group: str(group[0])):
        records = np.frombuffer(keys, dtype=RECORD)
        lengths = records["length"].astype(np.int64)
        tested = lengths >= 0
        regions = regions or b""
        footprints = EncodedPolygons(regions, lengths[tested])
        if int(footprints.lengths.sum()) != len(regions):  # the statement's promise
            raise RuntimeError(f"{instrument}: candidate keys and polygons do not line up")
        keep = ~tested
        keep[tested] = query.matching(footprints)
        kept = records[keep]
        visit, detector = kept["visit"].astype(np.int64), kept["detector"].astype(np.int64)
        order = np.lexsort((detector, visit))
        column = np.empty(len(kept), dtype=object)
        column[:] = instrument
        instruments.append(column)
        visits.append(visit[order])
        detectors.append(detector[order])
    return ResultTable(CcdRef, None, {
        "instrument": np.concatenate(instruments) if instruments else np.empty(0, object),
        "visit": np.concatenate(visits) if visits else np.empty(0, np.int64),
        "detector": np.concatenate(detectors) if detectors else np.empty(0, np.int64),
    })
