"""Starting, waiting for and stopping the postmaster of a cluster.

psycopg is imported only where a connection is made, so that the keeper process (which only
stops servers) starts fast and small.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING

from skyreg.db.embedded.binaries import pg_bin, server_env
from skyreg.db.embedded.paths import DATABASE, SUPERUSER, Layout
from skyreg.db.embedded.processes import (
    is_our_postgres,
    pid_exists,
    postgres_processes_in,
    read_lock_pid,
    reap,
    running_postmaster,
)
from skyreg.errors import DatabaseError

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
"""Seconds to wait for the server to accept connections (crash recovery included)."""
STOP_TIMEOUT = 60.0
"""Seconds to wait for a fast shutdown (which writes a checkpoint) before escalating."""

_LOG_ROTATE_BYTES = 10 * 1024 * 1024


def clear_stale_state(layout: Layout) -> None:
    """Remove what a dead server left behind that would stop a new one from starting.

    Called when no live postmaster owns the data directory. A postmaster.pid naming a
    process that no longer exists is left alone: postgres treats it as stale itself and,
    using the shared-memory key recorded in it, also checks that no old backend is still
    attached. Any other pid file would make postgres refuse to start: its pid is a zombie
    (not yet reaped, common in containers), an unrelated process that reused the pid, or
    the file is garbage. We delete those, after making sure no process of the old server
    survives, which is the guarantee the shared-memory check would have given.
    """
    end_orphans(layout)
    pid_file = layout.pid_file
    if pid_file.exists():
        pid = read_lock_pid(pid_file)
        if pid is None or pid_exists(pid):
            log.info("removing stale %s (pid %s is not this server)", pid_file, pid)
            pid_file.unlink(missing_ok=True)
    for socket_lock in layout.socket_dir.glob(".s.PGSQL.*.lock"):
        pid = read_lock_pid(socket_lock)
        if pid is None or not is_our_postgres(pid, layout.data_dir):
            socket_lock.unlink(missing_ok=True)


def end_orphans(layout: Layout) -> None:
    """SIGQUIT leftover backends of a postmaster that was killed, and wait for them.

    They would otherwise still use the data directory next to a new postmaster. Only
    Linux lets us find them cheaply (by their working directory, the data directory).
    """
    orphans = postgres_processes_in(layout.data_dir)
    if not orphans:
        return
    log.warning("ending leftover server processes %s of %s", orphans, layout.data_dir)
    for pid in orphans:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + 10
    while orphans and time.monotonic() < deadline:
        time.sleep(0.02)
        orphans = postgres_processes_in(layout.data_dir)
    if orphans:
        raise DatabaseError(
            f"old PostgreSQL processes {orphans} still use {layout.data_dir}; "
            f"end them and try again"
        )


def launch(layout: Layout, prefix: list[str]) -> subprocess.Popen[bytes]:
    """Start the postmaster detached: own session, output to the log, nothing inherited.

    The postmaster outlives us if we exit first; a daemon thread reaps it if it exits
    first, so it never lingers as our zombie (which would look like a live process).
    """
    layout.log_dir.mkdir(mode=0o700, exist_ok=True)
    log_path = layout.log_dir / "postgresql.log"
    with contextlib.suppress(FileNotFoundError):
        if log_path.stat().st_size > _LOG_ROTATE_BYTES:
            os.replace(log_path, layout.log_dir / "postgresql.log.1")
    log.info("starting the embedded PostgreSQL server for %s", layout.home)
    cmd = [*prefix, str(pg_bin("postgres")), "-D", str(layout.data_dir)]
    with open(log_path, "ab") as log_file:
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=layout.data_dir,
                env=server_env(),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise DatabaseError(f"cannot run {cmd[0]}: {exc}") from exc
    threading.Thread(target=reap, args=(proc,), name="skyreg-pg-reaper", daemon=True).start()
    return proc


def wait_ready(layout: Layout, pid: int, launched: subprocess.Popen[bytes] | None,
               port: int, deadline: float) -> None:
    """Poll until the server accepts connections; then create the database if missing."""
    import psycopg

    delay = 0.005
    last_error = ""
    while True:
        if launched is not None:
            alive = launched.poll() is None
        else:
            alive = is_our_postgres(pid, layout.data_dir)
        if not alive:
            raise DatabaseError(
                f"the embedded PostgreSQL server (pid {pid}) exited during startup"
                + log_tail(layout)
            )
        try:
            with connect(layout, "postgres", port, timeout=2) as conn:
                _create_database(conn)
            return
        except psycopg.OperationalError as exc:
            last_error = (str(exc).strip().splitlines() or [""])[0]
        if time.monotonic() > deadline:
            raise DatabaseError(
                f"the embedded PostgreSQL server (pid {pid}) did not accept connections "
                f"within {START_TIMEOUT:.0f} s; it keeps starting (crash recovery can take "
                f"a while), so try again shortly (last error: {last_error})" + log_tail(layout)
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _create_database(conn: psycopg.Connection[TupleRow]) -> None:
    import psycopg
    from psycopg import sql

    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
    if exists is None:
        # CREATE DATABASE takes no parameters: quote the name as an identifier.
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot create database {DATABASE!r}: {exc}") from exc


def connect(layout: Layout, dbname: str, port: int, timeout: int
            ) -> psycopg.Connection[TupleRow]:
    """An autocommit superuser connection over the server's Unix socket."""
    import psycopg

    return psycopg.connect(
        host=str(layout.socket_dir),
        port=port,
        user=SUPERUSER,
        dbname=dbname,
        connect_timeout=timeout,
        autocommit=True,
    )


def log_tail(layout: Layout, lines: int = 15) -> str:
    """The end of the server log, to append to an error message."""
    path = layout.log_dir / "postgresql.log"
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            tail = f.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"; last lines of {path}:\n" + "\n".join(tail)


def stop_postmaster(layout: Layout) -> int | None:
    """Fast shutdown (checkpoint, then exit); escalate to immediate if it hangs.

    Returns the pid of the server that was stopped, None if none was running. Immediate
    shutdown skips the checkpoint, not durability: the next start replays the WAL, so no
    committed transaction is lost. Must be called with the lifecycle lock held.
    """
    running = running_postmaster(layout.data_dir)
    if running is None:
        return None
    pid = running.pid
    log.info("stopping the embedded PostgreSQL server (pid %d)", pid)
    for sig, timeout in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGQUIT, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return pid
        except PermissionError as exc:
            raise DatabaseError(f"cannot stop the server (pid {pid}): {exc}") from exc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not is_our_postgres(pid, layout.data_dir):
                return pid
            time.sleep(0.01)
        log.warning("server pid %d ignored signal %s", pid, sig.name)
    raise DatabaseError(f"the embedded PostgreSQL server (pid {pid}) does not stop")
