"""Generate a realistic synthetic survey as a survey manifest directory (format version 1).

This is what ``skyreg demo`` and the benchmarks load: an LSSTCam-like camera, a few nights of
visits over a COSMOS-sized area, and the part of a rings sky map that covers it. The output is
a plain manifest directory, so it exercises exactly the same ingest path as real data.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import InputError
from .focal_plane import DETECTOR_MAX, lsstcam_focal_plane
from .skymap import RingsSkyMap, RingsSkyMapConfig
from .visits import (
    LSSTCAM_PHYSICAL_FILTERS,
    MAX_NIGHT_S,
    MAX_OVERHEAD_S,
    VISIT_ID_FACTOR,
    area_bounds,
    ccd_footprints,
    draw_boresights,
    make_schedule,
    parse_day_obs,
    visit_regions,
)
from .writer import (
    DETECTORS_SCHEMA,
    PATCHES_SCHEMA,
    TRACTS_SCHEMA,
    VISIT_DETECTOR_REGIONS_SCHEMA,
    VISITS_SCHEMA,
    dictionary_column,
    fixed_polygons,
    ragged_polygons,
    sha256_file,
    write_json,
    write_parquet,
)

__all__ = ["FORMAT_VERSION", "MANIFEST_FILES", "SurveySpec", "SurveySummary", "generate_survey"]

FORMAT_VERSION = 1

MANIFEST_FILES = (
    "instrument.json",
    "detectors.parquet",
    "visits.parquet",
    "visit_detector_regions.parquet",
    "skymap.json",
    "tracts.parquet",
    "patches.parquet",
)
"""Files written next to manifest.json, all listed with their checksums in it."""

_FOV_RADIUS_DEG = 2.1
"""Upper bound of the distance from the boresight to any science CCD corner (about 2.06°)."""


@dataclass(frozen=True)
class SurveySpec:
    """What to generate. Every field has a default, so ``SurveySpec()`` is the demo survey.

    The area is a RA/Dec box around (``center_ra``, ``center_dec``): ``width_deg`` is measured
    on the sky (a great-circle extent) at the centre's declination and ``height_deg`` in Dec.
    Boresights are drawn uniformly on the sphere inside it; CCDs reach about 2° beyond.
    """

    n_visits: int = 100
    seed: int = 1
    center_ra: float = 150.0
    center_dec: float = 2.2
    width_deg: float = 20.0
    height_deg: float = 15.0
    instrument: str = "LSSTCam"
    skymap: str = "rings"
    bands: tuple[str, ...] = ("u", "g", "r", "i", "z", "y")
    first_day_obs: int = 20270101
    exposure_time: float = 30.0
    visits_per_night: tuple[int, int] = (300, 800)
    #: When set, each CCD gets a ``uri`` (file archive column), e.g.
    #: ``"s3://bucket/raw/{instrument}/{visit}/{detector}.fits"``.
    file_uri_template: str | None = None

    def __post_init__(self) -> None:
        """Reject specs that would produce an invalid or meaningless manifest."""
        if self.n_visits < 0:
            raise InputError("must be >= 0", field="n_visits")
        if not -90.0 <= self.center_dec <= 90.0:
            raise InputError("must be within [-90, 90]", field="center_dec")
        if not math.isfinite(self.center_ra):
            raise InputError("must be finite", field="center_ra")
        if not (self.width_deg > 0.0 and self.height_deg > 0.0):
            raise InputError("width_deg and height_deg must be > 0", field="width_deg")
        if not self.bands:
            raise InputError("at least one band is needed", field="bands")
        if not self.instrument or not self.skymap:
            raise InputError("instrument and skymap names must not be empty", field="instrument")
        if self.exposure_time <= 0.0:
            raise InputError("must be > 0", field="exposure_time")
        lo, hi = self.visits_per_night
        if not 1 <= lo <= hi:
            raise InputError("need 1 <= min <= max", field="visits_per_night")
        if hi * (self.exposure_time + MAX_OVERHEAD_S) > MAX_NIGHT_S:
            # A night must end before the 12:00 UTC day_obs rollover, or MJDs would fall
            # into the next observing day.
            raise InputError(
                f"{hi} visits of {self.exposure_time} s do not fit in one night",
                field="visits_per_night",
            )
        try:
            parse_day_obs(self.first_day_obs)
        except ValueError as exc:
            raise InputError(f"not a valid YYYYMMDD date: {exc}", field="first_day_obs") from exc


@dataclass(frozen=True)
class SurveySummary:
    """Where the manifest was written and how much it holds."""

    out_dir: Path
    n_visits: int
    n_ccds: int
    n_detectors: int
    n_tracts: int
    n_patches: int
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        """Path of manifest.json, the file that ingest is pointed at (via its directory)."""
        return self.out_dir / "manifest.json"


def _physical_filter(instrument: str, band: str) -> str:
    """LSSTCam's real filter names where known, otherwise the band itself."""
    if instrument == "LSSTCam":
        return LSSTCAM_PHYSICAL_FILTERS.get(band, band)
    return band


