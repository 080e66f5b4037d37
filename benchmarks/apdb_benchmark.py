"""Level-1 store benchmark: the APDB calls of alert production on the data dax_apdb was
measured on (1 M DiaObjects x 2 versions, 3 M DiaSources over 15 months, 5 M DiaForcedSources
in 64 deg²), at a chosen ``--scale``.

The scale shrinks the field (64 x scale deg²) and keeps the density, so every per-CCD call
reads and writes as many rows as at full scale; only the tables are smaller. Data are made
with numpy and COPYed straight into the tables (validity chains computed in numpy), then
ANALYZEd. They are laid out as the APDB's own writes leave them: objects numbered CCD cell by
CCD cell (Rubin's ids pack the visit and detector of the first detection), every chunk
written in ``pixelId`` order (as ``skyreg catalog load-apdb`` writes, and as a store writes a
CCD's rows together); ``--random-order`` generates the old way, ids and rows in random sky
order. Measured, median over CCD-sized regions (0.2275° squares) inside the field:

* ``get_dia_objects(region)``, ``get_dia_sources(object_ids)`` and
  ``get_dia_forced_sources(object_ids)`` (12 months), ``contains_visit_detector``;
* ``store`` of one CCD: a new version of every object read, 80 DiaSources, a forced source
  per object;
* one visit: 189 CCDs, each read then written, by ``--workers`` processes, wall time (when
  the field is smaller than a focal plane, the CCDs shrink to fit and say so).

Usage: ``python benchmarks/apdb_benchmark.py --db postgresql://... --scale 0.05``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

from skyreg import Registry
from skyreg.catalogs.apdb_binary import to_binary
from skyreg.catalogs.apdb_frames import layout, to_arrow
from skyreg.catalogs.apdb_load import in_pixel_order
from skyreg.synthetic.apdb_catalogs import Box, dia_forced_sources, dia_objects, dia_sources

FULL_OBJECTS = 1_000_000
FULL_AREA_DEG2 = 64.0
SOURCES_PER_OBJECT = 3
FORCED_PER_OBJECT = 5
HISTORY_DAYS = 450.0  # 15 months
CCD_SIDE_DEG = 0.2275
NOW = 61000.0  # MJD TAI of the benchmark's "tonight"
CENTER = (45.0, 0.0)
PEERS = {"get_dia_objects": "240 ms", "get_dia_sources(ids)": "372 ms",
         "get_dia_forced_sources(ids)": "276 ms", "store (one CCD)": "0.6-1.0 s",
         "contains_visit_detector": "1.8 ms"}
#: Set by --random-order: ids assigned to random positions and rows COPYed as they come (a
#: region's rows each on a page and in an index leaf of their own), not in sky order.
RANDOM_ORDER = [False]
TARGETS = {"get_dia_objects": 10.0, "get_dia_sources(ids)": 20.0, "store (one CCD)": 50.0,
           "visit (189 CCDs)": 5000.0}


def _square(ra: float, dec: float, side: float) -> ConvexPolygon:
    half = side / 2.0
    corners = [(ra - half / math.cos(math.radians(dec)), dec - half),
               (ra + half / math.cos(math.radians(dec)), dec - half),
               (ra + half / math.cos(math.radians(dec)), dec + half),
               (ra - half / math.cos(math.radians(dec)), dec + half)]
    return ConvexPolygon([UnitVector3d(LonLat.fromDegrees(a, d)) for a, d in corners])


def _field(scale: float) -> Box:
    side = math.sqrt(FULL_AREA_DEG2 * scale)
    ra, dec = CENTER
    return Box(ra - side / 2, ra + side / 2, dec - side / 2, dec + side / 2)


def _copy(registry: Registry, name: str, frame: pd.DataFrame) -> None:
    """COPY a chunk in sky order, as ``skyreg catalog load-apdb`` writes its batches (and
    as a store writes a CCD's rows together); ``--random-order`` keeps the generated one."""
    table = to_arrow(frame, name)
    if not RANDOM_ORDER[0]:
        table, _ = in_pixel_order(table, np.arange(table.num_rows))
    data, columns = to_binary(table, layout(name).stored_columns)
    quoted = ", ".join(f'"{c}"' for c in columns)
    with registry.engine.begin() as connection:
        driver: Any = connection.connection.driver_connection
        with driver.cursor() as cursor, cursor.copy(
                f'COPY apdb."{name}" ({quoted}) FROM STDIN (FORMAT binary)') as copy:
            copy.write(data)


def _in_id_order(ra: np.ndarray, dec: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The positions in the order their objects get ids: Rubin's DiaObject id is that of its
    first DiaSource, which packs the visit and detector, so the objects first seen on one
    CCD of one visit have neighbouring ids. Modelled as CCD-sized cells taken in a random
    order (the visits), the objects of a cell numbered together."""
    cells_dec = np.floor((dec - dec.min()) / CCD_SIDE_DEG).astype(np.int64)
    cells_ra = np.floor((ra - ra.min()) * np.cos(np.radians(CENTER[1])) / CCD_SIDE_DEG
                        ).astype(np.int64)
    cell = cells_dec * (int(cells_ra.max()) + 1) + cells_ra
    visit_of_cell = rng.permutation(int(cell.max()) + 1)
    order = np.lexsort((rng.random(len(ra)), visit_of_cell[cell]))
    return ra[order], dec[order]


def generate(registry: Registry, scale: float, seed: int = 1, chunk: int = 200_000
             ) -> dict[str, int]:
    """Fill the APDB tables at ``scale``; returns rows per table."""
    rng = np.random.default_rng(seed)
    count = max(1000, int(FULL_OBJECTS * scale))
    ra, dec = _field(scale).sample(count, rng)
    if not RANDOM_ORDER[0]:
        ra, dec = _in_id_order(ra, dec, rng)
    ids = np.arange(1, count + 1, dtype=np.int64)
    # Two versions: one from 15 months ago, one from the last 100 days.
    second = NOW - rng.uniform(1.0, 100.0, count)
    for start in range(0, count, chunk):
        part = slice(start, start + chunk)
        n = len(ids[part])
        for begin, end in ((np.full(n, NOW - HISTORY_DAYS), second[part]),
                           (second[part], None)):
            frame = dia_objects(ids[part], ra[part], dec[part], rng, validity_start=begin)
            if end is not None:
                frame["validityEndMjdTai"] = end
            _copy(registry, "DiaObject", frame)
    jitter = 0.1 / 3600.0
    n_sources = SOURCES_PER_OBJECT * count
    for start in range(0, n_sources, chunk):
        n = min(chunk, n_sources - start)
        owner = rng.integers(0, count, n)
        mjd = NOW - rng.uniform(0.0, HISTORY_DAYS, n)
        _copy(registry, "DiaSource", dia_sources(
            np.arange(start + 1, start + n + 1, dtype=np.int64), ids[owner],
            ra[owner] + rng.normal(0, jitter, n), dec[owner] + rng.normal(0, jitter, n),
            (mjd * 100).astype(np.int64), rng.integers(0, 189, n).astype(np.int16), mjd, rng))
    for k in range(FORCED_PER_OBJECT):
        for start in range(0, count, chunk):
            part = slice(start, start + chunk)
            n = len(ids[part])
            mjd = NOW - rng.uniform(0.0, HISTORY_DAYS, n)
            _copy(registry, "DiaForcedSource", dia_forced_sources(
                ids[part] + k * count, ids[part], ra[part], dec[part],
                np.full(n, 1000 + k, dtype=np.int64), np.zeros(n, dtype=np.int16), mjd, rng))
    with registry.engine.connect() as connection:
        driver: Any = connection.connection.driver_connection
        driver.autocommit = True
        for name in ("DiaObject", "DiaSource", "DiaForcedSource"):
            driver.execute(f'VACUUM ANALYZE apdb."{name}"')
    return {"DiaObject": 2 * count, "DiaSource": n_sources,
            "DiaForcedSource": FORCED_PER_OBJECT * count}


#: Client CPU (ms) of the last timed call: on a loaded machine wall times mostly measure the
#: wait for a core, CPU times what the call costs this process.
_LAST_CPU = [0.0]
#: Server CPU (ms) of the last timed call: the CPU time of this process's server backends
#: (``/proc/PID/schedstat``, nanoseconds; NaN when the server is not on this machine).
_LAST_SERVER = [math.nan]
#: Backend process ids of this process's connections (set by :func:`track_backends`).
_BACKENDS: list[int] = []


def track_backends(registry: Registry) -> None:
    """Find this process's server backends: the read session's and the write pool's."""
    reads: Any = registry.apdb.reads.connection.driver_connection
    pids = {int(reads.info.backend_pid)}
    with registry.engine.connect() as connection:
        writes: Any = connection.connection.driver_connection
        pids.add(int(writes.info.backend_pid))
    _BACKENDS[:] = sorted(pids)


def server_cpu_ms() -> float:
    """CPU time so far of the tracked backends (ms), NaN if they cannot be read."""
    total = 0
    for pid in _BACKENDS:
        try:
            with open(f"/proc/{pid}/schedstat") as stat:
                total += int(stat.read().split()[0])
        except (OSError, ValueError, IndexError):
            return math.nan
    return total / 1e6 if _BACKENDS else math.nan


def _timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start, cpu, server = time.perf_counter(), time.process_time(), server_cpu_ms()
    result = function()
    _LAST_CPU[0] = (time.process_time() - cpu) * 1000.0
    _LAST_SERVER[0] = server_cpu_ms() - server
    return (time.perf_counter() - start) * 1000.0, result


def ccd_work(registry: Registry, region: ConvexPolygon, visit: int, detector: int,
             visit_time: float, rng: np.random.Generator
             ) -> dict[str, tuple[float, int, float, float]]:
    """What AP does for one CCD: read the three catalogs, then store the CCD's rows.
    Returns (wall ms, rows, client CPU ms, server CPU ms) per call."""
    apdb = registry.apdb
    out: dict[str, tuple[float, int, float, float]] = {}
    ms, objects = _timed(lambda: apdb.get_dia_objects(region))
    out["get_dia_objects"] = (ms, len(objects), _LAST_CPU[0], _LAST_SERVER[0])
    ids = objects["diaObjectId"].to_numpy()
    ms, sources = _timed(lambda: apdb.get_dia_sources(object_ids=ids, visit_time=visit_time))
    out["get_dia_sources(ids)"] = (ms, len(sources), _LAST_CPU[0], _LAST_SERVER[0])
    ms, forced = _timed(lambda: apdb.get_dia_forced_sources(object_ids=ids,
                                                            visit_time=visit_time))
    out["get_dia_forced_sources(ids)"] = (ms, len(forced), _LAST_CPU[0],
                                            _LAST_SERVER[0])
    ms, _ = _timed(lambda: apdb.contains_visit_detector(visit, detector))
    out["contains_visit_detector"] = (ms, 1, _LAST_CPU[0], _LAST_SERVER[0])
    updated = objects.drop(columns=["validityStartMjdTai", "validityEndMjdTai"])
    updated["nDiaSources"] = updated["nDiaSources"] + 1
    picked = rng.choice(len(ids), size=min(80, len(ids)), replace=False)
    base = visit * 1000 + detector
    new_sources = dia_sources(
        np.arange(base * 100, base * 100 + len(picked), dtype=np.int64) + 10**12, ids[picked],
        objects["ra"].to_numpy()[picked], objects["dec"].to_numpy()[picked], visit, detector,
        visit_time, rng)
    new_forced = dia_forced_sources(
        np.arange(len(ids), dtype=np.int64) + base * 10_000 + 10**12, ids,
        objects["ra"].to_numpy(), objects["dec"].to_numpy(), visit, detector, visit_time, rng)
    ms, _ = _timed(lambda: apdb.store(visit_time, updated, new_sources, new_forced))
    out["store (one CCD)"] = (ms, len(updated) + len(new_sources) + len(new_forced),
                              _LAST_CPU[0], _LAST_SERVER[0])
    return out


def _visit_layout(scale: float) -> tuple[list[tuple[float, float]], float]:
    """Centres of 189 CCDs (the first 189 cells of a 14 x 14 grid) and their side."""
    field = _field(scale)
    side = min(CCD_SIDE_DEG, (field.dec_max - field.dec_min) / 14.5)
    cells = [(i, j) for j in range(14) for i in range(14)][:189]
    ra0, dec0 = CENTER
    return [(ra0 + (i - 6.5) * side, dec0 + (j - 6.5) * side) for i, j in cells], side


def _visit_worker(args: tuple[str, list[tuple[int, float, float]], float, float, int]
                  ) -> tuple[int, float, float]:
    """One process's CCDs of the visit; returns (CCDs, client CPU s, server CPU s)."""
    url, ccds, side, visit_time, visit = args
    rng = np.random.default_rng(os.getpid())
    cpu = time.process_time()
    with Registry.connect(url) as registry:
        track_backends(registry)
        server = server_cpu_ms()
        for detector, ra, dec in ccds:
            ccd_work(registry, _square(ra, dec, side), visit, detector, visit_time, rng)
        server = server_cpu_ms() - server
    return len(ccds), time.process_time() - cpu, server / 1000.0


def run(url: str, scale: float, regions: int, workers: int, reuse: bool) -> None:
    with Registry.connect(url) as registry:
        if not reuse or registry.apdb.count("DiaObject") == 0:
            ms, counts = _timed(lambda: generate(registry, scale))
            print(f"generated {counts} in {ms / 1000:.1f} s")
        rng = np.random.default_rng(7)
        # Visits (and times) of their own per run: a re-run with --reuse must not re-store
        # the same CCDs with other rows (store refuses that). The times follow the clock, so
        # that every run's versions are newer than every earlier run's, as a night's visits
        # are (a run's visit used to come half a day after its start, so that the next run
        # stored versions older than those: the rarer, slower path of `store`).
        run = int(time.time()) % 100_000
        first_visit = run * 1000
        first_time = NOW + 1 + (time.time() % 10_000_000) / 86_400.0
        field = _field(scale)
        margin = CCD_SIDE_DEG
        samples: dict[str, list[tuple[float, int, float, float]]] = {}
        track_backends(registry)
        for k in range(regions):
            ra = rng.uniform(field.ra_min + margin, field.ra_max - margin)
            dec = rng.uniform(field.dec_min + margin, field.dec_max - margin)
            result = ccd_work(registry, _square(ra, dec, CCD_SIDE_DEG), first_visit + k, 0,
                              first_time + k * 1e-6, rng)
            for name, value in result.items():
                samples.setdefault(name, []).append(value)
    centres, side = _visit_layout(scale)
    jobs = [(url, [(d, *centres[d]) for d in range(w, len(centres), workers)], side,
             first_time + (regions + 1) * 1e-6, first_visit + 999) for w in range(workers)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        pool.map(_visit_worker, [(url, [], side, NOW, 0) for _ in range(workers)])  # imports
        start = time.perf_counter()
        parts = pool.map(_visit_worker, jobs)
        visit_ms = (time.perf_counter() - start) * 1000.0
    done = sum(p[0] for p in parts)
    visit_client, visit_server = sum(p[1] for p in parts), sum(p[2] for p in parts)
    load = os.getloadavg()
    print(f"\nscale {scale} (field {FULL_AREA_DEG2 * scale:.1f} deg², "
          f"{int(FULL_OBJECTS * scale)} DiaObjects x 2 versions); load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {regions} regions\n")
    print(f"| {'call':<30} | {'median':>10} | {'client CPU':>10} | {'server CPU':>10} | "
          f"{'rows':>6} | {'target':>8} | {'dax_apdb (notes)':>16} |")
    print(f"|{'-' * 32}|{'-' * 12}|{'-' * 12}|{'-' * 12}|{'-' * 8}|{'-' * 10}|{'-' * 18}|")
    for name, values in samples.items():
        median = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[2] for v in values)
        server = statistics.median(v[3] for v in values)
        rows = int(statistics.median(v[1] for v in values))
        target = f"{TARGETS[name]:.0f} ms" if name in TARGETS else ""
        print(f"| {name:<30} | {median:7.1f} ms | {cpu:7.1f} ms | {server:7.1f} ms | "
              f"{rows:>6} | {target:>8} | {PEERS.get(name, ''):>16} |")
    label = f"visit ({done} CCDs, {workers} proc)"
    print(f"| {label:<30} | {visit_ms:7.0f} ms | {visit_client * 1000:7.0f} ms | "
          f"{visit_server * 1000:7.0f} ms | {'':>6} | {'5000 ms':>8} | {'':>16} |")
    print("\n(client and server CPU of the visit: summed over its processes and their "
          "backends)")
    if side < CCD_SIDE_DEG:
        print(f"\n(the field is smaller than a focal plane: the visit's CCDs are {side:.3f}° "
              "squares)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="PostgreSQL URL of an empty registry "
                        "(or one made by an earlier run, with --reuse)")
    parser.add_argument("--scale", type=float, default=0.05,
                        help="fraction of the full data set (1.0: 1 M DiaObjects, 64 deg²)")
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the data already loaded (skip generation)")
    parser.add_argument("--random-order", action="store_true",
                        help="generate the tables in random order (ids of random "
                             "positions, rows as they come) instead of the sky order of "
                             "Rubin's ids, the bulk load and the stores")
    args = parser.parse_args()
    RANDOM_ORDER[0] = args.random_order
    run(args.db, args.scale, args.regions, args.workers, args.reuse)


if __name__ == "__main__":
    main()

