"""Spherical polygons as plane paths for plots.

A footprint's edges are great-circle arcs; a map draws straight segments, so edges are first
sampled densely along their great circles (:func:`densify`). On an all-sky map the longitude
wraps: an edge from RA 359.9 to 0.1 is 0.2° long, not a line across the map. The ring is
therefore unwrapped (each step taken the short way round), and a polygon that straddles the
map's seam is drawn twice, shifted by a full turn, with the map's outline clipping each copy;
a polygon around a pole (its unwrapped ring turns once round) is closed through that pole.
Tangent-plane maps need none of this: :mod:`astropy.wcs` projects each point on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def unit_vectors(ra: Sequence[float] | Array, dec: Sequence[float] | Array) -> Array:
    """(n, 3) unit vectors of RA/Dec in degrees."""
    a, d = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    return np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)], axis=-1)


def radec(vectors: Array) -> tuple[Array, Array]:
    """RA in [0, 360) and Dec of (n, 3) vectors, degrees."""
    x, y, z = vectors[:, 0], vectors[:, 1], vectors[:, 2]
    ra = np.degrees(np.arctan2(y, x)) % 360.0
    dec = np.degrees(np.arctan2(z, np.hypot(x, y)))
    return ra, dec


def densify(ra: Sequence[float], dec: Sequence[float], step_deg: float = 0.25
            ) -> tuple[Array, Array]:
    """Points along the closed ring's great-circle edges, at most ``step_deg`` apart.

    The first vertex is not repeated at the end. Each edge is interpolated on the sphere
    (spherical linear interpolation), so the samples lie exactly on the edge.
    """
    vertices = unit_vectors(ra, dec)
    if len(vertices) < 2:
        return radec(vertices)
    points: list[Array] = []
    for start, end in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        angle = float(np.arccos(np.clip(np.dot(start, end), -1.0, 1.0)))
        steps = max(1, int(np.ceil(np.degrees(angle) / step_deg)))
        t = np.arange(steps)[:, None] / steps
        if angle < 1e-12:
            points.append(start[None, :])
            continue
        sin = np.sin(angle)
        chunk = (np.sin((1 - t) * angle) * start + np.sin(t * angle) * end) / sin
        points.append(chunk)
    return radec(np.concatenate(points))


def map_longitude(ra: Array | float, center_ra: float) -> Array:
    """Plot longitude in (-180, 180] degrees, RA increasing to the left, ``center_ra`` at 0."""
    value = np.asarray(center_ra - np.asarray(ra, float), float)
    return np.asarray(180.0 - (180.0 - value) % 360.0)


def _wrapped(delta: Array) -> Array:
    """Differences of longitude taken the short way round, in [-180, 180)."""
    return np.asarray((delta + 180.0) % 360.0 - 180.0)


def allsky_pieces(ra: Sequence[float], dec: Sequence[float], center_ra: float = 180.0,
                  step_deg: float = 0.5) -> list[Array]:
    """(n, 2) paths (plot longitude, latitude in degrees) that draw one polygon on an all-sky
    map whose outline spans plot longitudes [-180, 180]; clip them to the outline.

    One path unless the polygon crosses the seam (then one per side) or surrounds a pole
    (then closed through the pole, and repeated so that it spans the whole map).
    """
    dense_ra, dense_dec = densify(ra, dec, step_deg)
    x = map_longitude(dense_ra, center_ra)
    steps = _wrapped(np.diff(x))
    unwrapped = x[0] + np.concatenate([[0.0], np.cumsum(steps)])
    closing = float(_wrapped(np.asarray(x[0] - x[-1])))
    turn = unwrapped[-1] + closing - unwrapped[0]
    lon = unwrapped
    lat = dense_dec
    if abs(turn) > 180.0:  # the ring goes once round a pole: close it through the pole
        pole = 90.0 if float(np.mean(dense_dec)) > 0 else -90.0
        end = unwrapped[0] + turn
        lon = np.concatenate([unwrapped, [end, end, unwrapped[0]]])
        lat = np.concatenate([dense_dec, [dense_dec[0], pole, pole]])
    lo, hi = float(lon.min()), float(lon.max())
    pieces = []
    for k in range(-2, 3):
        shift = 360.0 * k
        if lo + shift < 180.0 and hi + shift > -180.0:
            pieces.append(np.column_stack([lon + shift, lat]))
    return pieces


def angular_distance(ra: Array | Sequence[float], dec: Array | Sequence[float], ra0: float,
                     dec0: float) -> Array:
    """Angular distance in degrees of each point from (ra0, dec0)."""
    centre = unit_vectors([ra0], [dec0])[0]
    return np.asarray(np.degrees(np.arccos(np.clip(unit_vectors(ra, dec) @ centre, -1, 1))))
