"""What pictures of the registry need: footprint polygons, the files of one footprint, and a
coverage count map.

The searches (:meth:`Registry.find_ccds`, ...) answer *which* footprints; drawing them needs
their vertices, the visit's band and time, and for an overview of a whole survey a count of
visits per sky cell. Those lookups live here, shared by the plots (:mod:`skyreg.plots`) and
the sky viewer of the web service, so both draw the same polygons and the same counts.

The coverage map counts, per cell of a coarse level of the registry's own pixelization, the
visits that have a CCD indexed under a pixel inside that cell. It is one aggregate over the
pixel index in SQL (nested HTM and HEALPix indexes share the property that the parent of
pixel ``p`` at ``d`` levels up is ``p >> 2d``), so it costs one scan of ``ccd_pixel`` and
no geometry in Python. The index is conservative (sphgeom envelopes), so a CCD whose edge
passes within one index pixel (~0.1° at HTM 9) of a cell may count there too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from skyreg.errors import SkyregError
from skyreg.geometry.sky_data import CoverageMap, Footprint
from skyreg.search.results import (
    CcdRef,
    DatasetRef,
    PatchRef,
    ResultTable,
    TractRef,
    dataset_results,
)

if TYPE_CHECKING:
    from skyreg.registry.registry import Registry

#: Coarsest and finest levels of a coverage map (finer maps have too many cells to draw).
COVERAGE_LEVELS = (0, 8)
DEFAULT_COVERAGE_LEVEL = 6


class SkyQueryError(SkyregError, ValueError):
    """A footprint or coverage lookup asked with arguments that do not make sense."""


_CCD_FOOTPRINTS = """
SELECT c.instrument, c.visit, c.detector, c.ra, c.dec, v.band, v.mjd_tai_start,
       v.exposure_time
FROM unnest(%(instruments)s::text[], %(visits)s::bigint[], %(detectors)s::bigint[])
     AS k(instrument, visit, detector)
JOIN ccd c ON c.instrument = k.instrument AND c.visit = k.visit AND c.detector = k.detector
JOIN visit v ON v.instrument = c.instrument AND v.visit = c.visit
"""

_PATCH_FOOTPRINTS = """
SELECT p.skymap, p.tract, p.patch, p.outer_ra, p.outer_dec, p.inner_ra, p.inner_dec
FROM unnest(%(skymaps)s::text[], %(tracts)s::bigint[], %(patches)s::bigint[])
     AS k(skymap, tract, patch)
JOIN patch p ON p.skymap = k.skymap AND p.tract = k.tract AND p.patch = k.patch
"""

_TRACT_FOOTPRINTS = """
SELECT t.skymap, t.tract, t.outer_ra, t.outer_dec, t.inner_ra, t.inner_dec
FROM unnest(%(skymaps)s::text[], %(tracts)s::bigint[]) AS k(skymap, tract)
JOIN tract t ON t.skymap = k.skymap AND t.tract = k.tract
"""


def _floats(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


_KINDS = {CcdRef: "ccd", PatchRef: "patch", TractRef: "tract"}


def footprints(registry: Registry, refs: Sequence[Any], kind: str | None = None
               ) -> list[Footprint]:
    """The footprints of CCDs, patches or tracts (all of one kind), in the order given.

    The kind comes from the refs' types (:class:`CcdRef`, ...) or, for plain tuples, from
    ``kind`` (``"ccd"``, ``"patch"``, ``"tract"``). Refs not in the registry are left out.
    """
    refs = list(refs)
    if not refs:
        return []
    kinds = {_KINDS.get(type(ref)) for ref in refs}
    if kind is None:
        if len(kinds) != 1 or None in kinds:
            raise SkyQueryError("footprints: give CcdRef, PatchRef or TractRef rows of one "
                                "kind, or say which with kind='ccd'|'patch'|'tract'")
        kind = kinds.pop()
    if kind not in ("ccd", "patch", "tract"):
        raise SkyQueryError(f"footprints: kind must be 'ccd', 'patch' or 'tract', not {kind!r}")
    width = 2 if kind == "tract" else 3
    if any(len(ref) != width for ref in refs):
        raise SkyQueryError(f"footprints: a {kind} key has {width} parts")
    found: dict[tuple[Any, ...], Footprint] = {}
    order: list[tuple[Any, ...]]
    if kind == "ccd":
        keys = [CcdRef(str(r[0]), int(r[1]), int(r[2])) for r in refs]
        rows = registry._fetch(_CCD_FOOTPRINTS, {
            "instruments": [k.instrument for k in keys], "visits": [k.visit for k in keys],
            "detectors": [k.detector for k in keys]})
        for inst, vis, det, ra, dec, band, mjd, exposure in rows:
            key = CcdRef(inst, int(vis), int(det))
            found[key] = Footprint("ccd", key, _floats(ra), _floats(dec), band=band,
                                   mjd_start=float(mjd), exposure_time=float(exposure))
        order = list(keys)
    elif kind == "patch":
        pkeys = [PatchRef(str(r[0]), int(r[1]), int(r[2])) for r in refs]
        rows = registry._fetch(_PATCH_FOOTPRINTS, {
            "skymaps": [k.skymap for k in pkeys], "tracts": [k.tract for k in pkeys],
            "patches": [k.patch for k in pkeys]})
        for name, tract_id, patch_id, ora, odec, ira, idec in rows:
            pkey = PatchRef(name, int(tract_id), int(patch_id))
            found[pkey] = Footprint("patch", pkey, _floats(ora), _floats(odec), _floats(ira),
                                    _floats(idec))
        order = list(pkeys)
    else:
        tkeys = [TractRef(str(r[0]), int(r[1])) for r in refs]
        rows = registry._fetch(_TRACT_FOOTPRINTS, {
            "skymaps": [k.skymap for k in tkeys], "tracts": [k.tract for k in tkeys]})
        for name, tract_id, ora, odec, ira, idec in rows:
            tkey = TractRef(name, int(tract_id))
            found[tkey] = Footprint("tract", tkey, _floats(ora), _floats(odec), _floats(ira),
                                    _floats(idec))
        order = list(tkeys)
    return [found[key] for key in dict.fromkeys(order) if key in found]


_CCD_FILES = """
SELECT d.dataset_type, d.instrument, d.visit, d.detector, NULL, NULL, NULL, v.band,
       d.uri, d.hdu, d.format, d.size_bytes, d.checksum
