"""A registry's connections outlive its server: lost sessions are replaced, reads retried once.

When the server restarts (``skyreg server stop``, a PostgreSQL restart, a failover) or an
operator terminates a session, every connection to it is dead, and the client learns so only
when it next uses one. :class:`ReadConnection` is the registry's session for reads: when a
read finds its connection lost, it discards it, opens a new one (the engine starts an embedded
server again if needed) and runs the read once more. Prepared statements belong to a session,
so they are prepared again on the new connection (psycopg keeps them per connection).

Writes are never retried: a write whose connection broke may or may not have committed (if the
break came during COMMIT), and repeating it blindly is not ours to decide. :func:`writing`
turns the loss into a :class:`~skyreg.errors.ConnectionLostError` that says what became of the
work; skyreg's ingests are transactional and idempotent, so running one again is the fix.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import Executable

from skyreg.db.engine import describe, first_line
from skyreg.errors import ConnectionLostError, SkyregError

log = logging.getLogger(__name__)

T = TypeVar("T")


def is_lost(exc: BaseException, driver: DBAPIConnection | None = None) -> bool:
    """Whether ``exc`` means the connection broke (rather than the statement failing).

    ``driver`` is the psycopg connection the error came from, when known: its state is the
    surest sign. Without it, a psycopg error counts as a lost connection if it carries no
    SQLSTATE (libpq's own "server closed the connection unexpectedly") or one of the classes
    of a connection ending: 08 (connection exception) and 57P (operator intervention: admin
    or crash shutdown, cannot connect now).
    """
    if isinstance(exc, ConnectionLostError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if not isinstance(exc, psycopg.Error):
        return False
    if isinstance(driver, psycopg.Connection) and (driver.closed or driver.broken):
        return True
    if not isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return False
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P"))


class ReadConnection:
    """One autocommit session for a registry's reads, replaced when the server drops it.

    Autocommit, because reads need no BEGIN/COMMIT round trips. Only reads may go through
    it: :meth:`execute` retries SELECT statements only, :meth:`fetch` is for SELECTs.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None

    @property
    def connection(self) -> PoolProxiedConnection:
        """The current session's DBAPI connection (as ``sqlalchemy.Connection.connection``)."""
        return self._current().connection

    def execute(self, statement: Executable, parameters: Mapping[str, Any] | None = None
                ) -> Any:  # CursorResult, whose row typing differs in SQLAlchemy 2.0 and 2.1
        """Run a statement; a SELECT whose connection was lost is run again on a new one.

        Returns the ``CursorResult``. It is complete when this returns (psycopg fetches
        client-side), so reading it cannot hit a lost connection.
        """
        retry = bool(getattr(statement, "is_select", False))
        return self._run(lambda conn: conn.execute(statement, parameters), retry)

    def fetch(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of a SELECT (compiled SQL) run as a prepared statement, binary results.

        Binary results: bytea arrives as raw bytes instead of hex text to decode.
        """

        def run(conn: Connection) -> list[tuple[Any, ...]]:
            driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
            with driver.cursor(binary=True) as cursor:
                return cursor.execute(sql, params, prepare=True).fetchall()

        return self._run(run, retry=True)

    def read(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``work`` (reads only: it may run twice) on the session's psycopg connection.

        For reads that need the driver itself, such as ``COPY ... TO STDOUT``.
        """

        def run(conn: Connection) -> T:
            driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
            return work(driver)

        return self._run(run, retry=True)

    def close(self) -> None:
        """Return the session to the pool; a dead one is simply dropped."""
        if self._connection is not None:
            self._discard(self._connection)

    # -- internals ----------------------------------------------------------------------------

    def _current(self) -> Connection:
        conn = self._connection
        if conn is None or conn.closed or conn.invalidated:
            if conn is not None:
                self._discard(conn)
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._connection = conn
        return conn

    def _run(self, work: Callable[[Connection], T], retry: bool) -> T:
        for attempt in (1, 2):
            conn = self._current()
            driver = conn.connection.driver_connection
            try:
                return work(conn)
            except Exception as exc:
                if not is_lost(exc, driver):
                    raise
                self._discard(conn, exc)
                where = describe(self.engine)
                if not retry:
                    raise ConnectionLostError(
                        f"lost the connection to {where}: {first_line(exc)}") from exc
                if attempt == 2:
                    raise ConnectionLostError(
                        f"lost the connection to {where} again right after reconnecting: "
                        f"{first_line(exc)}") from exc
                log.info("lost the connection to %s (%s); reconnecting", where, first_line(exc))
        raise AssertionError("unreachable")  # pragma: no cover

    def _discard(self, conn: Connection, exc: BaseException | None = None) -> None:
        """Forget a session; if it is broken, make sure the pool does not hand it out again."""
        if self._connection is conn:
            self._connection = None
        # A dead connection may fail to roll back on close; there is nothing left to undo.
        with contextlib.suppress(SQLAlchemyError, psycopg.Error, SkyregError):
            if exc is not None and not conn.invalidated:
                conn.invalidate(exc)
            conn.close()


@contextlib.contextmanager
def writing(engine: Engine, what: str) -> Iterator[None]:
    """Report a connection lost during a write (``what``: "the ingest") as what it means."""
    try:
        yield
    except Exception as exc:
        if not is_lost(exc):
            raise
        raise ConnectionLostError(
            f"lost the connection to {describe(engine)} during {what} ({first_line(exc)}); "
            f"the server rolled back what it had not committed, so nothing is half-written. "
            f"Ingest is idempotent: run it again to store what is still missing"
        ) from exc
