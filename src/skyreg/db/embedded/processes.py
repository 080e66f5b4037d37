"""Which processes are the server: PostgreSQL's lock files and ``/proc`` (or ``ps``).

Deciding wrongly here is what could corrupt a cluster (a second postmaster on the same data),
so the checks lean the safe way: when unsure, a process counts as our live server.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PidFile:
    """What postmaster.pid says: pid, start time (seconds since the epoch), port, and the
    first TCP address listened on ("" for a Unix socket only)."""

    pid: int
    start: str
    port: int | None
    listen: str = ""

    @property
    def server_id(self) -> str:
        """Names one run of one postmaster: pids are reused, (pid, start time) is not."""
        return f"{self.pid}@{self.start}"


def read_lock_pid(path: Path) -> int | None:
    """First line of a PostgreSQL lock file as a pid; None if missing or unreadable."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            first = f.readline().strip()
    except OSError:
        return None
    return int(first) if first.isdigit() and int(first) > 0 else None


def read_pid_file(path: Path) -> PidFile | None:
    """postmaster.pid's pid, start time, port and address lines (1, 3, 4, 6); None if unreadable.

    A postmaster writes the file in steps while it starts, so the later lines may still be
    missing.
    """
    try:
        lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return None
    if not lines or not lines[0].strip().isdigit() or int(lines[0]) <= 0:
        return None
    start = lines[2].strip() if len(lines) > 2 else ""
    port = lines[3].strip() if len(lines) > 3 else ""
    listen = lines[5].strip() if len(lines) > 5 else ""
    return PidFile(int(lines[0]), start, int(port) if port.isdigit() else None, listen)


def pid_exists(pid: int) -> bool:
    """Whether a process (possibly a zombie) has this pid, as ``kill(pid, 0)`` sees it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_our_postgres(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a live (not zombie) postgres process of ``data_dir``.

    When the answer cannot be established for certain, say yes: wrongly believing a server
    dead could lead to deleting its lock file and starting a second postmaster on the same
    data, while wrongly believing it alive only yields a clear error.
    """
    if pid <= 0 or not pid_exists(pid):
        return False
    if sys.platform.startswith("linux"):
        # postgres processes run in their data directory; comparing the directory itself
        # rather than its path also holds across symlinks and bind mounts.
        try:
            target = os.stat(data_dir)
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
    return "Z" not in state and "postgres" in command and str(data_dir) in command


def running_postmaster(data_dir: Path) -> PidFile | None:
    """postmaster.pid of the live postmaster of ``data_dir``; None if none runs."""
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process there
        return None
    found = read_pid_file(data_dir / "postmaster.pid")
    if found is not None and is_our_postgres(found.pid, data_dir):
        return found
    return None


def postgres_processes_in(data_dir: Path) -> list[int]:
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


def reap(proc: subprocess.Popen[bytes]) -> None:
    """Wait for a detached child, so it never lingers as our zombie (which looks alive)."""
    with contextlib.suppress(OSError):
        proc.wait()
