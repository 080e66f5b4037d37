"""Cone and point searches by the CCDs' centre pixels (revision 0017) miss nothing and add
nothing, for footprints of every size class, and stay exact when the stored levels change
under a running registry, when a writer left the centre pixel out, and after the migration.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from alembic import command
from hypothesis import given
from hypothesis import strategies as st
from lsst.sphgeom import Angle, Circle, ConvexPolygon, HtmPixelization, LonLat, UnitVector3d

from manifest_builder import Polygon, box, survey_spec, write_manifest
from skyreg import Registry
from skyreg.errors import DatabaseError
from skyreg.geometry.centre_pixels import (
    FINEST_CLASS,
    LEVEL_OFFSET,
    UNBOUNDED_LEVEL,
    centre_levels,
    centre_pixels,
    class_bound,
    search_ranges,
)
from skyreg.geometry.htm_index import htm_indices
from skyreg.search import centre_statements
from skyreg.search.centres import cone_params, range_params
from skyreg.search.sql import compiled
from skyreg.search.statements import CcdFilters
from test_migrations import _alembic


def vector(ra: float, dec: float) -> UnitVector3d:
    return UnitVector3d(LonLat.fromDegrees(ra % 360.0, dec))


def _angle(a: UnitVector3d, b: UnitVector3d) -> float:
    return math.atan2(a.cross(b).getNorm(), a.dot(b))


radii = st.one_of(st.floats(1e-7, 1e-3), st.floats(1e-3, 0.5), st.floats(0.5, math.pi / 2),
                  st.just(math.pi))


@given(radius=radii)
def test_size_class_bounds_the_outer_radius_tightly(radius: float) -> None:
    level = int(centre_levels(np.array([math.cos(radius)]))[0])
    if radius >= math.pi / 2:
        assert level == UNBOUNDED_LEVEL
        return
    assert radius <= class_bound(level)
    # The tightest class that holds it, but for the finest one.
    if level < FINEST_CLASS + LEVEL_OFFSET:
        assert radius > class_bound(level + 1)


@given(ra=st.floats(0.0, 360.0, exclude_max=True), dec=st.floats(-90.0, 90.0),
       radius=radii, bearing=st.floats(0.0, 360.0), fraction=st.floats(0.0, 1.0),
       cone=st.one_of(st.just(0.0), st.floats(1e-8, 0.01), st.floats(0.01, math.pi)))
def test_a_cone_overlapping_the_outer_cap_covers_its_centre_pixel(
        ra: float, dec: float, radius: float, bearing: float, fraction: float, cone: float
) -> None:
    """The property the search rests on: if the query cone can reach the footprint (its
    centre within cone radius + outer radius), the centre's stored pixel is in the cover."""
    centre = vector(ra, dec)
    caps = np.zeros((1, 7))
    caps[0, :3] = centre.x(), centre.y(), centre.z()
    caps[0, 5], caps[0, 6] = math.cos(radius), math.sin(radius)
    pixel = int(centre_pixels(caps)[0])
    level = int(centre_levels(caps[:, 5])[0])
    # A query centre at distance fraction * (cone + radius) along a great circle.
    distance = min(math.pi, fraction * (cone + min(radius, math.pi)))
    north = vector(ra, min(90.0, dec + 1e-3)) if dec < 89.0 else vector(ra + 90.0, 0.0)
    axis = UnitVector3d(centre.cross(north))
    turn = math.radians(bearing)
    tangent = UnitVector3d(axis.rotatedAround(centre, Angle(turn)).cross(centre))
    query = UnitVector3d(centre.rotatedAround(UnitVector3d(centre.cross(tangent)),
                                              Angle(distance)))
    ranges = search_ranges(query, cone, [level])
    assert any(lo <= pixel < hi for lo, hi in ranges)
    assert all(a < b for a, b in ranges) and all(
        ranges[i][1] <= ranges[i + 1][0] for i in range(len(ranges) - 1))


