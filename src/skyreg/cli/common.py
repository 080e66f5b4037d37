"""Pieces shared by the CLI's commands: error handling, registry access, region options."""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from skyreg.cli.output import FORMATS, RESULT_FORMATS, write_results
from skyreg.errors import SkyregError, SkyregWarning

P = ParamSpec("P")
R = TypeVar("R")


def parse_angle(text: str, what: str, default_unit: str = "deg") -> float:
    """Degrees from '150.1', '2:12:00', '12arcmin', '0.2deg', '2d12m' (astropy parses them).

    Plain numbers and colon-separated sexagesimal are in ``default_unit``; text with units
    says its own.
    """
    from astropy.coordinates import Angle

    try:
        return float(text)
    except ValueError:
        pass
    try:
        unit = default_unit if text and text[-1].isdigit() else None
        return float(Angle(text, unit=unit).deg)
    except Exception as err:
        raise click.BadParameter(f"{text!r} is not an angle ({err})", param_hint=what) from err


def parse_ra(text: str, what: str) -> float:
    """A right ascension in degrees, read as astropy's ``SkyCoord`` reads RA text.

    A plain number is degrees. Sexagesimal RA is hours, as astronomers write it and as
    astropy reads it given ``unit=(u.hourangle, u.deg)``: ``10:00:24`` and ``10h00m24s`` are
    both 150.1 degrees. Sexagesimal with an explicit degree sign (``150d06m``) is degrees.
    """
    lowered = text.strip().lower()
    hours = ":" in lowered or "h" in lowered
    if hours and any(mark in lowered for mark in ("d", "°")):
        raise click.BadParameter(f"{text!r} mixes hours and degrees", param_hint=what)
    return parse_angle(text, what, "hourangle" if hours else "deg")


def friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn skyreg's own errors into 'error: ...' lines and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SkyregWarning)
                try:
                    return command(*args, **kwargs)
                finally:
                    _show(caught)
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


def _show(caught: list[warnings.WarningMessage]) -> None:
    """skyreg's warnings as one 'warning: ...' line each on stderr; others as Python shows them."""
    for item in caught:
        if issubclass(item.category, SkyregWarning):
            click.echo(f"warning: {item.message}", err=True)
        else:
            warnings.showwarning(item.message, item.category, item.filename, item.lineno)


def open_registry(ctx: click.Context) -> Any:
    from skyreg.registry import Registry

    options = ctx.find_root().obj
    return Registry.connect(options["db"], home=options["home"],
                            pixelization=options.get("pixelization"))


format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="Output format.",
)


result_options = [
    click.option("--columns", metavar="NAME,NAME,...",
                 help="More columns than the key, from the same query (comma-separated; "
                      "an unknown name lists the valid ones)."),
    click.option("--format", "fmt", type=click.Choice(RESULT_FORMATS), default="table",
                 show_default=True,
                 help="Output format: text (table, json, csv) or a table file (votable, "
                      "parquet, fits; parquet and fits need --out or a pipe)."),
    click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
                 help="Write the answer to this file instead of stdout."),
]


def region_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--cone", nargs=3, metavar="RA DEC RADIUS",
                     help="Cone: centre and radius (degrees, or with units: 12arcmin)."),
        click.option("--polygon", metavar="'RA,DEC RA,DEC ...'",
                     help="Convex polygon, vertices in order (either direction)."),
        click.option("--point", nargs=2, metavar="RA DEC", help="Footprints containing a point."),
        click.option("--inner", is_flag=True,
                     help="Use the inner (owned) polygon of patches and tracts, not the outer."),
        *result_options,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def region_kwargs(cone: tuple[str, str, str] | None, polygon: str | None,
                  point: tuple[str, str] | None, **stored: Any) -> dict[str, Any]:
    """The search region of a command as keyword arguments of a Registry ``find_*`` call.

    ``stored`` are the command's options naming a stored footprint (``patch``, ``tract``,
    ``ccd``), None when not given. More than one region is refused rather than one of them
    silently winning.
    """
    given = [f"--{name}" for name, value in (("cone", cone), ("polygon", polygon),
                                             ("point", point), *stored.items()) if value]
    if len(given) > 1:
        raise click.UsageError(f"give one search region, not {' and '.join(given)}")
    kwargs: dict[str, Any] = {name: value for name, value in stored.items() if value}
    if cone:
        kwargs["cone"] = (parse_ra(cone[0], "--cone RA"), parse_angle(cone[1], "--cone DEC"),
                          parse_angle(cone[2], "--cone RADIUS"))
    if polygon:
        try:
            vertices = [tuple(float(v) for v in pair.split(",")) for pair in polygon.split()]
        except ValueError as err:
            raise click.BadParameter("expected 'RA,DEC RA,DEC RA,DEC ...' in degrees",
                                     param_hint="--polygon") from err
        kwargs["polygon"] = vertices
    if point:
        kwargs["point"] = (parse_ra(point[0], "--point RA"), parse_angle(point[1], "--point DEC"))
    return kwargs


def emit(results: Any, fmt: str, out: Path | None = None) -> None:
    """Print (or with ``out`` write) a search's answer in ``fmt``."""
    write_results(results, fmt, out)


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
