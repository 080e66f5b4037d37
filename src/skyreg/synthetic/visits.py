"""Synthetic observing schedule and CCD footprints.

The schedule imitates a Rubin night: several hundred 30 s visits per night, a few seconds of
readout and slew between them, filter changes every few dozen visits, ``seq_num`` restarting
at 1 each night, and occasional nights lost to weather. Visit ids are
``day_obs * 100000 + seq_num`` like Rubin's. Footprints are computed for all CCDs of a block of
visits in a single vectorised projection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .focal_plane import FocalPlane
from .sphere import FloatArray, tangent_to_sky, wrap_ra

__all__ = [
    "LSSTCAM_PHYSICAL_FILTERS",
    "MAX_NIGHT_S",
    "MAX_OVERHEAD_S",
    "VISIT_ID_FACTOR",
    "Schedule",
    "area_bounds",
    "ccd_footprints",
    "draw_boresights",
    "make_schedule",
    "parse_day_obs",
    "visit_regions",
]

VISIT_ID_FACTOR = 100_000
"""Visit id = day_obs * VISIT_ID_FACTOR + seq_num, as for Rubin exposures."""

LSSTCAM_PHYSICAL_FILTERS = {
    "u": "u_24",
    "g": "g_6",
    "r": "r_57",
    "i": "i_39",
    "z": "z_20",
    "y": "y_10",
}
"""Band -> physical filter name of LSSTCam's standard filters."""

MAX_OVERHEAD_S = 18.0
"""Upper bound of the time between two exposures: readout and slew (at most 12 s) plus a
two-minute filter change spread over a block of at least 20 visits."""

MAX_NIGHT_S = 11.5 * 3600.0
"""Longest schedulable night: from 00:00 UTC (latest start) to 11:30 UTC, safely before the
12:00 UTC rollover of ``day_obs``."""

_MJD_EPOCH = dt.date(1858, 11, 17)
_TAI_MINUS_UTC_S = 37.0
_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Schedule:
    """Per-visit observing metadata (everything except the pointing)."""

    visit: npt.NDArray[np.int64]
    day_obs: npt.NDArray[np.int64]
    seq_num: npt.NDArray[np.int64]
    band: list[str]
    mjd_tai_start: FloatArray
    mjd_tai_end: FloatArray


def _mjd(day: dt.date) -> float:
    """MJD of 00:00 UTC on a calendar date."""
    return float((day - _MJD_EPOCH).days)


