"""SODA answers from the cutout package: FITS bytes, or a PNG rendering of the image plane.

The pixels -- which rectangle a region selects, every plane of the file (image, mask,
variance), tile-compressed HDUs, the exact WCS of the cutout -- come from
:func:`skyreg.cutouts.soda_cuts`, the same code that cuts postage stamps; this module only
turns its errors into the service's faults and renders PNG previews for web pages.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skyreg.cutouts import CutoutTooLarge, FileReadError, RegionError, SodaCuts, soda_cuts
from skyreg.cutouts import soda as cutout_core
from skyreg.service.errors import LimitExceeded, NotFoundFault, UsageFault


@dataclass(frozen=True)
class CutoutLimits:
    """Per-request limits: pixels along either axis of a cutout, pixels in all of them."""

    max_side: int
    max_pixels: int


@contextmanager
def _faults() -> Iterator[None]:
    try:
        yield
    except CutoutTooLarge as err:
        raise LimitExceeded(str(err)) from None
    except RegionError as err:
        raise UsageFault(str(err)) from None
    except FileReadError as err:
        raise NotFoundFault(f"the registered file cannot be read: {err.reason}") from None


def cuts(path: Path, hdu: int, regions: Sequence[str], limits: CutoutLimits) -> SodaCuts:
    """Every plane of each region's rectangle (no region: the whole image)."""
    with _faults():
        return soda_cuts(path, hdu, list(regions) or [_WHOLE], limits.max_side,
                         limits.max_pixels)


#: A region holding every image: what a request without a spatial filter cuts.
_WHOLE = "RANGE -Inf +Inf -90 90"


def cutout_fits(path: Path, hdu: int, regions: Sequence[str], limits: CutoutLimits
                ) -> bytes | None:
    """FITS bytes (see :mod:`skyreg.cutouts.soda`), or None when no pixel falls inside."""
    found = cuts(path, hdu, regions, limits)
    if found.empty:
        return None
    with _faults():
        return cutout_core.cutout_fits(str(path), hdu, found)


def cutout_png(path: Path, hdu: int, region: str | None, limits: CutoutLimits,
               stretch: str = "asinh", interval: str = "zscale", max_side: int = 1024
               ) -> bytes | None:
    """PNG bytes of the image plane of the cutout (first row at the bottom), or None."""
    from astropy import visualization as vis
    from PIL import Image

    found = cuts(path, hdu, [region] if region else [], limits)
    cut = found.cuts[0]
    if cut is None:
        return None
    data = np.asarray(cut.planes["image"], dtype=np.float64)
    step = max(1, math.ceil(max(data.shape) / max_side))
    data = data[::step, ::step]
    finite = np.isfinite(data)
    if not finite.any():
        scaled = np.zeros(data.shape)
    else:
        fill = float(np.median(data[finite]))
        data = np.where(finite, data, fill)
        limits_of = {"zscale": vis.ZScaleInterval(), "minmax": vis.MinMaxInterval(),
                     "99.5": vis.PercentileInterval(99.5)}[interval]
        stretches = {"asinh": vis.AsinhStretch(), "linear": vis.LinearStretch(),
                     "sqrt": vis.SqrtStretch(), "log": vis.LogStretch()}
        with np.errstate(all="ignore"):
            scaled = (stretches[stretch] + limits_of)(data, clip=True)
        scaled = np.nan_to_num(scaled)
    pixels = np.flipud(np.round(scaled * 255.0).astype(np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def local_path(uri: str) -> Path | None:
    """The local path of a ``file://`` URI (None for any other scheme): paths never come
    from a request, only from registered URIs."""
    if not uri.startswith("file://"):
        return None
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path))


def clear_cache() -> None:
    """Forget cached file layouts (shutdown, tests)."""
    cutout_core.clear_cache()


__all__ = ["CutoutLimits", "clear_cache", "cutout_fits", "cutout_png", "cuts", "local_path"]
