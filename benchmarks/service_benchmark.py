"""Benchmark the web service (``skyreg serve``) on a synthetic LSST-like registry.

Usage::

    python benchmarks/service_benchmark.py --visits 1000          # targets, then the load test
    python benchmarks/service_benchmark.py --visits 1000 --quick  # short runs while developing
    python benchmarks/service_benchmark.py --visits 1000 --db postgresql://postgres@127.0.0.1/test

Self-contained: it generates the survey in a temporary directory (every CCD gets a raw file
URI; one CCD gets a real RICE-compressed 4k x 4k image), ingests it into an embedded server in
a temporary home (or a fresh database on ``--db``), starts ``skyreg serve`` on a loopback port
and stops every process it started when it ends, however it ends.

What it measures (docs/benchmarks.md):

1. SIA 2.0 queries, 0.2 deg cones at CCD centres, one at a time: client-side time and the
   server's own time (its ``Server-Timing`` header); target p50 <= 15 ms server-side.
2. SODA cutouts of 100 x 100 pixels at random places in the RICE-compressed CCD; target
   p50 <= 20 ms.
3. ``/api/v1/ccds?patch=...`` throughput with ``--workers`` (4) server processes and
   ``--connections`` concurrent keep-alive clients; target >= 1,000 requests/s. The
   concurrent phases use a small asyncio HTTP/1.1 client (``_Connection``, ~0.05 ms of CPU
   per request) instead of ``httpx`` (3-5 ms), which shares the two cores with the server.
4. The load test: ``--clients`` (50) concurrent clients for ``--load-seconds`` (60) s, each
   sending a mix of requests (SIA, SODA, DataLink, JSON CCDs by patch and by cone, patches
   of a CCD) one after the other; requests/s and p50/p95/p99 per endpoint; no errors allowed.

Answers are checked before any time is printed: SIA and JSON answers against the Python API,
cutout pixels and WCS against the file itself; a load-test answer with an unexpected status
or size is an error, and any error makes the script exit with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io import fits
from astropy.wcs import WCS

from skyreg import Registry
from skyreg.db.engine import normalize_url
from skyreg.registry.dataset_ids import ccd_dataset_key, dataset_id
from skyreg.synthetic import SurveySpec, generate_survey

RAW_URIS = "s3://survey-archive/raw/{instrument}/{visit}/{detector}.fits"
CCD_PIXELS = 4096
PIXEL_SCALE_DEG = 0.2 / 3600.0  # LSSTCam


# -- the registry ----------------------------------------------------------------------------


@dataclass
class Setup:
    url: str | None
    home: Path | None
    root: Path
    rice_path: Path
    rice_id: str
    n_ccds: int


def write_rice_ccd(path: Path, ra: float, dec: float, seed: int) -> None:
    """A 4096 x 4096 int32 CCD image, RICE_1 tile-compressed by rows (fpack's default
    tiling), with a TAN WCS centred on (ra, dec) at LSSTCam's pixel scale."""
    rng = np.random.default_rng(seed)
    data = (1000 + rng.poisson(50.0, (CCD_PIXELS, CCD_PIXELS))).astype(np.int32)
    header = fits.Header()
    for key, value in {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": ra,
                       "CRVAL2": dec, "CRPIX1": CCD_PIXELS / 2 + 0.5,
                       "CRPIX2": CCD_PIXELS / 2 + 0.5, "CD1_1": -PIXEL_SCALE_DEG,
                       "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": PIXEL_SCALE_DEG}.items():
        header[key] = value
    hdu = fits.CompImageHDU(data, header=header, compression_type="RICE_1")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)


