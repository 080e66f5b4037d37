"""Polygon validation and encoding, query-region inputs, pixel range merging."""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle as AstropyAngle
from astropy.coordinates import Longitude, SkyCoord
from hypothesis import given, settings
from hypothesis import strategies as st
from lsst.sphgeom import Angle, Box, ConvexPolygon, LonLat, UnitVector3d, orientation

from hull_shapes import (
    has_collinear_run,
    lsstcam_corners,
    ra_zero_as_360,
    visit_hull,
    with_collinear_runs,
    with_repeats_and_ulps,
)
from skyreg.geometry import GeometryError, make_query_region, polygon_from_vertices
from skyreg.geometry.hull import hull_vertices
from skyreg.geometry.pixelization import PixelScheme, _merge_smallest_gaps
from skyreg.geometry.polygons import (
    TOLERANCE_RAD,
    check_polygons,
    encode_polygons,
    sphgeom_points,
    unit_vectors,
    wrap_ra,
)


def sphgeom_polygon(ra: list[float], dec: list[float]) -> ConvexPolygon:
    return ConvexPolygon([UnitVector3d(LonLat.fromDegrees(r, d)) for r, d in
                          zip(ra, dec, strict=True)])


@st.composite
def convex_polygons(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    """Points on a small circle at increasing position angles: always strictly convex."""
    ra0 = draw(st.floats(0, 360, exclude_max=True))
    dec0 = draw(st.floats(-89.9, 89.9))
    radius = draw(st.floats(1e-3, 20))
    n = draw(st.integers(3, 9))
    angles = sorted(draw(st.lists(st.floats(0, 2 * math.pi, exclude_max=True), min_size=n,
                                  max_size=n, unique=True)))
    if min(np.diff([*angles, angles[0] + 2 * math.pi])) < 1e-2:
        angles = list(np.linspace(0, 2 * math.pi, n, endpoint=False))
    center = SkyCoord(ra0 * u.deg, dec0 * u.deg)
    points = center.directional_offset_by(np.array(angles) * u.rad, radius * u.deg)
    return [float(v) % 360 for v in points.ra.deg], [float(v) for v in points.dec.deg]


@settings(max_examples=150, deadline=None)
@given(convex_polygons(), st.booleans())
def test_encoding_equals_sphgeom(polygon: tuple[list[float], list[float]], reverse: bool) -> None:
    ra, dec = polygon
    if reverse:  # clockwise input is accepted and means the same polygon
        ra, dec = ra[::-1], dec[::-1]
    ours = polygon_from_vertices(ra, dec)
    theirs = sphgeom_polygon(*polygon)
    assert ours == theirs

    def vertices(polygon: ConvexPolygon) -> set[tuple[float, float, float]]:
        return {(v.x(), v.y(), v.z()) for v in polygon.getVertices()}

    assert vertices(ours) == vertices(theirs)  # bit-identical vertices


def test_invalid_polygons_are_refused() -> None:
    encoded, errors = encode_polygons(
        [[10, 11, 11, 10], [10, 11, 10, 11], [1, 2], [0, 120, 240], [1, 2, 3]],
        [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0], [0, 0, 0], [0, 0]],
    )
    assert encoded[0] is not None and errors[0] is None
    assert errors[1] is not None and "not convex" in errors[1]  # bow tie
    assert errors[2] is not None and "at least 3" in errors[2]
    assert errors[3] is not None and "not convex" in errors[3]  # a great circle
    assert errors[4] is not None and "3 vertices but dec has 2" in errors[4]
    with pytest.raises(GeometryError) as caught:
        polygon_from_vertices([10, 11, float("inf")], [0, 0, 1])
    assert caught.value.field == "ra"


def test_query_regions_accept_astropy() -> None:
    plain = make_query_region(cone=(150.0, 2.0, 0.5))
    coord = make_query_region(cone=(SkyCoord(150 * u.deg, 2 * u.deg), 30 * u.arcmin))
    angle = make_query_region(cone=(AstropyAngle("10h00m00s"), 2.0, AstropyAngle(0.5, u.deg)))
    assert plain is not None and coord is not None and angle is not None
    centers = [r.region.getCenter() for r in (plain, coord, angle)]
    assert all(abs(c.dot(centers[0]) - 1) < 1e-14 for c in centers)
    assert plain.region.getOpeningAngle() == coord.region.getOpeningAngle()
    point = make_query_region(point=SkyCoord(-10 * u.deg, 5 * u.deg))
    assert point is not None and point.point is not None
    assert LonLat(point.point).getLon().asDegrees() == pytest.approx(350)
    with pytest.raises(GeometryError, match="outside"):
        make_query_region(cone=(1, 2, 181))
    with pytest.raises(GeometryError, match="give only one"):
        make_query_region(cone=(1, 2, 1), point=(1, 2))
    with pytest.raises(GeometryError, match="not convertible"):
        make_query_region(cone=(1, 2, 3 * u.m))


