"""Parquet object catalogs for the catalog tests: full-sky points plus dense clusters at the
awkward places (RA 0/360, both poles), many column types, NULLs in some columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: Cluster centres: a few hundred points within a few arcsec of each.
CLUSTERS = ((0.0, 0.0), (359.9999, 10.0), (45.0, 89.9999), (200.0, -89.9999), (120.0, 30.0))


def catalog_table(rows: int = 20_000, seed: int = 7, first_id: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, rows)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, rows)))
    per = 300 if rows >= 2_000 else 0
    for k, (cra, cdec) in enumerate(CLUSTERS):
        sl = slice(k * per, (k + 1) * per)
        spread = rng.uniform(0, 5.0 / 3600.0, per)
        angle = rng.uniform(0, 2 * np.pi, per)
        dec[sl] = np.clip(cdec + spread * np.sin(angle), -90.0, 90.0)
        ra[sl] = np.mod(cra + spread * np.cos(angle) / max(np.cos(np.radians(cdec)), 1e-3),
                        360.0)
    if per:
        ra[per * len(CLUSTERS)] = 0.0
        ra[per * len(CLUSTERS) + 1] = 360.0 - 1e-12
        dec[per * len(CLUSTERS) + 2] = 90.0
        dec[per * len(CLUSTERS) + 3] = -90.0
    ids = np.arange(first_id, first_id + rows, dtype=np.int64)
    names = pa.array([None if i % 11 == 0 else f"obj-{i}" for i in ids], type=pa.string())
    flux = rng.normal(100.0, 10.0, rows).astype(np.float32)
    flux_err = pa.array(np.abs(rng.normal(1.0, 0.1, rows)),
                        mask=(ids % 13 == 0))  # float64 with NULLs
    return pa.table({
        "objectId": ids,
        "coord_ra": ra,
        "coord_dec": dec,
        "g_psfFlux": flux,
        "g_psfFluxErr": flux_err,
        "nChild": pa.array((ids % 5).astype(np.int32), mask=(ids % 17 == 0)),
        "band_index": (ids % 6).astype(np.int16),
        "tiny": (ids % 200).astype(np.uint8),
        "refExtendedness": (ids % 2 == 0),
        "name": names,
        "obs_time": pa.array((1_700_000_000_000_000 + ids * 1_000_000).astype("int64"),
                             type=pa.timestamp("us")),
        "obs_date": pa.array((19_000 + ids % 100).astype(np.int32), type=pa.date32()),
    })


def write_catalog(path: Path, table: pa.Table, row_group_size: int = 4_096) -> Path:
    pq.write_table(table, path, row_group_size=row_group_size)
    return path
