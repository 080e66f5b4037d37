"""FITS ingest against a real database: files → CCDs, visits and archive rows.

Files are generated here with astropy: small images (64 x 128 pixels) with a coarse pixel scale,
so each CCD covers a realistic patch of sky while the files stay a few kB.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner
from lsst.sphgeom import LonLat, UnitVector3d
from sqlalchemy import create_engine, func, select, text

from fits_builder import compress, set_raw_card, write_calexp, write_mef
from skyreg import Registry
from skyreg.cli.main import cli
from skyreg.errors import SkyregError
from skyreg.ingest.fits_ingest import FitsIngestReport
from skyreg.schema import ccd, ccd_dataset, visit

SCALE = 0.27 * 32 / 3600  # degrees per pixel
WIDTH, HEIGHT = 64, 128


def write_decam(path: Path, expnum: int, ra: float, dec: float, detectors: list[int],
                band: str = "r", exptime: float = 90.0) -> Path:
    """A DECam-like MEF: one image HDU per CCD, laid out in a row around (ra, dec)."""
    primary = fits.PrimaryHDU()
    header = primary.header
    header["INSTRUME"] = "DECam"
    header["EXPNUM"] = expnum
    header["MJD-OBS"] = 59000.1 + expnum * 1e-3
    header["EXPTIME"] = exptime
    header["FILTER"] = f"{band} DECam SDSS c0002 6415.0 1480.0"
    hdus: list[fits.PrimaryHDU | fits.ImageHDU] = [primary]
    for number in detectors:
        image = fits.ImageHDU(np.zeros((HEIGHT, WIDTH), dtype=np.int16))
        card = image.header
        card["CCDNUM"] = number
        card["DETPOS"] = f"N{number}"
        card["EXTNAME"] = f"N{number}"
        card["CTYPE1"], card["CTYPE2"] = "RA---TAN", "DEC--TAN"
        card["CRVAL1"], card["CRVAL2"] = ra, dec
        card["CRPIX1"], card["CRPIX2"] = WIDTH / 2 - (number - 1) * (WIDTH + 4), HEIGHT / 2
        card["CD1_1"], card["CD1_2"], card["CD2_1"], card["CD2_2"] = -SCALE, 0.0, 0.0, SCALE
        hdus.append(image)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


@pytest.fixture
def survey(tmp_path: Path) -> Path:
    """Three visits of four CCDs each, one MEF file per visit, around RA 0 (wrap)."""
    root = tmp_path / "raw"
    root.mkdir()
    for i, (ra, dec) in enumerate([(359.95, 0.0), (0.05, 0.1), (0.0, -0.1)]):
        write_decam(root / f"v{i}.fits", 1000 + i, ra, dec, [1, 2, 3, 4])
    return root


def _count(url: str, table: object) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        value = int(connection.execute(select(func.count()).select_from(table)).scalar_one())
    engine.dispose()
    return value


def test_mef_files_register_ccds_visits_and_files(registry: Registry, survey: Path) -> None:
    report = registry.ingest_fits(survey, recursive=True, jobs=1)
    assert report.ok and report.files_scanned == 3
    assert report.counts["ccd"].inserted == 12 and report.counts["visit"].inserted == 3
    ccds = registry.find_ccds(cone=(0.0, 0.0, 0.2))
    assert {c.visit for c in ccds} == {1000, 1001, 1002}
    files = registry.find_datasets("raw", point=(0.0, 0.0))
    assert files and all(f.uri.startswith("file://") and f.path and Path(f.path).exists()
                         for f in files)
    assert {(f.visit, f.detector) for f in files} == {(c.visit, c.detector) for c in
                                                      registry.find_ccds(point=(0.0, 0.0))}
    # Every CCD lies inside its visit's region (hull of the CCDs).
    for key in {(c.instrument, c.visit) for c in ccds}:
        stored = registry.find_ccds(cone=(0.0, 0.0, 1.0), instrument=key[0])
        assert stored


def test_compressed_files_are_found_and_registered(registry: Registry, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    plain = [write_decam(tmp_path / f"e{i}.fits", 700 + i, 80.0 + i, 5.0, [1, 2])
             for i in range(3)]
    packed = [compress(plain[0], "gzip"), compress(plain[1], "bzip2"),
              write_decam(root / "e2.fits", 702, 82.0, 5.0, [1, 2])]
    for path in packed[:2]:
        path.rename(root / path.name)
    report = registry.ingest_fits(root, recursive=True, jobs=1)
    assert report.ok and report.files_scanned == 3, report.problem_lines()
    assert report.counts["ccd"].inserted == 6
    files = {Path(f.path or "").name: f for f in registry.find_datasets("raw")}
    assert {(name, f.format) for name, f in files.items()} == {
        ("e0.fits.gz", "fits.gz"), ("e1.fits.bz2", "fits.bz2"), ("e2.fits", "fits")}
    assert files["e0.fits.gz"].size_bytes == (root / "e0.fits.gz").stat().st_size


def test_rerun_skips_registered_files_and_adds_fixed_ones(registry: Registry, survey: Path
                                                          ) -> None:
    bad = survey / "broken.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b" " * 50)  # truncated header
    first = registry.ingest_fits(survey, recursive=True, jobs=1)
    assert not first.ok and first.files_refused == 1
    assert [p.path for p in first.problems] == [str(bad.resolve())]
    again = registry.ingest_fits(survey, recursive=True, jobs=1)
    assert again.files_skipped == 3 and again.files_scanned == 1
    assert sum(c.inserted for c in again.counts.values()) == 0
    write_decam(bad, 2000, 10.0, 10.0, [1, 2])
    fixed = registry.ingest_fits(survey, recursive=True, jobs=1)
    assert fixed.ok and fixed.files_scanned == 1 and fixed.counts["ccd"].inserted == 2


def test_file_with_one_bad_hdu_is_refused_whole(registry: Registry, tmp_path: Path) -> None:
    path = write_decam(tmp_path / "half.fits", 7, 20.0, 5.0, [1, 2])
    with fits.open(path, mode="update") as hdus:
        del hdus[2].header["CCDNUM"]
    report = registry.ingest_fits(path, jobs=1)
    assert report.files_refused == 1 and report.problems
    assert report.problems[0].hdu == 2 and "CCDNUM" in report.problems[0].reason
    assert registry.counts()["ccds"] == 0 and registry.counts()["visits"] == 0


def test_visit_split_over_files_and_runs_grows_its_region(registry: Registry, tmp_path: Path,
                                                          database_url: str) -> None:
    first = write_decam(tmp_path / "a.fits", 55, 40.0, -30.0, [1, 2])
    second = write_decam(tmp_path / "b.fits", 55, 40.0, -30.0, [3, 4])
    registry.ingest_fits(first, jobs=1)
    registry.ingest_fits(second, jobs=1)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        region = connection.execute(select(visit.c.region)).scalar_one()
        corners = connection.execute(select(ccd.c.ra, ccd.c.dec)).all()
    engine.dispose()
    from skyreg.geometry.polygons import decode_polygon

    polygon = decode_polygon(region)
    for ra_list, dec_list in corners:
        for ra, dec in zip(ra_list, dec_list, strict=True):
            assert polygon.contains(UnitVector3d(LonLat.fromDegrees(ra, dec)))


def test_inconsistent_visit_values_refuse_the_later_file(registry: Registry, tmp_path: Path
                                                         ) -> None:
    write_decam(tmp_path / "a.fits", 9, 30.0, 0.0, [1], band="r")
    write_decam(tmp_path / "b.fits", 9, 30.0, 0.0, [2], band="g")
    report = registry.ingest_fits(tmp_path, recursive=True, jobs=1)
    assert report.files_refused == 1
    assert "band" in report.problems[0].reason


def _reasons(report: FitsIngestReport) -> dict[str, tuple[int | None, str]]:
    return {Path(p.path).name: (p.hdu, p.reason) for p in report.problems}


def test_same_ccd_registered_from_another_file_refuses_only_that_file(
        registry: Registry, tmp_path: Path) -> None:
    """A conflict with what an earlier run stored is a problem of the file, not the run's end."""
    first = write_decam(tmp_path / "a.fits", 3, 30.0, 0.0, [1])
    registry.ingest_fits(first, jobs=1)
    later = tmp_path / "later"
    later.mkdir()
    write_decam(later / "copy.fits", 3, 30.0, 0.0, [1])
    write_decam(later / "other.fits", 4, 31.0, 0.0, [1, 2])
    report = registry.ingest_fits(later, recursive=True, jobs=1)
    assert _reasons(report) == {"copy.fits": (
        1, f"raw DECam visit 3 detector 1 is already registered from {first.resolve().as_uri()} "
           "(HDU 1)")}
    assert report.files_refused == 1 and report.counts["ccd"].inserted == 2
    assert registry.counts()["ccds"] == 3
    assert {f.path for f in registry.find_datasets("raw", instrument="DECam")} == {
        str(first.resolve()), str((later / "other.fits").resolve())}


