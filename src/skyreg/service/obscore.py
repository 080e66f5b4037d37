"""The ObsCore columns and the SQL statements that read ``ivoa.obscore`` (migration 0006).

The SIA service answers with rows of the view itself, so the HTTP answers and what an
operator's TAP server publishes cannot drift apart. The spatial part of a search is decided
before, exactly, by the registry (:mod:`skyreg.service.queries`); the statements here look the
found data IDs up in the view (primary-key lookups pushed into both branches of its UNION ALL)
and apply the non-spatial constraints in SQL, where a NULL never matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Double,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg


class ObsCoreColumn(NamedTuple):
    """One column of the ObsCore 1.1 table: VOTable type and IVOA annotations."""

    name: str
    datatype: str  # VOTable datatype: char, int, long, double
    ucd: str
    utype: str
    unit: str | None
    description: str


_C = "obscore:Char."
#: The 30 mandatory ObsCore 1.1 columns, in the standard's order.
COLUMNS: tuple[ObsCoreColumn, ...] = (
    ObsCoreColumn("dataproduct_type", "char", "meta.code.class",
                  "obscore:ObsDataset.dataProductType", None, "Data product type (image)"),
    ObsCoreColumn("calib_level", "int", "meta.code;obs.calib", "obscore:ObsDataset.calibLevel",
                  None, "Calibration level: 1 raw, 2 calibrated, 3 coadded"),
    ObsCoreColumn("obs_collection", "char", "meta.id", "obscore:DataID.Collection", None,
                  "Collection: the dataset type (raw, calexp, deepCoadd, ...)"),
    ObsCoreColumn("obs_id", "char", "meta.id", "obscore:DataID.observationID", None,
                  "Observation: instrument/visit/detector or skymap/tract/patch/band"),
    ObsCoreColumn("obs_publisher_did", "char", "meta.ref.ivoid", "obscore:Curation.PublisherDID",
                  None, "Dataset identifier (DataLink and SODA ID)"),
    ObsCoreColumn("access_url", "char", "meta.ref.url", "obscore:Access.Reference", None,
                  "URL of the file"),
    ObsCoreColumn("access_format", "char", "meta.code.mime", "obscore:Access.Format", None,
                  "MIME type of the file"),
    ObsCoreColumn("access_estsize", "long", "phys.size;meta.file", "obscore:Access.Size",
                  "kbyte", "File size"),
    ObsCoreColumn("target_name", "char", "meta.id;src", "obscore:Target.Name", None,
                  "Target (not recorded by the registry)"),
    ObsCoreColumn("s_ra", "double", "pos.eq.ra", _C + "SpatialAxis.Coverage.Location.Coord."
                  "Position2D.Value2.C1", "deg", "Centre of the footprint, RA (ICRS)"),
    ObsCoreColumn("s_dec", "double", "pos.eq.dec", _C + "SpatialAxis.Coverage.Location.Coord."
                  "Position2D.Value2.C2", "deg", "Centre of the footprint, Dec (ICRS)"),
    ObsCoreColumn("s_fov", "double", "phys.angSize;instr.fov",
                  _C + "SpatialAxis.Coverage.Bounds.Extent.diameter", "deg",
                  "Diameter of the footprint (twice the largest centre-vertex distance)"),
    ObsCoreColumn("s_region", "char", "pos.outline;obs.field",
                  _C + "SpatialAxis.Coverage.Support.Area", None,
                  "Footprint polygon (STC-S, degrees)"),
    ObsCoreColumn("s_resolution", "double", "pos.angResolution",
                  _C + "SpatialAxis.Resolution.Refval.value", "arcsec",
                  "Spatial resolution (not recorded)"),
    ObsCoreColumn("s_xel1", "long", "meta.number", _C + "SpatialAxis.numBins1", None,
                  "Pixels along the first axis (known for coadds)"),
    ObsCoreColumn("s_xel2", "long", "meta.number", _C + "SpatialAxis.numBins2", None,
                  "Pixels along the second axis (known for coadds)"),
    ObsCoreColumn("t_min", "double", "time.start;obs.exposure",
                  _C + "TimeAxis.Coverage.Bounds.Limits.StartTime", "d",
                  "Start of the exposure, MJD (TAI)"),
    ObsCoreColumn("t_max", "double", "time.end;obs.exposure",
                  _C + "TimeAxis.Coverage.Bounds.Limits.StopTime", "d",
                  "End of the exposure, MJD (TAI)"),
    ObsCoreColumn("t_exptime", "double", "time.duration;obs.exposure",
                  _C + "TimeAxis.Coverage.Support.Extent", "s", "Exposure time"),
    ObsCoreColumn("t_resolution", "double", "time.resolution",
                  _C + "TimeAxis.Resolution.Refval.value", "s", "Time resolution (the exposure)"),
    ObsCoreColumn("t_xel", "long", "meta.number", _C + "TimeAxis.numBins", None,
                  "Samples along the time axis"),
    ObsCoreColumn("em_min", "double", "em.wl;stat.min",
                  _C + "SpectralAxis.Coverage.Bounds.Limits.LoLimit", "m",
                  "Shortest wavelength of the band"),
    ObsCoreColumn("em_max", "double", "em.wl;stat.max",
                  _C + "SpectralAxis.Coverage.Bounds.Limits.HiLimit", "m",
                  "Longest wavelength of the band"),
    ObsCoreColumn("em_res_power", "double", "spect.resolution",
                  _C + "SpectralAxis.Resolution.ResolPower.refVal", None,
                  "Resolving power of the band, centre / width"),
    ObsCoreColumn("em_xel", "long", "meta.number", _C + "SpectralAxis.numBins", None,
                  "Samples along the spectral axis"),
    ObsCoreColumn("o_ucd", "char", "meta.ucd", _C + "ObservableAxis.ucd", None,
                  "UCD of the pixel values"),
    ObsCoreColumn("pol_states", "char", "meta.code;phys.polarization",
                  _C + "PolarizationAxis.stateList", None, "Polarization states (none)"),
    ObsCoreColumn("pol_xel", "long", "meta.number", _C + "PolarizationAxis.numBins", None,
                  "Polarization samples (none)"),
    ObsCoreColumn("facility_name", "char", "meta.id;instr.tel",
                  "obscore:Provenance.ObsConfig.Facility.name", None, "Telescope"),
    ObsCoreColumn("instrument_name", "char", "meta.id;instr",
                  "obscore:Provenance.ObsConfig.Instrument.name", None, "Instrument"),
)

#: Columns after the ObsCore ones: the data ID, file and HDU of each row.
KEY_COLUMNS = ("skyreg_dataset_type", "skyreg_instrument", "skyreg_visit", "skyreg_detector",
               "skyreg_skymap", "skyreg_tract", "skyreg_patch", "skyreg_band", "skyreg_uri",
               "skyreg_hdu")

_SQL_TYPES: dict[str, Any] = {"char": Text, "int": Integer, "long": BigInteger,
                              "double": Double}
_KEY_TYPES: dict[str, Any] = {"skyreg_visit": BigInteger, "skyreg_detector": BigInteger,
                              "skyreg_tract": BigInteger, "skyreg_patch": BigInteger,
                              "skyreg_hdu": Integer}

obscore = Table(
    "obscore", MetaData(schema="ivoa"),
    *(Column(c.name, _SQL_TYPES[c.datatype]) for c in COLUMNS),
    *(Column(name, _KEY_TYPES.get(name, Text)) for name in KEY_COLUMNS),
)

INDEX = {name: i for i, name in enumerate([c.name for c in COLUMNS] + list(KEY_COLUMNS))}

#: Interval constraints: parameter → (low column, high column). Overlap of intervals for
#: BAND and TIME; the value inside the interval for the others.
INTERVAL_COLUMNS = {
    "BAND": ("em_min", "em_max"),
    "TIME": ("t_min", "t_max"),
    "EXPTIME": ("t_exptime", "t_exptime"),
    "FOV": ("s_fov", "s_fov"),
    "SPATRES": ("s_resolution", "s_resolution"),
    "SPECRP": ("em_res_power", "em_res_power"),
    "TIMERES": ("t_resolution", "t_resolution"),
}
#: Exact-match constraints: parameter → column.
TEXT_COLUMNS = {
    "ID": "obs_publisher_did",
    "COLLECTION": "obs_collection",
    "FACILITY": "facility_name",
    "INSTRUMENT": "instrument_name",
    "DPTYPE": "dataproduct_type",
    "TARGET": "target_name",
    "FORMAT": "access_format",
}


@dataclass(frozen=True)
class ConstraintShape:
    """Which non-spatial constraints a query has (their values are bound parameters)."""

    intervals: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    calib: bool = False
    pol: bool = False


def constraint_params(intervals: dict[str, list[tuple[float, float]]],
                      texts: dict[str, list[str]], calib: list[int] | None,
                      pol: list[str] | None) -> tuple[ConstraintShape, dict[str, Any]]:
    """The statement shape and bound values of a set of constraints."""
    params: dict[str, Any] = {}
    for name, values in intervals.items():
        params[f"{name}_lo"] = [lo for lo, _ in values]
        params[f"{name}_hi"] = [hi for _, hi in values]
    for name, words in texts.items():
        params[name] = list(words)
    if calib is not None:
        params["CALIB"] = list(calib)
    if pol is not None:
        params["POL"] = list(pol)
    shape = ConstraintShape(tuple(sorted(intervals)), tuple(sorted(texts)), calib is not None,
                            pol is not None)
    return shape, params


def _conditions(o: Any, shape: ConstraintShape) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    for name in shape.intervals:
        low, high = INTERVAL_COLUMNS[name]
        bounds = func.unnest(bindparam(f"{name}_lo", type_=ARRAY(Double)),
                             bindparam(f"{name}_hi", type_=ARRAY(Double))
                             ).table_valued("lo", "hi").render_derived(name=f"q_{name.lower()}")
        conditions.append(exists().select_from(bounds).where(
            o.c[low] <= bounds.c.hi, o.c[high] >= bounds.c.lo))
    for name in shape.texts:
        conditions.append(o.c[TEXT_COLUMNS[name]] == any_(bindparam(name, type_=ARRAY(Text))))
    if shape.calib:
        conditions.append(o.c.calib_level == any_(bindparam("CALIB", type_=ARRAY(Integer))))
    if shape.pol:
        # No image of the registry has polarization states: pol_states is NULL and never
        # matches; written as a comparison so that it stays true if the view ever fills it.
        conditions.append(o.c.pol_states == any_(bindparam("POL", type_=ARRAY(Text))))
    return conditions


_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]
_ALL = [obscore.c[name] for name in INDEX]


@lru_cache(maxsize=256)
def rows_by_ccd_keys(shape: ConstraintShape) -> str:
    """ObsCore rows of the bound CCD data IDs (``types``, ``instruments``, ``visits``,
    ``detectors``, one entry per dataset) that pass the constraints."""
    keys = func.unnest(
        bindparam("types", type_=ARRAY(Text)), bindparam("instruments", type_=ARRAY(Text)),
        bindparam("visits", type_=ARRAY(BigInteger)),
        bindparam("detectors", type_=ARRAY(BigInteger)),
    ).table_valued("t", "i", "v", "d").render_derived(name="k")
    return _by_keys(keys, (("skyreg_dataset_type", "t"), ("skyreg_instrument", "i"),
                           ("skyreg_visit", "v"), ("skyreg_detector", "d")), shape)


@lru_cache(maxsize=256)
def rows_by_patch_keys(shape: ConstraintShape) -> str:
    """ObsCore rows of the bound patches (``types``, ``skymaps``, ``tracts``, ``patches``),
    every band, that pass the constraints."""
    keys = func.unnest(
        bindparam("types", type_=ARRAY(Text)), bindparam("skymaps", type_=ARRAY(Text)),
        bindparam("tracts", type_=ARRAY(BigInteger)),
        bindparam("patches", type_=ARRAY(BigInteger)),
    ).table_valued("t", "s", "tr", "p").render_derived(name="k")
    return _by_keys(keys, (("skyreg_dataset_type", "t"), ("skyreg_skymap", "s"),
                           ("skyreg_tract", "tr"), ("skyreg_patch", "p")), shape)


def _by_keys(keys: Any, pairs: tuple[tuple[str, str], ...], shape: ConstraintShape) -> str:
    # LATERAL ... OFFSET 0: one primary-key lookup per key in each branch of the view; a
    # plain join lets the planner merge-join the whole view instead.
    inner = (select(*_ALL).where(*(obscore.c[column] == keys.c[key] for column, key in pairs))
             .offset(literal_column("0")).lateral("o"))
    statement = (select(*(inner.c[name] for name in INDEX)).select_from(keys)
                 .join(inner, true()).where(and_(true(), *_conditions(inner, shape))))
    return _compile(statement)


@lru_cache(maxsize=256)
def rows_without_position(shape: ConstraintShape) -> str:
    """ObsCore rows passing the constraints (no spatial one), ordered, at most ``limit``."""
    statement = (select(*_ALL).where(and_(true(), *_conditions(obscore, shape)))
                 .order_by(obscore.c.obs_publisher_did.collate("C"))
                 .limit(bindparam("limit", type_=BigInteger)))
    return _compile(statement)


def never() -> ColumnElement[bool]:
    return false()


def _compile(statement: Select[Any]) -> str:
    return str(statement.compile(dialect=_DIALECT))


__all__ = ["COLUMNS", "INDEX", "KEY_COLUMNS", "ConstraintShape", "ObsCoreColumn",
           "constraint_params", "or_", "rows_by_ccd_keys", "rows_by_patch_keys",
           "rows_without_position"]
