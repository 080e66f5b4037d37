"""Life cycle of the embedded PostgreSQL server, against real servers (no mocks).

The homes come from embedded_fixtures.py; one test uses a deliberately long home to exercise
the fallback socket directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from embedded_fixtures import query, server_pids, teardown_home, wait_dead, wait_until
from skyreg.db.embedded import EmbeddedServer, acquire_embedded
from skyreg.db.embedded import server as embedded
from skyreg.db.embedded.cluster import memory_settings
from skyreg.db.machine_memory import usable_memory
from skyreg.errors import DatabaseError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no embedded server on Windows")

LINUX = sys.platform.startswith("linux")

Child = tuple[subprocess.Popen[bytes], Path, Path]  # process, its "ready" file, its "go" file
Spawn = Callable[[Path], Child]

# Child processes load the module under test without skyreg/__init__.py, whose imports
# (astropy, ...) would cost more than everything else a child does.
PREAMBLE = """
import importlib.util, sys, types
from pathlib import Path

package = types.ModuleType("skyreg")
package.__path__ = list(importlib.util.find_spec("skyreg").submodule_search_locations)
sys.modules["skyreg"] = package

import psycopg
"""

# A second skyreg process: acquire the server for argv[1], prove it works, report the URL in
# argv[2], then wait for argv[3] to appear (or be killed) and exit normally, which releases.
CHILD = (
    PREAMBLE
    + """
import time
from skyreg.db.embedded import EmbeddedServer, acquire_embedded

home, ready, go = (Path(a) for a in sys.argv[1:4])
url = acquire_embedded(home)
server = EmbeddedServer(home)
with psycopg.connect(host=str(server.socket_dir), port=5432, user="postgres",
                     dbname="skyreg") as conn:
    conn.execute("SELECT 1").fetchone()
tmp = ready.with_suffix(".tmp")
tmp.write_text(f"{url}\\n{server.status()['pid']}")
tmp.rename(ready)
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
"""
)

# Users coming and going at random moments: each round acquires, queries and releases, so
# starts and stops of the server race with other processes' arrivals.
CHURN = (
    PREAMBLE
    + """
import random
from skyreg.db.embedded import EmbeddedServer

home = Path(sys.argv[1])
for _ in range(int(sys.argv[2])):
    server = EmbeddedServer(home)
    server.acquire()
    with psycopg.connect(host=str(server.socket_dir), port=5432, user="postgres",
                         dbname="skyreg") as conn:
        conn.execute("SELECT pg_sleep(%s)", (random.random() / 20,))
    server.release()
"""
)

@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start CHILD processes; any still alive at teardown is killed."""
    children: list[subprocess.Popen[bytes]] = []

    def start(home: Path) -> Child:
        n = len(children)
        ready, go = tmp_path / f"ready{n}", tmp_path / f"go{n}"
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(home), str(ready), str(go)])
        children.append(proc)
        return proc, ready, go

    yield start
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def wait_ready_file(proc: subprocess.Popen[bytes], ready: Path) -> tuple[str, int]:
    """The URL and server pid a child reports once it uses the server."""
    wait_until(lambda: ready.exists() or proc.poll() is not None, timeout=30)
    assert ready.exists(), f"child exited with {proc.returncode} before acquiring the server"
    url, pid = ready.read_text().splitlines()
    return url, int(pid)


# -- tests ------------------------------------------------------------------------------------


def test_first_use_creates_cluster_and_serves_queries(home: Path) -> None:
    server = EmbeddedServer(home)
    assert not home.exists()
    start = time.perf_counter()
    url = server.acquire()
    version = query(server, "SELECT version()")
    elapsed = time.perf_counter() - start
    print(f"cold start incl. initdb and first query: {elapsed:.2f} s")

    assert isinstance(version, str) and version.startswith("PostgreSQL 18")
    assert url == server.url()
    assert sa.make_url(url).query["host"] == str(home / "run")
    assert server.socket_dir == home / "run"
    assert (server.socket_dir.stat().st_mode & 0o777) == 0o700
    assert (server.data_dir / "PG_VERSION").read_text().strip() == "18"
    assert not list(home.glob(".pgdata-init-*"))
    assert query(server, "SELECT current_database()") == "skyreg"
    assert query(server, "SHOW listen_addresses") == ""
    assert query(server, "SHOW fsync") == "on"
    sized = memory_settings(usable_memory())
    for name, value in sized.items():  # SHOW prints 2048MB as 2GB: compare bytes
        assert query(server, f"SELECT pg_size_bytes(current_setting('{name}')) - "
                             f"pg_size_bytes('{value}')") == 0, name
    assert query(server, "SHOW server_encoding") == "UTF8"
    assert query(server, "SELECT datcollate FROM pg_database WHERE datname = 'skyreg'") == "C"
    log = (server.data_dir / "log" / "postgresql.log").read_text()
    assert "ready to accept connections" in log

    server.release()
    assert not server.is_running()
    assert not server_pids(server.data_dir)


