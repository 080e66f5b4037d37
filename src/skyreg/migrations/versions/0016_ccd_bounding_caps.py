"""Two caps per CCD footprint, so that the SQL cone and point searches decide most candidates
with a dozen float operations.

At 10,000 visits ``skyreg_ccds_in_cone`` (0.2°) spent ~3.5 µs of server CPU on each of its
~4,000 candidates in the vertex prefilter of revision 0015 (sines and cosines of the stored
RA/Dec, then ~150 float operations): ~15 of its ~20 ms. Each CCD now stores a centre inside
its footprint and the cosine and sine of two radii, one cap inside the footprint and one
holding it (``ccd.cap_*``, computed by :mod:`skyreg.geometry.bounding_caps` from the encoded
region). A cone that reaches into the inner cap overlaps the CCD, one that misses the outer
cap does not: ``skyreg_bounds_verdict`` decides ~85% of the candidates that way, and only the
others go on to the vertex prefilter and the exact test. The answers are unchanged.

The upgrade adds the seven columns (nullable: a CCD written by another program without them
is still answered exactly, by the other tests), fills them for the stored CCDs in batches of
:data:`BATCH` (which rewrites every ``ccd`` row once; a VACUUM reclaims the old versions), and
installs the SQL of ``skyreg/migrations/sql/0016``: 0015's, with the cone and point searches
testing the caps first. The downgrade puts back 0015's functions and drops the columns.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

from skyreg.geometry.bounding_caps import CAP_COLUMNS, caps_of_encoded
from skyreg.migrations import functions

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: SHA-256 of ``sql/0016`` (``functions.sql_digest``): the suite fails if the files change.
SQL_SHA256 = "b1091971befd8e366441ec62629d2b3d89e5b62416b29692ae882488df43d0cf"

#: The columns' comments as this revision wrote them (skyreg.schema.tables may move on).
_COMMENTS = {
    "cap_x": "centre of both caps (unit vector x), inside the footprint",
    "cap_y": "centre of both caps (unit vector y)",
    "cap_z": "centre of both caps (unit vector z)",
    "cap_inner_cos": "cosine of the radius of a cap inside the footprint",
    "cap_inner_sin": "sine of that radius",
    "cap_outer_cos": "cosine of the radius of a cap holding the footprint "
                     "(-1: no such cap below 90 degrees)",
    "cap_outer_sin": "sine of that radius",
}

#: CCDs read, computed and updated at a time by the backfill.
BATCH = 50_000

_READ = sa.text("SELECT ccd_id, region FROM ccd WHERE ccd_id > :after "
                "ORDER BY ccd_id LIMIT :limit")
_WRITE = sa.text(
    "UPDATE ccd SET " + ", ".join(f"{name} = v.{name}" for name in CAP_COLUMNS)
    + " FROM unnest(CAST(:ids AS bigint[]), "
    + ", ".join(f"CAST(:{name} AS float8[])" for name in CAP_COLUMNS)
    + ") AS v (ccd_id, " + ", ".join(CAP_COLUMNS) + ") WHERE ccd.ccd_id = v.ccd_id")


def upgrade() -> None:
    for name in CAP_COLUMNS:
        op.add_column("ccd", sa.Column(name, sa.Double(), nullable=True,
                                       comment=_COMMENTS[name]))
    connection = op.get_bind()
    after = -1
    while True:
        rows = connection.execute(_READ, {"after": after, "limit": BATCH}).all()
        if not rows:
            break
        # A region that is not a polygon encoding (written by another program) gets NULL
        # caps: its searches then skip the caps' test.
        caps = caps_of_encoded([bytes(region) for _, region in rows], strict=False)
        params: dict[str, object] = {"ids": [ccd_id for ccd_id, _ in rows]}
        params.update({name: [None if np.isnan(value) else value for value in caps[:, i].tolist()]
                       for i, name in enumerate(CAP_COLUMNS)})
        connection.execute(_WRITE, params)
        after = rows[-1][0]
    functions.install(revision)


def downgrade() -> None:
    functions.install("0015")
    for name in reversed(CAP_COLUMNS):
        op.drop_column("ccd", name)
