"""Coadd images (``deepCoadd`` and other patch dataset types): attach each file to its patch.

A coadd's header says nothing reliable about which patch it is, but its WCS does: the image
must be exactly the patch's outer pixel box in its tract's WCS. The patch is found by the
image centre (spatial index), then checked by mapping the image corners through both the file's
WCS and the registered tract WCS: they must land on the same sky positions to within a small
fraction of a pixel, and the image must have the patch's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, Engine, and_, select, tuple_

from skyreg.db.connection import ReadConnection
from skyreg.errors import InputError
from skyreg.fits.scan import CoaddRecord, FileScan, HduProblem
from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.polygons import unit_vectors
from skyreg.ingest.fits_clashes import (
    FileDataset,
    StoredClashes,
    describe_patch,
    first_file_wins,
    stored_dataset_clashes,
)
from skyreg.ingest.loader import Batch, load
from skyreg.ingest.report import KindCount
from skyreg.schema import patch, patch_dataset, tract
from skyreg.search.tiles import find_patches

if TYPE_CHECKING:
    from astropy.wcs import WCS

    from skyreg.ingest.fits_ingest import FitsIngestOptions, FitsIngestReport

Progress = Callable[[str, int, int], None]

_SKYMAP_SQL = "SELECT 1 FROM skymap WHERE name = %(name)s"

#: Largest corner offset, in pixels, between the file's WCS and the patch's.
WCS_TOLERANCE_PIXELS = 0.01


def _centre(record: CoaddRecord) -> tuple[float, float]:
    xyz = unit_vectors(record.footprint_ra, record.footprint_dec).sum(axis=0)
    xyz /= np.linalg.norm(xyz)
    return (float(np.degrees(np.arctan2(xyz[1], xyz[0])) % 360.0),
            float(np.degrees(np.arcsin(np.clip(xyz[2], -1.0, 1.0)))))


def _file_wcs(record: CoaddRecord) -> WCS:
    from astropy.wcs import WCS

    summary = record.wcs_summary
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = list(summary.ctype)
    wcs.wcs.crval = list(summary.crval)
    wcs.wcs.crpix = list(summary.crpix)
    wcs.wcs.cd = np.asarray(summary.cd, dtype=np.float64)
    return wcs


def wcs_mismatch(tract_wcs: WCS, outer_bbox: Sequence[int], record: CoaddRecord) -> str | None:
    """Why the file's image is not the patch's outer box in the tract WCS (None if it is)."""
    x0, y0, x1, y1 = outer_bbox
    width, height = x1 - x0 + 1, y1 - y0 + 1
    summary = record.wcs_summary
    if (summary.naxis1, summary.naxis2) != (width, height):
        return f"image is {summary.naxis1}x{summary.naxis2} pixels, the patch {width}x{height}"
    file_wcs = _file_wcs(record)
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]],
                       dtype=np.float64)
    seen = np.asarray(file_wcs.wcs_pix2world(corners, 0))
    expected = np.asarray(tract_wcs.wcs_pix2world(corners + np.array([x0, y0]), 0))
    a, b = unit_vectors(seen[:, 0], seen[:, 1]), unit_vectors(expected[:, 0], expected[:, 1])
    offset_deg = np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=1),
                                       np.einsum("ij,ij->i", a, b)))
    scale_deg = float(np.sqrt(abs(np.linalg.det(tract_wcs.pixel_scale_matrix))))
    worst = float(offset_deg.max()) / scale_deg
    if worst > WCS_TOLERANCE_PIXELS:
        return f"the image corners are {worst:.3g} pixels off the patch's"
    return None


def load_coadd_files(engine: Engine, scheme: PixelScheme, scans: list[FileScan[CoaddRecord]],
                     options: FitsIngestOptions, report: FitsIngestReport,
                     progress: Progress | None = None) -> None:
    """Match every coadd HDU to its patch, then register the files in one transaction.

    A file that names a patch image another file of the run names (read first), or that the
    registry holds from another file, is refused; the other files are registered.
    """
    if options.skymap is None:
        raise InputError("coadd images need --skymap: the sky map whose patches they are")
    # A session of our own on the caller's engine (closing it returns it to the pool): the
    # patch search is the search layer's, the same exact answer as Registry.find_patches.
    reads = ReadConnection(engine)
    files: list[tuple[str, list[tuple[Any, ...]]]] = []
    tract_wcs: dict[int, WCS | None] = {}
    try:
        if not reads.fetch(_SKYMAP_SQL, {"name": options.skymap}):
            for scan in scans:
                report.problems.append(HduProblem(
                    scan.path, None, f"sky map {options.skymap!r} is not registered"))
            return
        for done, scan in enumerate(scans):
            if progress is not None:
                progress("matching patches", done, len(scans))
            file_rows: list[tuple[Any, ...]] = []
            for record in scan.records:
                found = _match(reads, scheme, options.skymap, record, tract_wcs)
                band = options.band or record.band
                if isinstance(found, str) or not band:
                    reason = found if isinstance(found, str) else (
                        "no band in the header: give --band")
                    report.problems.append(HduProblem(scan.path, record.hdu, reason))
                    continue
                file_rows.append((options.dataset_type, options.skymap, found[0], found[1],
                                  band, Path(scan.path).resolve().as_uri(), record.hdu,
                                  scan.format, scan.size, scan.checksum))
            if len(file_rows) == len(scan.records):
                files.append((scan.path, file_rows))
    finally:
        reads.close()
    if progress is not None:
        progress("matching patches", len(scans), len(scans))
    report.add_counts(_load_rows(engine, files, options, report, progress))


def _datasets(path: str, rows: list[tuple[Any, ...]]) -> list[FileDataset]:
    return [FileDataset(path, row[6], tuple(row[1:5]), row[5], row[9]) for row in rows]


def _load_rows(engine: Engine, files: list[tuple[str, list[tuple[Any, ...]]]],
               options: FitsIngestOptions, report: FitsIngestReport,
               progress: Progress | None) -> dict[str, KindCount]:
    """Load the files' rows, leaving out files that clash with the run or the registry."""
    refused: dict[str, HduProblem] = {}
    while True:
        candidates = [(path, rows) for path, rows in files if path not in refused]
        kept, clashes = first_file_wins([(path, _datasets(path, rows))
                                         for path, rows in candidates],
                                        options.dataset_type, describe_patch)
        batch = Batch("patch_dataset", patch_dataset,
                      ("dataset_type", "skymap", "tract", "patch", "band"),
                      ("dataset_type", "skymap", "tract", "patch", "band", "uri", "hdu",
                       "format", "size_bytes", "checksum"),
                      [row for path, rows in candidates if path in kept for row in rows],
                      source="FITS headers", compare=("uri", "hdu", "checksum"))

        def before(connection: Connection,
                   candidates: list[tuple[str, list[tuple[Any, ...]]]] = candidates) -> None:
            stored = stored_dataset_clashes(
                connection, patch_dataset, ("skymap", "tract", "patch", "band"),
                options.dataset_type,
                [d for path, rows in candidates for d in _datasets(path, rows)], describe_patch)
            if stored:
                raise StoredClashes(stored)

        try:
            counts = load(engine, [batch], progress=progress, before=before)
        except StoredClashes as found:
            refused.update(found.problems)
            continue
        report.problems.extend([*refused.values(), *clashes])
        return counts


