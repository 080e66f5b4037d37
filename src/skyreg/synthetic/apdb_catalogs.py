"""Synthetic Level-1 catalogs (DiaObject, DiaSource, DiaForcedSource frames), column-wise.

Every column of Rubin's schema gets a value (random floats, small counts, a band letter), so
rows are as wide as real ones; positions are uniform in a box of RA/Dec. Used by the tests
and by ``benchmarks/apdb_benchmark.py``, which generates millions of rows: numpy only, no
per-row Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from skyreg.catalogs.apdb_frames import layout

BANDS = np.array(list("ugrizy"))


def _fill(name: str, count: int, rng: np.random.Generator,
          given: dict[str, npt.ArrayLike]) -> pd.DataFrame:
    """All columns of table ``name``: ``given`` ones as given, the others random."""
    spec = layout(name)
    columns: dict[str, npt.ArrayLike] = {}
    for column in spec.columns:
        if column in given:
            columns[column] = given[column]
            continue
        kind = spec.types[column]
        if column in ("validityEndMjdTai",):
            continue
        if pa.types.is_floating(kind):
            columns[column] = rng.normal(100.0, 10.0, count).astype(kind.to_pandas_dtype())
        elif pa.types.is_integer(kind):
            columns[column] = rng.integers(0, 100, count).astype(kind.to_pandas_dtype())
        elif pa.types.is_boolean(kind):
            columns[column] = rng.random(count) < 0.1
        elif column == "band":
            columns[column] = BANDS[rng.integers(0, 6, count)]
        elif pa.types.is_string(kind):
            columns[column] = np.full(count, "v1")
    return pd.DataFrame(columns)


@dataclass(frozen=True)
class Box:
    """An RA/Dec box in degrees (ra_min may exceed ra_max across RA 0)."""

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float

    def sample(self, count: int, rng: np.random.Generator
               ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Points uniform on the sphere within the box."""
        width = (self.ra_max - self.ra_min) % 360.0 or 360.0
        ra = (self.ra_min + rng.random(count) * width) % 360.0
        low, high = np.sin(np.radians([self.dec_min, self.dec_max]))
        dec = np.degrees(np.arcsin(low + rng.random(count) * (high - low)))
        return ra, dec


def dia_objects(ids: npt.NDArray[np.int64], ra: npt.ArrayLike, dec: npt.ArrayLike,
                rng: np.random.Generator, validity_start: npt.ArrayLike | None = None
                ) -> pd.DataFrame:
    """DiaObject rows of ``ids`` at the positions; ``validity_start`` for bulk loads."""
    given: dict[str, npt.ArrayLike] = {"diaObjectId": ids, "ra": ra, "dec": dec}
    if validity_start is not None:
        given["validityStartMjdTai"] = np.broadcast_to(validity_start, len(ids))
    frame = _fill("DiaObject", len(ids), rng, given)
    if validity_start is None:
        frame = frame.drop(columns=["validityStartMjdTai"])
    return frame


def dia_sources(ids: npt.NDArray[np.int64], object_ids: npt.NDArray[np.int64],
                ra: npt.ArrayLike, dec: npt.ArrayLike, visit: npt.ArrayLike,
                detector: npt.ArrayLike, mjd: npt.ArrayLike,
                rng: np.random.Generator) -> pd.DataFrame:
    """DiaSource rows (``diaSourceId`` = ``ids``) of the objects, at the times ``mjd``."""
    count = len(ids)
    return _fill("DiaSource", count, rng, {
        "diaSourceId": ids, "diaObjectId": object_ids, "ra": ra, "dec": dec,
        "visit": np.broadcast_to(visit, count), "detector": np.broadcast_to(detector, count),
        "midpointMjdTai": np.broadcast_to(mjd, count),
        "timeProcessedMjdTai": np.broadcast_to(mjd, count),
        "ssObjectId": np.zeros(count, dtype=np.int64)})


def dia_forced_sources(ids: npt.NDArray[np.int64], object_ids: npt.NDArray[np.int64],
                       ra: npt.ArrayLike, dec: npt.ArrayLike, visit: npt.ArrayLike,
                       detector: npt.ArrayLike, mjd: npt.ArrayLike,
                       rng: np.random.Generator) -> pd.DataFrame:
    """DiaForcedSource rows of the objects at one (visit, detector) each."""
    count = len(ids)
    return _fill("DiaForcedSource", count, rng, {
        "diaForcedSourceId": ids, "diaObjectId": object_ids, "ra": ra, "dec": dec,
        "visit": np.broadcast_to(visit, count), "detector": np.broadcast_to(detector, count),
        "midpointMjdTai": np.broadcast_to(mjd, count),
        "timeProcessedMjdTai": np.broadcast_to(mjd, count)})
