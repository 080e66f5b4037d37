"""Sky shapes of the IVOA protocols (CIRCLE, RANGE, POLYGON) and their exact overlap tests.

CIRCLE and POLYGON become sphgeom regions, so the registry decides them exactly, the same way
as the Python API. RANGE (a longitude/latitude box) has edges of constant latitude, which are
not great circles, and sphgeom answers "don't know" for some polygon/box pairs. A RANGE
search therefore asks the registry for the footprints overlapping the box's bounding circle
and keeps those that overlap the box itself (:func:`polygon_overlaps_box`): sphgeom's answer
where it has one, otherwise vertex/corner containment and edge crossings computed in double
precision (boundaries touching to within ~1e-15 rad may go either way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lsst.sphgeom import (
    Angle,
    AngleInterval,
    Box,
    Circle,
    ConvexPolygon,
    LonLat,
    NormalizedAngleInterval,
    Region,
    UnitVector3d,
)

from skyreg.geometry.polygons import GeometryError, polygon_from_vertices

_SQ_DEG_PER_SR = (180.0 / math.pi) ** 2


@dataclass(frozen=True)
class CircleShape:
    ra: float
    dec: float
    radius: float

    def region(self) -> Circle:
        return Circle(UnitVector3d(LonLat.fromDegrees(self.ra, self.dec)),
                      Angle.fromDegrees(self.radius))

    def area_deg2(self) -> float:
        return 2.0 * math.pi * (1.0 - math.cos(math.radians(self.radius))) * _SQ_DEG_PER_SR


@dataclass(frozen=True)
class PolygonShape:
    ra: tuple[float, ...]
    dec: tuple[float, ...]

    def region(self) -> ConvexPolygon:
        return polygon_from_vertices(list(self.ra), list(self.dec))

    def area_deg2(self) -> float:
        vectors = self.region().getVertices()
        total = 0.0
        first = vectors[0]
        for b, c in zip(vectors[1:-1], vectors[2:], strict=True):  # noqa: RUF007 (fan)
            numerator = first.dot(b.cross(c))
            denominator = 1.0 + first.dot(b) + b.dot(c) + c.dot(first)
            total += 2.0 * math.atan2(abs(numerator), denominator)
        return total * _SQ_DEG_PER_SR


@dataclass(frozen=True)
class RangeShape:
    """A longitude/latitude box; ``ra_min > ra_max`` is a range across RA 0."""

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float

    @property
    def full_ra(self) -> bool:
        return self.ra_max - self.ra_min >= 360.0

    def box(self) -> Box:
        if self.full_ra:
            lon = NormalizedAngleInterval.full()
        else:
            lon = NormalizedAngleInterval.fromDegrees(self.ra_min % 360.0, self.ra_max % 360.0)
        return Box(lon, AngleInterval.fromDegrees(self.dec_min, self.dec_max))

    def region(self) -> Region:
        """A region containing the box (its bounding circle), for the candidate search."""
        return self.box().getBoundingCircle()

    def width_deg(self) -> float:
        if self.full_ra:
            return 360.0
        return (self.ra_max - self.ra_min) % 360.0 if self.ra_max != self.ra_min else 0.0

    def area_deg2(self) -> float:
        height = math.sin(math.radians(self.dec_max)) - math.sin(math.radians(self.dec_min))
        return math.radians(self.width_deg()) * height * _SQ_DEG_PER_SR

    def contains_lonlat(self, ra: float, dec: float) -> bool:
        if not self.dec_min <= dec <= self.dec_max:
            return False
        return self.full_ra or _lon_in(ra, self.ra_min, self.ra_max)


Shape = CircleShape | PolygonShape | RangeShape


def _lon_in(lon: float, lo: float, hi: float) -> bool:
    """Whether ``lon`` is in [lo, hi] going east from lo (all degrees, any wrap)."""
    width = (hi - lo) % 360.0
    return (lon - lo) % 360.0 <= width


def _vector(ra: float, dec: float) -> UnitVector3d:
    return UnitVector3d(LonLat.fromDegrees(ra, dec))


def _lonlat(v: UnitVector3d) -> tuple[float, float]:
    point = LonLat(v)
    return point.getLon().asDegrees(), point.getLat().asDegrees()


def polygon_overlaps_box(polygon: ConvexPolygon, box: RangeShape) -> bool:
    """Whether a convex polygon and a longitude/latitude box share a point."""
    answer = polygon.overlaps(box.box())
    if answer is not None:
        return bool(answer)
    vertices = polygon.getVertices()
    if any(box.contains_lonlat(*_lonlat(v)) for v in vertices):
        return True
    corners = []
    if not box.full_ra:
        corners = [(ra, dec) for ra in (box.ra_min, box.ra_max)
                   for dec in (box.dec_min, box.dec_max)]
    if any(polygon.contains(_vector(ra, dec)) for ra, dec in corners):
        return True
    for pole in (90.0, -90.0):
        if box.dec_min <= pole <= box.dec_max and polygon.contains(_vector(0.0, pole)):
            return True
    edges = list(zip(vertices, [*vertices[1:], vertices[0]], strict=True))
    for a, b in edges:
        if not box.full_ra:
            for ra in (box.ra_min, box.ra_max):
                if _arcs_cross(a, b, _vector(ra, box.dec_min), _vector(ra, box.dec_max)):
                    return True
        for dec in (box.dec_min, box.dec_max):
            if -90.0 < dec < 90.0 and _arc_meets_parallel(a, b, dec, box):
                return True
    return False


def _arcs_cross(a: UnitVector3d, b: UnitVector3d, c: UnitVector3d, d: UnitVector3d) -> bool:
    """Whether the great-circle arcs a→b and c→d (each shorter than 180°) meet."""
    n1, n2 = a.cross(b), c.cross(d)
    line = n1.cross(n2)
    if line.getSquaredNorm() == 0.0:
        return False  # same great circle: meeting arcs then share an endpoint, tested before
    for sign in (1.0, -1.0):
        p = line * sign
        if (a.cross(p).dot(n1) >= 0.0 and p.cross(b).dot(n1) >= 0.0
                and c.cross(p).dot(n2) >= 0.0 and p.cross(d).dot(n2) >= 0.0):
            return True
    return False


def _arc_meets_parallel(a: UnitVector3d, b: UnitVector3d, dec: float, box: RangeShape) -> bool:
    """Whether the arc a→b meets the parallel at ``dec`` within the box's RA range."""
    ax, ay, az = a.x(), a.y(), a.z()
    dot = a.dot(b)
    wx, wy, wz = b.x() - dot * ax, b.y() - dot * ay, b.z() - dot * az
    norm = math.sqrt(wx * wx + wy * wy + wz * wz)
    if norm == 0.0:
        return False
    wx, wy, wz = wx / norm, wy / norm, wz / norm
    theta = math.atan2(norm, dot)  # |b - (a.b)a| = sin(angle), a.b = cos(angle)
    target = math.sin(math.radians(dec))
    amplitude = math.hypot(az, wz)
    if amplitude < abs(target) or amplitude == 0.0:
        return False
    phase = math.atan2(wz, az)
    spread = math.acos(max(-1.0, min(1.0, target / amplitude)))
    for t in (phase + spread, phase - spread):
        t %= 2.0 * math.pi
        if t <= theta:
            x = ax * math.cos(t) + wx * math.sin(t)
            y = ay * math.cos(t) + wy * math.sin(t)
            ra = math.degrees(math.atan2(y, x)) % 360.0
            if box.full_ra or _lon_in(ra, box.ra_min, box.ra_max):
                return True
    return False


