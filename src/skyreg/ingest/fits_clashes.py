"""Files of a FITS run that clash with each other or with the registry, found before loading.

Two files of one run can name the same dataset (two copies of a raw file, the same CCD in two
files), and a file can name a dataset the registry holds from another file, or a visit it
holds with other values. Left to the database, the first reaches a unique key (an
IntegrityError that rolls back the group and ends the run) and the others the loader's
ConflictError (which ends the run too). Found here, each is a problem of one file, which is
refused whole, while the other files are registered: within a run the file read first wins
(files are read in the order given, directories in name order); against the registry, what
is stored wins.

The checks against the registry run inside the loading transaction, under the ingest lock
(see :func:`skyreg.ingest.loader.load`'s ``before``), so that a concurrent run cannot slip a
clashing row in between the check and the insert.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, Connection, Table, and_, bindparam, func, select
from sqlalchemy.sql.elements import ColumnElement

from skyreg.fits.scan import FileScan, HduProblem, HduRecord
from skyreg.schema import visit

#: Visit values every file of a visit must agree on (with each other and with the registry).
VISIT_FIELDS = ("day_obs", "seq_num", "band", "physical_filter", "exposure_time",
                "mjd_tai_start", "mjd_tai_end")

DescribeKey = Callable[[tuple[Any, ...]], str]


@dataclass(frozen=True)
class FileDataset:
    """One dataset a file would register: its data ID and the file (HDU) that holds it."""

    path: str
    hdu: int
    key: tuple[Any, ...]
    uri: str
    checksum: str | None


class StoredClashes(Exception):
    """Raised inside the loading transaction to roll it back: these files clash with it."""

    def __init__(self, problems: dict[str, HduProblem]) -> None:
        super().__init__(f"{len(problems)} file(s) clash with the registry")
        self.problems = problems


def describe_ccd(key: tuple[Any, ...]) -> str:
    instrument, visit_id, detector = key
    return f"{instrument} visit {visit_id} detector {detector}"


def describe_patch(key: tuple[Any, ...]) -> str:
    skymap, tract, patch, band = key
    return f"{skymap} tract {tract} patch {patch} band {band}"


def dataset_clash(path: str, datasets: Sequence[FileDataset],
                  owners: dict[tuple[Any, ...], FileDataset], dataset_type: str,
                  describe: DescribeKey) -> HduProblem | None:
    """Why a file cannot register its datasets next to ``owners`` (the kept files' ones)."""
    seen: dict[tuple[Any, ...], FileDataset] = {}
    for dataset in datasets:
        first = owners.get(dataset.key)
        if first is not None:
            return HduProblem(path, dataset.hdu, (
                f"{dataset_type} {describe(dataset.key)} is also in {first.path} "
                f"(HDU {first.hdu}), read first in this run"))
        other = seen.setdefault(dataset.key, dataset)
        if other is not dataset:
            return HduProblem(path, dataset.hdu,
                              f"{describe(dataset.key)} is also in HDU {other.hdu} of this file")
    return None


def first_file_wins(files: Sequence[tuple[str, Sequence[FileDataset]]], dataset_type: str,
                    describe: DescribeKey) -> tuple[set[str], list[HduProblem]]:
    """Paths of the files to keep, and a problem for each file that names a dataset that an
    earlier kept file, or another HDU of the same file, names already."""
    owners: dict[tuple[Any, ...], FileDataset] = {}
    kept: set[str] = set()
    problems: list[HduProblem] = []
    for path, datasets in files:
        problem = dataset_clash(path, datasets, owners, dataset_type, describe)
        if problem is None:
            kept.add(path)
            owners.update((d.key, d) for d in datasets)
        else:
            problems.append(problem)
    return kept, problems


def ccd_datasets(scan: FileScan[HduRecord], uri: str) -> list[FileDataset]:
    """The CCD datasets a scanned file would register (data ID: instrument, visit, detector)."""
    return [FileDataset(scan.path, r.hdu, (r.instrument, r.visit, r.detector), uri,
                        scan.checksum) for r in scan.records]


def refuse_within_run(scans: Sequence[FileScan[HduRecord]], uris: dict[str, str],
                      dataset_type: str) -> tuple[list[FileScan[HduRecord]], list[HduProblem]]:
    """The CCD files to load, and a problem for each file that clashes with an earlier kept
    one: a visit with other values, or a CCD that an earlier file (or HDU) holds already."""
    visits: dict[tuple[str, int], tuple[str, HduRecord]] = {}
    owners: dict[tuple[Any, ...], FileDataset] = {}
    kept: list[FileScan[HduRecord]] = []
    problems: list[HduProblem] = []
    for scan in scans:
        datasets = ccd_datasets(scan, uris[scan.path])
        problem = _visit_clash(scan, visits) or dataset_clash(
            scan.path, datasets, owners, dataset_type, describe_ccd)
        if problem is not None:
            problems.append(problem)
            continue
        kept.append(scan)
        for record in scan.records:
            visits.setdefault((record.instrument, record.visit), (scan.path, record))
        owners.update((d.key, d) for d in datasets)
    return kept, problems


def _visit_clash(scan: FileScan[HduRecord],
                 visits: dict[tuple[str, int], tuple[str, HduRecord]]) -> HduProblem | None:
    for record in scan.records:
        first = visits.get((record.instrument, record.visit))
        if first is None:
            continue
        path, reference = first
        for name in VISIT_FIELDS:
            if getattr(record, name) != getattr(reference, name):
                return HduProblem(scan.path, record.hdu, (
                    f"visit {record.visit} has {name}={getattr(record, name)!r} here but "
                    f"{getattr(reference, name)!r} in {path}"))
    return None


def stored_dataset_clashes(connection: Connection, table: Table, key_columns: Sequence[str],
                           dataset_type: str, datasets: Sequence[FileDataset],
                           describe: DescribeKey) -> dict[str, HduProblem]:
    """A problem for each file naming a dataset the registry holds from another file."""
    if not datasets:
        return {}
    keys = func.unnest(*(
        _array([d.key[i] for d in datasets], table.c[name])
        for i, name in enumerate(key_columns))).table_valued(*key_columns).render_derived(
        name="k")
    statement = (
        select(*(table.c[name] for name in key_columns), table.c.uri, table.c.hdu,
               table.c.checksum)
        .select_from(keys)
        .join(table, and_(table.c.dataset_type == dataset_type,
                          *(table.c[name] == keys.c[name] for name in key_columns)))
    )
    stored = {tuple(row[:len(key_columns)]): row[len(key_columns):]
              for row in connection.execute(statement)}
    problems: dict[str, HduProblem] = {}
    for dataset in datasets:
        found = stored.get(dataset.key)
        if found is None or dataset.path in problems:
            continue
        uri, hdu, checksum = found
        if (uri, hdu, checksum) != (dataset.uri, dataset.hdu, dataset.checksum):
            problems[dataset.path] = HduProblem(dataset.path, dataset.hdu, (
                f"{dataset_type} {describe(dataset.key)} is already registered from {uri} "
                f"(HDU {hdu})"))
    return problems


def stored_visit_clashes(connection: Connection, scans: Sequence[FileScan[HduRecord]]
                         ) -> dict[str, HduProblem]:
    """A problem for each file whose visit the registry holds with other values."""
    wanted = sorted({(r.instrument, r.visit) for scan in scans for r in scan.records})
    if not wanted:
        return {}
    keys = func.unnest(_array([k[0] for k in wanted], visit.c.instrument),
                       _array([k[1] for k in wanted], visit.c.visit)).table_valued(
        "instrument", "visit").render_derived(name="k")
    statement = (
        select(visit.c.instrument, visit.c.visit, *(visit.c[name] for name in VISIT_FIELDS))
        .select_from(keys)
        .join(visit, and_(visit.c.instrument == keys.c.instrument,
                          visit.c.visit == keys.c.visit))
    )
    stored = {(row[0], row[1]): row[2:] for row in connection.execute(statement)}
    problems: dict[str, HduProblem] = {}
    for scan in scans:
        for record in scan.records:
            values = stored.get((record.instrument, record.visit))
            if values is None:
                continue
            differs = next(((name, value) for name, value in zip(VISIT_FIELDS, values,
                                                                    strict=True)
                            if getattr(record, name) != value), None)
            if differs is not None:
                name, value = differs
                problems[scan.path] = HduProblem(scan.path, record.hdu, (
                    f"visit {record.visit} has {name}={getattr(record, name)!r} here but "
                    f"{value!r} in the registry"))
                break
    return problems


def _array(values: list[Any], column: Any) -> ColumnElement[Any]:
    return bindparam(None, values, type_=ARRAY(column.type))
