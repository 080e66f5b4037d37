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
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from psycopg.types.json import Jsonb
from sqlalchemy import Engine

from skyreg.errors import InputError
from skyreg.geometry.bounding_caps import CAP_COLUMNS, caps_of_encoded
from skyreg.geometry.centre_pixels import centre_pixels
from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.polygons import unit_vectors
from skyreg.ingest import manifest_reader as mr
from skyreg.ingest.footprints import (
    Footprints,
    PixelSets,
    add_uncontained,
    encode_column_pair,
    pixel_coverage,
    polygon_coverage,
)
from skyreg.ingest.loader import Batch, Reference, column_rows, load
from skyreg.ingest.paused_gc import with_paused_gc
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


def _cap_columns(footprints: Footprints) -> list[npt.NDArray[Any]]:
    """The ``ccd.cap_*`` values of each footprint, column by column (CAP_COLUMNS order), then
    its ``ccd.centre_pix``."""
    caps = caps_of_encoded(footprints.encoded)
    return [*(np.ascontiguousarray(caps[:, i]) for i in range(caps.shape[1])),
            centre_pixels(caps).astype(np.int64)]


def _integers(table: pa.Table, names: list[str]) -> list[Any]:
    """Integer columns as numpy arrays (as lists where a value is missing: the loader then
    says which row)."""
    return [table.column(name).to_numpy() if table.column(name).null_count == 0
            else table.column(name).to_pylist() for name in names]


