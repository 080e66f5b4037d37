"""Commands for operators: ``skyreg sql`` (psql on the registry) and ``skyreg db roles``.

``skyreg sql`` resolves the database exactly as every other command does (``--db``,
``SKYREG_DATABASE_URL``, else the embedded server in ``--home``), so nobody has to look for the
embedded server's socket directory. psql runs as a child process rather than replacing this one:
this process stays registered as a user of the embedded server, which therefore keeps running
until psql exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from typing import Any

import click

from skyreg.cli.common import friendly_errors


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
    from sqlalchemy.engine import URL, make_url

    parsed = make_url(url)
    password = parsed.password
    clean = URL.create("postgresql", username=parsed.username, host=parsed.host,
                       port=parsed.port, database=parsed.database, query=parsed.query)
    return clean.render_as_string(hide_password=False), (
        str(password) if password is not None else None)


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
    The SQL functions are described in docs/sql.md. With the embedded server, a printed URL
    works only while some skyreg process (e.g. `skyreg sql`) keeps the server running.
    """
    target, password = libpq_target(_server_url(ctx))
    if print_url:
        click.echo(target)
        return
    psql = shutil.which("psql")
    if psql is None:
        click.echo(target)
        click.echo("error: psql is not installed (PostgreSQL client, e.g. the "
                   "'postgresql-client' package); connect any client to the URL above",
                   err=True)
        sys.exit(1)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    # psql handles Ctrl-C itself (it cancels the running query); this process must not die.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        completed = subprocess.run([psql, target, *psql_args], env=env, check=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    if completed.returncode != 0:
        sys.exit(completed.returncode)


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
    from skyreg.db.engine import make_engine
    from skyreg.db.migrate import ensure_schema
    from skyreg.db.roles import RoleError, ensure_roles

    password: str | None = None
    if password_env is not None:
        if not login:
            raise RoleError("--password-env needs --login")
        password = os.environ.get(password_env)
        if password is None:
            raise RoleError(f"environment variable {password_env!r} is not set")
    engine = make_engine(_server_url(ctx))
    try:
        ensure_schema(engine)  # privileges are granted on the registry's tables
        report = ensure_roles(engine, reader, writer, login=login, password=password)
    finally:
        engine.dispose()
    created: Any = ", ".join(report.created) or "none (both existed)"
    click.echo(f"reader {report.reader} (read-only), writer {report.writer} (ingest); "
               f"created: {created}")
