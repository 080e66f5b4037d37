"""Postage stamps: pixels checked against the sky positions they claim, exact patch choice."""

from __future__ import annotations

import multiprocessing
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsst.sphgeom import LonLat, UnitVector3d

from skyreg import Registry
from skyreg.cli.main import cli
from skyreg.cutouts import (
    PixelMask,
    RegionError,
    ScratchCache,
    StampRequestError,
    TargetError,
    parse_region,
)
from skyreg.cutouts.geometry import shifted_wcs, stamp_boxes
from skyreg.errors import NotFoundError
from skyreg.skymaps import build_skymap, patch_wcs
from stamp_builder import STAMP_SKYMAP, decode, pixel_id, populate

GEOMETRY = build_skymap(STAMP_SKYMAP)
TYPES = ("deepCoadd", "riceCoadd")


@pytest.fixture(scope="module")
def stamped(database_factory: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Registry, Path]]:
    """A registry with the stamp sky map and a coadd of every patch, band and kind."""
    directory = tmp_path_factory.mktemp("coadds")
    with Registry.connect(database_factory()) as reg:
        populate(reg, directory)
        yield reg, directory


def _tract_pixel(tract: int, ra: float, dec: float) -> tuple[float, float]:
    from skyreg.skymaps import tract_wcs

    x, y = tract_wcs(GEOMETRY, tract).all_world2pix(ra, dec, 0)
    return float(x), float(y)


def _expected_pieces(ra: float, dec: float, size: int) -> set[tuple[int, int]]:
    """Brute force: every (tract, patch) whose outer box shares a pixel with the stamp box."""
    p = GEOMETRY.patches
    found = set()
    for tract in range(len(GEOMETRY.tracts)):
        x, y = _tract_pixel(tract, ra, dec)
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        box = stamp_boxes(np.array([x]), np.array([y]), size, size)
        for row in np.flatnonzero(p.tract == tract):
            if (box.x0[0] < p.outer_x1[row] and box.x1[0] > p.outer_x0[row]
                    and box.y0[0] < p.outer_y1[row] and box.y1[0] > p.outer_y0[row]):
                found.add((tract, int(p.patch[row])))
    return found


def _check_pixels(stamp: object) -> None:
    """The stamp's pixels are those its WCS and origin claim (values encode the sky)."""
    s = stamp  # type: ignore[assignment]
    ra, dec, ident = decode(s.planes, s.coadd.dataset_type == "riceCoadd")  # type: ignore[attr-defined]
    h, w = s.data.shape  # type: ignore[attr-defined]
    gx, gy = np.meshgrid(np.arange(w), np.arange(h))
    wra, wdec = s.wcs.all_pix2world(gx, gy, 0)  # type: ignore[attr-defined]
    assert np.abs((ra - wra + 180.0) % 360.0 - 180.0).max() < 1e-4
    assert np.abs(dec - wdec).max() < 1e-4
    p = GEOMETRY.patches
    row = GEOMETRY.patch_row(s.coadd.tract, s.coadd.patch)  # type: ignore[attr-defined]
    x0, y0 = s.origin_original  # type: ignore[attr-defined]
    expected = pixel_id(s.coadd.tract, p.outer_x0[row] + x0 + gx, p.outer_y0[row] + y0 + gy)  # type: ignore[attr-defined]
    assert np.array_equal(ident, expected)


# Positions near RA 0, on patch and tract edges, in the tract overlap and at the pole.
SPECIAL = [(359.9, 0.0), (0.0, 0.0), (359.999, -0.1), (0.15, 0.02), (0.3, 0.0),
           (359.65, 0.24), (0.0, 89.9), (45.0, 90.0), (200.0, 89.75), (12.0, 89.99)]


@pytest.mark.parametrize("size", [1, 16, 17])
def test_stamps_hold_the_pixels_they_claim_from_every_patch(stamped: tuple[Registry, Path],
                                                            size: int) -> None:
    reg, _ = stamped
    ra, dec = np.array(SPECIAL).T
    result = reg.postage_stamps((ra, dec), size=size, dataset_types=TYPES)
    assert result.ok
    for target, (r, d) in enumerate(SPECIAL):
        stamps = result.for_target(target)
        pieces = {(s.coadd.tract, s.coadd.patch) for s in stamps}
        assert pieces == _expected_pieces(r, d, size), (r, d)
        assert len(stamps) == 4 * len(pieces)  # 2 bands x 2 kinds per patch
        for s in stamps:
            _check_pixels(s)
            assert s.shape_input == (size, size)
            rows, cols = s.covers
            assert s.data.shape == (rows.stop - rows.start, cols.stop - cols.start)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2), st.floats(-0.3, 0.3), st.floats(-0.3, 0.3), st.integers(1, 40))
