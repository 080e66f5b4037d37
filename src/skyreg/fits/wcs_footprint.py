"""Sky footprint of an image from its WCS: a small convex polygon that contains every pixel.

Why not just the four corner pixels? With SIP/TPV distortions the image edges are curves on
the sky, so the corner polygon can cut off slivers of the image, and a registry that answers
"which CCDs overlap this region" must never miss one. The polygon built here is proven to
contain the densely sampled image boundary and, through a curvature margin, the boundary
between samples; the image's sky region is enclosed by its boundary because we also check that
the WCS inverts (a folded WCS would break that argument, so it is reported as an error).

Method: sample the boundary of the pixel rectangle (pixel edges included: x in
[0.5, width + 0.5] in FITS 1-based terms), map it with ``all_pix2world`` (all distortions),
project gnomonically around the image centre (great circles become straight lines, so a
straight-edged polygon there is exactly a great-circle polygon on the sky), take the four lines
through consecutive corners, move each outward until every sample is behind it plus a margin
that bounds the curve's bulge between samples, and intersect neighbouring lines.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS, NoConvergence

from skyreg.errors import SkyregError
from skyreg.geometry.polygons import GeometryError, polygon_from_vertices

FloatArray = npt.NDArray[np.float64]

#: Boundary samples per image edge; the curvature margin shrinks with the square of this.
SAMPLES_PER_EDGE = 64
#: Interior grid (per axis) used, with the boundary, to check that the WCS inverts.
INTERIOR_GRID = 5
#: Largest round-trip error, in pixels, accepted for all_world2pix(all_pix2world(p)).
ROUND_TRIP_TOLERANCE = 0.01
#: Sampled points must be closer than this to the centre (cosine of ~84 degrees): the gnomonic
#: projection diverges at 90 degrees, and such an image would not be smaller than a hemisphere.
MIN_COS_FROM_CENTRE = 0.1
#: Factor applied to the estimated bulge of the boundary between two samples.
CURVATURE_SAFETY = 4.0
#: Absolute outward margin in tangent-plane units (radians near the centre): ~0.2 mas.
ABSOLUTE_MARGIN = 1e-9
#: Fallback to the convex hull when the corner quadrilateral is this much larger than the image.
MAX_QUAD_EXCESS = 1.03


class FootprintError(SkyregError, ValueError):
    """The WCS cannot give a trustworthy footprint; the message is one line for reports."""


def footprint_from_wcs(wcs: WCS, width: int, height: int) -> tuple[FloatArray, FloatArray]:
    """RA and Dec (degrees, RA in [0, 360)) of a convex polygon containing the whole image.

    ``width`` and ``height`` are NAXIS1 and NAXIS2. Four vertices unless the distortion is so
    strong that the corner quadrilateral is not convex or not tight, in which case the polygon
    is the margin-expanded convex hull of the boundary samples. Raises :class:`FootprintError`.
    """
    if width < 1 or height < 1:
        raise FootprintError(f"image size {width}x{height} is empty")
    wcs = _celestial_2d(wcs)
    boundary = _boundary_pixels(width, height)
    interior = _interior_pixels(width, height)
    centre_pixel = np.array([[(width + 1) / 2.0, (height + 1) / 2.0]])
    # One transform call for everything: per-call overhead dominates for a few hundred points.
    pixels = np.concatenate([boundary, interior, centre_pixel])
    all_sky = _pix2world(wcs, pixels)
    # Every 4th boundary sample is plenty to catch a fold; the inverse is the costly part.
    check = np.r_[np.arange(0, len(boundary), 4), np.arange(len(boundary), len(pixels))]
    _check_inverts(wcs, pixels[check], all_sky[check])
    sky, centre_sky = all_sky[: len(boundary)], all_sky[-1]
    centre, east, north = _tangent_basis(centre_sky[0], centre_sky[1])
    xyz = _unit(sky[:, 0], sky[:, 1])
    depth = xyz @ centre
    if not np.all(depth > MIN_COS_FROM_CENTRE):
        raise FootprintError("image is too large: it spans (nearly) a hemisphere or more")
    plane = np.stack([xyz @ east / depth, xyz @ north / depth], axis=1)

    margin = _bulge_margin(plane) + ABSOLUTE_MARGIN
    corners = plane[np.arange(4) * SAMPLES_PER_EDGE]
    vertices = _corner_quad(corners, plane, margin)
    if vertices is None:
        vertices = _hull_polygon(plane, margin)

    ra, dec = _deproject(vertices, centre, east, north)
    try:
        polygon_from_vertices(ra.tolist(), dec.tolist())
    except GeometryError as exc:
        raise FootprintError(f"footprint polygon is invalid: {exc}") from None
    return ra, dec


def _celestial_2d(wcs: WCS) -> WCS:
    if not wcs.has_celestial:
        raise FootprintError("no celestial WCS")
    if wcs.naxis != 2:
        wcs = wcs.celestial
        if wcs.naxis != 2:
            raise FootprintError(f"celestial WCS has {wcs.naxis} axes, expected 2")
    return wcs


def _boundary_pixels(width: int, height: int) -> FloatArray:
    """Counter-clockwise samples of the pixel-rectangle boundary, corners at multiples of n."""
    n = SAMPLES_PER_EDGE
    t = np.arange(n) / n
    x0, x1, y0, y1 = 0.5, width + 0.5, 0.5, height + 0.5
    xs = np.concatenate([x0 + t * (x1 - x0), np.full(n, x1), x1 - t * (x1 - x0), np.full(n, x0)])
    ys = np.concatenate([np.full(n, y0), y0 + t * (y1 - y0), np.full(n, y1), y1 - t * (y1 - y0)])
    return np.stack([xs, ys], axis=1)


def _pix2world(wcs: WCS, pixels: FloatArray) -> FloatArray:
    """(N, 2) RA/Dec in degrees, whatever the order of the WCS's celestial axes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            world = np.asarray(wcs.all_pix2world(pixels, 1), dtype=np.float64)
    except Exception as exc:  # wcslib raises several classes for invalid transforms
        raise FootprintError(f"WCS transform failed: {_one_line(exc)}") from None
    if not np.all(np.isfinite(world)):
        raise FootprintError("WCS gives non-finite sky positions inside the image")
    lng, lat = wcs.wcs.lng, wcs.wcs.lat
    sky = np.stack([world[:, lng], world[:, lat]], axis=1)
    if np.any(np.abs(sky[:, 1]) > 90.0):
        raise FootprintError("WCS gives declinations beyond the poles inside the image")
    return sky


