"""``skyreg sql`` and ``skyreg db roles``: real databases; psql replaced by a recording script."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from skyreg.cli.main import cli
from skyreg.db.engine import make_engine
from skyreg.db.roles import drop_roles


@pytest.fixture(autouse=True)
def _no_configured_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKYREG_DATABASE_URL", raising=False)


def fake_psql(directory: Path, version: str = "99.0") -> Path:
    """A 'psql' of ``version`` that records its arguments and PGPASSWORD, one per line."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "psql"
    answer = f'echo "psql (PostgreSQL) {version}"; exit'
    script.write_text('#!/bin/sh\n'
                      f'if [ "$1" = --version ]; then {answer}; fi\n'
                      'printf "%s\\n" "$@" > "$(dirname "$0")/argv.txt"\n'
                      'printf "%s\\n" "${PGPASSWORD-}" > "$(dirname "$0")/password.txt"\n'
                      'exit "${FAKE_PSQL_STATUS:-0}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_print_url_reaches_the_database(database_url: str) -> None:
    result = CliRunner().invoke(cli, ["--db", database_url, "sql", "--print-url"])
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert url.startswith("postgresql://") and "+psycopg" not in url
    with psycopg.connect(url) as connection:
        name = connection.execute("SELECT current_database()").fetchone()
    assert name is not None and make_url(database_url).database == name[0]


def test_psql_runs_with_the_connection_and_arguments(database_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake_psql(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with_password = database_url.replace("postgres@", "postgres:s3cr%27t@", 1)
    result = CliRunner().invoke(cli, ["--db", with_password, "sql", "--", "-c",
                                      "SELECT * FROM skyreg_ccds_in_cone(1, 2, 3)"])
    assert result.exit_code == 0, result.output
    argv = (tmp_path / "bin" / "argv.txt").read_text().splitlines()
    assert argv[1:] == ["-c", "SELECT * FROM skyreg_ccds_in_cone(1, 2, 3)"]
    assert "s3cr" not in argv[0]  # the password goes through the environment only
    assert (tmp_path / "bin" / "password.txt").read_text().strip() == "s3cr't"
    with psycopg.connect(argv[0]) as connection:
        name = connection.execute("SELECT current_database()").fetchone()
    assert name is not None and make_url(database_url).database == name[0]
    monkeypatch.setenv("FAKE_PSQL_STATUS", "3")  # psql's exit status is passed on
    result = CliRunner().invoke(cli, ["--db", database_url, "sql"])
    assert result.exit_code == 3


def run_bundled_psql(database_url: str, out: Path) -> Result:
    """``skyreg sql`` running a query whose answer psql writes to ``out``."""
    return CliRunner().invoke(cli, ["--db", database_url, "sql", "--", "-X", "-At", "-o",
                                    str(out), "-c", "SELECT 40 + 2"])


def test_without_a_psql_installed_the_bundled_one_runs(database_url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no psql there
    result = run_bundled_psql(database_url, tmp_path / "out.txt")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    assert (tmp_path / "out.txt").read_text().strip() == "42"


def test_a_system_psql_older_than_the_server_is_passed_over(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_psql(tmp_path / "bin", version="9.6.24")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    result = run_bundled_psql(database_url, tmp_path / "out.txt")
    assert result.exit_code == 0, result.output
    assert f"warning: {tmp_path / 'bin' / 'psql'} is psql 9, older than the server" in (
        result.output)
    assert (tmp_path / "out.txt").read_text().strip() == "42"
    assert not (tmp_path / "bin" / "argv.txt").exists()


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", "postgresql://nobody:pw@127.0.0.1:1/x", "sql"])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot connect to postgresql://nobody@127.0.0.1:1/x")
    assert ":pw@" not in result.output


def test_embedded_server_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no URL configured, psql reaches the embedded server through its socket."""
    fake_psql(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    home = tmp_path / "home"
    result = CliRunner().invoke(cli, ["--home", str(home), "sql"])
    try:
        assert result.exit_code == 0, result.output
        url = (tmp_path / "bin" / "argv.txt").read_text().splitlines()[0]
        assert url.startswith("postgresql://postgres@/skyreg?host=")
        printed = CliRunner().invoke(cli, ["--home", str(home), "sql", "--print-url"])
        assert printed.output.strip() == url
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        from skyreg.db.embedded import EmbeddedServer

        EmbeddedServer(home).stop()


def test_db_roles_command(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reader, writer = f"t_cli_r_{os.getpid()}", f"t_cli_w_{os.getpid()}"
    runner = CliRunner()
    try:
        args = ["--db", database_url, "db", "roles", "--reader", reader, "--writer", writer]
        first = runner.invoke(cli, args)
        assert first.exit_code == 0, first.output
        assert f"created: {reader}, {writer}" in first.output
        monkeypatch.setenv("T_ROLE_PW", "x'; DROP TABLE ccd; --")
        second = runner.invoke(cli, [*args, "--login", "--password-env", "T_ROLE_PW"])
        assert second.exit_code == 0 and "none (both existed)" in second.output
        for bad in (["--reader", "Robert'); DROP TABLE ccd; --"], ["--writer", "ü"],
                    ["--password-env", "T_ROLE_PW"], ["--login", "--password-env", "UNSET_X"]):
            result = runner.invoke(cli, ["--db", database_url, "db", "roles", *bad])
            assert result.exit_code == 1 and result.output.startswith("error: "), result.output
            assert "Traceback" not in result.output
        with psycopg.connect(database_url.replace("+psycopg", "")) as connection:
            assert connection.execute("SELECT count(*) FROM ccd").fetchone() == (0,)
    finally:
        engine = make_engine(database_url)
        drop_roles(engine, reader, writer)
        engine.dispose()