def build(args: argparse.Namespace, work: Path) -> Setup:
    """Survey manifest with file URIs, one real file, ingested into a fresh registry."""
    root = work / "survey"
    started = time.perf_counter()
    generate_survey(root, SurveySpec(n_visits=args.visits, seed=args.seed,
                                     file_uri_template=RAW_URIS))
    regions = root / "visit_detector_regions.parquet"
    table = pq.read_table(regions)
    # The CCD nearest the field centre gets the real file (hdu 1: the compressed image).
    ra = np.array([np.mean(r) for r in table.column("ra").to_pylist()])
    dec = np.array([np.mean(d) for d in table.column("dec").to_pylist()])
    pick = int(np.argmin((ra - 150.0) ** 2 + (dec - 2.2) ** 2))
    rice = work / "rice.fits.fz"
    write_rice_ccd(rice, float(ra[pick]), float(dec[pick]), args.seed)
    uris = table.column("uri").to_pylist()
    uris[pick] = rice.resolve().as_uri()
    hdus = [0] * table.num_rows
    hdus[pick] = 1
    table = table.set_column(table.schema.get_field_index("uri"), "uri", pa.array(uris))
    table = table.append_column("hdu", pa.array(hdus, pa.int32()))
    pq.write_table(table, regions)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][regions.name] = hashlib.sha256(regions.read_bytes()).hexdigest()
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    row = table.slice(pick, 1).to_pylist()[0]
    rice_id = dataset_id(ccd_dataset_key("raw", row["instrument"], row["visit"],
                                         row["detector"]))

    url: str | None = None
    home: Path | None = None
    if args.db:
        url = fresh_database(normalize_url(args.db))
    else:
        home = work / "home"
    with Registry.connect(url, home=home) as registry:
        report = registry.ingest_manifest(root)
        n_ccds = report.counts["ccd"].in_input
    seconds = time.perf_counter() - started
    print(f"registry: {args.visits:,} visits, {n_ccds:,} CCDs ({seconds:.0f} s to generate "
          "and ingest)", file=sys.stderr)
    return Setup(url, home, root, rice, rice_id, n_ccds)