def test_acquire_is_idempotent_within_a_process(cluster_home: Path) -> None:
    server = EmbeddedServer(cluster_home)
    url = server.acquire()
    pid = server.status()["pid"]
    assert server.acquire() == url
    assert server.status()["pid"] == pid
    if LINUX:
        assert server.status()["users"] == 1

    # The process-wide entry point reuses one server object per home, however it is spelled:
    # two calls make one more user, not two.
    assert acquire_embedded(cluster_home) == url
    assert acquire_embedded(cluster_home / ".." / cluster_home.name) == url
    if LINUX:
        assert server.status()["users"] == 2
    embedded._SERVERS.pop(cluster_home.resolve()).release()

    server.release()
    server.release()
    assert not server.is_running()


def test_release_by_last_user_stops_server(cluster_home: Path) -> None:
    first, second = EmbeddedServer(cluster_home), EmbeddedServer(cluster_home)
    first.acquire()
    pid = first.status()["pid"]
    assert isinstance(pid, int)
    second.acquire()
    assert second.status()["pid"] == pid, "the second user must join, not start another"

    first.release()
    assert second.is_running()
    assert query(second, "SELECT 42") == 42

    second.release()
    assert not second.is_running()
    wait_dead(pid)
    assert not (cluster_home / "pgdata" / "postmaster.pid").exists()


def test_two_processes_share_one_server(cluster_home: Path, spawn: Spawn) -> None:
    # The child starts the server, we join, the child exits: the server must stay up for us.
    child, ready, go = spawn(cluster_home)
    child_url, pid = wait_ready_file(child, ready)
    server = EmbeddedServer(cluster_home)
    assert server.is_running()
    assert server.status()["pid"] == pid

    assert server.acquire() == child_url
    assert server.status()["pid"] == pid
    go.touch()
    assert child.wait(timeout=30) == 0
    assert server.is_running()
    assert query(server, "SELECT 1") == 1
    if LINUX:
        assert server.status()["users"] == 1

    server.release()
    assert not server.is_running()


def test_killed_user_process_does_not_keep_server_alive(cluster_home: Path, spawn: Spawn) -> None:
    child, ready, _ = spawn(cluster_home)
    _, pid = wait_ready_file(child, ready)
    server = EmbeddedServer(cluster_home)
    assert isinstance(server.status()["keeper"], int)
    child.kill()
    child.wait()

    # Nobody released, but its lock vanished with the child: the keeper notices and stops
    # the server after the linger time (0 here), then leaves.
    wait_until(lambda: not server.is_running(), timeout=10)
    wait_dead(pid)
    wait_until(lambda: server.status()["keeper"] is None, timeout=10)
    assert server_pids(server.data_dir) == []


def test_a_lingering_server_is_reused_then_stopped(cluster_home: Path) -> None:
    first = EmbeddedServer(cluster_home, linger=1.5)
    first.acquire()
    pid = first.status()["pid"]
    first.release()
    assert first.is_running(), "the server must linger after its last user left"
    second = EmbeddedServer(cluster_home, linger=1.5)
    second.acquire()
    assert second.status()["pid"] == pid
    second.release()
    left = time.monotonic()
    wait_until(lambda: not second.is_running(), timeout=15)
    assert time.monotonic() - left >= 1.2
    wait_dead(pid)


def test_deleting_the_home_of_a_lingering_server_stops_it(cluster_home: Path) -> None:
    server = EmbeddedServer(cluster_home, linger=60)
    server.acquire()
    pid = server.status()["pid"]
    assert isinstance(pid, int)
    server.release()
    assert server.is_running()
    shutil.rmtree(cluster_home)
    # The keeper notices within a poll (1 s); the margin is for a machine under heavy load.
    wait_dead(pid, timeout=60)


def test_a_killed_keeper_is_replaced(cluster_home: Path) -> None:
    server = EmbeddedServer(cluster_home, linger=30)
    server.acquire()
    keeper = server.status()["keeper"]
    assert isinstance(keeper, int)
    os.kill(keeper, signal.SIGKILL)
    wait_until(lambda: server.status()["keeper"] is None)
    # Leaving starts a new keeper to stop the server later, rather than leaving it unwatched.
    server.release()
    assert server.is_running()
    replacement = server.status()["keeper"]
    assert isinstance(replacement, int) and replacement != keeper
    assert server.stop() is not None
    wait_until(lambda: server.status()["keeper"] is None, timeout=10)