def test_merging_pixel_ranges_stays_conservative() -> None:
    spans = [(0, 2), (3, 5), (10, 11), (12, 20), (100, 101)]
    assert _merge_smallest_gaps(spans, 3) == [(0, 5), (10, 20), (100, 101)]
    assert _merge_smallest_gaps(spans, 1) == [(0, 101)]
    assert _merge_smallest_gaps(spans, 9) == spans
    region = make_query_region(cone=(10.0, 80.0, 8.0))
    assert region is not None
    for scheme in (PixelScheme("htm", 9), PixelScheme("healpix", 8)):
        full = set(scheme.pixels(region.region).tolist())
        capped = scheme.ranges(region.region, 16)
        assert len(capped) <= 16
        assert all(any(a <= p < b for a, b in capped) for p in full)


def test_undecidable_regions_are_refused_not_guessed() -> None:
    region = make_query_region(region=Box(LonLat.fromDegrees(10, 20), Angle.fromDegrees(0.1),
                                          Angle.fromDegrees(0.1)))
    assert region is not None
    footprint = polygon_from_vertices([9.5, 10.5, 10.5, 9.5], [19.5, 19.5, 20.5, 20.5])
    answer = footprint.overlaps(region.region)
    if answer is None:
        with pytest.raises(GeometryError, match="cannot decide"):
            region.matches(footprint)
    else:
        assert region.matches(footprint) == answer


def test_tiny_negative_ra_wraps_to_zero() -> None:
    region = make_query_region(polygon=[(-1e-15, 19.8), (10, 19.8), (10, 20.2),
                                        (-1e-15, 20.2)])
    assert region is not None


# -- hull-like polygons: collinear runs, repeats, ulps, RA 360 --------------------------------


def exact_points(ra: list[float], dec: list[float]) -> list[UnitVector3d]:
    """Unit vectors of the vertices as skyreg stores them (RA wrapped), bit for bit."""
    return sphgeom_points(unit_vectors(wrap_ra(ra), dec))


def assert_stored_is_hull_of(encoded: bytes | None, ra: list[float], dec: list[float]) -> None:
    """The stored polygon is the convex hull of the given vertices: its corners are given
    vertices, it contains every given vertex (exact test), and its corners are strictly
    convex (so no redundant vertex was kept)."""
    assert encoded is not None
    stored = ConvexPolygon.decode(encoded)
    given = exact_points(ra, dec)
    corners = stored.getVertices()
    assert {(v.x(), v.y(), v.z()) for v in corners} <= {(v.x(), v.y(), v.z()) for v in given}
    assert all(stored.contains(v) for v in given)
    m = len(corners)
    for k in range(m):
        for j in range(m):
            if j not in (k, (k + 1) % m):
                assert orientation(corners[j], corners[k], corners[(k + 1) % m]) > 0


def assert_stored_vertices_agree(ra: list[float], dec: list[float]) -> None:
    """The vertex lists to store encode to the very polygon stored, and are already final."""
    checked = check_polygons([ra], [dec])
    stored_ra, stored_dec = checked.vertices(0, ra, dec)
    again = check_polygons([stored_ra], [stored_dec])
    assert again.encoded == checked.encoded
    assert not again.stored
    assert all(0.0 <= r < 360.0 for r in stored_ra)


def test_hulls_of_lsstcam_ccd_corners_are_accepted() -> None:
    """Visit regions made as Rubin makes them (sphgeom's hull of the CCD corners, written in
    degrees) keep CCD corners in a row on one great circle; all of them are accepted."""
    rng = np.random.default_rng(8)
    hulls = [visit_hull(float(rng.uniform(0, 360)), float(rng.uniform(-70, 70)),
                        float(rng.uniform(0, 360))) for _ in range(40)]
    assert sum(has_collinear_run(h) for h in hulls) >= 10  # the case at hand, not a lucky draw
    checked = check_polygons([h[0] for h in hulls], [h[1] for h in hulls])
    assert checked.errors == [None] * len(hulls)
    for (ra, dec), encoded in zip(hulls, checked.encoded, strict=True):
        assert_stored_is_hull_of(encoded, ra, dec)
        assert_stored_vertices_agree(ra, dec)
    assert checked.stored  # redundant vertices were dropped somewhere


