"""Benchmark skyreg on a synthetic LSST-like survey: ingest rate, query latency, size per CCD.

Usage::

    python benchmarks/run_benchmarks.py --visits 10000          # embedded server, temp home
    python benchmarks/run_benchmarks.py --visits 1000 --db postgresql://postgres@127.0.0.1/test

It generates the survey (cached under benchmarks/data/), ingests it into a fresh registry,
times >= 200 different warm queries of each kind through the in-process Python API, checks a
sample of the answers against a brute-force sphgeom scan, and prints a table (also written as
JSON with --json). Speed is never reported without the exactness check passing.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from lsst.sphgeom import Angle, Circle, ConvexPolygon, LonLat, UnitVector3d
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from skyreg import Registry
from skyreg.db.engine import normalize_url
from skyreg.synthetic import SurveySpec, generate_survey

DATA = Path(__file__).resolve().parent / "data"


#: File URIs given to every CCD with --with-files (the file archive is then loaded too).
FILE_URIS = "s3://survey-archive/raw/{instrument}/{visit}/{detector}.fits"


def survey(visits: int, seed: int, with_files: bool = False, area: float | None = None) -> Path:
    """The synthetic survey (cached): the default 20 x 15 deg field, or ``area`` deg² (4:3)."""
    shape = {} if area is None else {"width_deg": (area * 4 / 3) ** 0.5,
                                     "height_deg": (area * 3 / 4) ** 0.5}
    name = f"survey-{visits}-{seed}{'-files' if with_files else ''}"
    target = DATA / (name + (f"-area{area:g}" if area is not None else ""))
    if not (target / "manifest.json").exists():
        shutil.rmtree(target, ignore_errors=True)
        spec = SurveySpec(n_visits=visits, seed=seed,
                          file_uri_template=FILE_URIS if with_files else None, **shape)
        summary = generate_survey(target, spec)
        print(f"generated {summary.n_ccds:,} CCDs in {summary.seconds:.1f} s", file=sys.stderr)
    return target


def fresh_database(url: str) -> str:
    """A new database on the server of ``url``, dropped again when the benchmark exits."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"skyreg_bench_{os.getpid()}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    atexit.register(drop)
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def timed(calls: list[Callable[[], Any]]) -> tuple[list[float], list[int]]:
    for call in calls:  # warm-up pass: caches, prepared statements
        call()
    times, sizes = [], []
    for call in calls:
        start = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - start) * 1000)
        sizes.append(len(result))
    return times, sizes


def polygon(ra: list[float], dec: list[float]) -> ConvexPolygon:
    return ConvexPolygon([UnitVector3d(LonLat.fromDegrees(r, d)) for r, d in
                          zip(ra, dec, strict=True)])


