"""Benchmark FITS ingest: header-only reading rate per core and the whole ingest, by ``--jobs``.

Usage::

    python benchmarks/fits_ingest_benchmark.py --files 40 --hdus 60
    python benchmarks/fits_ingest_benchmark.py --db postgresql://postgres@127.0.0.1/test --jobs 1 2

It writes DECam-like multi-extension files (a primary HDU plus ``--hdus`` CCD images of
2046 x 4094 16-bit pixels with TPV-distorted WCS and ~150 header cards each, as real
Community Pipeline files have). The data sections are left as holes in sparse files: their
size on disk is the headers only, while a reader that touched the pixels would have to read
16 MB per HDU. Each run ingests the files into a fresh database and prints a table; the
target is >= 500 CCD HDUs/s per core for reading.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from skyreg import Registry
from skyreg.db.engine import normalize_url

NAXIS1, NAXIS2 = 2046, 4094
SCALE = 0.263 / 3600
#: A TPV polynomial like DECam's (small terms, as in real Community Pipeline headers).
TPV = {"PV1_0": 0.0, "PV1_1": 1.0, "PV1_2": 0.0, "PV1_4": 3.1e-3, "PV1_5": -1.6e-3,
       "PV1_6": 2.0e-3, "PV1_7": -9.0e-3, "PV1_9": 4.0e-3, "PV1_10": -2.0e-3,
       "PV2_0": 0.0, "PV2_1": 1.0, "PV2_2": 0.0, "PV2_4": -4.0e-3, "PV2_5": 2.2e-3,
       "PV2_6": -1.1e-3, "PV2_7": 8.0e-3, "PV2_9": -3.0e-3, "PV2_10": 1.5e-3}


def _ccd_header(expnum: int, number: int, ra: float, dec: float) -> fits.Header:
    header = fits.Header()
    header["XTENSION"] = "IMAGE"
    header["BITPIX"] = 16
    header["NAXIS"] = 2
    header["NAXIS1"] = NAXIS1
    header["NAXIS2"] = NAXIS2
    header["PCOUNT"] = 0
    header["GCOUNT"] = 1
    header["EXTNAME"] = f"S{number}"
    header["CCDNUM"] = number
    header["DETPOS"] = f"S{number}"
    column, row = (number - 1) % 8, (number - 1) // 8
    header["CTYPE1"], header["CTYPE2"] = "RA---TPV", "DEC--TPV"
    header["CRVAL1"], header["CRVAL2"] = ra, dec
    header["CRPIX1"] = NAXIS1 / 2 - (column - 3.5) * (NAXIS1 + 150)
    header["CRPIX2"] = NAXIS2 / 2 - (row - 3.5) * (NAXIS2 + 150)
    header["CD1_1"], header["CD1_2"] = 0.0, SCALE
    header["CD2_1"], header["CD2_2"] = -SCALE, 0.0
    for key, value in TPV.items():
        header[key] = value
    for i in range(110):  # the calibration and provenance cards real files carry
        header[f"CAL{i:05d}"] = (i * 1.5, "calibration value, as real CP headers carry")
    return header


def write_sparse_mef(path: Path, expnum: int, hdus: int, ra: float, dec: float) -> None:
    """One MEF with ``hdus`` CCD images whose data are holes (sparse file)."""
    primary = fits.Header()
    primary["SIMPLE"] = True
    primary["BITPIX"] = 8
    primary["NAXIS"] = 0
    primary["EXTEND"] = True
    primary["INSTRUME"] = "DECam"
    primary["EXPNUM"] = expnum
    primary["MJD-OBS"] = 59000.0 + expnum * 1e-3
    primary["EXPTIME"] = 90.0
    primary["FILTER"] = "r DECam SDSS c0002 6415.0 1480.0"
    primary["TELRA"] = "10:00:00.00"
    primary["TELDEC"] = "02:00:00.0"
    data_bytes = NAXIS1 * NAXIS2 * 2
    padded = -(-data_bytes // 2880) * 2880
    with path.open("wb") as stream:
        stream.write(primary.tostring().encode("ascii"))
        for number in range(1, hdus + 1):
            stream.write(_ccd_header(expnum, number, ra, dec).tostring().encode("ascii"))
            stream.seek(padded, os.SEEK_CUR)
        stream.truncate()


def fresh_database(url: str, suffix: str) -> str:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"skyreg_fitsbench_{os.getpid()}_{suffix}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, target: str) -> None:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        name = make_url(target).database
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=40, help="MEF files to write")
    parser.add_argument("--hdus", type=int, default=60, help="CCD HDUs per file")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2],
                        help="process counts to measure")
    parser.add_argument("--db", help="PostgreSQL URL (default: embedded server, temp home)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="skyreg-fitsbench-"))
    home = None
    try:
        started = time.perf_counter()
        rng = np.random.default_rng(3)
        for i in range(args.files):
            write_sparse_mef(work / f"c4d_{i:05d}.fits", 200_000 + i, args.hdus,
                             float(rng.uniform(0, 360)), float(rng.uniform(-60, 30)))
        apparent = sum(p.stat().st_size for p in work.iterdir())
        on_disk = sum(p.stat().st_blocks * 512 for p in work.iterdir())
        print(f"wrote {args.files} files x {args.hdus} HDUs in "
              f"{time.perf_counter() - started:.1f} s: {apparent / 1e9:.1f} GB apparent, "
              f"{on_disk / 1e6:.1f} MB on disk", file=sys.stderr)
        if args.db:
            server = normalize_url(args.db)
        else:
            from skyreg.db.embedded import EmbeddedServer

            home = Path(tempfile.mkdtemp(prefix="skyreg-fitsbench-home-"))
            server = EmbeddedServer(home).acquire()
        results = []
        for jobs in args.jobs:
            url = fresh_database(server, str(jobs))
            try:
                with Registry.connect(url) as registry:
                    report = registry.ingest_fits(work, recursive=True, jobs=jobs)
                assert report.ok, report.problem_lines()[:3]
            finally:
                drop_database(server, url)
            hdus = report.hdus_scanned
            results.append({
                "jobs": jobs, "files": report.files_scanned, "hdus": hdus,
                "read_s": round(report.scan_seconds, 2),
                "read_hdus_per_s": round(hdus / report.scan_seconds),
                "read_hdus_per_s_per_core": round(hdus / report.scan_seconds / jobs),
                "total_s": round(report.seconds, 2),
                "total_hdus_per_s": round(hdus / report.seconds),
            })
        header = ("jobs", "files", "HDUs", "read s", "read HDUs/s", "per core", "total s",
                  "total HDUs/s")
        print(" | ".join(header))
        print(" | ".join("---" for _ in header))
        for row in results:
            print(" | ".join(f"{value:,}" if isinstance(value, int) else str(value)
                             for value in row.values()))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if home is not None:
            from skyreg.db.embedded import EmbeddedServer

            EmbeddedServer(home).stop()
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