def fresh_database(url: str) -> str:
    """A new database on the server of ``url``, dropped when the benchmark exits."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"skyreg_service_bench_{os.getpid()}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    atexit.register(drop)
    return make_url(url).set(database=name).render_as_string(hide_password=False)


# -- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base: str
    pid: int
    data_dir: Path | None  # the embedded server's, whose processes' CPU time is counted

    def processes(self) -> list[int]:
        """The service's processes (supervisor and workers) and, with the embedded server,
        the PostgreSQL processes: what answers the requests."""
        pids = [self.pid, *_children(self.pid)]
        if self.data_dir is not None:
            target = os.path.realpath(self.data_dir)
            for entry in Path("/proc").iterdir():
                with contextlib.suppress(OSError):
                    if entry.name.isdigit() and os.readlink(entry / "cwd") == target:
                        pids.append(int(entry.name))
        return pids

    def cpu_seconds(self) -> dict[int, float]:
        """CPU time (user + system) used so far by each process (Linux /proc)."""
        tick = os.sysconf("SC_CLK_TCK")
        used = {}
        for pid in self.processes():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                used[pid] = (int(fields[11]) + int(fields[12])) / tick
        return used


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(w) for w in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def cpu_used(server: Server, before: dict[int, float]) -> float:
    """Server-side CPU seconds since ``before`` (processes that ended meanwhile are lost)."""
    now = server.cpu_seconds()
    return sum(value - before.get(pid, 0.0) for pid, value in now.items())


@contextlib.contextmanager
def server(setup: Setup, workers: int, log: Path) -> Iterator[Server]:
    """``skyreg serve`` (no access log) on a free loopback port until the block ends."""
    port = free_port()
    command = [sys.executable, "-m", "skyreg"]
    command += ["--db", setup.url] if setup.url else ["--home", str(setup.home)]
    command += ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers",
                str(workers), "--no-access-log", "--log-level", "warning"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"skyreg serve exited:\n{log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/sia2/availability", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"skyreg serve did not start:\n{log.read_text()}")
            time.sleep(0.2)
        data_dir = None
        if setup.home is not None:
            from skyreg.db.embedded import EmbeddedServer

            data_dir = EmbeddedServer(setup.home).data_dir
        yield Server(base, process.pid, data_dir)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: workers included
            process.wait()


# -- requests and their expected answers -----------------------------------------------------


@dataclass
class Request:
    endpoint: str
    path: str
    expect_status: int = 200
    expect_rows: int | None = None  # checked in the load test through the body size
    expect_size: int | None = None
    #: What the request asks, for the checks: a cone (ra, dec, r) or a patch key.
    asks: tuple[Any, ...] = ()


@dataclass
class Workload:
    sia: list[Request] = field(default_factory=list)
    soda: list[Request] = field(default_factory=list)
    patch: list[Request] = field(default_factory=list)
    cone: list[Request] = field(default_factory=list)
    datalink: list[Request] = field(default_factory=list)
    patches_of_ccd: list[Request] = field(default_factory=list)

    def mix(self) -> list[Request]:
        return self.sia + self.soda + self.patch + self.cone + self.datalink + \
            self.patches_of_ccd


def query(path: str, params: dict[str, Any]) -> str:
    return f"{path}?{urlencode(params)}"


def workload(setup: Setup, n: int, seed: int) -> Workload:
    """``n`` different requests of each kind, with the answers the Python API gives."""
    rng = np.random.default_rng(seed)
    table = pq.read_table(setup.root / "visit_detector_regions.parquet",
                          columns=["instrument", "visit", "detector", "ra", "dec"])
    picks = rng.choice(table.num_rows, size=n, replace=False)
    sample = table.take(picks).to_pylist()
    work = Workload()
    with Registry.connect(setup.url, home=setup.home) as registry:
        for row in sample:
            ra, dec = float(np.mean(row["ra"])), float(np.mean(row["dec"]))
            key = (row["instrument"], row["visit"], row["detector"])
            work.sia.append(Request("SIA 0.2° cone", query("/sia2/query", {
                "POS": f"CIRCLE {ra} {dec} 0.2", "MAXREC": 10000}),
                expect_rows=len(registry.find_datasets("raw", cone=(ra, dec, 0.2))),
                asks=(ra, dec, 0.2)))
            patches = registry.find_patches(ccd=key)
            patch = patches[int(rng.integers(len(patches)))]
            work.patch.append(Request("JSON ccds?patch", query("/api/v1/ccds", {
                "patch": f"{patch.skymap},{patch.tract},{patch.patch}", "limit": 10000}),
                expect_rows=len(registry.find_ccds(patch=tuple(patch))), asks=tuple(patch)))
            work.cone.append(Request("JSON ccds?cone 0.1°", query("/api/v1/ccds", {
                "cone": f"{ra},{dec},0.1", "limit": 10000}),
                expect_rows=len(registry.find_ccds(cone=(ra, dec, 0.1)))))
            work.patches_of_ccd.append(Request("JSON patches?ccd", query(
                "/api/v1/patches", {"ccd": ",".join(map(str, key))}), expect_rows=len(patches)))
            ident = dataset_id(ccd_dataset_key("raw", *key))
            work.datalink.append(Request("DataLink", query("/datalink/links", {"ID": ident})))
    wcs, _ = rice_wcs(setup)
    radius = 50 * PIXEL_SCALE_DEG  # a 100 x 100 pixel box
    for x, y in rng.uniform(200, CCD_PIXELS - 200, size=(n, 2)):
        sky = wcs.pixel_to_world(x, y)
        work.soda.append(Request("SODA 100x100 RICE", query("/soda/sync", {
            "ID": setup.rice_id, "CIRCLE": f"{sky.ra.deg} {sky.dec.deg} {radius}"})))
    return work


def rice_wcs(setup: Setup) -> tuple[WCS, Any]:
    with fits.open(setup.rice_path) as hdus:
        header = hdus[1].header
        return WCS(header), header


# -- checks ----------------------------------------------------------------------------------


def check_answers(base: str, setup: Setup, work: Workload, samples: int) -> None:
    """Answers of the service against the Python API and the file; raise on a difference."""
    from astropy.io.votable import parse

    with httpx.Client(base_url=base, timeout=60) as client, \
            Registry.connect(setup.url, home=setup.home) as registry:
        for request in work.sia[:samples]:
            body = client.get(request.path).content
            ids = {str(v) for v in parse(io.BytesIO(body)).get_first_table()
                   .array["obs_publisher_did"]}
            expected = {dataset_id(ccd_dataset_key("raw", d.instrument, d.visit, d.detector))
                        for d in registry.find_datasets("raw", cone=request.asks)}
            if ids != expected or not ids:
                raise AssertionError(f"SIA {request.path}: {len(ids)} rows, the Python API "
                                     f"finds {len(expected)}")
        for request in work.patch[:samples]:
            got = client.get(request.path).json()
            expected_ccds = registry.find_ccds(patch=request.asks)
            rows = list(zip(*got["columns"].values(), strict=True))
            if rows != [tuple(c) for c in expected_ccds] or not rows:
                raise AssertionError(f"JSON {request.path}: differs from the Python API")
    _, header = rice_wcs(setup)
    with fits.open(setup.rice_path) as hdus:
        image = hdus[1]
        with httpx.Client(base_url=base, timeout=60) as client:
            for request in work.soda[:samples]:
                response = client.get(request.path)
                if response.status_code != 200:
                    raise AssertionError(f"SODA {request.path}: {response.status_code}")
                with fits.open(io.BytesIO(response.content)) as cut:
                    # The image plane: an IMAGE extension (every plane of the file after an
                    # empty primary HDU), or the primary HDU of single-plane answers.
                    plane = cut["IMAGE"] if len(cut) > 1 else cut[0]
                    data, cut_header = plane.data, plane.header
                    x0, y0 = -int(cut_header["LTV1"]), -int(cut_header["LTV2"])
                    ny, nx = data.shape
                    if not (99 <= nx <= 102 and 99 <= ny <= 102):
                        raise AssertionError(f"SODA cutout is {nx} x {ny} pixels")
                    if not np.array_equal(data, image.section[y0:y0 + ny, x0:x0 + nx]):
                        raise AssertionError("SODA cutout pixels differ from the file's")
                    centre = WCS(header).pixel_to_world(x0 + nx / 2 - 0.5, y0 + ny / 2 - 0.5)
                    x, y = WCS(cut_header).world_to_pixel(centre)
                    if max(abs(float(x) - (nx / 2 - 0.5)), abs(float(y) - (ny / 2 - 0.5))) > 1e-6:
                        raise AssertionError("SODA cutout WCS is shifted")
    # Sizes the load test will expect: each request's answer has a fixed length.
    with httpx.Client(base_url=base, timeout=60) as client:
        for request in work.mix():
            response = client.get(request.path)
            if response.status_code != request.expect_status:
                raise AssertionError(f"{request.path}: HTTP {response.status_code}")
            if request.expect_rows is not None and request.endpoint.startswith("JSON"):
                count = response.json()["count"]
                if count != request.expect_rows:
                    raise AssertionError(f"{request.path}: {count} rows, expected "
                                         f"{request.expect_rows}")
            if request.endpoint.startswith("SODA"):
                request.expect_size = None  # FITS headers hold the request: sizes vary
            else:
                request.expect_size = len(response.content)


# -- timing ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def server_ms(response: httpx.Response) -> float:
    timing = response.headers.get("server-timing", "")
    for part in timing.split(","):
        name, _, rest = part.strip().partition(";")
        if name == "app" and rest.startswith("dur="):
            return float(rest[4:])
    raise AssertionError(f"no Server-Timing header: {response.headers}")


def sequential(running: Server, requests: list[Request]) -> dict[str, float]:
    """One request at a time on a keep-alive connection, after a warm-up pass; also the
    server's CPU time per request (service and embedded PostgreSQL processes)."""
    client_ms: list[float] = []
    server: list[float] = []
    with httpx.Client(base_url=running.base, timeout=60) as client:
        for request in requests:  # warm-up: caches, prepared statements in every worker
            client.get(request.path)
        before = running.cpu_seconds()
        for request in requests:
            start = time.perf_counter()
            response = client.get(request.path)
            client_ms.append((time.perf_counter() - start) * 1000.0)
            if response.status_code != request.expect_status:
                raise AssertionError(f"{request.path}: HTTP {response.status_code}")
            server.append(server_ms(response))
        cpu_ms = cpu_used(running, before) / len(requests) * 1000.0
    return {"n": len(requests), "server_cpu_ms": cpu_ms,
            "server_p50_ms": statistics.median(server),
            "server_p95_ms": percentile(server, 95),
            "client_p50_ms": statistics.median(client_ms),
            "client_p95_ms": percentile(client_ms, 95)}


