"""A small archive with real FITS files, and a live ``skyreg serve`` on a loopback port
(a pytest plugin, see conftest.py).

The archive holds a synthetic LSST-like survey (manifest; files under s3:// URIs that the
service lists but cannot cut), DECam multi-extension raws and an LSSTCam calexp whose pixels
encode their own position (value = x + 1000 y), a RICE-compressed CCD, and coadds of a small
discrete sky map. The server is a real subprocess (``python -m skyreg serve``); it receives
SIGTERM when the test process dies (Linux parent-death signal) and is stopped at the end.

Both are made once per test session (building the archive and starting a server are most of
the service tests' time) and only read by the tests. The server runs as a deployment should:
its connections switch to a read-only role made by ``ensure_roles`` after the schema was
migrated, so every service test also proves that role can answer it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from astropy.io import fits

from fits_builder import ccd_wcs_cards, detector_cards, instrument_cards
from skyreg import Registry
from skyreg.skymaps import DiscreteDefinition, build_skymap, patch_wcs
from skyreg.synthetic import SurveySpec, generate_survey

SMALL = DiscreteDefinition(ra_deg=(150.4,), dec_deg=(2.4,), radius_deg=0.4,
                           pixel_scale_arcsec=10.0, patch_inner_pixels=100,
                           patch_border_pixels=10, tract_overlap_deg=0.01)


def ramp(shape: tuple[int, int], dtype: Any = np.float32) -> np.ndarray:
    """Pixel values that tell where they are: x + 1000 * y (0-based)."""
    ny, nx = shape[1], shape[0]
    y, x = np.mgrid[0:ny, 0:nx]
    return (x + 1000 * y).astype(dtype)


def write_ramp_mef(path: Path, *, profile: str = "DECam", visit: int, detectors: range,
                   boresight: tuple[float, float], band: str = "r", mjd: float = 61410.1,
                   shape: tuple[int, int] = (64, 128)) -> Path:
    from fits_builder import CAMERAS

    scale = CAMERAS[profile]["scale"] / 3600.0 * CAMERAS[profile]["size"][0] / shape[0]
    primary = fits.PrimaryHDU()
    for key, value in instrument_cards(profile, visit, band, mjd, 30.0, boresight, 0.0).items():
        primary.header[key] = value
    hdus: list[Any] = [primary]
    detectors = list(detectors)
    for slot, detector in enumerate(detectors):
        offset = ((slot - (len(detectors) - 1) / 2) * shape[0] * scale * 1.05, 0.0)
        header = fits.Header()
        for key, value in {**ccd_wcs_cards(boresight, offset, shape, scale, "sip"),
                           **detector_cards(profile, detector)}.items():
            header[key] = value
        hdus.append(fits.ImageHDU(ramp(shape), header=header))
    fits.HDUList(hdus).writeto(path)
    return path


def write_rice_ccd(path: Path, *, visit: int, boresight: tuple[float, float],
                   shape: tuple[int, int] = (200, 300), detector: int = 7) -> Path:
    """A tile-compressed DECam CCD (RICE_1, lossless integers) holding the ramp."""
    from fits_builder import CAMERAS

    scale = CAMERAS["DECam"]["scale"] / 3600.0 * 2
    primary = fits.PrimaryHDU()
    for key, value in instrument_cards("DECam", visit, "g", 61411.2, 45.0, boresight,
                                       0.0).items():
        primary.header[key] = value
    header = fits.Header()
    for key, value in {**ccd_wcs_cards(boresight, (0.0, 0.0), shape, scale, "sip"),
                       **detector_cards("DECam", detector)}.items():
        header[key] = value
    image = fits.CompImageHDU(ramp(shape, np.int32), header=header, compression_type="RICE_1",
                              tile_shape=(32, 32))
    fits.HDUList([primary, image]).writeto(path)
    return path


def write_coadd(path: Path, tract: int, patch: int, band: str) -> Path:
    geometry = build_skymap(SMALL)
    row = geometry.patch_row(tract, patch)
    p = geometry.patches
    width = int(p.outer_x1[row] - p.outer_x0[row])
    height = int(p.outer_y1[row] - p.outer_y0[row])
    header = patch_wcs(geometry, tract, patch).to_header()
    header["FILTER"] = band
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(ramp((width, height)), header=header,
                                                   name="IMAGE")]).writeto(path)
    return path


@dataclass
class Archive:
    url: str
    root: Path
    rice_path: Path


def build_archive(url: str, root: Path) -> Archive:
    survey = root / "survey"
    generate_survey(survey, SurveySpec(
        n_visits=40, seed=3, center_ra=150.4, center_dec=2.4, width_deg=3.0, height_deg=3.0,
        file_uri_template="s3://survey/raw/{instrument}/{visit}/{detector}.fits"))
    raw = root / "raw"
    raw.mkdir()
    for i in range(3):
        write_ramp_mef(raw / f"decam_{i}.fits", visit=900 + i, detectors=range(4),
                       boresight=(150.3 + 0.05 * i, 2.35), band="gri"[i], mjd=61410.1 + i)
    rice = root / "rice"
    rice.mkdir()
    rice_path = write_rice_ccd(rice / "c4d_rice.fits.fz", visit=950, boresight=(150.45, 2.45))
    coadds = root / "coadds"
    coadds.mkdir()
    geometry = build_skymap(SMALL)
    for patch in range(0, len(geometry.patches.patch), 7):
        for band in ("g", "r"):
            write_coadd(coadds / f"p{patch}_{band}.fits", 0, int(geometry.patches.patch[patch]),
                        band)
    with Registry.connect(url) as registry:
        registry.ingest_manifest(survey)
        for directory, kwargs in ((raw, {}), (rice, {}),
                                  (coadds, {"dataset_type": "deepCoadd", "skymap": "small"})):
            if directory == coadds:
                registry.register_skymap("small", SMALL)
            report = registry.ingest_fits(directory, jobs=1, recursive=True, **kwargs)
            assert report.ok, report.problem_lines()
    return Archive(url, root, rice_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: receive SIGTERM when the test process dies (Linux prctl)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class LiveService:
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def live_service(url: str, tmp: Path, *args: str, home: Path | None = None,
                 env: dict[str, str] | None = None) -> Iterator[LiveService]:
    """``python -m skyreg serve`` on a free loopback port until the block ends."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    command = [sys.executable, "-m", "skyreg"]
    if url:
        command += ["--db", url]
    if home is not None:
        command += ["--home", str(home)]
    command += ["serve", "--host", "127.0.0.1", "--port", str(port), *args]
    environment = {**os.environ, **(env or {})}
    environment.pop("SKYREG_DATABASE_URL", None) if not url else None
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   env=environment, preexec_fn=_die_with_parent)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"skyreg serve exited with {process.returncode}:\n"
                                   + log.read_text(errors="replace"))
            try:
                if httpx.get(f"{base}/sia2/availability", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("skyreg serve did not start:\n" + log.read_text())
            time.sleep(0.1)
        yield LiveService(base, process, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def archive(database_factory: Callable[[], str],
            tmp_path_factory: pytest.TempPathFactory) -> Archive:
    return build_archive(database_factory(), tmp_path_factory.mktemp("archive"))


@dataclass(frozen=True)
class ServiceRoles:
    reader: str
    writer: str


@pytest.fixture(scope="session")
def service_roles(archive: Archive) -> Iterator[ServiceRoles]:
    """Reader and writer roles of the archive, made after its migrations ran (roles are
    cluster-wide: the names are unique to this test process), dropped at the end."""
    from skyreg.db.engine import make_engine
    from skyreg.db.roles import drop_roles, ensure_roles

    roles = ServiceRoles(f"svc_reader_{os.getpid()}", f"svc_writer_{os.getpid()}")
    engine = make_engine(archive.url)
    try:
        ensure_roles(engine, roles.reader, roles.writer)
        yield roles
    finally:
        drop_roles(engine, roles.reader, roles.writer)
        engine.dispose()


@pytest.fixture(scope="session")
def service(archive: Archive, service_roles: ServiceRoles,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """``skyreg serve`` on the archive, reading through the reader role."""
    with live_service(archive.url, tmp_path_factory.mktemp("serve"), "--read-role",
                      service_roles.reader) as live:
        yield live
