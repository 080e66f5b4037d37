"""Whole-array HTM covers (geometry.htm_cover) against sphgeom's envelope and exact overlap."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from lsst.sphgeom import ConvexPolygon, HtmPixelization, UnitVector3d

from skyreg.geometry.htm_cover import htm_polygon_covers
from skyreg.geometry.htm_index import trixel_vertices
from skyreg.geometry.polygons import unit_vectors

LEVEL = 9


def _quad(ra: float, dec: float, size: float, tilt: float, skew: float) -> np.ndarray:
    """A convex quadrilateral (unit vectors) of about ``size`` degrees around (ra, dec)."""
    centre = unit_vectors(ra, dec)
    east = np.cross([0.0, 0.0, 1.0], centre)
    if np.linalg.norm(east) < 1e-9:
        east = np.array([1.0, 0.0, 0.0])
    east /= np.linalg.norm(east)
    north = np.cross(centre, east)
    half = np.radians(size) / 2
    corners = []
    for k, angle in enumerate(np.radians([45.0, 135.0, 225.0, 315.0]) + tilt):
        stretch = 1.0 + (skew if k % 2 else 0.0)
        offset = half * stretch * (np.cos(angle) * east + np.sin(angle) * north)
        point = centre + offset
        corners.append(point / np.linalg.norm(point))
    return np.array(corners)


def _sphgeom_cover(vertices: np.ndarray) -> tuple[ConvexPolygon, set[int]]:
    polygon = ConvexPolygon([UnitVector3d(*v) for v in vertices.tolist()])
    cover: set[int] = set()
    for low, high in HtmPixelization(LEVEL).envelope(polygon):
        cover.update(range(low, high))
    return polygon, cover


# Centres anywhere, with extra weight on HTM root edges (the equator, RA multiples of 90°),
# RA 0/360 and the poles, where trixel edges and polygon edges meet.
coordinates = st.one_of(
    st.tuples(st.floats(0, 360, exclude_max=True), st.floats(-90, 90)),
    st.tuples(st.sampled_from([0.0, 90.0, 180.0, 270.0, 359.9999999]), st.floats(-90, 90)),
    st.tuples(st.floats(0, 360, exclude_max=True), st.sampled_from([0.0, 89.99, -89.99])),
)
quads = st.builds(lambda c, size, tilt, skew: _quad(c[0], c[1], size, tilt, skew), coordinates,
                  st.floats(1e-4, 3.0), st.floats(0, np.pi / 2), st.floats(0, 0.5))


@settings(max_examples=150, deadline=None)
@given(st.lists(quads, min_size=1, max_size=12), st.booleans())
def test_cover_holds_every_trixel_the_polygon_touches(polygons: list[np.ndarray],
                                                      labelled: bool) -> None:
    vertices = np.stack(polygons)
    # Reversed rows: either orientation is accepted.
    vertices[::2] = vertices[::2, ::-1]
    labels = np.arange(len(polygons)) // 3 if labelled else None
    flat, offsets = htm_polygon_covers(vertices, LEVEL, labels)
    pixelization = HtmPixelization(LEVEL)
    for i, quad in enumerate(vertices):
        polygon, reference = _sphgeom_cover(quad)
        mine = flat[offsets[i]:offsets[i + 1]]
        assert np.all(np.diff(mine) > 0), "sorted, distinct"
        # Each trixel sphgeom lists and this cover does not must truly miss the polygon.
        for trixel in reference - set(mine.tolist()):
            assert not pixelization.triangle(trixel).overlaps(polygon), (i, trixel)
        # And the cover is no looser than sphgeom's, give or take touching trixels.
        assert len(set(mine.tolist()) - reference) <= 2


def test_labels_and_groups_do_not_change_the_answer() -> None:
    rng = np.random.default_rng(5)
    polygons = np.stack([_quad(float(rng.uniform(0, 360)), float(rng.uniform(-89, 89)),
                               float(rng.uniform(0.01, 0.3)), float(rng.uniform(0, 1)), 0.2)
                         for _ in range(400)])
    plain = htm_polygon_covers(polygons, LEVEL)
    for labels in (np.zeros(400, dtype=np.int64), np.arange(400), np.arange(400) // 7):
        flat, offsets = htm_polygon_covers(polygons, LEVEL, labels)
        assert np.array_equal(flat, plain[0]) and np.array_equal(offsets, plain[1])
    for i, quad in enumerate(polygons[:50]):
        assert set(plain[0][plain[1][i]:plain[1][i + 1]].tolist()) == _sphgeom_cover(quad)[1]


def test_empty_input_and_wide_polygons() -> None:
    flat, offsets = htm_polygon_covers(np.empty((0, 4, 3)), LEVEL)
    assert len(flat) == 0 and offsets.tolist() == [0]
    wide = np.stack([_quad(10.0, 20.0, 6.0, 0.3, 0.0), _quad(200.0, -60.0, 0.05, 0.0, 0.0)])
    flat, offsets = htm_polygon_covers(wide, LEVEL)
    for i, quad in enumerate(wide):
        assert set(flat[offsets[i]:offsets[i + 1]].tolist()) == _sphgeom_cover(quad)[1]


@settings(deadline=None)
@given(st.integers(0, 14), st.lists(st.integers(0, 2**40), min_size=1, max_size=50))
def test_trixel_vertices_are_sphgeoms(level: int, seeds: list[int]) -> None:
    first, count = 8 * 4**level, 8 * 4**level
    indices = np.array([first + seed % count for seed in seeds], dtype=np.int64)
    corners = trixel_vertices(indices, level)
    pixelization = HtmPixelization(level)
    for index, triangle in zip(indices.tolist(), corners, strict=True):
        expected = [[v.x(), v.y(), v.z()] for v in pixelization.triangle(index).getVertices()]
        assert np.abs(triangle - np.array(expected)).max() <= 1e-15
