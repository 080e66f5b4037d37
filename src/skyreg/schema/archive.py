"""Tables of the file archive: which file (and HDU) holds each dataset.

A dataset is one image of a registered footprint: a CCD (``raw``, ``calexp``, ...) or a patch
of a sky map (``deepCoadd``, ...). Each kind has its own table whose primary key is the data
ID, with a foreign key to the footprint it shows, so spatial searches reuse the CCD and patch
pixel indexes and no dataset can point at a footprint that is not registered.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)

from skyreg.schema.tables import metadata

#: Dimensions a dataset type can have: the footprint table its data IDs point to.
DIMENSIONS = ("ccd", "patch")

dataset_type = Table(
    "dataset_type",
    metadata,
    Column("name", Text, nullable=False, comment="e.g. raw, calexp, deepCoadd"),
    Column("dimensions", Text, nullable=False,
           comment="'ccd' (instrument, visit, detector) or 'patch' (skymap, tract, patch, band)"),
    Column("description", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint("name"),
    CheckConstraint("dimensions IN ('ccd', 'patch')", name="known_dimensions"),
    comment="Kinds of datasets the archive holds, and which footprints their data IDs name.",
)


def _file_columns() -> list[Column[object]]:
    return [
        Column("uri", Text, nullable=False, comment="file:// URI or URL of the file"),
        Column("hdu", Integer, nullable=False, comment="HDU index within the file (0 = primary)"),
        Column("format", Text, nullable=False, comment="file format, e.g. fits"),
        Column("size_bytes", BigInteger, nullable=True, comment="file size; NULL if unknown"),
        Column("checksum", Text, nullable=True,
               comment="sha256:<hex>, or fits-checksum:sha1:<hex> / fits-datasum:sha1:<hex> "
                       "(from the FITS cards); NULL if none"),
        Column("ingested_at", DateTime(timezone=True), nullable=False,
               server_default=func.now()),
    ]


ccd_dataset = Table(
    "ccd_dataset",
    metadata,
    Column("dataset_type", Text, nullable=False),
    Column("instrument", Text, nullable=False),
    Column("visit", BigInteger, nullable=False),
    Column("detector", BigInteger, nullable=False),
    *_file_columns(),
    PrimaryKeyConstraint("dataset_type", "instrument", "visit", "detector"),
    ForeignKeyConstraint(["dataset_type"], ["dataset_type.name"]),
    ForeignKeyConstraint(["instrument", "visit", "detector"],
                         ["ccd.instrument", "ccd.visit", "ccd.detector"]),
    Index(None, "uri"),
    comment="Files of CCD datasets (raw, calexp, ...): one row per dataset type and CCD.",
)

patch_dataset = Table(
    "patch_dataset",
    metadata,
    Column("dataset_type", Text, nullable=False),
    Column("skymap", Text, nullable=False),
    Column("tract", BigInteger, nullable=False),
    Column("patch", BigInteger, nullable=False),
    Column("band", Text, nullable=False),
    *_file_columns(),
    PrimaryKeyConstraint("dataset_type", "skymap", "tract", "patch", "band"),
    ForeignKeyConstraint(["dataset_type"], ["dataset_type.name"]),
    ForeignKeyConstraint(["skymap", "tract", "patch"],
                         ["patch.skymap", "patch.tract", "patch.patch"]),
    Index(None, "uri"),
    comment="Files of patch datasets (deepCoadd, ...): one row per type, patch and band.",
)

#: Dataset types every registry starts with.
BUILTIN_DATASET_TYPES = (
    ("raw", "ccd", "raw CCD images as read out"),
    ("calexp", "ccd", "calibrated single-visit CCD images"),
    ("deepCoadd", "patch", "coadded images of a patch in one band"),
)
