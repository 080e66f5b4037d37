"""Level-1 catalogs: Rubin's APDB tables (DiaObject, DiaSource, ...) in the ``apdb`` schema.

The tables are built from ``apdb.yaml`` of the pinned ``lsst-sdm-schemas`` package when this
revision runs (:mod:`skyreg.schema.apdb`), so names, types and units are Rubin's; the schema
version is recorded in ``apdb.metadata`` as ``version:schema`` (and skyreg's own layout,
``pixelId`` at HTM level 20, as ``skyreg:pixelization``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from skyreg.schema.apdb import (
    APDB_HTM_LEVEL,
    APDB_SCHEMA,
    apdb_schema_version,
    build_apdb_metadata,
)

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {APDB_SCHEMA}")
    op.execute(f"COMMENT ON SCHEMA {APDB_SCHEMA} IS "
               "'Level-1 catalogs: Rubin APDB tables (lsst-sdm-schemas apdb.yaml)'")
    build_apdb_metadata().create_all(bind)
    driver = bind.connection.driver_connection
    assert driver is not None
    driver.execute(
        f'INSERT INTO {APDB_SCHEMA}.metadata (name, value) VALUES (%s, %s), (%s, %s)',
        ("version:schema", apdb_schema_version(),
         "skyreg:pixelization", f"htm{APDB_HTM_LEVEL}"))
    # Readers and writers of the registry use the Level-1 tables too (skyreg db roles grants
    # the same again, and covers roles made later).
    op.execute(f"""
        DO $$
        DECLARE r text;
        BEGIN
            FOREACH r IN ARRAY ARRAY['skyreg_reader', 'skyreg_writer'] LOOP
                IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
                    EXECUTE format('GRANT USAGE ON SCHEMA {APDB_SCHEMA} TO %I', r);
                    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA {APDB_SCHEMA} TO %I', r);
                END IF;
            END LOOP;
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'skyreg_writer') THEN
                GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {APDB_SCHEMA} TO skyreg_writer;
            END IF;
        END $$;
    """)


def downgrade() -> None:
    op.execute(f"DROP SCHEMA {APDB_SCHEMA} CASCADE")
