"""``skyreg catalog ...``: catalogs stored next to the registry (Level-1 APDB tables, ...)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from skyreg.cli.common import friendly_errors, open_registry
from skyreg.cli.progress import IngestProgress


@click.group("catalog")
def catalog() -> None:
    """Load and inspect catalogs (Level-1 DiaObjects/DiaSources, ...)."""


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
