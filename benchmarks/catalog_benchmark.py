"""Level-2 catalogs: load rate, exact cone searches and the bulk cross-match, with peers.

Usage::

    python benchmarks/catalog_benchmark.py --rows 10000000 [--extra-columns 30] [--db URL]

A full-sky catalog (uniform on the sphere, ``--extra-columns`` float32 columns besides id,
RA, Dec, as a stand-in for an Object table's measurements) is written to Parquet with numpy,
loaded with ``Registry.load_catalog`` (the rate in rows/s covers COPY, checks, insert and
indexes), then:

* cones of r = 1″, 0.1° and 1° at ``--queries`` random centres through ``catalog.cone``
  (median and p95, returning id, RA, Dec), every answer of a sample checked against a
  brute-force numpy scan of all rows first;
* the cross-match of ``--matches`` positions (catalog rows moved by up to 0.5″) within 1″
  through ``catalog.near``, checked against brute force for a sample;
* peers on the same table: a plain B-tree on (dec, ra) with the same exact test, and the
  layout question — a narrow positional table (id, pixel, unit vector) next to the full
  rows, against the one clustered table skyreg uses (``--layout``).

Without ``--db`` a temporary embedded server is used. The issue quotes Q3C at 10 M rows on
PostgreSQL 15 here: 3.7 / 3.4 / 4.3 ms (``q3c_radial_query``, after CLUSTER).
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from skyreg import Registry
from skyreg.catalogs.array_params import register_on
from skyreg.catalogs.positions import squared_chord, squared_chord_sql, unit_vectors

RADII = {"1″": 1.0 / 3600.0, "0.1°": 0.1, "1°": 1.0}
CHUNK = 1_000_000


def generate(path_dir: Path, rows: int, extra: int, seed: int
             ) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Parquet files of CHUNK rows each; returns the files and all positions."""
    rng = np.random.default_rng(seed)
    ra_all = np.empty(rows)
    dec_all = np.empty(rows)
    files = []
    for number, start in enumerate(range(0, rows, CHUNK)):
        n = min(CHUNK, rows - start)
        ra = rng.uniform(0.0, 360.0, n)
        dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
        ra_all[start:start + n], dec_all[start:start + n] = ra, dec
        columns: dict[str, Any] = {"objectId": np.arange(start, start + n, dtype=np.int64),
                                   "coord_ra": ra, "coord_dec": dec}
        for k in range(extra):
            columns[f"m{k:03d}_flux"] = rng.standard_normal(n).astype(np.float32)
        path = path_dir / f"object_{number:03d}.parquet"
        pq.write_table(pa.table(columns), path, row_group_size=200_000)
        files.append(path)
    return files, ra_all, dec_all


def brute_cone(xyz: tuple[np.ndarray, ...], ids: np.ndarray, ra: float, dec: float,
               radius: float) -> list[int]:
    from skyreg.geometry.query_regions import make_query_region

    region = make_query_region(cone=(ra, dec, radius))
    assert region is not None
    circle: Any = region.region
    c, d2 = circle.getCenter(), circle.getSquaredChordLength()
    dist = squared_chord(*xyz, c.x(), c.y(), c.z())
    return sorted(ids[dist <= d2].tolist())


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1e3


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median_ms": statistics.median(ordered),
            "p95_ms": ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]}


def random_centres(rng: np.random.Generator, n: int) -> list[tuple[float, float]]:
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return list(zip(ra.tolist(), dec.tolist(), strict=True))


def skyreg_sql_cone(driver: Any, catalog: Any, columns: list[str]
                    ) -> Callable[[tuple[float, float], float], None]:
    """skyreg's cone statement alone (cover, then the prepared SQL on the raw driver), to
    tell the server's share of a cone from the Python API's."""
    from lsst.sphgeom import Angle, Circle, LonLat, UnitVector3d

    from skyreg.catalogs import level2_query, positions
    from skyreg.catalogs.array_params import Int8Array

    statement = level2_query._cone_sql(catalog.info, ("objectId", *columns), False)

    def run(centre: tuple[float, float], radius: float) -> None:
        circle = Circle(UnitVector3d(LonLat.fromDegrees(*centre)), Angle.fromDegrees(radius))
        lo, hi = positions.cone_ranges(circle)
        v = circle.getCenter()
        params = {"lo": Int8Array(lo), "hi": Int8Array(hi), "cx": v.x(), "cy": v.y(),
                  "cz": v.z(), "d2": circle.getSquaredChordLength()}
        with driver.cursor(binary=True) as cursor:
            cursor.execute(statement, params, prepare=True).fetchall()

    return run


