"""Tests of the synthetic survey generator against survey manifest format version 1.

The generator feeds both the demo and the benchmarks, so these tests check the format contract
(files, columns, types, checksums, referential integrity) and the geometry that spatial queries
depend on (valid convex polygons, visit regions containing their CCDs, patches tiling tracts),
including the awkward places on the sphere: RA 0/360 and a pole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import lsst.sphgeom as sphgeom
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from skyreg.errors import InputError
from skyreg.synthetic import SurveySpec, SurveySummary, generate_survey
from skyreg.synthetic.__main__ import main as cli_main
from skyreg.synthetic.skymap import RingsSkyMap
from skyreg.synthetic.visits import make_schedule

POLY = pa.list_(pa.float64())
# Column names and types as written in the format specification (kept independent of the
# generator's own schema constants on purpose).
EXPECTED_COLUMNS: dict[str, dict[str, pa.DataType]] = {
    "detectors.parquet": {
        "detector": pa.int64(),
        "full_name": pa.string(),
        "raft": pa.string(),
        "name_in_raft": pa.string(),
        "purpose": pa.string(),
        "fp_x_min": pa.float64(),
        "fp_x_max": pa.float64(),
        "fp_y_min": pa.float64(),
        "fp_y_max": pa.float64(),
    },
    "visits.parquet": {
        "instrument": pa.string(),
        "visit": pa.int64(),
        "day_obs": pa.int64(),
        "seq_num": pa.int64(),
        "band": pa.string(),
        "physical_filter": pa.string(),
        "ra": pa.float64(),
        "dec": pa.float64(),
        "rot_deg": pa.float64(),
        "exposure_time": pa.float64(),
        "mjd_tai_start": pa.float64(),
        "mjd_tai_end": pa.float64(),
        "region_ra": POLY,
        "region_dec": POLY,
    },
    "visit_detector_regions.parquet": {
        "instrument": pa.dictionary(pa.int32(), pa.string()),
        "visit": pa.int64(),
        "detector": pa.int64(),
        "ra": POLY,
        "dec": POLY,
    },
    "tracts.parquet": {
        "skymap": pa.string(),
        "tract": pa.int64(),
        "ra_center": pa.float64(),
        "dec_center": pa.float64(),
        "inner_ra": POLY,
        "inner_dec": POLY,
        "outer_ra": POLY,
        "outer_dec": POLY,
        "ring": pa.int32(),
    },
    "patches.parquet": {
        "skymap": pa.string(),
        "tract": pa.int64(),
        "patch": pa.int64(),
        "cell_x": pa.int32(),
        "cell_y": pa.int32(),
        "inner_ra": POLY,
        "inner_dec": POLY,
        "outer_ra": POLY,
        "outer_dec": POLY,
    },
}
POLYGON_COLUMNS = {
    "visits.parquet": [("region_ra", "region_dec")],
    "visit_detector_regions.parquet": [("ra", "dec")],
    "tracts.parquet": [("inner_ra", "inner_dec"), ("outer_ra", "outer_dec")],
    "patches.parquet": [("inner_ra", "inner_dec"), ("outer_ra", "outer_dec")],
}
SMALL = SurveySpec(width_deg=3.0, height_deg=3.0)


# -- helpers ---------------------------------------------------------------------------------


def _read(out: Path, name: str) -> pa.Table:
    return pq.read_table(out / name)


def _vec(ra: float, dec: float) -> sphgeom.UnitVector3d:
    return sphgeom.UnitVector3d(sphgeom.LonLat.fromDegrees(ra, dec))


def _polygon(ra: Sequence[float], dec: Sequence[float]) -> sphgeom.ConvexPolygon:
    return sphgeom.ConvexPolygon([_vec(a, d) for a, d in zip(ra, dec, strict=True)])


def _grown(poly: sphgeom.ConvexPolygon, eps: float = 1e-9) -> sphgeom.ConvexPolygon:
    """The polygon pushed out by ~eps radians, to test containment up to rounding."""
    c = poly.getCentroid()
    out = []
    for v in poly.getVertices():
        out.append(
            sphgeom.UnitVector3d(
                v.x() + eps * (v.x() - c.x()),
                v.y() + eps * (v.y() - c.y()),
                v.z() + eps * (v.z() - c.z()),
            )
        )
    return sphgeom.ConvexPolygon(out)


def _xyz(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)


def _check_polygons(
    ra_col: pa.ChunkedArray, dec_col: pa.ChunkedArray, what: str, sphgeom_every: int = 1
) -> None:
    """Every polygon: >= 3 vertices, ra/dec in range, strictly convex, within a hemisphere.

    The numeric checks run vectorised over all polygons with the same vertex count; sphgeom
    (the reference for the format's semantics) then rebuilds every ``sphgeom_every``-th
    polygon and must keep all of its vertices.
    """
    ras = ra_col.to_pylist()
    decs = dec_col.to_pylist()
    by_len: dict[int, list[int]] = {}
    for i, (ra, dec) in enumerate(zip(ras, decs, strict=True)):
        assert len(ra) == len(dec) >= 3, (what, i)
        by_len.setdefault(len(ra), []).append(i)
    for rows in by_len.values():
        a = np.array([ras[i] for i in rows])
        d = np.array([decs[i] for i in rows])
        assert np.all((a >= 0.0) & (a < 360.0)), what
        assert np.all((d >= -90.0) & (d <= 90.0)), what
        v = _xyz(a, d)  # (n, k, 3)
        # Consecutive turns all have the same, non-zero sense: convex, no repeated or
        # collinear vertices, no bow ties.
        turns = np.einsum(
            "nkj,nkj->nk", np.cross(v, np.roll(v, -1, axis=1)), np.roll(v, -2, axis=1)
        )
        same_sense = np.all(turns > 0, axis=1) | np.all(turns < 0, axis=1)
        assert same_sense.all(), (what, np.array(rows)[~same_sense][:5])
        centre = v.sum(axis=1)
        centre /= np.linalg.norm(centre, axis=1, keepdims=True)
        assert np.all(np.einsum("nkj,nj->nk", v, centre) > 0.0), what  # << a hemisphere
    for i in range(0, len(ras), sphgeom_every):
        hull = _polygon(ras[i], decs[i])
        assert len(hull.getVertices()) == len(ras[i]), (what, i)  # sphgeom keeps every vertex


def _ccd_polys(vdr: pa.Table, visit: int) -> list[sphgeom.ConvexPolygon]:
    rows = vdr.filter(pa.compute.equal(vdr["visit"], visit))
    return [
        _polygon(r, d) for r, d in zip(rows["ra"].to_pylist(), rows["dec"].to_pylist(), strict=True)
    ]


def _visit_polys(visits: pa.Table) -> dict[int, sphgeom.ConvexPolygon]:
    return {
        int(v): _polygon(r, d)
        for v, r, d in zip(
            visits["visit"].to_pylist(),
            visits["region_ra"].to_pylist(),
            visits["region_dec"].to_pylist(),
            strict=True,
        )
    }


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> SurveySummary:
    """A 20-visit survey over the default (COSMOS-like) area."""
    return generate_survey(tmp_path_factory.mktemp("survey"), SurveySpec(n_visits=20, seed=7))


# -- format contract -------------------------------------------------------------------------


def test_files_and_checksums(survey: SurveySummary) -> None:
    out = survey.out_dir
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert set(manifest["files"]) == set(EXPECTED_COLUMNS) | {"instrument.json", "skymap.json"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    assert sorted(p.name for p in out.iterdir()) == sorted([*manifest["files"], "manifest.json"])


def test_columns_and_types(survey: SurveySummary) -> None:
    for name, columns in EXPECTED_COLUMNS.items():
        schema = pq.read_schema(survey.out_dir / name)
        assert schema.names == list(columns), name
        for col, typ in columns.items():
            got = schema.field(col).type
            if pa.types.is_list(typ):
                assert pa.types.is_list(got) and got.value_type == pa.float64(), (name, col)
            else:
                assert got == typ, (name, col, got)


def test_counts_and_json_files(survey: SurveySummary) -> None:
    out = survey.out_dir
    assert survey.n_visits == _read(out, "visits.parquet").num_rows == 20
    assert survey.n_ccds == _read(out, "visit_detector_regions.parquet").num_rows == 20 * 189
    assert survey.n_tracts == _read(out, "tracts.parquet").num_rows > 0
    assert survey.n_patches == _read(out, "patches.parquet").num_rows == 100 * survey.n_tracts
    instrument = json.loads((out / "instrument.json").read_text())
    assert instrument["name"] == "LSSTCam"
    assert instrument["detector_max"] == 205
    assert instrument["bands"] == ["u", "g", "r", "i", "z", "y"]
    skymap = json.loads((out / "skymap.json").read_text())
    assert skymap["name"] == "rings" and skymap["kind"] == "rings"
    canonical = json.dumps(
        {"kind": "rings", "parameters": skymap["parameters"]}, sort_keys=True, separators=(",", ":")
    )
    assert skymap["hash_sha1_hex"] == hashlib.sha1(canonical.encode()).hexdigest()


def test_detectors(survey: SurveySummary) -> None:
    det = _read(survey.out_dir, "detectors.parquet").to_pydict()
    assert det["detector"] == list(range(205))
    assert det["purpose"][:189] == ["SCIENCE"] * 189
    assert set(det["purpose"][189:]) == {"GUIDER", "WAVEFRONT"}
    assert det["full_name"][0] == "R01_S00" and det["full_name"][188] == "R43_S22"
    assert all(
        f == f"{r}_{n}"
        for f, r, n in zip(det["full_name"], det["raft"], det["name_in_raft"], strict=True)
    )
    assert len(set(det["full_name"])) == 205
    # CCDs are about 0.226 x 0.222 degrees.
    w = np.array(det["fp_x_max"]) - np.array(det["fp_x_min"])
    h = np.array(det["fp_y_max"]) - np.array(det["fp_y_min"])
    assert np.allclose(w[:189], 4072 * 0.2 / 3600) and np.allclose(h[:189], 4000 * 0.2 / 3600)


def test_ids_unique_and_references(survey: SurveySummary) -> None:
    out = survey.out_dir
    visits = _read(out, "visits.parquet").to_pydict()
    vdr = _read(out, "visit_detector_regions.parquet")
    det = set(_read(out, "detectors.parquet")["detector"].to_pylist())
    instrument = json.loads((out / "instrument.json").read_text())
    assert len(set(visits["visit"])) == len(visits["visit"])
    assert max(visits["visit"]) < instrument["visit_max"]
    pairs = list(zip(vdr["visit"].to_pylist(), vdr["detector"].to_pylist(), strict=True))
    assert len(set(pairs)) == len(pairs)
    known = set(zip(visits["instrument"], visits["visit"], strict=True))
    ccd_keys = set(zip(vdr["instrument"].to_pylist(), vdr["visit"].to_pylist(), strict=True))
    assert ccd_keys <= known
    assert set(vdr["detector"].to_pylist()) == set(range(189)) <= det
    tracts = _read(out, "tracts.parquet")["tract"].to_pylist()
    assert len(set(tracts)) == len(tracts)
    patches = _read(out, "patches.parquet").to_pydict()
    keys = list(zip(patches["tract"], patches["patch"], strict=True))
    assert len(set(keys)) == len(keys)
    assert set(patches["tract"]) == set(tracts)
    assert all(
        p == y * 10 + x
        for p, x, y in zip(patches["patch"], patches["cell_x"], patches["cell_y"], strict=True)
    )


def test_schedule_is_realistic(survey: SurveySummary) -> None:
    v = _read(survey.out_dir, "visits.parquet").to_pydict()
    day_obs = np.array(v["day_obs"])
    seq = np.array(v["seq_num"])
    assert np.array_equal(np.array(v["visit"]), day_obs * 100000 + seq)
    assert day_obs[0] == 20270101 and seq[0] == 1  # predictable ids for docs and demos
    for d in set(day_obs.tolist()):
        assert np.array_equal(seq[day_obs == d], np.arange(1, int((day_obs == d).sum()) + 1))
    start = np.array(v["mjd_tai_start"])
    end = np.array(v["mjd_tai_end"])
    assert np.allclose((end - start) * 86400.0, 30.0)
    assert np.allclose(v["exposure_time"], 30.0)
    _check_mjd_in_day_obs(day_obs, start)
    assert np.all(np.diff(start) > 0)
    filters = {"u": "u_24", "g": "g_6", "r": "r_57", "i": "i_39", "z": "z_20", "y": "y_10"}
    assert all(filters[b] == f for b, f in zip(v["band"], v["physical_filter"], strict=True))
    assert all(0.0 <= r < 360.0 for r in v["rot_deg"])


def test_schedule_over_many_nights() -> None:
    """Thousands of visits: several nights of 300-800 visits, seq_num restarting each night."""
    sched = make_schedule(np.random.default_rng(4), 5000, ("g", "r"), 20270101, 30.0, (300, 800))
    day_obs = sched.day_obs
    nights, counts = np.unique(day_obs, return_counts=True)
    assert len(nights) >= 7
    assert np.all(counts[:-1] >= 300) and np.all(counts <= 800)
    assert len(np.unique(sched.visit)) == 5000
    for d in nights:
        seq = sched.seq_num[day_obs == d]
        assert np.array_equal(seq, np.arange(1, len(seq) + 1))
        start = sched.mjd_tai_start[day_obs == d]
        assert np.all(np.diff(start) * 86400.0 >= 34.0)  # exposure + readout/slew
    assert np.all(np.diff(sched.mjd_tai_start) > 0)
    assert set(sched.band) == {"g", "r"}
    _check_mjd_in_day_obs(day_obs, sched.mjd_tai_start)
    _check_mjd_in_day_obs(day_obs, sched.mjd_tai_end)


def _check_mjd_in_day_obs(day_obs: np.ndarray, mjd_tai: np.ndarray) -> None:
    """The observing day runs from 12:00 UTC on day_obs to 12:00 UTC the next day."""
    for d in np.unique(day_obs):
        date = dt.date(int(d) // 10000, int(d) // 100 % 100, int(d) % 100)
        mjd0 = (date - dt.date(1858, 11, 17)).days
        utc = mjd_tai[day_obs == d] - 37 / 86400
        assert np.all((utc > mjd0 + 0.5) & (utc < mjd0 + 1.5)), d


# -- geometry --------------------------------------------------------------------------------


def test_all_polygons_valid(survey: SurveySummary) -> None:
    for name, pairs in POLYGON_COLUMNS.items():
        table = _read(survey.out_dir, name)
        for ra, dec in pairs:
            every = 7 if name == "patches.parquet" else 1
            _check_polygons(table[ra], table[dec], f"{name}:{ra}", every)


def test_visit_region_contains_its_ccds_and_ccds_are_disjoint(survey: SurveySummary) -> None:
    out = survey.out_dir
    visits = _read(out, "visits.parquet")
    vdr = _read(out, "visit_detector_regions.parquet")
    regions = _visit_polys(visits)
    for visit, region in regions.items():
        ccds = _ccd_polys(vdr, visit)
        assert len(ccds) == 189
        assert all(region.contains(c) for c in ccds), visit
    # CCDs of a visit never overlap (chip and raft gaps); test the first few visits fully.
    for visit in list(regions)[:3]:
        ccds = _ccd_polys(vdr, visit)
        centres = [c.getCentroid() for c in ccds]
        near = np.cos(np.radians(0.5))
        for i in range(len(ccds)):
            for j in range(i + 1, len(ccds)):
                if centres[i].dot(centres[j]) > near:
                    assert not ccds[i].overlaps(ccds[j]), (visit, i, j)


def test_boresights_inside_area(survey: SurveySummary) -> None:
    v = _read(survey.out_dir, "visits.parquet").to_pydict()
    assert all(-5.3 <= d <= 9.7 for d in v["dec"])
    assert all(abs(r - 150.0) <= 10.01 for r in v["ra"])


def test_patches_tile_their_tract(survey: SurveySummary) -> None:
    out = survey.out_dir
    tracts = _read(out, "tracts.parquet").to_pydict()
    patches = _read(out, "patches.parquet").to_pydict()
    by_tract: dict[int, dict[int, int]] = {}
    for row, (t, p) in enumerate(zip(patches["tract"], patches["patch"], strict=True)):
        by_tract.setdefault(t, {})[p] = row
    for k in range(0, len(tracts["tract"]), 37):  # a sample of tracts keeps this fast
        tract = tracts["tract"][k]
        outer = _polygon(tracts["outer_ra"][k], tracts["outer_dec"][k])
        inner = _polygon(tracts["inner_ra"][k], tracts["inner_dec"][k])
        assert outer.contains(inner)
        grown = _grown(outer)
        rows = by_tract[tract]
        assert sorted(rows) == list(range(100))

        def vertices(row: int, kind: str) -> list[tuple[float, float]]:
            return list(zip(patches[f"{kind}_ra"][row], patches[f"{kind}_dec"][row], strict=True))

        for p, row in rows.items():
            x, y = p % 10, p // 10
            p_inner = _polygon(patches["inner_ra"][row], patches["inner_dec"][row])
            p_outer = _polygon(patches["outer_ra"][row], patches["outer_dec"][row])
            assert grown.contains(p_inner) and grown.contains(p_outer), (tract, p)
            # Edge patches share edges with their outer box (clipped to the tract): tolerate
            # rounding there as well.
            assert _grown(p_outer).contains(p_inner), (tract, p)
            here = set(vertices(row, "inner"))
            if x < 9:  # right neighbour shares exactly one edge (two identical vertices)
                assert len(here & set(vertices(rows[p + 1], "inner"))) == 2, (tract, p)
            if y < 9:
                assert len(here & set(vertices(rows[p + 10], "inner"))) == 2, (tract, p)
        # The corner patches reach the tract's corners exactly: the patches cover the box.
        corners = set(zip(tracts["outer_ra"][k], tracts["outer_dec"][k], strict=True))
        patch_corners = set().union(*(set(vertices(rows[p], "inner")) for p in (0, 9, 90, 99)))
        assert corners <= patch_corners


def test_every_ccd_is_covered_by_a_written_tract(survey: SurveySummary) -> None:
    out = survey.out_dir
    skymap = RingsSkyMap()
    tracts = _read(out, "tracts.parquet").to_pydict()
    outer = {
        t: _polygon(r, d)
        for t, r, d in zip(tracts["tract"], tracts["outer_ra"], tracts["outer_dec"], strict=True)
    }
    vdr = _read(out, "visit_detector_regions.parquet")
    for ra, dec in zip(vdr["ra"].to_pylist(), vdr["dec"].to_pylist(), strict=True):
        for a, d in zip(ra, dec, strict=True):
            tract = skymap.find_tract(a, d)
            assert tract in outer, (a, d, tract)
            assert outer[tract].contains(_vec(a, d))


def test_rings_numbering_matches_hsc() -> None:
    skymap = RingsSkyMap()
    assert skymap.n_tracts == 18938
    assert skymap.find_tract(150.1, 2.2) == 9813
    ra, dec = skymap.tract_center(9813)
    assert abs(ra - 150.1) < 0.2 and abs(dec - 2.2) < 0.2
    assert skymap.find_tract(10.0, -89.9) == 0
    assert skymap.find_tract(10.0, 89.9) == 18937
    for tract in (1, 500, 9813, 18936):
        assert skymap.find_tract(*skymap.tract_center(tract)) == tract


def test_cosmos_tract_is_written(survey: SurveySummary) -> None:
    tracts = _read(survey.out_dir, "tracts.parquet").to_pydict()
    k = tracts["tract"].index(9813)
    assert abs(tracts["ra_center"][k] - 150.1) < 0.2
    assert abs(tracts["dec_center"][k] - 2.2) < 0.2
    assert _polygon(tracts["inner_ra"][k], tracts["inner_dec"][k]).contains(_vec(150.1, 2.2))


# -- awkward places on the sphere ----------------------------------------------------------


@pytest.mark.parametrize(
    ("center_ra", "center_dec", "height"),
    [
        (0.5, 0.0, 3.0),
        (359.8, -30.0, 3.0),
        (40.0, -85.0, 8.0),
        (200.0, 88.5, 3.0),
        (0.0, -89.5, 1.0),  # every field contains the south pole
    ],
)
def test_wrap_and_poles(tmp_path: Path, center_ra: float, center_dec: float, height: float) -> None:
    spec = SurveySpec(
        n_visits=6,
        seed=3,
        center_ra=center_ra,
        center_dec=center_dec,
        width_deg=3.0,
        height_deg=height,
    )
    summary = generate_survey(tmp_path, spec)
    out = summary.out_dir
    for name, pairs in POLYGON_COLUMNS.items():
        if name == "patches.parquet":
            continue  # checked below, with sphgeom on a sample: near a pole tracts are many
        table = _read(out, name)
        for ra, dec in pairs:
            _check_polygons(table[ra], table[dec], f"{name}:{ra}")
    patches = _read(out, "patches.parquet")
    for ra, dec in POLYGON_COLUMNS["patches.parquet"]:
        _check_polygons(patches[ra], patches[dec], f"patches:{ra}", sphgeom_every=23)
    visits = _read(out, "visits.parquet")
    vdr = _read(out, "visit_detector_regions.parquet")
    for visit, region in _visit_polys(visits).items():
        assert all(region.contains(c) for c in _ccd_polys(vdr, visit)), visit
    tracts = _read(out, "tracts.parquet").to_pydict()
    if center_ra == 0.5:
        ras = np.concatenate(vdr["ra"].to_numpy())
        assert ras.min() < 1.0 and ras.max() > 359.0  # footprints straddle RA 0
    if abs(center_dec) > 80:
        cap = 0 if center_dec < 0 else RingsSkyMap().n_tracts - 1
        k = tracts["tract"].index(cap)
        pole = _vec(0.0, -90.0 if center_dec < 0 else 90.0)
        assert _polygon(tracts["inner_ra"][k], tracts["inner_dec"][k]).contains(pole)
        assert tracts["ring"][k] in (-1, 120)
    if center_dec < -89.0:
        pole = _vec(0.0, -90.0)
        assert all(region.contains(pole) for region in _visit_polys(visits).values())


# -- the documentation's example ---------------------------------------------------------------


def test_docs_example_writes_a_valid_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hand-written example in docs/manifest-format.md must follow the format it documents."""
    doc = Path(__file__).resolve().parents[1] / "docs" / "manifest-format.md"
    if not doc.exists():
        pytest.skip("docs not available")
    code = doc.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(doc), "exec"), {})
    out = tmp_path / "one_visit"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    for name in ("detectors.parquet", "visits.parquet", "visit_detector_regions.parquet"):
        schema = pq.read_schema(out / name)
        for col, typ in EXPECTED_COLUMNS[name].items():
            if col.startswith("fp_"):
                continue  # optional
            got = schema.field(col).type
            if pa.types.is_list(typ):
                assert got.value_type == pa.float64(), (name, col)
            elif pa.types.is_dictionary(typ):
                assert got in (typ, pa.string()), (name, col)
            else:
                assert got == typ, (name, col, got)
        for ra, dec in POLYGON_COLUMNS.get(name, []):
            table = _read(out, name)
            _check_polygons(table[ra], table[dec], name)


