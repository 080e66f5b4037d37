"""Fixtures and helpers for tests of the embedded server (a pytest plugin, see conftest.py).

Homes live in short directories under /tmp because a Unix socket path must fit in ~104 bytes.
Every home is torn down by a fixture that stops its server (and, as a last resort, kills what
is left by pid), so a failing test leaves no postgres behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from skyreg.db.embedded import EmbeddedServer
from skyreg.db.embedded import server as embedded
from skyreg.errors import DatabaseError

LINUX = sys.platform.startswith("linux")

# -- helpers ----------------------------------------------------------------------------------


def query(server: EmbeddedServer, sql: str) -> object:
    """Run one statement through the public URL, as the rest of skyreg would."""
    engine = sa.create_engine(server.url(), poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            result = conn.exec_driver_sql(sql)
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


def server_pids(data_dir: Path) -> list[int]:
    """Live postgres processes working in ``data_dir`` (Linux; elsewhere, none known)."""
    if not LINUX:
        return []
    target = os.path.realpath(data_dir)
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if (
                state != "Z"
                and (entry / "comm").read_text().strip() == "postgres"
                and os.readlink(entry / "cwd") == target
            ):
                pids.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return pids


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        time.sleep(0.02)


def wait_dead(pid: int) -> None:
    """Wait until ``pid`` is gone or a zombie (whose reaping is not ours to do)."""

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if LINUX:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except FileNotFoundError:
                return True
            return stat.rsplit(")", 1)[1].split()[0] == "Z"
        return False

    wait_until(gone)


def teardown_home(home: Path) -> None:
    """Stop whatever runs in ``home``, forget process-wide registrations, check nothing is left."""
    for key in [k for k in embedded._SERVERS if k == home.resolve()]:
        server = embedded._SERVERS.pop(key)
        with contextlib.suppress(DatabaseError):
            server.release()
    server = EmbeddedServer(home)
    if server.data_dir.exists():
        with contextlib.suppress(DatabaseError):
            server.stop()
        leftovers = server_pids(server.data_dir)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"postgres processes left running: {leftovers}"
    if not server.socket_dir.is_relative_to(home):
        shutil.rmtree(server.socket_dir, ignore_errors=True)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def home() -> Iterator[Path]:
    """A home that does not exist yet, in a short directory with awkward characters.

    Quotes and spaces must survive postgresql.conf quoting, the URL and libpq; macOS homes
    contain "Application Support".
    """
    base = Path(tempfile.mkdtemp(prefix="srt-", dir="/tmp"))
    path = base / 'sky "lab"' / "it's home"
    try:
        yield path
    finally:
        teardown_home(path)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def template_cluster() -> Iterator[Path]:
    """A data directory made once (initdb is most of a cold start) for tests to copy."""
    base = Path(tempfile.mkdtemp(prefix="srt-tpl-", dir="/tmp"))
    server = EmbeddedServer(base / "home")
    try:
        server.acquire()
        server.release()
        assert not server.is_running()
        yield server.data_dir
    finally:
        teardown_home(base / "home")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cluster_home(home: Path, template_cluster: Path) -> Path:
    """A home whose cluster already exists (copied from elsewhere) but is not running."""
    home.mkdir(parents=True)
    shutil.copytree(template_cluster, home / "pgdata", symlinks=True)
    return home
