"""Plain-SQL surface for operators: geometry predicates, HTM covers and search functions.

The functions live in ``skyreg/schema/sql/*.sql`` (run in name order) so that they can be read
and tested as SQL. They are sent to the server as they are, through the driver connection,
without any parameter substitution: the files hold no values, only definitions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 11:20:00
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_DIR = Path(__file__).resolve().parents[2] / "schema" / "sql"

#: Every function this revision creates is named with this prefix (and nothing else is).
FUNCTION_PREFIX = "skyreg_"

_DROP_FUNCTIONS = """
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc AS p
        WHERE p.pronamespace = current_schema()::regnamespace
          AND p.proname LIKE 'skyreg\\_%'
    LOOP
        EXECUTE 'DROP FUNCTION ' || f::text;
    END LOOP;
END $$;
"""


def _run(sql: str) -> None:
    """Send a script of several statements as it is (no bind-parameter parsing)."""
    driver = op.get_bind().connection.driver_connection
    assert driver is not None
    driver.execute(sql)


def upgrade() -> None:
    for path in sorted(SQL_DIR.glob("*.sql")):
        _run(path.read_text(encoding="utf-8"))


def downgrade() -> None:
    _run(_DROP_FUNCTIONS)
