"""SQL statements that find archived files, spatially or by data ID.

A CCD dataset is found through its CCD's pixel index and footprint, a patch dataset through
its patch's: the archive tables carry no geometry of their own. Every statement returns the
:class:`~skyreg.registry.results.DatasetRef` fields followed by the footprint (for the exact
test), and every value is a bound parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    false,
    null,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY

from skyreg.registry.queries import candidate_ids
from skyreg.schema import ccd, ccd_dataset, ccd_pixel, patch, patch_dataset, patch_pixel, visit


def _texts(name: str) -> Any:
    return any_(bindparam(name, type_=ARRAY(Text)))


@dataclass(frozen=True)
class DatasetFilters:
    """Which restrictions a dataset search applies; values are bound parameters."""

    spatial: bool = False
    instrument: bool = False
    skymap: bool = False
    band: bool = False


def _file_columns(table: Any) -> list[Any]:
    return [table.c.uri, table.c.hdu, table.c.format, table.c.size_bytes, table.c.checksum]


def ccd_datasets(filters: DatasetFilters) -> Select[Any]:
    """Files of dataset type ``dataset_type`` (a CCD type) with their CCD footprints."""
    statement = (
        select(ccd_dataset.c.dataset_type, ccd_dataset.c.instrument, ccd_dataset.c.visit,
               ccd_dataset.c.detector, null(), null(), null(), visit.c.band,
               *_file_columns(ccd_dataset), ccd.c.region)
        .select_from(
            ccd_dataset
            .join(ccd, and_(ccd.c.instrument == ccd_dataset.c.instrument,
                            ccd.c.visit == ccd_dataset.c.visit,
                            ccd.c.detector == ccd_dataset.c.detector))
            .join(visit, and_(visit.c.instrument == ccd.c.instrument,
                              visit.c.visit == ccd.c.visit))
        )
        .where(ccd_dataset.c.dataset_type == bindparam("dataset_type", type_=Text))
    )
    conditions: list[ColumnElement[bool]] = []
    if filters.spatial:
        conditions.append(ccd.c.ccd_id == candidate_ids(ccd_pixel, "ccd_id"))
    if filters.instrument:
        conditions.append(ccd_dataset.c.instrument == _texts("instruments"))
    if filters.band:
        conditions.append(visit.c.band == _texts("bands"))
    if filters.skymap:
        conditions.append(false())  # CCD datasets belong to no sky map
    return statement.where(and_(true(), *conditions))


def patch_datasets(filters: DatasetFilters, inner: bool = False) -> Select[Any]:
    """Files of dataset type ``dataset_type`` (a patch type) with their patch polygons."""
    region = patch.c.inner_region if inner else patch.c.outer_region
    statement = (
        select(patch_dataset.c.dataset_type, null(), null(), null(), patch_dataset.c.skymap,
               patch_dataset.c.tract, patch_dataset.c.patch, patch_dataset.c.band,
               *_file_columns(patch_dataset), region)
        .select_from(
            patch_dataset.join(patch, and_(patch.c.skymap == patch_dataset.c.skymap,
                                           patch.c.tract == patch_dataset.c.tract,
                                           patch.c.patch == patch_dataset.c.patch))
        )
        .where(patch_dataset.c.dataset_type == bindparam("dataset_type", type_=Text))
    )
    conditions: list[ColumnElement[bool]] = []
    if filters.spatial:
        conditions.append(patch.c.patch_id == candidate_ids(patch_pixel, "patch_id"))
    if filters.skymap:
        conditions.append(patch_dataset.c.skymap == _texts("skymaps"))
    if filters.band:
        conditions.append(patch_dataset.c.band == _texts("bands"))
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

