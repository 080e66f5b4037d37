"""The bulk cone and point tests decide exactly what sphgeom decides, also on the boundary.

Every decided answer of :func:`classify_circle` and :func:`classify_point` must be sphgeom's,
and :meth:`QueryRegion.matching` (decided answers plus sphgeom for the rest) must equal
sphgeom's answer for every footprint. Polygons are placed where sphgeom's tolerances matter:
vertices at the circle's radius give or take a few ulps, edges tangent to the circle, circles
of radius 0, tiny and huge ones, at RA 0/360 and the poles.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from lsst.sphgeom import Angle, Circle, ConvexPolygon, LonLat, UnitVector3d

from skyreg.geometry.batch_overlap import DISJOINT, OVERLAPS, UNDECIDED
from skyreg.geometry.circle_overlap import classify_circle
from skyreg.geometry.encoded_polygons import EncodedPolygons
from skyreg.geometry.point_match import classify_point
from skyreg.geometry.query_regions import QueryRegion


def _unit(ra: float, dec: float) -> np.ndarray:
    a, d = math.radians(ra), math.radians(dec)
    return np.array([math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d)])


def _frame(ra: float, dec: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, east and north unit vectors at (ra, dec): well formed at the poles too."""
    centre = _unit(ra, dec)
    east = np.array([-math.sin(math.radians(ra)), math.cos(math.radians(ra)), 0.0])
    return centre, east, np.cross(centre, east)


def _at(ra: float, dec: float, distance: float, bearing: float) -> UnitVector3d:
    """The point ``distance`` degrees from (ra, dec) in direction ``bearing`` (radians)."""
    centre, east, north = _frame(ra, dec)
    t = math.radians(distance)
    v = math.cos(t) * centre + math.sin(t) * (math.cos(bearing) * east
                                                + math.sin(bearing) * north)
    return UnitVector3d(*v)


def _quad(ra: float, dec: float, distance: float, bearing: float, size: float, turn: float
          ) -> ConvexPolygon:
    """A quadrilateral of ``size`` degrees centred ``distance`` degrees from (ra, dec)."""
    centre = _at(ra, dec, distance, bearing)
    point = LonLat(centre)
    c_ra, c_dec = point.getLon().asDegrees(), point.getLat().asDegrees()
    corners = [_at(c_ra, c_dec, size * math.sqrt(0.5), turn + k * math.pi / 2)
               for k in range(4)]
    return ConvexPolygon(corners)


def _circle(ra: float, dec: float, radius: float) -> Circle:
    return Circle(UnitVector3d(LonLat.fromDegrees(ra, dec)), Angle.fromDegrees(radius))


def _vertices(polygons: list[ConvexPolygon]) -> np.ndarray:
    return np.array([[(v.x(), v.y(), v.z()) for v in p.getVertices()] for p in polygons])


def _check_circle(polygons: list[ConvexPolygon], circle: Circle) -> np.ndarray:
    """Decided answers and the complete answer against sphgeom; returns the codes."""
    truth = np.array([bool(p.overlaps(circle)) for p in polygons])
    codes = np.full(len(polygons), UNDECIDED, dtype=np.int8)
    counts = np.array([len(p.getVertices()) for p in polygons])
    for k in set(counts.tolist()):
        rows = np.flatnonzero(counts == k)
        codes[rows] = classify_circle(_vertices([polygons[i] for i in rows]), circle)
    decided = codes != UNDECIDED
    assert np.array_equal(codes[decided] == OVERLAPS, truth[decided])
    query = QueryRegion("cone", circle)
    footprints = EncodedPolygons.from_blobs([p.encode() for p in polygons])
    assert np.array_equal(query.matching(footprints), truth)
    return codes


centres = st.tuples(
    st.one_of(st.floats(0, 360, exclude_max=True), st.sampled_from([0.0, 359.9999999, 1e-9])),
    st.one_of(st.floats(-90, 90), st.sampled_from([90.0, -90.0, 89.99999, -89.9, 0.0])),
)
radii = st.one_of(st.sampled_from([0.0, 1e-9, 1 / 3600, 0.2, 59.9, 60.0, 90.0, 179.9, 180.0]),
                  st.floats(0.0, 2.0), st.floats(0.0, 180.0))


@settings(max_examples=200, deadline=None)
@given(centre=centres, radius=radii, seed=st.integers(0, 2**32 - 1),
       size=st.one_of(st.floats(1 / 3600, 0.5), st.floats(0.5, 30.0)))