# -- determinism and entry points --------------------------------------------------------------


def test_deterministic(tmp_path: Path) -> None:
    spec = replace(SMALL, n_visits=5, seed=11)
    a = generate_survey(tmp_path / "a", spec)
    b = generate_survey(tmp_path / "b", spec)
    for name in a.files:
        assert (a.out_dir / name).read_bytes() == (b.out_dir / name).read_bytes(), name
    c = generate_survey(tmp_path / "c", replace(SMALL, n_visits=5, seed=12))
    visits_a = (a.out_dir / "visits.parquet").read_bytes()
    assert visits_a != (c.out_dir / "visits.parquet").read_bytes()
    # The sky map's identity does not depend on the area or seed.
    assert (a.out_dir / "skymap.json").read_bytes() == (c.out_dir / "skymap.json").read_bytes()


def test_empty_survey(tmp_path: Path) -> None:
    summary = generate_survey(tmp_path, replace(SMALL, n_visits=0))
    assert _read(tmp_path, "visits.parquet").num_rows == 0
    assert _read(tmp_path, "visit_detector_regions.parquet").num_rows == 0
    assert summary.n_tracts > 0


def test_invalid_spec() -> None:
    with pytest.raises(InputError):
        SurveySpec(n_visits=-1)
    with pytest.raises(InputError):
        SurveySpec(center_dec=91.0)
    with pytest.raises(InputError):
        SurveySpec(first_day_obs=20271340)
    with pytest.raises(InputError):
        SurveySpec(bands=())
    with pytest.raises(InputError):
        SurveySpec(visits_per_night=(300, 1000))


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = [str(out), "--visits", "3", "--seed", "5", "--width", "2", "--height", "2"]
    assert cli_main(args) == 0
    assert "3 visits" in capsys.readouterr().out
    assert _read(out, "visits.parquet").num_rows == 3
    assert cli_main([str(out), "--visits", "-3"]) == 2
