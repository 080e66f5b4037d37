"""Benchmark sky map registration: full-sky hsc_rings_v1 into a fresh registry.

Usage::

    python benchmarks/skymap_benchmark.py                       # embedded server, temp home
    python benchmarks/skymap_benchmark.py --db postgresql://postgres@127.0.0.1/test

Registers ``RingsDefinition(120, 0.168, 4000, 100, 1 arcmin)`` (HSC's hsc_rings_v1), checks the
tract count and that the COSMOS field (RA 150.1, Dec 2.2) lies in tract 9813, registers it a
second time (must be a no-op), and prints a table of the stages. Target: <= 60 s.
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from skyreg import Registry
from skyreg.db.engine import normalize_url
from skyreg.skymaps import RingsDefinition

HSC_RINGS_V1 = RingsDefinition(num_rings=120, pixel_scale_arcsec=0.168, patch_inner_pixels=4000,
                               patch_border_pixels=100, tract_overlap_deg=1 / 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="PostgreSQL URL of a server (a fresh database is made)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    home = None
    admin_url = None
    if args.db:
        admin_url = normalize_url(args.db)
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text('DROP DATABASE IF EXISTS "skyreg_skymap_bench" WITH (FORCE)'))
            connection.execute(text('CREATE DATABASE "skyreg_skymap_bench"'))
        url: str | None = make_url(admin_url).set(
            database="skyreg_skymap_bench").render_as_string(hide_password=False)
        where = "PostgreSQL server"
    else:
        home = Path(tempfile.mkdtemp(prefix="skyreg-skymap-bench-"))
        # atexit runs last-registered first: the embedded server (registered by connect) is
        # released before its temporary home is removed.
        atexit.register(shutil.rmtree, home, True)
        url = None
        where = "embedded server"
    try:
        with Registry.connect(url, home=home) as registry:
            report = registry.register_skymap("hsc_rings_v1", HSC_RINGS_V1)
            started = time.perf_counter()
            again = registry.register_skymap("hsc_rings_v1", HSC_RINGS_V1)
            noop = time.perf_counter() - started
            cosmos = registry.find_tracts(point=(150.1, 2.2), skymap="hsc_rings_v1",
                                          inner=True)
            with registry.engine.connect() as connection:
                version = connection.execute(text("SHOW server_version")).scalar_one()
                pixels = connection.execute(text("SELECT count(*) FROM patch_pixel")).scalar_one()
        assert report.registered and not again.registered
        assert report.counts["tract"].inserted == 18_938, report.counts
        assert [t.tract for t in cosmos] == [9813], cosmos
        print(f"\n## full-sky hsc_rings_v1 — {where} (PostgreSQL {version})\n")
        print("| measurement | value |\n|---|---|")
        print(f"| tracts, patches | {report.counts['tract'].inserted:,}, "
              f"{report.counts['patch'].inserted:,} |")
        print(f"| patch pixel rows | {pixels:,} |")
        print(f"| register, definition → committed | {report.seconds:.1f} s (target 60 s) |")
        for stage, seconds in report.stage_seconds.items():
            print(f"| … {stage} | {seconds:.1f} s |")
        print(f"| register again (same definition) | {noop * 1000:.1f} ms |")
        print("| COSMOS (150.1, 2.2) in tract | 9813 |")
        if args.json:
            args.json.write_text(json.dumps({**report.as_dict(), "noop_seconds": noop,
                                             "server_version": version}, indent=2))
    finally:
        if admin_url is not None:
            admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(
                    'DROP DATABASE IF EXISTS "skyreg_skymap_bench" WITH (FORCE)'))


if __name__ == "__main__":
    main()
