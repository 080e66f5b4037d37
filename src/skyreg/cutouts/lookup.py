"""Registry lookups of the stamp planner: candidate coadd files, tract frames, patch WCSs.

This is the only module of :mod:`skyreg.cutouts` that talks to the database. It asks three
things, each in one statement for a whole request:

* the coadd files (with their patches' pixel boxes) of every patch indexed in a set of pixel
  ranges -- the registry's spatial index, the same range scan ``find_datasets`` runs;
* the frames (TAN WCS parameters and inner polygons) of the tracts those patches belong to,
  cached for the life of the lookup (registered tracts never change);
* the pixel scale of each sky map, to turn stamp sizes in pixels into search radii.

The exact selection (which stamp box touches which patch box) is done by the caller in each
tract's pixel frame, vectorised over all objects; see :mod:`skyreg.cutouts.plan`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS
from lsst.sphgeom import ConvexPolygon

from skyreg.cutouts.errors import StampRequestError
from skyreg.errors import NotFoundError
from skyreg.geometry.polygons import decode_polygon
from skyreg.skymaps.tan_wcs import astropy_tan_wcs

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_FILES_SQL = """
SELECT p.skymap, p.tract, p.patch, p.outer_bbox, p.inner_bbox,
       d.dataset_type, d.band, d.uri, d.hdu, d.size_bytes, d.checksum
FROM patch p
JOIN patch_dataset d ON d.skymap = p.skymap AND d.tract = p.tract AND d.patch = p.patch
WHERE p.patch_id = ANY(ARRAY(
        SELECT pp.patch_id FROM unnest(%(lo)s::int8[], %(hi)s::int8[]) AS r(lo, hi)
        JOIN patch_pixel pp ON pp.pix >= r.lo AND pp.pix < r.hi))
  AND d.dataset_type = ANY(%(types)s::text[])
  AND (%(all_bands)s OR d.band = ANY(%(bands)s::text[]))
  AND (%(all_skymaps)s OR p.skymap = ANY(%(skymaps)s::text[]))
"""

_TRACTS_SQL = """
SELECT skymap, tract, wcs, inner_region FROM tract
WHERE skymap = %(skymap)s AND tract = ANY(%(tracts)s::int8[])
"""

_SKYMAPS_SQL = "SELECT name, parameters FROM skymap"

_TYPES_SQL = "SELECT name, dimensions FROM dataset_type"

_PATCH_SQL = """
SELECT t.wcs, p.outer_bbox FROM patch p JOIN tract t ON t.skymap = p.skymap AND t.tract = p.tract
WHERE p.skymap = %(skymap)s AND p.tract = %(tract)s AND p.patch = %(patch)s
"""


@dataclass(frozen=True)
class TractFrame:
    """A tract's TAN pixel frame (the numbers of its registered WCS) and inner polygon."""

    skymap: str
    tract: int
    crval: tuple[float, float]
    crpix: tuple[float, float]  # FITS 1-based
    cd: FloatArray  # (2, 2), degrees per pixel
    inner: ConvexPolygon


@dataclass(frozen=True)
class FileRows:
    """Candidate coadd files, one row per file; boxes are half-open tract pixel ranges."""

    skymap: npt.NDArray[np.object_]
    tract: IntArray
    patch: IntArray
    outer: IntArray  # (n, 4): x0, y0, x1, y1
    inner: IntArray  # (n, 4)
    dataset_type: npt.NDArray[np.object_]
    band: npt.NDArray[np.object_]
    uri: list[str]
    hdu: IntArray
    size_bytes: list[int | None]
    checksum: list[str | None]

    def __len__(self) -> int:
        return int(self.tract.shape[0])


def _half_open(box: Any, what: str) -> list[int]:
    if box is None:
        raise StampRequestError(f"{what} was registered without pixel boxes; register its sky "
                                "map with `skyreg skymap register` to cut stamps")
    x0, y0, x1, y1 = (int(v) for v in box)
    return [x0, y0, x1 + 1, y1 + 1]


def _tan_parameters(header: dict[str, Any]) -> tuple[tuple[float, float], tuple[float, float],
                                                     FloatArray]:
    crval = (float(header["CRVAL1"]), float(header["CRVAL2"]))
    crpix = (float(header["CRPIX1"]), float(header["CRPIX2"]))
    cd = np.array([[header["CD1_1"], header["CD1_2"]], [header["CD2_1"], header["CD2_2"]]],
                  dtype=np.float64)
    return crval, crpix, cd


