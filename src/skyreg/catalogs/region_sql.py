"""A conservative SQL test of a region on a row's ``ra``/``dec`` (degrees), for the APDB reads.

The HTM-20 envelope of a CCD-sized region holds more rows than the region contains (1.6
times as many with 64 ranges: 1,278 candidates for 807 rows, measured at a fifth of the full
data set; more with the 16 ranges the reads use), and every candidate sent costs the server
~84 fields of output and the client their decoding. This test runs on the server before the
output, on the candidates the envelope found, and keeps every row that the exact test
(sphgeom on the client, :func:`skyreg.catalogs.apdb_store.inside`) can keep: each
half-space of the region is widened by :data:`MARGIN`, far more than the rounding of the
server's and the client's unit vectors apart. So the result is still exactly the region;
the client's test stays the one that decides.

Stated for the regions alert production passes (``ConvexPolygon``, ``Circle``, ``Box``);
any other region gets no such test (its envelope alone is conservative).
"""

from __future__ import annotations

import math

import numpy as np
from lsst.sphgeom import Box, Circle, ConvexPolygon, Region

#: Slack of every half-space test, as a dot product of unit vectors (~20 µas): the server's
#: and numpy's unit vectors of one ra/dec differ by a few 1e-16.
MARGIN = 1e-10
#: The slack of the declination bounds, in degrees (ten times the half-spaces').
_DEC_MARGIN = math.degrees(MARGIN) * 10.0

_X = 'cos(radians("dec")) * cos(radians("ra"))'
_Y = 'cos(radians("dec")) * sin(radians("ra"))'
_Z = 'sin(radians("dec"))'


def _half_space(normal: np.ndarray, offset: float = 0.0) -> str:
    """``v · normal >= offset - MARGIN`` on the row's unit vector ``v``."""
    terms = [f"({float(n)!r}) * {axis}" for n, axis in zip(normal, (_X, _Y, _Z), strict=True)
             if n != 0.0]
    if not terms:
        return "TRUE"
    return f"({' + '.join(terms)} >= {float(offset - MARGIN)!r})"


def _dec_range(low_deg: float, high_deg: float) -> list[str]:
    out = []
    if low_deg - _DEC_MARGIN > -90.0:
        out.append(f'"dec" >= {float(low_deg - _DEC_MARGIN)!r}')
    if high_deg + _DEC_MARGIN < 90.0:
        out.append(f'"dec" <= {float(high_deg + _DEC_MARGIN)!r}')
    return out


def _polygon(region: ConvexPolygon) -> list[str]:
    vertices = [np.array([v.x(), v.y(), v.z()]) for v in region.getVertices()]
    conditions = []
    for a, b in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        normal = np.cross(a, b)
        length = float(np.linalg.norm(normal))
        if length == 0.0:  # repeated vertex: no edge
            continue
        conditions.append(_half_space(normal / length))
    return conditions


def _circle(region: Circle) -> list[str]:
    if region.isEmpty():
        return ["FALSE"]
    angle = region.getOpeningAngle().asRadians()
    if region.isFull() or angle + MARGIN >= math.pi:
        return []
    centre = region.getCenter()
    return [_half_space(np.array([centre.x(), centre.y(), centre.z()]),
                        math.cos(angle + MARGIN))]


def _box(region: Box) -> list[str]:
    if region.isEmpty():
        return ["FALSE"]
    lat = region.getLat()
    conditions = _dec_range(lat.getA().asDegrees(), lat.getB().asDegrees())
    lon = region.getLon()
    if not lon.isFull() and lon.getSize().asRadians() < math.pi:
        a, b = lon.getA().asRadians(), lon.getB().asRadians()
        # The meridian half-spaces east of a and west of b.
        conditions.append(_half_space(np.array([-math.sin(a), math.cos(a), 0.0])))
        conditions.append(_half_space(np.array([math.sin(b), -math.cos(b), 0.0])))
    return conditions


def region_conditions(region: Region) -> list[str]:
    """SQL conditions on ``ra``/``dec`` that every row the region contains meets (and
    most candidates outside it do not); empty when the region has none."""
    if isinstance(region, ConvexPolygon):
        box = region.getBoundingBox().getLat()
        # The declination bounds first: two comparisons drop many candidates before the
        # edge tests' trigonometry (PostgreSQL evaluates the cheaper conditions first).
        return [*_dec_range(box.getA().asDegrees(), box.getB().asDegrees()),
                *_polygon(region)]
    if isinstance(region, Circle):
        return _circle(region)
    if isinstance(region, Box):
        return _box(region)
    return []
