"""Vectorised gnomonic (TAN) WCS maths and great-circle offsets, in numpy.

Why not astropy for everything? A full-sky sky map has ~1.5 million patches, i.e. ~12 million
corner positions; one astropy ``WCS`` per tract and a Python loop over 19,000 tracts would cost
far more than these few array expressions. :func:`astropy_tan_wcs` still builds the equivalent
astropy object for single tracts and patches, and the tests check both agree.

Conventions (FITS WCS papers I and II, which lsst's AST-based ``SkyWcs`` also follows):

* pixel coordinates here are **0-based** (the centre of the first pixel is 0.0, as in
  ``lsst.geom``), while ``crpix`` is the **FITS 1-based** reference pixel, so
  ``pixel = crpix - 1 + CD^-1 · intermediate``;
* ``cd`` is the (2, 2) CD matrix in degrees per pixel;
* the native longitude of the celestial pole (LONPOLE) takes the FITS default for zenithal
  projections: 180° unless the reference point is the north pole itself, where it is 0°. This
  matters only for tracts centred exactly on Dec = +90°.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS

FloatArray = npt.NDArray[np.float64]

_DEG = np.pi / 180.0


def lonpole_deg(crval_dec: npt.ArrayLike) -> FloatArray:
    """Default LONPOLE for TAN: 0° when CRVAL2 is the north pole, else 180°."""
    return np.where(np.asarray(crval_dec, dtype=np.float64) >= 90.0, 0.0, 180.0)


def pixel_to_sky(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    crval_ra: npt.ArrayLike,
    crval_dec: npt.ArrayLike,
    crpix_x: npt.ArrayLike,
    crpix_y: npt.ArrayLike,
    cd: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """RA in [0, 360) and Dec of 0-based pixel positions; all inputs broadcast together.

    ``cd`` has shape (..., 2, 2) broadcasting against the other arguments.
    """
    cd_arr = np.asarray(cd, dtype=np.float64)
    dx = np.asarray(x, dtype=np.float64) + 1.0 - np.asarray(crpix_x, dtype=np.float64)
    dy = np.asarray(y, dtype=np.float64) + 1.0 - np.asarray(crpix_y, dtype=np.float64)
    # Intermediate world coordinates, converted to radians on the tangent plane.
    u = (cd_arr[..., 0, 0] * dx + cd_arr[..., 0, 1] * dy) * _DEG
    v = (cd_arr[..., 1, 0] * dx + cd_arr[..., 1, 1] * dy) * _DEG
    dec0 = np.asarray(crval_dec, dtype=np.float64) * _DEG
    sin_d0, cos_d0 = np.sin(dec0), np.cos(dec0)
    # Native spherical coordinates: phi = arg(-v, u); for TAN, cot(theta) = |(u, v)|.
    # With LONPOLE = 180° the celestial offsets are the classic gnomonic inverse; LONPOLE = 0°
    # (north-pole reference) flips both tangent-plane axes.
    flip = np.where(lonpole_deg(crval_dec) == 0.0, -1.0, 1.0)
    u = u * flip
    v = v * flip
    denom = cos_d0 - v * sin_d0
    ra = np.asarray(crval_ra, dtype=np.float64) * _DEG + np.arctan2(u, denom)
    dec = np.arctan2(sin_d0 + v * cos_d0, np.hypot(u, denom))
    return wrap_ra_deg(np.degrees(ra)), np.degrees(dec)


def sky_to_pixel(
    ra: npt.ArrayLike,
    dec: npt.ArrayLike,
    crval_ra: npt.ArrayLike,
    crval_dec: npt.ArrayLike,
    crpix_x: npt.ArrayLike,
    crpix_y: npt.ArrayLike,
    cd: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """0-based pixel positions of sky positions (degrees); inverse of :func:`pixel_to_sky`.

    Points 90° or more from the reference point have no TAN image; they come out as NaN.
    """
    dra = (np.asarray(ra, dtype=np.float64) - np.asarray(crval_ra, dtype=np.float64)) * _DEG
    dec_r = np.asarray(dec, dtype=np.float64) * _DEG
    dec0 = np.asarray(crval_dec, dtype=np.float64) * _DEG
    sin_d, cos_d = np.sin(dec_r), np.cos(dec_r)
    sin_d0, cos_d0 = np.sin(dec0), np.cos(dec0)
    cos_c = sin_d0 * sin_d + cos_d0 * cos_d * np.cos(dra)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(cos_c > 0.0, 1.0 / cos_c, np.nan)
    flip = np.where(lonpole_deg(crval_dec) == 0.0, -1.0, 1.0)
    u = flip * cos_d * np.sin(dra) * inv / _DEG
    v = flip * (cos_d0 * sin_d - sin_d0 * cos_d * np.cos(dra)) * inv / _DEG
    cd_arr = np.asarray(cd, dtype=np.float64)
    a, b = cd_arr[..., 0, 0], cd_arr[..., 0, 1]
    c, d = cd_arr[..., 1, 0], cd_arr[..., 1, 1]
    det = a * d - b * c
    dx = (d * u - b * v) / det
    dy = (a * v - c * u) / det
    return (
        dx + np.asarray(crpix_x, dtype=np.float64) - 1.0,
        dy + np.asarray(crpix_y, dtype=np.float64) - 1.0,
    )


def offset_points(
    ra: npt.ArrayLike, dec: npt.ArrayLike, bearing_deg: npt.ArrayLike, distance_deg: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Move along great circles: the equivalent of ``lsst.geom.SpherePoint.offset``.

    The bearing is measured from east towards north (lsst.geom's convention, not the
    astronomical position angle). East and north are defined from the point's longitude even
    at a pole, as lsst.geom does, so offsets from a pole tract centre point the same way.
    """
    lon = np.asarray(ra, dtype=np.float64) * _DEG
    lat = np.asarray(dec, dtype=np.float64) * _DEG
    beta = np.asarray(bearing_deg, dtype=np.float64) * _DEG
    dist = np.asarray(distance_deg, dtype=np.float64) * _DEG
    sin_lon, cos_lon = np.sin(lon), np.cos(lon)
    sin_lat, cos_lat = np.sin(lat), np.cos(lat)
    point = np.stack(np.broadcast_arrays(cos_lat * cos_lon, cos_lat * sin_lon, sin_lat), axis=-1)
    east = np.stack(np.broadcast_arrays(-sin_lon, cos_lon, np.zeros_like(lon)), axis=-1)
    north = np.stack(np.broadcast_arrays(-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat), axis=-1)
    direction = np.cos(beta)[..., None] * east + np.sin(beta)[..., None] * north
    moved = np.cos(dist)[..., None] * point + np.sin(dist)[..., None] * direction
    return vectors_to_radec(moved)


