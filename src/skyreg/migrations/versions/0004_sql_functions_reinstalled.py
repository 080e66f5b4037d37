"""SQL functions as of this revision: polygon, patch and tract searches share one function.

Registries migrated to 0002 before its SQL was frozen hold whatever ``schema/sql`` held at that
time; this revision re-installs the whole set from its own copy in
``skyreg/migrations/sql/0004/*.sql`` (every ``skyreg_`` function is dropped and re-created), so
every registry at 0004 has the same functions as a fresh one. The downgrade puts back 0002's.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from skyreg.migrations import functions

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: SHA-256 of ``sql/0004`` (``functions.sql_digest``): the suite fails if the files change.
SQL_SHA256 = "279b77608a5bac81148766519b60a1e89425acfbc8ee06d2b95fe33d3c7288d7"


def upgrade() -> None:
    functions.install(revision)


def downgrade() -> None:
    functions.install("0002")
