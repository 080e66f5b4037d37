"""The service layer: every call the web service makes into the registry.

Handlers parse and check a request, then call one function here with a
:class:`~skyreg.registry.Registry` lent by the pool; nothing else in the service talks to the
registry or runs SQL. So when the registry's query internals change (columnar results, a
search layer with ``columns=``), this module is the one place to adapt.

Spatial questions are always answered by the registry's exact searches (the same answers as
the Python API); ObsCore rows come from the ``ivoa.obscore`` view (:mod:`skyreg.service.obscore`)
for the data IDs those searches found.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

from skyreg.db.connection import ReadConnection
from skyreg.registry import Registry, ResultTable
from skyreg.registry.dataset_ids import DatasetIdError, DatasetKey, parse_dataset_id
from skyreg.search.results import CcdRef, DatasetRef, PatchRef, TractRef
from skyreg.service import obscore
from skyreg.service.errors import LimitExceeded
from skyreg.service.params import SiaQuery
from skyreg.service.regions import RangeShape, Shape, polygon_overlaps_box

# -- JSON API lookups ------------------------------------------------------------------------


def find_ccds(registry: Registry, region: dict[str, Any], *, instrument: list[str] | None,
              band: list[str] | None, time: tuple[float, float] | None,
              inner: bool) -> ResultTable[CcdRef]:
    """CCDs overlapping one region (``patch=``, ``tract=``, ``cone=``, ``polygon=``,
    ``point=`` or ``region=``, as :meth:`Registry.find_ccds` takes them)."""
    return registry.find_ccds(instrument=instrument, band=band, time=time, inner=inner,
                              **region)


def find_patches(registry: Registry, region: dict[str, Any], *, skymap: list[str] | None,
                 inner: bool) -> ResultTable[PatchRef]:
    return registry.find_patches(skymap=skymap, inner=inner, **region)


def find_tracts(registry: Registry, region: dict[str, Any], *, skymap: list[str] | None,
                inner: bool) -> ResultTable[TractRef]:
    return registry.find_tracts(skymap=skymap, inner=inner, **region)


def find_datasets(registry: Registry, dataset_type: str, region: dict[str, Any], *,
                  instrument: list[str] | None, skymap: list[str] | None,
                  band: list[str] | None, inner: bool) -> ResultTable[DatasetRef]:
    return registry.find_datasets(dataset_type, instrument=instrument, skymap=skymap,
                                  band=band, inner=inner, **region)


def footprint(registry: Registry, kind: str, key: tuple[Any, ...], inner: bool
              ) -> ConvexPolygon:
    """The polygon of one CCD, patch or tract."""
    if kind == "ccd":
        return registry.ccd_region(*key)
    if kind == "patch":
        return registry.patch_region(*key, inner=inner)
    return registry.tract_region(*key, inner=inner)


def skymaps(registry: Registry) -> list[tuple[str, str, int, int, str]]:
    return registry.skymap_summaries()


def counts(registry: Registry) -> dict[str, int]:
    return registry.counts()


def dataset_types(registry: Registry) -> dict[str, str]:
    return registry.dataset_types()


def cutout_url(registry: Registry, ra: float, dec: float, size: float, *, dataset_type: str,
               band: str | None, instrument: str | None, visit: int | None,
               detector: int | None, skymap: str | None, base_url: str, fmt: str) -> str:
    return registry.cutout_url(ra, dec, size, dataset_type=dataset_type, band=band,
                               instrument=instrument, visit=visit, detector=detector,
                               skymap=skymap, base_url=base_url, format=fmt)


def check_area(shapes: Iterable[Shape], max_area_deg2: float) -> None:
    """Refuse regions larger than the service's limit (LimitExceeded)."""
    area = sum(shape.area_deg2() for shape in shapes)
    if area > max_area_deg2:
        raise LimitExceeded(f"the search region covers {area:.4g} square degrees; this "
                            f"service searches at most {max_area_deg2:g}")