def test_centre_pixels_are_sphgeoms_htm_indices_and_missing_caps_stay_missing() -> None:
    rng = np.random.default_rng(5)
    n = 2000
    ra, dec = rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    radius = np.exp(rng.uniform(math.log(1e-6), math.log(2.0), n))
    caps = np.zeros((n, 7))
    caps[:, 0] = np.cos(np.radians(dec)) * np.cos(np.radians(ra))
    caps[:, 1] = np.cos(np.radians(dec)) * np.sin(np.radians(ra))
    caps[:, 2] = np.sin(np.radians(dec))
    caps[:, 5], caps[:, 6] = np.cos(radius), np.sin(radius)
    caps[7] = np.nan
    pixels = centre_pixels(caps)
    levels = centre_levels(caps[:, 5])
    assert np.isnan(pixels[7])
    for level in np.unique(np.delete(levels, 7)).tolist():
        rows = np.flatnonzero((levels == level) & ~np.isnan(pixels))
        sphgeom = HtmPixelization(level)
        assert pixels[rows].astype(np.int64).tolist() == [
            sphgeom.index(UnitVector3d(*map(float, caps[i, :3]))) for i in rows.tolist()]
        # The same trixels as the RA/Dec the centres were made from (none is on an edge).
        assert (pixels[rows].astype(np.int64) == htm_indices(ra[rows], dec[rows], level)).all()
    assert len(np.unique(levels)) >= 5


# -- through a registry ---------------------------------------------------------------------------


def _triangle(*vertices: tuple[float, float]) -> Polygon:
    return [v[0] for v in vertices], [v[1] for v in vertices]


def _footprints(rng: np.random.Generator, n: int) -> list[Polygon]:
    """Boxes from 1 arcsec to 30 degrees around clusters at RA 0, a pole and elsewhere, and
    wide triangles whose outer cap passes 90 degrees (the unbounded class)."""
    polygons: list[Polygon] = []
    centres = [(0.0, 0.0), (180.0, 89.9), (45.0, -60.0), (300.0, 20.0)]
    for i in range(n):
        ra0, dec0 = centres[i % len(centres)]
        half = float(np.exp(rng.uniform(math.log(1 / 3600), math.log(30.0))))
        spread = min(5.0, 3 * half)
        dec = float(np.clip(dec0 + rng.uniform(-spread, spread), -89.0 + half, 89.0 - half))
        polygons.append(box(float(ra0 + rng.uniform(-spread, spread)) % 360.0,
                            dec if abs(dec) + half < 89.99 else 0.0, half,
                            float(rng.uniform(0, 90))))
    polygons += [_triangle((0.0, 0.0), (170.0, 0.0), (10.0, 10.0)),
                 _triangle((350.0, -5.0), (200.0, -1.0), (300.0, -40.0))]
    return polygons


