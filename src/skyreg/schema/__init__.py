"""The database schema, declared once as SQLAlchemy Core metadata.

Alembic migrations (``skyreg.migrations``) create exactly this schema; a test compares them.
"""

from skyreg.schema.archive import (
    BUILTIN_DATASET_TYPES,
    DIMENSIONS,
    ccd_dataset,
    dataset_type,
    patch_dataset,
)
from skyreg.schema.tables import (
    ccd,
    ccd_patch_overlap,
    ccd_pixel,
    ccd_tract_overlap,
    detector,
    instrument,
    metadata,
    patch,
    patch_pixel,
    registry_config,
    skymap,
    tract,
    tract_pixel,
    visit,
)

__all__ = [
    "BUILTIN_DATASET_TYPES",
    "DIMENSIONS",
    "ccd",
    "ccd_dataset",
    "ccd_patch_overlap",
    "ccd_pixel",
    "ccd_tract_overlap",
    "dataset_type",
    "detector",
    "instrument",
    "metadata",
    "patch",
    "patch_dataset",
    "patch_pixel",
    "registry_config",
    "skymap",
    "tract",
    "tract_pixel",
    "visit",
]
