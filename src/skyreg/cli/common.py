"""Pieces shared by the CLI's commands: error handling, registry access, region options."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click

from skyreg.cli.output import FORMATS, render
from skyreg.errors import SkyregError

P = ParamSpec("P")
R = TypeVar("R")


def parse_angle(text: str, what: str, default_unit: str = "deg") -> float:
    """Degrees from '150.1', '10h00m28.6s', '12arcmin', '0.2deg'... (astropy parses units)."""
    from astropy.coordinates import Angle

    try:
        value = float(text)
        return value
    except ValueError:
        pass
    try:
        return float(Angle(text, unit=default_unit if text[-1].isdigit() else None).deg)
    except Exception as err:
        raise click.BadParameter(f"{text!r} is not an angle ({err})", param_hint=what) from err


def friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn skyreg's own errors into 'error: ...' lines and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except SkyregError as err:
            for line in str(err).splitlines():
                click.echo(f"error: {line}", err=True)
            sys.exit(1)
        except Exception as err:
            # Database driver errors (unreachable server, refused login...) are the user's to
            # fix, not bugs: one line. Checked by module so the CLI need not import them early.
            if not type(err).__module__.startswith(("psycopg", "sqlalchemy")):
                raise
            cause = getattr(err, "orig", None) or err
            text = str(cause).strip()
            click.echo(f"error: database: {text.splitlines()[0] if text else repr(cause)}",
                       err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted; nothing of an unfinished ingest was kept", err=True)
            sys.exit(130)

    return wrapper


def open_registry(ctx: click.Context) -> Any:
    from skyreg.registry import Registry

    options = ctx.find_root().obj
    return Registry.connect(options["db"], home=options["home"],
                            pixelization=options.get("pixelization"))


format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="Output format.",
)


def region_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--cone", nargs=3, metavar="RA DEC RADIUS",
                     help="Cone: centre and radius (degrees, or with units: 12arcmin)."),
        click.option("--polygon", metavar="'RA,DEC RA,DEC ...'",
                     help="Convex polygon, vertices in order (either direction)."),
        click.option("--point", nargs=2, metavar="RA DEC", help="Footprints containing a point."),
        click.option("--inner", is_flag=True,
                     help="Use the inner (owned) polygon of patches and tracts, not the outer."),
        format_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def region_kwargs(cone: tuple[str, str, str] | None, polygon: str | None,
                   point: tuple[str, str] | None) -> dict[str, Any]:
    if cone:
        ra_unit = "hourangle" if "h" in cone[0] else "deg"
        return {"cone": (parse_angle(cone[0], "--cone RA", ra_unit),
                         parse_angle(cone[1], "--cone DEC"),
                         parse_angle(cone[2], "--cone RADIUS"))}
    if polygon:
        try:
            vertices = [tuple(float(v) for v in pair.split(",")) for pair in polygon.split()]
        except ValueError as err:
            raise click.BadParameter("expected 'RA,DEC RA,DEC RA,DEC ...' in degrees",
                                     param_hint="--polygon") from err
        return {"polygon": vertices}
    if point:
        return {"point": (parse_angle(point[0], "--point RA"),
                          parse_angle(point[1], "--point DEC"))}
    return {}


def emit(results: Any, fmt: str) -> None:
    click.echo(render(results.columns, results, fmt))


def parse_time(value: str) -> Any:
    try:
        return float(value)
    except ValueError:
        from astropy.time import Time

        try:
            return Time(value, scale="utc")
        except ValueError as err:
            raise click.BadParameter(f"{value!r} is neither an MJD nor an ISO time",
                                     param_hint="--time") from err
