"""Install the plain-SQL functions exactly as one revision shipped them.

A migration that installs SQL functions must give every database the same functions, whenever
it runs: so each such revision keeps its own complete, immutable copy of the SQL in
``sql/<revision>/*.sql`` (run in name order), records the SHA-256 of that copy
(:func:`sql_digest`, checked by the test suite), and installs it with :func:`install`. Changing
a function means a new revision with a new copy; a shipped copy is never edited (see
docs/design.md, "Changing the SQL functions").

:func:`install` replaces the whole set: it drops every ``skyreg_`` function of the schema and
runs the revision's files, so functions that a later revision renames or removes do not linger.
Privileges granted on a function are carried over to the function of the same signature.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from alembic import op
from psycopg import sql

#: Where each revision's copy of the SQL lives: ``SQL_ROOT / revision / *.sql``.
SQL_ROOT = Path(__file__).resolve().parent / "sql"
#: Every function the SQL files create is named with this prefix (and nothing else is).
FUNCTION_PREFIX = "skyreg_"

_FUNCTIONS = """
SELECT p.oid::regprocedure::text FROM pg_proc AS p
WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'skyreg\\_%'
ORDER BY 1
"""
_GRANTS = """
SELECT p.oid::regprocedure::text, a.grantee = 0, a.grantee::regrole::text, a.is_grantable
FROM pg_proc AS p CROSS JOIN LATERAL aclexplode(p.proacl) AS a
WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'skyreg\\_%'
  AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
"""


def sql_files(revision: str) -> list[Path]:
    """The SQL files of ``revision``, in the order they run."""
    files = sorted((SQL_ROOT / revision).glob("*.sql"))
    if not files:
        raise FileNotFoundError(f"no SQL files for revision {revision} in {SQL_ROOT}")
    return files


def sql_digest(revision: str) -> str:
    """SHA-256 over the names and bytes of the revision's SQL files, in order."""
    digest = hashlib.sha256()
    for path in sql_files(revision):
        content = path.read_bytes()
        digest.update(f"{path.name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Grant:
    signature: str
    public: bool
    grantee: str
    grantable: bool


def install(revision: str) -> None:
    """Replace every ``skyreg_`` function by those of ``revision`` (inside the migration's
    transaction, so a failure leaves the previous functions in place)."""
    grants, customised = _privileges()
    drop_all()
    for path in sql_files(revision):
        _run(path.read_text(encoding="utf-8"))
    _restore(grants, customised)


def drop_all() -> None:
    """Drop every ``skyreg_`` function of the current schema."""
    for signature in _query_column(_FUNCTIONS):
        _run(sql.SQL("DROP FUNCTION {}").format(sql.SQL(signature)))


def _privileges() -> tuple[list[_Grant], set[str]]:
    """EXECUTE grants other than the owner's, and the functions whose ACL is not the default."""
    driver = _driver()
    rows = driver.execute(_GRANTS).fetchall()
    customised = {str(row[0]) for row in driver.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc AS p "
        "WHERE p.pronamespace = current_schema()::regnamespace "
        "AND p.proname LIKE 'skyreg\\_%' AND p.proacl IS NOT NULL").fetchall()}
    return [_Grant(str(r[0]), bool(r[1]), str(r[2]), bool(r[3])) for r in rows], customised


def _restore(grants: list[_Grant], customised: set[str]) -> None:
    """Give functions that exist again the privileges they had (a revoke from PUBLIC too)."""
    present = set(_query_column(_FUNCTIONS))
    for signature in sorted(customised & present):
        _run(sql.SQL("REVOKE EXECUTE ON FUNCTION {} FROM PUBLIC").format(sql.SQL(signature)))
    for grant in grants:
        if grant.signature not in present:
            continue
        statement = sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}{}").format(
            sql.SQL(grant.signature),
            sql.SQL("PUBLIC") if grant.public else sql.SQL(grant.grantee),
            sql.SQL(" WITH GRANT OPTION") if grant.grantable else sql.SQL(""))
        _run(statement)


def _query_column(query: str) -> list[str]:
    return [str(row[0]) for row in _driver().execute(query).fetchall()]


def _run(script: str | sql.Composed) -> None:
    """Send a script of several statements as it is (no bind-parameter parsing)."""
    _driver().execute(script)


def _driver() -> psycopg.Connection[Any]:
    driver = op.get_bind().connection.driver_connection
    if not isinstance(driver, psycopg.Connection):  # pragma: no cover - always psycopg
        raise RuntimeError("skyreg migrations run on a psycopg connection")
    return driver
