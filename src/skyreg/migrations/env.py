"""Alembic environment: runs migrations on the connection skyreg hands over.

skyreg always calls alembic programmatically (see :mod:`skyreg.db.migrate`) with an open
connection in ``config.attributes["connection"]``; the target metadata is the package's own, so
autogenerate compares against the same tables the code uses.
"""

from __future__ import annotations

from alembic import context

from skyreg.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run skyreg's migrations through `skyreg db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    compare_type=True,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
