"""Schema migrations, run through alembic with skyreg's own connection.

Upgrades take a transaction-scoped advisory lock, so two processes that open an empty database at
the same moment do not both try to create the schema: the second waits and then finds the schema
at head. DDL is transactional in PostgreSQL, so a failed upgrade leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, func, inspect, select, text

from skyreg.errors import DatabaseError
from skyreg.geometry.pixelization import PixelScheme
from skyreg.schema import registry_config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

#: Key of the advisory lock that serialises schema changes (any constant unique to skyreg).
SCHEMA_LOCK_KEY = 0x736B7972_65670001


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic Config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of skyreg."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise DatabaseError("this skyreg installation has no schema migrations; reinstall it")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None for a database skyreg never touched)."""
    return MigrationContext.configure(connection).get_current_revision()


def stored_scheme(connection: Connection) -> PixelScheme | None:
    """The pixelization recorded in the database, if any."""
    row = connection.execute(
        select(registry_config.c.pixel_scheme, registry_config.c.pixel_level)
    ).first()
    return PixelScheme(row.pixel_scheme, row.pixel_level) if row is not None else None


def upgrade(engine: Engine, scheme: PixelScheme | None = None) -> PixelScheme:
    """Bring the schema to head and make sure the pixelization is recorded.

    ``scheme`` is used only when the registry has none yet; asking for a different one than the
    registry already uses is an error, since every stored pixel row depends on it.
    """
    with engine.begin() as connection:
        connection.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))
        if current_revision(connection) != head_revision():
            command.upgrade(alembic_config(connection), "head")
        existing = stored_scheme(connection)
        if existing is None:
            chosen = scheme or PixelScheme()
            connection.execute(
                registry_config.insert().values(
                    id=1, pixel_scheme=chosen.scheme, pixel_level=chosen.level
                )
            )
            return chosen
        if scheme is not None and scheme != existing:
            raise DatabaseError(
                f"this registry is indexed with {existing}; it cannot switch to {scheme}"
            )
        return existing


def ensure_schema(engine: Engine, scheme: PixelScheme | None = None) -> PixelScheme:
    """Create the schema in an empty database; refuse to touch an outdated or foreign one."""
    with engine.connect() as connection:
        revision = current_revision(connection)
        if revision == head_revision():
            existing = stored_scheme(connection)
            if existing is not None and (scheme is None or scheme == existing):
                return existing
        elif revision is not None:
            raise DatabaseError(
                f"the database schema is at revision {revision}, this skyreg needs "
                f"{head_revision()}: run `skyreg db upgrade`"
            )
        elif inspect(connection).has_table("ccd"):
            raise DatabaseError(
                "the database holds a 'ccd' table but no skyreg schema version; "
                "point skyreg at an empty database"
            )
    return upgrade(engine, scheme)


def server_version(connection: Connection) -> str:
    """The server's version string, for status output."""
    return str(connection.execute(text("SHOW server_version")).scalar_one())
