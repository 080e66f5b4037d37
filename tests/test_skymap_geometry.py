"""Sky map definitions and geometry: agreement with lsst.skymap, validity and tiling."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsst.sphgeom import ConvexPolygon, HealpixPixelization, LonLat, UnitVector3d

from skyreg.geometry.polygons import encode_flat_polygons, polygon_from_vertices, unit_vectors
from skyreg.skymaps import (
    DiscreteDefinition,
    HealpixDefinition,
    RingsDefinition,
    SkyMapDefinitionError,
    SkyMapGeometry,
    build_skymap,
    definition_from_parameters,
    definition_hash,
    load_definition_file,
    patch_wcs,
    rings_tract_of,
    tract_wcs,
)
from skyreg.skymaps.rings import ring_boundaries_rad, ring_counts
from skyreg.skymaps.tan_wcs import pixel_to_sky, sky_to_pixel

# HSC SSP's sky map, as configured in lsst/skymap tests/test_ringsSkyMap.py (HscRingsTestCase:
# numRings 120, TAN, tractOverlap 1/60 deg, pixelScale 0.168) with the legacy tract builder's
# defaults (patchInnerDimensions 4000 x 4000, patchBorder 100).
HSC = RingsDefinition(
    num_rings=120,
    pixel_scale_arcsec=0.168,
    patch_inner_pixels=4000,
    patch_border_pixels=100,
    tract_overlap_deg=1.0 / 60,
)


@pytest.fixture(scope="module")
def hsc() -> SkyMapGeometry:
    return build_skymap(HSC)


def _offsets(n: int) -> np.ndarray:
    return np.arange(0, 4 * n + 1, 4, dtype=np.int64)


def _invalid(ra: np.ndarray, dec: np.ndarray, offsets: np.ndarray) -> list[str]:
    _, errors = encode_flat_polygons(ra, dec, offsets)
    return [e for e in errors if e is not None]


def _polygon(ra: np.ndarray, dec: np.ndarray) -> ConvexPolygon:
    return polygon_from_vertices(list(map(float, ra)), list(map(float, dec)))


def _vec(ra: float, dec: float) -> UnitVector3d:
    return UnitVector3d(LonLat.fromDegrees(ra, dec))


# --- Reference values -------------------------------------------------------------------------


def test_hsc_cosmos_tract_9813(hsc: SkyMapGeometry) -> None:
    # Centre quoted in lsst/skymap tests/test_ringsSkyMap.py (Version0HscRingsTestCase,
    # "The Cosmos field"); tracts away from RA 0 are numbered identically in versions 0 and 1.
    t = hsc.tracts
    assert t.ra_center[9813] == pytest.approx(150.2479338842975, abs=1e-12)
    assert t.dec_center[9813] == pytest.approx(2.2314049586776834, abs=1e-12)
    # COSMOS (RA 150.1, Dec +2.2) lies in tract 9813, the tract whose centre is nearest.
    assert rings_tract_of(HSC, 150.1, 2.2).tolist() == [9813]
    dist = np.hypot((t.ra_center - 150.1) * math.cos(math.radians(2.2)), t.dec_center - 2.2)
    assert int(np.argmin(dist)) == 9813


def test_hsc_wraparound_tract_9712(hsc: SkyMapGeometry) -> None:
    # lsst/skymap tests/test_ringsSkyMap.py testWraparound: points 10" either side of tract
    # 9712's centre (at RA 0) are found in 9712.
    t = hsc.tracts
    assert t.ra_center[9712] == 0.0
    dec = t.dec_center[9712]
    assert rings_tract_of(HSC, [10 / 3600, 360 - 10 / 3600], [dec, dec]).tolist() == [9712, 9712]


def test_hsc_tract_and_patch_counts(hsc: SkyMapGeometry) -> None:
    # HSC tracts are 9 x 9 patches of 4000 x 4000 pixels (HSC-SSP data release papers, Aihara
    # et al. 2018, section on tracts and patches); the tract count follows lsst.skymap's ring
    # rule: sum over rings of int(2 pi cos(d) / ring_size) + 1, plus the two caps.
    t = hsc.tracts
    assert len(t) == int(ring_counts(120).sum()) + 2 == 18938
    assert set(t.num_patches_x.tolist()) == {9} and set(t.num_patches_y.tolist()) == {9}
    assert set(t.width.tolist()) == {36000} and set(t.height.tolist()) == {36000}
    assert len(hsc.patches) == 81 * 18938
    # The 9 x 9 grid is centred on CRVAL: FITS CRPIX 18000 (0-based pixel 17999).
    assert set(t.crpix_x.tolist()) == {18000.0} and set(t.crpix_y.tolist()) == {18000.0}
    assert t.cd[9813].tolist() == [[-0.168 / 3600, 0.0], [0.0, 0.168 / 3600]]


def test_ring_structure_matches_lsst_rule() -> None:
    size = math.pi / 121
    assert (
        ring_counts(120)[0]
        == int(2 * math.pi * math.cos(size * 0.5 - math.pi / 2 + size) / size) + 1
    )
    defn = RingsDefinition(5, 60.0, 100, 10, 0.5, ra_start_deg=234.0)
    geometry = build_skymap(defn)
    t = geometry.tracts
    counts = ring_counts(5)
    assert t.ring[0] == -1 and t.ring[-1] == 5
    assert t.ring[1 : 1 + counts[0]].tolist() == [0] * counts[0]
    # Tract 1 is the first tract of the southernmost ring, at ra_start.
    assert t.ra_center[1] == pytest.approx(234.0)
    # Each tract's own centre is found in that tract (lsst.skymap's DM-14809 check).
    assert (rings_tract_of(defn, t.ra_center, t.dec_center) == t.tract).all()


# --- WCS --------------------------------------------------------------------------------------


@pytest.mark.parametrize("tract", [0, 1, 9712, 9813, 18937])
def test_tan_matches_astropy(hsc: SkyMapGeometry, tract: int) -> None:
    t = hsc.tracts
    wcs = tract_wcs(hsc, tract)
    rng = np.random.default_rng(tract)
    x = rng.uniform(-0.5, 35999.5, 200)
    y = rng.uniform(-0.5, 35999.5, 200)
    ra, dec = pixel_to_sky(
        x, y, t.crval_ra[tract], t.crval_dec[tract], t.crpix_x[tract], t.crpix_y[tract], t.cd[tract]
    )
    ra_ref, dec_ref = wcs.all_pix2world(x, y, 0)
    dra = (ra - ra_ref + 180.0) % 360.0 - 180.0
    assert np.abs(dra * np.cos(np.radians(dec))).max() < 1e-9
    assert np.abs(dec - dec_ref).max() < 1e-9
    x2, y2 = sky_to_pixel(
        ra,
        dec,
        t.crval_ra[tract],
        t.crval_dec[tract],
        t.crpix_x[tract],
        t.crpix_y[tract],
        t.cd[tract],
    )
    assert np.abs(x2 - x).max() < 1e-5 and np.abs(y2 - y).max() < 1e-5
    # The tract's outer polygon is the image of its pixel box edges.
    corners_ra, corners_dec = wcs.all_pix2world([-0.5, 35999.5], [-0.5, -0.5], 0)
    assert t.outer_ra[tract, :2] == pytest.approx(corners_ra % 360.0, abs=1e-9)
    assert t.outer_dec[tract, :2] == pytest.approx(corners_dec, abs=1e-9)


def test_patch_wcs_is_shifted_tract_wcs(hsc: SkyMapGeometry) -> None:
    row = hsc.patch_row(9813, 40)
    p = hsc.patches
    assert (p.cell_x[row], p.cell_y[row]) == (4, 4)
    tract = tract_wcs(hsc, 9813)
    patch = patch_wcs(hsc, 9813, 40)
    x0, y0 = p.outer_x0[row], p.outer_y0[row]
    assert (x0, y0) == (15900, 15900)
    a = tract.all_pix2world([[x0 + 10.0, y0 + 20.0]], 0)
    b = patch.all_pix2world([[10.0, 20.0]], 0)
    assert np.abs(a - b).max() < 1e-10
    # Patch inner polygon corners are the pixel-box edges through the tract WCS.
    ra, dec = tract.all_pix2world([p.inner_x0[row] - 0.5], [p.inner_y0[row] - 0.5], 0)
    assert (p.inner_ra[row, 0], p.inner_dec[row, 0]) == pytest.approx((ra[0], dec[0]), abs=1e-9)


# --- Validity, tiling and coverage --------------------------------------------------------------


def test_all_hsc_polygons_are_valid(hsc: SkyMapGeometry) -> None:
    t, p = hsc.tracts, hsc.patches
    assert _invalid(t.inner_ra, t.inner_dec, t.inner_offsets) == []
    assert _invalid(t.outer_ra.ravel(), t.outer_dec.ravel(), _offsets(len(t))) == []
    assert _invalid(p.inner_ra.ravel(), p.inner_dec.ravel(), _offsets(len(p))) == []
    assert _invalid(p.outer_ra.ravel(), p.outer_dec.ravel(), _offsets(len(p))) == []


def test_patches_tile_tracts(hsc: SkyMapGeometry) -> None:
    t, p = hsc.tracts, hsc.patches
    rows = np.repeat(np.arange(len(t)), np.diff(t.patch_offsets))
    assert (p.tract == t.tract[rows]).all()
    assert (p.patch == p.cell_y * t.num_patches_x[rows] + p.cell_x).all()
    area = (p.inner_x1 - p.inner_x0) * (p.inner_y1 - p.inner_y0)
    assert (np.bincount(rows, weights=area) == t.width * t.height).all()
    assert (p.inner_x0 >= 0).all() and (p.inner_x1 <= t.width[rows]).all()
    assert (p.inner_y0 >= 0).all() and (p.inner_y1 <= t.height[rows]).all()
    # Inner boxes sit on the patch grid, so equal area and containment mean they partition.
    assert (p.inner_x0 == p.cell_x * 4000).all() and (p.inner_y0 == p.cell_y * 4000).all()
    assert (p.outer_x0 <= p.inner_x0).all() and (p.outer_x1 >= p.inner_x1).all()
    assert (p.outer_x0 == np.maximum(p.inner_x0 - 100, 0)).all()
    assert (p.outer_y1 == np.minimum(p.inner_y1 + 100, t.height[rows])).all()


def _grown_outer(geometry: SkyMapGeometry, tract: int, grow: float = 1e-3) -> ConvexPolygon:
    """Tract outer polygon grown by ``grow`` pixels: patches at the tract edge share its edges
    exactly, and an exact shared edge is not reliably "contained" in floating point."""
    t = geometry.tracts
    lo, hi_x, hi_y = -0.5 - grow, t.width[tract] - 0.5 + grow, t.height[tract] - 0.5 + grow
    ra, dec = pixel_to_sky(
        [lo, hi_x, hi_x, lo],
        [lo, lo, hi_y, hi_y],
        t.crval_ra[tract],
        t.crval_dec[tract],
        t.crpix_x[tract],
        t.crpix_y[tract],
        t.cd[tract],
    )
    return _polygon(ra, dec)


@pytest.mark.parametrize("tract", [0, 1, 5, 9712, 9813, 18900, 18937])
def test_patch_polygons_inside_tract(hsc: SkyMapGeometry, tract: int) -> None:
    t, p = hsc.tracts, hsc.patches
    outer = _grown_outer(hsc, tract)
    assert _polygon(t.outer_ra[tract], t.outer_dec[tract]).contains(
        _polygon(*t.inner_polygon(tract))
    )
    for row in range(t.patch_offsets[tract], t.patch_offsets[tract + 1]):
        inner = _polygon(p.inner_ra[row], p.inner_dec[row])
        assert outer.contains(inner)


def _covering(geometry: SkyMapGeometry, ra: float, dec: float) -> list[int]:
    """Tracts whose inner polygon contains the point, checking those with nearby centres."""
    t = geometry.tracts
    cos_sep = np.sin(np.radians(dec)) * np.sin(np.radians(t.dec_center)) + np.cos(
        np.radians(dec)
    ) * np.cos(np.radians(t.dec_center)) * np.cos(np.radians(t.ra_center - ra))
    near = np.flatnonzero(cos_sep > math.cos(math.radians(5.0)))
    point = _vec(ra, dec)
    return [int(i) for i in near if _polygon(*t.inner_polygon(int(i))).contains(point)]


def test_inner_polygons_cover_the_sphere(hsc: SkyMapGeometry) -> None:
    rng = np.random.default_rng(7)
    n = 300
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    # Add points just on each side of ring boundaries near tract corners, where gaps would be.
    edges = np.degrees(ring_boundaries_rad(120))
    pick = rng.integers(0, edges.size, 150)
    ra = np.concatenate([ra, rng.uniform(0.0, 360.0, 300)])
    dec = np.concatenate([dec, edges[pick] + 1e-6, edges[pick] - 1e-6])
    owner = rings_tract_of(HSC, ra, dec)
    for r, d, o in zip(ra.tolist(), dec.tolist(), owner.tolist(), strict=True):
        found = _covering(hsc, r, d)
        assert found, f"({r}, {d}) is in no tract inner polygon"
        # The owning tract (lsst.skymap's findTract) is among them, or the point is in a
        # sliver where a neighbouring ring's polygon overlaps the owner's RA/Dec box.
        rings = hsc.tracts.ring
        assert o in found or (np.abs(rings[found] - rings[o]) <= 1).all()


def test_point_in_inner_polygon_maps_to_its_ring(hsc: SkyMapGeometry) -> None:
    t = hsc.tracts
    rng = np.random.default_rng(3)
    for tract in rng.integers(0, len(t), 40).tolist():
        ra, dec = t.inner_polygon(tract)
        weights = rng.dirichlet(np.ones(ra.size), 20)
        xyz = weights @ unit_vectors(ra, dec)
        pra = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360.0
        pdec = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
        rings = t.ring[rings_tract_of(HSC, pra, pdec)]
        # Points strictly inside lie in the tract's ring, or a neighbouring ring's sliver.
        assert (np.abs(rings - t.ring[tract]) <= 1).all()
        assert (rings == t.ring[tract]).mean() > 0.9


# --- HEALPix and discrete -----------------------------------------------------------------------


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_healpix_tracts(order: int) -> None:
    geometry = build_skymap(HealpixDefinition(order, 20.0, 500, 20, 0.1))
    t = geometry.tracts
    assert len(t) == 12 * 4**order
    pix = HealpixPixelization(order)
    found = [pix.index(_vec(r, d)) for r, d in zip(t.ra_center, t.dec_center, strict=True)]
    assert found == t.tract.tolist()
    assert _invalid(t.inner_ra, t.inner_dec, t.inner_offsets) == []
    assert _invalid(t.outer_ra.ravel(), t.outer_dec.ravel(), _offsets(len(t))) == []
    p = geometry.patches
    assert _invalid(p.outer_ra.ravel(), p.outer_dec.ravel(), _offsets(len(p))) == []
    for tract in range(0, len(t), max(1, len(t) // 12)):
        outer = _polygon(t.outer_ra[tract], t.outer_dec[tract])
        assert outer.contains(_polygon(*t.inner_polygon(tract)))


def test_discrete_tracts() -> None:
    defn = DiscreteDefinition((10.685, 150.1, 0.0), (41.269, 2.2, 90.0), 0.8, 0.2, 3000, 100, 0.05)
    geometry = build_skymap(defn)
    t = geometry.tracts
    assert t.tract.tolist() == [0, 1, 2]
    assert t.ra_center.tolist() == [10.685, 150.1, 0.0]
    assert _invalid(t.inner_ra, t.inner_dec, t.inner_offsets) == []
    for tract in range(3):
        outer = _polygon(t.outer_ra[tract], t.outer_dec[tract])
        assert outer.contains(_polygon(*t.inner_polygon(tract)))
        assert outer.contains(_vec(t.ra_center[tract], t.dec_center[tract]))
        # Half-size radius + overlap = 0.85 deg at 0.2"/px: 2 * 15300 px, so 11 patches of 3000.
        assert (t.num_patches_x[tract], t.width[tract]) == (11, 33000)
    wcs = tract_wcs(geometry, 2)
    _, dec = wcs.all_pix2world([[t.crpix_x[2] - 1, t.crpix_y[2] - 1]], 0)[0]
    assert dec == pytest.approx(90.0)


# --- Definitions --------------------------------------------------------------------------------


def test_parameters_round_trip_and_hash() -> None:
    params = HSC.to_parameters()
    assert json.loads(json.dumps(params)) == params
    again = definition_from_parameters("rings", params)
    assert again == HSC and definition_hash(again) == definition_hash(HSC)
    changed = definition_from_parameters("rings", {**params, "tract_overlap_deg": 1.0 / 60 + 1e-15})
    assert definition_hash(changed) != definition_hash(HSC)
    other_kind = HealpixDefinition(3, 0.168, 4000, 100, 1.0 / 60)
    assert definition_hash(other_kind) != definition_hash(HSC)
    disc = DiscreteDefinition((1.0,), (2.0,), 0.5, 0.2, 100, 10, 0.0)
    assert definition_from_parameters("discrete", disc.to_parameters()) == disc


@pytest.mark.parametrize(
    ("kind", "change", "key"),
    [
        ("rings", {"num_rings": 0}, "num_rings"),
        ("rings", {"pixel_scale_arcsec": 0.0}, "pixel_scale_arcsec"),
        ("rings", {"patch_inner_pixels": 1.5}, "patch_inner_pixels"),
        ("rings", {"patch_border_pixels": -1}, "patch_border_pixels"),
        ("rings", {"ra_start_deg": 360.0}, "ra_start_deg"),
        ("rings", {"tract_overlap_deg": "1"}, "tract_overlap_deg"),
        ("rings", {"nmu_rings": 3}, "nmu_rings"),
        ("healpix", {"order": 30}, "order"),
    ],
)
def test_invalid_parameters_name_the_key(kind: str, change: dict[str, object], key: str) -> None:
    base = HSC.to_parameters()
    if kind == "healpix":
        base = HealpixDefinition(3, 1.0, 100, 0, 0.0).to_parameters()
    with pytest.raises(SkyMapDefinitionError) as info:
        definition_from_parameters(kind, {**base, **change})
    assert info.value.key == key and key in str(info.value)


def test_missing_parameter_and_unknown_kind() -> None:
    params = HSC.to_parameters()
    del params["num_rings"]
    with pytest.raises(ValueError, match="num_rings"):
        definition_from_parameters("rings", params)
    with pytest.raises(ValueError, match="kind"):
        definition_from_parameters("dodeca", {})
    with pytest.raises(ValueError, match="dec_deg"):
        DiscreteDefinition((1.0, 2.0), (3.0,), 0.5, 0.2, 100, 10, 0.0)


def test_load_definition_file(tmp_path: Path) -> None:
    yaml_file = tmp_path / "hsc.yaml"
    yaml_file.write_text(
        "name: hsc_rings_v1\nkind: rings\nnum_rings: 120\npixel_scale_arcsec: 0.168\n"
        "patch_inner_pixels: 4000\npatch_border_pixels: 100\n"
        "tract_overlap_deg: 0.016666666666666666\n"
    )
    assert load_definition_file(yaml_file) == ("hsc_rings_v1", HSC)
    json_file = tmp_path / "hsc.json"
    json_file.write_text(json.dumps({"kind": "rings", **HSC.to_parameters()}))
    assert load_definition_file(json_file) == (None, HSC)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_file.read_text().replace("num_rings: 120", "num_rings: -3"))
    with pytest.raises(SkyMapDefinitionError) as info:
        load_definition_file(bad)
    assert str(bad) in str(info.value) and info.value.key == "num_rings"
    no_kind = tmp_path / "no_kind.yaml"
    no_kind.write_text("num_rings: 3\n")
    with pytest.raises(SkyMapDefinitionError, match="kind"):
        load_definition_file(no_kind)
    with pytest.raises(SkyMapDefinitionError, match="cannot read"):
        load_definition_file(tmp_path / "missing.yaml")


# --- Property tests -----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    num_rings=st.integers(3, 30),
    overlap=st.floats(0.0, 0.5),
    ra_start=st.floats(0.0, 359.9),
    inner=st.sampled_from([500, 1000, 1500]),
    border=st.integers(0, 100),
)
def test_small_rings_maps_are_valid(
    num_rings: int, overlap: float, ra_start: float, inner: int, border: int
) -> None:
    defn = RingsDefinition(num_rings, 60.0, inner, border, overlap, ra_start_deg=ra_start)
    geometry = build_skymap(defn)
    t, p = geometry.tracts, geometry.patches
    assert _invalid(t.inner_ra, t.inner_dec, t.inner_offsets) == []
    assert _invalid(t.outer_ra.ravel(), t.outer_dec.ravel(), _offsets(len(t))) == []
    assert _invalid(p.inner_ra.ravel(), p.inner_dec.ravel(), _offsets(len(p))) == []
    assert _invalid(p.outer_ra.ravel(), p.outer_dec.ravel(), _offsets(len(p))) == []
    assert (rings_tract_of(defn, t.ra_center, t.dec_center) == t.tract).all()
    rows = np.repeat(np.arange(len(t)), np.diff(t.patch_offsets))
    area = (p.inner_x1 - p.inner_x0) * (p.inner_y1 - p.inner_y0)
    assert (np.bincount(rows, weights=area, minlength=len(t)) == t.width * t.height).all()
    for tract in (0, len(t) // 2, len(t) - 1):
        outer = _polygon(t.outer_ra[tract], t.outer_dec[tract])
        assert outer.contains(_vec(t.ra_center[tract], t.dec_center[tract]))
        assert _polygon(*t.inner_polygon(tract)).contains(
            _vec(t.ra_center[tract], t.dec_center[tract])
        )
