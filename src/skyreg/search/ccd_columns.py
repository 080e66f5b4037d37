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

from typing import Any

import numpy as np

from skyreg.db.connection import ReadConnection
from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.query_regions import QueryRegion
from skyreg.search import centre_statements
from skyreg.search.centres import accepted_or_matching, centre_candidates
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
    centre pixels (:mod:`skyreg.search.centres`), as :func:`exact_ccd_table`."""
    sql = compiled(centre_statements.centre_candidate_columns, filters)
    return _table(centre_candidates(conn, sql, query, params), query)


def _table(groups: list[tuple[Any, ...]], query: QueryRegion) -> ResultTable[CcdRef]:
    """The matching CCDs of the candidate groups ``(instrument, keys, regions)``; a key whose
    polygon length is -1 was accepted by its caps and is kept untested."""
    instruments, visits, detectors = [], [], []
    # Python's order of the names, as the row tables sort them.
    for instrument, keys, regions in sorted(groups, key=lambda group: str(group[0])):
        records = np.frombuffer(keys, dtype=RECORD)
        kept = records[accepted_or_matching(records["length"].astype(np.int64), regions,
                                            query)]
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
