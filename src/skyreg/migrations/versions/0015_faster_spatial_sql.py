"""SQL functions: faster cone, point and polygon searches, with the same answers.

At 10,000 visits ``skyreg_ccds_in_cone`` (0.2°) took ~85 ms: ~4-5 ms of CPU for the HTM cover
and ~15 µs for each of its ~3,400 candidate CCDs, nearly all of it in PL/pgSQL
(``skyreg_vertices`` turning the stored RA/Dec arrays into unit vectors, then
``skyreg_polygon_overlaps_circle``). This revision re-installs the set from
``skyreg/migrations/sql/0015``: 0014's, with

* ``skyreg_htm_cover`` computing the descent as one recursive query with a generic plan (the
  same floating-point operations, so the same cover) instead of some fifteen PL/pgSQL
  statements per trixel; for a polygon, trixels clear of its bounding circle skip the exact
  test (which would say false);
* an inline prefilter in built-in float arithmetic (``skyreg_cap_verdict``,
  ``skyreg_point_verdict``, ``skyreg_sides_verdict`` on ``skyreg_corner_vectors``) that decides
  a candidate of the cone, point and polygon searches where it can prove the answer with a
  margin; only the undecided ones (~1 % of a 0.2° cone's) go to the exact PL/pgSQL test, so
  every answer is still sphgeom's.

At 1,000 visits the cone's CPU per candidate drops from ~15 to ~3 µs and its cover from ~4 to
~0.6 ms (docs/benchmarks.md). No table changes. The downgrade puts back 0014's functions.

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
SQL_SHA256 = "79ca47c57932f572559c2348f0c85d786e7188754e598be3a9d01fd1d558295e"


def upgrade() -> None:
    functions.install(revision)


def downgrade() -> None:
    functions.install("0014")
