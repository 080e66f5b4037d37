"""``skyreg catalog``: Level-2 object catalogs (load, query by position) and the Level-1 APDB."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from skyreg.cli.common import (
    format_option,
    friendly_errors,
    open_registry,
    parse_angle,
    parse_ra,
    region_kwargs,
)
from skyreg.cli.output import render
from skyreg.cli.progress import IngestProgress


@click.group()
def catalog() -> None:
    """Catalogs stored in the registry: Level-2 object catalogs (Parquet), queried exactly by
    position, and the Level-1 APDB (DiaObjects, DiaSources, DiaForcedSources).

    \b
    Examples:
      skyreg catalog load-apdb apdb_seed/
      skyreg catalog load dr1_object object_*.parquet --ra coord_ra --dec coord_dec --id objectId
      skyreg catalog list
      skyreg catalog cone dr1_object 150.1 2.2 10arcsec --columns g_psfFlux,r_psfFlux
    """


@catalog.command("load")
@click.argument("name")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--ra", "ra", required=True, metavar="RA_COL", help="Column of RA (degrees).")
@click.option("--dec", "dec", required=True, metavar="DEC_COL", help="Column of Dec (degrees).")
@click.option("--id", "id_column", required=True, metavar="ID_COL",
              help="Column of the unique row id (integers or strings).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar (shown on a terminal only).")
@format_option
@click.pass_context
@friendly_errors
def load(ctx: click.Context, name: str, files: tuple[Path, ...], ra: str, dec: str,
         id_column: str, progress: bool, fmt: str) -> None:
    """Load Parquet files into catalog NAME, every column, positions indexed.

    One transaction: a bad file, column or row (named in the error) leaves nothing behind.
    Idempotent by id: loading the same files again adds nothing; an id already stored (or
    given twice) with other values is refused. Later loads must have the same columns.

    \b
    Examples:
      skyreg catalog load dr1_object object_*.parquet --ra coord_ra --dec coord_dec --id objectId
      skyreg catalog load gaia gaia.parquet --ra ra --dec dec --id source_id --format json
    """
    with open_registry(ctx) as registry, IngestProgress(progress) as bar:
        report = registry.load_catalog(name, files, ra=ra, dec=dec, id=id_column, progress=bar)
    summary = {"catalog": report.name, "files": report.files, "rows_read": report.rows_read,
               "inserted": report.inserted, "already_present": report.already_present,
               "row_count": report.row_count}
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"catalog {report.name}: {report.rows_read} rows read from {report.files} "
                   f"file{'s' if report.files != 1 else ''}, {report.inserted} inserted, "
                   f"{report.already_present} already stored; {report.row_count} rows in all")


@catalog.command("list")
@format_option
@click.pass_context
@friendly_errors
def list_command(ctx: click.Context, fmt: str) -> None:
    """Loaded catalogs: name, rows, columns, id/RA/Dec columns.

    \b
    Example:
      skyreg catalog list --format json
    """
    with open_registry(ctx) as registry:
        infos = registry.catalogs()
    columns = ["name", "rows", "columns", "id", "ra", "dec"]
    rows = [[i.name, i.row_count, len(i.columns), i.id_column, i.ra_column, i.dec_column]
            for i in infos]
    click.echo(render(columns, rows, fmt))


@catalog.command("cone")
@click.argument("name")
@click.argument("ra")
@click.argument("dec")
@click.argument("radius")
@click.option("--columns", metavar="COL,COL,...",
              help="Columns to show (comma-separated; the id always comes first). "
                   "Default: all.")
@click.option("--limit", type=click.IntRange(min=0), default=None,
              help="At most this many rows (by id).")
@format_option
@click.pass_context
@friendly_errors
def cone(ctx: click.Context, name: str, ra: str, dec: str, radius: str, columns: str | None,
         limit: int | None, fmt: str) -> None:
    """Rows of catalog NAME within RADIUS of (RA, DEC): exactly those, sorted by id.

    Angles are degrees, or carry units (10arcsec, 2:12:00, 10h00m24s for RA).

    \b
    Examples:
      skyreg catalog cone dr1_object 150.1 2.2 0.01
      skyreg catalog cone dr1_object 10h00m24s 2d12m 5arcsec --format json
      skyreg catalog cone dr1_object 150.1 2.2 1arcmin --columns coord_ra,coord_dec --format csv
    """
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    centre = (parse_ra(ra, "RA"), parse_angle(dec, "DEC"))
    size = parse_angle(radius, "RADIUS")
    with open_registry(ctx) as registry:
        frame = registry.catalog(name).cone(*centre, size, columns=wanted, limit=limit)
    rows = [[_plain(value) for value in row] for row in frame.itertuples(index=False)]
    click.echo(render([str(c) for c in frame.columns], rows, fmt))


def _plain(value: Any) -> Any:
    """A JSON-able Python value (numpy scalars unwrapped, NaN and NA as None)."""
    if hasattr(value, "item") and not isinstance(value, (bytes, str)):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bytes):
        return value.hex()
    import pandas as pd

    if value is pd.NA or value is pd.NaT:
        return None
    return value


@catalog.command("load-apdb")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show a progress bar (on a terminal only).")
@click.pass_context
@friendly_errors
def load_apdb(ctx: click.Context, directory: Path, progress: bool) -> None:
    """Load DiaObject.parquet, DiaSource.parquet and DiaForcedSource.parquet from DIRECTORY.

    Columns carry the APDB schema's names (absent optional columns are NULL); a DiaObject
    may come in several versions (validityStartMjdTai). Running it again stores only what
    is missing; rows that cannot be stored are listed (file, row, column) and the exit
    status is 1.
    """
    from skyreg.catalogs.apdb_load import FILES, load_apdb_directory

    with open_registry(ctx) as registry, IngestProgress(progress) as bar:
        report = load_apdb_directory(registry.engine, directory, progress=bar)
    for name in FILES:
        if name in report.read:
            click.echo(f"{name}: {report.read[name]} rows read, "
                       f"{report.stored.get(name, 0)} stored, "
                       f"{report.unchanged.get(name, 0)} already stored")
    for refusal in report.refused:
        click.echo(f"refused: {refusal}", err=True)
    if report.refused_count > len(report.refused):
        click.echo(f"refused: ... and {report.refused_count - len(report.refused)} more rows",
                   err=True)
    if report.refused_count:
        click.echo(f"error: {report.refused_count} rows refused", err=True)
        sys.exit(1)


@catalog.command("match-apdb")
@click.argument("name")
@click.option("--cone", nargs=3, metavar="RA DEC RADIUS",
              help="The region: centre and radius (degrees, or with units: 12arcmin).")
@click.option("--polygon", metavar="'RA,DEC RA,DEC ...'",
              help="The region: a convex polygon, vertices in order (either direction).")
@click.option("--radius", default="1arcsec", show_default=True,
              help="Match radius (degrees, or with units).")
@click.option("--all", "every", is_flag=True,
              help="Keep every Object within the radius, not only the nearest.")
@format_option
@click.pass_context
@friendly_errors
def match_apdb(ctx: click.Context, name: str, cone: tuple[str, str, str] | None,
               polygon: str | None, radius: str, every: bool, fmt: str) -> None:
    """Cross-match the latest DiaObjects of a region with catalog NAME and keep the answer
    in DiaObject_To_Object_Match (replacing the matches stored before for those DiaObjects).

    \b
    Examples:
      skyreg catalog match-apdb dr1_object --cone 45.0 0.0 0.2
      skyreg catalog match-apdb dr1_object --cone 45.0 0.0 12arcmin --radius 0.5arcsec --all
    """
    from skyreg.geometry.query_regions import make_query_region

    if not cone and not polygon:
        raise click.UsageError("give the region: --cone RA DEC RADIUS or --polygon")
    query = make_query_region(**region_kwargs(cone, polygon, None))
    assert query is not None
    size = parse_angle(radius, "--radius")
    with open_registry(ctx) as registry:
        report = registry.apdb.match_objects(query.region, name, size, nearest=not every)
    columns = ["catalog", "dia_objects", "matched", "stored", "replaced"]
    values = [report.catalog, report.dia_objects, report.matched, report.stored,
              report.replaced]
    if fmt == "json":
        click.echo(json.dumps(dict(zip(columns, values, strict=True))))
    else:
        click.echo(render(columns, [values], fmt))