def test_random_positions_against_brute_force(stamped: tuple[Registry, Path], tract: int,
                                             dx: float, dy: float, size: int) -> None:
    reg, _ = stamped
    centre = (GEOMETRY.tracts.ra_center[tract], GEOMETRY.tracts.dec_center[tract])
    ra = float((centre[0] + dx / max(np.cos(np.radians(centre[1])), 0.05)) % 360.0)
    dec = float(np.clip(centre[1] + dy, -90, 90))
    result = reg.postage_stamps(([ra], [dec]), size=size, bands="g")
    assert {(s.coadd.tract, s.coadd.patch) for s in result} == _expected_pieces(ra, dec, size)
    for s in result:
        _check_pixels(s)


def test_inner_gives_the_patch_whose_inner_region_holds_the_target(
        stamped: tuple[Registry, Path]) -> None:
    reg, _ = stamped
    rng = np.random.default_rng(3)
    ra = np.concatenate([np.array(SPECIAL)[:, 0], rng.uniform(-0.4, 0.6, 40) % 360.0])
    dec = np.concatenate([np.array(SPECIAL)[:, 1], rng.uniform(-0.3, 0.3, 40)])
    result = reg.postage_stamps((ra, dec), size=8, inner=True, bands="r")
    for target in range(len(ra)):
        owners = {(s.coadd.tract, s.coadd.patch) for s in result.for_target(target)}
        vector = UnitVector3d(LonLat.fromDegrees(ra[target], dec[target]))
        holding = []
        for tract in range(len(GEOMETRY.tracts)):
            from skyreg.geometry.polygons import polygon_from_vertices

            inner = polygon_from_vertices(*GEOMETRY.tracts.inner_polygon(tract))
            if not inner.contains(vector):
                continue
            x, y = _tract_pixel(tract, ra[target], dec[target])
            p = GEOMETRY.patches
            rows = np.flatnonzero((p.tract == tract) & (p.inner_x0 - 0.5 <= x)
                                  & (x < p.inner_x1 - 0.5) & (p.inner_y0 - 0.5 <= y)
                                  & (y < p.inner_y1 - 0.5))
            holding += [(tract, int(p.patch[r])) for r in rows]
        assert owners == set(holding[:1]), (ra[target], dec[target])
        for s in result.for_target(target):
            _check_pixels(s)
            # The border is wider than half a stamp: only the tract's edge cuts a stamp.
            row = GEOMETRY.patch_row(s.coadd.tract, s.coadd.patch)
            width = GEOMETRY.tracts.width[s.coadd.tract]
            x0 = GEOMETRY.patches.outer_x0[row] + s.origin_original[0]
            y0 = GEOMETRY.patches.outer_y0[row] + s.origin_original[1]
            assert s.complete or min(x0, y0) == 0 or max(x0, y0) + 8 > width - 1


def test_partial_mode_keeps_the_requested_box(stamped: tuple[Registry, Path]) -> None:
    reg, _ = stamped
    result = reg.postage_stamps(([359.9], [0.25]), size=20, mode="partial", bands="g",
                                dataset_types=TYPES)
    assert len(result) > 0
    for s in result:
        assert s.data.shape == (20, 20)
        rows, cols = s.covers
        inside = np.zeros((20, 20), dtype=bool)
        inside[rows, cols] = True
        assert np.isnan(s.planes["image"][~inside]).all() if s.data.dtype.kind == "f" else True
        assert (s.planes["mask"][~inside] == 0).all()
        assert (s.planes["mask"][inside] > 0).all()
    with pytest.raises(StampRequestError, match="mode"):
        reg.postage_stamps(([0.0], [0.0]), mode="padded")


