"""The vectorized HTM index equals sphgeom's, also on trixel edges, the poles and RA 0."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from lsst.sphgeom import HtmPixelization, LonLat, UnitVector3d

from skyreg.geometry.htm_index import htm_indices, htm_indices_of_vectors


def _reference(ra: np.ndarray, dec: np.ndarray, level: int) -> np.ndarray:
    pixelization = HtmPixelization(level)
    return np.array([pixelization.index(UnitVector3d(LonLat.fromDegrees(float(a), float(b))))
                     for a, b in zip(ra, dec, strict=True)], dtype=np.int64)


def test_random_and_special_points() -> None:
    rng = np.random.default_rng(3)
    ra = rng.uniform(0.0, 360.0, 5000)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, 5000)))
    ra[:100], dec[100:200], ra[200:300] = 0.0, 0.0, 90.0
    dec[300:310], dec[310:320], ra[320:330] = 90.0, -90.0, np.nextafter(360.0, 0.0)
    for level in (0, 3, 12, 20):
        assert (htm_indices(ra, dec, level) == _reference(ra, dec, level)).all()


def test_points_on_deep_trixel_edges() -> None:
    """Midpoints of trixel edges lie on the edges of the next level: sphgeom decides them."""
    rng = np.random.default_rng(4)
    pixelization = HtmPixelization(14)
    points = []
    for index in rng.integers(8 * 4**14, 16 * 4**14, 300):
        corners = pixelization.triangle(int(index)).getVertices()
        for a, b in ((0, 1), (1, 2), (2, 0)):
            middle = UnitVector3d(corners[a] + corners[b])
            point = LonLat(middle)
            points.append((point.getLon().asDegrees(), point.getLat().asDegrees()))
    ra, dec = np.array(points).T
    for offset in (0.0, 1e-13, -1e-13, 1e-9):
        assert (htm_indices(ra + offset, dec, 20) == _reference(ra + offset, dec, 20)).all()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 360.0, exclude_max=True), st.floats(-90.0, 90.0)),
                min_size=1, max_size=50))
def test_any_points(points: list[tuple[float, float]]) -> None:
    ra, dec = np.array(points).T
    assert (htm_indices(ra, dec) == _reference(ra, dec, 20)).all()  # sphgeom, point by point
    # Repeated past the size where the numpy descent takes over.
    reps = 600 // len(ra) + 1
    ra, dec = np.tile(ra, reps), np.tile(dec, reps)
    assert len(ra) > 512 and (htm_indices(ra, dec) == _reference(ra, dec, 20)).all()


def test_unit_vectors_on_edges_and_random() -> None:
    """The vector entry point gives sphgeom's index of the vector itself: random vectors,
    trixel-edge midpoints (sphgeom's own vectors) and the axes, past the chunk size too."""
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(70_000, 3))
    vectors /= np.linalg.norm(vectors, axis=1)[:, None]
    pixelization = HtmPixelization(12)
    for row, index in enumerate(rng.integers(8 * 4**12, 16 * 4**12, 200).tolist()):
        corners = pixelization.triangle(int(index)).getVertices()
        middle = UnitVector3d(corners[0] + corners[1])
        vectors[row] = (middle.x(), middle.y(), middle.z())
    vectors[200:206] = np.vstack([np.eye(3), -np.eye(3)])
    for level in (0, 7, 12):
        sphgeom = HtmPixelization(level)
        reference = np.array([sphgeom.index(UnitVector3d(*map(float, v))) for v in vectors])
        assert (htm_indices_of_vectors(vectors, level) == reference).all()
        assert (htm_indices_of_vectors(vectors[:300], level) == reference[:300]).all()