def test_killed_postmaster_recovers_committed_data(cluster_home: Path) -> None:
    server = EmbeddedServer(cluster_home)
    server.acquire()
    query(server, "CREATE TABLE survived (x int)")
    query(server, "INSERT INTO survived VALUES (1), (2), (3)")
    pid = server.status()["pid"]
    assert isinstance(pid, int)

    os.kill(pid, signal.SIGKILL)
    wait_dead(pid)
    assert not server.is_running()
    assert (server.data_dir / "postmaster.pid").exists()

    # Still registered: acquiring again notices the server is gone and restarts it.
    server.acquire()
    assert server.status()["pid"] != pid
    assert query(server, "SELECT sum(x) FROM survived") == 6
    log = (server.data_dir / "log" / "postgresql.log").read_text()
    assert "not properly shut down" in log or "interrupted" in log
    server.release()

    # And once more through a fresh object, after killing it again.
    server.acquire()
    pid = server.status()["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    wait_dead(pid)
    server.release()
    other = EmbeddedServer(cluster_home)
    other.acquire()
    assert query(other, "SELECT count(*) FROM survived") == 3
    other.release()
    assert not other.is_running()


@pytest.mark.skipif(not LINUX, reason="orphans are found through /proc")
def test_orphaned_backend_is_ended_before_restart(cluster_home: Path) -> None:
    # A busy backend does not notice its postmaster was killed; while it lives, it still uses
    # the old shared memory, and a new postmaster must not start next to it.
    server = EmbeddedServer(cluster_home)
    server.acquire()
    conn = psycopg.connect(host=str(server.socket_dir), port=5432, user="postgres", dbname="skyreg")
    backend = conn.info.backend_pid

    def spin() -> None:
        with contextlib.suppress(psycopg.Error):
            conn.execute("DO $$BEGIN LOOP PERFORM 1; END LOOP; END$$")

    busy = threading.Thread(target=spin, daemon=True)
    busy.start()
    try:
        postmaster = server.status()["pid"]
        assert isinstance(postmaster, int)
        time.sleep(0.2)
        os.kill(postmaster, signal.SIGKILL)
        wait_dead(postmaster)
        assert backend in server_pids(server.data_dir), "the busy backend should outlive it"

        server.acquire()
        assert backend not in server_pids(server.data_dir)
        assert query(server, "SELECT 1") == 1
        server.release()
        assert not server.is_running()
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.cancel_safe(timeout=2)  # only matters if the test failed early
        busy.join(timeout=10)
        conn.close()


def test_stale_pid_files_do_not_block_start(cluster_home: Path) -> None:
    server = EmbeddedServer(cluster_home)
    server.socket_dir.mkdir(mode=0o700, exist_ok=True)
    for kind in ("dead", "zombie", "reused", "garbage"):
        other: subprocess.Popen[bytes] | None = None
        if kind == "dead":
            other = subprocess.Popen(["true"])
            other.wait()
            content = f"{other.pid}\n{server.data_dir}\n1700000000\n5432\n/nonexistent\n\n"
        elif kind == "zombie":
            # Not reaped until the end: kill(pid, 0) succeeds, as for an unreaped postmaster.
            other = subprocess.Popen(["true"])
            wait_dead(other.pid)
            content = f"{other.pid}\n{server.data_dir}\n"
        elif kind == "reused":
            other = subprocess.Popen(["sleep", "60"])
            content = f"{other.pid}\n{server.data_dir}\n"
        else:
            content = "\n"
        (server.data_dir / "postmaster.pid").write_text(content)
        (server.socket_dir / ".s.PGSQL.5432.lock").write_text(content)
        try:
            server.acquire()
            assert query(server, "SELECT 1") == 1, kind
            assert server.status()["pid"] != (other.pid if other else None), kind
            server.release()
            assert not server.is_running(), kind
        finally:
            if other is not None:
                other.kill()
                other.wait()


def test_status(cluster_home: Path) -> None:
    server = EmbeddedServer(cluster_home)
    status = server.status()
    assert status["running"] is False
    assert status["pid"] is None
    assert status["data_dir"] == str(cluster_home / "pgdata")
    assert status["socket_dir"] == str(cluster_home / "run")
    assert status["url"] == server.url()
    assert str(status["version"]).startswith("18.")

    server.acquire()
    status = server.status()
    assert status["running"] is True
    pid_line = (server.data_dir / "postmaster.pid").read_text().splitlines()[0]
    assert status["pid"] == int(pid_line)
    assert str(status["version"]).startswith("18.")
    assert status["users"] == (1 if LINUX else None)
    server.release()
    assert server.status()["running"] is False


def test_stop_ends_server_for_all_users(cluster_home: Path) -> None:
    user, admin = EmbeddedServer(cluster_home), EmbeddedServer(cluster_home)
    user.acquire()
    admin.stop()
    assert not user.is_running()
    # The remaining user gets it back by acquiring again, and leaving stops it.
    user.acquire()
    assert query(user, "SELECT 1") == 1
    user.release()
    assert not user.is_running()


def test_start_failure_reports_log_tail(cluster_home: Path) -> None:
    server = EmbeddedServer(cluster_home)
    (server.data_dir / "postgresql.auto.conf").write_text("shared_buffers = 'lots'\n")
    with pytest.raises(DatabaseError, match="last lines of") as info:
        server.acquire()
    assert "shared_buffers" in str(info.value)
    assert not server.is_running()
    # The failed attempt left no registration behind: fixing the setting is enough.
    (server.data_dir / "postgresql.auto.conf").write_text("")
    server.acquire()
    server.release()
    assert not server.is_running()


def test_long_home_uses_short_socket_dir(home: Path, template_cluster: Path) -> None:
    long_home = home / ("a" * 60) / ("b" * 60)
    long_home.mkdir(parents=True)
    shutil.copytree(template_cluster, long_home / "pgdata", symlinks=True)
    server = EmbeddedServer(long_home)
    assert len(str(long_home / "run" / ".s.PGSQL.5432")) > 107
    assert server.socket_dir.parent == Path(tempfile.gettempdir())
    assert server.socket_dir.name.startswith("skyreg-")
    assert len(server.socket_dir.name) == len("skyreg-") + 12
    assert EmbeddedServer(long_home).socket_dir == server.socket_dir
    try:
        server.acquire()
        assert (server.socket_dir.stat().st_mode & 0o777) == 0o700
        assert query(server, "SELECT 1") == 1
        server.release()
        assert not server.is_running()
    finally:
        teardown_home(long_home)


def test_concurrent_first_use_makes_one_cluster(home: Path, spawn: Spawn) -> None:
    # A crashed earlier initdb left a half-made cluster next to where the real one goes.
    (home / ".pgdata-init-12345" / "base").mkdir(parents=True)
    children = [spawn(home) for _ in range(3)]
    reports = {wait_ready_file(proc, ready) for proc, ready, _ in children}
    server = EmbeddedServer(home)
    assert len(reports) == 1, f"expected one server for all, got {reports}"
    assert next(iter(reports)) == (server.url(), server.status()["pid"])
    for proc, _, go in children:
        go.touch()
        assert proc.wait(timeout=30) == 0
    assert not list(home.glob(".pgdata-init-*"))
    # The last child to leave stopped the server.
    assert not server.is_running()
    assert server_pids(server.data_dir) == []


def test_users_coming_and_going_concurrently(cluster_home: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", CHURN, str(cluster_home), "6"]) for _ in range(3)
    ]
    try:
        codes = [proc.wait(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert codes == [0, 0, 0]
    server = EmbeddedServer(cluster_home)
    assert not server.is_running()
    assert server_pids(server.data_dir) == []


@pytest.mark.skipif(not LINUX or os.geteuid() != 0, reason="concerns root on Linux only")
def test_root_explains_unreachable_home(home: Path) -> None:
    # Root's server runs in a user namespace, without root's power to ignore permissions.
    locked = home.parent / "locked"
    locked.mkdir(parents=True)
    os.chown(locked, 65534, 65534)
    locked.chmod(0o700)
    with pytest.raises(DatabaseError, match="permission overrides"):
        EmbeddedServer(locked / "home").acquire()
    assert not (locked / "home" / "pgdata").exists()


def test_linger_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SKYREG_SERVER_LINGER")
    assert EmbeddedServer(tmp_path).linger == embedded.DEFAULT_LINGER == 30.0
    monkeypatch.setenv("SKYREG_SERVER_LINGER", "2.5")
    assert EmbeddedServer(tmp_path).linger == 2.5
    assert EmbeddedServer(tmp_path, linger=0).linger == 0.0
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv("SKYREG_SERVER_LINGER", bad)
        with pytest.raises(DatabaseError, match="SKYREG_SERVER_LINGER must be a number"):
            EmbeddedServer(tmp_path)