def parse_day_obs(day_obs: int) -> dt.date:
    """Turn a YYYYMMDD integer into a date, rejecting impossible dates early."""
    return dt.date(day_obs // 10000, (day_obs // 100) % 100, day_obs % 100)


def make_schedule(
    rng: np.random.Generator,
    n_visits: int,
    bands: tuple[str, ...],
    first_day_obs: int,
    exposure_time: float,
    visits_per_night: tuple[int, int],
) -> Schedule:
    """Lay ``n_visits`` visits out over consecutive nights.

    Night ``day_obs`` starts between 23:30 and 00:00 UTC (evening twilight at Cerro Pachón)
    and all its visits end well before the 12:00 UTC ``day_obs`` rollover, so ``mjd_tai_*``
    always fall inside the observing day that ``day_obs`` names. About one night in five
    after the first is skipped, as if lost to weather, so ``day_obs`` values are not perfectly
    consecutive.

    The first night is always ``first_day_obs`` and ``seq_num`` counts 1, 2, 3, ... within a
    night (calibration exposures are not part of a synthetic survey), so ids such as
    ``2027010100042`` are predictable for documentation and demos.
    """
    visit_parts: list[npt.NDArray[np.int64]] = []
    day_parts: list[npt.NDArray[np.int64]] = []
    seq_parts: list[npt.NDArray[np.int64]] = []
    start_parts: list[FloatArray] = []
    band_list: list[str] = []
    day = parse_day_obs(first_day_obs)
    remaining = n_visits
    lo, hi = visits_per_night
    while remaining > 0:
        if visit_parts and rng.random() < 0.2:  # weather
            day += dt.timedelta(days=1)
            continue
        n = min(remaining, int(rng.integers(lo, hi + 1)))
        day_obs = day.year * 10000 + day.month * 100 + day.day
        seq = np.arange(1, n + 1, dtype=np.int64)
        # Filter blocks of a few dozen visits; a change costs two minutes.
        night_bands: list[str] = []
        change = np.zeros(n)
        band = str(rng.choice(bands))
        while len(night_bands) < n:
            if night_bands:
                change[len(night_bands)] = 120.0
                others = [b for b in bands if b != band]
                band = str(rng.choice(others)) if others else band
            night_bands.extend([band] * int(rng.integers(20, 80)))
        night_bands = night_bands[:n]
        overhead = rng.uniform(4.0, 12.0, size=n) + change
        offsets = np.concatenate([[0.0], np.cumsum(exposure_time + overhead[1:])])
        night_start = (23.5 + rng.uniform(0.0, 0.5)) / 24.0
        start = _mjd(day) + night_start + (offsets + _TAI_MINUS_UTC_S) / _SECONDS_PER_DAY
        visit_parts.append(day_obs * VISIT_ID_FACTOR + seq)
        day_parts.append(np.full(n, day_obs, dtype=np.int64))
        seq_parts.append(seq)
        start_parts.append(start)
        band_list.extend(night_bands)
        remaining -= n
        day += dt.timedelta(days=1)

    def cat_i(parts: list[npt.NDArray[np.int64]]) -> npt.NDArray[np.int64]:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    start_all = np.concatenate(start_parts) if start_parts else np.zeros(0)
    return Schedule(
        visit=cat_i(visit_parts),
        day_obs=cat_i(day_parts),
        seq_num=cat_i(seq_parts),
        band=band_list,
        mjd_tai_start=start_all,
        mjd_tai_end=start_all + exposure_time / _SECONDS_PER_DAY,
    )


def area_bounds(
    center_ra: float, center_dec: float, width_deg: float, height_deg: float
) -> tuple[float, float, float]:
    """RA half-width (in RA degrees) and Dec range of the survey area.

    The width is measured on the sky at the centre's declination, so it is divided by
    ``cos(dec)`` to get RA degrees; near a pole that reaches the full circle.
    """
    dec_lo = max(-90.0, center_dec - 0.5 * height_deg)
    dec_hi = min(90.0, center_dec + 0.5 * height_deg)
    cos_dec = np.cos(np.radians(center_dec))
    half = 180.0 if cos_dec <= 1e-9 else min(180.0, 0.5 * width_deg / float(cos_dec))
    return half, dec_lo, dec_hi


def draw_boresights(
    rng: np.random.Generator,
    n: int,
    center_ra: float,
    ra_half_width: float,
    dec_lo: float,
    dec_hi: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Boresights uniform on the sphere inside the RA/Dec box, and random sky rotations.

    Uniform on the sphere means RA uniform and sin(dec) uniform; drawing dec uniformly would
    over-populate high declinations.
    """
    ra = wrap_ra(center_ra + rng.uniform(-ra_half_width, ra_half_width, size=n))
    s_lo, s_hi = np.sin(np.radians(dec_lo)), np.sin(np.radians(dec_hi))
    dec = np.degrees(np.arcsin(np.clip(rng.uniform(s_lo, s_hi, size=n), -1.0, 1.0)))
    rot = rng.uniform(0.0, 360.0, size=n)
    return ra, dec, rot


def _rotate(x: FloatArray, y: FloatArray, rot_deg: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Focal-plane (x, y) to tangent-plane (xi east, eta north) for sky rotation ``rot_deg``.

    ``rot_deg`` is the position angle of the focal plane's +y axis, measured from north
    through east.
    """
    r = np.radians(rot_deg)
    c, s = np.cos(r), np.sin(r)
    return x * c + y * s, -x * s + y * c


def ccd_footprints(
    focal_plane: FocalPlane,
    ra: FloatArray,
    dec: FloatArray,
    rot_deg: FloatArray,
    block: int = 1000,
) -> Iterator[tuple[FloatArray, FloatArray]]:
    """Yield ``(ra, dec)`` corner arrays shaped ``(visits_in_block, n_science, 4)``.

    Visits are processed in blocks so that memory stays bounded (a block of 1000 LSSTCam
    visits is 756,000 corners) while every block is still a single numpy expression.
    """
    fx, fy = focal_plane.science_corners()
    for start in range(0, len(ra), block):
        sl = slice(start, start + block)
        xi, eta = _rotate(fx[None, :, :], fy[None, :, :], rot_deg[sl, None, None])
        yield tangent_to_sky(ra[sl, None, None], dec[sl, None, None], xi, eta)


def visit_regions(
    focal_plane: FocalPlane, ra: FloatArray, dec: FloatArray, rot_deg: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Visit polygons shaped ``(n_visits, n_hull)``: the projected focal-plane hull.

    The TAN projection maps straight lines to great circles, so the projected (slightly
    grown) 2-d hull of all CCD corners is a convex spherical polygon that contains every
    CCD footprint of the visit, without computing a spherical hull per visit.
    """
    hull = focal_plane.science_hull()
    xi, eta = _rotate(hull[None, :, 0], hull[None, :, 1], rot_deg[:, None])
    return tangent_to_sky(ra[:, None], dec[:, None], xi, eta)
