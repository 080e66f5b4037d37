"""The prefilters of the SQL searches (revision 0015) never contradict sphgeom.

``skyreg_cap_verdict`` (cone and polygon searches) and ``skyreg_point_verdict`` (point search)
decide a stored footprint in built-in float arithmetic where they can prove the answer, and
return NULL otherwise, for the exact test. A decided answer must be sphgeom's:
``ConvexPolygon.overlaps(Circle)``, ``overlaps(ConvexPolygon)`` and ``contains``. The random
cases put circles through vertices, points on edges, footprints across RA 0/360 and at the
poles, in either vertex order, with radii from 0 to 180 degrees; a survey-like sample checks
that nearly every candidate is decided (so that the exact test stays the exception).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lsst.sphgeom import Angle, Circle, ConvexPolygon, LonLat, NormalizedAngle, UnitVector3d

from manifest_builder import Polygon, box

ARCSEC = 1.0 / 3600.0

#: skyreg_cap_verdict of stored arrays against the cap limits of a cone or of a polygon.
CONE = """
SELECT f.verdict FROM skyreg_cone_cap(skyreg_circle(%(cra)s, %(cdec)s, %(r)s)) AS l,
     skyreg_cap_verdict(%(ra)s, %(dec)s, l[1], l[2], l[3], l[4], l[5], l[6]) AS f
"""
POLYGON = """
SELECT f.verdict FROM skyreg_polygon_cap(skyreg_polygon(%(pra)s, %(pdec)s)) AS l,
     skyreg_cap_verdict(%(ra)s, %(dec)s, l[1], l[2], l[3], l[4], l[5], l[6]) AS f
"""
SIDES = """
SELECT f.verdict FROM skyreg_sides_verdict(
    %(ra)s, %(dec)s, skyreg_polygon_sides(skyreg_polygon(%(pra)s, %(pdec)s))) AS f
"""
POINT = """
SELECT f.verdict FROM skyreg_unit_vector(%(cra)s, %(cdec)s) AS p,
     skyreg_point_verdict(%(ra)s, %(dec)s, p[1], p[2], p[3]) AS f
