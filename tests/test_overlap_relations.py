"""The overlap relations hold exactly the pairs a brute-force sphgeom scan finds, whoever wrote
the CCDs and tiles and in whichever order, after re-runs, crashes and the backfilling migration.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from hypothesis import given, settings
from hypothesis import strategies as st
from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d
from sqlalchemy import create_engine, text

from manifest_builder import ManifestSpec, Polygon, box, survey_spec, write_manifest
from skyreg import Registry
from skyreg.db.engine import make_engine
from skyreg.db.migrate import alembic_config
from skyreg.schema import overlaps
from skyreg.skymaps import DiscreteDefinition

#: Tracts across RA 0/360, near the north pole and elsewhere; inner and outer polygons differ.
SKYMAP = DiscreteDefinition(ra_deg=(359.9, 0.3, 45.0), dec_deg=(0.0, 0.0, 89.9),
                            radius_deg=0.25, pixel_scale_arcsec=20.0, patch_inner_pixels=50,
                            patch_border_pixels=8, tract_overlap_deg=0.01)

Pairs = set[tuple[int, int, bool, bool]]


def _ccd_polygons(seed: int, count: int = 120) -> list[Polygon]:
    """Random CCD-sized boxes around the sky map's tracts (RA 0/360, the pole) and a patch
    grid at RA 200; some are tiny (1 arcsecond) and some large."""
    rng = np.random.default_rng(seed)
    centres = [(359.9, 0.0), (0.3, 0.0), (0.1, 0.05), (45.0, 89.9), (200.0, -30.0)]
    polygons = []
    for k in range(count):
        ra, dec = centres[k % len(centres)]
        dec = float(np.clip(dec + rng.normal(0, 0.2), -89.99, 89.99))
        ra = float((ra + rng.normal(0, 0.2) / max(np.cos(np.radians(dec)), 0.05)) % 360)
        half = [1 / 3600, 0.05, 0.1, 0.4][int(rng.integers(4))]
        polygons.append(box(ra, dec, half, float(rng.uniform(0, 90))))
    return polygons


def _grid(ra: float, dec: float, n: int, step: float) -> list[Polygon]:
    """n x n patches sharing edges and corners exactly (the same vertex values)."""
    lattice = [[box(ra + i * step, dec + j * step, 0.0) for j in range(n + 1)]
               for i in range(n + 1)]
    corners = [[(p[0][0], p[1][0]) for p in row] for row in lattice]
    patches = []
    for i in range(n):
        for j in range(n):
            quad = [corners[i][j], corners[i + 1][j], corners[i + 1][j + 1], corners[i][j + 1]]
            patches.append(([c[0] for c in quad], [c[1] for c in quad]))
    return patches


def _spec(seed: int) -> ManifestSpec:
    """CCDs plus a discrete sky map with two tracts: a grid at RA 200 and one across 0/360."""
    tract0 = box(200.15, -29.85, 0.2)
    tract1 = box(0.0, 0.0, 0.3)
    spec = survey_spec(_ccd_polygons(seed), tract_polygons=[tract0, tract1],
                       patch_polygons=[_grid(200.0, -30.0, 3, 0.1), _grid(359.8, -0.2, 4, 0.1)])
    for row in spec.patches[::2]:  # inner smaller than outer for half the patches
        ra, dec = box(float(np.mean(row["outer_ra"]) if max(row["outer_ra"]) < 300 else 0.0),
                      float(np.mean(row["outer_dec"])), 0.03)
        if max(row["outer_ra"]) - min(row["outer_ra"]) < 180:
            row["inner_ra"], row["inner_dec"] = ra, dec
    return spec


def _split(spec: ManifestSpec) -> tuple[ManifestSpec, ManifestSpec]:
    """The same content as two manifests: CCDs only, and the sky map only."""
    ccds = ManifestSpec(detectors=spec.detectors, visits=spec.visits, ccds=spec.ccds)
    tiles = ManifestSpec(instrument=None, skymap=spec.skymap, tracts=spec.tracts,
                         patches=spec.patches)
    return ccds, tiles


def brute_force(url: str) -> dict[str, Pairs]:
    """Every CCD against every patch and tract with sphgeom (outer and inner polygons)."""
    engine = create_engine(url)
    with engine.connect() as connection:
        ccds = connection.execute(text("SELECT ccd_id, region FROM ccd")).all()
        result = {}
        for kind in ("patch", "tract"):
            tiles = connection.execute(text(
                f"SELECT {kind}_id, outer_region, inner_region FROM {kind}")).all()
            pairs: Pairs = set()
            decoded = [(i, ConvexPolygon.decode(o), ConvexPolygon.decode(n))
                       for i, o, n in tiles]
            for ccd_id, region in ccds:
                footprint = ConvexPolygon.decode(region)
                for tile_id, outer, inner in decoded:
                    hits = bool(footprint.overlaps(outer)), bool(footprint.overlaps(inner))
                    if any(hits):
                        pairs.add((tile_id, ccd_id, *hits))
            result[kind] = pairs
    engine.dispose()
    return result


def stored(url: str) -> dict[str, Pairs]:
    """The stored pairs; where the relations hold the CCD keys (revision 0014 on), each
    pair's key is checked against the CCD's own."""
    engine = create_engine(url)
    with engine.connect() as connection:
        result = {kind: {tuple(row) for row in connection.execute(text(
            f"SELECT {kind}_id, ccd_id, outer_overlap, inner_overlap "
            f"FROM ccd_{kind}_overlap"))} for kind in ("patch", "tract")}
        for kind in ("patch", "tract"):
            keyed = connection.execute(text(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = :t AND column_name IN ('instrument', 'visit', 'detector')"),
                {"t": f"ccd_{kind}_overlap"}).scalar_one()
            if keyed:
                wrong = connection.execute(text(
                    f"SELECT count(*) FROM ccd_{kind}_overlap AS o LEFT JOIN ccd AS c "
                    "ON c.ccd_id = o.ccd_id WHERE c.ccd_id IS NULL OR (o.instrument, o.visit, "
                    "o.detector) IS DISTINCT FROM (c.instrument, c.visit, c.detector)"
                )).scalar_one()
                assert (keyed, wrong) == (3, 0), f"ccd_{kind}_overlap: {wrong} wrong keys"
    engine.dispose()
    return result


def _assert_exact(url: str) -> dict[str, Pairs]:
    truth = brute_force(url)
    assert stored(url) == truth
    assert truth["patch"] and truth["tract"]  # the test is not vacuous
    return truth


def test_manifest_ingest_stores_exactly_the_overlapping_pairs(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    root = write_manifest(tmp_path / "m", _spec(1))
    registry.ingest_manifest(root)
    truth = _assert_exact(database_url)
    # Some pairs overlap the outer polygon only, and both kinds of tile have pairs.
    assert any(not inner for _, _, _, inner in truth["patch"])
    # A re-run inserts nothing and adds no pair.
    registry.ingest_manifest(root)
    assert stored(database_url) == truth


@pytest.mark.parametrize("tiles_first", [True, False])
def test_ccds_and_sky_map_in_either_order(registry: Registry, database_url: str,
                                          tmp_path: Path, tiles_first: bool) -> None:
    ccds, tiles = _split(_spec(2))
    first, second = (tiles, ccds) if tiles_first else (ccds, tiles)
    registry.ingest_manifest(write_manifest(tmp_path / "a", first))
    registry.ingest_manifest(write_manifest(tmp_path / "b", second))
    _assert_exact(database_url)


def test_registered_sky_map_before_and_after_ccds(registry: Registry, database_url: str,
                                                  tmp_path: Path) -> None:
    spec = _spec(3)
    spec.skymap, spec.tracts, spec.patches = None, [], []
    half = len(spec.visits) // 2
    early = ManifestSpec(detectors=spec.detectors, visits=spec.visits[:half],
                         ccds=[c for c in spec.ccds if c["visit"] < 1000 + half])
    late = ManifestSpec(detectors=spec.detectors, visits=spec.visits[half:],
                        ccds=[c for c in spec.ccds if c["visit"] >= 1000 + half])
    registry.ingest_manifest(write_manifest(tmp_path / "early", early))
    registry.register_skymap("discrete", SKYMAP)  # pairs with the CCDs stored before
    registry.ingest_manifest(write_manifest(tmp_path / "late", late))  # and with later ones
    truth = _assert_exact(database_url)
    registry.register_skymap("discrete", SKYMAP)
    assert stored(database_url) == truth


def test_one_ingest_with_new_ccds_and_a_new_sky_map_over_stored_ccds(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    """Pairs of stored CCDs (ids) and of new ones (staged rows) in one relation COPY, each
    with its own CCD's key."""
    spec = _spec(4)
    half = len(spec.visits) // 2
    early = ManifestSpec(detectors=spec.detectors, visits=spec.visits[:half],
                         ccds=[c for c in spec.ccds if c["visit"] < 1000 + half])
    late = ManifestSpec(detectors=spec.detectors, visits=spec.visits[half:],
                        ccds=[c for c in spec.ccds if c["visit"] >= 1000 + half],
                        skymap=spec.skymap, tracts=spec.tracts, patches=spec.patches)
    assert early.ccds and late.ccds
    registry.ingest_manifest(write_manifest(tmp_path / "early", early))
    engine = create_engine(database_url)
    with engine.connect() as connection:
        early_ids = set(connection.execute(text("SELECT ccd_id FROM ccd")).scalars())
    engine.dispose()
    registry.ingest_manifest(write_manifest(tmp_path / "late", late))
    truth = _assert_exact(database_url)
    assert any(ccd in early_ids for _, ccd, _, _ in truth["patch"])
    assert any(ccd not in early_ids for _, ccd, _, _ in truth["patch"])