class CoaddLookup:
    """Registry lookups for stamp plans.

    ``fetch(sql, params)`` runs a SELECT as a prepared statement with binary results and
    returns its rows (the registry's read session, which reconnects if the server restarted).
    """

    def __init__(self, fetch: Callable[[str, dict[str, Any]], list[tuple[Any, ...]]]) -> None:
        self._fetch = fetch
        self._tracts: dict[tuple[str, int], TractFrame] = {}

    def pixel_scales(self) -> dict[str, float]:
        """Pixel scale in degrees of every registered sky map with a pixel grid."""
        scales = {}
        for name, parameters in self._fetch(_SKYMAPS_SQL, {}):
            values = parameters if isinstance(parameters, dict) else json.loads(parameters)
            scale = values.get("pixel_scale_arcsec")
            if scale is not None:
                scales[str(name)] = float(scale) / 3600.0
        return scales

    def patch_types(self) -> dict[str, str]:
        """Registered dataset types and their dimensions."""
        return {str(n): str(d) for n, d in self._fetch(_TYPES_SQL, {})}

    def candidate_files(self, ranges: list[tuple[int, int]], dataset_types: list[str],
                        bands: list[str] | None, skymaps: list[str] | None) -> FileRows:
        """Files of the given types and bands of every patch indexed in the pixel ranges."""
        rows: list[tuple[Any, ...]] = []
        if ranges:
            lo, hi = zip(*ranges, strict=True)
            rows = self._fetch(_FILES_SQL, {
                "lo": list(lo), "hi": list(hi), "types": dataset_types,
                "all_bands": bands is None, "bands": bands or [],
                "all_skymaps": skymaps is None, "skymaps": skymaps or []})
        rows.sort(key=lambda r: (r[0], r[1], r[2], r[5], r[6]))
        n = len(rows)
        outer = np.array([_half_open(r[3], f"patch {r[1]}/{r[2]} of sky map {r[0]!r}")
                          for r in rows], dtype=np.int64).reshape(n, 4)
        inner = np.array([_half_open(r[4], f"patch {r[1]}/{r[2]} of sky map {r[0]!r}")
                          for r in rows], dtype=np.int64).reshape(n, 4)
        return FileRows(
            skymap=np.array([r[0] for r in rows], dtype=object),
            tract=np.array([r[1] for r in rows], dtype=np.int64),
            patch=np.array([r[2] for r in rows], dtype=np.int64),
            outer=outer, inner=inner,
            dataset_type=np.array([r[5] for r in rows], dtype=object),
            band=np.array([r[6] for r in rows], dtype=object),
            uri=[str(r[7]) for r in rows],
            hdu=np.array([r[8] for r in rows], dtype=np.int64),
            size_bytes=[None if r[9] is None else int(r[9]) for r in rows],
            checksum=[r[10] for r in rows],
        )

    def tract_frames(self, skymap: str, tracts: list[int]) -> dict[int, TractFrame]:
        """Frames of the given tracts of one sky map (cached)."""
        missing = [t for t in tracts if (skymap, t) not in self._tracts]
        if missing:
            for name, tract, header, inner in self._fetch(
                    _TRACTS_SQL, {"skymap": skymap, "tracts": missing}):
                if header is None:
                    raise StampRequestError(
                        f"sky map {name!r} was registered without tract WCS; register it "
                        "with `skyreg skymap register` to cut stamps")
                values = header if isinstance(header, dict) else json.loads(header)
                crval, crpix, cd = _tan_parameters(values)
                self._tracts[(str(name), int(tract))] = TractFrame(
                    str(name), int(tract), crval, crpix, cd, decode_polygon(bytes(inner)))
        return {t: self._tracts[(skymap, t)] for t in tracts if (skymap, t) in self._tracts}

    def patch_frame(self, skymap: str, tract: int, patch: int) -> tuple[WCS, tuple[int, int]]:
        """Astropy WCS and numpy shape (rows, columns) of a patch's outer box."""
        rows = self._fetch(_PATCH_SQL, {"skymap": skymap, "tract": int(tract),
                                        "patch": int(patch)})
        if not rows:
            raise NotFoundError(f"patch ({skymap!r}, {tract}, {patch}) is not in the registry")
        header, box = rows[0]
        if header is None:
            raise StampRequestError(f"sky map {skymap!r} was registered without tract WCS; "
                                    "register it with `skyreg skymap register`")
        x0, y0, x1, y1 = _half_open(box, f"patch {tract}/{patch} of sky map {skymap!r}")
        values = header if isinstance(header, dict) else json.loads(header)
        crval, crpix, cd = _tan_parameters(values)
        wcs = astropy_tan_wcs(crval[0], crval[1], crpix[0] - x0, crpix[1] - y0, cd)
        shape = (y1 - y0, x1 - x0)
        wcs.array_shape = shape
        return wcs, shape