"""


def vector(ra: float, dec: float) -> UnitVector3d:
    return UnitVector3d(LonLat.fromDegrees(ra, dec))


def sph_polygon(poly: Polygon) -> ConvexPolygon:
    return ConvexPolygon([vector(ra, dec) for ra, dec in zip(*poly, strict=True)])


@pytest.fixture(scope="module")
def conn(database_factory: Any) -> Iterator[psycopg.Connection[Any]]:
    url = database_factory().replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection


def verdict(conn: psycopg.Connection[Any], statement: str, **params: Any) -> bool | None:
    row = conn.execute(statement, params).fetchone()
    assert row is not None
    return None if row[0] is None else bool(row[0])


ras = st.one_of(st.floats(0.0, 360.0, exclude_max=True), st.sampled_from([0.0, 359.9999]))
decs = st.one_of(st.floats(-90.0, 90.0), st.sampled_from([-90.0, 90.0, -89.999, 89.999, 0.0]))
halves = st.sampled_from([ARCSEC, 1e-3, 0.05, 0.11, 0.2, 1.0, 5.0, 30.0, 60.0])
angles = st.floats(0.0, 90.0)
radii = st.sampled_from([0.0, ARCSEC, 0.01, 0.2, 0.5, 10.0, 84.0, 90.0, 179.0, 180.0])


def ngon(ra: float, dec: float, radius: float, n: int, rotation: float) -> Polygon:
    """A regular n-gon of circumradius ``radius`` degrees around (ra, dec)."""
    centre = vector(ra, dec)
    north = UnitVector3d.northFrom(centre)
    east = UnitVector3d(north.cross(centre))
    corners = []
    for k in range(n):
        phi = math.radians(rotation + 360.0 * k / n)
        t = math.tan(math.radians(radius))
        corners.append(LonLat(UnitVector3d(
            centre.x() + t * (math.cos(phi) * east.x() + math.sin(phi) * north.x()),
            centre.y() + t * (math.cos(phi) * east.y() + math.sin(phi) * north.y()),
            centre.z() + t * (math.cos(phi) * east.z() + math.sin(phi) * north.z()))))
    return ([c.getLon().asDegrees() % 360.0 for c in corners],
            [c.getLat().asDegrees() for c in corners])


@st.composite
def footprints(draw: st.DrawFn) -> Polygon:
    """A stored footprint: RA in [0, 360), either vertex order, 3 to 8 vertices."""
    shape = draw(st.integers(0, 5))
    if shape == 0:  # 5 to 8 vertices
        ra, dec = ngon(draw(ras), draw(decs), draw(st.sampled_from([1e-3, 0.2, 5.0])),
                       draw(st.integers(5, 8)), draw(angles))
    else:
        ra, dec = box(draw(ras), draw(decs), draw(halves), draw(angles))
        if shape == 1:  # a triangle (3 of the 4 corners of the box)
            ra, dec = ra[:3], dec[:3]
    if draw(st.booleans()):
        ra, dec = ra[::-1], dec[::-1]
    return ra, dec


@st.composite
def centres(draw: st.DrawFn, poly: Polygon) -> tuple[float, float]:
    """A point near a vertex or an edge of the polygon, or anywhere."""
    k = draw(st.integers(0, len(poly[0]) - 1))
    j = (k + 1) % len(poly[0])
    t = draw(st.sampled_from([0.0, 0.5, draw(st.floats(0, 1))]))
    a, b = vector(poly[0][k], poly[1][k]), vector(poly[0][j], poly[1][j])
    on_edge = LonLat(UnitVector3d(a.x() * (1 - t) + b.x() * t, a.y() * (1 - t) + b.y() * t,
                                  a.z() * (1 - t) + b.z() * t))
    jitter = draw(st.sampled_from([0.0, 1e-12, 1e-7, 1e-3, 0.1, 1.0, 30.0]))
    ra = on_edge.getLon().asDegrees() + draw(st.floats(-1, 1)) * jitter
    dec = on_edge.getLat().asDegrees() + draw(st.floats(-1, 1)) * jitter
    if draw(st.integers(0, 9)) == 0:
        return draw(ras), draw(decs)
    return ra % 360.0, max(-90.0, min(90.0, dec))


def through_a_vertex(poly: Polygon, centre: tuple[float, float], k: int) -> float:
    """The radius (degrees) of the circle around ``centre`` through vertex ``k``."""
    return NormalizedAngle(vector(*centre), vector(poly[0][k % len(poly[0])],
                                                   poly[1][k % len(poly[0])])).asDegrees()


SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(data=st.data())
def test_cone_and_point_verdicts_agree_with_sphgeom(conn: psycopg.Connection[Any],
                                                     data: st.DataObject) -> None:
    poly = data.draw(footprints())
    cra, cdec = data.draw(centres(poly))
    radius = data.draw(radii)
    if data.draw(st.integers(0, 2)) == 0:  # a circle through a vertex, or just missing it
        radius = through_a_vertex(poly, (cra, cdec), data.draw(st.integers(0, 3)))
        radius = max(0.0, radius + data.draw(st.sampled_from([0.0, 1e-13, -1e-13, 1e-10,
                                                                -1e-10, -1e-7, -1e-5])))
    footprint = sph_polygon(poly)
    circle = Circle(vector(cra, cdec), Angle.fromDegrees(radius))
    params = {"ra": poly[0], "dec": poly[1], "cra": cra, "cdec": cdec, "r": radius}
    cone = verdict(conn, CONE, **params)
    assert cone is None or cone == footprint.overlaps(circle)
    point = verdict(conn, POINT, **params)
    assert point is None or point == footprint.contains(vector(cra, cdec))


@SETTINGS
@given(data=st.data())
def test_polygon_verdict_agrees_with_sphgeom(conn: psycopg.Connection[Any],
                                             data: st.DataObject) -> None:
    poly = data.draw(footprints())
    centre = data.draw(centres(poly))
    shape = data.draw(st.integers(0, 3))
    if shape == 0:  # a query polygon sharing a vertex or an edge with the footprint
        k = data.draw(st.integers(0, len(poly[0]) - 1))
        j = (k + 1) % len(poly[0])
        other = ([poly[0][k], poly[0][j], centre[0]], [poly[1][k], poly[1][j], centre[1]])
        if not _convex(conn, other):  # (the centre may be on that edge)
            other = box(*centre, data.draw(halves), data.draw(angles))
    elif shape == 1:  # 5 to 8 vertices: the cap prefilter
        other = ngon(*centre, data.draw(st.sampled_from([1e-3, 0.2, 5.0])),
                     data.draw(st.integers(5, 8)), data.draw(angles))
    else:
        other = box(*centre, data.draw(halves), data.draw(angles))
        if shape == 2:
            other = (other[0][:3], other[1][:3])
    params = {"ra": poly[0], "dec": poly[1], "pra": other[0], "pdec": other[1]}
    expected = sph_polygon(poly).overlaps(sph_polygon(other))
    for statement in (POLYGON, SIDES):
        got = verdict(conn, statement, **params)
        assert got is None or got == expected


def _convex(conn: psycopg.Connection[Any], poly: Polygon) -> bool:
    """Whether skyreg_polygon accepts the polygon (strictly convex in floating point)."""
    try:
        conn.execute("SELECT skyreg_polygon(%s, %s)", poly)
    except psycopg.errors.InvalidParameterValue:
        return False
    return True


@settings(max_examples=60, deadline=None)
@given(ra=st.sampled_from([0.0, 5e-324, 1e-310, 2.2e-308, 1e-200, 1e-81, 1e-79, 359.99999]),
       dec=st.sampled_from([0.0, -5e-324, 1e-310, 1e-200, 89.99999, 90.0, -90.0]),
       cra=st.sampled_from([0.0, 5e-324, 1e-300, 180.0]),
       cdec=st.sampled_from([0.0, 1e-310, 1e-150, 90.0, -90.0]),
       radius=st.sampled_from([0.0, 1e-9, 0.2, 180.0]))
@example(ra=5e-324, dec=1e-310, cra=5e-324, cdec=1e-310, radius=0.0)
def test_tiny_coordinates_raise_no_error(conn: psycopg.Connection[Any], ra: float, dec: float,
                                         cra: float, cdec: float, radius: float) -> None:
    """Coordinates that make C products underflow (an error in PostgreSQL) are decided or left
    undecided, never an error; a decision is still sphgeom's."""
    poly = ([ra, ra + 0.1, ra + 0.1, ra], [dec - 0.1 if dec > -89 else dec,
                                            dec - 0.1 if dec > -89 else dec + 0.1,
                                            dec + 0.1 if dec < 89 else dec - 0.05,
                                            dec + 0.1 if dec < 89 else dec - 0.05])
    if len({(r % 360.0, d) for r, d in zip(*poly, strict=True)}) < 4 or abs(dec) == 90.0:
        poly = ([ra, ra + 0.1, ra + 0.05], [dec - 0.1 if dec > 0 else dec + 0.1] * 2 + [dec])
    footprint = sph_polygon(poly)
    params = {"ra": poly[0], "dec": poly[1], "cra": cra, "cdec": cdec, "r": radius}
    cone = verdict(conn, CONE, **params)
    assert cone is None or cone == footprint.overlaps(
        Circle(vector(cra, cdec), Angle.fromDegrees(radius)))
    point = verdict(conn, POINT, **params)
    assert point is None or point == footprint.contains(vector(cra, cdec))


