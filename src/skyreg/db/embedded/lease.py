"""Who uses a server and who may stop it: file locks, which the kernel drops when a process dies.

A reference count in a file would be wrong forever after one crash; a lock is not. So:

* every user process holds a shared ``flock`` on ``users.lock`` (:meth:`Lease.join`); nobody
  uses the server when an exclusive lock on it can be had (:meth:`Lease.unused`);
* ``lifecycle.lock`` (:meth:`Lease.deciding`) serialises every start and stop decision, so that
  a process leaving and one arriving cannot both act on a stale view. Only a holder of
  lifecycle.lock ever locks users.lock exclusively, so a joining process (which holds
  lifecycle.lock) gets its shared lock at once;
* the keeper, the process that stops a server once nobody has used it for a while, holds
  ``keeper.lock`` exclusively for its whole life: it is alive exactly while the lock is held.
  The lock is taken by the process that spawns the keeper, under lifecycle.lock, and handed
  over with the open file, so there is never a moment when a keeper runs without it;
* ``departed`` records when the last user left, and the linger time it asked for; ``pinned``
  names the one server run that ``skyreg server start`` keeps up whatever the users do.

Nothing here knows about PostgreSQL: the tests drive it with plain child processes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from skyreg.db.embedded.processes import pid_exists
from skyreg.errors import DatabaseError

if sys.platform != "win32":  # flock is all we need, and Windows is not supported
    import fcntl

LOCK_TIMEOUT = 180.0
"""Seconds to wait for another process that is starting or stopping the server."""


@dataclass(frozen=True)
class Departure:
    """The last clean departure of a user: when (``time.time()``) and the linger it wanted."""

    when: float
    linger: float


class Lease:
    """The lock files of one skyreg home (the directory must exist, except where noted)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lifecycle_path = directory / "lifecycle.lock"
        self.users_path = directory / "users.lock"
        self.keeper_path = directory / "keeper.lock"
        self.departed_path = directory / "departed"
        self.pinned_path = directory / "pinned"

    # -- decisions ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def deciding(self, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """Hold lifecycle.lock exclusively: one start or stop decision at a time."""
        fd = _open_lock_file(self.lifecycle_path)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, self.lifecycle_path)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DatabaseError(
                            f"another skyreg process has been starting or stopping the server "
                            f"in {self.directory} for over {timeout:.0f} s; giving up"
                        ) from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def deciding_if_free(self) -> Iterator[bool]:
        """Like :meth:`deciding` without waiting: yields whether the lock was had.

        Never creates the lock file: a keeper whose home was deleted must not recreate it.
        """
        try:
            fd = os.open(self.lifecycle_path, os.O_RDWR)
        except OSError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    # -- users --------------------------------------------------------------------------------

    def join(self) -> int:
        """Register as a user: a shared lock on users.lock, held through the returned fd.

        Call while :meth:`deciding`. The registration ends with :meth:`leave`, or when the
        process dies.
        """
        fd = _open_lock_file(self.users_path)
        try:
            _flock(fd, fcntl.LOCK_SH, self.users_path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def leave(self, fd: int, linger: float) -> bool:
        """End the registration of :meth:`join`; return whether nobody uses the server now.

        Call while :meth:`deciding`. Records the departure and the linger time this user
        wants the server kept for, for the keeper.
        """
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        self._record_departure(linger)
        return self.unused()

    def unused(self) -> bool:
        """Whether no process holds a registration. Call while :meth:`deciding`.

        Creates no file (the keeper must never recreate a deleted home): without users.lock,
        nobody ever joined.
        """
        try:
            fd = os.open(self.users_path, os.O_RDWR)
        except FileNotFoundError:
            return True
        except OSError as exc:
            raise DatabaseError(f"cannot open lock file {self.users_path}: {exc}") from exc
        try:
            _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, self.users_path)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True

    def count(self) -> int | None:
        """How many registrations are held, from ``/proc/locks``; None where that is unknown.

        Takes no lock, so it can describe a server without disturbing it.
        """
        holders = _flock_holders(self.users_path)
        return None if holders is None else holders.count("READ")

    def _record_departure(self, linger: float) -> None:
        text = f"{time.time()!r} {linger!r}\n"
        with contextlib.suppress(OSError):
            fd = os.open(self.departed_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="ascii") as f:
                f.write(text)

    def last_departure(self) -> Departure | None:
        """The departure :meth:`leave` recorded last; None if none was (or it is unreadable)."""
        try:
            when, linger = self.departed_path.read_text(encoding="ascii").split()
            return Departure(float(when), float(linger))
        except (OSError, ValueError):
            return None

    # -- the keeper -----------------------------------------------------------------------------

    def keeper_alive(self) -> bool:
        """Whether a keeper holds keeper.lock. Call while :meth:`deciding`."""
        fd = _open_lock_file(self.keeper_path)
        try:
            _flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, self.keeper_path)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def claim_keeper(self) -> int | None:
        """Lock keeper.lock for a new keeper; the fd is to be inherited by it, then closed here.

        Call while :meth:`deciding`. None if a keeper is alive.
        """
        fd = _open_lock_file(self.keeper_path)
        try:
            _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, self.keeper_path)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def record_keeper_pid(self, fd: int, pid: int) -> None:
        """Write the keeper's pid into keeper.lock (through the claimed fd), for status."""
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{pid}\n".encode(), 0)

    def keeper_pid(self) -> int | None:
        """Pid of the live keeper, without taking a lock; None if there is none."""
        try:
            text = self.keeper_path.read_text(encoding="ascii").strip()
        except OSError:
            return None
        if not text.isdigit():
            return None
        holders = _flock_holders(self.keeper_path)
        if holders is None:
            return int(text) if pid_exists(int(text)) else None
        return int(text) if "WRITE" in holders else None

    # -- the pin ------------------------------------------------------------------------------

    def pin(self, server_id: str) -> None:
        """Keep the server run ``server_id`` up until :meth:`unpin` (or until it ends)."""
        tmp = self.pinned_path.with_name("pinned.tmp")
        tmp.write_text(server_id + "\n", encoding="ascii")
        os.replace(tmp, self.pinned_path)

    def unpin(self) -> None:
        self.pinned_path.unlink(missing_ok=True)

    def pinned(self) -> str | None:
        """The server run that is pinned, if any (it may have ended since)."""
        try:
            return self.pinned_path.read_text(encoding="ascii").strip() or None
        except OSError:
            return None


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


def _flock_holders(path: Path) -> list[str] | None:
    """Kinds ("READ"/"WRITE") of the flocks granted on ``path`` (Linux); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return []
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return None
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    # "1: FLOCK  ADVISORY  READ 4242 fd:01:1234 0 EOF"; waiters have "->" as 2nd field.
    kinds = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == dev:
            kinds.append(fields[3])
    return kinds

