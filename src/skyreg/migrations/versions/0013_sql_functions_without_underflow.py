"""SQL functions: unit vectors of points at the poles with a longitude of ~0 raise no error.

PostgreSQL raises "value out of range: underflow" where C silently rounds a product to zero:
``skyreg_unit_vector`` (every cone, point and polygon argument) and ``skyreg_vertices``
computed ``sin(lon) * cos(lat)``, which for a longitude below ~1e-290 radians at a latitude of
±90° rounds to zero, so ``skyreg_circle(2.2e-309, 90, ...)`` failed. A longitude below 1e-200
radians is now taken as 0; the component it gave is below 1e-200 and was flushed to 0 by
``skyreg_flushed`` anyway, so every result that was computed before is unchanged. The whole
set is re-installed from ``skyreg/migrations/sql/0013`` (0007's copy with that change); the
downgrade puts back 0007's.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 18:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

from skyreg.migrations import functions

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: SHA-256 of ``sql/0013`` (``functions.sql_digest``): the suite fails if the files change.
SQL_SHA256 = "b2d7198e9c3ad7e191be0c5c8ea9e71746935e75b3f95ac7b392c932f451d283"


def upgrade() -> None:
    functions.install(revision)


def downgrade() -> None:
    functions.install("0007")