def test_random_quads_around_a_circle_equal_sphgeom(centre: tuple[float, float],
                                                     radius: float, seed: int,
                                                     size: float) -> None:
    ra, dec = centre
    rng = np.random.default_rng(seed)
    polygons = []
    for _ in range(40):
        # Centres spread over the circle's boundary region: inside, across, outside.
        distance = max(0.0, radius + float(rng.uniform(-1.5, 1.5)) * size)
        polygons.append(_quad(ra, dec, min(distance, 179.0), float(rng.uniform(0, 2 * math.pi)),
                              size, float(rng.uniform(0, math.pi))))
    _check_circle(polygons, _circle(ra, dec, radius))


def _tangent_quad(ra: float, dec: float, distance: float, bearing: float, half: float,
                  depth: float) -> ConvexPolygon:
    """A quad with one edge on the great circle tangent, at ``distance`` degrees from
    (ra, dec) in direction ``bearing``, to the circle of that radius; ``half`` (radians) is
    half the edge's length, ``depth`` (radians) how far the quad extends away from the
    circle."""
    centre, east, north = _frame(ra, dec)
    away = math.cos(bearing) * east + math.sin(bearing) * north
    rho = math.radians(distance)
    touch = math.cos(rho) * centre + math.sin(rho) * away
    along = np.cross(centre, away)
    ends = [math.cos(s) * touch + math.sin(s) * along for s in (-half, half)]
    outward = -math.sin(rho) * centre + math.cos(rho) * away  # perpendicular to touch
    outer = [e + depth * outward for e in ends]
    return ConvexPolygon([UnitVector3d(*v) for v in (*ends, *outer)])


@settings(max_examples=150, deadline=None)
@given(centre=centres, radius=st.one_of(st.floats(1e-7, 1.0), st.floats(1.0, 70.0)),
       ulps=st.integers(-6, 6), shift=st.sampled_from([0.0, 1e-15, -1e-15, 1e-12, -1e-12,
                                                       1e-9, -1e-9]),
       seed=st.integers(0, 2**32 - 1))
def test_vertices_and_edges_on_the_boundary_equal_sphgeom(centre: tuple[float, float],
                                                          radius: float, ulps: int,
                                                          shift: float, seed: int) -> None:
    """Vertices a few ulps from the circle, and edges tangent to it (touching, a hair in,
    a hair out): sphgeom's tolerances decide these, and so they must go to sphgeom."""
    ra, dec = centre
    circle = _circle(ra, dec, radius)
    rng = np.random.default_rng(seed)
    step = math.ulp(radius) * ulps
    polygons = []
    for _ in range(10):
        bearing = float(rng.uniform(0, 2 * math.pi))
        size = radius * float(rng.uniform(0.05, 0.5))
        # A triangle with one vertex (about) on the circle, the others farther out.
        tip = _at(ra, dec, radius + step, bearing)
        spread = 0.5 * size / radius
        far = [_at(ra, dec, radius + size, bearing + s * spread) for s in (-1.0, 1.0)]
        polygons.append(ConvexPolygon([tip, *far]))
        # An edge tangent to the circle (or a hair off), the quad outside it.
        half = math.radians(size) * float(rng.uniform(0.2, 2.0))
        polygons.append(_tangent_quad(ra, dec, radius + step + math.degrees(shift), bearing,
                                      half, math.radians(size)))
    _check_circle(polygons, circle)


def test_typical_cone_candidates_are_decided_without_sphgeom() -> None:
    """CCD-sized candidates of a 0.2 degree cone: all but a handful decided in bulk."""
    rng = np.random.default_rng(7)
    for ra, dec in ((10.0, 5.0), (0.0, -30.0), (359.95, 60.0), (123.0, 89.9)):
        polygons = [_quad(ra, dec, float(rng.uniform(0, 0.5)), float(rng.uniform(0, 6.3)),
                          0.22, float(rng.uniform(0, 3))) for _ in range(2000)]
        codes = _check_circle(polygons, _circle(ra, dec, 0.2))
        assert (codes == UNDECIDED).sum() <= 4
        assert (codes == DISJOINT).sum() > 100 and (codes == OVERLAPS).sum() > 100


def test_circles_sphgeom_treats_specially_are_left_to_it() -> None:
    polygons = [_quad(20.0, 10.0, d, 1.0, 0.3, 0.2) for d in (0.0, 0.5, 5.0, 120.0)]
    centre = UnitVector3d(LonLat.fromDegrees(20.0, 10.0))
    for circle in (Circle.empty(), Circle.full(), Circle(centre, Angle.fromDegrees(180.0))):
        codes = _check_circle(polygons, circle)
        assert (codes == UNDECIDED).all()
    # Zero radius: a point-like circle is decided where the polygon is clearly away from it.
    codes = _check_circle(polygons, Circle(centre))
    assert (codes[1:] == DISJOINT).all()


