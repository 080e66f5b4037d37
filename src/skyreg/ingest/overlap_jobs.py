"""Overlap pairs of a load's new CCDs, computed by worker processes while the loader goes on.

The loader hands over each spatial kind's new rows (pixels and polygons, in staging order) as
soon as their pixel coverage is known. Once the CCDs and the tiles of a kind are both known,
the candidate join and the exact test (:func:`skyreg.schema.overlaps.chunk_pairs`) of the new
CCDs with those tiles start on a process pool, in chunks of CCDs, while the loader goes on
copying rows into its staging tables (database work, mostly on the server): the pair
computation, the costliest part of maintaining the relations, then uses the core the COPY
leaves idle instead of adding to the ingest's wall time.

The workers are forked after the work is set up here, so they inherit the pixels, polygons and
tiles instead of receiving them through a pipe; only the pairs found travel back. Like every
pool of the ingest they die with the loader (:mod:`skyreg.ingest.process_pool`), and nothing
they compute is stored outside the loader's transaction.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ProcessPoolExecutor

from sqlalchemy import Connection, exists, select

from skyreg.ingest.process_pool import process_pool
from skyreg.schema import overlaps

#: Below this many new CCDs the pairs are computed in this process (a pool costs more).
POOL_THRESHOLD = 60_000
#: New CCDs per task sent to a worker.
CHUNK = 20_000
#: Staged tiles above which only those under the new CCDs are prepared for the test.
FILTER_TILES = 100_000

#: Work of each started job, by job number: set before the pool forks its workers.
_WORK: dict[int, tuple[overlaps.Shapes, list[overlaps.TileSet]]] = {}


def _run(job: int, start: int, stop: int) -> tuple[list[overlaps.Pairs], float]:
    """Worker task: the pairs of CCD rows ``start .. stop - 1``, and the CPU seconds spent."""
    started = time.process_time()
    ccds, tile_sets = _WORK[job]
    return overlaps.chunk_pairs(ccds, tile_sets, start, stop), time.process_time() - started


class OverlapJobs:
    """The pair computations of one load (see the module docstring).

    ``kinds`` are the spatial kinds the load stages (``ccd``, ``patch``, ``tract``); a tile
    kind that is not among them is only stored, and the new CCDs are tested against the stored
    tiles as soon as the CCDs are staged.
    """

    def __init__(self, connection: Connection, kinds: frozenset[str]) -> None:
        self.connection = connection
        self.expected = kinds
        self.shapes: dict[str, overlaps.Shapes] = {}
        self.started: set[str] = set()
        self.found: dict[str, list[overlaps.Pairs]] = {}
        self.futures: list[tuple[list[str], Future[tuple[list[overlaps.Pairs], float]]]] = []
        self.pools: list[ProcessPoolExecutor] = []
        self.jobs: list[int] = []
        self.timings: dict[str, float] = {}

    def staged(self, kind: str, shapes: overlaps.Shapes) -> None:
        """The new rows of a spatial kind are known: start what can start."""
        self.shapes[kind] = shapes
        if "ccd" not in self.shapes:
            return
        ready = [tiles.kind for tiles in overlaps.TILES if tiles.kind not in self.started
                 and (tiles.kind in self.shapes or tiles.kind not in self.expected)]
        if ready:
            self._start(ready)

    def _add(self, kind: str, pairs: overlaps.Pairs) -> None:
        self.found.setdefault(kind, []).append(pairs)

    def _time(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds

    def _start(self, kinds: list[str]) -> None:
        self.started.update(kinds)
        ccds = self.shapes["ccd"]
        if not ccds.count:
            return
        started = time.perf_counter()
        ccd_pixels = None
        tile_sets = []
        for tiles in overlaps.TILES:
            if tiles.kind not in kinds:
                continue
            new = self.shapes.get(tiles.kind)
            stored = self.connection.execute(select(exists().select_from(tiles.table))
                                             ).scalar_one()
            if ccd_pixels is None and (stored or (new is not None and new.count > FILTER_TILES)):
                ccd_pixels = overlaps.distinct_pixels(ccds)
            tile_set = overlaps.tile_set(self.connection, tiles, new,
                                         ccd_pixels if stored or new is None
                                         or new.count > FILTER_TILES else None)
            if len(tile_set):
                tile_sets.append(tile_set)
        self._time("overlaps: tiles", time.perf_counter() - started)
        if not tile_sets:
            return
        names = [tile_set.kind for tile_set in tile_sets]
        workers = os.cpu_count() or 1
        if ccds.count < POOL_THRESHOLD or workers < 2:
            started = time.perf_counter()
            for start in range(0, ccds.count, CHUNK):
                for kind, pairs in zip(names, overlaps.chunk_pairs(
                        ccds, tile_sets, start, min(start + CHUNK, ccds.count)), strict=True):
                    self._add(kind, pairs)
            self._time("overlaps: pairs in this process", time.perf_counter() - started)
            return
        job = max(_WORK, default=0) + 1
        _WORK[job] = (ccds, tile_sets)
        self.jobs.append(job)
        pool = process_pool(workers)
        self.pools.append(pool)
        for start in range(0, ccds.count, CHUNK):
            self.futures.append((names, pool.submit(_run, job, start,
                                                    min(start + CHUNK, ccds.count))))

    def results(self) -> dict[str, overlaps.Pairs]:
        """Wait for the workers; the pairs found per tile kind."""
        started = time.perf_counter()
        cpu = 0.0
        try:
            for names, future in self.futures:
                found, seconds = future.result()
                cpu += seconds
                for kind, pairs in zip(names, found, strict=True):
                    self._add(kind, pairs)
        finally:
            self.close()
        if self.futures:
            self._time("overlaps: waiting for workers", time.perf_counter() - started)
            self._time("overlaps: workers' CPU", cpu)
        self.futures = []
        return {kind: overlaps.Pairs.concat(parts) for kind, parts in self.found.items()}

    def close(self) -> None:
        """Stop the workers (after an error: at once) and drop their work."""
        for pool in self.pools:
            pool.shutdown(wait=True, cancel_futures=True)
        self.pools = []
        for job in self.jobs:
            _WORK.pop(job, None)
        self.jobs = []
