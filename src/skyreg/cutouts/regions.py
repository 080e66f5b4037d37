"""Cutout regions: DALI/SODA shape strings, sphgeom regions and pixel masks.

A region selects the pixels whose *centres* it contains, tested exactly with sphgeom; a stamp
of a region is the bounding rectangle of those pixels (plus the mask saying which of its
pixels are selected). The shapes the SODA ``POS`` parameter takes (DALI 1.1, ICRS degrees):

* ``CIRCLE ra dec radius``;
* ``POLYGON ra1 dec1 ra2 dec2 ra3 dec3 ...`` -- at least three vertices, edges are great
  circles; sphgeom needs it convex, so a concave polygon is refused with a message saying so;
* ``RANGE ra_min ra_max dec_min dec_max`` -- a longitude/latitude box; ``-Inf``/``+Inf`` stand
  for the whole range, and ``ra_min > ra_max`` wraps through RA 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import Angle, Box, Circle, ConvexPolygon, LonLat, NormalizedAngle, Region

from skyreg.cutouts.errors import RegionError
from skyreg.geometry.polygons import GeometryError, polygon_from_vertices, unit_vectors
from skyreg.geometry.query_regions import unit_vector

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Points per great circle / parallel when a region's outline is sampled.
OUTLINE_SAMPLES = 256


@dataclass(frozen=True, eq=False)
class PixelMask:
    """Pixels chosen in a coadd's own pixel frame: the frame of ``tract`` of ``skymap``.

    ``mask[j, i]`` selects tract pixel ``(x0 + i, y0 + j)`` (0-based, pixel centres on
    integers), so one mask can span patch boundaries; with ``patch`` given, ``x0``/``y0`` are
    counted from that patch's outer box origin instead (the pixel indices of its coadd file).
    """

    skymap: str
    tract: int
    mask: BoolArray
    x0: int = 0
    y0: int = 0
    patch: int | None = None
    _checked: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        mask = np.asarray(self.mask)
        if mask.ndim != 2 or mask.size == 0:
            raise RegionError(f"pixel mask: expected a non-empty 2-D array, got shape "
                              f"{mask.shape}")
        if mask.dtype != np.bool_:
            if not np.issubdtype(mask.dtype, np.integer):
                raise RegionError(f"pixel mask: expected booleans, got {mask.dtype}")
            mask = mask != 0
        object.__setattr__(self, "mask", mask)
        for name in ("x0", "y0", "tract"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise RegionError(f"pixel mask: {name} must be an integer, got {value!r}")
        if not mask.any():
            raise RegionError("pixel mask: selects no pixel")


def parse_region(value: Any, what: str = "region") -> Region:
    """A sphgeom region from a DALI shape string or a sphgeom Region (validated)."""
    if isinstance(value, Region):
        if isinstance(value, ConvexPolygon | Circle | Box):
            if value.isEmpty():
                raise RegionError(f"{what}: the region is empty")
            return value
        raise RegionError(f"{what}: use a ConvexPolygon, Circle or Box, not a "
                          f"{type(value).__name__}")
    if not isinstance(value, str):
        raise RegionError(f"{what}: expected 'CIRCLE ...', 'POLYGON ...', 'RANGE ...' or a "
                          f"sphgeom region, got {type(value).__name__}")
    words = value.split()
    if not words:
        raise RegionError(f"{what}: empty shape")
    shape, numbers = words[0].upper(), words[1:]
    if shape == "CIRCLE":
        return _circle(_numbers(numbers, what, shape), what)
    if shape == "POLYGON":
        return _polygon(_numbers(numbers, what, shape), what)
    if shape == "RANGE":
        return _range(_numbers(numbers, what, shape, infinite=True), what)
    raise RegionError(f"{what}: unknown shape {words[0]!r} (use CIRCLE, POLYGON or RANGE)")


def _numbers(words: list[str], what: str, shape: str, infinite: bool = False) -> list[float]:
    values = []
    for word in words:
        try:
            number = float(word)
        except ValueError:
            raise RegionError(f"{what}: {shape}: {word!r} is not a number") from None
        if math.isnan(number) or (math.isinf(number) and not infinite):
            raise RegionError(f"{what}: {shape}: {word!r} is not a finite number")
        values.append(number)
    return values


def _check_dec(dec: float, what: str, shape: str) -> None:
    if not -90.0 <= dec <= 90.0:
        raise RegionError(f"{what}: {shape}: dec {dec} is outside [-90, 90]")


def _circle(values: list[float], what: str) -> Circle:
    if len(values) != 3:
        raise RegionError(f"{what}: CIRCLE takes 3 numbers (ra dec radius), got {len(values)}")
    ra, dec, radius = values
    _check_dec(dec, what, "CIRCLE")
    if not 0.0 < radius <= 180.0:
        raise RegionError(f"{what}: CIRCLE: radius {radius} is outside (0, 180] degrees")
    return Circle(unit_vector(ra % 360.0, dec), Angle.fromDegrees(radius))


def _polygon(values: list[float], what: str) -> ConvexPolygon:
    if len(values) % 2 or len(values) < 6:
        raise RegionError(f"{what}: POLYGON takes at least 3 (ra, dec) pairs, got "
                          f"{len(values)} numbers")
    ra, dec = values[0::2], values[1::2]
    for d in dec:
        _check_dec(d, what, "POLYGON")
    try:
        return polygon_from_vertices([r % 360.0 for r in ra], dec)
    except GeometryError as err:
        raise RegionError(f"{what}: POLYGON: {err}") from None


def _range(values: list[float], what: str) -> Box:
    if len(values) != 4:
        raise RegionError(f"{what}: RANGE takes 4 numbers (ra_min ra_max dec_min dec_max), "
                          f"got {len(values)}")
    ra_min, ra_max, dec_min, dec_max = values
    dec_min, dec_max = max(dec_min, -90.0), min(dec_max, 90.0)
    if dec_min > dec_max:
        raise RegionError(f"{what}: RANGE: dec_min {values[2]} is above dec_max {values[3]}")
    for d in (dec_min, dec_max):
        _check_dec(d, what, "RANGE")
    if math.isinf(ra_min) or math.isinf(ra_max) or ra_max - ra_min >= 360.0:
        lon = (0.0, 360.0)
    else:
        lon = (ra_min % 360.0, ra_max % 360.0)
        if lon[0] == lon[1] and ra_min != ra_max:
            lon = (0.0, 360.0)
    if lon == (0.0, 360.0):
        return Box(LonLat.fromDegrees(0.0, dec_min), LonLat.fromDegrees(360.0, dec_max))
    box = Box.fromDegrees(lon[0], dec_min, lon[1], dec_max)
    if box.isEmpty():
        raise RegionError(f"{what}: RANGE selects nothing")
    return box


def contains(region: Region, ra: npt.ArrayLike, dec: npt.ArrayLike) -> BoolArray:
    """Which positions (degrees) the region contains, exactly (sphgeom), vectorised."""
    xyz = unit_vectors(ra, dec)
    shape = xyz.shape[:-1]
    flat = xyz.reshape(-1, 3)
    if flat.shape[0] == 0:
        return np.zeros(shape, dtype=bool)
    inside = np.asarray(region.contains(flat[:, 0].copy(), flat[:, 1].copy(),
                                        flat[:, 2].copy()), dtype=bool)
    return inside.reshape(shape)


def outline(region: Region, samples: int = OUTLINE_SAMPLES) -> tuple[FloatArray, FloatArray]:
    """Points (RA, Dec in degrees) along the region's boundary, for pixel bounding boxes.

    Polygon edges are great circles, which a TAN projection maps to straight lines, so
    vertices suffice there; the points along them cost little and cover distorted WCSs too.
    """
    if isinstance(region, ConvexPolygon):
        vertices = np.array([[v.x(), v.y(), v.z()] for v in region.getVertices()])
        t = np.linspace(0.0, 1.0, max(2, samples // len(vertices)), endpoint=False)
        a, b = vertices, np.roll(vertices, -1, axis=0)
        points = a[:, None, :] * (1.0 - t)[None, :, None] + b[:, None, :] * t[None, :, None]
        return _radec(points.reshape(-1, 3))
    if isinstance(region, Circle):
        centre = region.getCenter()
        c = np.array([centre.x(), centre.y(), centre.z()])
        helper = np.array([0.0, 0.0, 1.0]) if abs(c[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        east = np.cross(helper, c)
        east /= np.linalg.norm(east)
        north = np.cross(c, east)
        radius = region.getOpeningAngle().asRadians()
        phi = np.linspace(0.0, 2.0 * np.pi, samples, endpoint=False)
        points = (np.cos(radius) * c[None, :] + np.sin(radius) * (
            np.cos(phi)[:, None] * east[None, :] + np.sin(phi)[:, None] * north[None, :]))
        return _radec(points)
    if isinstance(region, Box):
        lon, lat = region.getLon(), region.getLat()
        lon_a = lon.getA().asDegrees()
        width = lon.getSize().asDegrees() if not lon.isFull() else 360.0
        lat_a, lat_b = lat.getA().asDegrees(), lat.getB().asDegrees()
        ra = lon_a + np.linspace(0.0, width, samples)
        dec = np.linspace(lat_a, lat_b, samples)
        ring_ra = np.concatenate([ra, np.full(samples, lon_a + width), ra[::-1],
                                  np.full(samples, lon_a)])
        ring_dec = np.concatenate([np.full(samples, lat_a), dec, np.full(samples, lat_b),
                                   dec[::-1]])
        return np.mod(ring_ra, 360.0), ring_dec
    raise RegionError(f"region: no outline for a {type(region).__name__}")


def _radec(xyz: FloatArray) -> tuple[FloatArray, FloatArray]:
    ra = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360.0
    dec = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    return np.where(ra >= 360.0, 0.0, ra), dec


def bounding_circle(region: Region) -> Circle:
    """A circle containing the region (sphgeom's own bound)."""
    return region.getBoundingCircle()


def centre_of(region: Region) -> tuple[float, float]:
    """RA/Dec (degrees) of the centre of the region's bounding circle."""
    centre = LonLat(region.getBoundingCircle().getCenter())
    ra = NormalizedAngle(centre.getLon()).asDegrees()
    return ra % 360.0, centre.getLat().asDegrees()
