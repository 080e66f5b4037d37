"""Which database to talk to, and the SQLAlchemy engine for it.

Precedence: an explicit URL, then ``SKYREG_DATABASE_URL``, then the embedded server in
``$SKYREG_HOME``. Plain ``postgresql://`` URLs are accepted and mapped to the psycopg 3 driver.

Every engine made here reports the two failures that belong to the connection rather than to
a statement as :class:`~skyreg.errors.DatabaseError`: the server cannot be reached (or refuses
the login), and a connection was lost (:class:`~skyreg.errors.ConnectionLostError`). Both name
the database without its password. An engine of the embedded server also starts the server
again when it must open a connection and finds it stopped.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError

from skyreg.errors import ConnectionLostError, DatabaseError

URL_ENV = "SKYREG_DATABASE_URL"

_LABELS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


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


def libpq_url(url: str | URL) -> str:
    """The libpq form of a URL, without its password: what psql and psycopg accept.

    Everything is percent-encoded: SQLAlchemy writes a space in a query value (a socket
    directory such as "Application Support") as "+", which libpq would keep as a "+".
    """
    parsed = make_url(url)
    netloc = quote(parsed.username, safe="") + "@" if parsed.username else ""
    host = parsed.host or ""
    netloc += f"[{host}]" if ":" in host else quote(host, safe="")
    if parsed.port is not None:
        netloc += f":{parsed.port}"
    path = "/" + quote(parsed.database, safe="") if parsed.database else ""
    query = urlencode(list(parsed.query.items()), doseq=True, quote_via=quote)
    return f"postgresql://{netloc}{path}" + (f"?{query}" if query else "")


def describe_url(url: str | URL) -> str:
    """The URL for messages: no password (not even a mask), no driver name."""
    return libpq_url(url)


def describe(engine: Engine) -> str:
    """What ``engine`` connects to, for messages (see :func:`describe_url`)."""
    return _LABELS.get(engine) or describe_url(engine.url)


def first_line(exc: BaseException) -> str:
    """The driver's message without its hints and SQL (the first line), or the error's type."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def make_engine(url: str, *, label: str | None = None, pool_size: int = 2,
                max_overflow: int = 4, pool_timeout: float = 30.0) -> Engine:
    """An engine with a small pool: one registry object rarely needs more than a connection.

    ``pool_pre_ping`` replaces pooled connections that died while idle (a server restart),
    so a transaction never starts on a dead connection. ``label`` names the database in
    messages (default: the URL without password). Callers serving many requests at once
    (the web service) ask for a larger pool.
    """
    engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow,
                           pool_timeout=pool_timeout, pool_pre_ping=True)
    where = label or describe_url(url)
    _LABELS[engine] = where

    @event.listens_for(engine, "handle_error")
    def _connection_errors(context: ExceptionContext) -> BaseException | None:
        if context.is_pre_ping:  # the pool handles these itself, by reconnecting
            return None
        reason = first_line(context.original_exception)
        if context.connection is None:  # no connection yet: it could not be opened
            return DatabaseError(f"cannot connect to {where}: {reason}")
        if context.is_disconnect:
            return ConnectionLostError(f"lost the connection to {where}: {reason}")
        return None

    return engine


def open_engine(url: str | None = None, home: Path | None = None, *, pool_size: int = 2,
                max_overflow: int = 4, pool_timeout: float = 30.0) -> Engine:
    """The engine of the configured database (see :func:`resolve_url`), embedded included.

    For the embedded server this registers the process as a user of the server of ``home``
    (default ``$SKYREG_HOME``), starting it if needed; whenever the engine opens a
    connection later, it first makes sure the server still runs, and starts it again if it
    was stopped (``skyreg server stop``) or died, so a long-lived registry recovers.
    """
    resolved = resolve_url(url)
    if resolved is not None:
        return make_engine(resolved, pool_size=pool_size, max_overflow=max_overflow,
                           pool_timeout=pool_timeout)
    from skyreg.db.embedded import embedded_server

    server = embedded_server(home)
    engine = make_engine(server.acquire(), label=f"the embedded server in {server.home}",
                         pool_size=pool_size, max_overflow=max_overflow,
                         pool_timeout=pool_timeout)

    @event.listens_for(engine, "do_connect")
    def _reach_server(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        server.acquire()
        cparams["host"] = str(server.socket_dir)
        cparams["port"] = str(server.port())

    return engine
