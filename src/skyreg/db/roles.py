"""Database roles for operators: a read-only reader and an ingest writer.

Roles are cluster-wide in PostgreSQL while privileges are per database, so :func:`ensure_roles`
creates the roles only when missing and (re)grants privileges in the registry's database; it is
safe to run any number of times. Role names are SQL identifiers: they are validated, then quoted
with :class:`psycopg.sql.Identifier`, never pasted into SQL text. ``ALTER ROLE`` takes no bind
parameters, so a password is quoted with :class:`psycopg.sql.Literal`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine

from skyreg.errors import SkyregError
from skyreg.schema.namespaces import EXTRA_SCHEMAS

#: Lower-case letters, digits and underscores, starting with a letter: no quoting surprises.
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RESERVED_PREFIXES = ("pg_",)


class RoleError(SkyregError, ValueError):
    """A role name or option that cannot be used."""


@dataclass(frozen=True)
class RoleReport:
    """What :func:`ensure_roles` did."""

    reader: str
    writer: str
    created: tuple[str, ...]


def check_role_name(name: str, what: str = "role") -> str:
    """Return ``name`` if it is a plain lower-case identifier, else raise :class:`RoleError`."""
    if not isinstance(name, str) or not _ROLE_NAME.fullmatch(name):
        raise RoleError(
            f"{what} name {name!r}: use 1-63 lower-case letters, digits or underscores, "
            "starting with a letter or underscore")
    if name.startswith(_RESERVED_PREFIXES) or name in ("public", "none"):
        raise RoleError(f"{what} name {name!r} is reserved by PostgreSQL")
    return name


def ensure_roles(engine: Engine, reader: str = "skyreg_reader", writer: str = "skyreg_writer",
                 *, login: bool = False, password: str | None = None) -> RoleReport:
    """Create the reader and writer roles if missing and grant them their privileges.

    * reader: USAGE on the schemas, SELECT on every table and view, EXECUTE on every function;
    * writer: the reader's privileges plus INSERT, UPDATE, DELETE and sequence use — what
      ingest needs (it also creates temporary staging tables, hence TEMPORARY on the database);
    * default privileges make tables and functions created later by the current role (e.g. by
      a migration) in those schemas covered too.

    The schemas are all those of the registry (:func:`registry_schemas`): its own and the
    ones its migrations created (``ivoa``, ...). A migration that creates a new schema after
    the roles exist is covered once this runs again (``skyreg db roles`` after
    ``skyreg db upgrade``).

    Roles are NOLOGIN unless ``login`` is true; ``password`` (only with ``login``) is set on
    both roles.
    """
    check_role_name(reader, "reader")
    check_role_name(writer, "writer")
    if reader == writer:
        raise RoleError("the reader and writer roles must differ")
    if password is not None and not login:
        raise RoleError("a password only makes sense with login")
    if password is not None and ("\x00" in password or not password):
        raise RoleError("the password must be non-empty and hold no NUL character")
    created: list[str] = []
    with engine.begin() as connection:
        driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
        # Concurrent runs would race between the existence check and CREATE ROLE.
        driver.execute("SELECT pg_advisory_xact_lock(hashtext('skyreg roles'))")
        for name in (reader, writer):
            exists = driver.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                    (name,)).fetchone()
            if exists is None:
                driver.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
                created.append(name)
            driver.execute(sql.SQL("ALTER ROLE {} {}").format(
                sql.Identifier(name), sql.SQL("LOGIN" if login else "NOLOGIN")))
            if password is not None:
                # ALTER ROLE takes no bind parameters: the password is quoted as a literal.
                driver.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(password)))
        _grant(driver, reader, writer)
    return RoleReport(reader, writer, tuple(created))


def registry_schemas(driver: psycopg.Connection[Any]) -> list[str]:
    """The schemas of this registry that exist: its own (``current_schema()``) and those of
    :data:`~skyreg.schema.namespaces.EXTRA_SCHEMAS` its migrations created so far."""
    own = driver.execute("SELECT current_schema()").fetchone()
    if own is None or own[0] is None:
        raise RoleError("the login has no current schema (check its search_path)")
    extra = [row[0] for row in driver.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s) ORDER BY nspname",
        (list(EXTRA_SCHEMAS),))]
    return [own[0], *(name for name in extra if name != own[0])]


def _grant(driver: psycopg.Connection[Any], reader: str, writer: str) -> None:
    database = driver.execute("SELECT current_database()").fetchone()
    assert database is not None
    db = sql.Identifier(database[0])
    r, w = sql.Identifier(reader), sql.Identifier(writer)
    for text in ("GRANT CONNECT ON DATABASE {db} TO {r}, {w}",
                 "GRANT TEMPORARY ON DATABASE {db} TO {w}"):
        driver.execute(sql.SQL(text).format(db=db, r=r, w=w))
    for schema in registry_schemas(driver):
        s = sql.Identifier(schema)
        for text in _SCHEMA_GRANTS:
            driver.execute(sql.SQL(text).format(s=s, r=r, w=w))


#: The same privileges in every schema of the registry.
_SCHEMA_GRANTS = (
    "GRANT USAGE ON SCHEMA {s} TO {r}, {w}",
    "GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}, {w}",
    "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {s} TO {r}, {w}",
    "GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {w}",
    "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {w}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}, {w}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT EXECUTE ON FUNCTIONS TO {r}, {w}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT INSERT, UPDATE, DELETE ON TABLES TO {w}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {w}",
    # Nobody but the owner may create objects in the schema (PUBLIC may on PostgreSQL 14).
    "REVOKE CREATE ON SCHEMA {s} FROM PUBLIC",
)


def drop_roles(engine: Engine, *names: str) -> None:
    """Drop roles after removing their privileges in this database (used by tests and cleanup).

    Privileges in other databases of the cluster must be removed there first.
    """
    with engine.begin() as connection:
        driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
        for name in names:
            check_role_name(name)
            if driver.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                              (name,)).fetchone() is None:
                continue
            driver.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            driver.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
