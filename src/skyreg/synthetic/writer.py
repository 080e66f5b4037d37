"""Low-level writers for the survey manifest directory (Parquet and JSON files).

The Arrow schemas below are the column contract of survey manifest format version 1; they are
spelled out once here so that every file the generator writes has exactly the documented names
and types, whatever numpy dtypes the geometry code happened to produce.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "DETECTORS_SCHEMA",
    "PATCHES_SCHEMA",
    "POLYGON",
    "TRACTS_SCHEMA",
    "VISITS_SCHEMA",
    "VISIT_DETECTOR_REGIONS_SCHEMA",
    "dictionary_column",
    "fixed_polygons",
    "ragged_polygons",
    "sha256_file",
    "write_json",
    "write_parquet",
]

POLYGON = pa.list_(pa.float64())
"""Type of a polygon coordinate column: one list of vertex coordinates per row."""

DETECTORS_SCHEMA = pa.schema(
    [
        ("detector", pa.int64()),
        ("full_name", pa.string()),
        ("raft", pa.string()),
        ("name_in_raft", pa.string()),
        ("purpose", pa.string()),
        ("fp_x_min", pa.float64()),
        ("fp_x_max", pa.float64()),
        ("fp_y_min", pa.float64()),
        ("fp_y_max", pa.float64()),
    ]
)

VISITS_SCHEMA = pa.schema(
    [
        ("instrument", pa.string()),
        ("visit", pa.int64()),
        ("day_obs", pa.int64()),
        ("seq_num", pa.int64()),
        ("band", pa.string()),
        ("physical_filter", pa.string()),
        ("ra", pa.float64()),
        ("dec", pa.float64()),
        ("rot_deg", pa.float64()),
        ("exposure_time", pa.float64()),
        ("mjd_tai_start", pa.float64()),
        ("mjd_tai_end", pa.float64()),
        ("region_ra", POLYGON),
        ("region_dec", POLYGON),
    ]
)

VISIT_DETECTOR_REGIONS_SCHEMA = pa.schema(
    [
        ("instrument", pa.dictionary(pa.int32(), pa.string())),
        ("visit", pa.int64()),
        ("detector", pa.int64()),
        ("ra", POLYGON),
        ("dec", POLYGON),
    ]
)

TRACTS_SCHEMA = pa.schema(
    [
        ("skymap", pa.string()),
        ("tract", pa.int64()),
        ("ra_center", pa.float64()),
        ("dec_center", pa.float64()),
        ("inner_ra", POLYGON),
        ("inner_dec", POLYGON),
        ("outer_ra", POLYGON),
        ("outer_dec", POLYGON),
        ("ring", pa.int32()),
    ]
)

PATCHES_SCHEMA = pa.schema(
    [
        ("skymap", pa.string()),
        ("tract", pa.int64()),
        ("patch", pa.int64()),
        ("cell_x", pa.int32()),
        ("cell_y", pa.int32()),
        ("inner_ra", POLYGON),
        ("inner_dec", POLYGON),
        ("outer_ra", POLYGON),
        ("outer_dec", POLYGON),
    ]
)


def fixed_polygons(coords: npt.NDArray[np.float64]) -> pa.ListArray:
    """List column from an ``(n_rows, n_vertices)`` array, without a Python loop per row."""
    n_rows, n_vert = coords.shape
    offsets = pa.array(np.arange(0, (n_rows + 1) * n_vert, n_vert, dtype=np.int32))
    values = pa.array(np.ascontiguousarray(coords, dtype=np.float64).ravel())
    return pa.ListArray.from_arrays(offsets, values, type=POLYGON)


def ragged_polygons(rows: Sequence[npt.NDArray[np.float64]]) -> pa.ListArray:
    """List column from per-row arrays of differing lengths (cap tracts have more vertices)."""
    lengths = np.array([len(r) for r in rows], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = np.concatenate(rows) if rows else np.zeros(0)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values), type=POLYGON)


def dictionary_column(value: str, n_rows: int) -> pa.DictionaryArray:
    """A column repeating one string, dictionary-encoded so it costs ~nothing per row."""
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n_rows, dtype=np.int32)), pa.array([value], type=pa.string())
    )


def write_parquet(path: Path, schema: pa.Schema, columns: Mapping[str, Any]) -> None:
    """Write one Parquet file with exactly ``schema``, casting each column to its type.

    Row groups are capped at 256k rows so readers can stream the biggest files in chunks.
    """
    arrays = []
    for field in schema:
        col = columns[field.name]
        arrays.append(col if isinstance(col, pa.Array) else pa.array(col, type=field.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    pq.write_table(table, path, compression="zstd", row_group_size=262_144)


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON with sorted keys, so identical content gives identical bytes.

    The file is written under a temporary name and renamed, so a reader never sees half a
    manifest.json (its presence marks the directory as complete).
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks to keep memory flat for big files."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
