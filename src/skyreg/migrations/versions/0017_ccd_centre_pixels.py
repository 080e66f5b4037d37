"""One centre pixel per CCD and a covering index of it, for the cone and point searches.

``find_ccds(cone=...)`` read its candidates from ``ccd_pixel``: at 10,000 visits a 0.2° cone
scanned ~15,000 pixel rows for ~3,700 CCDs, sorted and deduplicated their ids, then fetched
and shipped every candidate's polygon. ``ccd.centre_pix`` holds the HTM index of the centre
of each CCD's caps (revision 0016) at a level chosen by the size of its outer cap
(:mod:`skyreg.geometry.centre_pixels`), and ``ix_ccd_centre_pix`` holds it with the CCD's
key, caps and polygon: a cone's candidates are one index-only range scan, one entry each, and
the caps decide most of them; only the undecided rest is sent with its polygon
(``skyreg.search.centre_statements``). The index costs ~240 bytes per CCD.

The upgrade adds the column (nullable: a CCD written without it is still found, as an
undecided candidate of every cone), fills it for the stored CCDs from their caps in batches of
:data:`BATCH` (which rewrites every ``ccd`` row once; a VACUUM reclaims the old versions),
builds the index, and installs the SQL of ``skyreg/migrations/sql/0017``: 0016's, with
``skyreg_ccds_in_cone`` reading its candidates from the index (``skyreg_centre_cover``).
The downgrade puts back 0016's functions and drops both.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

from skyreg.geometry.bounding_caps import CAP_COLUMNS
from skyreg.geometry.centre_pixels import centre_pixels
from skyreg.migrations import functions

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: SHA-256 of ``sql/0017`` (``functions.sql_digest``): the suite fails if the files change.
SQL_SHA256 = "e07a7a027df5962d49c6c98e8966c2e6cefe6e32c5becc5b828bcdeb361eed10"

#: The column's comment as this revision wrote it (skyreg.schema.tables may move on).
_COMMENT = ("HTM index of the caps' centre at a level chosen by the outer radius "
            "(skyreg.geometry.centre_pixels); NULL when a writer did not compute it")
#: What the index holds beside the centre pixel, as this revision built it.
_INCLUDE = ["ccd_id", "instrument", "visit", "detector", "cap_x", "cap_y", "cap_z",
            "cap_inner_cos", "cap_inner_sin", "cap_outer_cos", "cap_outer_sin", "region"]

#: CCDs read, computed and updated at a time by the backfill.
BATCH = 100_000

_READ = sa.text("SELECT ccd_id, " + ", ".join(CAP_COLUMNS) + " FROM ccd WHERE ccd_id > :after "
                "ORDER BY ccd_id LIMIT :limit")
_WRITE = sa.text("UPDATE ccd SET centre_pix = v.pix FROM unnest(CAST(:ids AS bigint[]), "
                 "CAST(:pix AS bigint[])) AS v (ccd_id, pix) WHERE ccd.ccd_id = v.ccd_id")


def upgrade() -> None:
    op.add_column("ccd", sa.Column("centre_pix", sa.BigInteger(), nullable=True,
                                   comment=_COMMENT))
    connection = op.get_bind()
    after = -1
    while True:
        rows = connection.execute(_READ, {"after": after, "limit": BATCH}).all()
        if not rows:
            break
        caps = np.array([[np.nan if value is None else value for value in row[1:]]
                         for row in rows], dtype=np.float64)
        pixels = centre_pixels(caps)
        # CCDs without caps (written by another program) keep NULL: no update for them.
        known = ~np.isnan(pixels)
        ids = [row[0] for row, ok in zip(rows, known.tolist(), strict=True) if ok]
        if ids:
            connection.execute(_WRITE, {"ids": ids,
                                        "pix": pixels[known].astype(np.int64).tolist()})
        after = rows[-1][0]
    op.create_index("ix_ccd_centre_pix", "ccd", ["centre_pix"], postgresql_include=_INCLUDE)
    functions.install(revision)


def downgrade() -> None:
    functions.install("0016")
    op.drop_index("ix_ccd_centre_pix", table_name="ccd")
    op.drop_column("ccd", "centre_pix")
