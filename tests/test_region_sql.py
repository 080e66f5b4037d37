"""The APDB reads' server-side region test: it keeps every row the exact test keeps (points on
and next to the edges included) and drops what lies clearly outside."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsst.sphgeom import Angle, Box, Circle, ConvexPolygon, LonLat, Region, UnitVector3d

from skyreg.catalogs.apdb_store import inside
from skyreg.catalogs.region_sql import region_conditions


@pytest.fixture(scope="module")
def connection(database_factory: Callable[..., str]) -> Iterator[psycopg.Connection[object]]:
    url = database_factory()
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True
                         ) as driver:
        yield driver


def _kept(connection: psycopg.Connection[object], region: Region, ra: np.ndarray,
          dec: np.ndarray) -> np.ndarray:
    """Which positions the SQL conditions keep, evaluated by the server."""
    where = " AND ".join(f"({c})" for c in region_conditions(region)) or "TRUE"
    rows = connection.execute(
        f'SELECT n FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS t("ra", "dec", '
        f"n) WHERE {where}", (ra.tolist(), dec.tolist())).fetchall()
    kept = np.zeros(len(ra), dtype=bool)
    kept[[int(r[0]) - 1 for r in rows]] = True
    return kept


def _polygon(ra: float, dec: float, half: float, turn: float) -> ConvexPolygon:
    """A quadrilateral of half-size ``half`` degrees around (ra, dec), turned by ``turn``
    radians, laid out on the tangent plane (valid at the poles too)."""
    a, d = np.radians(ra), np.radians(dec)
    centre = np.array([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])
    east = np.array([-np.sin(a), np.cos(a), 0.0])
    north = np.cross(centre, east)
    t = np.tan(np.radians(half))
    c, s = np.cos(turn), np.sin(turn)
    corners = []
    for x, y in ((-t, -t), (t, -t), (t * 1.3, t), (-t, t)):
        v = centre + (c * x - s * y) * east + (s * x + c * y) * north
        v /= np.linalg.norm(v)
        corners.append(UnitVector3d(*v))
    return ConvexPolygon(corners)


def _regions() -> st.SearchStrategy[Region]:
    ra = st.sampled_from([0.0, 359.99, 0.1, 180.0, 90.0])
    dec = st.one_of(st.floats(-2.0, 2.0), st.floats(85.0, 89.99), st.floats(-89.99, -85.0))
    polygons = st.builds(_polygon, ra, dec, st.sampled_from([1e-5, 0.01, 0.1, 2.0, 20.0]),
                         st.floats(0.0, 3.0))
    circles = st.builds(lambda a, d, r: Circle(UnitVector3d(LonLat.fromDegrees(a, d)),
                                               Angle.fromDegrees(r)),
                        ra, dec, st.sampled_from([1e-5, 0.01, 0.2, 5.0, 89.0, 120.0, 179.99]))
    boxes = st.builds(lambda a, d, w, h: Box(LonLat.fromDegrees(a - w, d - h),
                                             LonLat.fromDegrees(a + w, min(d + h, 90.0))),
                      ra, dec, st.sampled_from([1e-5, 0.05, 1.0, 100.0]),
                      st.sampled_from([1e-5, 0.05, 1.0]))
    return st.one_of(polygons, circles, boxes)


def _probes(region: Region, rng: np.random.Generator, *, edges: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
    """Random points around the region, and (``edges``) points on a polygon's edges."""
    circle = region.getBoundingCircle()
    radius = min(circle.getOpeningAngle().asDegrees() * 1.5, 180.0)
    n = 3000
    vectors = rng.normal(size=(n, 3))
    vectors /= np.linalg.norm(vectors, axis=1)[:, None]
    c = np.array([circle.getCenter().x(), circle.getCenter().y(), circle.getCenter().z()])
    # Points in random directions from the centre, at random distances up to 1.5 times the
    # bounding radius: most land near the region's edge.
    t = rng.uniform(0.0, np.radians(radius), n)[:, None]
    towards = vectors - (vectors @ c)[:, None] * c
    towards /= np.linalg.norm(towards, axis=1)[:, None]
    points = np.cos(t) * c + np.sin(t) * towards
    if edges and isinstance(region, ConvexPolygon):
        vertices = [np.array([v.x(), v.y(), v.z()]) for v in region.getVertices()]
        for a, b in zip(vertices, vertices[1:] + vertices[:1], strict=True):
            s = rng.uniform(0.0, 1.0, 200)[:, None]
            edge = (1 - s) * a + s * b
            edge /= np.linalg.norm(edge, axis=1)[:, None]
            points = np.vstack([points, edge, *vertices])
    ra = np.degrees(np.arctan2(points[:, 1], points[:, 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(points[:, 2], -1.0, 1.0)))
    # Also as other programs write them: RA just under 360 or negative.
    ra = np.concatenate([ra, ra - 360.0])
    dec = np.concatenate([dec, dec])
    return ra, dec


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(region=_regions(), seed=st.integers(0, 2**32 - 1))
def test_sql_keeps_everything_the_exact_test_keeps(
        connection: psycopg.Connection[object], region: Region, seed: int) -> None:
    ra, dec = _probes(region, np.random.default_rng(seed))
    exact = inside(region, ra, dec)
    kept = _kept(connection, region, ra, dec)
    assert not (exact & ~kept).any(), (ra[exact & ~kept][:5], dec[exact & ~kept][:5])


def test_sql_drops_what_lies_outside(connection: psycopg.Connection[object]) -> None:
    """The test does cut: a CCD-sized square keeps few of the points around it that it does
    not contain (those within the margin only)."""
    rng = np.random.default_rng(5)
    for region in (_polygon(45.0, 0.0, 0.11, 0.4), _polygon(0.0, 89.0, 0.11, 1.0),
                   Circle(UnitVector3d(LonLat.fromDegrees(359.9, -30.0)),
                          Angle.fromDegrees(0.1)),
                   Box(LonLat.fromDegrees(359.9, 10.0), LonLat.fromDegrees(0.1, 10.2))):
        ra, dec = _probes(region, rng, edges=False)
        exact = inside(region, ra, dec)
        kept = _kept(connection, region, ra, dec)
        assert exact.sum() > 100, region
        assert (kept & ~exact).sum() <= 0.01 * (~exact).sum(), region
