"""Plain-SQL surface for operators: geometry predicates, HTM covers and search functions.

The functions of this revision are its own copy in ``skyreg/migrations/sql/0002/*.sql``, run
in name order, so that a database migrated to 0002 gets the same functions whenever it is
migrated. They are sent to the server as they are, through the driver connection, without
any parameter substitution: the files hold no values, only definitions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 11:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from skyreg.migrations import functions

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: SHA-256 of ``sql/0002`` (``functions.sql_digest``): the suite fails if the files change.
SQL_SHA256 = "86d398007db8bf42a80d24b14558061827fef025ff39bc24221b9bc0c396f258"


def upgrade() -> None:
    functions.install(revision)


def downgrade() -> None:
    functions.drop_all()