def _match(reads: ReadConnection, scheme: PixelScheme, skymap_name: str, record: CoaddRecord,
           tract_wcs: dict[int, WCS | None]) -> tuple[int, int] | str:
    """(tract, patch) whose outer box is this image, or the reason there is none."""
    from astropy.wcs import WCS

    candidates = find_patches(reads, scheme, point=_centre(record), skymap=skymap_name)
    if not candidates:
        return f"no patch of sky map {skymap_name!r} contains the image centre"
    keys = [(ref.tract, ref.patch) for ref in candidates]
    boxes = {(row.tract, row.patch): row.outer_bbox for row in reads.execute(
        select(patch.c.tract, patch.c.patch, patch.c.outer_bbox).where(and_(
            patch.c.skymap == skymap_name,
            tuple_(patch.c.tract, patch.c.patch).in_(keys))))}
    missing = sorted({t for t, _ in keys} - tract_wcs.keys())
    for tract_id, header in reads.execute(select(tract.c.tract, tract.c.wcs).where(
            and_(tract.c.skymap == skymap_name, tract.c.tract.in_(missing)))):
        tract_wcs[tract_id] = WCS(header) if header else None
    reasons = []
    for key in keys:
        wcs, box = tract_wcs.get(key[0]), boxes.get(key)
        if wcs is None or box is None:
            return (f"sky map {skymap_name!r} was registered without tract WCS and patch "
                    "boxes; register it with `skyreg skymap register` to attach coadds")
        reason = wcs_mismatch(wcs, box, record)
        if reason is None:
            return key
        reasons.append(f"tract {key[0]} patch {key[1]}: {reason}")
    return "WCS matches no patch containing the image centre (" + "; ".join(reasons[:3]) + ")"