def test_duplicates_within_one_run_refuse_the_later_file(registry: Registry,
                                                         tmp_path: Path) -> None:
    """Two copies of one raw file, and one CCD in two files, in one run: the file read first
    is registered, the later one refused; the other files go in, in the same transaction."""
    original = write_decam(tmp_path / "a.fits", 10, 50.0, 0.0, [1, 2])
    (tmp_path / "b_copy.fits").write_bytes(original.read_bytes())
    write_decam(tmp_path / "c_split.fits", 11, 52.0, 0.0, [1, 2])
    write_decam(tmp_path / "d_split.fits", 11, 52.0, 0.0, [2, 3])  # CCD 2 again
    write_decam(tmp_path / "e.fits", 12, 54.0, 0.0, [1])
    report = registry.ingest_fits(tmp_path, recursive=True, jobs=1)
    assert _reasons(report) == {
        "b_copy.fits": (1, f"raw DECam visit 10 detector 1 is also in {original.resolve()} "
                           "(HDU 1), read first in this run"),
        "d_split.fits": (1, f"raw DECam visit 11 detector 2 is also in "
                            f"{(tmp_path / 'c_split.fits').resolve()} (HDU 2), read first in "
                            "this run"),
    }
    assert report.files_refused == 2
    assert registry.counts()["ccds"] == 5 and registry.counts()["visits"] == 3
    # After fixing (removing) the bad files, a re-run has nothing left to do.
    (tmp_path / "b_copy.fits").unlink()
    (tmp_path / "d_split.fits").unlink()
    again = registry.ingest_fits(tmp_path, recursive=True, jobs=1)
    assert again.ok and again.files_skipped == 3 and again.files_scanned == 0


