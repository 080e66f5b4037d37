"""``skyreg ingest manifest``: read → validate → geometry → COPY/merge → report.

Nothing reaches the database before the whole manifest has been read and every footprint
validated, so bad input is refused with its complete list of problems and no transaction is
even opened.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg.types.json import Jsonb
from sqlalchemy import Engine

from skyreg.errors import InputError
from skyreg.geometry.pixelization import PixelScheme
from skyreg.ingest import manifest_reader as mr
from skyreg.ingest.footprints import (
    Footprints,
    PixelSets,
    add_uncontained,
    encode_column_pair,
    pixel_coverage,
)
from skyreg.ingest.loader import Batch, Reference, load
from skyreg.ingest.problems import Problems
from skyreg.ingest.report import IngestReport
from skyreg.schema import (
    ccd,
    ccd_dataset,
    ccd_pixel,
    dataset_type,
    detector,
    instrument,
    patch,
    patch_pixel,
    skymap,
    tract,
    tract_pixel,
    visit,
)

Progress = Callable[[str, int, int], None]


def _columns(table: pa.Table, names: list[str]) -> list[list[Any]]:
    return [table.column(name).to_pylist() if name in table.column_names
            else [None] * table.num_rows for name in names]


def _valid(footprints: Footprints | None) -> Footprints:
    """Footprints of a column pair whose problems were raised already, so never None here."""
    if footprints is None:
        raise RuntimeError("footprints used although their problems were not raised")
    return footprints


def _footprint_rows(footprints: Footprints) -> tuple[list[bytes], list[Any], list[Any]]:
    return footprints.encoded, footprints.ra, footprints.dec


def _ccd_files(table: pa.Table, pixels: PixelSets) -> Batch:
    """Archive rows for the CCDs whose ``uri`` is given (optional manifest columns).

    They are stored in the spatial order of their CCDs, so that a spatial search's file lookups
    read few pages.
    """
    has_file = pc.is_valid(table.column("uri"))
    with_file = table.filter(has_file)
    sort_key = pixels.first()[np.asarray(has_file.to_numpy(zero_copy_only=False), dtype=bool)]
    count = with_file.num_rows

    def column(name: str, default: Any) -> list[Any]:
        if name not in with_file.column_names:
            return [default] * count
        return [default if value is None else value
                for value in with_file.column(name).to_pylist()]

    rows = list(zip(column("dataset_type", "raw"), *_columns(
        with_file, ["instrument", "visit", "detector", "uri"]), column("hdu", 0),
        column("format", "fits"), column("size_bytes", None), column("checksum", None),
        strict=True))
    return Batch("ccd_dataset", ccd_dataset, ("dataset_type", "instrument", "visit", "detector"),
                 ("dataset_type", "instrument", "visit", "detector", "uri", "hdu", "format",
                  "size_bytes", "checksum"), rows, source=mr.CCDS_FILE,
                 compare=("uri", "hdu", "checksum"), sort_key=sort_key)


def _batches(manifest: mr.Manifest, scheme: PixelScheme, problems: Problems,
             progress: Progress | None, stage_seconds: dict[str, float]
             ) -> tuple[list[Batch], list[Reference]]:
    """Validate geometry and build the row batches, parents before children."""
    started = time.perf_counter()
    batches: list[Batch] = []
    references: list[Reference] = []

    geometry: dict[str, list[Footprints | None]] = {}
    polygon_columns = {
        "visit": (manifest.visits, mr.VISITS_FILE, [("region_ra", "region_dec")]),
        "ccd": (manifest.ccds, mr.CCDS_FILE, [("ra", "dec")]),
        "tract": (manifest.tracts, mr.TRACTS_FILE,
                  [("inner_ra", "inner_dec"), ("outer_ra", "outer_dec")]),
        "patch": (manifest.patches, mr.PATCHES_FILE,
                  [("inner_ra", "inner_dec"), ("outer_ra", "outer_dec")]),
    }
    present = {kind: spec for kind, spec in polygon_columns.items() if spec[0] is not None}
    for done, (kind, (table, file, pairs)) in enumerate(present.items()):
        if progress is not None:
            progress("checking footprints", done, len(present))
        geometry[kind] = [encode_column_pair(table, file, ra, dec, problems) for ra, dec in pairs]
    if progress is not None:
        progress("checking footprints", len(present), len(present))
    problems.raise_if_any()
    stage_seconds["validate footprints"] = time.perf_counter() - started

    started = time.perf_counter()
    pixels: dict[str, PixelSets] = {}
    for kind in ("tract", "patch", "ccd"):
        if kind not in geometry:
            continue
        outer = _valid(geometry[kind][-1])
        total = len(outer.encoded)
        done = 0

        def advance(count: int, kind: str = kind, total: int = total) -> None:
            nonlocal done
            done += count
            if progress is not None:
                progress(f"pixelizing {kind}", done, total)

        pixels[kind] = pixel_coverage(scheme, outer.encoded, advance)
        if len(geometry[kind]) == 2:
            inner = _valid(geometry[kind][0])
            pixels[kind] = add_uncontained(scheme, outer.encoded, inner.encoded, pixels[kind])
    stage_seconds["pixel coverage"] = time.perf_counter() - started

    if manifest.instrument is not None:
        doc = manifest.instrument
        batches.append(Batch(
            "instrument", instrument, ("name",),
            ("name", "detector_max", "visit_max", "bands", "physical_filters"),
            [(doc["name"], doc["detector_max"], doc["visit_max"], doc.get("bands"),
              doc.get("physical_filters"))],
            source="instrument.json"))
    if manifest.detectors is not None:
        if manifest.instrument is None:
            raise InputError("detectors need instrument.json to say whose they are",
                             file=mr.DETECTORS_FILE)
        table = manifest.detectors
        names = ["detector", "full_name", "raft", "name_in_raft", "purpose",
                 "fp_x_min", "fp_x_max", "fp_y_min", "fp_y_max"]
        rows = list(zip([manifest.instrument["name"]] * table.num_rows,
                        *_columns(table, names), strict=True))
        batches.append(Batch("detector", detector, ("instrument", "detector"),
                             ("instrument", *names), rows, source=mr.DETECTORS_FILE))
    if manifest.visits is not None:
        table = manifest.visits
        source_names = ["instrument", "visit", "day_obs", "seq_num", "band", "physical_filter",
                        "ra", "dec", "rot_deg", "exposure_time", "mjd_tai_start", "mjd_tai_end"]
        target_names = ("instrument", "visit", "day_obs", "seq_num", "band", "physical_filter",
                        "boresight_ra", "boresight_dec", "rotation_deg", "exposure_time",
                        "mjd_tai_start", "mjd_tai_end", "region", "ra", "dec")
        region = _valid(geometry["visit"][0])
        rows = list(zip(*_columns(table, source_names), *_footprint_rows(region), strict=True))
        batches.append(Batch("visit", visit, ("instrument", "visit"), target_names, rows,
                             source=mr.VISITS_FILE))
        references.append(Reference("visit", ("instrument",), instrument, ("name",)))
    if manifest.ccds is not None:
        table = manifest.ccds
        region = _valid(geometry["ccd"][0])
        rows = list(zip(*_columns(table, ["instrument", "visit", "detector"]),
                        *_footprint_rows(region), strict=True))
        batches.append(Batch("ccd", ccd, ("instrument", "visit", "detector"),
                             ("instrument", "visit", "detector", "region", "ra", "dec"), rows,
                             ccd_pixel, "ccd_id", pixels["ccd"], source=mr.CCDS_FILE))
        references.append(Reference("ccd", ("instrument", "detector"), detector,
                                    ("instrument", "detector")))
        if "uri" in table.column_names:
            batches.append(_ccd_files(table, pixels["ccd"]))
            references.append(Reference("ccd_dataset", ("dataset_type",), dataset_type,
                                        ("name",)))
    if manifest.skymap is not None:
        doc = manifest.skymap
        batches.append(Batch(
            "skymap", skymap, ("name",), ("name", "kind", "hash_sha1_hex", "parameters"),
            [(doc["name"], doc["kind"], doc["hash_sha1_hex"],
              Jsonb(mr.skymap_parameters(doc), dumps=json.dumps))],
            source="skymap.json"))
    tiles = (
        ("tract", manifest.tracts, tract, tract_pixel, ("skymap", "tract"),
         ["skymap", "tract", "ra_center", "dec_center", "ring"], mr.TRACTS_FILE),
        ("patch", manifest.patches, patch, patch_pixel, ("skymap", "tract", "patch"),
         ["skymap", "tract", "patch", "cell_x", "cell_y"], mr.PATCHES_FILE),
    )
    for kind, table, target, pixel_table, key, names, source in tiles:
        if table is None:
            continue
        inner, outer = (_valid(side) for side in geometry[kind])
        rows = list(zip(*_columns(table, names), *_footprint_rows(inner),
                        *_footprint_rows(outer), strict=True))
        region_names = ("inner_region", "inner_ra", "inner_dec",
                        "outer_region", "outer_ra", "outer_dec")
        batches.append(Batch(kind, target, key, (*names, *region_names), rows, pixel_table,
                             f"{kind}_id", pixels[kind], source=source))
    return batches, references


def ingest_manifest(engine: Engine, scheme: PixelScheme, root: Path,
                    progress: Progress | None = None) -> IngestReport:
    """Load one manifest directory; see :meth:`skyreg.Registry.ingest_manifest`."""
    started = time.perf_counter()
    report = IngestReport(source=str(root))
    if progress is not None:
        progress("reading", 0, 1)
    manifest, problems = mr.read_manifest(root)
    if manifest is None:
        problems.raise_if_any()
        raise InputError("not readable as a manifest", file=str(root))
    if progress is not None:
        progress("reading", 1, 1)
    report.stage_seconds["read"] = time.perf_counter() - started
    batches, references = _batches(manifest, scheme, problems, progress, report.stage_seconds)
    loading = time.perf_counter()
    database_seconds: dict[str, float] = {}
    report.counts = load(engine, batches, references, progress, database_seconds)
    report.stage_seconds["database"] = time.perf_counter() - loading
    report.stage_seconds.update({f"database: {k}": v for k, v in database_seconds.items()})
    report.seconds = time.perf_counter() - started
    return report
