"""SQL functions: faster cone, point and polygon searches, with the same answers.

At 10,000 visits ``skyreg_ccds_in_cone`` (0.2°) took ~85 ms: ~5 ms for the HTM cover and
~24 µs for each of its ~2,700 candidate CCDs, nearly all of it in PL/pgSQL (``skyreg_vertices``
turning the stored RA/Dec arrays into unit vectors, then ``skyreg_polygon_overlaps_circle``).
This revision re-installs the set from ``skyreg/migrations/sql/0015``: 0014's, with

* ``skyreg_htm_cover`` computing the descent as one recursive query (the same floating-point
  operations, so the same cover) instead of some fifteen PL/pgSQL statements per trixel;
* an inline prefilter in built-in float arithmetic (``skyreg_cap_verdict``,
  ``skyreg_point_verdict``) that decides most candidates of the cone, point and polygon
  searches with a proven margin; only the undecided ones (about 1 % of a cone's) go to the
  exact PL/pgSQL test, so every answer is still sphgeom's.

The downgrade puts back 0014's functions.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from skyreg.migrations import functions

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: SHA-256 of ``sql/0015`` (``functions.sql_digest``): the suite fails if the files change.
SQL_SHA256 = "2be1dd980194ec01dea9d517a541a2fe46c97b823e156be07d72ff0361b5d905"


def upgrade() -> None:
    functions.install(revision)


def downgrade() -> None:
    functions.install("0014")
