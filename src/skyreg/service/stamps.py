"""Postage stamps over HTTP: a JSON request becomes a work plan, stamps, and FITS or zip bytes.

The pixels are those of :meth:`skyreg.Registry.postage_stamps` (the same plan and cutting
code), written as its multi-extension FITS file or as a zip with one FITS file per stamp and a
``manifest.json``. Limits are checked as early as each can be: the number of objects before
planning, the number of stamps and their pixels (position targets) after planning -- before
any file is opened -- and the pixels of region stamps once cut. A file that cannot be read is
a per-file problem (listed in the FITS primary header and the manifest); the other stamps are
still returned.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

from skyreg.cutouts import StampPlan, StampResult, execute, fits_writer
from skyreg.registry import Registry
from skyreg.service.errors import LimitExceeded, UsageFault


@dataclass(frozen=True)
class StampLimits:
    max_objects: int
    max_stamps: int
    max_pixels: int
    max_side: int


@dataclass(frozen=True)
class StampQuery:
    """A validated stamp request (see the router for the JSON form)."""

    targets: Any  # (ra, dec) lists, or a list of DALI region strings
    size: Any  # pixels: one value or one per target
    n_objects: int
    dataset_types: tuple[str, ...]
    bands: tuple[str, ...] | None
    skymap: str | None
    inner: bool
    mode: str


def check_objects(query: StampQuery, limits: StampLimits) -> None:
    if query.n_objects > limits.max_objects:
        raise LimitExceeded(f"{query.n_objects} objects; this service cuts stamps of at most "
                            f"{limits.max_objects} per request")


def plan(registry: Registry, query: StampQuery, limits: StampLimits) -> StampPlan:
    """The work plan, refused when it holds too many stamps or (positions) pixels."""
    check_objects(query, limits)
    found = registry.plan_stamps(query.targets, size=query.size,
                                 dataset_types=query.dataset_types,
                                 bands=query.bands, skymap=query.skymap, inner=query.inner)
    if found.pairs > limits.max_stamps:
        raise LimitExceeded(f"the request makes {found.pairs} stamps (objects x covering "
                            f"coadds); this service returns at most {limits.max_stamps}")
    pixels = sum(int((task.width * task.height).sum()) for task in found.tasks)
    if pixels > limits.max_pixels:
        raise LimitExceeded(f"the stamps would hold {pixels} pixels per plane; this service "
                            f"returns at most {limits.max_pixels} per request")
    return found


def cut(found: StampPlan, query: StampQuery, limits: StampLimits) -> StampResult:
    """Cut the planned stamps (files read here, no database connection held)."""
    result = execute(found, mode=query.mode)
    pixels = sum(int(array.size) for stamp in result.stamps for array in stamp.planes.values())
    if pixels > limits.max_pixels:
        raise LimitExceeded(f"the stamps hold {pixels} pixels over all planes; this service "
                            f"returns at most {limits.max_pixels} per request")
    return result


def manifest(result: StampResult, files: dict[int, str] | None = None) -> dict[str, Any]:
    """What the answer holds: one entry per stamp (data ID, source, box) and per problem."""
    stamps = []
    for number, stamp in enumerate(result.stamps, start=1):
        entry: dict[str, Any] = {
            "number": number, "target": stamp.target, **stamp.coadd._asdict(),
            "uri": stamp.uri, "hdu": stamp.hdu, "x0": stamp.origin_original[0],
            "y0": stamp.origin_original[1], "shape": list(stamp.shape),
            "complete": stamp.complete, "planes": list(stamp.planes)}
        if files is not None:
            entry["file"] = files[number]
        stamps.append(entry)
    problems = [{**p.coadd._asdict(), "uri": p.uri, "reason": p.reason}
                for p in result.problems]
    return {"targets": result.n_targets, "stamps": stamps, "problems": problems}


def as_zip(result: StampResult) -> bytes:
    """A zip (stored, not deflated: FITS float pixels barely compress) of one FITS file per
    stamp, plus ``manifest.json``."""
    buffer = io.BytesIO()
    names: dict[int, str] = {}
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        primary = fits_writer.primary_hdu([fits_writer.card("ORIGIN", "skyreg",
                                                            "postage stamp")])
        for number, stamp, chunk in result.iter_fits_stamps():
            c = stamp.coadd
            name = (f"stamp{number:06d}_t{stamp.target}_{c.dataset_type}_{c.tract}_{c.patch}"
                    f"_{c.band}.fits")
            names[number] = name
            archive.writestr(name, primary + chunk)
        archive.writestr("manifest.json", json.dumps(manifest(result, names), indent=1))
    return buffer.getvalue()


def positions_query(positions: list[tuple[float, float, int | None]], size: int,
                    **common: Any) -> StampQuery:
    if not positions:
        raise UsageFault("positions: give at least one position")
    ra = [p[0] for p in positions]
    dec = [p[1] for p in positions]
    sizes: Any = size if all(p[2] is None for p in positions) else [
        size if p[2] is None else p[2] for p in positions]
    return StampQuery((ra, dec), sizes, len(positions), **common)


def regions_query(regions: list[str], **common: Any) -> StampQuery:
    if not regions:
        raise UsageFault("region: give at least one region")
    return StampQuery(regions, 64, len(regions), **common)
