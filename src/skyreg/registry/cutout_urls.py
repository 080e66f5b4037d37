"""Stable cutout URLs for alert packets and brokers: the SODA URL of a stamp around a point.

The URL names the dataset by its data-ID-based identifier (:mod:`skyreg.registry.dataset_ids`)
and the stamp by a CIRCLE, so it resolves to the same pixels for as long as that file is
registered, whatever happens to the registry's row ids. The base URL is the public address of
``skyreg serve`` (argument, else ``$SKYREG_SERVICE_URL``, else ``http://127.0.0.1:8000``).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from skyreg.errors import NotFoundError
from skyreg.registry.dataset_ids import ccd_dataset_key, dataset_id, patch_dataset_key

if TYPE_CHECKING:
    from skyreg.registry.registry import Registry

SERVICE_URL_ENV = "SKYREG_SERVICE_URL"
DEFAULT_SERVICE_URL = "http://127.0.0.1:8000"
#: Largest stamp, degrees (a cutout service refuses bigger ones anyway).
MAX_SIZE_DEG = 10.0


def _degrees(value: Any, what: str) -> float:
    from skyreg.search.validation import QueryError

    try:
        number = float(value.to_value("deg")) if hasattr(value, "to_value") else float(value)
    except Exception as err:  # astropy unit errors, TypeError, ValueError
        raise QueryError(f"{what}: expected degrees or an astropy angle, got {value!r}") from err
    if not math.isfinite(number):
        raise QueryError(f"{what}: must be finite")
    return number


def cutout_url(registry: Registry, ra: Any, dec: Any, size: Any, *,
               dataset_type: str = "deepCoadd", band: str | None = None,
               instrument: str | None = None, visit: int | None = None,
               detector: int | None = None, skymap: str | None = None,
               base_url: str | None = None, format: str = "fits") -> str:
    """See :meth:`skyreg.registry.Registry.cutout_url`."""
    from skyreg.search.validation import QueryError

    ra_deg, dec_deg = _degrees(ra, "ra") % 360.0, _degrees(dec, "dec")
    size_deg = _degrees(size, "size")
    if not 0.0 < size_deg <= MAX_SIZE_DEG:
        raise QueryError(f"size: {size_deg} degrees is not in (0, {MAX_SIZE_DEG}]")
    if format not in ("fits", "png"):
        raise QueryError(f"format: {format!r} is not 'fits' or 'png'")
    dimensions = registry.dataset_types().get(dataset_type)
    found = registry.find_datasets(dataset_type, point=(ra_deg, dec_deg), band=band,
                                   instrument=instrument, skymap=skymap,
                                   inner=dimensions == "patch")
    refs = [ref for ref in found if (visit is None or ref.visit == visit)
            and (detector is None or ref.detector == detector)]
    where = f"({ra_deg:.6f}, {dec_deg:+.6f})"
    if not refs:
        raise NotFoundError(f"no {dataset_type} file contains {where}"
                            + (f" in band {band}" if band else ""))
    if len(refs) > 1:
        hint = "band=" if len({ref.band for ref in refs}) > 1 else (
            "visit=" if dimensions == "ccd" else "skymap=")
        raise QueryError(f"{len(refs)} {dataset_type} files contain {where}; choose one "
                         f"with {hint}")
    ref = refs[0]
    if ref.instrument is not None:
        key = ccd_dataset_key(ref.dataset_type, ref.instrument, int(ref.visit or 0),
                              int(ref.detector or 0))
    else:
        key = patch_dataset_key(ref.dataset_type, str(ref.skymap), int(ref.tract or 0),
                                int(ref.patch or 0), ref.band)
    base = (base_url or os.environ.get(SERVICE_URL_ENV) or DEFAULT_SERVICE_URL).rstrip("/")
    query = {"ID": dataset_id(key), "CIRCLE": f"{ra_deg!r} {dec_deg!r} {size_deg / 2.0!r}"}
    if format == "png":
        query["RESPONSEFORMAT"] = "image/png"
    return f"{base}/soda/sync?{urlencode(query, quote_via=quote)}"