@dataclass
class Tally:
    times: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


class _Connection:
    """One keep-alive HTTP/1.1 connection of the load generator.

    Written on asyncio streams rather than through ``httpx``, whose per-request machinery
    costs 3-5 ms of CPU: on the two cores the benchmark shares with the server, that capped
    the measured rate at ~200 requests/s whatever the server did. This client needs ~0.05 ms
    per request (its CPU time is reported), so the rate measured is the server's. It reads
    only what the service sends: a status line, headers, and a body of Content-Length bytes
    or in chunks.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n"
                          .encode("latin-1"))
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            body = b"".join(parts)
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def _client(connection: _Connection, requests: list[Request], offset: int,
                  stop_at: float, tally: Tally) -> None:
    i = offset
    while time.perf_counter() < stop_at:
        request = requests[i % len(requests)]
        i += 1
        start = time.perf_counter()
        try:
            status, body = await connection.get(request.path)
            ok = status == request.expect_status and (
                request.expect_size is None or len(body) == request.expect_size)
            problem = f"{request.path}: HTTP {status}, {len(body)} B"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError) as err:
            await connection.close()
            ok, problem = False, f"{request.path}: {type(err).__name__} {err}"
        elapsed = (time.perf_counter() - start) * 1000.0
        if ok:
            tally.times.setdefault(request.endpoint, []).append(elapsed)
        else:
            tally.errors[request.endpoint] = tally.errors.get(request.endpoint, 0) + 1
            if len(tally.examples) < 5:
                tally.examples.append(problem)
    await connection.close()


async def _concurrent(base: str, requests: list[Request], clients: int,
                      seconds: float) -> tuple[Tally, float]:
    tally = Tally()
    host, port = base.removeprefix("http://").rsplit(":", 1)
    # Every client starts somewhere else in the list, so the mix is spread over time.
    step = max(1, len(requests) // clients)
    start = time.perf_counter()
    await asyncio.gather(*(_client(_Connection(host, int(port)), requests, k * step,
                                   start + seconds, tally) for k in range(clients)))
    return tally, time.perf_counter() - start


def concurrent(base: str, requests: list[Request], clients: int, seconds: float
               ) -> tuple[Tally, float, float]:
    """``clients`` concurrent keep-alive clients for ``seconds``; also the client's CPU
    seconds (it shares the machine with the server). On uvloop when it is installed."""
    cpu = time.process_time()
    try:
        import uvloop
    except ImportError:
        tally, elapsed = asyncio.run(_concurrent(base, requests, clients, seconds))
    else:
        tally, elapsed = uvloop.run(_concurrent(base, requests, clients, seconds))
    return tally, elapsed, time.process_time() - cpu


def stats(tally: Tally, elapsed: float) -> dict[str, dict[str, float]]:
    out = {}
    for endpoint, values in sorted(tally.times.items()):
        out[endpoint] = {"requests": len(values), "per_s": len(values) / elapsed,
                         "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
                         "p99_ms": percentile(values, 99),
                         "errors": tally.errors.get(endpoint, 0)}
    for endpoint, errors in tally.errors.items():
        out.setdefault(endpoint, {"requests": 0, "per_s": 0.0, "p50_ms": math.nan,
                                  "p95_ms": math.nan, "p99_ms": math.nan, "errors": errors})
    return out


# -- main ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
            "python": sys.version.split()[0]}


def cleanup(work: Path, setup_home: list[Path]) -> None:
    for home in setup_home:
        from skyreg.db.embedded import EmbeddedServer

        with contextlib.suppress(Exception):
            EmbeddedServer(home).stop()
    shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visits", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", help="PostgreSQL URL of a server (a fresh database is made "
                        "there); default: an embedded server in a temporary home")
    parser.add_argument("--requests", type=int, default=300,
                        help="different requests of each kind")
    parser.add_argument("--workers", type=int, default=4, help="server worker processes")
    parser.add_argument("--connections", type=int, default=32,
                        help="concurrent clients of the throughput test")
    parser.add_argument("--throughput-seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=50, help="clients of the load test")
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true",
                        help="100 requests of each kind, 5 s throughput and 10 s load test")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.throughput_seconds, args.load_seconds = 100, 5.0, 10.0

    work = Path(tempfile.mkdtemp(prefix="skyreg-svc-bench-"))
    homes: list[Path] = []
    # Registered first, so it runs last: after the registry's own release of the server.
    atexit.register(cleanup, work, homes)
    setup = build(args, work)
    if setup.home is not None:
        homes.append(setup.home)
    work_load = workload(setup, args.requests, args.seed)
    results: dict[str, Any] = {"visits": args.visits, "ccds": setup.n_ccds,
                               "embedded": setup.home is not None,
                               "workers": args.workers, "machine_before": machine()}
    with server(setup, args.workers, work / "serve.log") as running:
        base = running.base
        check_answers(base, setup, work_load, samples=5)
        results["sia"] = sequential(running, work_load.sia)
        results["sia"]["mean_rows"] = statistics.mean(r.expect_rows or 0 for r in work_load.sia)
        results["soda"] = sequential(running, work_load.soda)
        before = running.cpu_seconds()
        tally, elapsed, cpu = concurrent(base, work_load.patch, args.connections,
                                         args.throughput_seconds)
        server_cpu = cpu_used(running, before)
        patch = stats(tally, elapsed).get("JSON ccds?patch", {})
        done = patch.get("requests", 0) or 1
        results["patch_throughput"] = {
            **patch, "connections": args.connections, "seconds": elapsed,
            "client_cpu_s": cpu, "server_cpu_s": server_cpu,
            # Load-independent: CPU per request, and the rate idle cores would allow.
            "server_cpu_ms_per_request": server_cpu / done * 1000.0,
            "total_cpu_ms_per_request": (server_cpu + cpu) / done * 1000.0,
            "errors": sum(tally.errors.values())}
        throughput_errors = tally.examples
        tally, elapsed, cpu = concurrent(base, work_load.mix(), args.clients, args.load_seconds)
        results["load"] = {"clients": args.clients, "seconds": elapsed, "client_cpu_s": cpu,
                           "endpoints": stats(tally, elapsed),
                           "total_per_s": sum(len(v) for v in tally.times.values()) / elapsed,
                           "errors": sum(tally.errors.values())}
        load_errors = tally.examples
    results["machine_after"] = machine()
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    problems = throughput_errors + load_errors
    if problems:
        print("ERRORS:\n" + "\n".join(problems), file=sys.stderr)
        return 1
    return 0


def report(r: dict[str, Any]) -> None:
    before, after = r["machine_before"], r["machine_after"]
    loads = f"{before['load_average'][0]:.1f} / {after['load_average'][0]:.1f}"
    print(f"\nskyreg serve --workers {r['workers']}: {r['visits']:,} visits, {r['ccds']:,} CCDs; "
          f"{r['machine_before']['cpus']} CPUs, 1-min load average before/after {loads}\n")
    print(f"{'one request at a time':34} {'n':>5} {'server p50':>11} {'server p95':>11} "
          f"{'client p50':>11} {'client p95':>11} {'server CPU':>11}  target")
    for name, key, target in (("SIA 0.2° cone (mean "
                               f"{r['sia']['mean_rows']:.0f} rows)", "sia",
                               "server p50 <= 15 ms"),
                              ("SODA 100x100 from RICE CCD", "soda", "p50 <= 20 ms")):
        s = r[key]
        print(f"{name:34} {s['n']:>5} {s['server_p50_ms']:>8.1f} ms {s['server_p95_ms']:>8.1f} ms "
              f"{s['client_p50_ms']:>8.1f} ms {s['client_p95_ms']:>8.1f} ms "
              f"{s['server_cpu_ms']:>8.2f} ms  {target}")
    t = r["patch_throughput"]
    print(f"\nJSON ccds?patch, {t['connections']} connections, {t['seconds']:.0f} s: "
          f"{t.get('per_s', 0):,.0f} requests/s (p50 {t.get('p50_ms', math.nan):.1f} ms, "
          f"p99 {t.get('p99_ms', math.nan):.1f} ms), {t['errors']} errors; target >= 1,000/s")
    cores = r["machine_before"]["cpus"] or 1
    where = "service + embedded PostgreSQL" if r.get("embedded") else "service only"
    print(f"  CPU per request: {t['server_cpu_ms_per_request']:.2f} ms server side ({where}), "
          f"{t['total_cpu_ms_per_request']:.2f} ms with the client; {cores} idle cores would "
          f"allow ~{cores * 1000 / t['server_cpu_ms_per_request']:,.0f} requests/s")
    load = r["load"]
    print(f"\nload test: {load['clients']} clients, {load['seconds']:.0f} s, "
          f"{load['total_per_s']:,.0f} requests/s in all, {load['errors']} errors; client CPU "
          f"{load['client_cpu_s']:.1f} s")
    print(f"{'endpoint':22} {'requests':>9} {'per s':>8} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'errors':>7}")
    for name, s in load["endpoints"].items():
        print(f"{name:22} {s['requests']:>9,} {s['per_s']:>8.1f} {s['p50_ms']:>8.1f} "
              f"{s['p95_ms']:>8.1f} {s['p99_ms']:>8.1f} {s['errors']:>7}")


if __name__ == "__main__":
    sys.exit(main())
