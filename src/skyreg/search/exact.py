"""Region → pixel ranges → candidates → exact test: the step every spatial search shares.

The pixel index is conservative (a footprint is indexed under every pixel it may touch), so
its candidates are a superset; the exact sphgeom test on each candidate's polygon (the last
column of every candidate statement) decides. Candidates leave this module unfiltered only
through :func:`candidate_rows`, for the columnar search that tests them in bulk.
"""

from __future__ import annotations

from typing import Any

from skyreg.db.connection import ReadConnection
from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.query_regions import QueryRegion

#: Upper bound on pixel ranges per query: huge regions get a coarser (still conservative) cover.
MAX_QUERY_RANGES = 64


def exact_rows(conn: ReadConnection, scheme: PixelScheme, sql: str, query: QueryRegion,
               params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run candidate statement ``sql`` for the region's pixels; keep exact matches only."""
    return query.keep_matching(candidate_rows(conn, scheme, sql, query, params))


def candidate_rows(conn: ReadConnection, scheme: PixelScheme, sql: str, query: QueryRegion,
                   params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of candidate statement ``sql`` for the pixel ranges of the region (none for a
    region that covers no pixel), not yet tested: for callers that test them themselves."""
    ranges = scheme.ranges(query.region, MAX_QUERY_RANGES)
    if not ranges:
        return []
    lo, hi = zip(*ranges, strict=True)
    return conn.fetch(sql, {**params, "lo": list(lo), "hi": list(hi)})
