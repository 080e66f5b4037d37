"""The sky viewer's service layer: what the page at ``/`` asks the registry, as JSON.

Three questions, each one request, so the page stays a thin drawing layer:

* a **field** — the CCDs (with vertices, band, time), patches and tracts overlapping a cone,
  a tract or a patch, found by the registry's exact searches;
* the **details** of one CCD, patch or tract — data ID, polygons, files with their DataLink,
  file and PNG preview URLs;
* the **coverage** count map (visits per cell) with the cells' polygons, cached per worker
  until CCDs are added (:func:`skyreg.registry.sky.state_token`).

Like :mod:`skyreg.service.queries` for the JSON API, this is the one place where the viewer's
endpoints call into the registry.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import quote, urlencode

from lsst.sphgeom import LonLat

from skyreg.geometry.sky_data import Footprint, vertices_of
from skyreg.plots.colors import band_color
from skyreg.registry import Registry
from skyreg.registry import sky as registry_sky
from skyreg.registry.dataset_ids import ccd_dataset_key, dataset_id, patch_dataset_key
from skyreg.search.results import CcdRef, PatchRef, TractRef
from skyreg.service import documents
from skyreg.service.soda_pixels import local_path


def _rounded(values: tuple[float, ...]) -> list[float]:
    """Vertices to 1e-9 degree (0.004 mas): plenty for drawing, a third of the JSON."""
    return [round(v, 9) for v in values]


def _ccd_columns(footprints: list[Footprint]) -> dict[str, list[Any]]:
    return {
        "instrument": [f.key[0] for f in footprints], "visit": [f.key[1] for f in footprints],
        "detector": [f.key[2] for f in footprints], "band": [f.band for f in footprints],
        "mjd": [f.mjd_start for f in footprints],
        "ra": [_rounded(f.ra) for f in footprints], "dec": [_rounded(f.dec) for f in footprints],
    }


def _tile_columns(footprints: list[Footprint], keys: tuple[str, ...]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {name: [f.key[i] for f in footprints]
                                     for i, name in enumerate(keys)}
    columns.update({
        "ra": [_rounded(f.ra) for f in footprints], "dec": [_rounded(f.dec) for f in footprints],
        "inner_ra": [_rounded(f.inner_ra) for f in footprints],
        "inner_dec": [_rounded(f.inner_dec) for f in footprints]})
    return columns


def _circle(region: Any) -> tuple[float, float, float]:
    circle = region.getBoundingCircle()
    centre = LonLat(circle.getCenter())
    return (centre.getLon().asDegrees(), centre.getLat().asDegrees(),
            circle.getOpeningAngle().asDegrees())


def field(registry: Registry, region: dict[str, Any], *, band: list[str] | None,
          max_ccds: int) -> dict[str, Any]:
    """Everything the viewer draws for one region (``cone=``, ``tract=`` or ``patch=``)."""
    if "cone" in region:
        ra, dec, radius = region["cone"]
        outline: dict[str, Any] = {"kind": "cone", "ra": ra % 360.0, "dec": dec,
                                   "radius": radius}
        centre = (ra % 360.0, dec, radius)
        search: dict[str, Any] = {"cone": region["cone"]}
    else:
        kind = "tract" if "tract" in region else "patch"
        key = region[kind]
        polygon = (registry.tract_region(*key) if kind == "tract"
                   else registry.patch_region(*key))
        ras, decs = vertices_of(polygon)
        outline = {"kind": kind, "key": list(key), "ra": list(ras), "dec": list(decs)}
        centre = _circle(polygon)
        search = {"region": polygon}
    refs = registry.find_ccds(band=band, **region)
    total = len(refs)
    ccds = registry.footprints(refs[:max_ccds])
    patches = registry.find_patches(**search)
    tracts = registry.find_tracts(**search)
    if "tract" in region:  # a tract's own patches, not its neighbours' overlapping ones
        patches = patches[[(p.skymap, p.tract) == region["tract"] for p in patches]]
    patch_shapes = registry.footprints(patches[:max_ccds])
    tract_shapes = registry.footprints(tracts)
    bands = sorted({f.band for f in ccds if f.band})
    return {
        "center": {"ra": centre[0], "dec": centre[1], "radius": centre[2]},
        "region": outline,
        "ccds": _ccd_columns(ccds),
        "patches": _tile_columns(patch_shapes, ("skymap", "tract", "patch")),
        "tracts": _tile_columns(tract_shapes, ("skymap", "tract")),
        "total": {"ccds": total, "patches": len(patches), "tracts": len(tracts)},
        "truncated": total > len(ccds) or len(patches) > len(patch_shapes),
        "bands": {b: band_color(b) for b in bands},
    }


def _file_entries(registry: Registry, ref: CcdRef | PatchRef, base_url: str
                  ) -> list[dict[str, Any]]:
    entries = []
    for dataset in registry.datasets_of(ref):
        if isinstance(ref, CcdRef):
            key = ccd_dataset_key(dataset.dataset_type, *ref)
        else:
            key = patch_dataset_key(dataset.dataset_type, *ref, dataset.band)
        identifier = dataset_id(key)
        served = local_path(dataset.uri) is not None
        query = urlencode({"ID": identifier}, quote_via=quote)
        entries.append({
            "dataset_type": dataset.dataset_type, "band": dataset.band, "id": identifier,
            "uri": dataset.uri, "hdu": dataset.hdu, "size_bytes": dataset.size_bytes,
            "datalink": f"{base_url}/datalink/links?{query}",
            "file": documents.file_url(base_url, identifier) if served else None,
            "preview": documents.preview_url(base_url, identifier) if served else None,
        })
    return entries


def details(registry: Registry, kind: str, key: tuple[Any, ...], base_url: str
            ) -> dict[str, Any] | None:
    """Data ID, polygons and files of one CCD, patch or tract (None if not registered)."""
    ref: CcdRef | PatchRef | TractRef
    if kind == "ccd":
        ref = CcdRef(*key)
    elif kind == "patch":
        ref = PatchRef(*key)
    else:
        ref = TractRef(*key)
    found = registry.footprints([ref])
    if not found:
        return None
    footprint = found[0]
    names = {"ccd": ("instrument", "visit", "detector"), "patch": ("skymap", "tract", "patch"),
             "tract": ("skymap", "tract")}[kind]
    answer: dict[str, Any] = {
        "kind": kind, "data_id": dict(zip(names, ref, strict=True)),
        "ra": list(footprint.ra), "dec": list(footprint.dec),
    }
    if kind == "ccd":
        answer.update({"band": footprint.band, "mjd_start": footprint.mjd_start,
                       "exposure_time": footprint.exposure_time,
                       "color": band_color(footprint.band)})
    else:
        answer.update({"inner_ra": list(footprint.inner_ra),
                       "inner_dec": list(footprint.inner_dec)})
    if isinstance(ref, (CcdRef, PatchRef)):
        answer["files"] = _file_entries(registry, ref, base_url)
    else:
        answer["files"] = []
    return answer


class CoverageCache:
    """Coverage answers by (level, registry state); a few entries per worker process."""

    def __init__(self, size: int = 8) -> None:
        self._entries: OrderedDict[tuple[str, int | None], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, registry: Registry, level: int | None) -> tuple[str, dict[str, Any]]:
        """(ETag, answer) for the coverage map at ``level``, computed at most once per state."""
        token = registry_sky.state_token(registry)
        key = (token, level)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return f'"{token}:{level}"', self._entries[key]
        answer = coverage(registry, level)
        with self._lock:
            self._entries[key] = answer
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return f'"{token}:{level}"', answer


def coverage(registry: Registry, level: int | None) -> dict[str, Any]:
    """The coverage map with each cell's polygon (vertices in degrees)."""
    cov = registry.coverage_map(level)
    rings = [vertices_of(cov.cell_polygon(int(cell))) for cell in cov.cells]
    return {
        "scheme": cov.scheme, "level": cov.level, "bands": list(cov.bands),
        "colors": {b: band_color(b) for b in cov.bands},
        "cells": {
            "pixel": [int(c) for c in cov.cells],
            "ra": [[round(v, 6) for v in ra] for ra, _ in rings],
            "dec": [[round(v, 6) for v in dec] for _, dec in rings],
        },
        "counts": {"all": [int(v) for v in cov.total],
                   **{b: [int(v) for v in cov.band_counts(b)] for b in cov.bands}},
    }