def _interior_pixels(width: int, height: int) -> FloatArray:
    g = (np.arange(INTERIOR_GRID) + 0.5) / INTERIOR_GRID
    gx, gy = np.meshgrid(0.5 + g * width, 0.5 + g * height)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def _check_inverts(wcs: WCS, pixels: FloatArray, world_sky: FloatArray) -> None:
    """A folded or non-convergent WCS has no unique inverse; its footprint would be a guess."""
    world = np.empty_like(world_sky)
    world[:, wcs.wcs.lng] = world_sky[:, 0]
    world[:, wcs.wcs.lat] = world_sky[:, 1]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            back = np.asarray(wcs.all_world2pix(world, 1, maxiter=50), dtype=np.float64)
    except NoConvergence:
        raise FootprintError("WCS does not invert: inverse distortion does not converge") from None
    except Exception as exc:
        raise FootprintError(f"WCS does not invert: {_one_line(exc)}") from None
    error = np.hypot(*(back - pixels).T)
    worst = float(np.max(error)) if np.all(np.isfinite(error)) else float("inf")
    if not worst <= ROUND_TRIP_TOLERANCE:
        raise FootprintError(
            f"WCS does not invert: pixel -> sky -> pixel round trip is off by {worst:.3g} pixels"
        )


def _unit(ra_deg: FloatArray, dec_deg: FloatArray) -> FloatArray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    cos_dec = np.cos(dec)
    return np.stack([cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)], axis=-1)


