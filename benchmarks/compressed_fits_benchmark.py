"""What reading the headers of a whole-file compressed FITS file costs (.fits.gz, .fits.bz2).

Usage::

    python benchmarks/compressed_fits_benchmark.py --hdus 8
    python benchmarks/compressed_fits_benchmark.py --hdus 8 --json benchmarks/results/x.json

Writes one DECam-like MEF (a primary HDU plus ``--hdus`` CCD images of 2046 x 4094 16-bit
pixels holding sky noise, which compresses about as real raw data do), compresses it whole with
gzip and bzip2, and measures, per form and on one core (CPU time of this process):

- ``scan_file`` (headers, keywords, WCS and footprints of every CCD);
- the header walk alone, with the bytes inflated and the compressed bytes read;
- for comparison, astropy reading every header (``fits.open`` then each ``.header``).

A single-image file (primary HDU only) is measured too: there the gzip trailer's size lets the
reader stop after the header without inflating any data.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from fits_ingest_benchmark import NAXIS1, NAXIS2, _ccd_header
from skyreg.fits import scan_file
from skyreg.fits.headers import iter_hdus
from skyreg.fits.streams import FitsStream


def _noise(rng: np.random.Generator) -> bytes:
    """A CCD's worth of sky: ~1000 counts with Poisson-like noise, big-endian int16."""
    image = rng.normal(1000.0, 30.0, size=(NAXIS2, NAXIS1)).astype(">i2")
    return image.tobytes()


def write_mef(path: Path, hdus: int) -> None:
    rng = np.random.default_rng(7)
    primary = fits.Header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True),
                           ("INSTRUME", "DECam"), ("EXPNUM", 300_001), ("MJD-OBS", 59000.3),
                           ("EXPTIME", 90.0), ("FILTER", "r DECam SDSS c0002 6415.0 1480.0")])
    with path.open("wb") as stream:
        stream.write(primary.tostring().encode("ascii"))
        for number in range(1, hdus + 1):
            stream.write(_ccd_header(300_001, number, 150.0, 2.0).tostring().encode("ascii"))
            data = _noise(rng)
            stream.write(data + b"\0" * (-len(data) % 2880))


def write_single(path: Path) -> None:
    """One image in the primary HDU (as many archive products are)."""
    header = _ccd_header(300_002, 1, 150.0, 2.0)
    del header["XTENSION"], header["PCOUNT"], header["GCOUNT"]
    header.insert(0, ("SIMPLE", True))
    header["INSTRUME"], header["EXPNUM"], header["MJD-OBS"] = "DECam", 300_002, 59000.4
    header["EXPTIME"], header["FILTER"] = 90.0, "r DECam SDSS c0002 6415.0 1480.0"
    data = _noise(np.random.default_rng(8))
    path.write_bytes(header.tostring().encode("ascii") + data + b"\0" * (-len(data) % 2880))


def _cpu(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.process_time()
        result = call()
        best = min(best, time.process_time() - started)
    return best, result


def _walk(path: Path) -> dict[str, int]:
    with path.open("rb") as raw:
        stream = FitsStream(raw, path.stat().st_size)
        hdus = list(iter_hdus(stream))
        return {"hdus": len(hdus), "inflated": stream.inflated,
                "stored_read": stream.stored_bytes_read, "last_header_end": hdus[-1].data_offset}


def _astropy_headers(path: Path) -> int:
    with fits.open(path) as hdul:
        return sum(len(hdu.header) for hdu in hdul)


def measure(path: Path, repeat: int) -> dict[str, Any]:
    scan_s, scan = _cpu(lambda: scan_file(path), repeat)
    assert not scan.problems, scan.problems
    walk_s, walk = _cpu(lambda: _walk(path), repeat)
    astropy_s, _ = _cpu(lambda: _astropy_headers(path), repeat)
    return {"file": path.name, "stored_mb": round(path.stat().st_size / 1e6, 1),
            "records": len(scan.records), "scan_cpu_s": round(scan_s, 3),
            "walk_cpu_s": round(walk_s, 3), "inflated_mb": round(walk["inflated"] / 1e6, 1),
            "stored_read_mb": round(walk["stored_read"] / 1e6, 2),
            "last_header_end_mb": round(walk["last_header_end"] / 1e6, 1),
            "astropy_headers_cpu_s": round(astropy_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hdus", type=int, default=8, help="CCD HDUs of the MEF")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="skyreg-gzbench-"))
    try:
        rows = []
        for name, writer in (("mef.fits", lambda p: write_mef(p, args.hdus)),
                             ("single.fits", write_single)):
            plain = work / name
            writer(plain)
            content = plain.read_bytes()
            started = time.perf_counter()
            (work / f"{name}.gz").write_bytes(gzip.compress(content, compresslevel=6))
            gzip_s = time.perf_counter() - started
            (work / f"{name}.bz2").write_bytes(bz2.compress(content, compresslevel=9))
            print(f"{name}: {len(content) / 1e6:.1f} MB, gzip -6 in {gzip_s:.1f} s",
                  file=sys.stderr)
            for path in (plain, work / f"{name}.gz", work / f"{name}.bz2"):
                rows.append(measure(path, args.repeat))
        header = list(rows[0])
        print(" | ".join(header))
        print(" | ".join("---" for _ in header))
        for row in rows:
            print(" | ".join(str(value) for value in row.values()))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