def test_per_target_sizes_dict_and_fits(stamped: tuple[Registry, Path], tmp_path: Path) -> None:
    reg, _ = stamped
    result = reg.postage_stamps(([0.0, 0.05, 0.1], [0.0, 0.0, 0.0]), size=[5, 9, 5],
                                bands=("g",))
    arrays = result.to_dict()
    assert len(arrays["target"]) == len(result)
    assert arrays["image"].dtype == object  # two sizes: ragged
    assert sorted(set(arrays["target"].tolist())) == [0, 1, 2]
    path = tmp_path / "s.fits"
    result.to_fits(path)
    with fits.open(path) as hdus:
        hdus.verify("exception")
        assert hdus[0].header["NSTAMPS"] == len(result)
        stamps = result.stamps
        for hdu in hdus[1:]:
            stamp = stamps[hdu.header["EXTVER"] - 1]
            assert hdu.header["TRACT"] == stamp.coadd.tract
            assert hdu.header["SRCURI"] == stamp.uri
            assert np.array_equal(hdu.data, stamp.planes[hdu.name.lower()])
            wcs = WCS(hdu.header)
            assert np.allclose(wcs.all_pix2world([[0, 0], [3, 4]], 0),
                               stamp.wcs.all_pix2world([[0, 0], [3, 4]], 0), atol=1e-10)
    same = reg.postage_stamps(([0.0, 0.05, 0.1], [0.0, 0.0, 0.0]), size=9, bands="g")
    stacked = same.to_dict()
    assert stacked["image"].shape == (len(same), 9, 9)
    assert stacked["mask"].dtype == np.int32


@pytest.mark.parametrize("shape", [
    "POLYGON 359.95 -0.05 0.05 -0.05 0.05 0.04",
    "CIRCLE 0.0 0.0 0.06",
    "RANGE 359.97 0.02 -0.03 0.02",
    "CIRCLE 0 90 0.05",
])
@pytest.mark.parametrize("sparse", [False, True])
def test_regions_select_exactly_the_pixel_centres_inside(stamped: tuple[Registry, Path],
                                                         shape: str, sparse: bool) -> None:
    reg, _ = stamped
    region = parse_region(shape)
    result = reg.postage_stamps(shape, bands="g", dataset_types=TYPES, sparse=sparse)
    assert len(result) > 0
    seen = 0
    for s in result:
        assert s.selection is not None and s.selection.any()
        h, w = s.selection.shape
        gx, gy = np.meshgrid(np.arange(w), np.arange(h))
        ra, dec = s.wcs.all_pix2world(gx, gy, 0)
        xyz = np.stack([np.cos(np.radians(dec)) * np.cos(np.radians(ra)),
                        np.cos(np.radians(dec)) * np.sin(np.radians(ra)),
                        np.sin(np.radians(dec))], axis=-1).reshape(-1, 3)
        inside = np.asarray(region.contains(xyz[:, 0], xyz[:, 1], xyz[:, 2])).reshape(h, w)
        assert np.array_equal(inside, s.selection)
        # The rectangle is tight: every edge row and column holds a selected pixel.
        assert s.selection[0].any() and s.selection[-1].any()
        assert s.selection[:, 0].any() and s.selection[:, -1].any()
        if sparse:
            x, y = s.pixels  # type: ignore[misc]
            assert s.data.shape == (int(s.selection.sum()),)
            assert np.array_equal(x - s.origin_original[0], gx[s.selection])
            assert np.array_equal(y - s.origin_original[1], gy[s.selection])
        seen += int(s.selection.sum())
    # Brute force over every patch: the selected pixels of all pieces.
    expected = 0
    for tract, patch in zip(GEOMETRY.patches.tract.tolist(), GEOMETRY.patches.patch.tolist(),
                            strict=True):
        wcs = patch_wcs(GEOMETRY, tract, patch)
        row = GEOMETRY.patch_row(tract, patch)
        p = GEOMETRY.patches
        h, w = p.outer_y1[row] - p.outer_y0[row], p.outer_x1[row] - p.outer_x0[row]
        gx, gy = np.meshgrid(np.arange(w), np.arange(h))
        ra, dec = wcs.all_pix2world(gx.ravel(), gy.ravel(), 0)
        xyz = np.stack([np.cos(np.radians(dec)) * np.cos(np.radians(ra)),
                        np.cos(np.radians(dec)) * np.sin(np.radians(ra)),
                        np.sin(np.radians(dec))], axis=-1)
        expected += int(np.asarray(region.contains(xyz[:, 0].copy(), xyz[:, 1].copy(),
                                                   xyz[:, 2].copy())).sum())
    assert seen == 2 * expected  # two kinds, one band


