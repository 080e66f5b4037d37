"""Small Level-1 data sets for the APDB tests: one CCD's frames, a seeded store."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from skyreg.synthetic.apdb_catalogs import Box, dia_forced_sources, dia_objects, dia_sources


@dataclass
class CcdFrames:
    """What AP would store for one CCD of one visit."""

    visit: int
    detector: int
    time: float
    objects: pd.DataFrame
    sources: pd.DataFrame
    forced: pd.DataFrame


def ccd_frames(visit: int, detector: int, time: float, object_ids: np.ndarray,
               ra: np.ndarray, dec: np.ndarray, seed: int = 0,
               source_fraction: float = 0.5) -> CcdFrames:
    """Frames of one CCD: new versions of ``object_ids``, a source for some, forced for all."""
    rng = np.random.default_rng(seed)
    objects = dia_objects(object_ids, ra, dec, rng)
    with_source = rng.random(len(object_ids)) < source_fraction
    count = int(with_source.sum())
    base = visit * 1_000_000 + detector * 1000
    sources = dia_sources(np.arange(base, base + count, dtype=np.int64),
                          object_ids[with_source], ra[with_source], dec[with_source], visit,
                          detector, time, rng)
    forced = dia_forced_sources(np.arange(base, base + len(object_ids), dtype=np.int64),
                                object_ids, ra, dec, visit, detector, time, rng)
    return CcdFrames(visit, detector, time, objects, sources, forced)


def random_objects(count: int, box: Box, seed: int, first_id: int = 1
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ra, dec = box.sample(count, rng)
    return np.arange(first_id, first_id + count, dtype=np.int64), ra, dec
