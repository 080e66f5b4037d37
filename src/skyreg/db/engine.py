"""Which database to talk to, and the SQLAlchemy engine for it.

Precedence: an explicit URL, then ``SKYREG_DATABASE_URL``, then the embedded server in
``$SKYREG_HOME``. Plain ``postgresql://`` URLs are accepted and mapped to the psycopg 3 driver.
"""

from __future__ import annotations

import os

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from skyreg.errors import DatabaseError

URL_ENV = "SKYREG_DATABASE_URL"


def normalize_url(url: str) -> str:
    """Map any PostgreSQL URL onto the psycopg 3 driver; refuse other databases."""
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise DatabaseError(f"not a database URL: {url!r}") from err
    backend = parsed.get_backend_name()
    if backend not in ("postgresql", "postgres"):
        raise DatabaseError(f"skyreg needs PostgreSQL, not {backend!r} ({url!r})")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def resolve_url(url: str | None) -> str | None:
    """The configured server URL, or None when the embedded server should be used."""
    chosen = url or os.environ.get(URL_ENV) or None
    return normalize_url(chosen) if chosen else None


def make_engine(url: str) -> Engine:
    """An engine with a small pool: one registry object rarely needs more than a connection."""
    return create_engine(url, pool_size=2, max_overflow=4, pool_pre_ping=True)