def _oracle(polygons: list[Polygon], query: dict[str, Any]) -> set[tuple[str, int, int]]:
    if "point" in query:
        point = vector(*query["point"])
        test = lambda polygon: polygon.contains(point)  # noqa: E731
    else:
        ra, dec, radius = query["cone"]
        region = Circle(vector(ra, dec), Angle.fromDegrees(radius))
        test = lambda polygon: polygon.overlaps(region)  # noqa: E731
    keys = set()
    for i, (ras, decs) in enumerate(polygons):
        polygon = ConvexPolygon([vector(a, d) for a, d in zip(ras, decs, strict=True)])
        if test(polygon):
            keys.add(("TestCam", 1000 + i // 10, i % 10))
    return keys


def _queries(rng: np.random.Generator, polygons: list[Polygon], n: int) -> list[dict[str, Any]]:
    queries: list[dict[str, Any]] = [
        {"cone": (0.0, 0.0, 0.0)}, {"cone": (359.9999, 0.0, 1 / 3600)},
        {"cone": (12.0, 90.0, 0.5)}, {"cone": (100.0, -90.0, 30.0)},
        {"cone": (90.0, 0.0, 89.99)}, {"cone": (90.0, 0.0, 180.0)}, {"point": (0.0, 90.0)},
        {"point": (360.0, 0.0)}, {"point": (85.0, 4.0)}]
    for _ in range(n):
        ras, decs = polygons[int(rng.integers(len(polygons)))]
        ra, dec = float(ras[0]), float(decs[0])  # a vertex: cones grazing the footprint
        radius = float(rng.choice([0.0, 1 / 3600, 0.01, 0.2, 2.0, 15.0, 100.0]))
        queries.append({"cone": (ra + float(rng.normal(0, 0.01)) % 360.0,
                                 float(np.clip(dec + rng.normal(0, 0.01), -90, 90)), radius)}
                       if rng.random() < 0.8 else {"point": (ra, dec)})
    return queries


def _keys(registry: Registry, query: dict[str, Any]) -> set[tuple[str, int, int]]:
    return {tuple(row) for row in registry.find_ccds(**query)}  # type: ignore[misc]


def _url(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_cone_and_point_searches_of_every_size_class_equal_brute_force(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    polygons = _footprints(rng, 400)
    registry.ingest_manifest(write_manifest(tmp_path / "m", survey_spec(polygons)))
    with psycopg.connect(_url(database_url)) as connection:
        levels = {row[0] for row in connection.execute(
            "SELECT DISTINCT skyreg_htm_level FROM (SELECT CASE WHEN centre_pix < 16 THEN 0 "
            "ELSE floor(log(4, centre_pix / 8))::int END AS skyreg_htm_level FROM ccd) l")}
        assert connection.execute("SELECT count(*) FROM ccd WHERE centre_pix IS NULL"
                                  ).fetchone() == (0,)
    assert UNBOUNDED_LEVEL in levels and len(levels) >= 8
    for query in _queries(rng, polygons, 150):
        truth = _oracle(polygons, query)
        assert _keys(registry, query) == truth, query
        # With extra columns: the exact ids by centre pixel, then the rows by id.
        rows = registry.find_ccds(**query, columns=["band", "footprint_ra"])
        assert {(r.instrument, r.visit, r.detector) for r in rows} == truth, query
        assert [str(band) for band in rows["band"]] == [
            "gr"[(int(visit) - 1000) % 2] for visit in rows["visit"]]
        assert all(len(ra) in (3, 4) for ra in rows["footprint_ra"])


def test_a_new_size_class_written_meanwhile_is_found(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    """The levels a registry searches are remembered per connection; CCDs of a size class it
    has not seen, written by another process since, are found all the same."""
    small = [box(150.0 + 0.01 * i, 2.0, 0.05) for i in range(10)]
    registry.ingest_manifest(write_manifest(tmp_path / "a", survey_spec(small)))
    query = {"cone": (150.05, 2.0, 0.5)}
    assert len(_keys(registry, query)) == 10
    spec = survey_spec([box(150.0, 2.0, 3.0 + 0.1 * i) for i in range(10)])
    for row in (*spec.visits, *spec.ccds):
        row["visit"] += 1
    with Registry.connect(database_url) as writer:
        writer.ingest_manifest(write_manifest(tmp_path / "b", spec))
    assert len(_keys(registry, query)) == 20
    assert len(_keys(registry, {"point": (152.5, 2.0)})) == 10


def test_ccds_without_centre_pixels_or_caps_are_still_found(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    polygons = _footprints(rng, 120)
    registry.ingest_manifest(write_manifest(tmp_path / "m", survey_spec(polygons)))
    queries = _queries(rng, polygons, 40)
    truth = [_oracle(polygons, query) for query in queries]
    with psycopg.connect(_url(database_url)) as connection:
        connection.execute("UPDATE ccd SET centre_pix = NULL WHERE ccd_id % 3 = 0")
        connection.execute("UPDATE ccd SET cap_x = NULL, cap_y = NULL, cap_z = NULL "
                           "WHERE ccd_id % 3 = 1")
    assert [_keys(registry, query) for query in queries] == truth


def test_the_migration_fills_the_centre_pixels_as_ingest_does(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    polygons = _footprints(rng, 60)
    registry.ingest_manifest(write_manifest(tmp_path / "m", survey_spec(polygons)))
    registry.close()
    url = _url(database_url)
    read = "SELECT ccd_id, centre_pix FROM ccd ORDER BY ccd_id"
    with psycopg.connect(url) as connection:
        stored = connection.execute(read).fetchall()
        # A CCD without caps (another program's) keeps no centre pixel through the upgrade.
        connection.execute("UPDATE ccd SET cap_outer_cos = NULL WHERE ccd_id = %s",
                           (stored[0][0],))
    _alembic(database_url, command.downgrade, "0016")
    with psycopg.connect(url) as connection:
        assert connection.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'ccd' "
            "AND column_name = 'centre_pix'").fetchone() == (0,)
    _alembic(database_url, command.upgrade, "head")
    with psycopg.connect(url) as connection:
        after = connection.execute(read).fetchall()
    assert after == [(stored[0][0], None), *stored[1:]]
    with Registry.connect(database_url) as again:
        for query in _queries(rng, polygons, 30):
            assert _keys(again, query) == _oracle(polygons, query), query


@pytest.mark.parametrize("radius", [0.0, 0.2])
def test_a_cone_reads_one_index_entry_per_candidate(
        registry: Registry, database_url: str, tmp_path: Path, radius: float) -> None:
    """The plan: an index-only scan of ix_ccd_centre_pix, no pixel rows, no table visit.

    The table is small, so sequential and bitmap scans are turned off: the planner then
    shows an *index-only* scan only if the index holds every column the statement reads."""
    polygons = [box(150.0 + 0.2 * (i % 7), 2.0 + 0.2 * (i // 7), 0.114) for i in range(49)]
    registry.ingest_manifest(write_manifest(tmp_path / "m", survey_spec(polygons)))
    centre = vector(150.6, 2.6)
    sql = compiled(centre_statements.centre_candidate_columns, CcdFilters())
    params = {**cone_params(centre, math.radians(radius)),
              **range_params(centre, math.radians(radius), (11,))}
    with psycopg.connect(_url(database_url), autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) ccd")
        connection.execute("SET enable_seqscan = off")
        connection.execute("SET enable_bitmapscan = off")
        plan = "\n".join(row[0] for row in connection.execute(
            "EXPLAIN (ANALYZE, COSTS OFF) " + sql, params))
    assert "Index Only Scan using ix_ccd_centre_pix" in plan
    assert "ccd_pixel" not in plan and "Index Scan" not in plan, plan


def test_a_centre_pixel_that_is_none_of_skyregs_is_refused_not_missed(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    polygons = [box(150.0 + 0.01 * i, 2.0, 0.05) for i in range(10)]
    registry.ingest_manifest(write_manifest(tmp_path / "m", survey_spec(polygons)))
    assert len(_keys(registry, {"cone": (150.05, 2.0, 0.5)})) == 10
    with psycopg.connect(_url(database_url)) as connection:
        # HTM level 20 (no size class's), as another program might write it.
        connection.execute("UPDATE ccd SET centre_pix = %s WHERE ccd_id = "
                           "(SELECT min(ccd_id) FROM ccd)",
                           (int(htm_indices([150.0], [2.0], 20)[0]),))
    with pytest.raises(DatabaseError, match="not a centre pixel"):
        registry.find_ccds(cone=(150.05, 2.0, 0.5))
    with psycopg.connect(_url(database_url)) as connection:
        connection.execute("UPDATE ccd SET centre_pix = NULL WHERE centre_pix > %s",
                           (16 * 4**14,))
    assert len(_keys(registry, {"cone": (150.05, 2.0, 0.5)})) == 10
