"""Exact region queries of a loaded catalog: ``reg.catalog(NAME).cone(...)`` and friends.

A query is one SQL statement: the region's pixel ranges (see :mod:`.positions`) are joined
with the catalog's ``skyreg_pix`` B-tree, one index range scan each, over a table clustered by
that column. Cones are tested exactly in SQL (squared chord between the stored unit vector
and the circle's centre against sphgeom's squared chord length — the same IEEE operations as
sphgeom's own ``Circle.contains``), so only the answer crosses the wire. Polygons and other
sphgeom regions fetch the candidates with their unit vectors and keep those the region
contains (sphgeom's vectorised ``contains``). Either way the answer holds exactly the rows
inside the region, and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from lsst.sphgeom import Circle, Region
from psycopg import sql

from skyreg.catalogs import crossmatch, positions
from skyreg.catalogs.array_params import Int8Array, install
from skyreg.catalogs.store import (
    PIXEL_COLUMN,
    X_COLUMN,
    Y_COLUMN,
    Z_COLUMN,
    CatalogError,
    CatalogInfo,
)
from skyreg.db.connection import ReadConnection
from skyreg.geometry.query_regions import make_query_region


class Level2Catalog:
    """One loaded catalog, queried through a registry's read connection.

    Results are pandas DataFrames sorted by the catalog's id (cone, polygon, region) or by
    input row and separation (:meth:`near`), holding the id column first and then the
    requested ``columns`` (all of the catalog's when None). For an astropy Table use
    ``astropy.table.Table.from_pandas(frame)``.
    """

    def __init__(self, reads: ReadConnection, info: CatalogInfo) -> None:
        self._reads = reads
        self.info = info
        install(reads)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def columns(self) -> tuple[str, ...]:
        """The catalog's columns, in file order."""
        return self.info.column_names

    def __len__(self) -> int:
        return self.info.row_count

    def __repr__(self) -> str:
        return (f"<Level2Catalog {self.info.name!r}: {self.info.row_count} rows, "
                f"{len(self.info.columns)} columns>")

    # -- region queries -------------------------------------------------------------------------

    def cone(self, ra: Any, dec: Any = None, radius: Any = None, *,
             columns: Sequence[str] | None = None, limit: int | None = None) -> pd.DataFrame:
        """Rows within ``radius`` of (``ra``, ``dec``); degrees or astropy quantities.

        ``cone(SkyCoord, radius)`` works too. ``limit`` keeps the first rows by id (the
        web service asks for one more than it may return, to tell an overflow).
        """
        value = (ra, dec) if radius is None else (ra, dec, radius)
        query = make_query_region(cone=value)
        assert query is not None
        circle = query.region
        assert isinstance(circle, Circle)
        return self._cone(circle, self.info.check_columns(columns), _limit(limit))

    def polygon(self, vertices: Any, *, columns: Sequence[str] | None = None,
                limit: int | None = None) -> pd.DataFrame:
        """Rows inside a convex polygon given as [(ra, dec), ...] or a SkyCoord of vertices."""
        query = make_query_region(polygon=vertices)
        assert query is not None
        return self._contained(query.region, self.info.check_columns(columns), _limit(limit))

    def region(self, region: Region, *, columns: Sequence[str] | None = None,
               limit: int | None = None) -> pd.DataFrame:
        """Rows inside any ``lsst.sphgeom`` region (Circle, ConvexPolygon, Box, Ellipse)."""
        query = make_query_region(region=region)
        assert query is not None
        wanted = self.info.check_columns(columns)
        if isinstance(region, Circle):
            return self._cone(region, wanted, _limit(limit))
        return self._contained(query.region, wanted, _limit(limit))

    def near(self, targets: Any, radius: Any, *, nearest: bool = True,
             columns: Sequence[str] = (), ra: str = "ra", dec: str = "dec") -> pd.DataFrame:
        """Positional cross-match of many positions against the catalog.

        ``targets``: a DataFrame (columns ``ra``/``dec``, or as named), an astropy SkyCoord,
        or a pair of arrays (ra, dec) in degrees. ``radius``: degrees or an astropy
        quantity (at most 7°). With ``nearest=True`` each target gets its closest row within
        the radius (ties: smallest id), with ``nearest=False`` every row within it. The
        answer has the columns ``input`` (the target's index label, or position), the
        catalog's id, ``separation_arcsec`` and the requested ``columns``.
        """
        wanted = self.info.check_columns(columns)
        return crossmatch.near(self._reads, self.info, targets, radius, nearest=nearest,
                               columns=wanted, ra=ra, dec=dec)

    # -- internals ------------------------------------------------------------------------------

    def _cone(self, circle: Circle, columns: tuple[str, ...], limit: int | None
              ) -> pd.DataFrame:
        starts, ends = positions.cone_ranges(circle)
        centre = circle.getCenter()
        statement = _cone_sql(self.info, columns, limit is not None)
        params: dict[str, Any] = {
            "lo": Int8Array(starts), "hi": Int8Array(ends), "cx": centre.x(), "cy": centre.y(),
            "cz": centre.z(), "d2": circle.getSquaredChordLength()}
        if limit is not None:
            params["limit"] = limit
        rows = self._reads.fetch(statement, params)
        return frame(rows, columns, self.info)

    def _contained(self, region: Region, columns: tuple[str, ...], limit: int | None
                   ) -> pd.DataFrame:
        starts, ends = positions.region_ranges(region)
        rows = self._reads.fetch(_candidates_sql(self.info, columns),
                                 {"lo": Int8Array(starts), "hi": Int8Array(ends)})
        if rows:
            xyz = np.array([row[-3:] for row in rows], dtype=np.float64)
            inside = np.asarray(region.contains(xyz[:, 0], xyz[:, 1], xyz[:, 2]), dtype=bool)
            rows = [row[:-3] for row, keep in zip(rows, inside, strict=True) if keep]
        if limit is not None:
            rows = rows[:limit]
        return frame(rows, columns, self.info)


def _limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
        raise CatalogError(f"limit: expected a non-negative integer, got {limit!r}")
    return int(limit)


#: numpy types of stored column types, for typed (also empty) result frames.
_DTYPES = {"smallint": "int16", "integer": "int32", "bigint": "int64", "real": "float32",
           "double precision": "float64", "boolean": "bool"}


def frame(rows: list[tuple[Any, ...]], columns: Sequence[str], info: CatalogInfo
          ) -> pd.DataFrame:
    """A DataFrame of result rows, column by column (pandas' ``from_records`` costs ~1.5 ms
    more for a small answer), numbers in their stored width; NULL integers make the column
    float (NaN), NULL texts are None."""
    if not rows:
        # Most small cones are empty: a shallow copy of a cached empty frame costs ~15 µs of
        # CPU where building one costs ~220 µs (pandas' column index and block checks).
        return _empty_frame(info, tuple(columns)).copy(deep=False)
    types = info.column_types
    data: dict[str, Any] = {}
    values = list(zip(*rows, strict=True))
    for name, column in zip(columns, values, strict=True):
        dtype = _DTYPES.get(types.get(name, ""))
        if dtype is None:
            array = np.empty(len(column), dtype=object)
            array[:] = column
            data[name] = array
        elif None in column:
            data[name] = np.array([np.nan if v is None else v for v in column],
                                  dtype="float32" if dtype == "float32" else "float64")
        else:
            data[name] = np.array(column, dtype=dtype)
    # From numpy arrays, without copies: pandas' per-Series construction costs ~1 ms here.
    return pd.DataFrame(data, copy=False)


@lru_cache(maxsize=256)
def _empty_frame(info: CatalogInfo, columns: tuple[str, ...]) -> pd.DataFrame:
    """The typed empty answer (never handed out itself: callers get a shallow copy)."""
    types = info.column_types
    return pd.DataFrame({name: np.empty(0, dtype=_DTYPES.get(types.get(name, ""), object))
                         for name in columns})


def _selected(columns: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(n)) for n in columns)


