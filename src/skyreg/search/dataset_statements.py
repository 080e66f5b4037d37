"""SQL statements that find archived files, spatially or by data ID.

A CCD dataset is found through its CCD's pixel index and footprint, a patch dataset through
its patch's: the archive tables carry no geometry of their own. A spatial search therefore
runs in two statements: the footprints' candidates (id and polygon) for the exact test, then
the files of the footprints that passed, by id, with the extra columns asked for (the visit's
time span, the footprint's vertices). Every value is a bound parameter; nothing is composed
when the module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    false,
    literal_column,
    null,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY

from skyreg.schema import ccd, ccd_dataset, ccd_pixel, patch, patch_dataset, patch_pixel, visit
from skyreg.search.columns import ColumnSpec
from skyreg.search.statements import candidate_ids


def _texts(name: str) -> Any:
    return any_(bindparam(name, type_=ARRAY(Text)))


@dataclass(frozen=True)
class DatasetFilters:
    """Which restrictions a dataset search applies; values are bound parameters."""

    #: Restrict to footprint ids bound as ``ids`` (the survivors of the exact test).
    spatial: bool = False
    instrument: bool = False
    skymap: bool = False
    band: bool = False


def _file_columns(table: Any) -> list[Any]:
    return [table.c.uri, table.c.hdu, table.c.format, table.c.size_bytes, table.c.checksum]


def ccd_footprints() -> Select[tuple[int, bytes]]:
    """(ccd_id, region) of the CCDs with a pixel in the bound ranges ``lo``/``hi``."""
    return select(ccd.c.ccd_id, ccd.c.region).where(
        ccd.c.ccd_id == candidate_ids(ccd_pixel, "ccd_id"))


def patch_footprints(inner: bool) -> Select[tuple[int, bytes]]:
    """(patch_id, outer or inner polygon) of the patches with a pixel in the bound ranges."""
    region = patch.c.inner_region if inner else patch.c.outer_region
    return select(patch.c.patch_id, region).where(
        patch.c.patch_id == candidate_ids(patch_pixel, "patch_id"))


def _files(table: Any, keys: dict[str, Any]) -> Any:
    """The files of one footprint, as a LATERAL subquery keyed on the outer row.

    ``OFFSET 0`` keeps PostgreSQL from flattening it into a join that it might answer with a
    scan of the whole archive: by footprint id it is a primary-key lookup per footprint.
    """
    return (
        select(table)
        .where(table.c.dataset_type == bindparam("dataset_type", type_=Text),
               *(table.c[name] == column for name, column in keys.items()))
        .offset(literal_column("0"))
        .lateral("files")
    )


def ccd_datasets(filters: DatasetFilters, extras: tuple[ColumnSpec, ...] = ()) -> Select[Any]:
    """Files of dataset type ``dataset_type`` (a CCD type): DatasetRef fields, then ``extras``.

    With ``filters.spatial`` the CCDs are the bound ``ids``, and each one's file and visit are
    looked up by key; otherwise every file of the type is joined to its CCD and visit.
    """
    files: Any
    band: Any
    visit_extras = [spec for spec in extras if spec.source == "visit"]
    if filters.spatial:
        files = _files(ccd_dataset, {"instrument": ccd.c.instrument, "visit": ccd.c.visit,
                                     "detector": ccd.c.detector})
        band = (select(visit.c.band, *(visit.c[spec.stored].label(spec.name)
                                       for spec in visit_extras))
                .where(visit.c.instrument == ccd.c.instrument, visit.c.visit == ccd.c.visit)
                .offset(literal_column("0")).lateral("visit_band"))
        visit_columns = {spec.name: band.c[spec.name] for spec in visit_extras}
        statement = (
            select(files.c.dataset_type, ccd.c.instrument, ccd.c.visit, ccd.c.detector,
                   null(), null(), null(), band.c.band, *_file_columns(files),
                   *_extra_columns(extras, visit_columns, ccd))
            .select_from(ccd).join(files, true()).join(band, true())
            .where(ccd.c.ccd_id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
        )
    else:
        files, band = ccd_dataset, visit
        joined = ccd_dataset.join(visit, and_(visit.c.instrument == ccd_dataset.c.instrument,
                                              visit.c.visit == ccd_dataset.c.visit))
        if any(spec.source == "ccd" for spec in extras):
            joined = joined.join(ccd, and_(ccd.c.instrument == ccd_dataset.c.instrument,
                                           ccd.c.visit == ccd_dataset.c.visit,
                                           ccd.c.detector == ccd_dataset.c.detector))
        statement = (
            select(ccd_dataset.c.dataset_type, ccd_dataset.c.instrument, ccd_dataset.c.visit,
                   ccd_dataset.c.detector, null(), null(), null(), visit.c.band,
                   *_file_columns(ccd_dataset),
                   *_extra_columns(extras, {spec.name: visit.c[spec.stored]
                                            for spec in visit_extras}, ccd))
            .select_from(joined)
            .where(ccd_dataset.c.dataset_type == bindparam("dataset_type", type_=Text))
        )
    conditions: list[ColumnElement[bool]] = []
    if filters.instrument:
        conditions.append(files.c.instrument == _texts("instruments"))
    if filters.band:
        conditions.append(band.c.band == _texts("bands"))
    if filters.skymap:
        conditions.append(false())  # CCD datasets belong to no sky map
    return statement.where(and_(true(), *conditions))


def _extra_columns(extras: tuple[ColumnSpec, ...], named: dict[str, Any], table: Any
                   ) -> list[Any]:
    """The ``extras`` columns: those in ``named`` (from a join or lateral), else of ``table``."""
    return [named[spec.name] if spec.name in named
            else table.c[spec.stored].label(spec.name) for spec in extras]


def patch_datasets(filters: DatasetFilters, extras: tuple[ColumnSpec, ...] = ()
                   ) -> Select[Any]:
    """Files of dataset type ``dataset_type`` (a patch type): DatasetRef fields, ``extras``."""
    files: Any
    if filters.spatial:
        files = _files(patch_dataset, {"skymap": patch.c.skymap, "tract": patch.c.tract,
                                       "patch": patch.c.patch})
        statement = (
            select(files.c.dataset_type, null(), null(), null(), patch.c.skymap, patch.c.tract,
                   patch.c.patch, files.c.band, *_file_columns(files),
                   *_extra_columns(extras, {}, patch))
            .select_from(patch).join(files, true())
            .where(patch.c.patch_id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
        )
    else:
        files = patch_dataset
        source: Any = patch_dataset
        if extras:
            source = patch_dataset.join(patch, and_(patch.c.skymap == patch_dataset.c.skymap,
                                                    patch.c.tract == patch_dataset.c.tract,
                                                    patch.c.patch == patch_dataset.c.patch))
        statement = (
            select(patch_dataset.c.dataset_type, null(), null(), null(), patch_dataset.c.skymap,
                   patch_dataset.c.tract, patch_dataset.c.patch, patch_dataset.c.band,
                   *_file_columns(patch_dataset), *_extra_columns(extras, {}, patch))
            .select_from(source)
            .where(patch_dataset.c.dataset_type == bindparam("dataset_type", type_=Text))
        )
    conditions: list[ColumnElement[bool]] = []
    if filters.skymap:
        conditions.append(files.c.skymap == _texts("skymaps"))
    if filters.band:
        conditions.append(files.c.band == _texts("bands"))
    if filters.instrument:
        conditions.append(false())  # coadds belong to no instrument
    return statement.where(and_(true(), *conditions))


def registered_uris() -> CompoundSelect[Any]:
    """Which of the bound ``uris`` the archive already holds (any dataset type)."""
    uris = bindparam("uris", type_=ARRAY(Text))
    return (
        select(ccd_dataset.c.uri).where(ccd_dataset.c.uri == any_(uris))
        .union(select(patch_dataset.c.uri).where(patch_dataset.c.uri == any_(uris)))
    )