def test_skyreg_visit_hull_contains_every_ccd_corner_exactly() -> None:
    ra, dec = lsstcam_corners(359.0, -1.0, 30.0)  # straddles RA 0
    hull_ra, hull_dec = hull_vertices(ra, dec)
    checked = check_polygons([hull_ra], [hull_dec])
    assert checked.errors == [None] and not checked.stored  # already in stored form
    assert_stored_is_hull_of(checked.encoded[0], hull_ra, hull_dec)
    stored = ConvexPolygon.decode(checked.encoded[0])  # type: ignore[arg-type]
    assert all(stored.contains(v) for v in exact_points(list(ra.ravel()), list(dec.ravel())))


def test_ra_360_and_beyond_is_wrapped_like_astropy() -> None:
    values = [360.0, -10.25, 720.5, -1e-15, -0.0, 359.99999999999994, 1e6 + 0.5]
    astropy_wrapped = Longitude(np.array(values) * u.deg).deg
    assert wrap_ra(values).tolist() == astropy_wrapped.tolist()
    box_360 = ([359.0, 360.0, 360.0, 359.0], [-1.0, -1.0, 1.0, 1.0])
    checked = check_polygons(*zip(box_360, strict=True))
    assert checked.errors == [None]
    assert checked.vertices(0, *box_360) == ([359.0, 0.0, 0.0, 359.0], box_360[1])
    assert checked.encoded == check_polygons([[359.0, 0.0, 0.0, 359.0]], [box_360[1]]).encoded
    for bad in (float("nan"), float("inf"), -float("inf")):
        _, errors = encode_polygons([[1.0, 2.0, bad]], [[0.0, 0.0, 1.0]])
        assert errors[0] is not None and errors[0].startswith("ra: ")


def test_polygons_with_redundant_vertices_are_stored_without_them() -> None:
    square = ([10.0, 11.0, 11.0, 10.0], [0.0, 0.0, 1.0, 1.0])
    # A repeated vertex, a vertex exactly on an edge (Dec 0 is a great circle), and a copy of
    # a corner one ulp away.
    for ra, dec in (([10.0, 11.0, 11.0, 11.0, 10.0], [0.0, 0.0, 0.0, 1.0, 1.0]),
                    ([10.0, 10.5, 11.0, 11.0, 10.0], [0.0, 0.0, 0.0, 1.0, 1.0]),
                    ([10.0, 11.0, 11.0, 10.0, float(np.nextafter(10.0, 0.0))],
                     [0.0, 0.0, 1.0, 1.0, 1.0])):
        checked = check_polygons([ra], [dec])
        assert checked.errors == [None], (ra, dec)
        assert_stored_is_hull_of(checked.encoded[0], ra, dec)
        assert_stored_vertices_agree(ra, dec)
        stored = ConvexPolygon.decode(checked.encoded[0])  # type: ignore[arg-type]
        assert len(stored.getVertices()) in (4, 5)
    checked = check_polygons([[10.0, 10.5, 11.0, 11.0, 10.0]], [[0.0, 0.0, 0.0, 1.0, 1.0]])
    assert checked.vertices(0, [], []) == square


@pytest.mark.parametrize(("ra", "dec", "words"), [
    # a notch 1e-6 degrees deep: concave, far beyond rounding
    ([10.0, 10.5, 11.0, 11.0, 10.0], [0.0, 1e-6, 0.0, 1.0, 1.0], "concave"),
    ([10.0, 11.0, 10.0, 11.0], [0.0, 0.0, 1.0, 1.0], "self-intersecting"),  # bow tie
    ([10.0, 11.0, 11.0, 10.0] * 2, [0.0, 0.0, 1.0, 1.0] * 2, "self-intersecting"),  # twice round
    ([10.0, 11.0, 10.5, 11.0, 11.0, 10.0], [0.0, 0.0, 0.0, 0.0, 1.0, 1.0],
     "self-intersecting"),  # backs up along an edge
    ([0.0, 90.0, 180.0, 270.0], [0.0, 0.0, 0.0, 0.0], "one great circle"),
    ([0.0, 120.0, 240.0, 0.0], [0.0, 0.0, 0.0, 10.0], "hemisphere"),
    ([0.0, 90.0, 180.0, 270.0, 0.0], [0.0, 0.0, 0.0, 0.0, 90.0], "hemisphere"),
    ([10.0, 11.0, 12.0], [0.0, 0.0, 0.0], "one great circle"),
    ([10.0, 10.0, 10.0, 11.0, 11.0], [0.0, 0.0, 0.0, 0.0, 0.0], "distinct vertices"),
])
def test_concave_tangled_and_huge_polygons_are_still_refused(
        ra: list[float], dec: list[float], words: str) -> None:
    _, errors = encode_polygons([ra], [dec])
    assert errors[0] is not None and words in errors[0], errors[0]
    assert "convex" in errors[0] or "vertices" in errors[0]