def remove_home(home: Path) -> None:
    from skyreg.db.embedded import EmbeddedServer

    EmbeddedServer(home).stop()
    shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visits", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--verify", type=int, default=5,
                        help="queries per kind checked against a brute-force scan")
    parser.add_argument("--db", help="PostgreSQL URL of a server (a fresh database is made "
                        "there); default: an embedded server in a temporary home")
    parser.add_argument("--pixelization", default="htm9")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--area", type=float,
                        help="survey area in deg² (default: a 20 x 15 deg field)")
    parser.add_argument("--bulk-tracts", type=int, default=5,
                        help="tracts whose CCD x patch pairs are timed")
    parser.add_argument("--with-files", action="store_true",
                        help="give every CCD a file URI, so ingest fills the file archive too")
    args = parser.parse_args()

    root = survey(args.visits, args.seed, args.with_files, args.area)
    home = None
    if args.db:
        url = fresh_database(normalize_url(args.db))
        where = "PostgreSQL server " + make_url(args.db).render_as_string(hide_password=True)
    else:
        home = Path(tempfile.mkdtemp(prefix="skyreg-bench-"))
        # atexit runs last-registered first: the server (registered by connect) is released,
        # then stopped rather than left lingering, then its temporary home is removed.
        atexit.register(remove_home, home)
        url = None
        where = "embedded server"
    registry = Registry.connect(url, home=home, pixelization=args.pixelization)
    report = registry.ingest_manifest(root)
    n_ccds = report.counts["ccd"].in_input

    with registry.engine.connect() as connection:
        sizes = dict(connection.execute(text(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname IN "
            "('ccd', 'ccd_pixel', 'visit', 'patch', 'patch_pixel', 'tract', 'tract_pixel', "
            "'ccd_patch_overlap', 'ccd_tract_overlap')"
        )).all())
        # Part of ccd's total above; shown on its own for the size cost of the cone index.
        centre_index_bytes = connection.execute(text(
            "SELECT coalesce(pg_relation_size(to_regclass('ix_ccd_centre_pix')), 0)"
        )).scalar_one()
        pixel_rows = connection.execute(text("SELECT count(*) FROM ccd_pixel")).scalar_one()
        pair_rows = {name: connection.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
                     for name in ("ccd_patch_overlap", "ccd_tract_overlap")}
        version = connection.execute(text("SHOW server_version")).scalar_one()

    rng = np.random.default_rng(args.seed)
    ccd_table = pq.read_table(root / "visit_detector_regions.parquet",
                              columns=["instrument", "visit", "detector", "ra", "dec"])
    picks = rng.choice(ccd_table.num_rows, size=args.queries, replace=False)
    sample = ccd_table.take(picks).to_pylist()
    ccd_keys = [(r["instrument"], r["visit"], r["detector"]) for r in sample]
    centers = [(float(np.mean(r["ra"])) if max(r["ra"]) - min(r["ra"]) < 180 else r["ra"][0],
                float(np.mean(r["dec"]))) for r in sample]
    patches = []
    for key in ccd_keys:
        found = registry.find_patches(ccd=key)
        patches.append(found[int(rng.integers(len(found)))])

    kinds: dict[str, list[Callable[[], Any]]] = {
        "find_ccds(patch=...)": [lambda p=p: registry.find_ccds(patch=p) for p in patches],
        "find_patches(ccd=...)": [lambda k=k: registry.find_patches(ccd=k) for k in ccd_keys],
        "find_ccds(cone r=0.2°)": [lambda c=c: registry.find_ccds(cone=(*c, 0.2))
                                   for c in centers],
        "find_tracts(ccd=...)": [lambda k=k: registry.find_tracts(ccd=k) for k in ccd_keys],
        "find_ccds(point=...)": [lambda c=c: registry.find_ccds(point=c) for c in centers],
    }
    if args.with_files:
        kinds["find_datasets(raw, cone r=0.2°)"] = [
            lambda c=c: registry.find_datasets("raw", cone=(*c, 0.2)) for c in centers]
    # The same questions in plain SQL (docs/sql.md), as an operator would ask them in psql.
    driver = registry._conn.connection.driver_connection

    def sql(statement: str, params: tuple[Any, ...]) -> Callable[[], list[Any]]:
        return lambda: driver.execute(statement, params, prepare=True).fetchall()

    kinds.update({
        "SQL skyreg_ccds_overlapping_patch": [
            sql("SELECT * FROM skyreg_ccds_overlapping_patch(%s, %s, %s)", tuple(p))
            for p in patches],
        "SQL skyreg_patches_overlapping_ccd": [
            sql("SELECT * FROM skyreg_patches_overlapping_ccd(%s, %s, %s)", k)
            for k in ccd_keys],
        "SQL skyreg_ccds_in_cone r=0.2°": [
            sql("SELECT * FROM skyreg_ccds_in_cone(%s, %s, 0.2)", c) for c in centers],
        "SQL skyreg_tracts_overlapping_ccd": [
            sql("SELECT * FROM skyreg_tracts_overlapping_ccd(%s, %s, %s)", k)
            for k in ccd_keys],
        "SQL skyreg_ccds_containing_point": [
            sql("SELECT * FROM skyreg_ccds_containing_point(%s, %s)", c) for c in centers],
        "SQL skyreg_ccds_overlapping_tract": [
            sql("SELECT * FROM skyreg_ccds_overlapping_tract(%s, %s)", (p.skymap, p.tract))
            for p in patches],
    })
    results: dict[str, Any] = {}
    for name, calls in kinds.items():
        times, counts = timed(calls)
        results[name] = {
            "median_ms": statistics.median(times),
            "p95_ms": float(np.percentile(times, 95)),
            "mean_rows": statistics.mean(counts),
            # Per returned row: the median query's time over the mean answer size.
            "us_per_row": statistics.median(times) * 1000 / max(statistics.mean(counts), 1),
        }

    # Bulk join: every CCD x patch pair of a tract, in one SQL statement and through Python.
    tracts = list(dict.fromkeys((p.skymap, p.tract) for p in patches))[:args.bulk_tracts]
    bulk: dict[str, Any] = {}
    for name, call in (
        ("SQL skyreg_ccd_patch_pairs(tract)",
         lambda t: driver.execute("SELECT * FROM skyreg_ccd_patch_pairs(%s, %s)", t).fetchall()),
        ("Python find_ccds per patch of the tract",
         lambda t: [(p, c) for p in registry.find_patches(region=registry.tract_region(*t),
                                                          skymap=t[0])
                    if p.tract == t[1] for c in registry.find_ccds(patch=tuple(p))]),
    ):
        times, pair_counts = timed([lambda t=t, call=call: call(t) for t in tracts])
        bulk[name] = {"median_s": statistics.median(times) / 1000, "max_s": max(times) / 1000,
                      "mean_pairs": statistics.mean(pair_counts)}

    # Truth: brute-force sphgeom over every CCD for a sample of the timed queries.
    verified = 0
    if args.verify:
        all_polys = [polygon(r, d) for r, d in zip(ccd_table.column("ra").to_pylist(),
                                                    ccd_table.column("dec").to_pylist(),
                                                    strict=True)]
        with registry.engine.connect() as connection:
            all_patches = [((s, t, p), ConvexPolygon.decode(region)) for s, t, p, region in
                           connection.execute(text(
                               "SELECT skymap, tract, patch, outer_region FROM patch"))]
        keys = list(zip(ccd_table.column("instrument").to_pylist(),
                        ccd_table.column("visit").to_pylist(),
                        ccd_table.column("detector").to_pylist(), strict=True))
        for i in range(args.verify):
            patch_poly = registry.patch_region(*patches[i])
            cone = Circle(UnitVector3d(LonLat.fromDegrees(*centers[i])), Angle.fromDegrees(0.2))
            for region, got in ((patch_poly, registry.find_ccds(patch=patches[i])),
                                (cone, registry.find_ccds(cone=(*centers[i], 0.2)))):
                truth = {k for k, p in zip(keys, all_polys, strict=True) if p.overlaps(region)}
                if truth != {tuple(row) for row in got}:
                    raise SystemExit(f"MISMATCH against brute force for query {i}")
                verified += 1
            footprint = registry.ccd_region(*ccd_keys[i])
            patch_truth = {key for key, poly in all_patches if poly.overlaps(footprint)}
            if patch_truth != {tuple(row) for row in registry.find_patches(ccd=ccd_keys[i])}:
                raise SystemExit(f"MISMATCH against brute force for find_patches query {i}")
            verified += 1
    registry.close()

    db_bytes = sum(sizes.values())
    ccd_bytes = sizes.get("ccd", 0) + sizes.get("ccd_pixel", 0)
    overlap_bytes = sizes.get("ccd_patch_overlap", 0) + sizes.get("ccd_tract_overlap", 0)
    summary = {
        "visits": args.visits, "ccds": n_ccds, "server": f"{where} (PostgreSQL {version})",
        "area_deg2": args.area if args.area is not None else 300.0,
        "pixelization": args.pixelization,
        "ingest_seconds": report.seconds, "ingest_ccds_per_second": report.ccds_per_second(),
        "ingest_stage_seconds": report.stage_seconds,
        "ccd_pixel_rows_per_ccd": pixel_rows / n_ccds,
        "bytes_per_ccd": ccd_bytes / n_ccds, "database_bytes": db_bytes,
        "centre_index_bytes_per_ccd": centre_index_bytes / n_ccds,
        "overlap_rows_per_ccd": {k: v / n_ccds for k, v in pair_rows.items()},
        "overlap_bytes_per_ccd": overlap_bytes / n_ccds,
        "table_bytes": sizes, "queries": results, "bulk_join": bulk,
        "verified_against_brute_force": verified,
    }
    print(f"\n## {args.visits:,} visits, {n_ccds:,} CCDs — {summary['server']}, "
          f"{args.pixelization}, {os.cpu_count()} cores\n")
    print("| measurement | value |\n|---|---|")
    print(f"| ingest, manifest on disk → committed | {report.seconds:.1f} s = "
          f"{report.ccds_per_second():,.0f} CCDs/s |")
    for stage, seconds in report.stage_seconds.items():
        print(f"| … {stage} | {seconds:.1f} s |")
    print(f"| pixel rows per CCD | {pixel_rows / n_ccds:.2f} |")
    print(f"| ccd + ccd_pixel size per CCD (tables + indexes) | {ccd_bytes / n_ccds:,.0f} B |")
    print(f"| … of which the centre-pixel index (cones, points) | "
          f"{centre_index_bytes / n_ccds:,.0f} B |")
    print(f"| overlap relations per CCD (tables + indexes) | {overlap_bytes / n_ccds:,.0f} B "
          f"({pair_rows['ccd_patch_overlap'] / n_ccds:.2f} patch and "
          f"{pair_rows['ccd_tract_overlap'] / n_ccds:.2f} tract pairs) |")
    print(f"| whole database (tables + indexes) | {db_bytes / 2**20:,.0f} MiB |")
    print(f"\n| query ({args.queries} different, warm) | median | p95 | mean rows | µs/row |")
    print("|---|---|---|---|---|")
    for name, row in results.items():
        print(f"| {name} | {row['median_ms']:.2f} ms | {row['p95_ms']:.2f} ms | "
              f"{row['mean_rows']:.1f} | {row['us_per_row']:.1f} |")
    print(f"\n| bulk join, {len(tracts)} tracts | median | max | pairs per tract |")
    print("|---|---|---|---|")
    for name, row in bulk.items():
        print(f"| {name} | {row['median_s']:.2f} s | {row['max_s']:.2f} s | "
              f"{row['mean_pairs']:,.0f} |")
    print(f"\nexactness: {verified} answers equal the brute-force sphgeom scan")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
