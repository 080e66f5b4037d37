"""``skyreg ingest fits``: files → header scan (parallel) → records → transactions of whole visits.

Guarantees:

* A file is registered entirely or not at all: a file with any bad HDU is refused whole and
  reported (file, HDU, reason); the other files go on. So is a file that clashes with another
  file of the run or with the registry (the same dataset from another file, a visit with other
  values): see :mod:`skyreg.ingest.fits_clashes`.
* Files whose URI the archive already holds are skipped without being read, so a re-run after
  fixing bad files reads only those.
* Each transaction holds whole visits (and whole files), so a killed job leaves no partial
  visit: what committed is complete, what did not is absent and a re-run adds it.
* Concurrent runs serialise on the ingest lock and skip what the other one registered.

A CCD keeps the footprint it was first registered with: a later ``calexp`` of a ``raw`` CCD
adds its file to the archive without moving the CCD.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy import Connection, Engine, and_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from skyreg.db.binary_copy import Columns
from skyreg.errors import InputError, InputErrors
from skyreg.fits.profiles import resolve_profile
from skyreg.fits.scan import (
    CoaddRecord,
    FileScan,
    HduProblem,
    HduRecord,
    scan_coadd_file,
    scan_file,
)
from skyreg.geometry.bounding_caps import CAP_COLUMNS, caps_of_encoded
from skyreg.geometry.centre_pixels import centre_pixels
from skyreg.geometry.hull import hull_vertices
from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.polygons import check_polygons, encode_polygons
from skyreg.ingest import executors
from skyreg.ingest.fits_clashes import (
    VISIT_FIELDS,
    StoredClashes,
    ccd_datasets,
    describe_ccd,
    refuse_within_run,
    stored_dataset_clashes,
    stored_visit_clashes,
)
from skyreg.ingest.footprints import pixel_coverage
from skyreg.ingest.loader import Batch, load, vacuum_tables
from skyreg.ingest.paused_gc import paused_gc
from skyreg.ingest.report import KindCount
from skyreg.schema import (
    ccd,
    ccd_dataset,
    ccd_pixel,
    dataset_type,
    detector,
    instrument,
    visit,
)
from skyreg.search.dataset_statements import registered_uris

Progress = Callable[[str, int, int], None]

#: Names of the files a directory search reads: plain, tile-compressed (.fz) and compressed
#: whole (.gz, .bz2; recognised from their first bytes when read, whatever their name).
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fz", ".fits.gz", ".fit.gz", ".fts.gz",
                 ".fits.bz2", ".fit.bz2")
#: CCDs per transaction (rounded up to whole visits).
CCDS_PER_TRANSACTION = 20_000
#: Bound recorded for instruments first seen in FITS headers (their id ranges are unknown).
UNBOUNDED = 2**63 - 1

VisitKey = tuple[str, int]


@dataclass
class FitsIngestReport:
    """What a FITS ingest did: files seen, skipped, refused; rows written; timings."""

    files_found: int = 0
    files_skipped: int = 0
    files_scanned: int = 0
    files_refused: int = 0
    hdus_scanned: int = 0
    #: Image HDUs passed over (auxiliary planes, images that are not CCDs), by reason.
    skipped: dict[str, int] = field(default_factory=dict)
    problems: list[HduProblem] = field(default_factory=list)
    counts: dict[str, KindCount] = field(default_factory=dict)
    seconds: float = 0.0
    scan_seconds: float = 0.0
    executor: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def hdus_skipped(self) -> int:
        return sum(self.skipped.values())

    def add_counts(self, counts: dict[str, KindCount]) -> None:
        for kind, count in counts.items():
            total = self.counts.setdefault(kind, KindCount())
            total.in_input += count.in_input
            total.inserted += count.inserted

    def problem_lines(self) -> list[str]:
        return [problem_line(p) for p in self.problems]

    def lines(self) -> list[str]:
        """A human-readable summary."""
        rate = self.hdus_scanned / self.scan_seconds if self.scan_seconds > 0 else 0.0
        out = [
            f"files: {self.files_found:,} found, {self.files_skipped:,} already registered, "
            f"{self.files_scanned:,} read, {self.files_refused:,} refused",
            f"HDUs read: {self.hdus_scanned:,} in {self.scan_seconds:.1f} s "
            f"({rate:,.0f}/s on {self.executor})",
        ]
        if self.skipped:
            reasons = ", ".join(f"{count:,} {reason}" for reason, count in self.skipped.items())
            out.append(f"image HDUs passed over: {self.hdus_skipped:,} ({reasons})")
        out.append(f"{'kind':<14}{'in input':>12}{'new':>12}{'already there':>16}")
        for kind, count in self.counts.items():
            out.append(f"{kind:<14}{count.in_input:>12,}{count.inserted:>12,}"
                       f"{count.already_present:>16,}")
        out.append(f"done in {self.seconds:.1f} s")
        return out

    def as_dict(self) -> dict[str, object]:
        return {
            "files_found": self.files_found, "files_skipped": self.files_skipped,
            "files_scanned": self.files_scanned, "files_refused": self.files_refused,
            "hdus_scanned": self.hdus_scanned, "hdus_skipped": self.hdus_skipped,
            "skipped": dict(self.skipped), "seconds": round(self.seconds, 3),
            "scan_seconds": round(self.scan_seconds, 3), "executor": self.executor,
            "problems": self.problem_lines(),
            "counts": {k: {"in_input": c.in_input, "inserted": c.inserted}
                       for k, c in self.counts.items()},
        }


def problem_line(problem: HduProblem) -> str:
    where = f"HDU {problem.hdu}: " if problem.hdu is not None else ""
    return f"{problem.path}: {where}{problem.reason}"


@dataclass(frozen=True)
class FitsIngestOptions:
    """How to ingest: see ``skyreg ingest fits --help``."""

    dataset_type: str = "raw"
    profile: str | None = None
    checksum: str = "header"
    jobs: int | None = None
    executor: Any = None
    recursive: bool = False
    skymap: str | None = None
    band: str | None = None
    ccds_per_transaction: int = CCDS_PER_TRANSACTION


def discover(paths: Iterable[str | Path], recursive: bool) -> list[Path]:
    """The files to read: given files as they are, FITS files inside given directories."""
    found: list[Path] = []
    errors: list[InputError] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            if not recursive:
                errors.append(InputError("is a directory: add --recursive to read the FITS "
                                         "files under it", file=str(path)))
                continue
            found.extend(sorted(p for p in path.rglob("*")
                                if p.is_file() and p.name.lower().endswith(FITS_SUFFIXES)))
        elif path.is_file():
            found.append(path)
        else:
            errors.append(InputError("no such file or directory", file=str(path)))
    if errors:
        raise InputErrors(errors)
    unique = dict.fromkeys(p.resolve() for p in found)
    return list(unique)


CcdScan: TypeAlias = FileScan[HduRecord]
AnyScan: TypeAlias = FileScan[HduRecord] | FileScan[CoaddRecord]


def _scan_task(args: tuple[str, str | None, Any, bool]) -> AnyScan:
    path, profile, checksum, coadd = args
    if coadd:
        return scan_coadd_file(path, checksum=checksum)
    return scan_file(path, profile, checksum=checksum)


def _dataset_dimensions(engine: Engine, options: FitsIngestOptions) -> str:
    """Dimensions of the dataset type, registering it (from --skymap) when new."""
    wanted = "patch" if options.skymap else "ccd"
    with engine.begin() as connection:
        connection.execute(insert(dataset_type).values(
            name=options.dataset_type, dimensions=wanted,
            description="registered by skyreg ingest fits").on_conflict_do_nothing())
        stored = str(connection.execute(select(dataset_type.c.dimensions).where(
            dataset_type.c.name == options.dataset_type)).scalar_one())
    if stored != wanted:
        hint = ("give --skymap NAME for a patch dataset type" if stored == "patch"
                else "--skymap is only for patch dataset types such as deepCoadd")
        raise InputErrors([InputError(
            f"dataset type {options.dataset_type!r} has dimensions {stored!r}: {hint}",
            field="dataset_type")])
    return stored


def ingest_fits(engine: Engine, scheme: PixelScheme, paths: Sequence[str | Path],
                options: FitsIngestOptions, progress: Progress | None = None
                ) -> FitsIngestReport:
    """Register the FITS files under ``paths``; see the module docstring for guarantees."""
    started = time.perf_counter()
    report = FitsIngestReport(executor=executors.describe(options.executor, options.jobs))
    files = discover(paths, options.recursive)
    report.files_found = len(files)
    dimensions = _dataset_dimensions(engine, options)
    if options.profile is not None and dimensions == "ccd":
        resolve_profile(options.profile, {})  # a bad name or file fails before any work
    uris = [path.as_uri() for path in files]
    with engine.connect() as connection:
        known: set[str] = {str(uri) for uri in connection.execute(
            registered_uris(), {"uris": uris}).scalars()}
    todo = [path for path, uri in zip(files, uris, strict=True) if uri not in known]
    report.files_skipped = len(files) - len(todo)

    scans = _scan(todo, options, dimensions == "patch", report, progress)
    good = [scan for scan in scans if not scan.problems]
    for scan in scans:
        report.problems.extend(scan.problems)

    # The collector is paused for the loading only: reading headers makes astropy objects,
    # which may hold reference cycles that only the collector frees.
    with paused_gc():
        if dimensions == "ccd":
            _load_ccd_files(engine, scheme, good, options, report,  # type: ignore[arg-type]
                            progress)
        else:
            from skyreg.ingest.coadd_ingest import load_coadd_files

            load_coadd_files(engine, scheme, good, options, report,  # type: ignore[arg-type]
                             progress)
    report.files_refused = len({problem.path for problem in report.problems})
    report.seconds = time.perf_counter() - started
    return report


def _scan(paths: list[Path], options: FitsIngestOptions, coadd: bool,
          report: FitsIngestReport, progress: Progress | None) -> list[AnyScan]:
    started = time.perf_counter()
    tasks = [(str(path), options.profile, options.checksum, coadd) for path in paths]
    scans: list[AnyScan] = []
    if progress is not None:
        progress("reading headers", 0, len(tasks))
    for results in executors.run(_scan_task, tasks, jobs=options.jobs,
                                 executor=options.executor):
        scans.extend(results)
        if progress is not None:
            progress("reading headers", len(scans), len(tasks))
    # Chunks finish in any order; put the files back in the order given, which decides which
    # of two files holding the same dataset is registered (fits_clashes).
    order = {task[0]: i for i, task in enumerate(tasks)}
    scans.sort(key=lambda scan: order[scan.path])
    report.files_scanned = len(scans)
    report.hdus_scanned = sum(len(s.records) + len(s.problems) for s in scans)
    for scan in scans:
        for _, reason in scan.skipped:
            report.skipped[reason] = report.skipped.get(reason, 0) + 1
    report.scan_seconds = time.perf_counter() - started
    return scans


# -- CCD datasets ---------------------------------------------------------------------------------


def _visit_key(record: HduRecord) -> VisitKey:
    return (record.instrument, record.visit)


def _transactions(scans: list[CcdScan], size: int) -> list[list[CcdScan]]:
    """Group files so that every visit and every file lies within one group of ~size CCDs."""
    parent: dict[object, object] = {}

    def find(node: object) -> object:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for scan in scans:
        for record in scan.records:
            parent[find(("file", scan.path))] = find(("visit", _visit_key(record)))
    components: dict[object, list[CcdScan]] = {}
    for scan in scans:
        components.setdefault(find(("file", scan.path)), []).append(scan)
    groups: list[list[CcdScan]] = []
    current: list[CcdScan] = []
    count = 0
    for members in components.values():
        current.extend(members)
        count += sum(len(scan.records) for scan in members)
        if count >= size:
            groups.append(current)
            current, count = [], 0
    if current:
        groups.append(current)
    return groups


def _load_ccd_files(engine: Engine, scheme: PixelScheme, scans: list[CcdScan],
                    options: FitsIngestOptions, report: FitsIngestReport,
                    progress: Progress | None) -> None:
    groups = _transactions(scans, options.ccds_per_transaction)
    touched: list[Batch] = []
    for number, group in enumerate(groups):
        if progress is not None:
            progress("registering", number, len(groups))
        counts, batches = _load_ccd_group(engine, scheme, group, options, report)
        report.add_counts(counts)
        touched.extend(b for b in batches if counts[b.kind].inserted)
    if progress is not None:
        progress("registering", len(groups), len(groups))
    vacuum_tables(engine, list({b.kind: b for b in touched}.values()), progress)


def _load_ccd_group(engine: Engine, scheme: PixelScheme, group: list[CcdScan],
                    options: FitsIngestOptions, report: FitsIngestReport
                    ) -> tuple[dict[str, KindCount], list[Batch]]:
    """Register one group of whole visits in one transaction, leaving out clashing files.

    Files that clash with an earlier file of the run are left out before anything is built.
    Clashes with the registry are looked for under the ingest lock, before anything is
    copied; if there are any, the transaction is rolled back, those files are refused and the
    rest of the group is built and loaded again (with the earlier files of the run
    re-examined, since a refused file may have been the one a later file clashed with).
    """
    uris = {scan.path: Path(scan.path).resolve().as_uri() for scan in group}
    refused: dict[str, HduProblem] = {}
    while True:
        candidates = [scan for scan in group if scan.path not in refused]
        loadable, clashes = refuse_within_run(candidates, uris, options.dataset_type)
        if not loadable:
            report.problems.extend([*refused.values(), *clashes])
            return {}, []
        batches = _ccd_batches(scheme, loadable, options)
        grown: list[VisitKey] = []

        def before(connection: Connection, candidates: list[CcdScan] = candidates,
                   batches: list[Batch] = batches, grown: list[VisitKey] = grown) -> None:
            stored = {
                **stored_visit_clashes(connection, candidates),
                **stored_dataset_clashes(
                    connection, ccd_dataset, ("instrument", "visit", "detector"),
                    options.dataset_type,
                    [d for scan in candidates for d in ccd_datasets(scan, uris[scan.path])],
                    describe_ccd),
            }
            if stored:
                raise StoredClashes(stored)
            grown.extend(_stored_visits(connection, batches))

        def after(connection: Connection, grown: list[VisitKey] = grown) -> None:
            _merge_visit_regions(connection, grown)

        try:
            counts = load(engine, batches, vacuum=False, before=before, after=after)
        except StoredClashes as found:
            refused.update(found.problems)
            continue
        report.problems.extend([*refused.values(), *clashes])
        return counts, batches


def _ccd_batches(scheme: PixelScheme, scans: list[CcdScan], options: FitsIngestOptions
                 ) -> list[Batch]:
    records = [(scan, record) for scan in scans for record in scan.records]
    checked = check_polygons([r.footprint_ra for _, r in records],
                             [r.footprint_dec for _, r in records])
    for (scan, record), error in zip(records, checked.errors, strict=True):
        if error is not None:  # the scanner validates footprints; this is a safety net
            raise InputErrors([InputError(f"HDU {record.hdu}: footprint: {error}",
                                          file=scan.path)])
    blobs: list[bytes] = [blob for blob in checked.encoded if blob is not None]
    footprints = [checked.vertices(i, r.footprint_ra, r.footprint_dec)
                  for i, (_, r) in enumerate(records)]
    pixels = pixel_coverage(scheme, blobs)

    instruments = sorted({r.instrument for _, r in records})
    detectors = sorted({(r.instrument, r.detector): r.detector_name or str(r.detector)
                        for _, r in records}.items())
    by_visit: dict[VisitKey, list[HduRecord]] = {}
    for _, record in records:
        by_visit.setdefault(_visit_key(record), []).append(record)
    visit_rows = []
    for (name, visit_id), members in by_visit.items():
        ra, dec = hull_vertices([v for r in members for v in r.footprint_ra],
                                [v for r in members for v in r.footprint_dec])
        visit_region, problems = encode_polygons([ra], [dec])
        if visit_region[0] is None:  # a hull of valid footprints always encodes
            raise InputErrors([InputError(f"visit ({name}, {visit_id}): region: {problems[0]}")])
        first = members[0]
        visit_rows.append((name, visit_id, first.day_obs, first.seq_num, first.band,
                           first.physical_filter, first.boresight_ra, first.boresight_dec,
                           first.rotation_deg, first.exposure_time, first.mjd_tai_start,
                           first.mjd_tai_end, visit_region[0], ra, dec))
    source = "FITS headers"
    caps = caps_of_encoded(blobs)
    return [
        Batch("instrument", instrument, ("name",), ("name", "detector_max", "visit_max"),
              [(name, UNBOUNDED, UNBOUNDED) for name in instruments], source=source,
              compare=()),
        Batch("detector", detector, ("instrument", "detector"),
              ("instrument", "detector", "full_name", "purpose"),
              [(name, det, full_name, "SCIENCE") for (name, det), full_name in detectors],
              source=source, compare=()),
        Batch("visit", visit, ("instrument", "visit"),
              ("instrument", "visit", "day_obs", "seq_num", "band", "physical_filter",
               "boresight_ra", "boresight_dec", "rotation_deg", "exposure_time",
               "mjd_tai_start", "mjd_tai_end", "region", "ra", "dec"),
              visit_rows, source=source, compare=VISIT_FIELDS),
        Batch("ccd", ccd, ("instrument", "visit", "detector"),
              ("instrument", "visit", "detector", "region", "ra", "dec", *CAP_COLUMNS,
               "centre_pix"),
              [(r.instrument, r.visit, r.detector, blob, *vertices, *cap, int(pixel))
               for (_, r), blob, vertices, cap, pixel in zip(
                   records, blobs, footprints, caps.tolist(), centre_pixels(caps).tolist(),
                   strict=True)],
              ccd_pixel, "ccd_id", pixels, source=source, compare=()),
        Batch("ccd_dataset", ccd_dataset, ("dataset_type", "instrument", "visit", "detector"),
              ("dataset_type", "instrument", "visit", "detector", "uri", "hdu", "format",
               "size_bytes", "checksum"),
              [(options.dataset_type, r.instrument, r.visit, r.detector,
                Path(scan.path).resolve().as_uri(), r.hdu, scan.format, scan.size,
                scan.checksum) for scan, r in records],
              source=source, compare=("uri", "hdu", "checksum"), sort_key=pixels.first()),
    ]


def _stored_visits(connection: Connection, batches: list[Batch]) -> list[VisitKey]:
    """Visits of this transaction that an earlier one registered (their region may grow)."""
    visits = next(batch.rows for batch in batches if batch.kind == "visit")
    if isinstance(visits, Columns):
        raise TypeError("visit rows of a FITS ingest are tuples, not columns")
    keys = [(row[0], row[1]) for row in visits]
    if not keys:
        return []
    rows = connection.execute(select(visit.c.instrument, visit.c.visit).where(
        tuple_(visit.c.instrument, visit.c.visit).in_(keys)))
    return [(name, visit_id) for name, visit_id in rows]


def _merge_visit_regions(connection: Connection, keys: list[VisitKey]) -> None:
    """Recompute the region of visits that gained CCDs: the hull of all their CCDs."""
    for name, visit_id in keys:
        rows = connection.execute(select(ccd.c.ra, ccd.c.dec).where(
            and_(ccd.c.instrument == name, ccd.c.visit == visit_id))).all()
        ra, dec = hull_vertices([v for row in rows for v in row.ra],
                                [v for row in rows for v in row.dec])
        encoded, _ = encode_polygons([ra], [dec])
        connection.execute(update(visit).where(
            and_(visit.c.instrument == name, visit.c.visit == visit_id)).values(
            region=encoded[0], ra=ra, dec=dec))
