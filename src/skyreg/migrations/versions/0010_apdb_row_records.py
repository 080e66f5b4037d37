"""Level-1 row records: each DiaObject, DiaSource and DiaForcedSource row also holds its values
as one fixed-width ``bytea`` record, which reads send instead of ~100 fields a row.

Measured (scale 0.2, a CCD's 2,210-row DiaSource history): 5.6 ms of server time sending the
records against 19.7 ms for the fixed-width columns. The record is derived data: the writers of
skyreg build it; a row without one (another program wrote it) has it computed when read; a
trigger clears it when another program changes a value of the row (an UPDATE that sets one of
the record's columns and not the record). This revision adds the column where the table lacks
it, the trigger, and computes the records of the rows already stored.

The SQL of a record is frozen here (a copy of what :func:`skyreg.catalogs.apdb_binary.record_sql`
gives at this revision; a test checks they agree).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import REAL, BigInteger, Boolean, Double, Integer, SmallInteger, String

from skyreg.schema.apdb import (
    APDB_SCHEMA,
    PIXEL_COLUMN,
    PIXEL_TABLES,
    RECORD_COLUMN,
    RECORD_EXCLUDED,
    apdb_table,
)

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = f"{APDB_SCHEMA}.skyreg_clear_record"
_TRIGGER = "skyreg_clear_record"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def record_columns(table: str) -> list[str]:
    return [c.name for c in apdb_table(table).columns
            if c.name not in (PIXEL_COLUMN, RECORD_COLUMN, *RECORD_EXCLUDED)]


def record_sql(table: str) -> str:
    """The record of a row from its columns (frozen at this revision)."""
    parts: list[str] = []
    for name in record_columns(table):
        column = apdb_table(table).columns[name]
        kind, q = column.type, _q(name)
        if isinstance(kind, REAL | Double):
            send = "float4send" if isinstance(kind, REAL) else "float8send"
            nan = "'NaN'::float4" if isinstance(kind, REAL) else "'NaN'::float8"
            parts.append(f"{send}(coalesce({q}, {nan}))" if column.nullable else f"{send}({q})")
        elif isinstance(kind, BigInteger | SmallInteger | Integer):
            send = ("int8send" if isinstance(kind, BigInteger) else "int2send"
                    if isinstance(kind, SmallInteger) else "int4send")
            if column.nullable:
                parts += [f"{send}(coalesce({q}, 0))", f"boolsend(({q} IS NULL))"]
            else:
                parts.append(f"{send}({q})")
        elif isinstance(kind, Boolean):
            parts.append(f"int4send(coalesce({q}::int4, -1))" if column.nullable
                         else f"boolsend({q})")
        elif isinstance(kind, String) and kind.length:
            zeros = "E'\\\\x" + "00" * (4 * int(kind.length)) + "'::bytea"
            parts.append(f"overlay({zeros} placing coalesce(convert_to({q}::text, 'UTF8'), "
                         "E'\\\\xff'::bytea) from 1)")
        else:
            raise RuntimeError(f"{table}.{name}: no record encoding for {kind}")
    return " || ".join(parts)


def upgrade() -> None:
    op.execute(f"""
        CREATE OR REPLACE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.{_q(RECORD_COLUMN)} := NULL;
            RETURN NEW;
        END $$""")
    for table in PIXEL_TABLES:
        name = f"{APDB_SCHEMA}.{_q(table)}"
        op.execute(f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {_q(RECORD_COLUMN)} bytea")
        op.execute(f"COMMENT ON COLUMN {name}.{_q(RECORD_COLUMN)} IS 'the row''s values as "
                   "one fixed-width record, sent by reads; NULL: computed when read (skyreg)'")
        columns = ", ".join(_q(c) for c in record_columns(table))
        op.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER} ON {name}")
        op.execute(f"CREATE TRIGGER {_TRIGGER} BEFORE UPDATE OF {columns} ON {name} FOR EACH "
                   f"ROW WHEN (NEW.{_q(RECORD_COLUMN)} IS NOT DISTINCT FROM "
                   f"OLD.{_q(RECORD_COLUMN)}) EXECUTE FUNCTION {_FUNCTION}()")
        op.execute(f"UPDATE {name} SET {_q(RECORD_COLUMN)} = {record_sql(table)} "
                   f"WHERE {_q(RECORD_COLUMN)} IS NULL")


def downgrade() -> None:
    for table in PIXEL_TABLES:
        name = f"{APDB_SCHEMA}.{_q(table)}"
        op.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER} ON {name}")
        op.execute(f"ALTER TABLE {name} DROP COLUMN IF EXISTS {_q(RECORD_COLUMN)}")
    op.execute(f"DROP FUNCTION IF EXISTS {_FUNCTION}()")
