"""The lease and the keeper's decisions, with real flocks and real processes, and no server.

Members of the lease are child Python processes; the "server" the keeper watches is a
``sleep`` process, stopped by killing it. What these tests establish holds for the real
server because :mod:`skyreg.db.embedded.lease` and :func:`~skyreg.db.embedded.keeper.watch`
know nothing about PostgreSQL.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from skyreg.db.embedded.keeper import watch
from skyreg.db.embedded.lease import Lease
from skyreg.errors import DatabaseError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no flock on Windows")

LINUX = sys.platform.startswith("linux")

# A member: join the lease of argv[1], report, then on the "go" file leave with the linger in
# argv[4] (or, with "stay", keep the registration until killed).
MEMBER = """
import sys, time
from pathlib import Path
from skyreg.db.embedded.lease import Lease

lease = Lease(Path(sys.argv[1]))
ready, go, linger = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
with lease.deciding():
    fd = lease.join()
ready.touch()
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
if linger != "stay":
    with lease.deciding():
        lease.leave(fd, float(linger))
    time.sleep(60)
"""

# Holds the lifecycle lock until killed.
DECIDER = """
import sys, time
from pathlib import Path
from skyreg.db.embedded.lease import Lease

with Lease(Path(sys.argv[1])).deciding():
    Path(sys.argv[2]).touch()
    time.sleep(60)
