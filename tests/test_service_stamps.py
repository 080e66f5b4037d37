"""Stamps and multi-plane SODA cutouts over HTTP, on a live server over synthetic coadds.

The coadds (tests/stamp_builder.py) have IMAGE, MASK and VARIANCE planes whose pixels encode
their sky position, uncompressed (``deepCoadd``) and RICE-compressed (``riceCoadd``). Every
answer is read back with astropy and compared with the Python API's own stamps.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import pyvo
from astropy.io import fits
from astropy.wcs import WCS

from service_fixtures import LiveService, live_service
from skyreg import Registry
from skyreg.registry.dataset_ids import dataset_id, patch_dataset_key
from skyreg.skymaps import build_skymap, patch_wcs
from stamp_builder import STAMP_SKYMAP, populate

GEOMETRY = build_skymap(STAMP_SKYMAP)
TYPES = ["deepCoadd", "riceCoadd"]


class StampServer:
    def __init__(self, url: str, directory: Path, service: LiveService) -> None:
        self.url, self.directory, self.service = url, directory, service

    @property
    def base(self) -> str:
        return self.service.base


@pytest.fixture(scope="module")
def stamp_server(database_factory: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[StampServer]:
    """The stamp registry (every patch of STAMP_SKYMAP in g and r, both kinds) behind a live
    server with small limits, so that the limits can be reached."""
    url = database_factory()
    directory = tmp_path_factory.mktemp("stamp-coadds")
    with Registry.connect(url) as reg:
        populate(reg, directory)
    with live_service(url, tmp_path_factory.mktemp("stamp-serve"), "--max-stamp-objects", "40",
                      "--max-stamps", "300", "--max-request-pixels", "1000000",
                      "--max-cutout", "200", "--max-cutout-regions", "5") as live:
        yield StampServer(url, directory, live)


def _centre(tract: int, patch: int) -> tuple[float, float]:
    """The sky position of the centre of a patch's coadd."""
    row = GEOMETRY.patch_row(tract, patch)
    p = GEOMETRY.patches
    x = (int(p.outer_x1[row] - p.outer_x0[row]) - 1) / 2.0
    y = (int(p.outer_y1[row] - p.outer_y0[row]) - 1) / 2.0
    ra, dec = patch_wcs(GEOMETRY, tract, patch).all_pix2world([x], [y], 0)
    return float(ra[0]) % 360.0, float(dec[0])


def _positions() -> list[tuple[float, float]]:
    """Objects inside patches, on patch and tract edges, at RA 0, near the pole."""
    found = [_centre(tract, patch) for tract, patch in ((0, 0), (0, 3), (1, 1), (2, 2))]
    found += [(0.0, 0.0), (359.9, 0.0), (0.1, -0.05), (10.0, 89.95)]
    return found


def _hdus(body: bytes) -> fits.HDUList:
    hdus = fits.open(io.BytesIO(body))
    hdus.verify("exception")
    return hdus


_PROVENANCE = ("TARGET", "DSTYPE", "SKYMAP", "TRACT", "PATCH", "BAND", "SRCURI", "SRCHDU",
               "SRCX0", "SRCY0", "COMPLETE", "EXTNAME", "EXTVER")


def _same_stamps(served: fits.HDUList, expected: fits.HDUList) -> None:
    assert len(served) == len(expected) > 1
    assert served[0].header["NSTAMPS"] == expected[0].header["NSTAMPS"]
    for got, want in zip(served[1:], expected[1:], strict=True):
        assert np.array_equal(got.data, want.data, equal_nan=True)
        for keyword in _PROVENANCE:
            assert got.header[keyword] == want.header[keyword], keyword
        assert WCS(got.header).wcs.compare(WCS(want.header).wcs)


