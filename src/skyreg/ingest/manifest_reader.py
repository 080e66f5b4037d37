"""Read a survey manifest directory (format v1) and check everything that needs no geometry.

Output is plain Arrow tables with canonical column types (int64, float64, string,
list<float64>), plus the JSON documents. Every problem is recorded with its file, row (counted
from 0, as pyarrow and pandas count) and field; nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from skyreg.errors import InputError
from skyreg.geometry.polygons import wrap_ra
from skyreg.ingest.problems import Problems

FORMAT_VERSION = 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MAX = 2**63 - 1
Kind = Literal["int", "float", "str", "floats"]

_ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
    "floats": pa.list_(pa.float64()),
}

# (column, kind, required) per file, as the format specifies.
DETECTOR_COLUMNS: list[tuple[str, Kind, bool]] = [
    ("detector", "int", True), ("full_name", "str", True), ("raft", "str", True),
    ("name_in_raft", "str", True), ("purpose", "str", True), ("fp_x_min", "float", False),
    ("fp_x_max", "float", False), ("fp_y_min", "float", False), ("fp_y_max", "float", False),
]
VISIT_COLUMNS: list[tuple[str, Kind, bool]] = [
    ("instrument", "str", True), ("visit", "int", True), ("day_obs", "int", True),
    ("seq_num", "int", True), ("band", "str", True), ("physical_filter", "str", True),
    ("ra", "float", True), ("dec", "float", True), ("rot_deg", "float", True),
    ("exposure_time", "float", True), ("mjd_tai_start", "float", True),
    ("mjd_tai_end", "float", True), ("region_ra", "floats", True),
    ("region_dec", "floats", True),
]
CCD_COLUMNS: list[tuple[str, Kind, bool]] = [
    ("instrument", "str", True), ("visit", "int", True), ("detector", "int", True),
    ("ra", "floats", True), ("dec", "floats", True),
    # Optional file archive columns (skyreg's extension; readers of the format ignore them).
    ("uri", "str", False), ("dataset_type", "str", False), ("hdu", "int", False),
    ("format", "str", False), ("size_bytes", "int", False), ("checksum", "str", False),
]
TRACT_COLUMNS: list[tuple[str, Kind, bool]] = [
    ("skymap", "str", True), ("tract", "int", True), ("ra_center", "float", True),
    ("dec_center", "float", True), ("inner_ra", "floats", True), ("inner_dec", "floats", True),
    ("outer_ra", "floats", True), ("outer_dec", "floats", True), ("ring", "int", False),
]
PATCH_COLUMNS: list[tuple[str, Kind, bool]] = [
    ("skymap", "str", True), ("tract", "int", True), ("patch", "int", True),
    ("cell_x", "int", True), ("cell_y", "int", True), ("inner_ra", "floats", True),
    ("inner_dec", "floats", True), ("outer_ra", "floats", True), ("outer_dec", "floats", True),
]

DETECTORS_FILE = "detectors.parquet"
VISITS_FILE = "visits.parquet"
CCDS_FILE = "visit_detector_regions.parquet"
TRACTS_FILE = "tracts.parquet"
PATCHES_FILE = "patches.parquet"


@dataclass
class Manifest:
    """The checked content of one manifest directory; absent files are None."""

    root: Path
    provenance: dict[str, Any]
    instrument: dict[str, Any] | None
    detectors: pa.Table | None
    visits: pa.Table | None
    ccds: pa.Table | None
    skymap: dict[str, Any] | None
    tracts: pa.Table | None
    patches: pa.Table | None


def _read_json(path: Path, problems: Problems) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        problems.add(path.name, f"not readable as JSON: {err}")
        return None
    if not isinstance(data, dict):
        problems.add(path.name, "expected a JSON object at the top level")
        return None
    return data


def _json_field(doc: dict[str, Any], file: str, key: str, kind: type, problems: Problems,
                *, required: bool = True) -> Any:
    value = doc.get(key)
    if value is None:
        if required:
            problems.add(file, "missing key", field=key)
        return None
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is list:
        ok = ok and all(isinstance(item, str) for item in value)
    if not ok:
        expected = "list of strings" if kind is list else kind.__name__
        problems.add(file, f"expected {expected}, got {value!r}", field=key)
        return None
    return value


def _canonical(column: pa.ChunkedArray, kind: Kind) -> pa.ChunkedArray:
    """Cast a column to its canonical type; raises pa.ArrowInvalid/NotImplemented if it can't."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if kind == "int" and not pa.types.is_integer(column.type):
        raise pa.ArrowInvalid(f"expected an integer column, got {column.type}")
    if kind == "float" and not (pa.types.is_floating(column.type)
                                or pa.types.is_integer(column.type)):
        raise pa.ArrowInvalid(f"expected a floating-point column, got {column.type}")
    if kind == "str" and not (pa.types.is_string(column.type)
                              or pa.types.is_large_string(column.type)):
        raise pa.ArrowInvalid(f"expected a string column, got {column.type}")
    if kind == "floats" and not (pa.types.is_list(column.type)
                                 or pa.types.is_large_list(column.type)):
        raise pa.ArrowInvalid(f"expected a list of numbers, got {column.type}")
    return column.cast(_ARROW_TYPES[kind])