def dec_ra_sql(driver: Any) -> Callable[[float, float, float], list[int]]:
    """Cone search over a plain B-tree on (coord_dec, coord_ra), same exact test."""
    statement = (
        'SELECT "objectId", coord_ra, coord_dec FROM catalogs.bench '
        "WHERE coord_dec BETWEEN %(d0)s AND %(d1)s "
        "AND (coord_ra BETWEEN %(a0)s AND %(a1)s OR coord_ra BETWEEN %(b0)s AND %(b1)s) "
        "AND {chord} <= %(d2)s "
        'ORDER BY "objectId"')
    chord = squared_chord_sql(
        [sql.Identifier(n) for n in ("skyreg_x", "skyreg_y", "skyreg_z")],
        [sql.Placeholder(n) for n in ("cx", "cy", "cz")]).as_string(None)
    statement = statement.replace("{chord}", chord)

    def run(ra: float, dec: float, radius: float) -> list[int]:
        from skyreg.geometry.query_regions import make_query_region

        region = make_query_region(cone=(ra, dec, radius))
        assert region is not None
        circle: Any = region.region
        c = circle.getCenter()
        d0, d1 = dec - radius, dec + radius
        if d0 <= -90.0 or d1 >= 90.0:
            a0, a1, b0, b1 = 0.0, 360.0, 1.0, 0.0
        else:
            half = math.degrees(math.asin(min(1.0, math.sin(math.radians(radius))
                                              / math.cos(math.radians(max(abs(d0), abs(d1)))))))
            half *= 1.0 + 1e-9
            a0, a1 = ra - half, ra + half
            b0, b1 = (a0 + 360.0, 360.0) if a0 < 0 else ((0.0, a1 - 360.0) if a1 > 360.0
                                                          else (1.0, 0.0))
        params = {"d0": d0, "d1": d1, "a0": a0, "a1": a1, "b0": b0, "b1": b1, "cx": c.x(),
                  "cy": c.y(), "cz": c.z(), "d2": circle.getSquaredChordLength()}
        with driver.cursor(binary=True) as cursor:
            return [row[0] for row in cursor.execute(statement, params, prepare=True)]

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--extra-columns", type=int, default=30)
    parser.add_argument("--queries", type=int, default=300, help="cones per radius")
    parser.add_argument("--check", type=int, default=30, help="answers checked per radius")
    parser.add_argument("--matches", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", help="PostgreSQL URL (a fresh database is made on its server)")
    parser.add_argument("--layout", action="store_true",
                        help="also measure a narrow positional table next to the full rows")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    scratch = tempfile.TemporaryDirectory(prefix="skyreg-catalog-bench-",
                                          ignore_cleanup_errors=True)
    atexit.register(scratch.cleanup)
    work = Path(scratch.name)
    url: str | None = None
    home: Path | None = None
    if args.db:
        from service_benchmark import fresh_database
        from skyreg.db.engine import normalize_url
        url = fresh_database(normalize_url(args.db))
    else:
        home = work / "home"
    started = time.perf_counter()
    files, ra, dec = generate(work, args.rows, args.extra_columns, args.seed)
    generated = time.perf_counter() - started
    print(f"generated {args.rows:,} rows in {generated:.1f} s", file=sys.stderr)
    result: dict[str, Any] = {"rows": args.rows, "extra_columns": args.extra_columns,
                              "load_average": os.getloadavg()}
    with Registry.connect(url, home=home) as registry:
        started = time.perf_counter()
        report = registry.load_catalog("bench", files, ra="coord_ra", dec="coord_dec",
                                       id="objectId")
        seconds = time.perf_counter() - started
        assert report.inserted == args.rows
        result["load_seconds"] = seconds
        result["load_rows_per_second"] = args.rows / seconds
        print(f"loaded in {seconds:.1f} s ({args.rows / seconds:,.0f} rows/s)", file=sys.stderr)
        raw = registry.engine.raw_connection()
        driver: Any = raw.driver_connection
        assert driver is not None
        driver.autocommit = True
        register_on(driver.adapters)
        driver.execute("VACUUM ANALYZE catalogs.bench")
        size = driver.execute("SELECT pg_total_relation_size('catalogs.bench')").fetchone()
        result["table_bytes"] = size[0] if size else 0
        catalog = registry.catalog("bench")
        ids = np.arange(args.rows, dtype=np.int64)
        xyz = unit_vectors(ra, dec)
        rng = np.random.default_rng(args.seed + 1)
        columns = ["coord_ra", "coord_dec"]
        cones: dict[str, Any] = {}
        sql_cone = skyreg_sql_cone(driver, catalog, columns)
        for label, radius in RADII.items():
            centres = random_centres(rng, args.queries)
            for c_ra, c_dec in centres[:args.check]:
                got = catalog.cone(c_ra, c_dec, radius, columns=columns)["objectId"].tolist()
                assert got == brute_cone(xyz, ids, c_ra, c_dec, radius), (label, c_ra, c_dec)
            times, counts, cpu = [], [], []
            for c_ra, c_dec in centres:
                start, start_cpu = time.perf_counter(), time.process_time()
                counts.append(len(catalog.cone(c_ra, c_dec, radius, columns=columns)))
                times.append((time.perf_counter() - start) * 1e3)
                cpu.append((time.process_time() - start_cpu) * 1e3)
            server = [timed(lambda c=c, r=radius: sql_cone(c, r)) for c in centres]
            cones[label] = {**stats(times), "mean_rows": statistics.mean(counts),
                            "client_cpu_ms": statistics.median(cpu),
                            "sql_only": stats(server)}
        result["cone"] = cones

        picks = rng.choice(args.rows, args.matches, replace=False)
        shift = rng.uniform(0, 0.5 / 3600, args.matches)
        angle = rng.uniform(0, 2 * np.pi, args.matches)
        t_dec = np.clip(dec[picks] + shift * np.sin(angle), -90, 90)
        t_ra = np.mod(ra[picks] + shift * np.cos(angle) / np.maximum(
            np.cos(np.radians(t_dec)), 1e-6), 360.0)
        found = catalog.near((t_ra, t_dec), 1.0 / 3600.0)
        for target in rng.choice(args.matches, 50, replace=False):
            tx, ty, tz = unit_vectors(t_ra[target], t_dec[target])
            d2 = squared_chord(*xyz, float(tx), float(ty), float(tz))
            best = int(ids[np.lexsort((ids, d2))[0]])
            row = found[found["input"] == target]
            assert row["objectId"].tolist() == [best], target
        match_times = [timed(lambda: catalog.near((t_ra, t_dec), 1.0 / 3600.0))
                       for _ in range(7)]
        result["crossmatch"] = {**stats(match_times), "targets": args.matches,
                                "matched": len(found)}

        peers: dict[str, Any] = {}
        driver.execute("CREATE INDEX bench_dec_ra ON catalogs.bench (coord_dec, coord_ra)")
        driver.execute("ANALYZE catalogs.bench")
        run = dec_ra_sql(driver)
        for label, radius in RADII.items():
            centres = random_centres(rng, args.queries)
            for c_ra, c_dec in centres[:args.check]:
                assert run(c_ra, c_dec, radius) == brute_cone(xyz, ids, c_ra, c_dec, radius)
            peers[f"B-tree (dec, ra), {label}"] = stats(
                [timed(lambda c=c, r=radius: run(c[0], c[1], r)) for c in centres])
        driver.execute("DROP INDEX catalogs.bench_dec_ra")
        if args.layout:
            peers.update(layout(driver, catalog, rng, args.queries))
        result["peers"] = peers
        driver.autocommit = False
        raw.close()
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def layout(driver: Any, catalog: Any, rng: np.random.Generator, queries: int
           ) -> dict[str, Any]:
    """One clustered table (skyreg) against a narrow positional table + the full rows."""
    from skyreg.catalogs import positions

    driver.execute("CREATE TABLE catalogs.bench_pos AS SELECT \"objectId\", skyreg_pix, "
                   "skyreg_x, skyreg_y, skyreg_z FROM catalogs.bench ORDER BY skyreg_pix")
    driver.execute("CREATE INDEX ON catalogs.bench_pos (skyreg_pix)")
    driver.execute("VACUUM ANALYZE catalogs.bench_pos")
    narrow = ('SELECT p."objectId"{cols} FROM unnest(%(lo)s::int8[], %(hi)s::int8[]) '
              "AS r(lo, hi) JOIN catalogs.bench_pos AS p ON p.skyreg_pix >= r.lo AND "
              "p.skyreg_pix < r.hi {join} WHERE CHORD <= %(d2)s ORDER BY p.\"objectId\"")
    narrow = narrow.replace("CHORD", squared_chord_sql(
        [sql.SQL("p.{}").format(sql.Identifier(n)) for n in ("skyreg_x", "skyreg_y", "skyreg_z")],
        [sql.Placeholder(n) for n in ("cx", "cy", "cz")]).as_string(None))
    ids_only = narrow.format(cols="", join="")
    # Full rows by primary key, one lookup per match (a LATERAL join: the planner would
    # otherwise hash the whole table).
    full = narrow.format(cols=", c.*", join='CROSS JOIN LATERAL (SELECT * FROM catalogs.bench '
                         'AS f WHERE f."objectId" = p."objectId") AS c')
    out: dict[str, Any] = {}
    from lsst.sphgeom import Angle, Circle, LonLat, UnitVector3d

    for label, radius in (("0.1°", 0.1), ("1°", 1.0)):
        centres = random_centres(rng, queries)

        def params(c: tuple[float, float], radius: float = radius) -> dict[str, Any]:
            circle = Circle(UnitVector3d(LonLat.fromDegrees(*c)), Angle.fromDegrees(radius))
            lo, hi = positions.cone_ranges(circle)
            v = circle.getCenter()
            return {"lo": lo.tolist(), "hi": hi.tolist(), "cx": v.x(), "cy": v.y(),
                    "cz": v.z(), "d2": circle.getSquaredChordLength()}

        def sql_run(statement: str, c: tuple[float, float]) -> None:
            with driver.cursor(binary=True) as cursor:
                cursor.execute(statement, params(c), prepare=True).fetchall()

        out[f"narrow table, ids only, {label}"] = stats(
            [timed(lambda c=c: sql_run(ids_only, c)) for c in centres])
        out[f"one table, ids only, {label}"] = stats(
            [timed(lambda c=c, r=radius: catalog.cone(*c, r, columns=[])) for c in centres])
        out[f"narrow + join to full rows, all columns, {label}"] = stats(
            [timed(lambda c=c: sql_run(full, c)) for c in centres])
        out[f"one table, all columns, {label}"] = stats(
            [timed(lambda c=c, r=radius: catalog.cone(*c, r)) for c in centres])
    driver.execute("DROP TABLE catalogs.bench_pos")
    return out


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{result['rows']:,} rows ({result['extra_columns']} extra float32 columns), "
          f"load average {', '.join(f'{v:.1f}' for v in result['load_average'])}\n")
    print("| measurement | median | p95 | rows |")
    print("|---|---|---|---|")
    print(f"| load ({result['table_bytes'] / 2**20:,.0f} MiB table + indexes) | "
          f"{result['load_seconds']:.1f} s = {result['load_rows_per_second']:,.0f} rows/s | | |")
    for label, values in result["cone"].items():
        print(f"| cone r = {label}, Python API (client CPU {values['client_cpu_ms']:.2f} ms) | "
              f"{values['median_ms']:.2f} ms | {values['p95_ms']:.2f} ms "
              f"| {values['mean_rows']:.1f} |")
        only = values["sql_only"]
        print(f"| cone r = {label}, its SQL statement alone | {only['median_ms']:.2f} ms | "
              f"{only['p95_ms']:.2f} ms | |")
    match = result["crossmatch"]
    print(f"| cross-match {match['targets']:,} positions within 1″ | "
          f"{match['median_ms']:.0f} ms | {match['p95_ms']:.0f} ms | {match['matched']:,} |")
    for label, values in result["peers"].items():
        print(f"| {label} | {values['median_ms']:.2f} ms | {values['p95_ms']:.2f} ms | |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