def test_stamps_of_positions_equal_the_python_api(stamp_server: StampServer) -> None:
    positions = _positions()
    body = {"positions": [{"ra": ra, "dec": dec} for ra, dec in positions],
            "size": 12, "dataset_types": TYPES, "bands": ["g", "r"], "skymap": "stamps"}
    response = httpx.post(f"{stamp_server.base}/api/v1/stamps", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/fits"
    assert response.headers["X-Stamp-Problems"] == "0"
    with Registry.connect(stamp_server.url) as reg:
        expected = reg.postage_stamps(([p[0] for p in positions], [p[1] for p in positions]),
                                      size=12, dataset_types=TYPES, bands=["g", "r"],
                                      skymap="stamps")
    with _hdus(response.content) as served, _hdus(expected.to_fits() or b"") as wanted:
        _same_stamps(served, wanted)
        assert {h.name for h in served[1:]} == {"IMAGE", "MASK", "VARIANCE"}
        assert int(response.headers["X-Stamp-Count"]) == served[0].header["NSTAMPS"] > 20


def test_per_object_sizes_partial_mode_and_zip(stamp_server: StampServer) -> None:
    positions = _positions()[:3]
    sizes = [5, None, 9]
    body = {"positions": [{"ra": ra, "dec": dec, **({"size": s} if s else {})}
                          for (ra, dec), s in zip(positions, sizes, strict=True)],
            "size": 7, "bands": ["r"], "mode": "partial"}
    fits_answer = httpx.post(f"{stamp_server.base}/api/v1/stamps", json=body, timeout=60)
    zipped = httpx.post(f"{stamp_server.base}/api/v1/stamps", params={"format": "zip"},
                        json=body, timeout=60)
    assert fits_answer.status_code == zipped.status_code == 200, zipped.text
    assert zipped.headers["content-type"] == "application/zip"
    with Registry.connect(stamp_server.url) as reg:
        expected = reg.postage_stamps(([p[0] for p in positions], [p[1] for p in positions]),
                                      size=[5, 7, 9], bands=["r"], mode="partial")
    with _hdus(fits_answer.content) as served, _hdus(expected.to_fits() or b"") as wanted:
        _same_stamps(served, wanted)
        archive = zipfile.ZipFile(io.BytesIO(zipped.content))
        manifest = json.loads(archive.read("manifest.json"))
        assert len(manifest["stamps"]) == served[0].header["NSTAMPS"] and not manifest[
            "problems"]
        for entry in manifest["stamps"]:
            with _hdus(archive.read(entry["file"])) as single:
                n = entry["number"]
                assert single[1].header["EXTVER"] == n
                assert entry["shape"] == [entry["target"] * 2 + 5] * 2  # sizes 5, 7, 9
                for plane in ("IMAGE", "MASK", "VARIANCE"):
                    assert np.array_equal(single[plane].data, served[plane, n].data,
                                          equal_nan=True)
                    assert single[plane].header["TRACT"] == entry["tract"]


def test_stamps_of_a_region_carry_the_selection(stamp_server: StampServer) -> None:
    region = "POLYGON 359.95 -0.05 0.05 -0.05 0.0 0.05"
    response = httpx.post(f"{stamp_server.base}/api/v1/stamps", json={
        "region": region, "dataset_types": ["riceCoadd"], "bands": ["g"]}, timeout=60)
    assert response.status_code == 200, response.text
    with Registry.connect(stamp_server.url) as reg:
        expected = reg.postage_stamps(region, dataset_types="riceCoadd", bands="g")
    with _hdus(response.content) as served, _hdus(expected.to_fits() or b"") as wanted:
        _same_stamps(served, wanted)
        assert "SELECTED" in {h.name for h in served}


def test_a_missing_file_is_reported_and_the_other_stamps_come_back(
        stamp_server: StampServer) -> None:
    ra, dec = _positions()[0]
    body = {"positions": [{"ra": ra, "dec": dec}], "size": 8, "dataset_types": TYPES}
    gone = stamp_server.directory / "deepCoadd" / "deepCoadd_0_0_g.fits"
    moved = gone.with_suffix(".away")
    gone.rename(moved)
    try:
        response = httpx.post(f"{stamp_server.base}/api/v1/stamps", json=body, timeout=60)
        zipped = httpx.post(f"{stamp_server.base}/api/v1/stamps", params={"format": "zip"},
                            json=body, timeout=60)
    finally:
        moved.rename(gone)
    assert response.status_code == 200 and response.headers["X-Stamp-Problems"] == "1"
    with _hdus(response.content) as served:
        primary = served[0].header
        assert primary["NPROBLEM"] == 1 and "file not found" in primary["PROB1"]
        assert "deepCoadd_0_0_g.fits" in primary["PROB1"]
        kinds = {(h.header["DSTYPE"], h.header["TRACT"], h.header["PATCH"], h.header["BAND"])
                 for h in served[1:]}
        assert ("deepCoadd", 0, 0, "g") not in kinds
        assert {("deepCoadd", 0, 0, "r"), ("riceCoadd", 0, 0, "g"),
                ("riceCoadd", 0, 0, "r")} <= kinds
    problems = json.loads(zipfile.ZipFile(io.BytesIO(zipped.content)).read("manifest.json")
                          )["problems"]
    assert [(p["dataset_type"], p["band"], p["tract"], p["patch"]) for p in problems] == [
        ("deepCoadd", "g", 0, 0)] and "file not found" in problems[0]["reason"]


@pytest.mark.parametrize("body, status, reason", [
    ({}, 400, "either positions or region"),
    ({"positions": [{"ra": 0, "dec": 0}], "region": "CIRCLE 0 0 0.1"}, 400, "either"),
    ({"positions": []}, 400, "at least one position"),
    ({"positions": [{"ra": 0, "dec": 95}]}, 422, "positions.0.dec"),
    ({"positions": [{"ra": "x", "dec": 0}]}, 422, "positions.0.ra"),
    ({"positions": [{"ra": 0, "dec": 0, "mag": 3}]}, 422, "positions.0.mag"),
    ({"positions": [{"ra": 0, "dec": 0}], "size": 0}, 422, "size"),
    ({"positions": [{"ra": 0, "dec": 0}], "size": 201}, 413, "at most 200 pixels"),
    ({"positions": [{"ra": 0, "dec": 0}], "mode": "sparse"}, 422, "mode"),
    ({"region": "CIRCLE 0 0"}, 400, "CIRCLE takes 3 numbers"),
    ({"region": "POLYGON 0 0 1 0 1 1 0 1 0.5 0.5"}, 400, "convex"),
    ({"positions": [{"ra": 0, "dec": 0}], "skymap": "nonesuch"}, 400, "'nonesuch' is not"),
    ({"positions": [{"ra": 0, "dec": 0}] * 41}, 413, "at most 40"),
    ({"positions": [{"ra": 0, "dec": 0}] * 40, "size": 8, "dataset_types": TYPES}, 413,
     "makes 320 stamps (objects x covering coadds); this service returns at most 300"),
    ({"positions": [{"ra": 0, "dec": 0}] * 5, "size": 180, "dataset_types": TYPES}, 413,
     "pixels per plane; this service returns at most 1000000"),
])
def test_bad_requests_are_refused_with_the_reason(stamp_server: StampServer,
                                                  body: dict[str, Any], status: int,
                                                  reason: str) -> None:
    response = httpx.post(f"{stamp_server.base}/api/v1/stamps", json=body, timeout=60)
    assert response.status_code == status, response.text
    assert reason in response.json()["detail"], response.text


def test_bodies_that_are_not_json_objects(stamp_server: StampServer) -> None:
    url = f"{stamp_server.base}/api/v1/stamps"
    for content in (b"", b"[1, 2]", b"{", b"null", b'{"positions": 3}'):
        response = httpx.post(url, content=content, headers={"content-type":
                                                              "application/json"})
        assert response.status_code == 422, (content, response.text)
    assert httpx.post(url, params={"format": "tar"}, json={"region": "CIRCLE 0 0 0.1"}
                      ).status_code == 422


def _coadd_id(tract: int, patch: int, band: str, kind: str = "deepCoadd") -> str:
    return dataset_id(patch_dataset_key(kind, "stamps", tract, patch, band))


@pytest.mark.parametrize("kind", TYPES)
def test_soda_cuts_every_plane_and_several_regions(stamp_server: StampServer,
                                                   kind: str) -> None:
    ra, dec = _centre(0, 0)
    identifier = _coadd_id(0, 0, "g", kind)
    circle = f"{ra} {dec} 0.01"
    polygon = f"{ra - 0.02} {dec - 0.02} {ra + 0.02} {dec - 0.02} {ra} {dec + 0.02}"
    far = "CIRCLE 120 30 0.1"
    sync = f"{stamp_server.base}/soda/sync"
    response = httpx.get(sync, params={"ID": identifier, "CIRCLE": circle,
                                       "POLYGON": polygon, "POS": far})
    assert response.status_code == 200, response.text
    from skyreg.cutouts import soda_cutout

    source = stamp_server.directory / kind / f"{kind}_0_0_g.fits"
    with _hdus(response.content) as cut:
        assert cut[0].header["NPOS"] == 3 and cut[0].header["NOPIX3"] is True
        assert [(h.name, h.ver) for h in cut[1:]] == [
            (p, k) for k in (1, 2) for p in ("IMAGE", "MASK", "VARIANCE")]
        for k, region in ((1, f"CIRCLE {circle}"), (2, f"POLYGON {polygon}")):
            assert cut["IMAGE", k].header["POS"] == region
            with _hdus(soda_cutout(source, 1, region) or b"") as alone:
                for plane in ("IMAGE", "MASK", "VARIANCE"):
                    assert np.array_equal(cut[plane, k].data, alone[plane].data)
    assert httpx.get(sync, params={"ID": identifier, "POS": [far, far]}).status_code == 204
    too_many = httpx.get(sync, params={"ID": identifier, "CIRCLE": [circle] * 6})
    assert too_many.status_code == 413 and "at most 5" in too_many.text
    big = httpx.get(sync, params={"ID": identifier, "CIRCLE": f"{ra} {dec} 5"})
    assert big.status_code == 200  # a 66-pixel patch: the whole image, under 200 pixels


def test_pyvo_processed_with_several_regions(stamp_server: StampServer) -> None:
    import astropy.units as u

    ra, dec = _centre(0, 0)
    results = pyvo.dal.SIA2Service(f"{stamp_server.base}/sia2").search(
        pos=(ra, dec, 0.001), collection="deepCoadd", maxrec=100)
    record = next(r for r in results if r.obs_publisher_did == _coadd_id(0, 0, "g"))
    polygon = [ra - 0.02, dec - 0.02, ra + 0.02, dec - 0.02, ra, dec + 0.02] * u.deg
    stream = record.processed(circle=(ra * u.deg, dec * u.deg, 0.01 * u.deg), polygon=polygon)
    with _hdus(stream.read()) as cut:
        assert cut[0].header["NPOS"] == 2
        for k in (1, 2):
            image = cut["IMAGE", k]
            x, y = WCS(image.header).all_world2pix(ra, dec, 0)
            ny, nx = image.data.shape
            assert 0 <= x < nx and 0 <= y < ny
            # IMAGE holds each pixel's RA: the stamp WCS says the same.
            assert abs(float(image.data[round(float(y)), round(float(x))]) - ra) < 0.01


def test_concurrent_cutouts_are_the_sequential_ones(stamp_server: StampServer) -> None:
    """Requests cut at once in the server's threads give the bytes of one-at-a-time ones."""
    import asyncio

    ra, dec = _centre(0, 0)
    requests = [{"ID": _coadd_id(0, 0, band, kind), "CIRCLE": f"{ra + d} {dec - d} 0.008"}
                for band in ("g", "r") for kind in TYPES for d in (0.0, 0.004, 0.008)]
    sync = f"{stamp_server.base}/soda/sync"
    alone = [httpx.get(sync, params=params).content for params in requests]

    async def together() -> list[bytes]:
        async with httpx.AsyncClient(timeout=60) as http:
            answers = await asyncio.gather(*(http.get(sync, params=params)
                                             for params in requests * 3))
        return [answer.content for answer in answers]

    assert asyncio.run(together()) == alone * 3
