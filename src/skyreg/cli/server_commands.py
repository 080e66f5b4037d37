"""``skyreg server``: start, stop and describe the embedded PostgreSQL server of a home."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from skyreg.cli.common import format_option, friendly_errors
from skyreg.cli.output import render


def _server(ctx: click.Context) -> Any:
    from skyreg.db.embedded import EmbeddedServer, default_home

    return EmbeddedServer(Path(ctx.find_root().obj["home"] or default_home()))


def emit_mapping(info: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(info, indent=2, default=str))
    else:
        click.echo(render(("key", "value"), list(info.items()), fmt))


@click.group()
def server() -> None:
    """The embedded PostgreSQL server (not used with --db).

    It starts when a skyreg command needs it and stops SKYREG_SERVER_LINGER seconds (default
    30) after the last skyreg process using it has left; `skyreg server start` keeps it up
    for other tools (psql, DBeaver, pandas) until `skyreg server stop`.
    """


@server.command("status")
@format_option
@click.pass_context
@friendly_errors
def server_status(ctx: click.Context, fmt: str) -> None:
    """Is the embedded server running, where are its files and socket, who keeps it up."""
    emit_mapping(_server(ctx).status(), fmt)


@server.command("start")
@click.option("--port", type=click.IntRange(1024, 65535), default=None, metavar="PORT",
              help="Also listen on 127.0.0.1:PORT, with a password (for tools that cannot use "
                   "a Unix socket). Default: the Unix socket only.")
@click.pass_context
@friendly_errors
def server_start(ctx: click.Context, port: int | None) -> None:
    """Start the embedded server and keep it running until `skyreg server stop`.

    Prints how to connect. The socket is private to you; a TCP port needs the password that
    skyreg keeps in <home>/pgpass (a libpq password file: PGPASSFILE=<home>/pgpass).

    \b
    Examples:
      skyreg server start
      skyreg server start --port 6543     # then DBeaver: 127.0.0.1:6543, user postgres
    """
    from skyreg.cli.operator_commands import libpq_target
    from skyreg.db.embedded.binaries import pg_bin

    server = _server(ctx)
    url = server.start(tcp_port=port)
    target, _ = libpq_target(url)
    click.echo(f"the embedded server in {server.home} is running (pid {server.status()['pid']}) "
               f"and stays up until `skyreg server stop`")
    click.echo(f"  connect:    {target}")
    click.echo(f"  psql:       skyreg sql   (or: {pg_bin('psql')} '{target}')")
    click.echo(f"  SQLAlchemy: {url}")
    tcp = server.tcp_url()
    if tcp is not None:
        click.echo(f"  TCP:        {tcp}   (password in {server.password_file}; "
                   f"PGPASSFILE={server.password_file} psql '{tcp}')")


@server.command("stop")
@click.pass_context
@friendly_errors
def server_stop(ctx: click.Context) -> None:
    """Stop the embedded server now, even if skyreg processes use it.

    Exits with status 0 whether or not a server was running (it is not, afterwards), and
    says which. Processes that were using it start it again when they next need it.
    """
    server = _server(ctx)
    users = server.users()
    pid = server.stop()
    if pid is None:
        click.echo(f"no embedded server was running in {server.home}")
        return
    note = ""
    if users:
        who = "1 skyreg process was" if users == 1 else f"{users} skyreg processes were"
        note = f"; {who} using it, and will start it again when next needed"
    click.echo(f"stopped the embedded server (pid {pid}) in {server.home}{note}")
