"""Write survey manifests (format v1) from explicit footprints, for tests.

Unlike the synthetic survey generator, this lets a test choose every polygon (anywhere on the
sky, of any size) and plant any defect in any file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

Polygon = tuple[list[float], list[float]]  # (ra vertices, dec vertices), degrees


def box(ra: float, dec: float, half: float, angle: float = 0.0) -> Polygon:
    """A square-ish quadrilateral of half-size ``half`` degrees centred on (ra, dec).

    Built in the tangent plane at the centre and projected back, so it is convex anywhere,
    poles and RA 0/360 included.
    """
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    rot = np.radians(angle)
    rotation = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    xi, eta = np.radians(corners @ rotation.T).T
    ra0, dec0 = np.radians(ra), np.radians(dec)
    denom = np.cos(dec0) - eta * np.sin(dec0)
    ras = (ra0 + np.arctan2(xi, denom)) % (2 * np.pi)
    decs = np.arctan2(np.sin(dec0) + eta * np.cos(dec0), np.hypot(xi, denom))
    return [float(v) % 360.0 for v in np.degrees(ras)], [float(v) for v in np.degrees(decs)]


@dataclass
class ManifestSpec:
    """Content of a manifest; each list may be edited by a test before writing."""

    instrument: dict[str, Any] | None = field(default_factory=lambda: {
        "name": "TestCam", "detector_max": 1000, "visit_max": 10**12,
        "bands": ["g", "r"], "physical_filters": ["g_1", "r_1"]})
    detectors: list[dict[str, Any]] = field(default_factory=list)
    visits: list[dict[str, Any]] = field(default_factory=list)
    ccds: list[dict[str, Any]] = field(default_factory=list)
    skymap: dict[str, Any] | None = None
    tracts: list[dict[str, Any]] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)
    format_version: Any = 1
    checksums: bool = True


def survey_spec(ccd_polygons: Sequence[Polygon], *, per_visit: int = 10,
                tract_polygons: Sequence[Polygon] = (),
                patch_polygons: Sequence[Sequence[Polygon]] = ()) -> ManifestSpec:
    """A manifest with the given CCD footprints (``per_visit`` CCDs per visit), tracts and
    patches (``patch_polygons[i]`` are the patches of tract i; inner = outer)."""
    spec = ManifestSpec()
    spec.detectors = [{"detector": d, "full_name": f"D{d:03d}", "raft": "", "name_in_raft": "",
                       "purpose": "SCIENCE"} for d in range(per_visit)]
    n_visits = (len(ccd_polygons) + per_visit - 1) // per_visit
    for v in range(n_visits):
        members = ccd_polygons[v * per_visit:(v + 1) * per_visit]
        first = members[0]
        spec.visits.append({
            "instrument": "TestCam", "visit": 1000 + v, "day_obs": 20270101, "seq_num": v,
            "band": "gr"[v % 2], "physical_filter": "gr"[v % 2] + "_1",
            "ra": first[0][0], "dec": first[1][0], "rot_deg": 0.0, "exposure_time": 30.0,
            "mjd_tai_start": 61000.0 + v, "mjd_tai_end": 61000.0 + v + 30 / 86400,
            # A visit region needs no relation to its CCDs for the registry's purposes.
            "region_ra": first[0], "region_dec": first[1],
        })
        for d, (ra, dec) in enumerate(members):
            spec.ccds.append({"instrument": "TestCam", "visit": 1000 + v, "detector": d,
                              "ra": ra, "dec": dec})
    if tract_polygons:
        spec.skymap = {"name": "testmap", "kind": "discrete", "hash_sha1_hex": "ab" * 20,
                       "note": "made by tests"}
        for t, (ra, dec) in enumerate(tract_polygons):
            spec.tracts.append({"skymap": "testmap", "tract": t, "ra_center": ra[0],
                                "dec_center": dec[0], "inner_ra": ra, "inner_dec": dec,
                                "outer_ra": ra, "outer_dec": dec})
        for t, polygons in enumerate(patch_polygons):
            for p, (ra, dec) in enumerate(polygons):
                spec.patches.append({"skymap": "testmap", "tract": t, "patch": p,
                                     "cell_x": p, "cell_y": 0, "inner_ra": ra,
                                     "inner_dec": dec, "outer_ra": ra, "outer_dec": dec})
    return spec


_TYPES = {
    "detectors": {"detector": pa.int64()},
    "visits": {"visit": pa.int64(), "day_obs": pa.int64(), "seq_num": pa.int64()},
    "ccds": {"visit": pa.int64(), "detector": pa.int64()},
    "tracts": {"tract": pa.int64()},
    "patches": {"tract": pa.int64(), "patch": pa.int64(), "cell_x": pa.int32(),
                "cell_y": pa.int32()},
}
_FILES = {"detectors": "detectors.parquet", "visits": "visits.parquet",
          "ccds": "visit_detector_regions.parquet", "tracts": "tracts.parquet",
          "patches": "patches.parquet"}


def _table(kind: str, rows: list[dict[str, Any]]) -> pa.Table:
    columns: dict[str, list[Any]] = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, [])
    for row in rows:
        for key, values in columns.items():
            values.append(row.get(key))
    arrays = {}
    for key, values in columns.items():
        kind_type = _TYPES[kind].get(key)
        arrays[key] = pa.array(values, type=kind_type) if kind_type else pa.array(values)
    return pa.table(arrays)


def write_manifest(directory: Path, spec: ManifestSpec) -> Path:
    """Write the manifest; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    if spec.instrument is not None:
        (directory / "instrument.json").write_text(json.dumps(spec.instrument))
        written.append("instrument.json")
    if spec.skymap is not None:
        (directory / "skymap.json").write_text(json.dumps(spec.skymap))
        written.append("skymap.json")
    for kind, name in _FILES.items():
        rows = getattr(spec, kind)
        if rows:
            pq.write_table(_table(kind, rows), directory / name)
            written.append(name)
    manifest: dict[str, Any] = {"format_version": spec.format_version, "generator": "tests"}
    if spec.checksums:
        manifest["files"] = {name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
                             for name in written}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory
