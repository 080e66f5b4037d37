"""The plain-SQL surface (migration 0002) answers exactly like the Python API and sphgeom.

* The SQL predicates are compared with lsst.sphgeom on random polygons and circles (RA 0/360,
  poles, 1 arcsec to 90 degrees) and on touching cases where only exact arithmetic decides.
* The SQL HTM cover must contain sphgeom's ``HtmPixelization.envelope`` of the same region.
* Every entry point equals ``Registry.find_ccds/find_patches/find_tracts`` on random regions.
* EXPLAIN of every entry point shows no sequential scan of a large table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsst.sphgeom import (
    Angle,
    Circle,
    ConvexPolygon,
    HtmPixelization,
    LonLat,
    UnitVector3d,
)

from hull_shapes import hull_like_footprints
from manifest_builder import Polygon, box, survey_spec, write_manifest
from skyreg import Registry
from skyreg.db.engine import make_engine
from skyreg.db.migrate import alembic_config

ARCSEC = 1.0 / 3600.0


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def vector(ra: float, dec: float) -> UnitVector3d:
    return UnitVector3d(LonLat.fromDegrees(ra, dec))


def sph_polygon(poly: Polygon) -> ConvexPolygon:
    return ConvexPolygon([vector(ra, dec) for ra, dec in zip(*poly, strict=True)])


def flat(polygon: ConvexPolygon) -> list[float]:
    return [c for v in polygon.getVertices() for c in (v.x(), v.y(), v.z())]


# -- a registry with footprints all over the sky ------------------------------------------------


def _survey() -> tuple[list[Polygon], list[Polygon], list[list[Polygon]]]:
    rng = np.random.default_rng(7)
    ccds: list[Polygon] = []
    for _ in range(1500):
        ra, dec = rng.uniform(0, 360), math.degrees(math.asin(rng.uniform(-1, 1)))
        ccds.append(box(ra, dec, 10 ** rng.uniform(-3.5, 0.3), rng.uniform(0, 90)))
    for ra in (359.95, 0.0, 0.05):  # straddling RA 0/360
        ccds += [box(ra, d, 0.1, 10.0) for d in (-30, 0, 30)]
    ccds += [box(ra, 89.9, 0.15, ra) for ra in range(0, 360, 20)]  # crowding the north pole
    ccds += [box(0, 90, 0.2), box(0, -90, 0.3)]  # containing a pole
    ccds += [box(10.0, 10.0, ARCSEC), box(10.0, 10.0, 0.5 * ARCSEC)]  # tiny
    # As pipelines write them: hulls with collinear runs, repeats, ulps, RA 360.
    extra = np.random.default_rng(8)
    # Diamonds with vertices at RA exactly 0 (edges off the meridian and the equator, where
    # the SQL's flushing of components below 1e-100 would decide tangencies: see docs/sql.md).
    ccds += hull_like_footprints(extra, 12, [([0.0, 0.3, 0.0, 359.7], [d - 0.3, d, d + 0.3, d])
                                             for d in (-40.0, 10.0, 40.0)]
                                 + [box(*extra.uniform(0, 80, 2), 0.3, 20.0) for _ in range(8)])
    tracts, patches = [], []
    for t, (ra, dec, half) in enumerate([(0.0, 0.0, 2.0), (120.0, -45.0, 1.0),
                                          (200.0, 88.5, 1.5), (300.0, 20.0, 10.0)]):
        tracts.append(box(ra, dec, half))
        step = 2 * half / 4
        patches.append([box(ra + (i - 1.5) * step / math.cos(math.radians(dec)),
                            dec + (j - 1.5) * step, step / 1.8)
                        for i in range(4) for j in range(4)] if abs(dec) < 80 else
                       [box(ra, dec, half / 2), box(ra + 20, dec, half / 3)])
        del t
    # Many more small tracts, so that the planner sees tables worth indexing.
    for t in range(400):
        ra, dec = 30.0 + 0.6 * (t // 2), -60.0 + (t % 60) * 2.0
        tracts.append(box(ra, dec, 0.25))
        patches.append([box(ra - 0.2 + 0.04 * p, dec, 0.03) for p in range(10)])
    return ccds, tracts, patches


MAIN_TRACTS = 4  # tracts 0-3 hold the interesting geometry; the others are ballast


@pytest.fixture(scope="module")
def loaded(database_factory: Callable[[], str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, str]]:
    ccds, tracts, patches = _survey()
    root = write_manifest(tmp_path_factory.mktemp("surface") / "m",
                          survey_spec(ccds, per_visit=50, tract_polygons=tracts,
                                      patch_polygons=patches))
    url = database_factory()
    with Registry.connect(url) as registry:
        registry.ingest_manifest(root)
        yield registry, libpq_url(url)


@pytest.fixture(scope="module")
def conn(loaded: tuple[Registry, str]) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(loaded[1], autocommit=True) as connection:
        yield connection


# -- geometry predicates against sphgeom ----------------------------------------------------


ras = st.floats(0.0, 359.999, allow_nan=False)
decs = st.floats(-90.0, 90.0, allow_nan=False)
halves = st.sampled_from([ARCSEC, 1e-3, 0.05, 0.2, 1.0, 5.0, 30.0, 60.0])
angles = st.floats(0.0, 90.0)


@st.composite
def boxes(draw: st.DrawFn) -> Polygon:
    return box(draw(ras), draw(decs), draw(halves), draw(angles))


def _near(poly: Polygon, draw: st.DrawFn) -> tuple[float, float]:
    """A point near the polygon, so that random pairs often overlap or nearly touch."""
    k = draw(st.integers(0, len(poly[0]) - 1))
    jitter = draw(st.sampled_from([0.0, 1e-12, 1e-6, 1e-3, 0.1, 1.0]))
    return ((poly[0][k] + draw(st.floats(-1, 1)) * jitter) % 360.0,
            max(-90.0, min(90.0, poly[1][k] + draw(st.floats(-1, 1)) * jitter)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(data=st.data())
def test_predicates_equal_sphgeom(conn: psycopg.Connection[Any], data: st.DataObject) -> None:
    a = data.draw(boxes())
    near = _near(a, data.draw)
    b = box(*near, data.draw(halves), data.draw(angles))
    radius = data.draw(st.sampled_from([0.0, ARCSEC, 0.01, 0.5, 10.0, 90.0, 179.0]))
    row = conn.execute(
        "SELECT skyreg_polygons_overlap(skyreg_polygon(%(ara)s, %(adec)s),"
        "                               skyreg_polygon(%(bra)s, %(bdec)s)),"
        "       skyreg_polygon_overlaps_circle(skyreg_polygon(%(ara)s, %(adec)s),"
        "                                      skyreg_circle(%(cra)s, %(cdec)s, %(r)s)),"
        "       skyreg_polygon_contains(skyreg_polygon(%(ara)s, %(adec)s), v[1], v[2], v[3]),"
        "       skyreg_polygon(%(ara)s, %(adec)s)"
        " FROM skyreg_unit_vector(%(cra)s, %(cdec)s) AS v",
        {"ara": a[0], "adec": a[1], "bra": b[0], "bdec": b[1], "cra": near[0],
         "cdec": near[1], "r": radius}).fetchone()
    assert row is not None
    pa, pb = sph_polygon(a), sph_polygon(b)
    assert row[0] == pa.overlaps(pb)
    assert row[1] == pa.overlaps(Circle(vector(*near), Angle.fromDegrees(radius)))
    assert row[2] == pa.contains(vector(*near))
    assert row[3] == flat(pa)  # bit-identical vertices, counter-clockwise


def test_touching_cases_are_decided_exactly(conn: psycopg.Connection[Any]) -> None:
    """Shared edges and vertices, points on vertices: only exact signs get these right."""
    for ra, dec, half in [(0.0, 0.0, 1.0), (359.999, 45.0, 0.01), (12.0, -89.0, 0.5)]:
        a = box(ra, dec, half)
        # b shares a's edge from vertex 1 to vertex 2 and lies on the other side of it.
        v = [vector(r, d) for r, d in zip(*a, strict=True)]
        mirrored = [(a[0][1], a[1][1]), (a[0][2], a[1][2])]
        far = box(ra + 3 * half / max(math.cos(math.radians(dec)), 0.05), dec, half)
        b = ([mirrored[0][0], far[0][1], far[0][2], mirrored[1][0]],
             [mirrored[0][1], far[1][1], far[1][2], mirrored[1][1]])
        pa = ConvexPolygon(v)
        pb = sph_polygon(b)
        for (pra, pdec) in [(a[0][0], a[1][0]), (a[0][2], a[1][2])]:
            got = conn.execute("SELECT skyreg_polygon_contains(skyreg_polygon(%s, %s), "
                               "v[1], v[2], v[3]) FROM skyreg_unit_vector(%s, %s) AS v",
                               (a[0], a[1], pra, pdec)).fetchone()
            assert got is not None and got[0] is pa.contains(vector(pra, pdec)) is True
        got = conn.execute("SELECT skyreg_polygons_overlap(skyreg_polygon(%s, %s), "
                           "skyreg_polygon(%s, %s))", (a[0], a[1], b[0], b[1])).fetchone()
        assert got is not None and got[0] == pa.overlaps(pb)
    # Exact orientation of nearly coplanar vectors, against a numeric reference.
    got = conn.execute("SELECT skyreg_orientation(1, 0, 0, 0, 1, 0, 1e-300, 1e-300, 1e-300),"
                       " skyreg_orientation(1, 0, 0, 1, 1e-17, 0, 1, 2e-17, 0),"
                       " skyreg_orientation(1, 0, 0, 0, 1, 0, 1, 1, 0)").fetchone()
    assert got == (1, 0, 0)


def test_stored_vertices_are_bit_identical(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT skyreg_vertices(ra, dec), region FROM ccd "
        "UNION ALL SELECT skyreg_vertices(outer_ra, outer_dec), outer_region FROM patch "
        "UNION ALL SELECT skyreg_vertices(inner_ra, inner_dec), inner_region FROM tract"
    ).fetchall()
    assert len(rows) > 1500
    for vertices, region in rows:
        assert vertices == flat(ConvexPolygon.decode(bytes(region)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ra=ras, dec=decs, size=st.sampled_from([ARCSEC, 0.01, 0.2, 2.0, 20.0, 90.0]),
       angle=angles, level=st.sampled_from([7, 9, 10]))
def test_htm_cover_contains_sphgeom_envelope(conn: psycopg.Connection[Any], ra: float,
                                             dec: float, size: float, angle: float,
                                             level: int) -> None:
    pixelization = HtmPixelization(level)
    poly = box(ra, dec, min(size, 60.0), angle)
    circle = Circle(vector(ra, dec), Angle.fromDegrees(size))
    for kind, arg, region in [
        ("polygon", "skyreg_polygon(%s, %s)", sph_polygon(poly)),
        ("circle", "skyreg_circle(%s, %s, %s)", circle),
    ]:
        params = poly if kind == "polygon" else (ra, dec, size)
        ranges = conn.execute(f"SELECT lo, hi FROM skyreg_htm_cover('{kind}', {arg}, {level})",
                              (*params, )).fetchall()
        mine = np.zeros(0, dtype=np.int64)
        if ranges:
            mine = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
        theirs = np.concatenate([np.arange(lo, hi) for lo, hi in pixelization.envelope(region)])
        assert np.isin(theirs, mine).all(), (kind, sorted(set(theirs) - set(mine))[:5])
        if size <= 2.0:  # tight for CCD- to tract-sized regions
            assert len(mine) <= 3 * len(theirs) + 12, (kind, len(mine), len(theirs))


@pytest.mark.parametrize(("ra", "dec"), [(2.2250738585072014e-308, 90.0),
                                       (2.225073858507203e-309, 90.0), (5e-324, -90.0),
                                       (359.99999999999994, 90.0), (1e-250, 0.0)])
def test_unit_vectors_near_ra_zero_at_the_poles(conn: psycopg.Connection[Any], ra: float,
                                                dec: float) -> None:
    """Tiny longitudes at the poles: PostgreSQL's underflow error was raised where C rounds
    to zero; the vectors equal sphgeom's after the flush of components below 1e-100."""
    got = conn.execute("SELECT skyreg_unit_vector(%s, %s)", (ra, dec)).fetchone()
    assert got is not None
    expected = vector(ra, dec)
    assert got[0] == [0.0 if abs(c) < 1e-100 else c
                      for c in (expected.x(), expected.y(), expected.z())]
    circle = conn.execute("SELECT skyreg_circle(%s, %s, 0.001)", (ra, dec)).fetchone()
    assert circle is not None and circle[0][:3] == got[0]
    assert conn.execute("SELECT count(*) FROM skyreg_htm_cover('circle', "
                        "skyreg_circle(%s, %s, 0.001), 7)", (ra, dec)).fetchone() != (0,)


def test_htm_index_of_a_point(conn: psycopg.Connection[Any]) -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        ra, dec = float(rng.uniform(0, 360)), float(rng.uniform(-90, 90))
        got = conn.execute("SELECT skyreg_htm_index(%s, %s, 9)", (ra, dec)).fetchone()
        assert got is not None and got[0] == HtmPixelization(9).index(vector(ra, dec))


# -- entry points against the Python API ---------------------------------------------------------


def _rows(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> set[tuple[Any, ...]]:
    return {tuple(row) for row in conn.execute(sql, params).fetchall()}


def _api(results: Any) -> set[tuple[Any, ...]]:
    return {tuple(item) for item in results}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ra=ras, dec=decs, radius=st.sampled_from([0.0, ARCSEC, 0.05, 0.5, 3.0, 30.0]),
       angle=angles)
def test_region_searches_equal_api(loaded: tuple[Registry, str], conn: psycopg.Connection[Any],
                                   ra: float, dec: float, radius: float, angle: float) -> None:
    registry = loaded[0]
    assert _rows(conn, "SELECT * FROM skyreg_ccds_in_cone(%s, %s, %s)", (ra, dec, radius)) \
        == _api(registry.find_ccds(cone=(ra, dec, radius)))
    assert _rows(conn, "SELECT * FROM skyreg_ccds_containing_point(%s, %s)", (ra, dec)) \
        == _api(registry.find_ccds(point=(ra, dec)))
    poly = box(ra, dec, max(radius, ARCSEC), angle)
    assert _rows(conn, "SELECT * FROM skyreg_ccds_in_polygon(%s, %s)", poly) \
        == _api(registry.find_ccds(polygon=list(zip(*poly, strict=True))))


def test_stored_footprint_searches_equal_api(loaded: tuple[Registry, str],
                                             conn: psycopg.Connection[Any]) -> None:
    registry = loaded[0]
    tiles = conn.execute("SELECT skymap, tract, patch FROM patch WHERE tract < %s "
                         "ORDER BY 1, 2, 3", (MAIN_TRACTS,)).fetchall()
    for use_inner in (False, True):
        for skymap, tract, patch in tiles:
            assert _rows(conn, "SELECT * FROM skyreg_ccds_overlapping_patch(%s, %s, %s, %s)",
                         (skymap, tract, patch, use_inner)) \
                == _api(registry.find_ccds(patch=(skymap, tract, patch), inner=use_inner))
        for skymap, tract in {(s, t) for s, t, _ in tiles}:
            assert _rows(conn, "SELECT * FROM skyreg_ccds_overlapping_tract(%s, %s, %s)",
                         (skymap, tract, use_inner)) \
                == _api(registry.find_ccds(tract=(skymap, tract), inner=use_inner))
            pairs = _rows(conn, "SELECT * FROM skyreg_ccd_patch_pairs(%s, %s, %s)",
                          (skymap, tract, use_inner))
            expected = {(p, *ccd) for s, t, p in tiles if (s, t) == (skymap, tract)
                        for ccd in _api(registry.find_ccds(patch=(s, t, p), inner=use_inner))}
            assert pairs == expected
    ccds = conn.execute("SELECT instrument, visit, detector FROM ccd ORDER BY ccd_id").fetchall()
    for key in ccds[::7]:
        for use_inner in (False, True):
            assert _rows(conn, "SELECT * FROM skyreg_patches_overlapping_ccd(%s, %s, %s, "
                               "NULL, %s)", (*key, use_inner)) \
                == _api(registry.find_patches(ccd=tuple(key), inner=use_inner))
            assert _rows(conn, "SELECT * FROM skyreg_tracts_overlapping_ccd(%s, %s, %s, "
                               "'testmap', %s)", (*key, use_inner)) \
                == _api(registry.find_tracts(ccd=tuple(key), skymap="testmap",
                                             inner=use_inner))