# -- ObsCore rows (SIA, DataLink, SODA) ------------------------------------------------------


Row = tuple[Any, ...]
_I = obscore.INDEX
_base_urls: WeakKeyDictionary[Any, str] = WeakKeyDictionary()


def _run(registry: Registry, sql: str, params: dict[str, Any], base_url: str) -> list[Row]:
    """Rows of a read of the view (a prepared statement), ``access_url`` under ``base_url``.

    The base URL is a setting of the database session (the view reads it). A read that found
    its connection lost runs again on a new session (see :class:`skyreg.db.connection.
    ReadConnection`), which lacks the setting: then it is set there and the read repeated.
    """
    session = registry.read_session()
    driver = _use_base_url(session, base_url)
    rows = session.fetch(sql, params)
    if session.connection.driver_connection is not driver:
        _use_base_url(session, base_url)
        rows = session.fetch(sql, params)
    return rows


def _use_base_url(session: ReadConnection, base_url: str) -> Any:
    """Point the view's access_url at this service (only when it changes: no round trip);
    returns the driver connection it is set on."""
    driver = session.connection.driver_connection
    if _base_urls.get(driver) != base_url:
        session.fetch("SELECT set_config('skyreg.base_url', %(url)s, false)", {"url": base_url})
        driver = session.connection.driver_connection
        _base_urls[driver] = base_url
    return driver


@dataclass(frozen=True)
class ObsCoreAnswer:
    """ObsCore rows (30 ObsCore columns, then the ``skyreg_*`` key columns), in identifier
    order, and whether more rows matched than were returned."""

    rows: list[Row]
    overflow: bool


def row_key(row: Row) -> DatasetKey:
    """The dataset key of an ObsCore row."""
    if row[_I["skyreg_instrument"]] is not None:
        return DatasetKey(row[_I["skyreg_dataset_type"]], instrument=row[_I["skyreg_instrument"]],
                          visit=row[_I["skyreg_visit"]], detector=row[_I["skyreg_detector"]])
    return DatasetKey(row[_I["skyreg_dataset_type"]], skymap=row[_I["skyreg_skymap"]],
                      tract=row[_I["skyreg_tract"]], patch=row[_I["skyreg_patch"]],
                      band=row[_I["skyreg_band"]])


def _region_of(row: Row) -> ConvexPolygon:
    """The footprint polygon of a row, from its s_region (exact: floats print round-trip)."""
    words = row[_I["s_region"]].split()[2:]
    values = [float(w) for w in words]
    return ConvexPolygon([UnitVector3d(LonLat.fromDegrees(r, d))
                          for r, d in zip(values[0::2], values[1::2], strict=True)])