def test_the_file_given_first_wins_whatever_order_the_workers_finish_in(
        registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from skyreg.ingest import executors

    real_run = executors.run

    def last_chunk_first(*args: Any, **kwargs: Any) -> Iterator[list[Any]]:
        results = [[scan] for chunk in real_run(*args, **kwargs) for scan in chunk]
        yield from reversed(results)

    monkeypatch.setattr(executors, "run", last_chunk_first)
    original = write_decam(tmp_path / "a.fits", 20, 50.0, 0.0, [1])
    (tmp_path / "b.fits").write_bytes(original.read_bytes())
    report = registry.ingest_fits(tmp_path, recursive=True, jobs=1)
    assert set(_reasons(report)) == {"b.fits"}
    assert [Path(f.path or "").name for f in registry.find_datasets("raw")] == ["a.fits"]


def test_visit_values_differing_from_the_registry_refuse_only_that_file(
        registry: Registry, tmp_path: Path) -> None:
    registry.ingest_fits(write_decam(tmp_path / "r.fits", 9, 30.0, 0.0, [1], band="r"), jobs=1)
    later = tmp_path / "later"
    later.mkdir()
    write_decam(later / "g.fits", 9, 30.0, 0.0, [2], band="g")
    write_decam(later / "fine.fits", 9, 30.0, 0.0, [3], band="r")
    report = registry.ingest_fits(later, recursive=True, jobs=1)
    assert _reasons(report) == {"g.fits": (1, "visit 9 has band='g' here but 'r' in the "
                                              "registry")}
    assert registry.counts()["ccds"] == 2


def test_a_file_refused_for_the_registry_does_not_refuse_its_duplicate(
        registry: Registry, tmp_path: Path) -> None:
    """Within a run the first file wins only if it is itself registered."""
    registry.ingest_fits(write_decam(tmp_path / "stored.fits", 5, 30.0, 0.0, [2]), jobs=1)
    run = tmp_path / "run"
    run.mkdir()
    write_decam(run / "a.fits", 5, 30.0, 0.0, [1, 2])  # CCD 2 is registered from stored.fits
    write_decam(run / "b.fits", 5, 30.0, 0.0, [1])  # CCD 1 again: fine once a.fits is out
    report = registry.ingest_fits(run, recursive=True, jobs=1)
    assert set(_reasons(report)) == {"a.fits"} and "already registered" in report.problems[0].reason
    assert {(f.detector, Path(f.path or "").name) for f in registry.find_datasets("raw")} == {
        (1, "b.fits"), (2, "stored.fits")}


def test_concurrent_runs_with_copies_of_one_file_register_it_once(database_url: str,
                                                                   tmp_path: Path) -> None:
    """The clash check runs under the ingest lock: whichever run goes second refuses its copy."""
    Registry.connect(database_url).close()
    dirs = [tmp_path / "x", tmp_path / "y"]
    for i, folder in enumerate(dirs):
        folder.mkdir()
        write_decam(folder / "same.fits", 77, 60.0, 0.0, [1, 2, 3])
        write_decam(folder / f"own{i}.fits", 78 + i, 62.0 + i, 0.0, [1])
    script = ("import sys, json; from skyreg import Registry\n"
              "with Registry.connect(sys.argv[1]) as r:\n"
              "    print(json.dumps(r.ingest_fits(sys.argv[2], recursive=True, jobs=1)"
              ".problem_lines()))\n")
    runs = [subprocess.Popen([sys.executable, "-c", script, database_url, str(folder)],
                             stdout=subprocess.PIPE, text=True) for folder in dirs]
    outputs = [json.loads(run.communicate()[0]) for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert sorted(len(lines) for lines in outputs) == [0, 1], outputs
    assert "already registered" in next(line for lines in outputs for line in lines)
    assert _count(database_url, ccd) == 5 and _count(database_url, ccd_dataset) == 5


def test_calexp_of_a_registered_ccd_adds_a_file_only(registry: Registry, tmp_path: Path
                                                     ) -> None:
    registry.ingest_fits(write_decam(tmp_path / "raw.fits", 4, 30.0, 0.0, [1, 2]), jobs=1)
    calexp = write_decam(tmp_path / "calexp.fits", 4, 30.0, 0.0, [1, 2])
    report = registry.ingest_fits(calexp, dataset_type="calexp", jobs=1)
    assert report.counts["ccd"].inserted == 0 and report.counts["ccd_dataset"].inserted == 2
    found = registry.find_datasets("calexp", cone=(30.0, 0.0, 1.0))
    assert {f.uri for f in found} == {calexp.resolve().as_uri()}


def test_unknown_profile_and_missing_path_are_clear_errors(registry: Registry,
                                                           survey: Path) -> None:
    with pytest.raises(SkyregError, match="Nonesuch"):
        registry.ingest_fits(survey, recursive=True, profile="Nonesuch")
    with pytest.raises(SkyregError, match="directory"):
        registry.ingest_fits(survey)  # a directory without recursive
    with pytest.raises(SkyregError, match="no such file"):
        registry.ingest_fits(survey / "missing.fits")


def test_process_pool_gives_the_same_answer(registry: Registry, tmp_path: Path) -> None:
    for i in range(40):
        write_decam(tmp_path / f"f{i:02d}.fits", 100 + i, (i * 0.3) % 360, 0.0, [1, 2])
    report = registry.ingest_fits(tmp_path, recursive=True, jobs=2)
    assert report.ok and report.counts["ccd"].inserted == 80
    assert "2 local processes" in report.executor


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_dask_executor(registry: Registry, tmp_path: Path, dask_scheduler: str) -> None:
    for i in range(20):
        write_decam(tmp_path / f"d{i:02d}.fits", 300 + i, 120.0 + i * 0.3, -5.0, [1, 2, 3])
    report = registry.ingest_fits(tmp_path, recursive=True, executor=dask_scheduler)
    assert report.ok and report.counts["ccd"].inserted == 60
    assert dask_scheduler in report.executor


def test_bad_executor_is_a_clear_error(registry: Registry, survey: Path) -> None:
    with pytest.raises(SkyregError, match="executor"):
        registry.ingest_fits(survey, recursive=True, executor="spark://nowhere")


def test_cli_reports_refused_files_and_exit_status(database_url: str, survey: Path) -> None:
    (survey / "junk.fits").write_text("no FITS here")
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", database_url, "ingest", "fits", "-r", str(survey),
                                 "--jobs", "1", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "junk.fits: not a FITS file" in result.stderr
    assert "Traceback" not in result.output
    result = runner.invoke(cli, ["--db", database_url, "datasets", "raw", "--cone", "0", "0",
                                 "0.1", "--format", "json"])
    assert result.exit_code == 0
    assert {row["instrument"] for row in json.loads(result.stdout)} == {"DECam"}


def test_ccd_without_usable_wcs_is_reported_and_planes_are_counted(database_url: str,
                                                                     tmp_path: Path) -> None:
    """A CCD HDU without a celestial WCS, or with CRVAL1 = NaN, refuses its file (exit 2);
    MASK and VARIANCE planes are passed over and counted in text and JSON output."""
    no_wcs = write_mef(tmp_path / "nowcs.fits", detectors=[1, 2], no_wcs_detectors=[2])
    nan = set_raw_card(write_mef(tmp_path / "nan.fits", visit=1000002, detectors=[1, 2]), 1,
                       "CRVAL1", "NaN")
    write_calexp(tmp_path / "calexp.fits")
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", database_url, "ingest", "fits", "-r", str(tmp_path),
                                 "--jobs", "1", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert f"refused: {no_wcs.resolve()}: HDU 2: no celestial WCS" in result.stderr
    assert f"refused: {nan.resolve()}: HDU 1: invalid WCS: CRVAL1 = NaN is not a number" in \
        result.stderr
    assert "image HDUs passed over: 2 (1 auxiliary plane MASK, 1 auxiliary plane VARIANCE)" \
        in result.stdout
    with Registry.connect(database_url) as registry:
        assert registry.counts()["ccds"] == 1  # the calexp's image only
        report = registry.ingest_fits(tmp_path, recursive=True, jobs=1)
    assert report.files_skipped == 1 and report.files_refused == 2 and not report.ok
    assert report.hdus_skipped == 0  # the calexp is registered: not read again
    write_calexp(tmp_path / "calexp2.fits", visit=2024080100013)
    result = runner.invoke(cli, ["--db", database_url, "ingest", "fits", "-r", str(tmp_path),
                                 "--jobs", "1", "--no-progress", "--format", "json"])
    assert result.exit_code == 2
    summary = json.loads(result.stdout)
    assert summary["hdus_skipped"] == 2
    assert summary["skipped"] == {"auxiliary plane MASK": 1, "auxiliary plane VARIANCE": 1}
    assert sorted(summary["problems"]) == sorted([
        f"{nan.resolve()}: HDU 1: invalid WCS: CRVAL1 = NaN is not a number",
        f"{no_wcs.resolve()}: HDU 2: no celestial WCS"])


_KILLED_INGEST = """
import sys
from pathlib import Path
from skyreg.db.engine import make_engine
from skyreg.db.migrate import ensure_schema
from skyreg.ingest.fits_ingest import FitsIngestOptions, ingest_fits
engine = make_engine(sys.argv[1])
scheme = ensure_schema(engine)
print("start", flush=True)
ingest_fits(engine, scheme, [Path(sys.argv[2])],
            FitsIngestOptions(recursive=True, jobs=1, ccds_per_transaction=3))
"""


def test_killed_ingest_leaves_only_whole_visits(database_url: str, tmp_path: Path) -> None:
    # One file per CCD: a visit's CCDs arrive in several files, committed together.
    for v in range(30):
        for d in range(1, 4):
            write_decam(tmp_path / f"v{v:02d}_d{d}.fits", 500 + v, 200.0 + v * 0.5, 10.0, [d])
    Registry.connect(database_url).close()
    engine = create_engine(database_url)

    def visits_per_state() -> list[tuple[int, int, int]]:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(
                "SELECT v.visit, count(c.detector), count(d.uri) FROM visit v "
                "LEFT JOIN ccd c USING (instrument, visit) "
                "LEFT JOIN ccd_dataset d USING (instrument, visit, detector) "
                "GROUP BY v.visit"))]

    observed: list[int] = []
    for _ in range(3):
        before = len(visits_per_state())
        process = subprocess.Popen([sys.executable, "-c", _KILLED_INGEST, database_url,
                                    str(tmp_path)], stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None and process.stdout.readline().strip() == "start"
        # Kill right after the run's first commit, while later transactions are under way.
        deadline = time.monotonic() + 60
        while len(visits_per_state()) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()
        per_visit = visits_per_state()
        assert all(ccds == 3 and files == 3 for _, ccds, files in per_visit), per_visit
        observed.append(len(per_visit))
    engine.dispose()
    # The test means something only if some kill hit a run half-way through.
    assert any(0 < count < 30 for count in observed), observed
    with Registry.connect(database_url) as registry:
        report = registry.ingest_fits(tmp_path, recursive=True, jobs=1)
        assert report.ok
        assert registry.counts()["ccds"] == 90 and registry.counts()["visits"] == 30
    assert _count(database_url, ccd_dataset) == 90


def test_concurrent_ingests_register_each_file_once(database_url: str, survey: Path) -> None:
    Registry.connect(database_url).close()
    script = ("import sys; from skyreg import Registry\n"
              "with Registry.connect(sys.argv[1]) as r:\n"
              "    print(r.ingest_fits(sys.argv[2], recursive=True, jobs=1).ok)\n")
    runs = [subprocess.Popen([sys.executable, "-c", script, database_url, str(survey)],
                             stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate()[0].strip() for run in runs]
    assert outputs == ["True", "True"]
    assert _count(database_url, ccd) == 12 and _count(database_url, ccd_dataset) == 12