def _tangent_basis(ra_deg: float, dec_deg: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Centre unit vector and the east/north unit vectors of its tangent plane (poles too)."""
    ra, dec = math.radians(ra_deg), math.radians(dec_deg)
    centre = np.array([math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec)])
    east = np.array([-math.sin(ra), math.cos(ra), 0.0])
    north = np.array([-math.sin(dec) * math.cos(ra), -math.sin(dec) * math.sin(ra), math.cos(dec)])
    return centre, east, north


def _bulge_margin(plane: FloatArray) -> float:
    """Bound on how far the boundary curve strays outside the chord between two samples.

    For a smooth curve sampled at step h the deviation from a chord is about h^2 |p''| / 8, and
    the second difference of consecutive samples is about h^2 |p''|. Corners are kinks, so
    second differences are taken within each edge only.
    """
    n = SAMPLES_PER_EDGE
    closed = np.concatenate([plane, plane[:1]])
    worst = 0.0
    for edge in range(4):
        points = closed[edge * n : (edge + 1) * n + 1]
        second = points[:-2] - 2.0 * points[1:-1] + points[2:]
        worst = max(worst, float(np.max(np.hypot(second[:, 0], second[:, 1]))))
    return CURVATURE_SAFETY * worst / 8.0


def _support_line(normal: FloatArray, plane: FloatArray, margin: float) -> tuple[FloatArray, float]:
    """The line with this outward normal that has every sample behind it, plus the margin."""
    unit_normal = normal / np.linalg.norm(normal)
    return unit_normal, float(np.max(plane @ unit_normal)) + margin


def _intersect(
    first: tuple[FloatArray, float], second: tuple[FloatArray, float]
) -> FloatArray | None:
    (a, b), c = first[0].tolist(), first[1]
    (d, e), f = second[0].tolist(), second[1]
    det = a * e - b * d
    if abs(det) < 1e-12:
        return None
    return np.array([(c * e - b * f) / det, (a * f - c * d) / det])


def _signed_area(points: FloatArray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _offset_polygon(ring: FloatArray, plane: FloatArray, margin: float) -> FloatArray | None:
    """Intersect the pushed-out support lines of the edges of a counter-clockwise ring.

    Returns None when the ring's edge normals do not turn strictly counter-clockwise by less
    than half a turn each, i.e. when the lines would not bound a convex polygon in this order.
    """
    edges = np.roll(ring, -1, axis=0) - ring
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)  # outward for a CCW ring
    lines = [_support_line(normal, plane, margin) for normal in normals]
    following = np.roll(normals, -1, axis=0)
    turns = normals[:, 0] * following[:, 1] - normals[:, 1] * following[:, 0]
    if not np.all(turns > 0.0):
        return None
    vertices = []
    for i in range(len(lines)):
        point = _intersect(lines[i - 1], lines[i])
        if point is None:
            return None
        vertices.append(point)
    return np.array(vertices)


def _corner_quad(corners: FloatArray, plane: FloatArray, margin: float) -> FloatArray | None:
    """Four-vertex polygon from the corner directions, or None if not convex or not tight."""
    if _signed_area(corners) < 0.0:
        corners = corners[::-1]
    quad = _offset_polygon(corners, plane, margin)
    if quad is None:
        return None
    # The ordered boundary samples enclose (about) the image's own area.
    image_area = abs(_signed_area(plane))
    if _signed_area(quad) > MAX_QUAD_EXCESS * image_area + 4.0 * margin * _perimeter(quad):
        return None
    return quad


def _perimeter(ring: FloatArray) -> float:
    return float(np.sum(np.hypot(*(np.roll(ring, -1, axis=0) - ring).T)))


def _convex_hull(points: FloatArray) -> FloatArray:
    """Counter-clockwise convex hull (monotone chain), collinear points dropped."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    pts = [tuple(p) for p in points[order].tolist()]

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        chain: list[tuple[float, float]] = []
        for p in seq:
            while len(chain) >= 2:
                (ax, ay), (bx, by) = chain[-2], chain[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0.0:
                    break
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def _hull_polygon(plane: FloatArray, margin: float) -> FloatArray:
    """Fallback for strongly distorted images: the hull's edges pushed out by the margin."""
    hull = _convex_hull(plane)
    if len(hull) < 3:
        raise FootprintError("image maps to a degenerate (zero-area) region of the sky")
    polygon = _offset_polygon(hull, plane, margin)
    if polygon is None:
        raise FootprintError("could not build a convex footprint from the image boundary")
    return polygon


def _deproject(
    vertices: FloatArray, centre: FloatArray, east: FloatArray, north: FloatArray
) -> tuple[FloatArray, FloatArray]:
    xyz = centre[None, :] + vertices[:, :1] * east[None, :] + vertices[:, 1:] * north[None, :]
    xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
    ra = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360.0
    ra = np.where(ra >= 360.0, 0.0, ra)
    dec = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1.0, 1.0)))
    return ra.astype(np.float64), dec.astype(np.float64)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__
