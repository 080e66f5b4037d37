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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from skyreg.db.connection import ReadConnection
from skyreg.geometry.encoded_polygons import EncodedPolygons
from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.query_regions import QueryRegion
from skyreg.search.exact import candidate_rows
from skyreg.search.results import CcdRef, ResultTable

#: One CCD of a ``keys`` value: visit, detector (int8) and polygon length (int4), big-endian.
RECORD = np.dtype([("visit", ">i8"), ("detector", ">i8"), ("length", ">i4")])


def exact_ccd_table(conn: ReadConnection, scheme: PixelScheme, sql: str, query: QueryRegion,
                    params: dict[str, Any]) -> ResultTable[CcdRef]:
    """Run the columnar candidate statement ``sql`` for the region's pixels; the CCDs that
    match exactly, sorted by key, as a table of columns."""
    groups = candidate_rows(conn, scheme, sql, query, params)
    instruments, visits, detectors = [], [], []
    # Python's order of the names, as the row tables sort them.
    for instrument, keys, regions in sorted(groups, key=lambda group: str(group[0])):
        records = np.frombuffer(keys, dtype=RECORD)
        footprints = EncodedPolygons(regions, records["length"].astype(np.int64))
        if int(footprints.lengths.sum()) != len(regions):  # the statement's promise
            raise RuntimeError(f"{instrument}: candidate keys and polygons do not line up")
        kept = records[query.matching(footprints)]
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
