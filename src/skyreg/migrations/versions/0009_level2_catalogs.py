"""Level-2 object catalogs: the ``catalogs`` schema and its table of loaded catalogs.

``catalogs.skyreg_catalog`` has one row per catalog loaded with ``skyreg catalog load``: the
name, the table holding its rows (created in the same schema at the first load), the id and
position columns, the column list with PostgreSQL types, the row count and the HEALPix order
of the ``skyreg_pix`` column. The catalog tables themselves are data, not schema: they are
made by the loader, so this revision creates only the schema and the registry table.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _run(sql: str) -> None:
    """Send a script of several statements as it is (no bind-parameter parsing)."""
    driver = op.get_bind().connection.driver_connection
    assert driver is not None
    driver.execute(sql)


def upgrade() -> None:
    _run(r"""
        CREATE SCHEMA IF NOT EXISTS catalogs;
        COMMENT ON SCHEMA catalogs IS 'Object catalogs loaded with skyreg catalog load';
        CREATE TABLE catalogs.skyreg_catalog (
            name text PRIMARY KEY,
            table_name text NOT NULL UNIQUE,
            id_column text NOT NULL,
            ra_column text NOT NULL,
            dec_column text NOT NULL,
            columns jsonb NOT NULL,
            row_count bigint NOT NULL DEFAULT 0,
            pixel_order integer NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_skyreg_catalog_name CHECK (name ~ '^[a-z][a-z0-9_]{0,47}$'),
            CONSTRAINT ck_skyreg_catalog_columns CHECK (jsonb_typeof(columns) = 'array'),
            CONSTRAINT ck_skyreg_catalog_rows CHECK (row_count >= 0)
        );
        COMMENT ON TABLE catalogs.skyreg_catalog IS
            'Loaded object catalogs: table, id/ra/dec columns, columns [{name, type}], rows';
        DO $$
        DECLARE r text;
        BEGIN
            FOREACH r IN ARRAY ARRAY['skyreg_reader', 'skyreg_writer'] LOOP
                IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
                    EXECUTE format('GRANT USAGE ON SCHEMA catalogs TO %I', r);
                    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA catalogs TO %I', r);
                    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA catalogs '
                                   'GRANT SELECT ON TABLES TO %I', r);
                END IF;
            END LOOP;
        END $$;
    """)


def downgrade() -> None:
    _run("DROP SCHEMA catalogs CASCADE")
