"""Polygon validation and encoding, query-region inputs, pixel range merging."""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle as AstropyAngle
from astropy.coordinates import SkyCoord
from hypothesis import given, settings
from hypothesis import strategies as st
from lsst.sphgeom import Angle, Box, ConvexPolygon, LonLat, UnitVector3d

from skyreg.geometry import GeometryError, make_query_region, polygon_from_vertices
from skyreg.geometry.pixelization import PixelScheme, _merge_smallest_gaps
from skyreg.geometry.polygons import encode_polygons


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
    assert errors[1] is not None and "not strictly convex" in errors[1]  # bow tie
    assert errors[2] is not None and "at least 3" in errors[2]
    assert errors[3] is not None and "not strictly convex" in errors[3]  # a great circle
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
