"""Turn what a user asks about (cone, polygon, point, sphgeom region) into one query region.

Inputs may be plain floats in degrees or astropy objects (``SkyCoord``, ``Angle``,
``Quantity``), because pipelines hold either. The result carries the sphgeom region used for the
pixel lookup and the exact predicate used to keep or drop each candidate footprint.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import Angle, Circle, ConvexPolygon, LonLat, Region, UnitVector3d

from skyreg.geometry.batch_overlap import DISJOINT, OVERLAPS, UNDECIDED
from skyreg.geometry.circle_overlap import classify_circle
from skyreg.geometry.encoded_polygons import EncodedPolygons
from skyreg.geometry.point_match import classify_point
from skyreg.geometry.polygons import GeometryError, polygon_from_vertices, wrap_ra

RegionKind = Literal["cone", "polygon", "point", "region"]

BoolArray = npt.NDArray[np.bool_]

#: Below this many candidates, sphgeom one by one is as fast as the vectorised tests.
FEW = 16


@dataclass(frozen=True)
class QueryRegion:
    """A region to search with; ``matches`` is the exact overlap (or containment) test."""

    kind: RegionKind
    region: Region
    point: UnitVector3d | None = None

    def keep_matching(self, rows: list[Any]) -> list[Any]:
        """The rows whose last field, an encoded polygon, matches; the hot loop of queries."""
        if len(rows) < FEW or not self._vectorised:
            return list(itertools.compress(rows, self._each_matches([row[-1] for row in rows])))
        keep = self.matching(EncodedPolygons.from_blobs([row[-1] for row in rows]))
        return list(itertools.compress(rows, keep.tolist()))

    def matching(self, footprints: EncodedPolygons) -> BoolArray:
        """Which encoded footprints match (:meth:`matches`), decided in bulk where proven.

        Point containment and overlap with a circle have vectorised tests whose decided
        answers are proven to be sphgeom's; what they leave open is asked of sphgeom one by
        one, as is every footprint for other regions (polygons among them: there the
        vectorised pair test of :mod:`~skyreg.geometry.batch_overlap` is no faster).
        """
        n = len(footprints)
        if n < FEW or not self._vectorised:
            return np.array(self._each_matches(footprints.blobs()), dtype=bool).reshape(n)
        codes = np.full(n, UNDECIDED, dtype=np.int8)
        for rows, vertices in footprints.groups():
            if self.point is not None:
                codes[rows] = classify_point(vertices, self.point)
            else:
                codes[rows] = classify_circle(vertices, self.region)  # type: ignore[arg-type]
        for i in np.flatnonzero(codes == UNDECIDED).tolist():
            codes[i] = OVERLAPS if self.matches(footprints.polygon(i)) else DISJOINT
        matched: BoolArray = codes == OVERLAPS
        return matched

    @property
    def _vectorised(self) -> bool:
        return self.point is not None or isinstance(self.region, Circle)

    def _each_matches(self, encoded: list[bytes]) -> list[bool]:
        """:meth:`matches` of each encoded footprint, by sphgeom (the plain loop)."""
        decode = ConvexPolygon.decode
        if self.point is not None:
            point = self.point
            return [bool(decode(blob).contains(point)) for blob in encoded]
        region = self.region
        answers = [decode(blob).overlaps(region) for blob in encoded]
        if None in answers:
            polygon = decode(encoded[answers.index(None)])
            self.matches(footprint=polygon)  # type: ignore[arg-type]  # raises
        return answers  # type: ignore[return-value]  # no None left

    def matches(self, footprint: ConvexPolygon) -> bool:
        """True when ``footprint`` overlaps this region (contains it, for a point)."""
        if self.point is not None:
            return bool(footprint.contains(self.point))
        answer = footprint.overlaps(self.region)
        if answer is None:
            # sphgeom answers "don't know" for some region types (Box, Ellipse); guessing
            # would silently drop or invent results.
            raise GeometryError(
                f"region: sphgeom cannot decide overlaps with a {type(self.region).__name__}; "
                "give a ConvexPolygon or Circle", field="region")
        return bool(answer)


def _degrees(value: Any, field: str) -> float:
    """A float in degrees from a number, an astropy Angle/Quantity, or a numpy scalar."""
    if hasattr(value, "unit") and hasattr(value, "to_value"):
        try:
            result = float(value.to_value("deg"))
        except Exception as err:  # astropy raises UnitConversionError and friends
            raise GeometryError(f"{field}: {err}", field=field) from err
    else:
        try:
            result = float(value)
        except (TypeError, ValueError) as err:
            raise GeometryError(f"{field}: expected degrees, got {value!r}", field=field) from err
    if not math.isfinite(result):
        raise GeometryError(f"{field}: must be finite, got {result}", field=field)
    return result


def _lonlat(value: Any, field: str) -> tuple[float, float]:
    """RA/Dec in degrees from a SkyCoord or a (ra, dec) pair; RA is wrapped into [0, 360)."""
    if hasattr(value, "icrs") and hasattr(value, "ra"):
        coord = value.icrs
        ra, dec = _degrees(coord.ra, f"{field}.ra"), _degrees(coord.dec, f"{field}.dec")
    else:
        try:
            ra_value, dec_value = value
        except (TypeError, ValueError) as err:
            raise GeometryError(
                f"{field}: expected (ra, dec) or a SkyCoord, got {value!r}", field=field
            ) from err
        ra, dec = _degrees(ra_value, f"{field}.ra"), _degrees(dec_value, f"{field}.dec")
    if not -90.0 <= dec <= 90.0:
        raise GeometryError(f"{field}: dec {dec} is outside [-90, 90]", field=field)
    return float(wrap_ra(ra)), dec  # as ingest wraps stored vertices


def unit_vector(ra: float, dec: float) -> UnitVector3d:
    """sphgeom unit vector for RA/Dec in degrees."""
    return UnitVector3d(LonLat.fromDegrees(ra, dec))


def _cone(value: Any) -> QueryRegion:
    if not isinstance(value, Sequence) or len(value) not in (2, 3):
        raise GeometryError(
            "cone: expected (ra, dec, radius) or (SkyCoord, radius)", field="cone"
        )
    if len(value) == 2:
        ra, dec = _lonlat(value[0], "cone.center")
        radius_value = value[1]
    else:
        ra, dec = _lonlat((value[0], value[1]), "cone")
        radius_value = value[2]
    radius = _degrees(radius_value, "cone.radius")
    if not 0.0 <= radius <= 180.0:
        raise GeometryError(f"cone.radius: {radius} is outside [0, 180] degrees", field="radius")
    circle = Circle(unit_vector(ra, dec), Angle.fromDegrees(radius))
    return QueryRegion("cone", circle)


def _polygon(value: Any) -> QueryRegion:
    if hasattr(value, "icrs") and hasattr(value, "ra"):
        coord = value.icrs
        vertices = [
            _lonlat((r, d), f"polygon[{i}]")
            for i, (r, d) in enumerate(zip(coord.ra.deg, coord.dec.deg, strict=True))
        ]
    else:
        try:
            vertices = [_lonlat(v, f"polygon[{i}]") for i, v in enumerate(value)]
        except TypeError as err:
            raise GeometryError("polygon: expected a list of (ra, dec)", field="polygon") from err
    try:
        polygon = polygon_from_vertices([v[0] for v in vertices], [v[1] for v in vertices])
    except GeometryError as err:
        raise GeometryError(f"polygon: {err}", field="polygon") from err
    return QueryRegion("polygon", polygon)


def _point(value: Any) -> QueryRegion:
    ra, dec = _lonlat(value, "point")
    vector = unit_vector(ra, dec)
    # A zero-radius circle covers every pixel whose closed boundary holds the point.
    return QueryRegion("point", Circle(vector), point=vector)


def make_query_region(
    *,
    cone: Any = None,
    polygon: Any = None,
    point: Any = None,
    region: Region | None = None,
) -> QueryRegion | None:
    """Build the query region from exactly one of the keyword arguments (None if none given)."""
    given = {
        name: value
        for name, value in (("cone", cone), ("polygon", polygon), ("point", point),
                            ("region", region))
        if value is not None
    }
    if len(given) > 1:
        raise GeometryError(f"give only one of {', '.join(sorted(given))}")
    if cone is not None:
        return _cone(cone)
    if polygon is not None:
        return _polygon(polygon)
    if point is not None:
        return _point(point)
    if region is not None:
        if not isinstance(region, Region):
            raise GeometryError("region: expected an lsst.sphgeom Region", field="region")
        return QueryRegion("region", region)
    return None
