"""CLI commands of the file archive: ``ingest fits``, ``datasets``, ``dataset-type``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from skyreg.cli.common import (
    emit,
    format_option,
    friendly_errors,
    open_registry,
    region_kwargs,
    region_options,
)
from skyreg.cli.output import render
from skyreg.cli.progress import IngestProgress


@click.command("fits")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--recursive", "-r", is_flag=True,
              help="Read the FITS files (*.fits, *.fit, *.fts, *.fz, *.fits.gz, *.fits.bz2) "
                   "under directories.")
@click.option("--dataset-type", default="raw", show_default=True,
              help="Dataset type of the files: raw, calexp, deepCoadd or one of your own "
                   "(registered on first use).")
@click.option("--profile", metavar="NAME|FILE.yaml",
              help="Instrument profile: DECam, HSC, LSSTCam or a YAML file. Default: "
                   "recognised from the headers.")
@click.option("--skymap", metavar="NAME",
              help="Coadd images: attach each file to the patch of this sky map whose WCS "
                   "it has (patch dataset types such as deepCoadd).")
@click.option("--band", help="Coadd images: the band, when the headers do not say.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Processes reading headers [default: one per core].")
@click.option("--executor", default="process", show_default=True,
              metavar="process|tcp://HOST:PORT",
              help="Where headers are read: local processes, or a Dask distributed scheduler "
                   "address (its workers need skyreg and the same file paths).")
@click.option("--checksum", type=click.Choice(["header", "sha256", "none"]), default="header",
              show_default=True,
              help="header: the files' own DATASUM/CHECKSUM cards (no data read); sha256: "
                   "hash every byte (reads whole files); none.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bars (shown on a terminal only).")
@format_option
@click.pass_context
@friendly_errors
def ingest_fits(ctx: click.Context, paths: tuple[Path, ...], recursive: bool,
                dataset_type: str, profile: str | None, skymap: str | None, band: str | None,
                jobs: int | None, executor: str, checksum: str, progress: bool,
                fmt: str) -> None:
    """Register FITS images: one CCD per CCD image HDU (it must have a celestial WCS).

    Reads headers only. Instrument, visit, detector, band and times come from header
    keywords through an instrument profile; each footprint is computed from the WCS
    (SIP/TPV distortions included) and contains every pixel.

    A file with any bad HDU is refused whole and listed (file, HDU, reason); the others are
    registered and the command exits with status 2. MASK and VARIANCE planes, and images
    without a WCS or a detector keyword next to the CCDs, are passed over and counted. Files
    already registered are skipped without being read, so re-running after fixing the bad ones
    reads only those. Visits are committed whole: killing the command never leaves a partial
    visit.

    \b
    Examples:
      skyreg ingest fits raw/*.fits
      skyreg ingest fits -r /data/decam --profile DECam --jobs 8
      skyreg ingest fits -r calexps/ --dataset-type calexp --executor tcp://sched:8786
      skyreg ingest fits -r coadds/ --dataset-type deepCoadd --skymap hsc_rings_v1
    """
    with open_registry(ctx) as registry, IngestProgress(progress) as bar:
        report = registry.ingest_fits(
            list(paths), dataset_type=dataset_type, profile=profile, skymap=skymap, band=band,
            recursive=recursive, jobs=jobs, executor=executor, checksum=checksum,
            progress=bar)
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report.problem_lines():
            click.echo(f"refused: {line}", err=True)
        click.echo("\n".join(report.lines()))
    if not report.ok:
        click.echo(f"error: {report.files_refused} file(s) refused; fix them and run the "
                   "same command again to add them", err=True)
        sys.exit(2)


@click.command()
@click.argument("dataset_type")
@click.option("--patch", nargs=3, metavar="SKYMAP TRACT PATCH", help="Overlapping a patch.")
@click.option("--tract", nargs=2, metavar="SKYMAP TRACT", help="Overlapping a tract.")
@region_options
@click.option("--instrument", multiple=True, help="Only this instrument (repeatable).")
@click.option("--skymap", multiple=True, help="Only this sky map (repeatable).")
@click.option("--band", multiple=True, help="Only this band (repeatable).")
@click.pass_context
@friendly_errors
def datasets(ctx: click.Context, dataset_type: str, patch: tuple[str, str, str] | None,
             tract: tuple[str, str] | None, cone: Any, polygon: Any, point: Any, inner: bool,
             columns: str | None, fmt: str, out: Path | None, instrument: tuple[str, ...],
             skymap: tuple[str, ...], band: tuple[str, ...]) -> None:
    """Files of DATASET_TYPE whose footprint overlaps a region (all of them without one).

    \b
    Examples:
      skyreg datasets deepCoadd --cone 150.1 2.2 0.1 --band r
      skyreg datasets calexp --patch hsc_rings_v1 9813 40 --format csv
      skyreg datasets raw --point 150.1 2.2 --format json
      skyreg datasets raw --tract rings 9813 --columns mjd_start,footprint --format votable

    \b
    --columns (besides the data ID and the file's uri, hdu, format, size_bytes, checksum):
      CCD types:   physical_filter day_obs seq_num exposure_time mjd_start mjd_end
                   boresight_ra boresight_dec rotation_deg, footprint (CCD vertices)
      patch types: footprint (the patch's outer polygon)
    """
    kwargs = region_kwargs(cone, polygon, point, patch=patch, tract=tract)
    with open_registry(ctx) as registry:
        results = registry.find_datasets(
            dataset_type, instrument=instrument or None, skymap=skymap or None,
            band=band or None, inner=inner, columns=columns, **kwargs)
    emit(results, fmt, out)


@click.group("dataset-type")
def dataset_type() -> None:
    """List and register dataset types."""


@dataset_type.command("list")
@format_option
@click.pass_context
@friendly_errors
def dataset_type_list(ctx: click.Context, fmt: str) -> None:
    """Registered dataset types and their dimensions."""
    with open_registry(ctx) as registry:
        types = registry.dataset_types()
    click.echo(render(("name", "dimensions"), sorted(types.items()), fmt))


@dataset_type.command("register")
@click.argument("name")
@click.option("--dimensions", type=click.Choice(["ccd", "patch"]), required=True,
              help="ccd: data IDs are (instrument, visit, detector); patch: (skymap, tract, "
                   "patch, band).")
@click.option("--description", default="", help="What the files hold.")
@click.pass_context
@friendly_errors
def dataset_type_register(ctx: click.Context, name: str, dimensions: str,
                          description: str) -> None:
    """Register a dataset type (idempotent)."""
    with open_registry(ctx) as registry:
        new = registry.register_dataset_type(name, dimensions, description)
    click.echo(f"{'registered' if new else 'already registered'}: {name} ({dimensions})")