def vectors_to_radec(xyz: FloatArray) -> tuple[FloatArray, FloatArray]:
    """RA in [0, 360) and Dec (degrees) of (..., 3) vectors (need not be normalised)."""
    ra = np.degrees(np.arctan2(xyz[..., 1], xyz[..., 0]))
    dec = np.degrees(np.arctan2(xyz[..., 2], np.hypot(xyz[..., 0], xyz[..., 1])))
    return wrap_ra_deg(ra), dec


def wrap_ra_deg(ra: npt.ArrayLike) -> FloatArray:
    """RA folded into [0, 360); guards the ``-1e-17 % 360 == 360.0`` rounding trap."""
    wrapped = np.mod(np.asarray(ra, dtype=np.float64), 360.0)
    return np.where(wrapped >= 360.0, 0.0, wrapped)


def astropy_tan_wcs(
    crval_ra: float, crval_dec: float, crpix_x: float, crpix_y: float, cd: npt.ArrayLike
) -> WCS:
    """An astropy TAN ``WCS`` with the given FITS parameters (``crpix`` 1-based, ICRS)."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [float(crval_ra), float(crval_dec)]
    wcs.wcs.crpix = [float(crpix_x), float(crpix_y)]
    wcs.wcs.cd = np.asarray(cd, dtype=np.float64)
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.set()
    return wcs