class _Coverage:
    """Pixel coverage of one footprint column, computed only for the rows the loader asks for.

    The loader asks for the rows that are not registered yet, so a re-run of an unchanged
    manifest computes no pixels at all. The first pixel of every row computed is kept, for
    the rows of other kinds stored in the same spatial order (the CCDs' files).
    """

    def __init__(self, scheme: PixelScheme, kind: str, outer: Footprints,
                 inner: Footprints | None, progress: Progress | None) -> None:
        self.scheme, self.kind, self.progress = scheme, kind, progress
        self.outer, self.inner = outer.encoded, inner.encoded if inner is not None else None
        self.outer_ra, self.outer_dec = outer.ra, outer.dec
        self.first = np.full(len(self.outer), -2, dtype=np.int64)  # -2: not computed

    def __call__(self, rows: npt.NDArray[np.int64]) -> PixelSets:
        total, done = len(rows), 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if self.progress is not None:
                self.progress(f"pixelizing {self.kind}", done, total)

        outer = [self.outer[i] for i in rows]
        pixels = self._outer_coverage(rows, outer, advance)
        if self.inner is not None:
            # Tiles are indexed by their outer polygon; where the inner one may stick out,
            # by the union of both covers.
            pixels = add_uncontained(self.scheme, outer, [self.inner[i] for i in rows], pixels)
        self.first[rows] = pixels.first()
        return pixels

    def _outer_coverage(self, rows: npt.NDArray[np.int64], outer: list[bytes],
                        advance: Callable[[int], None]) -> PixelSets:
        """Covers of the outer polygons: on whole arrays when they share a vertex count.

        Consecutive manifest rows are mostly CCDs of one visit, close together, which is what
        the whole-array cover groups by (any order gives the same covers).
        """
        counts = {len(self.outer_ra[i]) for i in rows[:1000].tolist()}
        if len(counts) != 1 or self.scheme.scheme != "htm":
            return pixel_coverage(self.scheme, outer, advance)
        try:
            ra = np.array([self.outer_ra[i] for i in rows], dtype=np.float64)
            dec = np.array([self.outer_dec[i] for i in rows], dtype=np.float64)
        except ValueError:  # ragged: vertex counts differ further on
            return pixel_coverage(self.scheme, outer, advance)
        pixels = polygon_coverage(self.scheme, outer, unit_vectors(ra, dec),
                                  np.zeros(len(rows), dtype=np.int64))
        advance(len(rows))
        return pixels

    def first_pixels(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Smallest pixel of each given row, computing those not known yet."""
        missing = rows[self.first[rows] == -2]
        if len(missing):
            self(np.unique(missing))
        return self.first[rows]


def _ccd_files(table: pa.Table, coverage: _Coverage) -> Batch:
    """Archive rows for the CCDs whose ``uri`` is given (optional manifest columns).

    They are stored in the spatial order of their CCDs, so that a spatial search's file lookups
    read few pages.
    """
    has_file = pc.is_valid(table.column("uri"))
    with_file = table.filter(has_file)
    ccd_rows = np.flatnonzero(np.asarray(has_file.to_numpy(zero_copy_only=False), dtype=bool))
    count = with_file.num_rows

    def column(name: str, default: Any) -> list[Any]:
        if name not in with_file.column_names:
            return [default] * count
        return [default if value is None else value
                for value in with_file.column(name).to_pylist()]

    def sort_keys(rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return coverage.first_pixels(ccd_rows[rows])

    names = ("dataset_type", "instrument", "visit", "detector", "uri", "hdu", "format",
             "size_bytes", "checksum")
    rows = column_rows(ccd_dataset, names, [
        column("dataset_type", "raw"), with_file.column("instrument").to_pylist(),
        *_integers(with_file, ["visit", "detector"]), with_file.column("uri").to_pylist(),
        column("hdu", 0), column("format", "fits"), column("size_bytes", None),
        column("checksum", None)])
    return Batch("ccd_dataset", ccd_dataset, ("dataset_type", "instrument", "visit", "detector"),
                 names, rows, source=mr.CCDS_FILE, compare=("uri", "hdu", "checksum"),
                 sort_key=sort_keys)


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

    coverage: dict[str, _Coverage] = {}
    for kind in ("tract", "patch", "ccd"):
        if kind in geometry:
            *inners, outermost = geometry[kind]
            coverage[kind] = _Coverage(scheme, kind, _valid(outermost),
                                       _valid(inners[0]) if inners else None,
                                       progress)

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
    # Sky map and tiles before the CCDs: once the CCDs' pixels are computed, the loader can
    # start their overlap pairs with the tiles (skyreg.ingest.overlap_jobs) while it copies
    # the CCD rows.
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
                             f"{kind}_id", coverage[kind], source=source))
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
        ccd_names = ("instrument", "visit", "detector", "region", "ra", "dec", *CAP_COLUMNS,
                     "centre_pix")
        ccd_rows = column_rows(ccd, ccd_names, [
            table.column("instrument").to_pylist(), *_integers(table, ["visit", "detector"]),
            *_footprint_rows(region), *_cap_columns(region)])
        # The caps are derived from the region: a re-run compares the footprint itself.
        batches.append(Batch("ccd", ccd, ("instrument", "visit", "detector"), ccd_names,
                             ccd_rows, ccd_pixel, "ccd_id", coverage["ccd"],
                             source=mr.CCDS_FILE, compare=("region", "ra", "dec")))
        references.append(Reference("ccd", ("instrument", "detector"), detector,
                                    ("instrument", "detector")))
        if "uri" in table.column_names:
            batches.append(_ccd_files(table, coverage["ccd"]))
            references.append(Reference("ccd_dataset", ("dataset_type",), dataset_type,
                                        ("name",)))
    return batches, references


@with_paused_gc
def ingest_manifest(engine: Engine, scheme: PixelScheme, root: Path,
                    progress: Progress | None = None, check: bool = False) -> IngestReport:
    """Load one manifest directory; see :meth:`skyreg.Registry.ingest_manifest`.

    ``check=True`` runs every check, those against the stored rows included, and writes
    nothing; the report's counts say what a load would insert.
    """
    started = time.perf_counter()
    report = IngestReport(source=str(root), checked_only=check)
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
    report.counts = load(engine, batches, references, progress, database_seconds, check=check)
    pixel_seconds = sum(v for k, v in database_seconds.items() if k.startswith("pixels "))
    if not check:
        report.stage_seconds["pixel coverage"] = pixel_seconds
    report.stage_seconds["database"] = time.perf_counter() - loading - pixel_seconds
    report.stage_seconds.update({f"database: {k}": v for k, v in database_seconds.items()
                                 if not k.startswith("pixels ")})
    report.seconds = time.perf_counter() - started
    return report