def test_a_polygon_around_the_circle_contains_it() -> None:
    big = _quad(200.0, -40.0, 0.0, 0.0, 5.0, 0.1)
    codes = _check_circle([big], _circle(200.0, -40.0, 0.5))
    assert codes.tolist() == [OVERLAPS]


def test_unnormalised_vertices_are_left_to_sphgeom() -> None:
    polygon = _quad(50.0, 0.0, 1.0, 0.0, 0.3, 0.0)
    vertices = _vertices([polygon]) * (1 + 1e-9)
    assert classify_circle(vertices, _circle(50.0, 0.0, 0.5)).tolist() == [UNDECIDED]


@settings(max_examples=120, deadline=None)
@given(centre=centres, size=st.one_of(st.floats(1 / 3600, 1.0), st.floats(1.0, 40.0)),
       seed=st.integers(0, 2**32 - 1))
def test_point_containment_equals_sphgeom(centre: tuple[float, float], size: float,
                                          seed: int) -> None:
    """Points inside, outside, on vertices and on edges of quads around them."""
    ra, dec = centre
    rng = np.random.default_rng(seed)
    polygons = [_quad(ra, dec, float(rng.uniform(0, 1.2)) * size,
                      float(rng.uniform(0, 2 * math.pi)), size, float(rng.uniform(0, 3)))
                for _ in range(30)]
    vertex = polygons[0].getVertices()[0]
    edge = UnitVector3d(polygons[1].getVertices()[0] + polygons[1].getVertices()[1])
    for point in (UnitVector3d(LonLat.fromDegrees(ra, dec)), vertex, edge):
        truth = np.array([bool(p.contains(point)) for p in polygons])
        codes = classify_point(_vertices(polygons), point)  # quads only
        decided = codes != UNDECIDED
        assert np.array_equal(codes[decided] == OVERLAPS, truth[decided])
        query = QueryRegion("point", Circle(point), point=point)
        footprints = EncodedPolygons.from_blobs([p.encode() for p in polygons])
        assert np.array_equal(query.matching(footprints), truth)


def test_mixed_vertex_counts_and_other_encodings() -> None:
    """Footprints of several vertex counts are grouped; a non-polygon encoding is in no group
    (and so is decided by sphgeom, which refuses it as a polygon)."""
    quads = [_quad(30.0, 30.0, d, 0.5, 0.3, 0.0) for d in (0.0, 0.25, 1.0)]
    triangle = ConvexPolygon([_at(30.0, 30.0, 0.1, a) for a in (0.0, 2.1, 4.2)])
    hexagon = ConvexPolygon([_at(30.0, 30.0, 3.0, k * math.pi / 3) for k in range(6)])
    polygons = [quads[0], triangle, quads[1], hexagon, quads[2]]
    footprints = EncodedPolygons.from_blobs([p.encode() for p in polygons])
    grouped = {len(vertices[0]): rows.tolist() for rows, vertices in footprints.groups()}
    assert grouped == {4: [0, 2, 4], 3: [1], 6: [3]}
    assert footprints.blobs() == [p.encode() for p in polygons]
    circle = _circle(30.0, 30.0, 0.5)
    query = QueryRegion("cone", circle)
    assert query.matching(footprints).tolist() == [bool(p.overlaps(circle)) for p in polygons]
    rows = [(i, p.encode()) for i, p in enumerate(polygons)] * 4
    assert query.keep_matching(rows) == [row for row in rows if polygons[row[0]].overlaps(circle)]
    other = EncodedPolygons.from_blobs([quads[0].encode(), circle.encode()])
    assert [rows.tolist() for rows, _ in other.groups()] == [[0]]


@settings(max_examples=80, deadline=None)
@given(centre=centres, size=st.floats(1 / 3600, 5.0), seed=st.integers(0, 2**32 - 1),
       radius=st.sampled_from([0.0, 1e-13, 1e-10, 1e-7]))
def test_circles_centred_on_vertices_and_edges_equal_sphgeom(centre: tuple[float, float],
                                                             size: float, seed: int,
                                                             radius: float) -> None:
    """Centre exactly on a vertex or (within rounding) on an edge of the footprints."""
    ra, dec = centre
    rng = np.random.default_rng(seed)
    polygons = [_quad(ra, dec, float(rng.uniform(0, 2)) * size,
                      float(rng.uniform(0, 2 * math.pi)), size, float(rng.uniform(0, 3)))
                for _ in range(20)]
    corners = polygons[0].getVertices()
    for point in (corners[0], UnitVector3d(corners[1] + corners[2])):
        _check_circle(polygons, Circle(point, Angle.fromDegrees(radius)))
