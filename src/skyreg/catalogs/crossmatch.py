"""Bulk positional cross-match: many positions against a catalog in one statement.

The targets' neighbourhood pixel ranges (:func:`.positions.neighbourhood_ranges`, computed
for all targets at once with numpy) are sent as arrays and joined with the catalog's pixel
B-tree; the server computes the squared chord to each candidate and keeps those within the
radius. No temporary table, so the read-only service roles can cross-match too. Choosing the
nearest match per target is a sort on the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from psycopg import sql

from skyreg.catalogs import positions
from skyreg.catalogs.array_params import Float8Array, Int8Array
from skyreg.catalogs.store import (
    PIXEL_COLUMN,
    X_COLUMN,
    Y_COLUMN,
    Z_COLUMN,
    CatalogError,
    CatalogInfo,
)
from skyreg.db.connection import ReadConnection

#: Largest cross-match radius: pixels of HEALPix order 0 are ~58.6° wide, the
#: neighbourhood argument needs eight radii per pixel.
MAX_RADIUS_DEG = 7.0


def target_positions(targets: Any, ra: str = "ra", dec: str = "dec"
                     ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], pd.Index]:
    """RA, Dec (degrees, float64) and index labels of the targets of a cross-match."""
    ra_values: Any
    dec_values: Any
    if isinstance(targets, pd.DataFrame):
        for column in (ra, dec):
            if column not in targets.columns:
                raise CatalogError(f"targets: the DataFrame has no column {column!r} (name "
                                   "the position columns with ra=..., dec=...)")
        ra_values, dec_values, labels = targets[ra], targets[dec], targets.index
    elif hasattr(targets, "icrs") and hasattr(targets, "ra"):
        coord = targets.icrs
        ra_values, dec_values = np.atleast_1d(coord.ra.deg), np.atleast_1d(coord.dec.deg)
        labels = pd.RangeIndex(len(ra_values))
    else:
        try:
            ra_values, dec_values = targets
        except (TypeError, ValueError) as err:
            raise CatalogError("targets: expected a DataFrame, a SkyCoord or (ra, dec) "
                               "arrays") from err
        labels = None
    try:
        ra_array = np.atleast_1d(np.asarray(ra_values, dtype=np.float64))
        dec_array = np.atleast_1d(np.asarray(dec_values, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise CatalogError(f"targets: positions must be numbers in degrees ({err})") from err
    if ra_array.shape != dec_array.shape or ra_array.ndim != 1:
        raise CatalogError("targets: ra and dec must be 1-D and of the same length")
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(ra_array) | ~np.isfinite(dec_array) | (np.abs(dec_array) > 90.0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise CatalogError(f"targets: row {row}: ({ra_array[row]}, {dec_array[row]}) is not a "
                           "position in degrees")
    return ra_array, dec_array, labels if labels is not None else pd.RangeIndex(len(ra_array))


def radius_degrees(radius: Any) -> float:
    if hasattr(radius, "unit") and hasattr(radius, "to_value"):
        value = float(radius.to_value("deg"))
    else:
        try:
            value = float(radius)
        except (TypeError, ValueError) as err:
            raise CatalogError(f"radius: expected degrees, got {radius!r}") from err
    if not 0.0 < value <= MAX_RADIUS_DEG:
        raise CatalogError(f"radius: {value}° is outside (0, {MAX_RADIUS_DEG}] degrees")
    return value


def near(reads: ReadConnection, info: CatalogInfo, targets: Any, radius: Any, *,
         nearest: bool, columns: Sequence[str], ra: str, dec: str) -> pd.DataFrame:
    """See :meth:`skyreg.catalogs.level2_query.Level2Catalog.near`."""
    ra_deg, dec_deg, labels = target_positions(targets, ra, dec)
    radius_deg = radius_degrees(radius)
    out_columns = ["input", info.id_column, "separation_arcsec",
                   *(c for c in columns if c != info.id_column)]
    if len(ra_deg) == 0:
        return pd.DataFrame({c: [] for c in out_columns})
    point, starts, ends = positions.neighbourhood_ranges(ra_deg, dec_deg, radius_deg)
    # In pixel order, the index probes walk the B-tree (and the clustered table) forwards.
    by_pixel = np.argsort(starts, kind="stable")
    point, starts, ends = point[by_pixel], starts[by_pixel], ends[by_pixel]
    x, y, z = positions.unit_vectors(ra_deg, dec_deg)
    params = {"i": Int8Array(point), "lo": Int8Array(starts), "hi": Int8Array(ends),
              "x": Float8Array(x[point]), "y": Float8Array(y[point]), "z": Float8Array(z[point]),
              "d2": positions.chord2_of_radius(radius_deg)}
    rows = reads.fetch(_match_sql(info, tuple(columns)), params)
    if not rows:
        return pd.DataFrame({c: [] for c in out_columns})
    index = np.array([row[0] for row in rows], dtype=np.int64)
    d2 = np.array([row[1] for row in rows], dtype=np.float64)
    ids = [row[2] for row in rows]
    rank = np.lexsort((np.arange(len(rows)), d2, index))  # rows come sorted by id per target
    if nearest:
        first = np.ones(len(rank), dtype=bool)
        first[1:] = index[rank][1:] != index[rank][:-1]
        rank = rank[first]
    data: dict[str, Any] = {"input": labels[index[rank]], info.id_column: [ids[k] for k in rank],
                            "separation_arcsec": positions.separation_arcsec(d2[rank])}
    for offset, column in enumerate((c for c in columns if c != info.id_column), start=3):
        data[column] = [rows[k][offset] for k in rank]
    return pd.DataFrame(data, columns=out_columns)


@lru_cache(maxsize=64)
def _match_sql(info: CatalogInfo, columns: tuple[str, ...]) -> str:
    x, y, z = (sql.Identifier(n) for n in (X_COLUMN, Y_COLUMN, Z_COLUMN))
    extra = [c for c in columns if c != info.id_column]
    selected = sql.SQL("").join(sql.SQL(", m.{}").format(sql.Identifier(n)) for n in extra)
    inner = sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(n))
                               for n in [info.id_column, *extra])
    statement = sql.SQL(
        "SELECT q.i, m.skyreg_d2, m.{id}{selected} FROM unnest(%(i)s::int8[], %(lo)s::int8[], "
        "%(hi)s::int8[], %(x)s::float8[], %(y)s::float8[], %(z)s::float8[]) "
        "AS q(i, lo, hi, x, y, z) CROSS JOIN LATERAL ("
        "SELECT {inner}, {chord} AS skyreg_d2 FROM {t} AS c "
        "WHERE c.{pix} >= q.lo AND c.{pix} < q.hi) AS m "
        "WHERE m.skyreg_d2 <= %(d2)s ORDER BY q.i, m.{id}").format(
            id=sql.Identifier(info.id_column), selected=selected, inner=inner,
            chord=positions.squared_chord_sql(
                [sql.SQL("c.{}").format(n) for n in (x, y, z)],
                [sql.SQL("q.{}").format(sql.Identifier(n)) for n in ("x", "y", "z")]),
            t=info.table_sql(), pix=sql.Identifier(PIXEL_COLUMN))
    return statement.as_string(None)