def test_a_quarter_sphere_with_a_vertex_mid_edge_is_convex() -> None:
    """RA 0 and 180 on the equator are not exactly antipodal in floating point, so the lune
    between them and the pole is a convex triangle; RA 90 lies on its edge and is dropped."""
    checked = check_polygons([[0.0, 90.0, 180.0, 0.0]], [[0.0, 0.0, 0.0, 90.0]])
    assert checked.errors == [None]
    assert checked.vertices(0, [], []) == ([0.0, 180.0, 0.0], [0.0, 0.0, 90.0])


def test_rounding_sized_concavity_is_accepted_as_the_hull() -> None:
    """A vertex 1e-12 rad inside the hull (far below TOLERANCE_RAD) is rounding, not shape."""
    dec_in = math.degrees(1e-12)
    ra, dec = [10.0, 10.5, 11.0, 11.0, 10.0], [0.0, dec_in, 0.0, 1.0, 1.0]
    checked = check_polygons([ra], [dec])
    assert checked.errors == [None]
    assert checked.vertices(0, ra, dec) == ([10.0, 11.0, 11.0, 10.0], [0.0, 0.0, 1.0, 1.0])
    assert TOLERANCE_RAD > 1e-12


@st.composite
def hull_like_polygons(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    """A convex polygon with points added on its edges (collinear runs, rounding apart),
    repeated vertices, vertices one ulp apart, optionally a vertex at RA exactly 0 written as
    0 or 360, in either direction."""
    ra, dec = draw(convex_polygons())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):  # rotate about the pole: vertex 0 at RA exactly 0
        ra = [float(wrap_ra(r - ra[0])) for r in ra]
    poly = with_collinear_runs((ra, dec), rng, per_edge=draw(st.integers(0, 6)))
    if draw(st.booleans()):
        poly = with_repeats_and_ulps(poly, rng)
    if draw(st.booleans()):
        poly = ra_zero_as_360(poly)
    if draw(st.booleans()):
        poly = (poly[0][::-1], poly[1][::-1])
    return poly


@settings(max_examples=300, deadline=None)
@given(hull_like_polygons())
def test_property_hull_like_polygons_are_stored_as_their_hull(
        polygon: tuple[list[float], list[float]]) -> None:
    ra, dec = polygon
    checked = check_polygons([ra], [dec])
    assert checked.errors == [None], (checked.errors, polygon)
    assert_stored_is_hull_of(checked.encoded[0], ra, dec)
    assert_stored_vertices_agree(ra, dec)
    # The same polygon as a query region is the stored polygon.
    query = make_query_region(polygon=list(zip(ra, dec, strict=True)))
    assert query is not None
    assert query.region == ConvexPolygon.decode(checked.encoded[0])  # type: ignore[arg-type]


def arc_midpoint(ra: list[float], dec: list[float]) -> tuple[float, float]:
    """Midpoint of the great-circle arc between two vertices."""
    a, b = unit_vectors(ra[0], dec[0]), unit_vectors(ra[1], dec[1])
    lonlat = LonLat(UnitVector3d(*map(float, (a + b) / np.linalg.norm(a + b))))
    return lonlat.getLon().asDegrees(), lonlat.getLat().asDegrees()


@settings(max_examples=150, deadline=None)
@given(convex_polygons(), st.integers(0, 2**32 - 1))
def test_property_a_real_notch_is_refused(polygon: tuple[list[float], list[float]],
                                          seed: int) -> None:
    """Pull one vertex of a convex polygon inside the chord of its neighbours: concave."""
    ra, dec = polygon
    k = seed % len(ra)
    if len(ra) < 4:  # a triangle with a vertex pulled in is another triangle: notch an edge
        mid = arc_midpoint(ra[:2], dec[:2])
        ra, dec, k = [ra[0], mid[0], *ra[1:]], [dec[0], mid[1], *dec[1:]], 1
    a = unit_vectors(ra[k - 1], dec[k - 1])
    b = unit_vectors(ra[(k + 1) % len(ra)], dec[(k + 1) % len(ra)])
    mid = (a + b) / np.linalg.norm(a + b)
    others = unit_vectors([r for i, r in enumerate(ra) if i != k],
                          [d for i, d in enumerate(dec) if i != k]).mean(axis=0)
    normal = np.cross(a, b)
    normal *= np.sign(normal @ (others - mid)) / np.linalg.norm(normal)
    # From the chord's midpoint, inwards by a thousandth of the chord: a notch.
    notch = mid + 1e-3 * float(np.linalg.norm(b - a)) * normal
    lonlat = LonLat(UnitVector3d(*map(float, notch)))
    ra[k], dec[k] = lonlat.getLon().asDegrees(), lonlat.getLat().asDegrees()
    _, errors = encode_polygons([ra], [dec])
    assert errors[0] is not None and "not convex" in errors[0], polygon
