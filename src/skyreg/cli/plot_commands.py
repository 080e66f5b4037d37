"""``skyreg plot``: coverage maps and footprint pictures written to PNG or PDF files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from skyreg.cli.common import friendly_errors, open_registry, region_kwargs
from skyreg.errors import SkyregError

_SUFFIXES = (".png", ".pdf", ".svg")

out_option = click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="File to write: .png, .pdf or .svg.")
dpi_option = click.option("--dpi", default=150, show_default=True, type=click.IntRange(20, 600),
                          help="Resolution of PNG files.")


def _check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SkyregError("skyreg plot needs matplotlib: pip install 'skyreg[plot]'") from None


def _save(figure: Any, out: Path, dpi: int) -> None:
    """Write through a temporary file, so a failed write leaves no half-written picture."""
    if out.suffix.lower() not in _SUFFIXES:
        raise SkyregError(f"--out {out}: the file name must end in {', '.join(_SUFFIXES)}")
    temporary = out.with_name(f".{out.name}.partial{out.suffix}")
    try:
        figure.savefig(temporary, dpi=dpi)
        temporary.replace(out)
    except OSError as err:
        raise SkyregError(f"--out {out}: {err.strerror or err}") from None
    finally:
        temporary.unlink(missing_ok=True)
    click.echo(f"wrote {out}")


@click.group()
def plot() -> None:
    """Pictures of the registry (needs matplotlib: pip install 'skyreg[plot]').

    \b
    Examples:
      skyreg plot coverage --out coverage.png            # all-sky, visits per cell, per band
      skyreg plot coverage --tract rings 9813 --band r --out depth.pdf
      skyreg plot patch rings 9813 40 --out patch.png
      skyreg plot ccds --cone 150.1 2.2 0.3 --band g --out ccds.png
    """


@plot.command("coverage")
@click.option("--tract", nargs=2, metavar="SKYMAP TRACT",
              help="Exact depth over one tract (tangent plane) instead of the all-sky map.")
@click.option("--band", multiple=True, help="Only this band (repeatable; default: each band).")
@click.option("--level", type=int, default=None,
              help="All-sky map: pixelization level of the cells (default 6).")
@click.option("--center-ra", type=float, default=180.0, show_default=True,
              help="All-sky map: RA at the centre.")
@click.option("--samples", type=click.IntRange(10, 2000), default=300, show_default=True,
              help="Tract map: grid points across the tract.")
@out_option
@dpi_option
@click.pass_context
@friendly_errors
def plot_coverage(ctx: click.Context, tract: tuple[str, str] | None, band: tuple[str, ...],
                  level: int | None, center_ra: float, samples: int, out: Path,
                  dpi: int) -> None:
    """Coverage depth per band: visits per cell over the whole sky (Mollweide), or with
    --tract the number of visits covering each point of the tract."""
    _check_matplotlib()
    tract_key = None
    if tract:
        try:
            tract_key = (tract[0], int(tract[1]))
        except ValueError:
            raise click.BadParameter(f"{tract[1]!r} is not a tract number",
                                     param_hint="--tract") from None
    with open_registry(ctx) as registry:
        figure = registry.plot_coverage(tract=tract_key, band=list(band) or None, level=level,
                                        center_ra=center_ra, samples=samples)
    _save(figure, out, dpi)


@plot.command("patch")
@click.argument("skymap")
@click.argument("tract", type=int)
@click.argument("patch", type=int)
@click.option("--band", multiple=True, help="Only CCDs of visits in this band (repeatable).")
@out_option
@dpi_option
@click.pass_context
@friendly_errors
def plot_patch(ctx: click.Context, skymap: str, tract: int, patch: int, band: tuple[str, ...],
               out: Path, dpi: int) -> None:
    """The CCDs overlapping one patch, over the patch's inner and outer boxes."""
    _check_matplotlib()
    with open_registry(ctx) as registry:
        figure = registry.plot_patch(skymap, tract, patch, band=list(band) or None)
    _save(figure, out, dpi)


@plot.command("ccds")
@click.option("--patch", nargs=3, metavar="SKYMAP TRACT PATCH", help="Overlapping a patch.")
@click.option("--tract", nargs=2, metavar="SKYMAP TRACT", help="Overlapping a tract.")
@click.option("--cone", nargs=3, metavar="RA DEC RADIUS",
              help="Cone: centre and radius (degrees, or with units: 12arcmin).")
@click.option("--polygon", metavar="'RA,DEC RA,DEC ...'", help="Convex polygon.")
@click.option("--point", nargs=2, metavar="RA DEC", help="CCDs containing a point.")
@click.option("--band", multiple=True, help="Only visits in this band (repeatable).")
@click.option("--instrument", multiple=True, help="Only this instrument (repeatable).")
@out_option
@dpi_option
@click.pass_context
@friendly_errors
def plot_ccds(ctx: click.Context, patch: tuple[str, str, str] | None,
              tract: tuple[str, str] | None, cone: Any, polygon: str | None, point: Any,
              band: tuple[str, ...], instrument: tuple[str, ...], out: Path, dpi: int) -> None:
    """The CCDs of a query (as `skyreg ccds` takes it), coloured by band, with its region."""
    _check_matplotlib()
    query = region_kwargs(cone, polygon, point)
    if patch:
        query["patch"] = patch
    if tract:
        query["tract"] = tract
    with open_registry(ctx) as registry:
        figure = registry.plot_ccds(band=list(band) or None,
                                    instrument=list(instrument) or None, **query)
    _save(figure, out, dpi)
