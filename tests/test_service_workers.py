"""``skyreg serve --workers 2`` as real processes on the embedded server of a fresh home:
both workers answer, and stopping the service (or killing its supervisor) leaves no worker
and no PostgreSQL behind."""

from __future__ import annotations

import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from embedded_fixtures import server_pids, wait_dead, wait_until
from service_fixtures import LiveService, live_service
from skyreg.db.embedded import EmbeddedServer

pytestmark = pytest.mark.slow  # two worker interpreters start for each test

_STARTED = re.compile(r"Started server process \[(\d+)\]")
_ACCESS = re.compile(r"skyreg\.service\.access\[(\d+)\]: \S+ \"GET /api/v1/counts\" 200 ")


def _answering_workers(live: LiveService, wanted: int = 2, rounds: int = 40) -> set[int]:
    """Pids of the workers that logged answers, sending concurrent batches of requests on
    fresh connections until ``wanted`` workers did (the kernel decides who accepts)."""
    seen: set[int] = set()
    with ThreadPoolExecutor(8) as pool:
        for _ in range(rounds):
            statuses = list(pool.map(lambda _: httpx.get(f"{live.base}/api/v1/counts",
                                                         timeout=30).status_code, range(16)))
            assert statuses == [200] * 16
            seen = {int(pid) for pid in _ACCESS.findall(live.log_text())}
            if len(seen) >= wanted:
                break
    return seen


def _children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return set()
    return {int(word) for word in text.split()}


def test_two_workers_answer_and_stop_cleanly(cluster_home: Path, tmp_path: Path) -> None:
    server = EmbeddedServer(cluster_home)
    with live_service("", tmp_path, "--workers", "2", home=cluster_home) as live:
        workers = _answering_workers(live)
        assert len(workers) == 2, live.log_text()
        assert workers <= _children(live.process.pid)
        assert live.process.pid not in workers
        assert server.is_running()
        # Each worker registered as a user of the embedded server, besides the supervisor.
        assert (server.users() or 0) >= 3
    assert live.process.returncode == 0, live.log_text()
    for pid in workers:
        wait_dead(pid)
    wait_until(lambda: not server.is_running())  # the last user left (linger 0 in tests)
    assert server_pids(server.data_dir) == []


def test_workers_leave_when_the_supervisor_is_killed(cluster_home: Path,
                                                     tmp_path: Path) -> None:
    server = EmbeddedServer(cluster_home)
    with live_service("", tmp_path, "--workers", "2", home=cluster_home) as live:
        wait_until(lambda: live.log_text().count("Application startup complete") == 2, 60)
        workers = {int(pid) for pid in _STARTED.findall(live.log_text())}
        assert len(workers) == 2 and workers <= _children(live.process.pid)
        os.kill(live.process.pid, signal.SIGKILL)
        live.process.wait()
        for pid in workers:
            wait_dead(pid)
    wait_until(lambda: not server.is_running())
    assert server_pids(server.data_dir) == []
