"""Alembic migrations of the registry schema (reviewed code, one file per revision)."""