def test_nearly_every_survey_candidate_is_decided(conn: psycopg.Connection[Any]) -> None:
    """CCD-sized footprints around 0.2 degree cones (and points): the prefilters decide at
    least 95 % of them, every decision sphgeom's; the rest is the exact test's."""
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(600):
        cra, cdec = rng.uniform(0, 360), math.degrees(math.asin(rng.uniform(-0.99, 0.99)))
        step = 0.6 * rng.uniform(-1, 1, 2)
        poly = box((cra + step[0] / math.cos(math.radians(cdec))) % 360.0, cdec + step[1],
                   0.114, rng.uniform(0, 90))
        rows.append((poly, cra, cdec))
    decided = {"cone": 0, "point": 0}
    for poly, cra, cdec in rows:
        footprint = sph_polygon(poly)
        params = {"ra": poly[0], "dec": poly[1], "cra": cra, "cdec": cdec, "r": 0.2}
        cone = verdict(conn, CONE, **params)
        if cone is not None:
            decided["cone"] += 1
            assert cone == footprint.overlaps(Circle(vector(cra, cdec), Angle.fromDegrees(0.2)))
        point = verdict(conn, POINT, **params)
        if point is not None:
            decided["point"] += 1
            assert point == footprint.contains(vector(cra, cdec))
    assert decided["cone"] >= 0.95 * len(rows) and decided["point"] >= 0.95 * len(rows)


def test_nearly_every_polygon_candidate_is_decided(conn: psycopg.Connection[Any]) -> None:
    """CCD-sized footprints around patch-sized quadrilaterals and triangles: the edge
    prefilter decides at least 90 % of them, every decision sphgeom's."""
    rng = np.random.default_rng(4)
    decided = total = 0
    for _ in range(300):
        pra, pdec = rng.uniform(0, 360), math.degrees(math.asin(rng.uniform(-0.99, 0.99)))
        query = box(pra, pdec, rng.uniform(0.05, 0.3), rng.uniform(0, 90))
        if rng.uniform() < 0.3:
            query = (query[0][:3], query[1][:3])
        step = 0.5 * rng.uniform(-1, 1, 2)
        poly = box((pra + step[0] / math.cos(math.radians(pdec))) % 360.0, pdec + step[1],
                   0.114, rng.uniform(0, 90))
        got = verdict(conn, SIDES, ra=poly[0], dec=poly[1], pra=query[0], pdec=query[1])
        total += 1
        if got is not None:
            decided += 1
            assert got == sph_polygon(poly).overlaps(sph_polygon(query))
    assert decided >= 0.9 * total


@pytest.mark.parametrize("half", [ARCSEC, 0.01 * ARCSEC])
@pytest.mark.parametrize("distance", [0.5, 48.5, 89.0])
def test_short_edges_through_a_vertex(conn: psycopg.Connection[Any], half: float,
                                      distance: float) -> None:
    """A tiny footprint on a circle far away (the edge normals are then short, and an edge
    test that took their length from 1 - (a . b)^2 would lose the margin)."""
    poly = box(distance, 0.0, half, 0.0)
    for k in range(4):
        radius = through_a_vertex(poly, (0.0, 0.0), k)
        got = verdict(conn, CONE, ra=poly[0], dec=poly[1], cra=0.0, cdec=0.0, r=radius)
        assert got is None or got == sph_polygon(poly).overlaps(
            Circle(vector(0.0, 0.0), Angle.fromDegrees(radius)))
