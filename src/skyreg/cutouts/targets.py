"""What a stamp request asks for: positions with stamp sizes, or regions.

:func:`make_targets` accepts the forms :meth:`skyreg.Registry.postage_stamps` documents and
turns them into one :class:`Targets` value: arrays of positions and sizes (in pixels of the
coadds' grid), and the regions of region targets, each target numbered from 0 in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import Region

from skyreg.cutouts.errors import StampRequestError, TargetError
from skyreg.cutouts.regions import PixelMask, centre_of, parse_region

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Largest stamp side accepted, in pixels (a whole HSC patch is 4,200).
MAX_STAMP_PIXELS = 16384


@dataclass
class Targets:
    """Targets numbered 0..n-1: positions (``kind`` 0) and regions (``kind`` 1)."""

    ra: FloatArray
    dec: FloatArray
    width: IntArray  # pixels; 0 for regions
    height: IntArray
    kind: npt.NDArray[np.int8]
    regions: dict[int, Region | PixelMask] = field(default_factory=dict)
    groups: IntArray | None = None
    #: Sizes given as angles: (width, height) in degrees, converted per sky map by the plan.
    angular: tuple[FloatArray, FloatArray] | None = None

    def __len__(self) -> int:
        return int(self.ra.shape[0])


def _is_region(value: Any) -> bool:
    return isinstance(value, Region | PixelMask | str)


def make_targets(targets: Any, size: Any = 64, groups: Any = None) -> Targets:
    """Normalise ``targets`` (see :meth:`Registry.postage_stamps`) and ``size``."""
    if _is_region(targets):
        targets = [targets]
    if isinstance(targets, Sequence) and targets and all(_is_region(t) for t in targets):
        return _regions(list(targets))
    ra, dec = _positions(targets)
    n = ra.shape[0]
    width, height, angular = _sizes(size, n)
    group_ids = None
    if groups is not None:
        group_ids = np.asarray(groups)
        if group_ids.shape != (n,):
            raise StampRequestError(f"groups: expected one label per target ({n}), got shape "
                                    f"{group_ids.shape}")
        group_ids = np.unique(group_ids, return_inverse=True)[1].astype(np.int64)
    return Targets(ra, dec, width, height, np.zeros(n, dtype=np.int8), groups=group_ids,
                   angular=angular)


def _regions(values: list[Any]) -> Targets:
    regions: dict[int, Region | PixelMask] = {}
    ra, dec = np.zeros(len(values)), np.zeros(len(values))
    for i, value in enumerate(values):
        region = value if isinstance(value, PixelMask) else parse_region(value, f"targets[{i}]")
        regions[i] = region
        if not isinstance(region, PixelMask):
            ra[i], dec[i] = centre_of(region)
    zeros = np.zeros(len(values), dtype=np.int64)
    return Targets(ra, dec, zeros, zeros.copy(), np.ones(len(values), dtype=np.int8), regions)


def _degrees(values: Any, what: str) -> FloatArray:
    if hasattr(values, "unit") and hasattr(values, "to_value"):
        try:
            values = values.to_value("deg")
        except Exception as err:
            raise TargetError(f"{err}", field=what) from None
    try:
        array = np.atleast_1d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError):
        raise TargetError("expected numbers in degrees", field=what) from None
    if array.ndim != 1:
        raise TargetError(f"expected a 1-D array, got shape {array.shape}", field=what)
    return array


def _positions(targets: Any) -> tuple[FloatArray, FloatArray]:
    if hasattr(targets, "icrs") and hasattr(targets, "ra"):
        coord = targets.icrs
        ra, dec = _degrees(coord.ra, "ra"), _degrees(coord.dec, "dec")
    elif isinstance(targets, tuple) and len(targets) == 2:
        ra, dec = _degrees(targets[0], "ra"), _degrees(targets[1], "dec")
    else:
        try:
            array = np.asarray(targets, dtype=np.float64)
        except (TypeError, ValueError):
            raise StampRequestError(
                "targets: expected a SkyCoord, (ra, dec) arrays, an (n, 2) array, or regions "
                "(sphgeom regions, 'CIRCLE/POLYGON/RANGE ...' strings, PixelMask)") from None
        if array.ndim != 2 or array.shape[1] != 2:
            raise StampRequestError(f"targets: an array of positions must have shape (n, 2), "
                                    f"got {array.shape}")
        ra, dec = array[:, 0].copy(), array[:, 1].copy()
    if ra.shape != dec.shape:
        raise TargetError(f"ra has {ra.shape[0]} values, dec {dec.shape[0]}", field="dec")
    if ra.shape[0] == 0:
        raise StampRequestError("targets: no positions given")
    for name, values in (("ra", ra), ("dec", dec)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise TargetError(f"{values[bad[0]]} is not a finite number", row=int(bad[0]),
                              field=name)
    bad = np.flatnonzero((dec < -90.0) | (dec > 90.0))
    if bad.size:
        raise TargetError(f"dec {dec[bad[0]]} is outside [-90, 90]", row=int(bad[0]),
                          field="dec")
    ra = np.mod(ra, 360.0)
    return np.where(ra >= 360.0, 0.0, ra), dec


def _sizes(size: Any, n: int) -> tuple[IntArray, IntArray, tuple[FloatArray, FloatArray] | None]:
    """(width, height) in pixels per target, or angles to convert later."""
    if hasattr(size, "unit") and hasattr(size, "to_value"):
        try:
            degrees = np.asarray(size.to_value("deg"), dtype=np.float64)
        except Exception as err:
            raise StampRequestError(f"size: {err}") from None
        w_deg, h_deg = _pair(degrees, n, "size")
        if not (np.all(np.isfinite(w_deg)) and np.all(w_deg > 0) and np.all(h_deg > 0)):
            raise StampRequestError("size: angles must be finite and > 0")
        ones = np.ones(n, dtype=np.int64)
        return ones, ones.copy(), (w_deg, h_deg)
    array = np.asarray(size)
    if array.dtype.kind not in "iuf" or (array.dtype.kind == "f" and not np.all(
            np.isfinite(array) & (array == np.round(array)))):
        raise StampRequestError(f"size: expected whole pixels (or an astropy angle), got "
                                f"{size!r}")
    w, h = _pair(array.astype(np.int64), n, "size")
    bad = np.flatnonzero((w < 1) | (h < 1) | (w > MAX_STAMP_PIXELS) | (h > MAX_STAMP_PIXELS))
    if bad.size:
        raise TargetError(f"stamp size {w[bad[0]]}x{h[bad[0]]} is outside 1..{MAX_STAMP_PIXELS} "
                          "pixels", row=int(bad[0]), field="size")
    return w, h, None


def _pair(values: npt.NDArray[Any], n: int, what: str) -> tuple[Any, Any]:
    if values.ndim == 0:
        return np.full(n, values), np.full(n, values)
    if values.shape == (2,) and n != 2:
        return np.full(n, values[0]), np.full(n, values[1])
    if values.shape == (n,):
        return values.copy(), values.copy()
    if values.shape == (n, 2):
        return values[:, 0].copy(), values[:, 1].copy()
    raise StampRequestError(f"{what}: expected one value, (width, height), one per target or "
                            f"(n, 2); got shape {values.shape} for {n} targets")


def angular_to_pixels(degrees: FloatArray, scale_deg: float) -> IntArray:
    """Whole pixels covering an angle: ceil(angle / scale), at least one."""
    pixels = np.ceil(degrees / scale_deg - 1e-9).astype(np.int64)
    if pixels.size and int(pixels.max()) > MAX_STAMP_PIXELS:
        raise StampRequestError(f"size: {float(degrees.max()) * 3600:.1f} arcsec is more than "
                                f"{MAX_STAMP_PIXELS} pixels")
    return np.maximum(pixels, 1)