def _read_parquet(path: Path, columns: list[tuple[str, Kind, bool]],
                  problems: Problems) -> pa.Table | None:
    """Read the known columns of one file with canonical types; None if absent or unusable."""
    if not path.exists():
        return None
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as err:
        problems.add(path.name, f"not a readable Parquet file: {err}")
        return None
    present = set(schema.names)
    missing = [name for name, _, required in columns if required and name not in present]
    for name in missing:
        problems.add(path.name, "missing column", field=name)
    if missing:
        return None
    wanted = [(name, kind) for name, kind, _ in columns if name in present]
    try:
        table = pq.read_table(path, columns=[name for name, _ in wanted])
    except (OSError, pa.ArrowException) as err:
        problems.add(path.name, f"not a readable Parquet file: {err}")
        return None
    arrays, names = [], []
    for name, kind in wanted:
        try:
            column = _canonical(table.column(name), kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            problems.add(path.name, str(err).splitlines()[0], field=name)
            continue
        required = any(n == name and req for n, _, req in columns)
        if required and column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            problems.add(path.name, "missing value (null)", row=row, field=name)
            continue
        arrays.append(column)
        names.append(name)
    if len(names) != len(wanted):
        return None
    return pa.table(arrays, names=names)


def _verify_checksums(root: Path, files: Any, problems: Problems) -> None:
    if files is None:
        return
    if not isinstance(files, dict):
        problems.add("manifest.json", "expected an object {file name: sha256}", field="files")
        return
    for name, expected in files.items():
        path = root / name
        if not isinstance(expected, str):
            problems.add("manifest.json", f"checksum of {name} is not a string", field="files")
            continue
        digest = hashlib.sha256()
        try:
            with path.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
        except OSError as err:
            problems.add(name, f"listed in manifest.json but not readable: {err.strerror}")
            continue
        if digest.hexdigest() != expected.lower():
            problems.add(name, f"sha256 checksum mismatch: manifest.json says {expected}, "
                         f"file has {digest.hexdigest()}")


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _row_of(mask: np.ndarray[Any, Any]) -> int | None:
    rows = np.flatnonzero(mask)
    return int(rows[0]) if rows.size else None


def _check_range(table: pa.Table, file: str, field: str, low: float, high: float,
                 problems: Problems, *, high_inclusive: bool = True) -> None:
    values = table.column(field).to_numpy()
    bad = ~np.isfinite(values) | (values < low)
    bad |= (values > high) if high_inclusive else (values >= high)
    row = _row_of(bad)
    if row is not None:
        close = "]" if high_inclusive else ")"
        problems.add(file, f"value {values[row]} outside [{low}, {high}{close} "
                     f"({_rows(int(bad.sum()))})", row=row, field=field)


def _check_ints(table: pa.Table, file: str, field: str, low: int, high: int,
                problems: Problems) -> None:
    """Integers (nulls allowed) within [low, high]: the range of the column they are stored in.

    The binary COPY writes a 32-bit column from 32-bit values, so a larger id would otherwise
    be stored wrapped round.
    """
    if field not in table.column_names:
        return
    column = table.column(field)
    bad = pc.fill_null(pc.or_(pc.less(column, low), pc.greater(column, high)), False)
    row = _row_of(bad.to_numpy(zero_copy_only=False))
    if row is not None:
        problems.add(file, f"value {column[row].as_py()} outside [{low}, {high}] "
                     f"({_rows(int(pc.sum(bad).as_py()))})", row=row, field=field)


def _check_text(table: pa.Table, file: str, problems: Problems) -> None:
    """No NUL characters in string columns: PostgreSQL text cannot hold one."""
    for field in table.column_names:
        column = table.column(field)
        if not pa.types.is_string(column.type):
            continue
        bad = pc.fill_null(pc.match_substring(column, "\x00"), False)
        row = _row_of(bad.to_numpy(zero_copy_only=False))
        if row is not None:
            problems.add(file, "text contains a NUL character, which PostgreSQL cannot store",
                         row=row, field=field)


def _check_json_text(value: Any, file: str, problems: Problems, path: str = "") -> None:
    """No NUL characters anywhere in a JSON document that is stored (keys included)."""
    if isinstance(value, str):
        if "\x00" in value:
            problems.add(file, "text contains a NUL character, which PostgreSQL cannot store",
                         field=path or None)
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                problems.add(file, "key contains a NUL character", field=name)
            _check_json_text(item, file, problems, name)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json_text(item, file, problems, f"{path}[{i}]")


def _wrap_ra(table: pa.Table, file: str, field: str, problems: Problems) -> pa.Table:
    """The table with ``field`` (an RA) wrapped into [0, 360) as the format says; NaN refused."""
    values = table.column(field).to_numpy()
    row = _row_of(~np.isfinite(values))
    if row is not None:
        problems.add(file, f"value {values[row]} is not finite", row=row, field=field)
        return table
    index = table.column_names.index(field)
    return table.set_column(index, field, pa.array(wrap_ra(values), pa.float64()))


def _check_unique(table: pa.Table, file: str, keys: list[str], problems: Problems) -> None:
    indexed = table.select(keys).append_column("_row", pa.array(np.arange(table.num_rows)))
    counts = indexed.group_by(keys).aggregate([("_row", "count"), ("_row", "max")])
    duplicated = counts.filter(pc.greater(counts.column("_row_count"), 1))
    if duplicated.num_rows:
        row = int(pc.min(duplicated.column("_row_max")).as_py())
        values = ", ".join(f"{k}={table.column(k)[row].as_py()!r}" for k in keys)
        problems.add(file, f"duplicate key ({values}); {duplicated.num_rows} keys repeated",
                     row=row, field=keys[-1])


def _check_references(table: pa.Table, file: str, keys: list[str], target: pa.Table | None,
                      target_file: str, problems: Problems) -> None:
    """Every key of ``table`` must exist in ``target`` (rows of ``file`` naming others)."""
    indexed = table.select(keys).append_column("_row", pa.array(np.arange(table.num_rows)))
    if target is None:
        unknown = indexed
    else:
        unknown = indexed.join(target.select(keys), keys=keys, join_type="left anti")
    if unknown.num_rows:
        row = int(pc.min(unknown.column("_row")).as_py())
        values = ", ".join(f"{k}={table.column(k)[row].as_py()!r}" for k in keys)
        problems.add(file, f"({values}) is not in {target_file} ({_rows(unknown.num_rows)})",
                     row=row, field=keys[-1])


def _check_name(table: pa.Table, file: str, field: str, expected: str | None,
                source: str, problems: Problems) -> None:
    if expected is None:
        return
    bad = pc.not_equal(table.column(field), expected).to_numpy(zero_copy_only=False)
    row = _row_of(bad)
    if row is not None:
        problems.add(file, f"{table.column(field)[row].as_py()!r} differs from {source} "
                     f"({expected!r})", row=row, field=field)


def read_manifest(root: Path) -> tuple[Manifest | None, Problems]:
    """Read and check a manifest directory; returns (manifest, problems found).

    The manifest is None when the files cannot be read as specified (missing or unreadable
    files, missing columns, wrong types); value problems are returned beside a manifest.
    """
    problems = Problems()
    if not root.is_dir():
        problems.add(str(root), "not a directory")
        return None, problems
    provenance = _read_json(root / "manifest.json", problems)
    if provenance is None:
        if not problems:
            problems.add("manifest.json", "file not found: a manifest directory needs one")
        return None, problems
    version = provenance.get("format_version")
    if version != FORMAT_VERSION:
        problems.add("manifest.json", f"unsupported format_version {version!r}; this skyreg "
                     f"reads version {FORMAT_VERSION}", field="format_version")
        return None, problems
    _verify_checksums(root, provenance.get("files"), problems)
    if problems:
        return None, problems

    instrument = _read_json(root / "instrument.json", problems)
    instrument_name = None
    bounds: dict[str, int | None] = {"detector_max": None, "visit_max": None}
    if instrument is not None:
        instrument_name = _json_field(instrument, "instrument.json", "name", str, problems)
        for key in bounds:
            bound = _json_field(instrument, "instrument.json", key, int, problems)
            if bound is not None and not 1 <= bound <= INT64_MAX:
                problems.add("instrument.json", f"{bound} is outside [1, {INT64_MAX}]",
                             field=key)
            else:
                bounds[key] = bound
        for key in ("bands", "physical_filters"):
            _json_field(instrument, "instrument.json", key, list, problems, required=False)
        _check_json_text(instrument, "instrument.json", problems)
    skymap = _read_json(root / "skymap.json", problems)
    skymap_name = None
    if skymap is not None:
        skymap_name = _json_field(skymap, "skymap.json", "name", str, problems)
        _json_field(skymap, "skymap.json", "kind", str, problems)
        _json_field(skymap, "skymap.json", "hash_sha1_hex", str, problems)
        _check_json_text(skymap, "skymap.json", problems)

    detectors = _read_parquet(root / DETECTORS_FILE, DETECTOR_COLUMNS, problems)
    visits = _read_parquet(root / VISITS_FILE, VISIT_COLUMNS, problems)
    ccds = _read_parquet(root / CCDS_FILE, CCD_COLUMNS, problems)
    tracts = _read_parquet(root / TRACTS_FILE, TRACT_COLUMNS, problems)
    patches = _read_parquet(root / PATCHES_FILE, PATCH_COLUMNS, problems)
    if problems:
        return None, problems

    for table, file in ((detectors, DETECTORS_FILE), (visits, VISITS_FILE), (ccds, CCDS_FILE),
                        (tracts, TRACTS_FILE), (patches, PATCHES_FILE)):
        if table is not None:
            _check_text(table, file, problems)
    if detectors is not None:
        if instrument is None:
            problems.add(DETECTORS_FILE, "detectors need instrument.json to say whose they are")
        elif bounds["detector_max"] is not None:
            _check_range(detectors, DETECTORS_FILE, "detector", 0, bounds["detector_max"],
                         problems, high_inclusive=False)
        _check_unique(detectors, DETECTORS_FILE, ["detector"], problems)
    if visits is not None:
        _check_name(visits, VISITS_FILE, "instrument", instrument_name, "instrument.json",
                    problems)
        if bounds["visit_max"] is not None:
            _check_range(visits, VISITS_FILE, "visit", 0, bounds["visit_max"], problems,
                         high_inclusive=False)
        visits = _wrap_ra(visits, VISITS_FILE, "ra", problems)
        _check_ints(visits, VISITS_FILE, "day_obs", 0, INT32_MAX, problems)
        _check_range(visits, VISITS_FILE, "dec", -90.0, 90.0, problems)
        _check_range(visits, VISITS_FILE, "rot_deg", -360.0, 360.0, problems)
        _check_range(visits, VISITS_FILE, "exposure_time", 0.0, 1e6, problems)
        _check_range(visits, VISITS_FILE, "mjd_tai_start", 0.0, 1e6, problems)
        _check_range(visits, VISITS_FILE, "mjd_tai_end", 0.0, 1e6, problems)
        start = visits.column("mjd_tai_start").to_numpy()
        row = _row_of(visits.column("mjd_tai_end").to_numpy() < start)
        if row is not None:
            problems.add(VISITS_FILE, "ends before it starts", row=row, field="mjd_tai_end")
        _check_unique(visits, VISITS_FILE, ["instrument", "visit"], problems)
    if ccds is not None:
        _check_references(ccds, CCDS_FILE, ["instrument", "visit"], visits, VISITS_FILE,
                          problems)
        if detectors is not None:
            _check_references(ccds, CCDS_FILE, ["detector"], detectors, DETECTORS_FILE,
                              problems)
        _check_unique(ccds, CCDS_FILE, ["instrument", "visit", "detector"], problems)
        _check_ints(ccds, CCDS_FILE, "hdu", 0, INT32_MAX, problems)
        _check_ints(ccds, CCDS_FILE, "size_bytes", 0, INT64_MAX, problems)
    if tracts is not None:
        _check_name(tracts, TRACTS_FILE, "skymap", skymap_name, "skymap.json", problems)
        if skymap is None:
            problems.add(TRACTS_FILE, "tracts need skymap.json to define their sky map")
        tracts = _wrap_ra(tracts, TRACTS_FILE, "ra_center", problems)
        _check_ints(tracts, TRACTS_FILE, "ring", INT32_MIN, INT32_MAX, problems)
        _check_range(tracts, TRACTS_FILE, "dec_center", -90.0, 90.0, problems)
        _check_unique(tracts, TRACTS_FILE, ["skymap", "tract"], problems)
    if patches is not None:
        _check_name(patches, PATCHES_FILE, "skymap", skymap_name, "skymap.json", problems)
        _check_references(patches, PATCHES_FILE, ["skymap", "tract"], tracts, TRACTS_FILE,
                          problems)
        _check_unique(patches, PATCHES_FILE, ["skymap", "tract", "patch"], problems)
        for field in ("cell_x", "cell_y"):
            _check_ints(patches, PATCHES_FILE, field, INT32_MIN, INT32_MAX, problems)
    # Value problems do not stop here: the caller goes on to check the footprints so that one
    # run reports everything, and refuses to write anything while any problem is recorded.
    manifest = Manifest(root, provenance, instrument, detectors, visits, ccds, skymap, tracts,
                        patches)
    return manifest, problems


def skymap_parameters(skymap: dict[str, Any]) -> dict[str, Any]:
    """The definition parameters of a sky map: everything but the identifying keys."""
    return {k: v for k, v in skymap.items() if k not in ("name", "kind", "hash_sha1_hex")}


__all__ = ["InputError", "Manifest", "read_manifest", "skymap_parameters"]
