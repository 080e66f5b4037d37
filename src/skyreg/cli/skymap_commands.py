"""CLI commands for sky maps: ``skymap register rings|healpix|discrete|file``, ``skymap list``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from skyreg.cli.common import (
    format_option,
    friendly_errors,
    open_registry,
    parse_angle,
    parse_ra,
)
from skyreg.cli.output import render
from skyreg.cli.progress import IngestProgress


@click.group()
def skymap() -> None:
    """Register and list sky maps (tracts and patches)."""


@skymap.command("list")
@format_option
@click.pass_context
@friendly_errors
def skymap_list(ctx: click.Context, fmt: str) -> None:
    """Registered sky maps with their definition hashes and sizes."""
    with open_registry(ctx) as registry:
        rows = registry.skymap_summaries()
    click.echo(render(("name", "kind", "tracts", "patches", "hash_sha1_hex"), rows, fmt))


@skymap.group("register")
def register() -> None:
    """Compute a sky map's tracts and patches and register them.

    The same definition registered twice is a no-op; a different definition under a
    registered name is refused.

    \b
    Examples:
      skyreg skymap register rings hsc_rings_v1 --num-rings 120 --pixel-scale 0.168 \\
          --patch-inner 4000 --patch-border 100 --tract-overlap 1arcmin
      skyreg skymap register healpix hpx8 --order 8
      skyreg skymap register discrete cosmos --center 150.1 2.2 --radius 1.0
      skyreg skymap register file my_skymap.yaml
    """


def _tract_builder_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--pixel-scale", default=0.168, show_default=True, type=float,
                     help="Pixel scale of tracts and patches, arcseconds."),
        click.option("--patch-inner", default=4000, show_default=True, type=int,
                     help="Patch inner size, pixels (square)."),
        click.option("--patch-border", default=100, show_default=True, type=int,
                     help="Patch border, pixels (outer = inner + 2 x border)."),
        click.option("--tract-overlap", default="1arcmin", show_default=True,
                     help="Overlap of neighbouring tracts: degrees, or with units (1arcmin)."),
        click.option("--progress/--no-progress", default=True, show_default=True,
                     help="Progress bars (shown on a terminal only)."),
        format_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _common(pixel_scale: float, patch_inner: int, patch_border: int,
            tract_overlap: str) -> dict[str, Any]:
    return {"pixel_scale_arcsec": pixel_scale, "patch_inner_pixels": patch_inner,
            "patch_border_pixels": patch_border,
            "tract_overlap_deg": parse_angle(tract_overlap, "--tract-overlap")}


def _register(ctx: click.Context, name: str | None, definition: Any, progress: bool,
              fmt: str) -> None:
    with open_registry(ctx) as registry, IngestProgress(progress) as bar:
        report = registry.register_skymap(name, definition, progress=bar)
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo("\n".join(report.lines()))


def _definition(kind: str, parameters: dict[str, Any]) -> Any:
    from skyreg.skymaps import definition_from_parameters

    return definition_from_parameters(kind, parameters)


@register.command("rings")
@click.argument("name")
@click.option("--num-rings", default=120, show_default=True, type=int,
              help="Declination rings between the polar caps.")
@click.option("--ra-start", default="0", show_default=True,
              help="RA of the first tract of each ring: degrees or with units.")
@_tract_builder_options
@click.pass_context
@friendly_errors
def register_rings(ctx: click.Context, name: str, num_rings: int, ra_start: str,
                   pixel_scale: float, patch_inner: int, patch_border: int, tract_overlap: str,
                   progress: bool, fmt: str) -> None:
    """An LSST-style rings sky map (lsst.skymap RingsSkyMap); the defaults are hsc_rings_v1's."""
    parameters = {"num_rings": num_rings, "ra_start_deg": parse_ra(ra_start, "--ra-start"),
                  **_common(pixel_scale, patch_inner, patch_border, tract_overlap)}
    _register(ctx, name, _definition("rings", parameters), progress, fmt)


@register.command("healpix")
@click.argument("name")
@click.option("--order", required=True, type=int, help="HEALPix order: tracts are its pixels.")
@_tract_builder_options
@click.pass_context
@friendly_errors
def register_healpix(ctx: click.Context, name: str, order: int, pixel_scale: float,
                     patch_inner: int, patch_border: int, tract_overlap: str, progress: bool,
                     fmt: str) -> None:
    """A HEALPix sky map: one tract per nested HEALPix pixel of ORDER."""
    parameters = {"order": order, **_common(pixel_scale, patch_inner, patch_border,
                                            tract_overlap)}
    _register(ctx, name, _definition("healpix", parameters), progress, fmt)


@register.command("discrete")
@click.argument("name")
@click.option("--center", "centers", nargs=2, multiple=True, required=True,
              metavar="RA DEC", help="Tract centre (repeatable); tract ids follow this order.")
@click.option("--radius", required=True, help="Tract radius: degrees or with units.")
@_tract_builder_options
@click.pass_context
@friendly_errors
def register_discrete(ctx: click.Context, name: str, centers: tuple[tuple[str, str], ...],
                      radius: str, pixel_scale: float, patch_inner: int, patch_border: int,
                      tract_overlap: str, progress: bool, fmt: str) -> None:
    """A discrete sky map: tracts at the given centres (lsst.skymap DiscreteSkyMap)."""
    parameters = {
        "ra_deg": [parse_ra(ra, "--center RA") for ra, _ in centers],
        "dec_deg": [parse_angle(dec, "--center DEC") for _, dec in centers],
        "radius_deg": parse_angle(radius, "--radius"),
        **_common(pixel_scale, patch_inner, patch_border, tract_overlap),
    }
    _register(ctx, name, _definition("discrete", parameters), progress, fmt)


@register.command("file")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Register under this name instead of the file's 'name:'.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bars (shown on a terminal only).")
@format_option
@click.pass_context
@friendly_errors
def register_file(ctx: click.Context, config: Path, name: str | None, progress: bool,
                  fmt: str) -> None:
    """A sky map described by a YAML or JSON file (see docs/skymaps.md).

    \b
    Example file:
      name: hsc_rings_v1
      kind: rings
      num_rings: 120
      pixel_scale_arcsec: 0.168
      patch_inner_pixels: 4000
      patch_border_pixels: 100
      tract_overlap_deg: 0.016666666666666666
    """
    _register(ctx, name, config, progress, fmt)