FROM ccd_dataset d JOIN visit v ON v.instrument = d.instrument AND v.visit = d.visit
WHERE d.instrument = %(instrument)s AND d.visit = %(visit)s AND d.detector = %(detector)s
"""

_PATCH_FILES = """
SELECT d.dataset_type, NULL, NULL, NULL, d.skymap, d.tract, d.patch, d.band,
       d.uri, d.hdu, d.format, d.size_bytes, d.checksum
FROM patch_dataset d
WHERE d.skymap = %(skymap)s AND d.tract = %(tract)s AND d.patch = %(patch)s
"""


def datasets_of(registry: Registry, ref: CcdRef | PatchRef) -> ResultTable[DatasetRef]:
    """Every archived file of one CCD (raw, calexp, ...) or one patch (coadds of each band)."""
    if isinstance(ref, CcdRef):
        rows = registry._fetch(_CCD_FILES, {"instrument": ref.instrument, "visit": ref.visit,
                                            "detector": ref.detector})
    elif isinstance(ref, PatchRef):
        rows = registry._fetch(_PATCH_FILES, {"skymap": ref.skymap, "tract": ref.tract,
                                              "patch": ref.patch})
    else:
        raise SkyQueryError(f"datasets_of: expected a CcdRef or PatchRef, got {ref!r}")
    return dataset_results(rows)


# -- coverage ------------------------------------------------------------------------------------


_COVERAGE = """
WITH cells AS (
    SELECT DISTINCT p.pix >> %(shift)s::int AS cell, c.instrument, c.visit
    FROM ccd_pixel p JOIN ccd c ON c.ccd_id = p.ccd_id
)
SELECT cells.cell, v.band, count(*)
FROM cells JOIN visit v ON v.instrument = cells.instrument AND v.visit = cells.visit
GROUP BY cells.cell, v.band
ORDER BY cells.cell, v.band
"""


def coverage_map(registry: Registry, level: int | None = None) -> CoverageMap:
    """Visits per cell at ``level`` of the registry's pixelization (default 6, at most its
    own level), computed in one SQL aggregate over the CCD pixel index."""
    scheme = registry.pixel_scheme
    chosen = DEFAULT_COVERAGE_LEVEL if level is None else int(level)
    finest = min(COVERAGE_LEVELS[1], scheme.level)
    if not COVERAGE_LEVELS[0] <= chosen <= finest:
        raise SkyQueryError(f"coverage level must be within [{COVERAGE_LEVELS[0]}, {finest}] "
                            f"for this registry ({scheme}), got {chosen}")
    rows = registry._fetch(_COVERAGE, {"shift": 2 * (scheme.level - chosen)})
    cells = sorted({int(row[0]) for row in rows})
    bands = tuple(sorted({str(row[1]) for row in rows}))
    counts = np.zeros((len(cells), len(bands)), dtype=np.int64)
    cell_row = {cell: i for i, cell in enumerate(cells)}
    band_col = {band: j for j, band in enumerate(bands)}
    for cell, band, count in rows:
        counts[cell_row[int(cell)], band_col[str(band)]] = int(count)
    return CoverageMap(scheme.scheme, chosen, np.array(cells, dtype=np.int64), bands, counts)


def state_token(registry: Registry) -> str:
    """Changes whenever CCDs are added (ingest only ever adds, and a refused or rolled-back
    ingest leaves no rows): a cache key for coverage maps. One index lookup, no scan."""
    row = registry._fetch("SELECT max(ccd_id) FROM ccd", {})[0]
    return f"{registry.pixel_scheme}:{row[0]}"