def _ranges_join(info: CatalogInfo) -> sql.Composed:
    """The rows of the bound pixel ranges: one ``skyreg_pix`` index range scan per range.

    A LATERAL subquery kept apart by ``OFFSET 0``, because a plain join leaves the plan to
    estimates the planner cannot make (the ranges come from arrays): with ``ORDER BY`` id it
    chose to walk the whole primary key in id order and test every row — 0.4 s for a 0.1°
    cone on 1 M rows, against ~1 ms for the range scans, and it did so for ~10% of cones.
    """
    return sql.SQL(
        "FROM unnest(%(lo)s::int8[], %(hi)s::int8[]) AS r(lo, hi) "
        "CROSS JOIN LATERAL (SELECT * FROM {t} AS t WHERE t.{pix} >= r.lo AND t.{pix} < r.hi "
        "OFFSET 0) AS c").format(t=info.table_sql(), pix=sql.Identifier(PIXEL_COLUMN))


@lru_cache(maxsize=256)
def _cone_sql(info: CatalogInfo, columns: tuple[str, ...], limited: bool) -> str:
    x, y, z = (sql.Identifier(n) for n in (X_COLUMN, Y_COLUMN, Z_COLUMN))
    chord = positions.squared_chord_sql(
        [sql.SQL("c.{}").format(n) for n in (x, y, z)],
        [sql.Placeholder(n) for n in ("cx", "cy", "cz")])
    statement = sql.SQL(
        "SELECT {cols} {join} WHERE {chord} <= %(d2)s ORDER BY c.{id}{limit}").format(
            cols=_selected(columns), join=_ranges_join(info), chord=chord,
            id=sql.Identifier(info.id_column),
            limit=sql.SQL(" LIMIT %(limit)s" if limited else ""))
    return statement.as_string(None)


@lru_cache(maxsize=256)
def _candidates_sql(info: CatalogInfo, columns: tuple[str, ...]) -> str:
    extra = [X_COLUMN, Y_COLUMN, Z_COLUMN]
    statement = sql.SQL("SELECT {cols} {join} ORDER BY c.{id}").format(
        cols=_selected([*columns, *extra]), join=_ranges_join(info),
        id=sql.Identifier(info.id_column))
    return statement.as_string(None)