def test_fits_ingest_adds_its_pairs(registry: Registry, database_url: str,
                                    tmp_path: Path) -> None:
    registry.register_skymap("discrete", SKYMAP)
    _write_decam_files(tmp_path / "files")
    report = registry.ingest_fits(tmp_path / "files", recursive=True, jobs=1)
    assert not report.problems
    _assert_exact(database_url)


def _write_decam_files(directory: Path) -> None:
    from test_fits_ingest import write_decam

    directory.mkdir(parents=True, exist_ok=True)
    write_decam(directory / "one.fits", 101, 359.95, 0.0, [1, 2, 3])
    write_decam(directory / "two.fits", 102, 0.25, 0.1, [1, 2])


def _alembic(url: str, action: Callable[..., None], revision: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            action(alembic_config(connection), revision)
    finally:
        engine.dispose()


def test_migration_backfills_a_registry_with_data(registry: Registry, database_url: str,
                                                  tmp_path: Path) -> None:
    registry.ingest_manifest(write_manifest(tmp_path / "m", _spec(4)))
    registry.register_skymap("discrete", SKYMAP)
    truth = stored(database_url)
    registry.close()
    _alembic(database_url, command.downgrade, "0006")  # a registry as 0006 left it
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.execute(text(
            "SELECT to_regclass('ccd_patch_overlap') IS NULL")).scalar_one()
    engine.dispose()
    _alembic(database_url, command.upgrade, "0007")
    assert stored(database_url) == truth == brute_force(database_url)
    # Revision 0014 adds the CCD keys to the stored pairs (stored() checks them).
    _alembic(database_url, command.upgrade, "head")
    assert stored(database_url) == truth
    engine = create_engine(database_url)
    with engine.connect() as connection:
        keys = {row[0]: tuple(row[1:]) for row in connection.execute(text(
            "SELECT ccd_id, instrument, visit, detector FROM ccd"))}
        patches = connection.execute(text(
            "SELECT patch_id, skymap, tract, patch FROM patch ORDER BY patch_id")).all()
    engine.dispose()
    again = Registry.connect(database_url)
    try:
        for patch_id, *patch in patches:
            expected = sorted(keys[ccd_id] for tile, ccd_id, outer, _ in truth["patch"]
                              if tile == patch_id and outer)
            assert [tuple(row) for row in again.find_ccds(patch=tuple(patch))] == expected
    finally:
        again.close()


@pytest.mark.slow
def test_killed_ingest_then_rerun_gives_the_exact_pairs(database_url: str,
                                                        tmp_path: Path) -> None:
    spec = _spec(5)
    more = survey_spec(_ccd_polygons(6, count=4000))
    spec.detectors, spec.visits, spec.ccds = more.detectors, more.visits, more.ccds
    root = write_manifest(tmp_path / "m", spec)
    env = {**os.environ, "SKYREG_HOME": str(tmp_path / "home")}
    watcher = create_engine(database_url, isolation_level="AUTOCOMMIT")
    child = subprocess.Popen([sys.executable, "-m", "skyreg", "--db", database_url, "ingest",
                              "manifest", "--no-progress", str(root)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        # Kill it once the transaction writes: its inserts or its overlap pairs.
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            with watcher.connect() as connection:
                busy = connection.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND (query LIKE 'INSERT INTO ccd%' OR query LIKE '%int8send%' "
                    "OR query LIKE 'COPY%overlap%')")).scalar_one()
            if busy:
                os.kill(child.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        watcher.dispose()
    killed = child.returncode == -signal.SIGKILL
    if killed:
        assert stored(database_url) == {"patch": set(), "tract": set()}
    with Registry.connect(database_url) as registry:
        registry.ingest_manifest(root)
    _assert_exact(database_url)


def test_client_pixel_join_gives_each_shared_pixel_pair_once() -> None:
    """The loader's candidate join (numpy, in rounds) equals the brute-force pixel join."""
    rng = np.random.default_rng(7)
    for _ in range(30):
        n, m = int(rng.integers(0, 300)), int(rng.integers(1, 200))
        ccd_pix, ccd_refs = rng.integers(0, 50, n), -rng.integers(1, 40, n)
        tile_pix, tile_refs = rng.integers(0, 50, m), rng.integers(-30, 30, m)
        expected = {(int(c), int(t)) for p, c in zip(ccd_pix, ccd_refs, strict=True)
                    for q, t in zip(tile_pix, tile_refs, strict=True) if p == q}
        for budget in (1, 7, 10**6):
            found = [(int(c), int(t)) for ccds, tiles in overlaps.join_pixels(
                ccd_pix, ccd_refs, tile_pix, tile_refs, budget)
                for c, t in zip(ccds, tiles, strict=True)]
            assert len(found) == len(set(found))
            assert set(found) == expected


@pytest.mark.parametrize("split", [False, True])
def test_pairs_computed_by_worker_processes(registry: Registry, database_url: str,
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            split: bool) -> None:
    """The pool path (forked workers, several chunks, tiles filtered by the CCDs' pixels)
    gives the brute-force pairs, with the tiles in the same manifest or stored before."""
    from skyreg.ingest import overlap_jobs

    monkeypatch.setattr(overlap_jobs, "POOL_THRESHOLD", 0)
    monkeypatch.setattr(overlap_jobs, "CHUNK", 7)
    monkeypatch.setattr(overlap_jobs, "FILTER_TILES", 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    spec = _spec(7)
    if split:
        ccds, tiles = _split(spec)
        registry.ingest_manifest(write_manifest(tmp_path / "tiles", tiles))
        report = registry.ingest_manifest(write_manifest(tmp_path / "ccds", ccds))
    else:
        report = registry.ingest_manifest(write_manifest(tmp_path / "m", spec))
    assert "database: overlaps: workers' CPU" in report.stage_seconds  # the pool ran
    _assert_exact(database_url)


def _failing_chunk(*args: object) -> list[overlaps.Pairs]:
    raise RuntimeError("worker failed")


def test_failing_worker_fails_the_ingest_and_writes_nothing(
        registry: Registry, database_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from skyreg.ingest import overlap_jobs

    monkeypatch.setattr(overlap_jobs, "POOL_THRESHOLD", 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(overlaps, "chunk_pairs", _failing_chunk)  # inherited by the workers
    root = write_manifest(tmp_path / "m", _spec(8))
    with pytest.raises(RuntimeError, match="worker failed"):
        registry.ingest_manifest(root)
    assert not overlap_jobs._WORK  # the job's work is dropped with its pool
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM ccd")).scalar_one() == 0
    engine.dispose()
    assert stored(database_url) == {"patch": set(), "tract": set()}
    monkeypatch.undo()
    registry.ingest_manifest(root)
    _assert_exact(database_url)


def test_tile_pixel_lookup_table_equals_binary_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tile set's pixel lookup table (small pixel ranges) finds the rows binary searches
    find, for pixels inside, between and outside the tiles' pixels; so does the fallback."""
    rng = np.random.default_rng(11)
    square = box(10.0, 10.0, 0.1)
    polygon = ConvexPolygon.decode(
        ConvexPolygon([UnitVector3d(LonLat.fromDegrees(ra, dec)) for ra, dec in
                       zip(*square, strict=True)]).encode()).encode()
    for span in (1 << 22, 1):
        monkeypatch.setattr(overlaps, "LOOKUP_SPAN", span)
        counts = rng.integers(0, 5, 40)
        pixels = rng.integers(1000, 1100, int(counts.sum()))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        shapes = overlaps.Shapes(40, pixels.astype(np.int64), offsets,
                                 lambda rows, column: [polygon] * len(rows))
        tiles = overlaps.tile_set(None, overlaps.TILES[0], shapes, None)  # type: ignore[arg-type]
        assert (tiles.starts is None) == (span == 1)
        probe = rng.integers(900, 1200, 500).astype(np.int64)
        low, count = tiles.rows_of(probe.copy())
        for p, first, n in zip(probe, low, count, strict=True):
            assert n == int((tiles.pix == p).sum())
            assert (tiles.pix[first:first + n] == p).all()


def _decoded(pieces: list[np.ndarray]) -> list[tuple[int, str, int, int, int, bool, bool]]:
    """Relation rows of :func:`overlaps._overlap_rows` as (tile, instrument, visit, detector,
    CCD, outer, inner), in the order they would be copied."""
    return [(int(row["tile"]), bytes(row["instrument"]).decode(), int(row["visit"]),
             int(row["detector"]), int(row["ccd"]), bool(row["outer"]), bool(row["inner"]))
            for piece in pieces for row in piece]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_keyed_rows_are_the_pairs_in_primary_key_order(data: st.DataObject) -> None:
    """The packed-integer ordering of the relation rows gives every pair once, with its own
    CCD's key and flags, each instrument's rows in (tile, visit, detector) order — also when
    the keys are too wide to pack (visits of 2^62) and the rows fall back to ``np.lexsort``."""
    names = data.draw(st.lists(st.sampled_from(["LSSTCam", "HSC", "DECam", "Ü"]), min_size=1,
                               max_size=3, unique=True))
    wide = data.draw(st.booleans())
    count = data.draw(st.integers(1, 40))
    keys = data.draw(st.lists(st.tuples(st.integers(0, len(names) - 1),
                                        st.integers(-5, 2**62 if wide else 10**12),
                                        st.integers(0, 200)),
                              min_size=count, max_size=count, unique=True))
    ccd_keys = overlaps.CcdKeys(tuple(names), *(np.array(column, dtype=np.int64)
                                                for column in zip(*keys, strict=True)))
    ids = np.array(data.draw(st.lists(st.integers(1, 2**40), min_size=count, max_size=count,
                                      unique=True)), dtype=np.int64)
    pairs = sorted(data.draw(st.sets(st.tuples(st.integers(1, 6) | st.integers(2**30, 2**30 + 3),
                                               st.integers(0, count - 1)), max_size=200)))
    flags = [data.draw(st.sampled_from([(True, True), (True, False), (False, True)]))
             for _ in pairs]
    tile_ids = np.array([tile for tile, _ in pairs], dtype=np.int64)
    rows = np.array([row for _, row in pairs], dtype=np.int64)
    outer = np.array([f[0] for f in flags], dtype=bool)
    inner = np.array([f[1] for f in flags], dtype=bool)
    for ordered in (True, False):
        found = _decoded(overlaps._overlap_rows(tile_ids, outer, inner,
                                                overlaps.PairCcds(ids, ccd_keys, rows), ordered))
        expected = [(tile, names[keys[row][0]], keys[row][1], keys[row][2], int(ids[row]),
                     bool(o), bool(i))
                    for (tile, row), o, i in zip(pairs, outer, inner, strict=True)]
        assert sorted(found) == sorted(expected)
        # One piece per instrument, in byte order of the names (C collation).
        by_name = [row[1] for row in found]
        assert by_name == sorted(by_name, key=str.encode)
        if ordered or not wide:
            assert found == sorted(found, key=lambda r: (r[1].encode(), r[0], r[2], r[3]))