def _version() -> str:
    """Installed skyreg version, recorded as provenance."""
    try:
        return metadata.version("skyreg")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def generate_survey(out_dir: Path | str, spec: SurveySpec = SurveySpec()) -> SurveySummary:
    """Write a synthetic survey manifest into ``out_dir`` and return what was written.

    The directory is created if needed; files of a previous run are overwritten. manifest.json
    is removed first and written last, so an interrupted run never leaves a directory that
    looks complete. Output is byte-for-byte deterministic for a given spec (including seed)
    and library versions.
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)

    rng = np.random.default_rng(spec.seed)
    fp = lsstcam_focal_plane()
    n_sci = fp.n_science

    # -- instrument and detectors ----------------------------------------------------------
    physical_filters = [_physical_filter(spec.instrument, b) for b in spec.bands]
    write_json(
        out / "instrument.json",
        {
            "name": spec.instrument,
            "detector_max": DETECTOR_MAX,
            # Largest id the day_obs * 100000 + seq_num scheme can produce, plus one.
            "visit_max": 99991231 * VISIT_ID_FACTOR + VISIT_ID_FACTOR,
            "bands": list(spec.bands),
            "physical_filters": physical_filters,
        },
    )
    write_parquet(
        out / "detectors.parquet",
        DETECTORS_SCHEMA,
        {
            "detector": fp.detector,
            "full_name": fp.full_name,
            "raft": fp.raft,
            "name_in_raft": fp.name_in_raft,
            "purpose": fp.purpose,
            "fp_x_min": fp.x_min,
            "fp_x_max": fp.x_max,
            "fp_y_min": fp.y_min,
            "fp_y_max": fp.y_max,
        },
    )

    # -- visits ----------------------------------------------------------------------------
    sched = make_schedule(
        rng,
        spec.n_visits,
        spec.bands,
        spec.first_day_obs,
        spec.exposure_time,
        spec.visits_per_night,
    )
    ra_half, dec_lo, dec_hi = area_bounds(
        spec.center_ra, spec.center_dec, spec.width_deg, spec.height_deg
    )
    ra, dec, rot = draw_boresights(rng, spec.n_visits, spec.center_ra, ra_half, dec_lo, dec_hi)
    region_ra, region_dec = visit_regions(fp, ra, dec, rot)
    filter_of = {b: _physical_filter(spec.instrument, b) for b in spec.bands}
    write_parquet(
        out / "visits.parquet",
        VISITS_SCHEMA,
        {
            "instrument": [spec.instrument] * spec.n_visits,
            "visit": sched.visit,
            "day_obs": sched.day_obs,
            "seq_num": sched.seq_num,
            "band": sched.band,
            "physical_filter": [filter_of[b] for b in sched.band],
            "ra": ra,
            "dec": dec,
            "rot_deg": rot,
            "exposure_time": np.full(spec.n_visits, spec.exposure_time),
            "mjd_tai_start": sched.mjd_tai_start,
            "mjd_tai_end": sched.mjd_tai_end,
            "region_ra": fixed_polygons(region_ra),
            "region_dec": fixed_polygons(region_dec),
        },
    )

    # -- CCD footprints ----------------------------------------------------------------------
    ccd_ra_parts = []
    ccd_dec_parts = []
    for block_ra, block_dec in ccd_footprints(fp, ra, dec, rot):
        ccd_ra_parts.append(block_ra.reshape(-1, 4))
        ccd_dec_parts.append(block_dec.reshape(-1, 4))
    ccd_ra = np.concatenate(ccd_ra_parts) if ccd_ra_parts else np.zeros((0, 4))
    ccd_dec = np.concatenate(ccd_dec_parts) if ccd_dec_parts else np.zeros((0, 4))
    n_ccds = spec.n_visits * n_sci
    ccd_columns: dict[str, Any] = {
        "instrument": dictionary_column(spec.instrument, n_ccds),
        "visit": np.repeat(sched.visit, n_sci),
        "detector": np.tile(fp.detector[:n_sci], spec.n_visits),
        "ra": fixed_polygons(ccd_ra),
        "dec": fixed_polygons(ccd_dec),
    }
    ccd_schema = VISIT_DETECTOR_REGIONS_SCHEMA
    if spec.file_uri_template is not None:
        template = spec.file_uri_template
        ccd_columns["uri"] = [
            template.format(instrument=spec.instrument, visit=v, detector=d)
            for v, d in zip(ccd_columns["visit"].tolist(), ccd_columns["detector"].tolist(),
                            strict=True)
        ]
        ccd_schema = ccd_schema.append(pa.field("uri", pa.string()))
    write_parquet(out / "visit_detector_regions.parquet", ccd_schema, ccd_columns)
    del ccd_ra, ccd_dec, ccd_ra_parts, ccd_dec_parts

    # -- sky map -----------------------------------------------------------------------------
    sm_config = RingsSkyMapConfig()
    skymap = RingsSkyMap(sm_config)
    write_json(
        out / "skymap.json",
        {
            "name": spec.skymap,
            "kind": "rings",
            "hash_sha1_hex": sm_config.sha1_hex(),
            "parameters": sm_config.parameters(),
        },
    )
    # Margin: any CCD lies within the field radius of a boresight inside the area; the
    # extra quarter degree absorbs the difference between cell and outer tract polygons.
    margin = _FOV_RADIUS_DEG + 0.25
    band_lo = max(-90.0, dec_lo - margin)
    band_hi = min(90.0, dec_hi + margin)
    max_abs_dec = max(abs(band_lo), abs(band_hi))
    cos_max = math.cos(math.radians(max_abs_dec))
    ra_margin = 180.0 if cos_max < 1e-6 else min(180.0, margin / cos_max)
    tract_ids = skymap.select_tracts(
        spec.center_ra, min(180.0, ra_half + ra_margin), band_lo, band_hi
    )
    tracts = skymap.tracts(tract_ids)
    n_tracts = len(tract_ids)
    write_parquet(
        out / "tracts.parquet",
        TRACTS_SCHEMA,
        {
            "skymap": [spec.skymap] * n_tracts,
            "tract": tracts.tract,
            "ra_center": tracts.ra_center,
            "dec_center": tracts.dec_center,
            "inner_ra": ragged_polygons(tracts.inner_ra),
            "inner_dec": ragged_polygons(tracts.inner_dec),
            "outer_ra": fixed_polygons(tracts.outer_ra),
            "outer_dec": fixed_polygons(tracts.outer_dec),
            "ring": tracts.ring,
        },
    )
    patches = skymap.patches(tracts)
    n_patches = len(patches.patch)
    write_parquet(
        out / "patches.parquet",
        PATCHES_SCHEMA,
        {
            "skymap": [spec.skymap] * n_patches,
            "tract": patches.tract,
            "patch": patches.patch,
            "cell_x": patches.cell_x,
            "cell_y": patches.cell_y,
            "inner_ra": fixed_polygons(patches.inner_ra),
            "inner_dec": fixed_polygons(patches.inner_dec),
            "outer_ra": fixed_polygons(patches.outer_ra),
            "outer_dec": fixed_polygons(patches.outer_dec),
        },
    )

    # -- manifest ------------------------------------------------------------------------------
    files = {name: out / name for name in MANIFEST_FILES}
    spec_dict: dict[str, Any] = asdict(spec)
    write_json(
        out / "manifest.json",
        {
            "format_version": FORMAT_VERSION,
            "files": {name: sha256_file(path) for name, path in files.items()},
            "generator": {"name": "skyreg.synthetic", "version": _version()},
            "spec": spec_dict,
            "counts": {
                "visits": spec.n_visits,
                "visit_detector_regions": n_ccds,
                "detectors": len(fp.detector),
                "tracts": n_tracts,
                "patches": n_patches,
                "skymap_tracts_total": skymap.n_tracts,
            },
        },
    )
    files["manifest.json"] = out / "manifest.json"
    return SurveySummary(
        out_dir=out,
        n_visits=spec.n_visits,
        n_ccds=n_ccds,
        n_detectors=len(fp.detector),
        n_tracts=n_tracts,
        n_patches=n_patches,
        seconds=time.perf_counter() - t_start,
        files=files,
    )
