"""Sky maps in the database: registration (idempotent, conflicts), config files, coadd ingest."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from click.testing import CliRunner
from lsst.sphgeom import LonLat, UnitVector3d
from sqlalchemy import create_engine, select

from skyreg import Registry
from skyreg.cli.main import cli
from skyreg.errors import ConflictError, SkyregError
from skyreg.geometry.polygons import polygon_from_vertices
from skyreg.schema import patch, tract
from skyreg.skymaps import (
    DiscreteDefinition,
    HealpixDefinition,
    RingsDefinition,
    build_skymap,
    patch_wcs,
)

#: Small patches (120 x 120 pixels with border) so coadd test files stay tiny.
SMALL = DiscreteDefinition(ra_deg=(0.2, 150.0), dec_deg=(0.0, 2.0), radius_deg=0.5,
                           pixel_scale_arcsec=10.0, patch_inner_pixels=100,
                           patch_border_pixels=10, tract_overlap_deg=0.01)
RINGS = RingsDefinition(num_rings=8, pixel_scale_arcsec=30.0, patch_inner_pixels=400,
                        patch_border_pixels=20, tract_overlap_deg=0.1)


@pytest.fixture
def coarse(database_factory: Callable[..., str]) -> Iterator[Registry]:
    """A registry indexed at HTM 6: full-sky sky maps then need 64x fewer pixel rows."""
    with Registry.connect(database_factory(pixelization="htm6"), pixelization="htm6") as reg:
        yield reg


def test_register_is_idempotent_and_refuses_another_definition(coarse: Registry) -> None:
    registry = coarse
    report = registry.register_skymap("rings8", RINGS)
    geometry = build_skymap(RINGS)
    assert report.registered
    assert report.counts["tract"].inserted == len(geometry.tracts)
    assert report.counts["patch"].inserted == len(geometry.patches)
    again = registry.register_skymap("rings8", RINGS)
    assert not again.registered and again.counts == {}
    other = RingsDefinition(num_rings=9, pixel_scale_arcsec=30.0, patch_inner_pixels=400,
                            patch_border_pixels=20, tract_overlap_deg=0.1)
    with pytest.raises(ConflictError, match="different definition"):
        registry.register_skymap("rings8", other)
    assert registry.skymaps() == {"rings8": report.hash_sha1_hex}
    summary = registry.skymap_summaries()
    assert summary == [("rings8", "rings", len(geometry.tracts), len(geometry.patches),
                        report.hash_sha1_hex)]


def test_registered_geometry_answers_exactly(coarse: Registry) -> None:
    registry = coarse
    registry.register_skymap("rings8", RINGS)
    geometry = build_skymap(RINGS)
    patches = geometry.patches
    polygons = [polygon_from_vertices(ra, dec)
                for ra, dec in zip(patches.outer_ra, patches.outer_dec, strict=True)]
    rng = np.random.default_rng(11)
    for _ in range(25):
        ra, dec = float(rng.uniform(0, 360)), float(np.degrees(np.arcsin(rng.uniform(-1, 1))))
        found = {(p.tract, p.patch) for p in registry.find_patches(point=(ra, dec))}
        point = UnitVector3d(LonLat.fromDegrees(ra, dec))
        truth = {(int(patches.tract[row]), int(patches.patch[row]))
                 for row, polygon in enumerate(polygons) if polygon.contains(point)}
        assert found == truth
        assert registry.find_tracts(point=(ra, dec), inner=True)


def test_tract_wcs_and_patch_boxes_are_stored(registry: Registry, database_url: str) -> None:
    registry.register_skymap("small", SMALL)
    geometry = build_skymap(SMALL)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        header = connection.execute(select(tract.c.wcs).where(tract.c.tract == 1)).scalar_one()
        box = connection.execute(select(patch.c.outer_bbox).where(
            patch.c.tract == 1, patch.c.patch == 5)).scalar_one()
        stored_patch = connection.execute(select(
            patch.c.cell_x, patch.c.cell_y, patch.c.inner_bbox, patch.c.outer_ra,
            patch.c.inner_dec).where(patch.c.tract == 1, patch.c.patch == 5)).one()
    engine.dispose()
    prow = geometry.patch_row(1, 5)
    p = geometry.patches
    # Column-wise binary COPY wrote exactly the generated values.
    assert (stored_patch.cell_x, stored_patch.cell_y) == (p.cell_x[prow], p.cell_y[prow])
    assert stored_patch.inner_bbox == [p.inner_x0[prow], p.inner_y0[prow],
                                       p.inner_x1[prow] - 1, p.inner_y1[prow] - 1]
    assert stored_patch.outer_ra == p.outer_ra[prow].tolist()
    assert stored_patch.inner_dec == p.inner_dec[prow].tolist()
    stored = WCS(header)
    row = geometry.tract_row(1)
    assert header["NAXIS1"] == geometry.tracts.width[row]
    expected = np.asarray(stored.wcs_pix2world([[box[0], box[1]]], 0))
    direct = np.asarray(patch_wcs(geometry, 1, 5).wcs_pix2world([[0.0, 0.0]], 0))
    assert np.allclose(expected, direct, atol=1e-10)


def test_config_files_and_other_kinds(coarse: Registry, tmp_path: Path) -> None:
    registry = coarse
    config = tmp_path / "hpx.yaml"
    config.write_text("name: hpx1\nkind: healpix\norder: 1\npixel_scale_arcsec: 60\n"
                      "patch_inner_pixels: 1000\npatch_border_pixels: 50\n"
                      "tract_overlap_deg: 0.1\n")
    report = registry.register_skymap(None, config)
    assert report.name == "hpx1" and report.counts["tract"].inserted == 48
    assert registry.register_skymap("hpx1", HealpixDefinition(1, 60.0, 1000, 50, 0.1)) \
        .registered is False  # same definition, given in Python
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: rings\nnum_rings: -3\n")
    with pytest.raises(SkyregError, match=r"bad\.yaml"):
        registry.register_skymap("x", bad)
    with pytest.raises(SkyregError, match="needs a name"):
        registry.register_skymap(None, _unnamed(tmp_path))


def _unnamed(tmp_path: Path) -> Path:
    path = tmp_path / "unnamed.json"
    path.write_text(json.dumps({"kind": "discrete", "ra_deg": [10.0], "dec_deg": [0.0],
                                "radius_deg": 0.2, "pixel_scale_arcsec": 10.0,
                                "patch_inner_pixels": 100, "patch_border_pixels": 10,
                                "tract_overlap_deg": 0.0}))
    return path


def test_cli_register_rings_and_list(database_factory: Callable[..., str]) -> None:
    database_url = database_factory(pixelization="htm6")
    runner = CliRunner()
    args = ["--db", database_url, "skymap", "register", "rings", "r8", "--num-rings", "8",
            "--pixel-scale", "30", "--patch-inner", "400", "--patch-border", "20",
            "--tract-overlap", "6arcmin", "--no-progress"]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "registered sky map 'r8'" in first.output
    second = runner.invoke(cli, args)
    assert second.exit_code == 0 and "nothing to do" in second.output
    changed = runner.invoke(cli, [*args[:-2], "7arcmin", "--no-progress"])
    assert changed.exit_code == 1 and "different definition" in changed.stderr
    listed = runner.invoke(cli, ["--db", database_url, "skymap", "list", "--format", "json"])
    rows = json.loads(listed.stdout)
    assert rows[0]["name"] == "r8" and rows[0]["tracts"] == len(build_skymap(RINGS).tracts)
    bad = runner.invoke(cli, ["--db", database_url, "skymap", "register", "rings", "r9",
                              "--num-rings", "0", "--no-progress"])
    assert bad.exit_code == 1 and "num_rings" in bad.stderr and "Traceback" not in bad.output


# -- coadds -----------------------------------------------------------------------------------


def write_coadd(path: Path, tract_id: int, patch_id: int, band: str | None = "r",
                shift_pixels: float = 0.0, trim: int = 0) -> Path:
    """A coadd image of a patch of SMALL, with the WCS the sky map gives it."""
    geometry = build_skymap(SMALL)
    row = geometry.patch_row(tract_id, patch_id)
    p = geometry.patches
    width = int(p.outer_x1[row] - p.outer_x0[row]) - trim
    height = int(p.outer_y1[row] - p.outer_y0[row])
    header = patch_wcs(geometry, tract_id, patch_id).to_header()
    header["CRPIX1"] += shift_pixels
    if band is not None:
        header["FILTER"] = band
    hdus = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(
        np.zeros((height, width), dtype=np.float32), header=header, name="IMAGE")])
    hdus.writeto(path)
    return path


def test_coadds_attach_to_their_patch(registry: Registry, tmp_path: Path) -> None:
    registry.register_skymap("small", SMALL)
    write_coadd(tmp_path / "t1p5_r.fits", 1, 5)
    write_coadd(tmp_path / "t0p0_g.fits", 0, 0, band="g")
    report = registry.ingest_fits(tmp_path, recursive=True, dataset_type="deepCoadd",
                                  skymap="small", jobs=1)
    assert report.ok, report.problem_lines()
    assert report.counts["patch_dataset"].inserted == 2
    ra, dec = build_skymap(SMALL).tracts.ra_center[1], build_skymap(SMALL).tracts.dec_center[1]
    found = registry.find_datasets("deepCoadd", cone=(float(ra), float(dec), 0.3), band="r")
    assert [(f.tract, f.patch, f.band) for f in found] == [(1, 5, "r")]
    assert found[0].path is not None and found[0].path.endswith("t1p5_r.fits")
    assert registry.find_datasets("deepCoadd", skymap="small", band="g")[0].patch == 0
    for spatial in ({"cone": (float(ra), float(dec), 0.3)}, {}):
        shaped = registry.find_datasets("deepCoadd", columns=["footprint"], **spatial)
        assert shaped and registry.find_datasets("deepCoadd", **spatial) == list(shaped)
        for i, ref in enumerate(shaped):  # the patch's outer polygon, as stored
            with registry.engine.connect() as connection:
                outer = connection.execute(select(patch.c.outer_ra, patch.c.outer_dec).where(
                    patch.c.skymap == ref.skymap, patch.c.tract == ref.tract,
                    patch.c.patch == ref.patch)).one()
            assert shaped["footprint_ra"][i].tolist() == list(outer.outer_ra)
            assert shaped["footprint_dec"][i].tolist() == list(outer.outer_dec)
    again = registry.ingest_fits(tmp_path, recursive=True, dataset_type="deepCoadd",
                                 skymap="small", jobs=1)
    assert again.files_skipped == 2


def test_coadds_with_a_wrong_wcs_or_no_band_are_refused(registry: Registry,
                                                         tmp_path: Path) -> None:
    registry.register_skymap("small", SMALL)
    write_coadd(tmp_path / "shifted.fits", 1, 5, shift_pixels=1.0)
    write_coadd(tmp_path / "trimmed.fits", 1, 6, trim=3)
    write_coadd(tmp_path / "noband.fits", 1, 7, band=None)
    report = registry.ingest_fits(tmp_path, recursive=True, dataset_type="deepCoadd",
                                  skymap="small", jobs=1)
    reasons = {Path(p.path).name: p.reason for p in report.problems}
    assert "pixels off" in reasons["shifted.fits"]
    assert "pixels, the patch" in reasons["trimmed.fits"]
    assert "band" in reasons["noband.fits"]
    assert report.files_refused == 3 and registry.find_datasets("deepCoadd") == []
    with_band = registry.ingest_fits(tmp_path / "noband.fits", dataset_type="deepCoadd",
                                     skymap="small", band="i", jobs=1)
    assert with_band.ok and registry.find_datasets("deepCoadd")[0].band == "i"


def test_duplicate_coadds_refuse_the_later_file_only(registry: Registry,
                                                     tmp_path: Path) -> None:
    """Two files of one patch image in a run, or one already registered from another file:
    problems of those files; the other coadds are registered."""
    registry.register_skymap("small", SMALL)
    original = write_coadd(tmp_path / "a_t1p5_r.fits", 1, 5)
    (tmp_path / "b_copy.fits").write_bytes(original.read_bytes())
    write_coadd(tmp_path / "c_t1p6_r.fits", 1, 6)
    report = registry.ingest_fits(tmp_path, recursive=True, dataset_type="deepCoadd",
                                  skymap="small", jobs=1)
    assert [(Path(p.path).name, p.hdu, p.reason) for p in report.problems] == [(
        "b_copy.fits", 1, f"deepCoadd small tract 1 patch 5 band r is also in "
                          f"{original.resolve()} (HDU 1), read first in this run")]
    assert report.counts["patch_dataset"].inserted == 2 and report.files_refused == 1
    later = tmp_path / "later"
    later.mkdir()
    (later / "again.fits").write_bytes(original.read_bytes())
    write_coadd(later / "t1p7_r.fits", 1, 7)
    second = registry.ingest_fits(later, recursive=True, dataset_type="deepCoadd",
                                  skymap="small", jobs=1)
    assert [Path(p.path).name for p in second.problems] == ["again.fits"]
    assert f"already registered from {original.resolve().as_uri()}" in second.problems[0].reason
    assert second.counts["patch_dataset"].inserted == 1
    assert len(registry.find_datasets("deepCoadd")) == 3


def test_coadd_needs_a_registered_skymap_and_a_patch_type(registry: Registry,
                                                          tmp_path: Path) -> None:
    path = write_coadd(tmp_path / "c.fits", 1, 5)
    report = registry.ingest_fits(path, dataset_type="deepCoadd", skymap="nonesuch", jobs=1)
    assert "not registered" in report.problems[0].reason
    with pytest.raises(SkyregError, match="dimensions 'ccd'"):
        registry.ingest_fits(path, dataset_type="calexp", skymap="small", jobs=1)