def sia_search(registry: Registry, query: SiaQuery, limit: int, base_url: str,
               max_area_deg2: float) -> ObsCoreAnswer:
    """The ObsCore rows an SIA query selects, at most ``limit``.

    POS shapes (ORed) select footprints through the registry's exact searches: CCDs and the
    outer polygons of patches overlapping the shape, as ``find_datasets`` does; the other
    constraints are applied in SQL on the view's rows.
    """
    if limit == 0:  # metadata only, with the overflow indicator DALI asks for
        return ObsCoreAnswer([], True)
    if query.release_dates is not None:
        return ObsCoreAnswer([], False)
    texts = dict(query.texts)
    shape, params = obscore.constraint_params(query.intervals, texts, query.calib, query.pol)
    ids: list[DatasetKey] | None = None
    if "ID" in texts:
        ids = []
        for text in texts["ID"]:
            try:
                ids.append(parse_dataset_id(text))
            except DatasetIdError:
                continue  # not one of ours: matches nothing
    types = _types_with_datasets(registry)
    if "COLLECTION" in texts:
        types = {name: dims for name, dims in types.items() if name in texts["COLLECTION"]}
    if not query.shapes:
        if ids is None:
            rows = _run(registry, obscore.rows_without_position(shape),
                        {**params, "limit": limit + 1}, base_url)
            return ObsCoreAnswer(rows[:limit], len(rows) > limit)
        rows = _rows_of_keys(registry, ids, shape, params, base_url)
        return _answer(rows, limit)
    check_area(query.shapes, max_area_deg2)
    ccd_types = [name for name, dims in types.items() if dims == "ccd"]
    patch_types = [name for name, dims in types.items() if dims == "patch"]
    # Only the footprints that can hold an answer are searched: a registry without coadds
    # (or a COLLECTION of CCD types only) needs no patch search.
    wanted_ccds = bool(ccd_types) and (ids is None or any(k.dimensions == "ccd" for k in ids))
    wanted_patches = bool(patch_types) and (ids is None
                                            or any(k.dimensions == "patch" for k in ids))
    exact_ccds: set[tuple[Any, ...]] = set()
    exact_patches: set[tuple[Any, ...]] = set()
    boxes: list[RangeShape] = []
    box_ccds: set[tuple[Any, ...]] = set()
    box_patches: set[tuple[Any, ...]] = set()
    for item in query.shapes:
        region = item.region()
        ccds = ({tuple(r) for r in registry.find_ccds(region=region)}
                if wanted_ccds else set())
        patches = ({tuple(r) for r in registry.find_patches(region=region)}
                   if wanted_patches else set())
        if isinstance(item, RangeShape):
            boxes.append(item)
            box_ccds |= ccds
            box_patches |= patches
        else:
            exact_ccds |= ccds
            exact_patches |= patches
    all_ccds, all_patches = exact_ccds | box_ccds, exact_patches | box_patches
    keys: list[DatasetKey] = []
    if ids is not None:
        wanted = set(ids)
        keys = [key for key in wanted if key.dataset_type in types and (
            (key.dimensions == "ccd" and (key.instrument, key.visit, key.detector) in all_ccds)
            or (key.dimensions == "patch" and (key.skymap, key.tract, key.patch) in all_patches))]
        rows = _rows_of_keys(registry, keys, shape, params, base_url)
    else:
        rows = []
        if ccd_types and all_ccds:
            ordered = sorted(all_ccds)
            rows += _run(registry, obscore.rows_by_ccd_keys(shape), {
                **params,
                "types": [t for t in ccd_types for _ in ordered],
                "instruments": [k[0] for _ in ccd_types for k in ordered],
                "visits": [k[1] for _ in ccd_types for k in ordered],
                "detectors": [k[2] for _ in ccd_types for k in ordered]}, base_url)
        if patch_types and all_patches:
            ordered = sorted(all_patches)
            rows += _run(registry, obscore.rows_by_patch_keys(shape), {
                **params,
                "types": [t for t in patch_types for _ in ordered],
                "skymaps": [k[0] for _ in patch_types for k in ordered],
                "tracts": [k[1] for _ in patch_types for k in ordered],
                "patches": [k[2] for _ in patch_types for k in ordered]}, base_url)
    if boxes:
        rows = [row for row in rows if _footprint_key(row) in exact_ccds | exact_patches
                or any(polygon_overlaps_box(_region_of(row), box) for box in boxes)]
    return _answer(rows, limit)


#: Dataset types that hold at least one dataset (a primary-key probe per type), so that an
#: SIA search looks only for footprints that can carry an answer. Scalar subqueries ordered
#: by the primary key, not EXISTS: when one type holds every row, the planner expects an
#: EXISTS to find a row at once and scans the table sequentially, which for a type without
#: datasets reads all of it (7.6 ms at 189,000 CCDs, most of an SIA answer's time); an
#: ORDER BY on the key with LIMIT 1 (which EXISTS would drop) is an index probe either way.
_TYPES_WITH_DATASETS = """
SELECT t.name, t.dimensions FROM dataset_type AS t
WHERE CASE t.dimensions
      WHEN 'ccd' THEN (SELECT true FROM ccd_dataset AS d WHERE d.dataset_type = t.name
                       ORDER BY d.dataset_type, d.instrument, d.visit, d.detector LIMIT 1)
      WHEN 'patch' THEN (SELECT true FROM patch_dataset AS d WHERE d.dataset_type = t.name
                         ORDER BY d.dataset_type, d.skymap, d.tract, d.patch, d.band LIMIT 1)
      END
"""


