"""``skyreg server start/stop/status`` and lingering servers, with real skyreg processes.

Each command runs as its own process (``python -m skyreg``), as in a shell, so that a server
must really outlive the process that started it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from embedded_fixtures import server_pids, wait_until
from skyreg.db.embedded import EmbeddedServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no embedded server on Windows")

LINUX = sys.platform.startswith("linux")


def skyreg(home: Path, *args: str, linger: float = 0.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKYREG_SERVER_LINGER": str(linger)}
    env.pop("SKYREG_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "skyreg", "--home", str(home), *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def keeper_gone(server: EmbeddedServer) -> bool:
    return server._lease.keeper_pid() is None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_stop_without_a_server_says_so(home: Path, cluster_home: Path) -> None:
    for where in (home.parent / "never-made", cluster_home):
        result = skyreg(where, "server", "stop")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"no embedded server was running in {where}"
    assert not (home.parent / "never-made").exists()


def test_started_server_stays_up_until_stopped(cluster_home: Path) -> None:
    started = skyreg(cluster_home, "server", "start")
    assert started.returncode == 0, started.stderr
    server = EmbeddedServer(cluster_home)
    status = server.status()
    pid = status["pid"]
    assert isinstance(pid, int)
    assert f"is running (pid {pid}) and stays up until `skyreg server stop`" in started.stdout
    assert status["pinned"] is True and status["tcp_url"] is None
    libpq = next(line.split()[1] for line in started.stdout.splitlines()
                 if line.strip().startswith("connect:"))

    # Nobody uses it, its linger time (0) is long past, yet it serves other tools.
    time.sleep(1.0)
    with psycopg.connect(libpq) as connection:
        assert connection.execute("SELECT current_database()").fetchone() == ("skyreg",)
    # A skyreg command coming and going does not end the pin either.
    assert skyreg(cluster_home, "sql", "--print-url").stdout.strip() == libpq
    time.sleep(0.5)
    assert server.status()["pid"] == pid
    # Starting it again changes nothing.
    assert skyreg(cluster_home, "server", "start").returncode == 0
    assert server.status()["pid"] == pid

    stopped = skyreg(cluster_home, "server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"stopped the embedded server (pid {pid}) in {cluster_home}"
    assert not server.is_running()
    wait_until(lambda: keeper_gone(server), timeout=10)
    assert server.status()["pinned"] is False


def test_tcp_port_needs_the_password(cluster_home: Path) -> None:
    port = free_port()
    started = skyreg(cluster_home, "server", "start", "--port", str(port))
    assert started.returncode == 0, started.stderr
    server = EmbeddedServer(cluster_home)
    tcp = f"postgresql://postgres@127.0.0.1:{port}/skyreg"
    assert server.tcp_url() == tcp
    assert f"TCP:        {tcp}" in started.stdout
    assert (server.password_file.stat().st_mode & 0o777) == 0o600
    with psycopg.connect(tcp, passfile=str(server.password_file)) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(tcp, password="wrong").close()
    # The socket still works, and skyreg's own URL follows the port.
    assert f"port={port}" in server.url()
    with psycopg.connect(skyreg(cluster_home, "sql", "--print-url").stdout.strip()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    other = skyreg(cluster_home, "server", "start", "--port", str(port + 1))
    assert other.returncode == 1
    assert f"already running on port {port}" in other.stderr and "Traceback" not in other.stderr
    assert skyreg(cluster_home, "server", "stop").returncode == 0

    # The next automatic start is on the socket only again.
    assert skyreg(cluster_home, "sql", "--print-url").stdout.strip().endswith("port=5432")
    assert not server.is_running()


def test_lingering_server_serves_the_next_command_then_stops(cluster_home: Path) -> None:
    first = skyreg(cluster_home, "sql", "--print-url", linger=5.0)
    assert first.returncode == 0, first.stderr
    server = EmbeddedServer(cluster_home)
    pid = server.status()["pid"]
    assert isinstance(pid, int), "the server must linger after its last user left"
    if LINUX:
        assert server.users() == 0
    # The next user finds it running; when it leaves, its own linger time (1 s) counts.
    second = EmbeddedServer(cluster_home, linger=1.0)
    second.acquire()
    assert second.status()["pid"] == pid, "the next user must reuse the lingering server"
    second.release()
    left = time.monotonic()
    wait_until(lambda: not server.is_running(), timeout=15)
    waited = time.monotonic() - left
    assert 0.8 <= waited < 1.0 + 4.0, waited
    wait_until(lambda: keeper_gone(server), timeout=10)
    assert server_pids(server.data_dir) == []