def test_pixel_mask_targets_span_patches(stamped: tuple[Registry, Path]) -> None:
    reg, _ = stamped
    mask = np.zeros((30, 40), dtype=bool)
    mask[5:25, 3:37] = True
    mask[10, :] = True
    target = PixelMask("stamps", 1, mask, x0=30, y0=35)
    result = reg.postage_stamps(target, bands="r")
    ids = set()
    for s in result:
        assert s.coadd.tract == 1 and s.selection is not None
        ids |= set(s.planes["mask"][s.selection].tolist())
    j, i = np.nonzero(mask)
    assert ids == {pixel_id(1, x, y) for x, y in zip(i + 30, j + 35, strict=True)}
    with pytest.raises(RegionError, match="selects no pixel"):
        PixelMask("stamps", 1, np.zeros((2, 2), dtype=bool))


def test_a_missing_file_is_reported_and_the_others_come_back(
        stamped: tuple[Registry, Path]) -> None:
    reg, directory = stamped
    victim = directory / "deepCoadd" / "deepCoadd_0_0_g.fits"
    hidden = victim.with_suffix(".hidden")
    victim.rename(hidden)
    try:
        result = reg.postage_stamps(([359.95], [0.0]), size=16)
    finally:
        hidden.rename(victim)
    assert [p.coadd[1:] for p in result.problems] == [("stamps", 0, 0, "g")]
    assert "file not found" in str(result.problems[0])
    assert len(result) == 7 and all(s.coadd != result.problems[0].coadd for s in result)


def test_patch_wcs_is_the_skymap_patch_grid(stamped: tuple[Registry, Path]) -> None:
    reg, _ = stamped
    for tract, patch in [(0, 0), (1, 3), (2, 2)]:
        wcs, shape = reg.patch_wcs("stamps", tract, patch)
        expected = patch_wcs(GEOMETRY, tract, patch)
        row = GEOMETRY.patch_row(tract, patch)
        p = GEOMETRY.patches
        assert shape == (p.outer_y1[row] - p.outer_y0[row], p.outer_x1[row] - p.outer_x0[row])
        pixels = np.array([[0.0, 0.0], [shape[1] - 1, shape[0] - 1], [7.5, 3.25]])
        assert np.allclose(wcs.all_pix2world(pixels, 0), expected.all_pix2world(pixels, 0),
                           atol=1e-12, rtol=0)
    with pytest.raises(NotFoundError):
        reg.patch_wcs("stamps", 0, 99)


def test_request_errors_name_the_problem(stamped: tuple[Registry, Path]) -> None:
    reg, _ = stamped
    with pytest.raises(TargetError, match=r"row 1.*dec"):
        reg.postage_stamps(([0.0, 1.0], [0.0, 91.0]))
    with pytest.raises(TargetError, match=r"row 0.*ra"):
        reg.postage_stamps(([np.nan], [0.0]))
    with pytest.raises(StampRequestError, match="not registered"):
        reg.postage_stamps(([0.0], [0.0]), dataset_types="nonesuch")
    with pytest.raises(StampRequestError, match="not a patch"):
        reg.postage_stamps(([0.0], [0.0]), dataset_types="calexp")
    with pytest.raises(TargetError, match="size"):
        reg.postage_stamps(([0.0], [0.0]), size=0)
    with pytest.raises(RegionError, match="POLYGON"):
        reg.postage_stamps("POLYGON 0 0 1 1")


