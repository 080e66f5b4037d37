"""``skyreg skymap register``: a sky map definition → tract/patch geometry → one transaction.

A sky map is identified by the hash of its definition. Registering a name that is already
stored with the same hash does nothing (the geometry is not even computed); a different
definition under a stored name is refused. Two concurrent registrations of one definition
both succeed and store it once (the loader's lock and key checks).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg.types.json import Jsonb
from sqlalchemy import Engine, select

from skyreg.db.binary_copy import Column, Columns, encoded_polygons
from skyreg.errors import ConflictError
from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.polygons import GeometryError, check_flat_polygons, unit_vectors
from skyreg.ingest.footprints import (
    PixelSets,
    add_uncontained,
    pixel_coverage,
    start_polygon_coverage,
)
from skyreg.ingest.loader import Batch, load
from skyreg.ingest.paused_gc import with_paused_gc
from skyreg.ingest.report import KindCount
from skyreg.schema import patch, patch_pixel, skymap, tract, tract_pixel
from skyreg.skymaps import SkyMapDefinition, SkyMapGeometry, build_skymap, definition_hash

Progress = Callable[[str, int, int], None]
FloatArray = npt.NDArray[np.float64]


@dataclass
class SkymapReport:
    """What a registration did."""

    name: str
    hash_sha1_hex: str
    registered: bool = False
    counts: dict[str, KindCount] = field(default_factory=dict)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        if not self.registered:
            return [f"sky map {self.name!r} is already registered with this definition "
                    f"({self.hash_sha1_hex}); nothing to do"]
        tracts = self.counts.get("tract", KindCount()).inserted
        patches = self.counts.get("patch", KindCount()).inserted
        return [f"registered sky map {self.name!r} ({self.hash_sha1_hex}): {tracts:,} tracts, "
                f"{patches:,} patches in {self.seconds:.1f} s"]

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "hash_sha1_hex": self.hash_sha1_hex,
                "registered": self.registered, "seconds": round(self.seconds, 3),
                "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
                "counts": {k: {"in_input": c.in_input, "inserted": c.inserted}
                           for k, c in self.counts.items()}}


def stored_hash(engine: Engine, name: str) -> str | None:
    with engine.connect() as connection:
        value = connection.execute(
            select(skymap.c.hash_sha1_hex).where(skymap.c.name == name)).scalar_one_or_none()
    return None if value is None else str(value)


@with_paused_gc
def register_skymap(engine: Engine, scheme: PixelScheme, name: str,
                    definition: SkyMapDefinition, progress: Progress | None = None
                    ) -> SkymapReport:
    """Register ``definition`` under ``name`` (idempotent; a different definition is refused)."""
    started = time.perf_counter()
    digest = definition_hash(definition)
    report = SkymapReport(name, digest)
    stored = stored_hash(engine, name)
    if stored == digest:
        report.seconds = time.perf_counter() - started
        return report
    if stored is not None:
        raise ConflictError(
            f"sky map {name!r} is already registered with a different definition (stored hash "
            f"{stored}, this definition {digest}); register it under another name")
    if progress is not None:
        progress("computing tracts and patches", 0, 1)
    geometry = build_skymap(definition)
    if progress is not None:
        progress("computing tracts and patches", 1, 1)
    report.stage_seconds["geometry"] = time.perf_counter() - started
    batches = _batches(scheme, name, definition, digest, geometry, progress,
                       report.stage_seconds)
    loading = time.perf_counter()
    database_seconds: dict[str, float] = {}
    report.counts = load(engine, batches, progress=progress, timings=database_seconds)
    report.stage_seconds["database"] = time.perf_counter() - loading
    report.stage_seconds.update({f"database: {k}": v for k, v in database_seconds.items()})
    report.registered = report.counts["skymap"].inserted > 0
    report.seconds = time.perf_counter() - started
    return report


def _encode_fixed(ra: FloatArray, dec: FloatArray, what: str) -> list[bytes]:
    """Encode (n, k) vertex arrays; geometry from the generator must always be valid."""
    n, k = ra.shape
    offsets = np.arange(0, n * k + 1, k, dtype=np.int64)
    return _encoded(ra.ravel(), dec.ravel(), offsets, what)


def _encode_ragged(ra: FloatArray, dec: FloatArray, offsets: npt.NDArray[np.int64],
                   what: str) -> list[bytes]:
    return _encoded(np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64),
                    np.asarray(offsets, dtype=np.int64), what)


def _encoded(ra: FloatArray, dec: FloatArray, offsets: npt.NDArray[np.int64],
             what: str) -> list[bytes]:
    """The encodings of generated polygons, which are stored with the arrays as generated.

    So they must be valid and already in stored form (RA in [0, 360), no redundant vertex);
    otherwise the parameters of the definition produced a polygon skyreg cannot index.
    """
    checked = check_flat_polygons(ra, dec, offsets)
    bad = [i for i, error in enumerate(checked.errors) if error is not None]
    if bad:
        raise GeometryError(f"{what} {bad[0]}: the sky map's parameters give an invalid "
                            f"polygon: {checked.errors[bad[0]]}")
    if checked.stored:
        row = min(checked.stored)
        raise GeometryError(f"{what} {row}: the sky map's parameters give a polygon with "
                            "redundant vertices or RA outside [0, 360)")
    return checked.encoded  # type: ignore[return-value]


def _inside_all(inner_ra: FloatArray, inner_dec: FloatArray, outer_ra: FloatArray,
                outer_dec: FloatArray) -> npt.NDArray[np.bool_]:
    """Per row, whether every inner vertex is strictly inside the (convex) outer polygon."""
    outer = unit_vectors(outer_ra, outer_dec)
    inner = unit_vectors(inner_ra, inner_dec)
    normals = np.cross(outer, np.roll(outer, -1, axis=1))
    sides = np.einsum("pek,pvk->pev", normals, inner)
    # Either orientation: all positive (counter-clockwise) or all negative (clockwise).
    return np.asarray((sides > 0).all(axis=(1, 2)) | (sides < 0).all(axis=(1, 2)))


def _polygon_columns(encoded: list[bytes], ra: FloatArray, dec: FloatArray) -> list[Column]:
    blobs = encoded_polygons(encoded)
    if blobs is None:
        raise GeometryError("generated patch polygons differ in vertex count")
    return [Column("bytea", blobs), Column("float8[]", np.asarray(ra)),
            Column("float8[]", np.asarray(dec))]


def _wcs_header(t: Any, i: int) -> dict[str, Any]:
    """FITS WCS keywords of tract row ``i``, readable by ``astropy.wcs.WCS(header)``."""
    cd = np.asarray(t.cd[i], dtype=np.float64)
    return {
        "NAXIS": 2, "NAXIS1": int(t.width[i]), "NAXIS2": int(t.height[i]),
        "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg",
        "RADESYS": "ICRS", "EQUINOX": 2000.0,
        "CRVAL1": float(t.crval_ra[i]), "CRVAL2": float(t.crval_dec[i]),
        "CRPIX1": float(t.crpix_x[i]), "CRPIX2": float(t.crpix_y[i]),
        "CD1_1": float(cd[0, 0]), "CD1_2": float(cd[0, 1]),
        "CD2_1": float(cd[1, 0]), "CD2_2": float(cd[1, 1]),
    }


def _batches(scheme: PixelScheme, name: str, definition: SkyMapDefinition, digest: str,
             geometry: SkyMapGeometry, progress: Progress | None,
             stage_seconds: dict[str, float]) -> list[Batch]:
    started = time.perf_counter()
    t, p = geometry.tracts, geometry.patches
    tract_inner = _encode_ragged(t.inner_ra, t.inner_dec, t.inner_offsets, "tract")
    tract_outer = _encode_fixed(np.asarray(t.outer_ra), np.asarray(t.outer_dec), "tract")
    patch_inner = _encode_fixed(np.asarray(p.inner_ra), np.asarray(p.inner_dec), "patch")
    patch_outer = _encode_fixed(np.asarray(p.outer_ra), np.asarray(p.outer_dec), "patch")
    stage_seconds["encode"] = time.perf_counter() - started

    started = time.perf_counter()
    totals = {"tract": len(tract_outer)}
    done = dict.fromkeys(totals, 0)

    def advance(kind: str) -> Callable[[int], None]:
        def step(count: int) -> None:
            done[kind] += count
            if progress is not None:
                progress(f"pixelizing {kind}", done[kind], totals[kind])
        return step

    # Patch inner boxes lie inside their outer boxes; where they share an edge (the outer box
    # is clipped at the tract's edge) the vertex test cannot tell, and the index takes the
    # union of both covers.
    sticking_out = np.flatnonzero(~_inside_all(np.asarray(p.inner_ra), np.asarray(p.inner_dec),
                                               np.asarray(p.outer_ra), np.asarray(p.outer_dec)))
    # Patch covers are computed by worker processes while this process copies the rows into
    # the database; the loader asks for them when it copies the pixel rows.
    patch_tract = np.asarray(p.tract, dtype=np.int64)
    covers = start_polygon_coverage(
        scheme, patch_outer + [patch_inner[i] for i in sticking_out],
        np.concatenate([unit_vectors(p.outer_ra, p.outer_dec),
                        unit_vectors(np.asarray(p.inner_ra)[sticking_out],
                                     np.asarray(p.inner_dec)[sticking_out])]),
        np.concatenate([patch_tract, patch_tract[sticking_out]]))

    def patch_pixels(rows: npt.NDArray[np.int64]) -> PixelSets:
        both = covers()
        count = len(patch_outer)
        outer = PixelSets(both.flat[:both.offsets[count]], both.offsets[:count + 1])
        inner = PixelSets(both.flat[both.offsets[count]:],
                          both.offsets[count:] - both.offsets[count])
        return outer.union(sticking_out, inner).take(rows)

    # Tracts hold ~180 trixels each: sphgeom's descent, which only follows their edges, is
    # faster for them than the whole-array test of every trixel.
    tract_pixels = add_uncontained(scheme, tract_outer, tract_inner,
                                   pixel_coverage(scheme, tract_outer, advance("tract")))
    stage_seconds["pixel coverage"] = time.perf_counter() - started

    started = time.perf_counter()
    parameters = Jsonb(definition.to_parameters(), dumps=json.dumps)
    skymap_rows = [(name, definition.kind, digest, parameters)]
    tract_rows = [
        (name, int(t.tract[i]), float(t.ra_center[i]), float(t.dec_center[i]),
         int(t.ring[i]) if int(t.ring[i]) >= 0 else None,
         Jsonb(_wcs_header(t, i), dumps=json.dumps),
         tract_inner[i], *(side.tolist() for side in t.inner_polygon(i)),
         tract_outer[i], t.outer_ra[i].tolist(), t.outer_dec[i].tolist())
        for i in range(len(tract_outer))
    ]
    # Stored boxes are inclusive (x_min, y_min, x_max, y_max); the geometry's are half-open.
    patch_rows = Columns([
        Column("text", name), Column("int8", p.tract), Column("int8", p.patch),
        Column("int4", p.cell_x), Column("int4", p.cell_y),
        Column("int4[]", np.stack([p.inner_x0, p.inner_y0, p.inner_x1 - 1, p.inner_y1 - 1],
                                  axis=1)),
        Column("int4[]", np.stack([p.outer_x0, p.outer_y0, p.outer_x1 - 1, p.outer_y1 - 1],
                                  axis=1)),
        *_polygon_columns(patch_inner, p.inner_ra, p.inner_dec),
        *_polygon_columns(patch_outer, p.outer_ra, p.outer_dec),
    ], len(patch_outer))
    stage_seconds["rows"] = time.perf_counter() - started
    regions = ("inner_region", "inner_ra", "inner_dec", "outer_region", "outer_ra", "outer_dec")
    source = f"sky map {name!r}"
    return [
        Batch("skymap", skymap, ("name",), ("name", "kind", "hash_sha1_hex", "parameters"),
              skymap_rows, source=source),
        Batch("tract", tract, ("skymap", "tract"),
              ("skymap", "tract", "ra_center", "dec_center", "ring", "wcs", *regions),
              tract_rows, tract_pixel, "tract_id", tract_pixels, source=source),
        Batch("patch", patch, ("skymap", "tract", "patch"),
              ("skymap", "tract", "patch", "cell_x", "cell_y", "inner_bbox", "outer_bbox",
               *regions),
              patch_rows, patch_pixel, "patch_id", patch_pixels, source=source,
              spatial_order=False),  # generated tract by tract: already spatially ordered
    ]
