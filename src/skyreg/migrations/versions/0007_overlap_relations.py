"""Exact overlap relations: every (CCD, patch) and (CCD, tract) pair whose footprints overlap.

``ccd_patch_overlap`` and ``ccd_tract_overlap`` hold the pairs sphgeom's exact test says
overlap (outer polygon, or inner with its own flag), keyed (tile, CCD) with a covering index
(CCD, tile): patch → CCDs and CCD → patches are each one index-only range scan. Every ingest
keeps them in step in its own transaction (``skyreg.schema.overlaps``); this revision creates
them and fills them for the CCDs and tiles a registry already holds, with the same code.

The SQL functions are re-installed from skyreg/migrations/sql/0007: the patch and tract
searches (skyreg_ccds_overlapping_patch, ..._tract, skyreg_patches_overlapping_ccd,
skyreg_tracts_overlapping_ccd, skyreg_ccd_patch_pairs) read the relations, and
skyreg_ccd_id/skyreg_patch_id/skyreg_tract_id give their keys. The downgrade puts
back 0004's functions, then drops the relations.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from skyreg.migrations import functions

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: SHA-256 of ``sql/0007`` (``functions.sql_digest``): the suite fails if the files change.
SQL_SHA256 = "e130cf3ee248060bb61aaf2123f5e56b236b47a2348d4ded19a6a58313fd99a4"

_FLAGS = ["outer_overlap", "inner_overlap"]


def _create(name: str, tile: str, tile_id: str) -> None:
    op.create_table(
        name,
        sa.Column(tile_id, sa.BigInteger(), nullable=False, comment=f"{tile}.{tile_id}"),
        sa.Column("ccd_id", sa.BigInteger(), nullable=False, comment="ccd.ccd_id"),
        sa.Column("outer_overlap", sa.Boolean(), nullable=False,
                  comment=f"the CCD overlaps the {tile}'s outer polygon "
                          f"(find_ccds({tile}=...))"),
        sa.Column("inner_overlap", sa.Boolean(), nullable=False,
                  comment=f"the CCD overlaps the {tile}'s inner polygon (inner=True)"),
        sa.PrimaryKeyConstraint(tile_id, "ccd_id", name=op.f(f"pk_{name}"),
                                postgresql_include=_FLAGS),
        sa.CheckConstraint("outer_overlap OR inner_overlap",
                           name=op.f(f"ck_{name}_some_overlap")),
        comment=(
            f"Exact overlaps of CCD footprints with {tile} polygons (sphgeom's "
            "ConvexPolygon.overlaps), one row per pair that overlaps the outer or the inner "
            "polygon. Written by every ingest in the transaction that stores the CCD or the "
            f"{tile}; patch/tract searches read it instead of testing polygons."
        ),
    )
    op.create_index(f"ix_{name}_ccd_id_{tile_id}", name, ["ccd_id", tile_id],
                    postgresql_include=_FLAGS)


def upgrade() -> None:
    from skyreg.schema import overlaps

    _create("ccd_patch_overlap", "patch", "patch_id")
    _create("ccd_tract_overlap", "tract", "tract_id")
    # Backfill: every stored CCD against every stored tile, as an ingest would have.
    overlaps.add_overlaps(op.get_bind(), overlaps.NOTHING_STORED)
    functions.install(revision)


def downgrade() -> None:
    functions.install("0004")
    op.drop_table("ccd_tract_overlap")
    op.drop_table("ccd_patch_overlap")
