"""The vectorised overlap test answers exactly what sphgeom answers, on awkward geometry too."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

from skyreg.geometry import batch_overlap as bo


def _vector(ra: float, dec: float) -> UnitVector3d:
    return UnitVector3d(LonLat.fromDegrees(ra, dec))


def _offset(ra: float, dec: float, x: float, y: float) -> UnitVector3d:
    """The point ``x`` degrees east and ``y`` north of (ra, dec) on its tangent plane.

    Built from the local east/north frame, so it is well formed at the poles and across
    RA 0/360 alike.
    """
    a, d = math.radians(ra), math.radians(dec)
    centre = np.array([math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d)])
    east = np.array([-math.sin(a), math.cos(a), 0.0])
    north = np.cross(centre, east)
    v = centre + math.tan(math.radians(x)) * east + math.tan(math.radians(y)) * north
    return UnitVector3d(*v)


def _box(ra: float, dec: float, width: float, height: float, turn: float = 0.0
         ) -> ConvexPolygon:
    """A quadrilateral of ``width`` x ``height`` degrees on the tangent plane at (ra, dec)."""
    corners = []
    for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        x, y = dx * width / 2, dy * height / 2
        x, y = (x * math.cos(turn) - y * math.sin(turn), x * math.sin(turn) + y * math.cos(turn))
        corners.append(_offset(ra, dec, x, y))
    return ConvexPolygon(corners)


def _radec(v: UnitVector3d) -> tuple[float, float]:
    point = LonLat(v)
    return point.getLon().asDegrees(), point.getLat().asDegrees()


def _arrays(polygons: list[ConvexPolygon]) -> bo.PolygonArrays:
    return bo.PolygonArrays.from_encoded([p.encode() for p in polygons])


def _check(first: list[ConvexPolygon], second: list[ConvexPolygon]) -> np.ndarray:
    """Compare every pair with sphgeom; return the classification for further checks."""
    ia, ib = (g.ravel() for g in np.meshgrid(np.arange(len(first)), np.arange(len(second)),
                                             indexing="ij"))
    a, b = _arrays(first), _arrays(second)
    truth = np.array([first[i].overlaps(second[j]) for i, j in zip(ia, ib, strict=True)])
    classified = bo.classify_pairs(a, ia, b, ib)
    decided = classified != bo.UNDECIDED
    assert np.array_equal(classified[decided] == bo.OVERLAPS, truth[decided])
    assert np.array_equal(bo.overlaps(a, ia, b, ib), truth)
    # The relation is symmetric, and so is the test.
    assert np.array_equal(bo.overlaps(b, ib, a, ia), truth)
    return classified


centres = st.tuples(
    st.one_of(st.floats(0, 360, exclude_max=True), st.sampled_from([0.0, 359.9999, 0.0001])),
    st.one_of(st.floats(-90, 90), st.sampled_from([90.0, -90.0, 89.9, 0.0])),
)
sizes = st.one_of(st.floats(1 / 3600, 1.0), st.floats(1.0, 60.0))


@settings(max_examples=150, deadline=None)
@given(centre=centres, size=sizes, offsets=st.lists(
    st.tuples(st.floats(-2.5, 2.5), st.floats(-2.5, 2.5), st.floats(0.2, 3.0),
              st.floats(0, math.pi)), min_size=1, max_size=12))
def test_random_pairs_equal_sphgeom(centre: tuple[float, float], size: float,
                                    offsets: list[tuple[float, float, float, float]]) -> None:
    ra, dec = centre
    base = [_box(ra, dec, size, size * 0.7)]
    others = []
    for dx, dy, scale, turn in offsets:
        other_ra, other_dec = _radec(_offset(ra, dec, dx * size, dy * size * 0.5))
        others.append(_box(other_ra, other_dec, size * scale, size * scale * 0.5, turn))
    _check(base + others, others + base)


def _pick(rng: np.random.Generator, size: float = 0.0) -> tuple[float, float]:
    """A random centre: within ``size`` of (0, 0), or in the 4 x 10 degree test field."""
    if size:
        return float(rng.uniform(-size, size)), float(rng.uniform(-size, size))
    return float(rng.uniform(0, 4)), float(rng.uniform(-5, 5))


def test_typical_pairs_are_decided_without_sphgeom() -> None:
    rng = np.random.default_rng(3)
    ccds = [_box(*_pick(rng), 0.2, 0.1, rng.uniform(0, 3)) for _ in range(300)]
    patches = [_box(*_pick(rng), 0.2, 0.2) for _ in range(100)]
    classified = _check(ccds, patches)
    assert (classified != bo.UNDECIDED).all()
    assert (classified == bo.OVERLAPS).sum() > 50  # the test is not about disjoint pairs only


def test_shared_edges_touching_vertices_and_the_poles() -> None:
    # Patches of a grid share edges and corners exactly: those pairs are left to sphgeom.
    grid = []
    for i in range(4):
        for j in range(4):
            corners = [_vector(359.8 + 0.1 * (i + di), 89.7 + 0.05 * (j + dj))
                       for di, dj in ((0, 0), (1, 0), (1, 1), (0, 1))]
            grid.append(ConvexPolygon(corners))
    classified = _check(grid, grid)
    assert (classified == bo.UNDECIDED).any()
    # A polygon around the pole, and a huge one.
    cap = ConvexPolygon([_vector(ra, 89.5) for ra in (0, 90, 180, 270)])
    huge = ConvexPolygon([_vector(ra, -10) for ra in (0, 100, 200, 300)])
    _check([cap, huge], [*grid, cap, huge])


def test_collinear_vertices_and_unnormalised_vectors() -> None:
    vertices = [np.array([v.x(), v.y(), v.z()]) for v in _box(10, 10, 1, 1).getVertices()]
    middle = vertices[0] + vertices[1]
    middle /= np.linalg.norm(middle)
    with_midpoint = [vertices[0], middle, *vertices[1:]]
    polygons = bo.PolygonArrays.from_vertex_lists([np.array(with_midpoint), np.array(vertices)])
    other = _box(10, 9.5, 0.3, 0.3)
    found = bo.overlaps(polygons, np.array([0, 1]), _arrays([other]), np.array([0, 0]))
    assert found.tolist() == [True, True]
    assert polygons.counts.tolist() == [5, 4]
    # Vectors that are not unit length are never decided by the fast test.
    scaled = bo.PolygonArrays.from_vertex_lists([np.array(vertices) * 2])
    assert not scaled.usable[0]
    assert bo.classify_pairs(scaled, np.array([0]), _arrays([other]), np.array([0])).tolist() \
        == [bo.UNDECIDED]


@settings(max_examples=60, deadline=None)
@given(centre=centres, size=sizes, points=st.lists(
    st.tuples(st.floats(-1, 1), st.floats(-1, 1)), min_size=1, max_size=20))
def test_point_containment_equals_sphgeom(centre: tuple[float, float], size: float,
                                          points: list[tuple[float, float]]) -> None:
    ra, dec = centre
    other_ra, other_dec = _radec(_offset(ra, dec, size / 3, 0))
    polygons = [_box(ra, dec, size, size), _box(other_ra, other_dec, size / 2, size, 0.4)]
    arrays = _arrays(polygons)
    # Points on a vertex are contained (on the boundary): include those exactly.
    vertex = polygons[0].getVertices()[0]
    for point in [_offset(ra, dec, dx * size, dy * size * 0.5) for dx, dy in points] + [vertex]:
        got = bo.contain_point(arrays, np.array([0, 1]), point)
        assert got.tolist() == [bool(p.contains(point)) for p in polygons]


def test_empty_input() -> None:
    arrays = _arrays([_box(0, 0, 1, 1)])
    empty = np.empty(0, dtype=np.int64)
    assert bo.overlaps(arrays, empty, arrays, empty).shape == (0,)


@pytest.mark.parametrize("size", [1 / 3600, 0.2, 45.0])
def test_sizes_from_an_arcsecond_to_huge(size: float) -> None:
    rng = np.random.default_rng(int(size * 3600))
    first = [_box(0.0, 0.0, size, size)]
    second = [_box(*_pick(rng, size), size, size / 2, rng.uniform(0, 3))
              for _ in range(200)]
    classified = _check(first, second)
    assert (classified != bo.UNDECIDED).mean() > 0.9