"""


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.01)


@dataclass
class Member:
    proc: subprocess.Popen[bytes]
    go: Path

    def leave(self) -> float:
        """Make the member leave; returns (about) when it did."""
        self.go.touch()
        when = time.time()
        return when

    def kill(self) -> float:
        self.proc.kill()
        self.proc.wait()
        return time.time()


@dataclass
class Processes:
    tmp: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def member(self, home: Path, linger: str = "0") -> Member:
        n = len(self.started)
        ready, go = self.tmp / f"ready{n}", self.tmp / f"go{n}"
        proc = subprocess.Popen([sys.executable, "-c", MEMBER, str(home), str(ready), str(go),
                                 linger])
        self.started.append(proc)
        wait_for(lambda: ready.exists() or proc.poll() is not None)
        assert ready.exists(), f"member exited with {proc.returncode}"
        return Member(proc, go)

    def decider(self, home: Path) -> subprocess.Popen[bytes]:
        ready = self.tmp / f"decider{len(self.started)}"
        proc = subprocess.Popen([sys.executable, "-c", DECIDER, str(home), str(ready)])
        self.started.append(proc)
        wait_for(lambda: ready.exists() or proc.poll() is not None)
        assert ready.exists()
        return proc

    def sleeper(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sleep", "60"])
        self.started.append(proc)
        return proc


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    yield processes
    for proc in processes.started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.fixture
def lease(tmp_path: Path) -> Lease:
    home = tmp_path / "home"
    home.mkdir()
    made = Lease(home)
    with made.deciding():  # as any start of a server does before a keeper can exist
        pass
    return made


class FakeServer:
    """A process standing in for the postmaster: ``server_id`` while alive, killed by stop."""

    def __init__(self, proc: subprocess.Popen[bytes], lease: Lease) -> None:
        self.proc, self.lease = proc, lease
        self.stopped_at: float | None = None
        self.stopped_while_deciding: bool | None = None

    def server_id(self) -> str | None:
        return f"{self.proc.pid}@fake" if self.proc.poll() is None else None

    def stop(self) -> None:
        with self.lease.deciding_if_free() as free:
            self.stopped_while_deciding = not free
        self.stopped_at = time.time()
        self.proc.kill()
        self.proc.wait()


@dataclass
class Watch:
    thread: threading.Thread
    result: list[str]
    released: list[bool]

    def join(self, timeout: float) -> str:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the keeper did not stop watching"
        return self.result[0]


def start_watch(lease: Lease, server: FakeServer, linger: float, poll: float = 0.05) -> Watch:
    result: list[str] = []
    released: list[bool] = []

    def run() -> None:
        result.append(watch(lease, linger, server_id=server.server_id, stop=server.stop,
                            poll=poll, done=lambda: released.append(True)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return Watch(thread, result, released)


# -- the lease ----------------------------------------------------------------------------------


def test_members_are_counted_and_dropped_by_the_kernel(lease: Lease, procs: Processes) -> None:
    first, second = procs.member(lease.directory, "7.5"), procs.member(lease.directory, "stay")
    with lease.deciding():
        assert not lease.unused()
    if LINUX:
        assert lease.count() == 2

    before = time.time()
    first.leave()
    wait_for(lambda: lease.last_departure() is not None)
    departure = lease.last_departure()
    assert departure is not None and departure.linger == 7.5 and departure.when >= before - 1
    if LINUX:
        wait_for(lambda: lease.count() == 1)
    with lease.deciding():
        assert not lease.unused()

    # A member that dies without leaving loses its registration all the same.
    second.kill()
    with lease.deciding():
        assert lease.unused()
    if LINUX:
        assert lease.count() == 0


def test_join_and_leave_in_this_process(lease: Lease) -> None:
    with lease.deciding():
        fd = lease.join()
        assert not lease.unused()
        assert lease.leave(fd, 3.0) is True
        assert lease.unused()
    departure = lease.last_departure()
    assert departure is not None and departure.linger == 3.0


def test_decisions_are_exclusive_across_processes(lease: Lease, procs: Processes) -> None:
    decider = procs.decider(lease.directory)
    with lease.deciding_if_free() as free:
        assert not free
    expected = re.escape(f"starting or stopping the server in {lease.directory}")
    with pytest.raises(DatabaseError, match=expected), lease.deciding(timeout=0.2):
        pass
    decider.kill()
    decider.wait()
    with lease.deciding(timeout=5), lease.deciding_if_free() as free:
        assert not free, "a second decision within this process must not be granted either"


def test_keeper_leaves_a_deleted_home_without_recreating_it(tmp_path: Path,
                                                           procs: Processes) -> None:
    gone = Lease(tmp_path / "deleted")
    server = FakeServer(procs.sleeper(), gone)
    assert start_watch(gone, server, linger=0.1).join(timeout=10) == "the home is gone"
    assert not (tmp_path / "deleted").exists()
    assert server.stopped_at is None


def test_keeper_lock_is_handed_over_to_a_child(lease: Lease, procs: Processes) -> None:
    with lease.deciding():
        assert not lease.keeper_alive()
        fd = lease.claim_keeper()
        assert fd is not None
        child = subprocess.Popen(["sleep", "60"], pass_fds=(fd,))
        procs.started.append(child)
        lease.record_keeper_pid(fd, child.pid)
        os.close(fd)
        # Our descriptor is closed: the lock now lives in the child alone.
        assert lease.keeper_alive()
        assert lease.claim_keeper() is None
    assert lease.keeper_pid() == child.pid
    child.kill()
    child.wait()
    with lease.deciding():
        assert not lease.keeper_alive()
        again = lease.claim_keeper()
        assert again is not None
        os.close(again)
    assert lease.keeper_pid() is None


def test_pin(lease: Lease) -> None:
    assert lease.pinned() is None
    lease.pin("123@456")
    assert lease.pinned() == "123@456"
    lease.unpin()
    lease.unpin()
    assert lease.pinned() is None


# -- the keeper's decisions ---------------------------------------------------------------------


def test_keeper_stops_the_server_a_linger_after_the_last_user_left(
        lease: Lease, procs: Processes) -> None:
    server = FakeServer(procs.sleeper(), lease)
    member = procs.member(lease.directory, "0.8")
    watching = start_watch(lease, server, linger=30.0)
    time.sleep(0.3)
    assert server.proc.poll() is None, "the server must stay up while a user is there"
    left = member.leave()
    watching.join(timeout=10)
    assert server.stopped_at is not None
    # The member's own linger (0.8 s) counts, not the keeper's default (30 s).
    assert 0.7 <= server.stopped_at - left < 0.8 + 1.0, server.stopped_at - left
    assert server.stopped_while_deciding is True
    assert watching.released == [True]


def test_keeper_stops_the_server_after_its_last_user_was_killed(
        lease: Lease, procs: Processes) -> None:
    server = FakeServer(procs.sleeper(), lease)
    member = procs.member(lease.directory, "stay")
    watching = start_watch(lease, server, linger=0.6)
    time.sleep(0.2)
    killed = member.kill()
    assert watching.join(timeout=10).startswith("stopped")
    assert server.stopped_at is not None
    assert 0.5 <= server.stopped_at - killed < 0.6 + 1.0, server.stopped_at - killed


def test_keeper_never_stops_while_a_user_is_there(lease: Lease, procs: Processes) -> None:
    server = FakeServer(procs.sleeper(), lease)
    member = procs.member(lease.directory, "0")
    watching = start_watch(lease, server, linger=0.1)
    time.sleep(1.0)
    assert server.proc.poll() is None
    member.leave()
    watching.join(timeout=10)
    assert server.stopped_at is not None


def test_a_short_visit_restarts_the_linger(lease: Lease, procs: Processes) -> None:
    # A visitor that comes and goes between two looks of the keeper is seen by its departure.
    server = FakeServer(procs.sleeper(), lease)
    watching = start_watch(lease, server, linger=1.0, poll=0.4)
    time.sleep(0.7)
    with lease.deciding():
        fd = lease.join()
        time.sleep(0.05)
        lease.leave(fd, 1.0)
    visited = time.time()
    assert watching.join(timeout=10).startswith("stopped")
    assert server.stopped_at is not None
    assert server.stopped_at - visited >= 0.95, server.stopped_at - visited


def test_keeper_never_stops_a_pinned_server(lease: Lease, procs: Processes) -> None:
    server = FakeServer(procs.sleeper(), lease)
    server_id = server.server_id()
    assert server_id is not None
    lease.pin(server_id)
    watching = start_watch(lease, server, linger=0.1)
    time.sleep(1.0)
    assert server.proc.poll() is None
    # A pin names one run of the server: a pin of another run does not hold this one.
    lease.pin("1@another-run")
    assert watching.join(timeout=10).startswith("stopped")
    assert server.stopped_at is not None


def test_keeper_leaves_when_the_server_is_gone(lease: Lease, procs: Processes) -> None:
    server = FakeServer(procs.sleeper(), lease)
    member = procs.member(lease.directory, "stay")
    watching = start_watch(lease, server, linger=0.1)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    assert watching.join(timeout=10) == "the server is gone"
    assert server.stopped_at is None
    assert watching.released == [True]
    member.kill()