def test_dask_local_cluster_gives_the_same_stamps(stamped: tuple[Registry, Path],
                                                  tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    reg, _ = stamped
    ra, dec = np.array(SPECIAL).T
    local = reg.postage_stamps((ra, dec), size=12, dataset_types=TYPES)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        remote = reg.postage_stamps((ra, dec), size=12, dataset_types=TYPES, executor=client,
                                    scratch=ScratchCache(tmp_path / "scratch"))
    assert len(remote) == len(local) and remote.ok
    for a, b in zip(local.stamps, remote.stamps, strict=True):
        assert (a.target, a.coadd, a.origin_original) == (b.target, b.coadd, b.origin_original)
        for name in a.planes:
            assert np.array_equal(a.planes[name], b.planes[name])
    assert len(list((tmp_path / "scratch").glob("*.fits"))) == len(remote.files)


def _fill(directory: str, uris: list[str], queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    cache = ScratchCache(directory)
    queue.put([str(cache.get(uri)) for uri in uris])


def test_scratch_cache_is_shared_safely_by_two_processes(stamped: tuple[Registry, Path],
                                                         tmp_path: Path) -> None:
    _, directory = stamped
    uris = [p.resolve().as_uri() for p in sorted((directory / "deepCoadd").glob("*.fits"))[:6]]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_fill, args=(str(tmp_path / "c"), uris[::step], queue))
               for step in (1, -1)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sorted(results[0]) == sorted(results[1])
    copies = sorted((tmp_path / "c").glob("*.fits"))
    assert len(copies) == len(uris)
    assert not list((tmp_path / "c").glob(".fill-*"))
    for uri in uris:
        source = Path(uri.removeprefix("file://")).read_bytes()
        assert ScratchCache(tmp_path / "c").get(uri).read_bytes() == source


def test_scratch_cache_evicts_least_recently_used(stamped: tuple[Registry, Path],
                                                  tmp_path: Path) -> None:
    import os
    import time

    reg, directory = stamped
    files = sorted((directory / "deepCoadd").glob("*.fits"))[:4]
    size = files[0].stat().st_size
    cache = ScratchCache(tmp_path / "lru", max_bytes=int(2.5 * size))
    paths = []
    for i, path in enumerate(files[:3]):
        paths.append(cache.get(path.as_uri()))
        os.utime(paths[-1], (time.time() - 100 + i, time.time() - 100 + i))
    assert not paths[0].exists() and paths[1].exists() and paths[2].exists()
    cache.get(files[1].as_uri())  # used again: now the most recent
    cache.get(files[3].as_uri())
    assert paths[1].exists() and not paths[2].exists()
    with pytest.raises(Exception, match="file not found"):
        cache.get((directory / "nonesuch.fits").as_uri())
    problems = reg.prefetch(([0.0], [0.0]), ScratchCache(tmp_path / "pre"), size=4)
    assert problems == []
    assert len(list((tmp_path / "pre").glob("*.fits"))) == len(
        reg.plan_stamps(([0.0], [0.0]), size=4).tasks)


def test_cli_stamps(stamped: tuple[Registry, Path], tmp_path: Path) -> None:
    reg, _ = stamped
    url = reg.engine.url.render_as_string(hide_password=False)
    targets = tmp_path / "objects.csv"
    targets.write_text("id,ra,dec\n1,359.95,0.0\n2,0.1,0.02\n")
    out = tmp_path / "stamps.fits"
    runner = CliRunner()
    done = runner.invoke(cli, ["--db", url, "stamps", "--targets", str(targets), "--size", "8",
                               "--band", "g", "r", "--dataset-type", "deepCoadd", "riceCoadd",
                               "--out", str(out), "--no-progress"])
    assert done.exit_code == 0, done.output
    expected = reg.postage_stamps(([359.95, 0.1], [0.0, 0.02]), size=8, bands=("g", "r"),
                                  dataset_types=TYPES)
    with fits.open(out) as hdus:
        assert hdus[0].header["NSTAMPS"] == len(expected)
        assert {h.header["BAND"] for h in hdus[1:]} == {"g", "r"}
    assert f"{len(expected)} stamps of 2 targets" in done.stdout
    help_text = runner.invoke(cli, ["stamps", "--help"]).output
    assert "--band g r i" in help_text and "--scratch" in help_text
    targets.write_text("ra,decl\n1,2\n")
    bad = runner.invoke(cli, ["--db", url, "stamps", "--targets", str(targets), "--out",
                              str(out)])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert "objects.csv" in bad.stderr and "dec" in bad.stderr
    bad = runner.invoke(cli, ["--db", url, "stamps", "--region", "CIRCLE 0 0 x", "--out",
                              str(out)])
    assert bad.exit_code == 1 and "'x' is not a number" in bad.stderr


def test_cli_reports_unreadable_files_with_status_2(stamped: tuple[Registry, Path],
                                                    tmp_path: Path) -> None:
    reg, directory = stamped
    url = reg.engine.url.render_as_string(hide_password=False)
    victim = directory / "deepCoadd" / "deepCoadd_1_1_g.fits"
    saved = tmp_path / "saved.fits"
    shutil.copy(victim, saved)
    victim.write_bytes(b"not a FITS file at all")
    try:
        done = CliRunner().invoke(cli, ["--db", url, "stamps", "--region", "CIRCLE 0.3 0 0.02",
                                        "--band", "g", "--out", str(tmp_path / "o.fits")])
    finally:
        shutil.copy(saved, victim)
    assert done.exit_code == 2
    assert "deepCoadd_1_1_g.fits: not a readable FITS file" in done.stderr


def test_shifted_wcs_keeps_sip_distortion() -> None:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    wcs.wcs.crval = [10.0, -5.0]
    wcs.wcs.crpix = [50.0, 40.0]
    wcs.wcs.cd = [[-1e-4, 0.0], [0.0, 1e-4]]
    from astropy.wcs import Sip

    a = np.zeros((3, 3))
    b = np.zeros((3, 3))
    a[2, 0], b[0, 2], a[1, 1] = 2e-5, -3e-5, 1e-5
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    wcs.wcs.set()
    shifted = shifted_wcs(wcs, 17, -3)
    pixels = np.array([[0.0, 0.0], [80.0, 12.0], [33.3, 77.7]])
    assert np.allclose(shifted.all_pix2world(pixels, 0),
                       wcs.all_pix2world(pixels + np.array([17, -3]), 0), atol=1e-12, rtol=0)
    assert not np.allclose(shifted.wcs_pix2world(pixels, 0), shifted.all_pix2world(pixels, 0),
                           atol=1e-9, rtol=0)
    assert np.array_equal(wcs.wcs.crpix, [50.0, 40.0])  # the source is untouched


def test_stamps_doc_examples_run(stamped: tuple[Registry, Path], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python blocks of docs/stamps.md, on the test coadds (names and places swapped)."""
    import re

    reg, _ = stamped
    doc = (Path(__file__).resolve().parent.parent / "docs" / "stamps.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)
    assert len(blocks) >= 3
    swaps = {'"hsc_rings_v1", 9813, 40': '"stamps", 0, 0', "hsc_rings_v1": "stamps",
             "[150.10, 150.11, 150.12], [2.20, 2.21, 2.19]": "[359.95, 0.0, 0.3], [0.0, 0.01, 0]",
             "/local/scratch/coadds": str(tmp_path / "scratch"),
             "n_workers=4": "n_workers=1, dashboard_address=None"}
    monkeypatch.setenv("SKYREG_DATABASE_URL", reg.engine.url.render_as_string(
        hide_password=False))
    namespace: dict[str, object] = {}
    for block in blocks:
        for old, new in swaps.items():
            block = block.replace(old, new)
        exec(block, namespace)
    stamps = namespace["stamps"]
    assert len(stamps) > 0 and stamps.ok  # type: ignore[arg-type, attr-defined]
    assert namespace["problems"] == []
    namespace["reg"].close()  # type: ignore[attr-defined]


def test_lookup_statements_use_the_indexes(stamped: tuple[Registry, Path]) -> None:
    """The planner's statements stay on the pixel and key indexes with many patches stored."""
    import re

    from skyreg.cutouts import lookup
    from skyreg.skymaps import DiscreteDefinition

    reg, _ = stamped
    many = DiscreteDefinition(ra_deg=tuple(float(i) for i in range(300)),
                              dec_deg=tuple(float(i % 60 - 30) for i in range(300)),
                              radius_deg=0.25, pixel_scale_arcsec=20.0, patch_inner_pixels=50,
                              patch_border_pixels=8, tract_overlap_deg=0.01)
    reg.register_skymap("many", many)  # 1,200 patches
    driver = reg._conn.connection.driver_connection
    assert driver is not None
    params = {"lo": [1000, 5000], "hi": [1010, 5020], "types": ["deepCoadd"],
              "all_bands": False, "bands": ["g"], "all_skymaps": True, "skymaps": []}
    plans = [(lookup._FILES_SQL, params),
             (lookup._TRACTS_SQL, {"skymap": "many", "tracts": [3, 4]}),
             (lookup._PATCH_SQL, {"skymap": "many", "tract": 3, "patch": 2})]
    large = re.compile(r"Seq Scan on (patch|patch_pixel|tract|tract_pixel)\b")
    for sql, values in plans:
        plan = "\n".join(row[0] for row in driver.execute("EXPLAIN " + sql, values).fetchall())  # type: ignore[attr-defined]
        assert not large.search(plan), plan


def test_dense_groups_read_from_compressed_coadds_match_the_uncompressed(
        stamped: tuple[Registry, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Stamps of a dense group share tiles: read once as a union box, sliced per stamp."""
    from skyreg.cutouts import extract

    reads: list[tuple[int, int]] = []
    original = extract.PlaneReader.read_into

    def counting(self: object, plane: object, out: np.ndarray, *box: int) -> None:
        if getattr(plane, "compressed", False):
            reads.append(out.shape)
        original(self, plane, out, *box)  # type: ignore[arg-type]

    monkeypatch.setattr(extract.PlaneReader, "read_into", counting)
    reg, _ = stamped
    rng = np.random.default_rng(11)
    ra = (359.92 + rng.normal(0, 0.01, 30)) % 360.0
    dec = -0.12 + rng.normal(0, 0.01, 30)
    plain = reg.postage_stamps((ra, dec), size=10, bands="g")
    rice = reg.postage_stamps((ra, dec), size=10, bands="g", dataset_types="riceCoadd")
    assert len(plain) == len(rice) > 30
    assert len(reads) < len(rice)  # some union reads served several stamps
    for a, b in zip(plain.stamps, rice.stamps, strict=True):
        assert (a.target, a.coadd[1:], a.origin_original) == (b.target, b.coadd[1:],
                                                              b.origin_original)
        assert np.array_equal(a.planes["mask"], b.planes["mask"])
        _check_pixels(b)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300), st.integers(1, 60),
                          st.integers(1, 60)), min_size=1, max_size=12),
       st.sampled_from([(16, 16), (64, 1), (333, 1), (7, 9)]))
def test_tile_rectangles_cover_each_needed_tile_once(
        boxes: list[tuple[int, int, int, int]], tile: tuple[int, int]) -> None:
    from skyreg.cutouts.extract import _tile_rectangles
    from skyreg.cutouts.planes import Plane

    plane = Plane("image", 1, True, -32, 333, 333, tile=tile)
    x0, y0 = np.array([b[0] for b in boxes]), np.array([b[1] for b in boxes])
    x1 = np.minimum(x0 + [b[2] for b in boxes], 333)
    y1 = np.minimum(y0 + [b[3] for b in boxes], 333)
    cover = np.zeros((333, 333), dtype=int)
    rectangles = _tile_rectangles(plane, x0, y0, x1, y1)
    for a, b, c, d in rectangles:
        assert a % tile[0] == 0 and b % tile[1] == 0  # whole tiles
        cover[b:d, a:c] += 1
    assert cover.max() <= 1  # no tile read twice
    for a, b, c, d in zip(x0, y0, x1, y1, strict=True):
        assert (cover[b:d, a:c] == 1).all()
    # Only touched tiles: every rectangle's tiles hold a pixel of some box.
    touched = np.zeros_like(cover)
    for a, b, c, d in zip(x0 // tile[0], y0 // tile[1], (x1 - 1) // tile[0],
                          (y1 - 1) // tile[1], strict=True):
        touched[b * tile[1]:(d + 1) * tile[1], a * tile[0]:(c + 1) * tile[0]] = 1
    assert (cover <= touched).all()


@settings(deadline=None)
@given(st.floats(-50, 150), st.floats(-50, 150), st.integers(1, 40), st.integers(1, 40))
def test_stamp_boxes_are_the_boxes_cutout2d_chooses(x: float, y: float, width: int,
                                                    height: int) -> None:
    from astropy.nddata import Cutout2D
    from astropy.nddata.utils import NoOverlapError

    box = stamp_boxes(np.array([x]), np.array([y]), width, height)
    try:
        cutout = Cutout2D(np.zeros((100, 100)), (x, y), (height, width), mode="partial")
    except NoOverlapError:
        clipped = box.clip(100, 100)
        assert not clipped.nonempty[0]
        return
    # The requested box's origin: where the overlap starts in the image, minus where it
    # starts in the cutout.
    rows_big, cols_big = cutout.slices_original
    rows_small, cols_small = cutout.slices_cutout
    assert (cols_big.start - cols_small.start, rows_big.start - rows_small.start) == (
        int(box.x0[0]), int(box.y0[0]))
    assert cutout.shape == (height, width)
