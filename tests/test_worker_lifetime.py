"""Pool workers of an ingest exit when the ingest process is killed.

The ingest runs as a real ``skyreg`` process; once it has pool workers (its child processes)
the test kills it with SIGKILL and expects every one of those workers to be gone a few seconds
later, instead of lingering for good with their memory and the inherited database socket.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fits_builder import write_mef
from skyreg.synthetic.survey import SurveySpec, generate_survey

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

#: Seconds a worker may take to notice that its parent is gone.
GRACE = 5.0


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _kill_once_it_has_workers(command: list[str], workers: int, env: dict[str, str]) -> set[int]:
    """Start ``command``, SIGKILL it once it has ``workers`` children; return their pids."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=env)
    try:
        deadline = time.monotonic() + 120
        children: set[int] = set()
        while len(children) < workers:
            if process.poll() is not None or time.monotonic() > deadline:
                _, err = process.communicate()
                pytest.fail(f"the ingest never started {workers} workers: {err.decode()}")
            children = _children(process.pid)
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return children


def _assert_all_exit(workers: set[int]) -> None:
    deadline = time.monotonic() + GRACE
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = sorted(pid for pid in workers if _alive(pid))
    for pid in left:  # do not leave them behind when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed parent by {GRACE} s"


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "SKYREG_HOME": str(tmp_path / "home")}


def test_manifest_pool_workers_die_with_the_ingest(database_url: str, tmp_path: Path) -> None:
    # Enough CCDs for the pixel coverage to run on a process pool.
    root = tmp_path / "survey"
    generate_survey(root, SurveySpec(n_visits=340))
    skyreg = [sys.executable, "-m", "skyreg", "--db", database_url]
    subprocess.run([*skyreg, "db", "upgrade"], check=True, capture_output=True,
                   env=_env(tmp_path))
    workers = _kill_once_it_has_workers(
        [*skyreg, "ingest", "manifest", "--no-progress", str(root)], 2, _env(tmp_path))
    _assert_all_exit(workers)


def test_fits_pool_workers_die_with_the_ingest(database_url: str, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for visit in range(48):
        write_mef(raw / f"v{visit}.fits", visit=1000001 + visit, detectors=range(1, 9),
                  boresight=(150.0 + visit * 0.3, 2.0))
    skyreg = [sys.executable, "-m", "skyreg", "--db", database_url]
    workers = _kill_once_it_has_workers(
        [*skyreg, "ingest", "fits", "--jobs", "2", "--no-progress", "-r", str(raw)], 2,
        _env(tmp_path))
    _assert_all_exit(workers)
