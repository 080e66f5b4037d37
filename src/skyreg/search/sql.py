"""Composed statements as SQL text, compiled once per statement shape, on first use.

Hot queries skip SQLAlchemy's per-execution work (cache keys, result processing) and go to
psycopg as prepared statements; the statements themselves are still composed objects. Nothing
is built or compiled when a module is imported: the dialect and each statement's text are made
the first time a query needs them, then cached.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

from sqlalchemy.sql.expression import ClauseElement


@cache
def _dialect() -> Any:
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    return PGDialect_psycopg()  # type: ignore[no-untyped-call]


@lru_cache(maxsize=256)
def compiled(builder: Callable[..., ClauseElement], *args: Any) -> str:
    """SQL text of ``builder(*args)`` (hashable arguments: the statement's shape)."""
    return str(builder(*args).compile(dialect=_dialect()))