def _types_with_datasets(registry: Registry) -> dict[str, str]:
    return dict(registry.read_session().fetch(_TYPES_WITH_DATASETS, {}))


def _footprint_key(row: Row) -> tuple[Any, ...]:
    if row[_I["skyreg_instrument"]] is not None:
        return (row[_I["skyreg_instrument"]], row[_I["skyreg_visit"]],
                row[_I["skyreg_detector"]])
    return (row[_I["skyreg_skymap"]], row[_I["skyreg_tract"]], row[_I["skyreg_patch"]])


def _answer(rows: list[Row], limit: int) -> ObsCoreAnswer:
    did = _I["obs_publisher_did"]
    rows.sort(key=lambda row: row[did])
    return ObsCoreAnswer(rows[:limit], len(rows) > limit)


def _rows_of_keys(registry: Registry, keys: Sequence[DatasetKey],
                  shape: obscore.ConstraintShape, params: dict[str, Any], base_url: str
                  ) -> list[Row]:
    """ObsCore rows of exactly these datasets that pass the constraints."""
    ccd = [k for k in keys if k.dimensions == "ccd"]
    patch = [k for k in keys if k.dimensions == "patch"]
    rows: list[Row] = []
    if ccd:
        rows += _run(registry, obscore.rows_by_ccd_keys(shape), {
            **params, "types": [k.dataset_type for k in ccd],
            "instruments": [k.instrument for k in ccd], "visits": [k.visit for k in ccd],
            "detectors": [k.detector for k in ccd]}, base_url)
    if patch:
        wanted = set(patch)
        found = _run(registry, obscore.rows_by_patch_keys(shape), {
            **params, "types": [k.dataset_type for k in patch],
            "skymaps": [k.skymap for k in patch], "tracts": [k.tract for k in patch],
            "patches": [k.patch for k in patch]}, base_url)
        rows += [row for row in found if row_key(row) in wanted]
    return rows


def dataset_rows(registry: Registry, keys: Sequence[DatasetKey], base_url: str
                 ) -> dict[DatasetKey, Row]:
    """The ObsCore row of each of these datasets that is registered."""
    if not keys:
        return {}
    shape, params = obscore.constraint_params({}, {}, None, None)
    return {row_key(row): row for row in _rows_of_keys(registry, list(set(keys)), shape,
                                                        params, base_url)}


@dataclass(frozen=True)
class DatasetFile:
    """Where the pixels of one dataset are."""

    key: DatasetKey
    uri: str
    hdu: int
    access_format: str
    size_kb: int | None
    #: Wavelength (m) and time (MJD) coverage, as in ObsCore; None when unknown.
    em: tuple[float | None, float | None] = (None, None)
    t: tuple[float | None, float | None] = (None, None)


def dataset_file(registry: Registry, key: DatasetKey, base_url: str) -> DatasetFile | None:
    """The registered file of one dataset (None if the dataset is not registered)."""
    row = dataset_rows(registry, [key], base_url).get(key)
    if row is None:
        return None
    return file_of_row(key, row)


def file_of_row(key: DatasetKey, row: Row) -> DatasetFile:
    return DatasetFile(key, row[_I["skyreg_uri"]], int(row[_I["skyreg_hdu"]]),
                       row[_I["access_format"]], row[_I["access_estsize"]],
                       (row[_I["em_min"]], row[_I["em_max"]]),
                       (row[_I["t_min"]], row[_I["t_max"]]))
