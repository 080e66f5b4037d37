"""A Registry on the embedded server recovers when the server is really stopped or restarted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from skyreg import Registry
from skyreg.cli.main import cli
from skyreg.db.embedded import EmbeddedServer
from skyreg.errors import ConnectionLostError, DatabaseError
from test_reconnect import prepared_statements, small_survey

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no embedded server on Windows")


def server_pid(home: Path) -> int | None:
    pid = EmbeddedServer(home).status()["pid"]
    assert pid is None or isinstance(pid, int)
    return pid


def test_registry_starts_a_stopped_server_again(cluster_home: Path, tmp_path: Path) -> None:
    with Registry.connect(home=cluster_home) as registry:
        registry.ingest_manifest(small_survey(tmp_path))
        expected = registry.find_ccds(cone=(150.5, 2.0, 0.3))
        counts = registry.counts()
        first = server_pid(cluster_home)

        stopped = CliRunner().invoke(cli, ["--home", str(cluster_home), "server", "stop"])
        assert stopped.exit_code == 0, stopped.output
        assert f"stopped the embedded server (pid {first})" in stopped.output
        assert server_pid(cluster_home) is None

        # The next read finds its connection dead, starts the server and runs again.
        assert registry.find_ccds(cone=(150.5, 2.0, 0.3)) == expected
        second = server_pid(cluster_home)
        assert second is not None and second != first
        assert prepared_statements(registry) >= 1

        # A server restarted by somebody else is simply reconnected to.
        EmbeddedServer(cluster_home).stop()
        other = EmbeddedServer(cluster_home)
        other.acquire()
        assert registry.counts() == counts
        assert server_pid(cluster_home) == other.status()["pid"] != second
        other.release()
        assert server_pid(cluster_home) is not None, "the registry still uses it"
        assert registry.skymaps() == {"testmap": "ab" * 20}


def test_a_server_that_cannot_start_is_reported_and_recovered_from(cluster_home: Path,
                                                                   tmp_path: Path) -> None:
    with Registry.connect(home=cluster_home) as registry:
        registry.ingest_manifest(small_survey(tmp_path))
        EmbeddedServer(cluster_home).stop()
        settings = cluster_home / "pgdata" / "postgresql.auto.conf"
        settings.write_text("shared_buffers = 'lots'\n")
        with pytest.raises(DatabaseError, match="last lines of") as info:
            registry.counts()
        assert "shared_buffers" in str(info.value)
        settings.write_text("")
        assert registry.counts()["ccds"] == 20


def test_ingest_interrupted_by_a_restart_leaves_nothing_and_runs_again(
        cluster_home: Path, tmp_path: Path) -> None:
    survey = small_survey(tmp_path)
    with Registry.connect(home=cluster_home) as registry:
        restarts: list[int | None] = []

        def restart_when_inserting(stage: str, done: int, total: int) -> None:
            if stage.startswith("inserting") and not restarts:
                restarts.append(EmbeddedServer(cluster_home).stop())

        with pytest.raises(ConnectionLostError, match="during the ingest") as info:
            registry.ingest_manifest(survey, progress=restart_when_inserting)
        assert restarts and restarts[0] is not None
        assert "run it again" in str(info.value)
        assert registry.counts()["ccds"] == 0
        assert registry.ingest_manifest(survey).counts["ccd"].inserted == 20
        assert registry.counts()["ccds"] == 20
