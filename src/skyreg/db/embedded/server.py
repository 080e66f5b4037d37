"""One embedded server per skyreg home: start on first use, share, linger, stop.

:class:`EmbeddedServer` ties the other modules together: the paths of a home
(:mod:`.paths`), the lease that says who uses the server (:mod:`.lease`), the cluster on disk
(:mod:`.cluster`), the postmaster (:mod:`.postmaster`) and the keeper that stops an idle server
(:mod:`.keeper`). :func:`acquire_embedded` is the process-wide entry point.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import secrets
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

from skyreg.db.embedded.binaries import server_version
from skyreg.db.embedded.cluster import ensure_cluster, write_settings
from skyreg.db.embedded.keeper import spawn_keeper
from skyreg.db.embedded.lease import Lease
from skyreg.db.embedded.namespace import check_reachable_without_override, privilege_prefix
from skyreg.db.embedded.paths import (
    DATABASE,
    DEFAULT_PORT,
    SUPERUSER,
    Layout,
    absolute,
    default_home,
    prepare_dirs,
)
from skyreg.db.embedded.postmaster import (
    START_TIMEOUT,
    clear_stale_state,
    connect,
    launch,
    stop_postmaster,
    wait_ready,
)
from skyreg.db.embedded.processes import PidFile, running_postmaster
from skyreg.errors import DatabaseError

log = logging.getLogger(__name__)

LINGER_ENV = "SKYREG_SERVER_LINGER"
DEFAULT_LINGER = 30.0
"""Seconds an automatically started server stays up after its last user left."""

_SERVERS_LOCK = threading.Lock()
_SERVERS: dict[Path, EmbeddedServer] = {}


def linger_seconds() -> float:
    """The linger time ``SKYREG_SERVER_LINGER`` asks for (seconds), else the default."""
    text = os.environ.get(LINGER_ENV, "").strip()
    if not text:
        return DEFAULT_LINGER
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise DatabaseError(f"{LINGER_ENV} must be a number of seconds >= 0, not {text!r}")
    return value


def embedded_server(home: Path | None = None) -> EmbeddedServer:
    """The process-wide :class:`EmbeddedServer` of ``home`` (default: :func:`default_home`).

    However the home is spelled, a process gets one object per home, so that it never counts
    as two users; its registration is released when the process exits.
    """
    path = absolute(default_home() if home is None else Path(home))
    with _SERVERS_LOCK:
        server = _SERVERS.get(path)
        if server is None:
            server = EmbeddedServer(path)
            _SERVERS[path] = server
            atexit.register(_release_at_exit, server)
    return server


def acquire_embedded(home: Path | None = None) -> str:
    """Use the embedded server of ``home`` (default: :func:`default_home`) and return its URL.

    The registration lasts until the process exits (an ``atexit`` hook releases it), which is
    what a command-line run or a notebook wants. Repeated calls for the same home reuse one
    :class:`EmbeddedServer`, so a process never counts as two users.
    """
    return embedded_server(home).acquire()


def _release_at_exit(server: EmbeddedServer) -> None:
    # An exception here would only print a traceback after the real work is done.
    try:
        server.release()
    except (DatabaseError, OSError) as exc:
        log.warning("could not release the embedded PostgreSQL server: %s", exc)


class EmbeddedServer:
    """One embedded PostgreSQL cluster living in ``home`` (skyreg's data dir).

    Creating the object touches nothing on disk; :meth:`acquire` does the work. An instance
    holds at most one registration (a shared lock on ``users.lock``); separate instances, even
    in one process, count as separate users. ``linger`` (default: ``SKYREG_SERVER_LINGER``,
    else 30 s) is how long the server stays up after this user, being the last, leaves.
    """

    def __init__(self, home: Path, *, linger: float | None = None) -> None:
        self.home: Path = absolute(Path(home))
        self.layout = Layout(self.home)
        self.data_dir: Path = self.layout.data_dir
        self.socket_dir: Path = self.layout.socket_dir
        self.database: str = DATABASE
        self.linger: float = linger_seconds() if linger is None else float(linger)
        self._lease = Lease(self.home)
        self._lock = threading.RLock()
        self._users_fd: int | None = None
        self._users_pid: int | None = None

    def __repr__(self) -> str:
        return f"EmbeddedServer(home={str(self.home)!r})"

    # -- public API -------------------------------------------------------------------------

    def port(self) -> int:
        """The running server's port (which names its socket file), else the default."""
        running = running_postmaster(self.data_dir)
        if running is None or running.port is None:
            return DEFAULT_PORT
        return running.port

    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver) that reaches the server over its Unix socket.

        The port is spelled out so that a ``PGPORT`` in the environment cannot redirect
        libpq to a socket file that does not exist.
        """
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql+psycopg://{SUPERUSER}@/{self.database}?host={host}&port={self.port()}"

    def tcp_url(self) -> str | None:
        """libpq URL of the server's TCP port, if ``skyreg server start --port`` opened one.

        The password is not in it: it is in :attr:`password_file` (pgpass format).
        """
        port = self._tcp_port(running_postmaster(self.data_dir))
        return None if port is None else f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"

    @property
    def password_file(self) -> Path:
        return self.layout.password_file

    def acquire(self) -> str:
        """Make sure the cluster exists and the server runs, register this process, return the URL.

        Idempotent within a process: a second call keeps the one registration. If the server
        has gone away since (``skyreg server stop``, a crash), it is started again.
        """
        with self._lock:
            if self._users_fd is not None and self._users_pid == os.getpid():
                if not self.is_running():
                    prepare_dirs(self.layout)
                    with self._lease.deciding():
                        self._ensure_started(None)
                return self.url()
            self._drop_inherited_registration()
            prepare_dirs(self.layout)
            with self._lease.deciding():
                fd = self._lease.join()
                try:
                    self._ensure_started(None)
                except BaseException:
                    os.close(fd)
                    raise
                self._users_fd = fd
                self._users_pid = os.getpid()
        return self.url()

    def release(self) -> None:
        """Unregister this process; if nobody else uses the server, let it linger or stop it.

        With a linger time of 0, or when no keeper could be started, the server is stopped
        now (a fast shutdown); otherwise the keeper stops it once nobody has used it for the
        linger time. A pinned server (``skyreg server start``) is left running. Idempotent.
        A process that dies without calling this loses its registration anyway.
        """
        with self._lock:
            fd = self._users_fd
            if fd is None:
                return
            self._users_fd = None
            if self._users_pid != os.getpid():
                # Inherited through fork(): the open lock belongs to the parent, and unlocking
                # it here would unregister the parent. Closing our copy leaves it intact.
                os.close(fd)
                return
            with self._lease.deciding():
                if not self._lease.leave(fd, self.linger):
                    return
                running = running_postmaster(self.data_dir)
                if running is None or self._lease.pinned() == running.server_id:
                    return
                if self.linger > 0 and spawn_keeper(self.layout, self._lease, self.linger):
                    return
                stop_postmaster(self.layout)

    def start(self, *, tcp_port: int | None = None) -> str:
        """Start the server if needed and pin it: it stays up until :meth:`stop`.

        The pin belongs to this run of the server: if it crashes or is killed, the next
        skyreg command starts an ordinary (lingering) one. ``tcp_port`` also opens
        127.0.0.1:PORT, with password authentication (see :attr:`password_file`); a server
        already running must be stopped first to change its port. Returns :meth:`url`.
        """
        prepare_dirs(self.layout)
        with self._lock, self._lease.deciding():
            running = running_postmaster(self.data_dir)
            if running is not None and tcp_port is not None:
                current = self._tcp_port(running)
                if current != tcp_port:
                    where = "on its Unix socket only" if current is None else f"on port {current}"
                    raise DatabaseError(
                        f"the embedded server in {self.home} is already running {where}; "
                        f"to listen on port {tcp_port}, stop it first (skyreg server stop)"
                    )
            self._ensure_started(tcp_port)
            if tcp_port is not None:
                self._set_tcp_password(tcp_port)
            running = running_postmaster(self.data_dir)
            if running is None:
                raise DatabaseError(f"the embedded server in {self.home} stopped right after "
                                    f"it started; see {self.layout.log_dir}")
            self._lease.pin(running.server_id)
        return self.url()

    def is_running(self) -> bool:
        """Whether a postmaster for this data directory is alive (it may still be starting)."""
        return running_postmaster(self.data_dir) is not None

    def stop(self) -> int | None:
        """Stop the server now, even if other processes use it (their connections are cut).

        Also ends a pin. Returns the pid of the server that was stopped, None if none ran.
        """
        with self._lock:
            if not self.home.is_dir():
                return None
            with self._lease.deciding():
                self._lease.unpin()
                return stop_postmaster(self.layout)

    def users(self) -> int | None:
        """How many processes are registered (Linux; None elsewhere), without any lock."""
        return self._lease.count()

    def status(self) -> dict[str, object]:
        """Describe the server without starting it or taking any lock.

        ``users`` counts the processes registered through :meth:`acquire`; it is read from
        ``/proc/locks`` on Linux and is ``None`` elsewhere, as is ``keeper`` (its pid).
        """
        running = running_postmaster(self.data_dir)
        version: str | None = None
        if running is not None:
            import psycopg

            with (contextlib.suppress(psycopg.Error),
                  connect(self.layout, "postgres", running.port or DEFAULT_PORT, 2) as conn):
                row = conn.execute("SHOW server_version").fetchone()
                version = None if row is None else str(row[0])
        if version is None:
            with contextlib.suppress(DatabaseError, OSError, subprocess.SubprocessError):
                version = server_version()
        return {
            "running": running is not None,
            "pid": None if running is None else running.pid,
            "data_dir": str(self.data_dir),
            "socket_dir": str(self.socket_dir),
            "url": self.url(),
            "tcp_url": self.tcp_url(),
            "version": version,
            "users": self.users(),
            "pinned": running is not None and self._lease.pinned() == running.server_id,
            "keeper": self._lease.keeper_pid() if running is not None else None,
            "linger": self.linger,
        }

    # -- internals ----------------------------------------------------------------------------

    def _drop_inherited_registration(self) -> None:
        if self._users_fd is not None:
            os.close(self._users_fd)
            self._users_fd = None

    def _tcp_port(self, running: PidFile | None) -> int | None:
        if running is None or not running.listen:
            return None
        return running.port

    def _ensure_started(self, tcp_port: int | None) -> None:
        """Start the server unless it runs; wait until it answers; create the database.

        Also makes sure a keeper watches it. Must be called while deciding.
        """
        deadline = time.monotonic() + START_TIMEOUT
        running = running_postmaster(self.data_dir)
        launched: subprocess.Popen[bytes] | None = None
        if running is None:
            prefix = privilege_prefix()
            if prefix:
                check_reachable_without_override(self.home)
            try:
                ensure_cluster(self.layout, prefix)
                write_settings(self.layout, tcp_port)
                clear_stale_state(self.layout)
                launched = launch(self.layout, prefix)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot start the embedded server in {self.home}: {exc}"
                ) from exc
            pid, port = launched.pid, DEFAULT_PORT if tcp_port is None else tcp_port
        else:
            pid, port = running.pid, running.port or DEFAULT_PORT
        wait_ready(self.layout, pid, launched, port, deadline)
        spawn_keeper(self.layout, self._lease, self.linger)

    def _tcp_password(self) -> str:
        """The TCP password, from the pgpass file; made (random, 0600 file) on first use."""
        path = self.layout.password_file
        with contextlib.suppress(OSError, ValueError):
            for line in path.read_text(encoding="ascii").splitlines():
                fields = line.split(":")
                if len(fields) == 5 and fields[3] == SUPERUSER and fields[4]:
                    return fields[4]
        password = secrets.token_urlsafe(24)  # letters, digits, - and _: nothing to escape
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="ascii") as f:
            f.write(f"127.0.0.1:*:*:{SUPERUSER}:{password}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return password

    def _set_tcp_password(self, port: int) -> None:
        """Give the superuser the TCP password, sent as a SCRAM verifier (never in clear)."""
        import psycopg
        from psycopg import sql

        password = self._tcp_password()
        try:
            with connect(self.layout, "postgres", port, timeout=10) as conn:
                verifier = conn.pgconn.encrypt_password(
                    password.encode(), SUPERUSER.encode(), b"scram-sha-256").decode()
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(SUPERUSER), sql.Literal(verifier)))
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot set the TCP password of the embedded server: {exc}"
                                ) from exc