def test_unknown_keys_are_errors(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.NoDataFound, match=r"patch .* is not in the registry"):
        conn.execute("SELECT * FROM skyreg_ccds_overlapping_patch('testmap', 0, 999)")
    with pytest.raises(psycopg.errors.NoDataFound, match="CCD"):
        conn.execute("SELECT * FROM skyreg_patches_overlapping_ccd('TestCam', 1, 2)")


# -- plans ----------------------------------------------------------------------------------------

ENTRY_POINTS = [
    "SELECT * FROM skyreg_ccds_in_cone(0.0, 0.0, 1.0)",
    "SELECT * FROM skyreg_ccds_containing_point(0.0, 0.0)",
    "SELECT * FROM skyreg_ccds_in_polygon('{359.5,0.5,0.5}', '{-0.5,-0.5,0.5}')",
    "SELECT * FROM skyreg_ccds_overlapping_patch('testmap', 0, 5)",
    "SELECT * FROM skyreg_ccds_overlapping_tract('testmap', 0)",
    "SELECT * FROM skyreg_patches_overlapping_ccd('TestCam', 1000, 3)",
    "SELECT * FROM skyreg_tracts_overlapping_ccd('TestCam', 1000, 3)",
    "SELECT * FROM skyreg_ccd_patch_pairs('testmap', 0)",
    "SELECT * FROM skyreg_ccd_patch_pairs('testmap', 0, true)",
]
LARGE = re.compile(r"Seq Scan on (ccd|ccd_pixel|patch|patch_pixel|tract|tract_pixel|visit)\b")


