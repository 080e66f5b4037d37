"""Plots without a server: footprints, coverage counts, figures and ``skyreg plot``.

The registry holds two small surveys: one straddling RA 0/360 and one around the north
celestial pole, where drawing goes wrong first (lines across the whole map, polar caps
filled inside out). Figures are checked for content — the drawn paths' extents, the colours
in the rendered PNG, the CCDs they show against the registry's searches — never pixel by
pixel.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from PIL import Image

from skyreg import Registry
from skyreg.cli.main import cli
from skyreg.errors import SkyregError
from skyreg.plots import band_color, figures
from skyreg.plots.sphere import allsky_pieces, densify, map_longitude
from skyreg.registry import PatchRef, TractRef
from skyreg.synthetic import SurveySpec, generate_survey

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def two_surveys(database_factory: Callable[[], str],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("plots")
    url = database_factory()
    with Registry.connect(url) as registry:
        for name, spec in (
            ("ra0", SurveySpec(n_visits=6, seed=5, center_ra=0.2, center_dec=-5.0,
                               width_deg=2.0, height_deg=2.0, bands=("g", "r", "i"))),
            ("pole", SurveySpec(n_visits=4, seed=6, center_ra=40.0, center_dec=89.0,
                                width_deg=1.0, height_deg=1.0, bands=("g", "r", "i"),
                                first_day_obs=20280101)),
        ):
            generate_survey(root / name, spec)
            registry.ingest_manifest(root / name)
        yield registry


def _png(figure: figures.Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), dtype=float)


def _has_colour(pixels: np.ndarray, colour: str, tolerance: float = 40.0,
                at_least: int = 20) -> bool:
    target = np.array(to_rgb(colour)) * 255
    return int((np.abs(pixels - target).sum(axis=-1) < tolerance).sum()) >= at_least


# -- footprints and coverage against the registry and brute force ----------------------------


def test_footprints_are_the_stored_polygons(two_surveys: Registry) -> None:
    reg = two_surveys
    ccds = reg.find_ccds(cone=(0.0, -5.0, 0.5))
    assert ccds
    shapes = reg.footprints(ccds)
    assert [s.key for s in shapes] == list(ccds)
    for shape in shapes[:20]:
        assert shape.polygon() == reg.ccd_region(*shape.key)
        assert shape.band in ("g", "r", "i") and shape.mjd_start is not None
    patch = reg.find_patches(point=(0.0, -5.0))[0]
    (tile,) = reg.footprints([patch])
    assert tile.polygon() == reg.patch_region(*patch)
    assert tile.polygon(inner=True) == reg.patch_region(*patch, inner=True)
    (tract,) = reg.footprints([TractRef(patch.skymap, patch.tract)])
    assert tract.polygon() == reg.tract_region(patch.skymap, patch.tract)
    # Plain tuples with a kind; unknown keys are left out, order kept.
    missing = ("LSSTCam", 1, 1)
    assert [s.key for s in reg.footprints([tuple(ccds[1]), missing, tuple(ccds[0])],
                                          kind="ccd")] == [ccds[1], ccds[0]]
    with pytest.raises(SkyregError, match="kind"):
        reg.footprints([tuple(ccds[0])])
    with pytest.raises(SkyregError, match="one kind"):
        reg.footprints([ccds[0], patch])


def test_coverage_map_equals_brute_force_over_the_pixel_index(two_surveys: Registry) -> None:
    reg = two_surveys
    level = 5
    coverage = reg.coverage_map(level)
    shift = 2 * (reg.pixel_scheme.level - level)
    shapes = reg.footprints(reg.find_ccds(cone=(0.2, -5.0, 6.0)) +
                            reg.find_ccds(cone=(40.0, 89.0, 6.0)))
    expected: dict[tuple[int, str], set[tuple[str, int]]] = {}
    for shape in shapes:
        for lo, hi in reg.pixel_scheme.envelope(shape.polygon()):
            for cell in {int(p) >> shift for p in range(lo, hi)}:
                expected.setdefault((cell, str(shape.band)), set()).add(shape.key[:2])
    got = {(int(cell), band): int(coverage.counts[i, j])
           for i, cell in enumerate(coverage.cells) for j, band in enumerate(coverage.bands)
           if coverage.counts[i, j]}
    assert got == {key: len(visits) for key, visits in expected.items()}
    assert set(coverage.bands) == {shape.band for shape in shapes}
    assert coverage.total.max() <= 10
    with pytest.raises(SkyregError, match="level"):
        reg.coverage_map(reg.pixel_scheme.level + 1)


def test_datasets_of_a_ccd_and_a_patch(registry: Registry, tmp_path: Path) -> None:
    from fits_builder import write_mef

    write_mef(tmp_path / "c4d.fits", visit=700, boresight=(150.1, 2.2))
    assert registry.ingest_fits(tmp_path, recursive=True, jobs=1).ok
    (ccd, *_) = registry.find_ccds(cone=(150.1, 2.2, 1.0))
    files = registry.datasets_of(ccd)
    assert [(f.dataset_type, f.visit, f.detector) for f in files] == [("raw", 700, ccd.detector)]
    assert files[0].path is not None and Path(files[0].path).name == "c4d.fits"
    assert len(registry.datasets_of(PatchRef("nosuch", 0, 0))) == 0


# -- projections --------------------------------------------------------------------------------


def _small_polygon(ra: float, dec: float, size: float, turn: float) -> tuple[list[float],
                                                                             list[float]]:
    """A square of side ``size`` degrees centred on (ra, dec), turned by ``turn``."""
    centre = UnitVector3d(LonLat.fromDegrees(ra, dec))
    ras, decs = [], []
    c = np.array([centre.x(), centre.y(), centre.z()])
    east = np.cross([0.0, 0.0, 1.0], c)
    east = east / np.linalg.norm(east) if np.linalg.norm(east) > 1e-9 else np.array([0, 1.0, 0])
    north = np.cross(c, east)
    half = math.radians(size / 2)
    for k in range(4):
        angle = math.radians(turn) + k * math.pi / 2
        offset = half * math.sqrt(2) * (math.cos(angle) * east + math.sin(angle) * north)
        point = c * math.cos(np.linalg.norm(offset)) + offset / np.linalg.norm(offset) * math.sin(
            np.linalg.norm(offset))
        lonlat = LonLat(UnitVector3d(*point))
        ras.append(lonlat.getLon().asDegrees())
        decs.append(lonlat.getLat().asDegrees())
    return ras, decs


@settings(max_examples=200, deadline=None)
@given(ra=st.floats(0, 360, exclude_max=True), dec=st.floats(-90, 90),
       size=st.floats(0.05, 20), turn=st.floats(0, 90), center=st.sampled_from([0.0, 180.0]))
def test_allsky_paths_never_cross_the_map(ra: float, dec: float, size: float, turn: float,
                                          center: float) -> None:
    ras, decs = _small_polygon(ra, dec, size, turn)
    polygon = ConvexPolygon([UnitVector3d(LonLat.fromDegrees(r, d))
                             for r, d in zip(ras, decs, strict=True)])
    pieces = allsky_pieces(ras, decs, center)
    assert pieces and any(p[:, 0].min() < 180 and p[:, 0].max() > -180 for p in pieces)
    polar = [pole for pole in (1.0, -1.0) if polygon.contains(UnitVector3d(0, 0, pole))]
    dense_ra, dense_dec = densify(ras, decs, 0.5)
    for piece in pieces:
        width = piece[:, 0].max() - piece[:, 0].min()
        if polar:
            # Closed through its pole, and spanning the whole map there.
            assert width >= 359.0 and (piece[:, 1] == 90.0 * polar[0]).sum() == 2
        else:
            # Within the polygon's own extent: at most a few times its size / cos(Dec).
            assert width <= 180.0
            assert width <= 2 * size / max(math.cos(math.radians(min(89.9, abs(dec) + size))),
                                           1e-3) + 1e-6
        # The piece is the same ring, shifted by whole turns (plus the pole closure).
        ring = piece[: len(dense_ra)]
        turns = (ring[:, 0] - map_longitude(dense_ra, center)) / 360.0
        assert np.allclose(turns, np.round(turns), atol=1e-9)
        assert np.allclose(ring[:, 1], dense_dec)


def test_allsky_collection_at_the_seam_draws_both_edges_only(tmp_path: Path) -> None:
    """A footprint on RA 0 with RA 180 in the middle: colour at both edges, none between."""
    ras, decs = _small_polygon(0.0, 0.0, 6.0, 0.0)
    fig = figures.Figure(figsize=(6, 3))
    ax = fig.add_subplot(projection="mollweide")
    collection = figures.allsky_collection([(ras, decs)], ["#ff0000"], 180.0)
    ax.add_collection(collection)
    ax.set_axis_off()
    assert len(collection.get_paths()) == 2
    for path in collection.get_paths():
        assert np.ptp(path.vertices[:, 0]) < math.radians(10)
    pixels = _png(fig)
    red = (np.abs(pixels - [255, 0, 0]).sum(axis=-1) < 60)
    columns = np.flatnonzero(red.any(axis=0))
    width = pixels.shape[1]
    assert columns.size and columns.min() < 0.2 * width and columns.max() > 0.8 * width
    assert not red[:, int(0.3 * width):int(0.7 * width)].any()


# -- figures from the registry -------------------------------------------------------------------


def _patches_by_gid(fig: figures.Figure, prefix: str) -> dict[str, np.ndarray]:
    ax = fig.axes[0]
    return {p.get_gid(): p.get_path().vertices for p in ax.patches
            if (p.get_gid() or "").startswith(prefix)}


def test_plot_ccds_across_ra_0(two_surveys: Registry) -> None:
    query = {"cone": (0.0, -5.0, 0.4)}
    fig = two_surveys.plot_ccds(**query)
    drawn = _patches_by_gid(fig, "ccd:")
    expected = two_surveys.find_ccds(**query)
    assert set(drawn) == {"ccd:" + "/".join(map(str, c)) for c in expected}
    x0, x1 = fig.axes[0].get_xlim()
    for vertices in drawn.values():  # each CCD stays small: no edge runs across the plot
        assert np.ptp(vertices[:, 0]) < 0.5 * abs(x1 - x0)
        assert np.all(np.isfinite(vertices))
    assert "region" in {p.get_gid() for p in fig.axes[0].patches}
    pixels = _png(fig)
    for band in {c.band for c in two_surveys.footprints(expected)}:
        assert _has_colour(pixels, band_color(band)), band


def test_plot_patch_near_the_pole(two_surveys: Registry) -> None:
    patch = two_surveys.find_patches(point=(40.0, 89.0))[0]
    fig = two_surveys.plot_patch(*patch)
    ccds = _patches_by_gid(fig, "ccd:")
    assert set(ccds) == {"ccd:" + "/".join(map(str, c))
                         for c in two_surveys.find_ccds(patch=tuple(patch))}
    name = "/".join(map(str, patch))
    tiles = _patches_by_gid(fig, "patch-")
    assert set(tiles) == {f"patch-inner:{name}", f"patch-outer:{name}"}
    x0, x1 = fig.axes[0].get_xlim()
    for vertices in [*ccds.values(), *tiles.values()]:
        assert np.ptp(vertices[:, 0]) < abs(x1 - x0)
    pixels = _png(fig)
    bands = {c.band for c in two_surveys.footprints(two_surveys.find_ccds(patch=tuple(patch)))}
    assert bands and all(_has_colour(pixels, band_color(b)) for b in bands)
    assert _has_colour(pixels, "#1a1a1a", tolerance=30)  # the inner box


def test_allsky_coverage_figure(two_surveys: Registry) -> None:
    fig = two_surveys.plot_coverage(level=5)
    coverage = two_surveys.coverage_map(5)
    panels = [ax for ax in fig.axes if ax.name == "mollweide"]
    assert len(panels) == 1 + len(coverage.bands)  # all bands, then each band
    collection = next(c for c in panels[0].collections if c.get_gid() == "coverage-all")
    paths = collection.get_paths()
    assert len(paths) >= int((coverage.total > 0).sum())
    _png(fig)  # lay the figure out
    ax = panels[0]
    width = ax.bbox.width
    for path in paths:
        shown = ax.transData.transform(path.vertices)
        lat = path.vertices[:, 1]
        # Drawn as they are on the sky: small, except cells closed round the pole.
        if np.ptp(shown[:, 0]) > 0.05 * width:
            assert np.abs(lat).max() == pytest.approx(math.pi / 2)
    pixels = _png(fig)
    assert (pixels.std(axis=-1) > 20).sum() > 100  # coloured cells, not only grey and white


def test_tract_depth_is_exact_at_the_samples(two_surveys: Registry) -> None:
    patch = two_surveys.find_patches(point=(0.1, -5.0))[0]
    tract = two_surveys.footprints([TractRef(patch.skymap, patch.tract)])[0]
    ccds = two_surveys.footprints(two_surveys.find_ccds(tract=tract.key))
    frame = figures.frame_around([(tract.ra, tract.dec)])
    bands = sorted({str(c.band) for c in ccds})
    grids, _ = figures.depth_grid(frame, ccds, [None, *bands], samples=40, within=tract)
    x0, x1, y0, y1 = frame.box
    rng = np.random.default_rng(1)
    ny, nx = grids[None].shape
    for j, i in zip(rng.integers(0, ny, 60), rng.integers(0, nx, 60), strict=True):
        x, y = np.linspace(x0, x1, nx)[i], np.linspace(y0, y1, ny)[j]
        ra, dec = frame.wcs.wcs_pix2world([x], [y], 0)
        point = UnitVector3d(LonLat.fromDegrees(float(ra[0]), float(dec[0])))
        if not tract.polygon().contains(point):
            assert np.isnan(grids[None][j, i])
            continue
        containing = [c for c in ccds if c.polygon().contains(point)]
        assert grids[None][j, i] == len(containing)
        for band in bands:
            assert grids[band][j, i] == sum(c.band == band for c in containing)
    fig = two_surveys.plot_coverage(tract=tract.key, samples=40)
    panels = {f"depth-{b}" for b in bands} | ({"depth-all"} if len(bands) > 1 else set())
    assert {im.get_gid() for ax in fig.axes for im in ax.images} == panels


# -- skyreg plot ----------------------------------------------------------------------------------


def test_cli_plot_writes_pictures(two_surveys: Registry, tmp_path: Path) -> None:
    url = two_surveys.engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    patch = two_surveys.find_patches(point=(0.1, -5.0))[0]
    commands = {
        "all.png": ["coverage", "--level", "5", "--band", "g"],
        "tract.pdf": ["coverage", "--tract", patch.skymap, str(patch.tract), "--samples", "40"],
        "patch.png": ["patch", *map(str, patch)],
        "ccds.svg": ["ccds", "--cone", "0.1", "-5", "20arcmin", "--band", "r"],
    }
    for name, args in commands.items():
        out = tmp_path / name
        result = runner.invoke(cli, ["--db", url, "plot", *args, "--out", str(out),
                                     "--dpi", "40"])
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 1000
    assert (tmp_path / "all.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "tract.pdf").read_bytes()[:4] == b"%PDF"
    bad = runner.invoke(cli, ["--db", url, "plot", "patch", "rings", "1", "99999", "--out",
                              str(tmp_path / "x.png")])
    assert bad.exit_code == 1 and "error: patch" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "x.png").exists()
    wrong = runner.invoke(cli, ["--db", url, "plot", "coverage", "--out",
                                str(tmp_path / "x.jpg")])
    assert wrong.exit_code == 1 and ".png" in wrong.output
    assert not list(tmp_path.glob(".*partial*"))


def test_cli_names_the_missing_extra(two_surveys: Registry, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    url = two_surveys.engine.url.render_as_string(hide_password=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    result = CliRunner().invoke(cli, ["--db", url, "plot", "coverage", "--out",
                                      str(tmp_path / "c.png")])
    assert result.exit_code == 1
    assert "pip install 'skyreg[plot]'" in result.output
    with pytest.raises(SkyregError, match=r"skyreg\[plot\]"):
        two_surveys.plot_coverage()
