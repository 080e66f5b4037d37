"""The database schema, declared once as SQLAlchemy Core metadata.

Alembic migrations (``skyreg.migrations``) create exactly this schema; a test compares them.
"""

from skyreg.schema.tables import (
    ccd,
    ccd_pixel,
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
    "ccd",
    "ccd_pixel",
    "detector",
    "instrument",
    "metadata",
    "patch",
    "patch_pixel",
    "registry_config",
    "skymap",
    "tract",
    "tract_pixel",
    "visit",
]