@pytest.mark.parametrize("statement", ENTRY_POINTS)
def test_entry_points_use_the_indexes(conn: psycopg.Connection[Any], statement: str) -> None:
    plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + statement).fetchall())
    assert not LARGE.search(plan), plan
    # The pixel index (for cones and points: the CCDs' centre pixels), or for stored
    # footprints the overlap relations, is in the (inlined) plan.
    assert "_pixel" in plan or "_overlap" in plan or "ix_ccd_centre_pix" in plan, plan


# -- pixelization and migration -------------------------------------------------------------------


def test_healpix_registry_gets_a_clear_error(database_factory: Callable[..., str]) -> None:
    database_url = database_factory(pixelization="healpix8")
    with Registry.connect(database_url, pixelization="healpix8"):
        pass
    with psycopg.connect(libpq_url(database_url)) as connection, \
            pytest.raises(psycopg.errors.FeatureNotSupported, match="HTM-indexed registries"):
        connection.execute("SELECT * FROM skyreg_ccds_in_polygon('{0,1,1}', '{0,0,1}')")
    with psycopg.connect(libpq_url(database_url)) as connection, \
            pytest.raises(psycopg.errors.FeatureNotSupported, match="HTM-indexed registries"):
        connection.execute("SELECT * FROM skyreg_ccds_containing_point(1, 1)")
    # The cone search reads the CCDs' centre pixels, which are HTM indices whatever the
    # registry's pixelization: it works here too.
    with psycopg.connect(libpq_url(database_url)) as connection:
        assert connection.execute("SELECT * FROM skyreg_ccds_in_cone(1, 1, 1)").fetchall() == []


def test_downgrade_drops_the_functions(empty_database_url: str) -> None:
    database_url = empty_database_url
    engine = make_engine(database_url)
    count = "SELECT count(*) FROM pg_proc WHERE proname LIKE 'skyreg\\_%'"
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
        with psycopg.connect(libpq_url(database_url)) as connection:
            assert connection.execute(count).fetchone() > (20,)  # type: ignore[operator]
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0001")
        with psycopg.connect(libpq_url(database_url)) as connection:
            assert connection.execute(count).fetchone() == (0,)
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
    finally:
        engine.dispose()