def shape_from_numbers(kind: str, numbers: list[float], what: str) -> Shape:
    """A shape from the numbers after a CIRCLE/RANGE/POLYGON keyword (degrees).

    Raises :class:`GeometryError` naming ``what`` (the parameter) on anything out of range.
    """
    if kind == "CIRCLE":
        if len(numbers) != 3:
            raise GeometryError(f"{what}: CIRCLE needs 3 numbers (ra dec radius), got "
                                f"{len(numbers)}")
        ra, dec, radius = numbers
        _check_finite(numbers, what)
        _check_dec(dec, what)
        if not 0.0 < radius <= 180.0:
            raise GeometryError(f"{what}: radius {radius} is not in (0, 180] degrees")
        return CircleShape(ra % 360.0, dec, radius)
    if kind == "RANGE":
        if len(numbers) != 4:
            raise GeometryError(f"{what}: RANGE needs 4 numbers (ra1 ra2 dec1 dec2), got "
                                f"{len(numbers)}")
        ra1, ra2, dec1, dec2 = numbers
        if any(math.isnan(v) for v in numbers):
            raise GeometryError(f"{what}: NaN in RANGE")
        dec1, dec2 = max(dec1, -90.0), min(dec2, 90.0)
        for dec in (dec1, dec2):
            _check_dec(dec, what)
        if dec1 > dec2:
            raise GeometryError(f"{what}: RANGE dec1 {dec1} > dec2 {dec2}")
        if math.isinf(ra1) or math.isinf(ra2):
            if not (ra1 == -math.inf and ra2 == math.inf):
                raise GeometryError(f"{what}: an infinite RA range must be -Inf +Inf")
            return RangeShape(0.0, 360.0, dec1, dec2)
        if ra2 - ra1 >= 360.0:
            return RangeShape(0.0, 360.0, dec1, dec2)
        return RangeShape(ra1 % 360.0, ra2 % 360.0, dec1, dec2)
    if kind == "POLYGON":
        if len(numbers) < 6 or len(numbers) % 2:
            raise GeometryError(f"{what}: POLYGON needs at least 3 (ra, dec) pairs, got "
                                f"{len(numbers)} numbers")
        _check_finite(numbers, what)
        ras = tuple(v % 360.0 for v in numbers[0::2])
        decs = tuple(numbers[1::2])
        for dec in decs:
            _check_dec(dec, what)
        shape = PolygonShape(ras, decs)
        try:
            shape.region()
        except GeometryError as err:
            raise GeometryError(f"{what}: {err}") from err
        return shape
    raise GeometryError(f"{what}: unknown shape {kind!r} (CIRCLE, RANGE or POLYGON)")


def _check_finite(numbers: list[float], what: str) -> None:
    if not all(math.isfinite(v) for v in numbers):
        raise GeometryError(f"{what}: coordinates must be finite numbers")


def _check_dec(dec: float, what: str) -> None:
    if not -90.0 <= dec <= 90.0:
        raise GeometryError(f"{what}: dec {dec} is outside [-90, 90]")
