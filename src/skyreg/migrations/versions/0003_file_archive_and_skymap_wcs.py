"""File archive (dataset types, CCD and patch datasets) and sky map WCS columns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 11:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUILTIN_DATASET_TYPES = (
    ("raw", "ccd", "raw CCD images as read out"),
    ("calexp", "ccd", "calibrated single-visit CCD images"),
    ("deepCoadd", "patch", "coadded images of a patch in one band"),
)


def _file_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("uri", sa.Text(), nullable=False, comment="file:// URI or URL of the file"),
        sa.Column("hdu", sa.Integer(), nullable=False,
                  comment="HDU index within the file (0 = primary)"),
        sa.Column("format", sa.Text(), nullable=False, comment="file format, e.g. fits"),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True,
                  comment="file size; NULL if unknown"),
        sa.Column("checksum", sa.Text(), nullable=True,
                  comment="sha256:<hex>, or fits-checksum:sha1:<hex> / fits-datasum:sha1:<hex> "
                          "(from the FITS cards); NULL if none"),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
    ]


#: Visit columns that FITS headers do not always provide.
_OPTIONAL_VISIT_COLUMNS = (
    ("boresight_ra", "degrees, ICRS; NULL if unknown"),
    ("boresight_dec", "degrees, ICRS; NULL if unknown"),
    ("rotation_deg", "sky rotation angle, degrees; NULL if unknown"),
)


def upgrade() -> None:
    for name, comment in _OPTIONAL_VISIT_COLUMNS:
        op.alter_column("visit", name, existing_type=sa.Double(), nullable=True,
                        comment=comment)
    op.add_column("tract", sa.Column(
        "wcs", postgresql.JSONB(astext_type=sa.Text()), nullable=True,
        comment="tract WCS as FITS keywords (CTYPEi, CRVALi, CRPIXi, CDi_j, NAXISi); "
                "NULL when the sky map came without one"))
    op.add_column("patch", sa.Column(
        "inner_bbox", postgresql.ARRAY(sa.Integer(), dimensions=1), nullable=True,
        comment="inner pixel box in tract pixels: x_min, y_min, x_max, y_max (inclusive)"))
    op.add_column("patch", sa.Column(
        "outer_bbox", postgresql.ARRAY(sa.Integer(), dimensions=1), nullable=True,
        comment="outer pixel box (the patch image) in tract pixels, as inner_bbox"))
    dataset_type = op.create_table(
        "dataset_type",
        sa.Column("name", sa.Text(), nullable=False, comment="e.g. raw, calexp, deepCoadd"),
        sa.Column("dimensions", sa.Text(), nullable=False,
                  comment="'ccd' (instrument, visit, detector) or 'patch' "
                          "(skymap, tract, patch, band)"),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint("dimensions IN ('ccd', 'patch')",
                           name=op.f("ck_dataset_type_known_dimensions")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_dataset_type")),
        comment="Kinds of datasets the archive holds, and which footprints their data IDs name.",
    )
    op.bulk_insert(dataset_type, [
        {"name": name, "dimensions": dims, "description": text}
        for name, dims, text in BUILTIN_DATASET_TYPES
    ])
    op.create_table(
        "ccd_dataset",
        sa.Column("dataset_type", sa.Text(), nullable=False),
        sa.Column("instrument", sa.Text(), nullable=False),
        sa.Column("visit", sa.BigInteger(), nullable=False),
        sa.Column("detector", sa.BigInteger(), nullable=False),
        *_file_columns(),
        sa.ForeignKeyConstraint(["dataset_type"], ["dataset_type.name"],
                                name=op.f("fk_ccd_dataset_dataset_type_dataset_type")),
        sa.ForeignKeyConstraint(["instrument", "visit", "detector"],
                                ["ccd.instrument", "ccd.visit", "ccd.detector"],
                                name=op.f("fk_ccd_dataset_instrument_visit_detector_ccd")),
        sa.PrimaryKeyConstraint("dataset_type", "instrument", "visit", "detector",
                                name=op.f("pk_ccd_dataset")),
        comment="Files of CCD datasets (raw, calexp, ...): one row per dataset type and CCD.",
    )
    op.create_index(op.f("ix_ccd_dataset_uri"), "ccd_dataset", ["uri"])
    op.create_table(
        "patch_dataset",
        sa.Column("dataset_type", sa.Text(), nullable=False),
        sa.Column("skymap", sa.Text(), nullable=False),
        sa.Column("tract", sa.BigInteger(), nullable=False),
        sa.Column("patch", sa.BigInteger(), nullable=False),
        sa.Column("band", sa.Text(), nullable=False),
        *_file_columns(),
        sa.ForeignKeyConstraint(["dataset_type"], ["dataset_type.name"],
                                name=op.f("fk_patch_dataset_dataset_type_dataset_type")),
        sa.ForeignKeyConstraint(["skymap", "tract", "patch"],
                                ["patch.skymap", "patch.tract", "patch.patch"],
                                name=op.f("fk_patch_dataset_skymap_tract_patch_patch")),
        sa.PrimaryKeyConstraint("dataset_type", "skymap", "tract", "patch", "band",
                                name=op.f("pk_patch_dataset")),
        comment="Files of patch datasets (deepCoadd, ...): one row per type, patch and band.",
    )
    op.create_index(op.f("ix_patch_dataset_uri"), "patch_dataset", ["uri"])


def downgrade() -> None:
    op.drop_table("patch_dataset")
    op.drop_table("ccd_dataset")
    op.drop_table("dataset_type")
    op.drop_column("patch", "outer_bbox")
    op.drop_column("patch", "inner_bbox")
    op.drop_column("tract", "wcs")
    for name, comment in _OPTIONAL_VISIT_COLUMNS:
        op.alter_column("visit", name, existing_type=sa.Double(), nullable=False,
                        comment=comment.replace("; NULL if unknown", ""))
