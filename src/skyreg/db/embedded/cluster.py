"""The cluster on disk: created once by ``initdb``, configured by skyreg at every start."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

from skyreg.db.embedded.binaries import major, pg_bin, server_env, server_version
from skyreg.db.embedded.paths import DEFAULT_PORT, SUPERUSER, Layout
from skyreg.db.machine_memory import usable_memory
from skyreg.errors import DatabaseError

log = logging.getLogger(__name__)

_INIT_PREFIX = ".pgdata-init-"


def ensure_cluster(layout: Layout, prefix: list[str]) -> None:
    """Create the cluster if needed, atomically: initdb elsewhere, then rename into place.

    Must be called with the lifecycle lock held (see :mod:`.lease`).
    """
    data_dir, home = layout.data_dir, layout.home
    version_file = data_dir / "PG_VERSION"
    if version_file.is_file():
        data_major = version_file.read_text().strip()
        server_major = str(major(server_version()))
        if data_major != server_major:
            raise DatabaseError(
                f"{data_dir} holds a PostgreSQL {data_major} cluster but the bundled "
                f"server is PostgreSQL {server_major}; dump it with PostgreSQL {data_major} "
                f"tools and reload it, or move the directory away to start afresh"
            )
        return
    with contextlib.suppress(OSError):
        data_dir.rmdir()  # an empty directory is as good as none
    if data_dir.exists():
        raise DatabaseError(
            f"{data_dir} exists but is not a PostgreSQL data directory; move it away or delete it"
        )
    # Left over by an initdb that crashed: we hold the lifecycle lock, so nobody is using it.
    for leftover in home.glob(_INIT_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)
    staging = home / f"{_INIT_PREFIX}{os.getpid()}"
    log.info("creating the skyreg PostgreSQL cluster in %s", data_dir)
    cmd = [
        *prefix,
        str(pg_bin("initdb")),
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
            env=server_env(),
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DatabaseError(f"initdb could not run: {exc}") from exc
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        output = result.stdout.decode(errors="replace").strip().splitlines()
        raise DatabaseError(f"initdb failed (exit {result.returncode}): " + " | ".join(output[-5:]))
    with open(staging / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(
            "\n# skyreg writes its settings to skyreg.conf each time it starts the server.\n"
            "# Use ALTER SYSTEM (postgresql.auto.conf, read last) to override them.\n"
            "include = 'skyreg.conf'\n"
        )
        conf.flush()
        os.fsync(conf.fileno())
    os.rename(staging, data_dir)
    fsync_dir(home)


def write_settings(layout: Layout, tcp_port: int | None) -> None:
    """(Re)write skyreg.conf and skyreg_hba.conf for this start.

    Rewritten at every start so that the socket path follows the home if it was moved, and
    so that a TCP port opened by ``skyreg server start --port`` lasts one server run only.
    """
    data_dir = layout.data_dir
    sockets = '"' + str(layout.socket_dir).replace('"', '""') + '"'
    text = _SETTINGS.format(
        listen=conf_string("127.0.0.1" if tcp_port is not None else ""),
        port=tcp_port if tcp_port is not None else DEFAULT_PORT,
        socket_dirs=conf_string(sockets),
        hba_file=conf_string(str(data_dir / "skyreg_hba.conf")),
        **memory_settings(usable_memory()),
    )
    _replace(data_dir / "skyreg_hba.conf", _HBA)
    _replace(data_dir / "skyreg.conf", text)


#: The buffer cache's share of the machine's memory (PostgreSQL's own advice: a quarter) ...
SHARED_BUFFERS_SHARE = 4
#: ... never below what the server had before it was sized by the machine ...
SHARED_BUFFERS_MIN = 256 * 2**20
#: ... nor above 2 GB. A table larger than a quarter of the cache is scanned through a small
#: ring of buffers that stays in the CPU cache; below that, a scan streams through fresh
#: shared memory. At 10,000 visits the tables the ingest scans to build its indexes are
#: 0.6-1 GB: with a 6 GB cache those builds were 5-15% slower (the ingest 175-187 s against
#: 162-171 s with 256 MB), with 2 GB as fast as with 256 MB (165 s).
SHARED_BUFFERS_MAX = 2 * 2**30


def memory_settings(memory: int) -> dict[str, str]:
    """``shared_buffers`` and ``effective_cache_size`` for a machine with ``memory`` bytes
    (0: unknown).

    Why sized by the machine: a survey's data outgrow a fixed 256 MB cache (10,000 visits:
    5 GB of tables and indexes; the full-scale APDB data set 3.9 GB), and each page read then
    goes through the kernel, and each dirty page a writer evicts is written by that writer.
    Measured on the full-scale APDB (2 M DiaObject versions, 3 M DiaSources, 5 M
    DiaForcedSources), warm, 256 MB against 4 GB: a 189-CCD visit 35.0 against 26.8 s, the
    DiaSource history of a CCD 64.7 against 47.3 ms. The shared memory is only reserved:
    pages are taken as the cache fills.
    """
    shared = min(max(memory // SHARED_BUFFERS_SHARE, SHARED_BUFFERS_MIN), SHARED_BUFFERS_MAX)
    cache = max(memory // 2, 2 * 2**30)  # the planner's guess of cached data: half the RAM
    return {"shared_buffers": f"{shared // 2**20}MB",
            "effective_cache_size": f"{cache // 2**20}MB"}


def _replace(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically, unless it already holds exactly that."""
    with contextlib.suppress(FileNotFoundError):
        if target.read_text(encoding="utf-8") == text:
            return
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def conf_string(value: str) -> str:
    """Quote a value for postgresql.conf (backslashes are escapes there, quotes are doubled)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def fsync_dir(path: Path) -> None:
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


_HBA = """\
# Written by skyreg each time it starts this server: edits here are lost.
# Unix socket: no password; only the owner of the 0700 socket directory can reach it.
local   all             all                     trust
local   replication     all                     trust
# TCP (only with `skyreg server start --port`, on 127.0.0.1): the password in <home>/pgpass,
# because any local user can reach a TCP port.
host    all             all     127.0.0.1/32    scram-sha-256
"""

_SETTINGS = """\
# Written by skyreg each time it starts this server: edits here are lost.
# Override with ALTER SYSTEM, which postgresql.auto.conf applies after this file.

# A Unix socket in a private directory, so only its owner can connect and no port can clash
# with another server; TCP on 127.0.0.1 only when `skyreg server start --port` asked for it
# (the port then also names the socket file).
listen_addresses = {listen}
port = {port}
unix_socket_directories = {socket_dirs}
unix_socket_permissions = 0700
hba_file = {hba_file}

# Memory for one user on a workstation, running large spatial queries and bulk loads; the
# buffer cache is a quarter of this machine's memory (at least 256MB, at most 2GB).
shared_buffers = {shared_buffers}
work_mem = 32MB
maintenance_work_mem = 256MB
effective_cache_size = {effective_cache_size}
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
