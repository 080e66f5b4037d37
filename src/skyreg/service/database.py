"""The service's database access: one engine per worker process, a pool of registries.

Connections are made safe for a public service when they are opened:

* every transaction is read-only (``default_transaction_read_only``), whatever the login;
* when the read role (``skyreg_reader`` by default, see ``skyreg db roles``) exists and the
  login may use it, the connection switches to it with ``SET ROLE``, so the database itself
  refuses anything but reading, also in the functions a query may call;
* every statement is bounded by ``statement_timeout``.

A :class:`~skyreg.registry.Registry` holds one connection and is not thread-safe, so the pool
hands each request a registry of its own and takes it back afterwards. With the embedded
server, each worker process registers itself as a user of the server (a shared lock, see
:mod:`skyreg.db.embedded`), so the server stays up while any worker runs and stops after the
last one (or the supervisor) leaves.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from psycopg import sql
from sqlalchemy import event

from skyreg.db.engine import open_engine
from skyreg.db.migrate import ensure_schema
from skyreg.db.roles import check_role_name
from skyreg.registry import Registry
from skyreg.service.settings import ServiceSettings

log = logging.getLogger(__name__)


class RegistryPool:
    """Registries sharing one engine; :meth:`registry` lends one per request."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.role_in_use: str | None = None
        self._role_checked = False
        self._role_lock = threading.Lock()
        # The engine maps connection failures to DatabaseError and, with the embedded
        # server, starts it again should it stop while the service runs.
        self.engine = open_engine(settings.database_url,
                                  Path(settings.home) if settings.home else None,
                                  pool_size=settings.pool_size + 1, max_overflow=2,
                                  pool_timeout=settings.query_timeout_s)
        event.listen(self.engine, "connect", self._prepare_connection)
        try:
            self.pixel_scheme = ensure_schema(self.engine)
        except Exception:
            self.engine.dispose()
            raise
        self._free: queue.LifoQueue[Registry] = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()
        self._closed = False

    def _prepare_connection(self, dbapi_connection: Any, _record: Any) -> None:
        timeout_ms = max(1, round(self.settings.query_timeout_s * 1000))
        with dbapi_connection.cursor() as cursor:
            cursor.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(timeout_ms)))
            cursor.execute("SET default_transaction_read_only = on")
            # Shortest exact text for floats (the default since PostgreSQL 12; clients may
            # change it in the database's settings): s_region vertices are read back exactly.
            cursor.execute("SET extra_float_digits = 1")
            role = self._usable_role(cursor)
            if role is not None:
                cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        dbapi_connection.commit()

    def _usable_role(self, cursor: Any) -> str | None:
        """The read role, if it exists and this login may switch to it (decided once)."""
        role = self.settings.read_role
        if not role:
            return None
        with self._role_lock:
            if not self._role_checked:
                check_role_name(role, "read role")
                row = cursor.execute(
                    "SELECT pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles "
                    "WHERE rolname = %s", (role,)).fetchone()
                if row is None:
                    log.warning("role %s does not exist: the service reads as %s, in read-only "
                                "transactions (create it with `skyreg db roles`)", role,
                                cursor.execute("SELECT current_user").fetchone()[0])
                elif not row[0]:
                    log.warning("the login may not use role %s (GRANT %s TO <login>); the "
                                "service reads without it, in read-only transactions", role, role)
                else:
                    self.role_in_use = role
                    log.info("database connections use role %s", role)
                self._role_checked = True
            return self.role_in_use

    @contextmanager
    def registry(self) -> Iterator[Registry]:
        """A registry for the caller alone until the block ends."""
        try:
            registry = self._free.get_nowait()
        except queue.Empty:
            registry = Registry(self.engine, self.pixel_scheme)
            with self._lock:
                self._created += 1
        try:
            yield registry
        except BaseException as err:
            # A database error may leave the connection in any state: start afresh. Errors
            # of the request itself (bad input) never touched it.
            if type(err).__module__.startswith(("psycopg", "sqlalchemy")):
                registry.reset_connection()
            raise
        finally:
            if self._closed:
                registry.reset_connection()
            else:
                self._free.put(registry)

    def ping(self) -> bool:
        """Whether the database answers (for VOSI availability)."""
        try:
            with self.registry() as registry:
                registry.dataset_types()
            return True
        except Exception as err:  # any failure means "not available"; the reason is logged
            log.warning("database check failed: %s", err)
            return False

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._free.get_nowait().reset_connection()
            except queue.Empty:
                break
        self.engine.dispose()
