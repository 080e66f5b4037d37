"""``skyreg stamps``: postage stamps of a target list from every covering coadd."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from skyreg.cli.common import friendly_errors, open_registry
from skyreg.cli.progress import IngestProgress


class _Words(click.Option):
    """An option taking one or more words: ``--band g r i`` as well as ``--band g --band r``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("multiple", True)
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            option = parser._long_opt.get(name) or parser._short_opt.get(name)
            if option is None:
                continue
            original = option.process

            def process(value: Any, state: Any, original: Any = original) -> None:
                words = [value]
                while state.rargs and not state.rargs[0].startswith("-"):
                    words.append(state.rargs.pop(0))
                for word in words:
                    for part in word.split(","):
                        if part:
                            original(part, state)

            option.process = process


def _read_targets(path: Path, size_column: bool) -> tuple[Any, Any, Any, Any]:
    """(ra, dec, sizes or None, ids or None) from a CSV/ECSV/FITS/Parquet table."""
    import numpy as np
    from astropy.table import Table

    from skyreg.cutouts import TargetError

    if not path.exists():
        raise TargetError("no such file", file=str(path))
    try:
        table = Table.read(path, format="ascii.csv" if path.suffix.lower() == ".csv" else None)
    except Exception as err:
        raise TargetError(f"cannot read the table: {' '.join(str(err).split())[:200]}",
                          file=str(path)) from None
    names = {name.lower(): name for name in table.colnames}
    columns = []
    for wanted in (("ra", "coord_ra", "ra_deg"), ("dec", "coord_dec", "dec_deg")):
        found = next((names[w] for w in wanted if w in names), None)
        if found is None:
            raise TargetError(f"no {wanted[0]} column (columns: {', '.join(table.colnames)})",
                              file=str(path), field=wanted[0])
        columns.append(found)
    values = []
    for column in columns:
        try:
            values.append(np.asarray(table[column], dtype=np.float64))
        except (TypeError, ValueError):
            raise TargetError("not numbers", file=str(path), field=column) from None
        bad = np.flatnonzero(~np.isfinite(values[-1]))
        if bad.size:
            raise TargetError("missing or not a number", file=str(path), row=int(bad[0]),
                              field=column)
    sizes = None
    if size_column and "size" in names:
        sizes = np.asarray(table[names["size"]])
    ids = np.asarray(table[names["id"]]) if "id" in names else None
    return values[0], values[1], sizes, ids


@click.command("stamps")
@click.option("--targets", "targets_path", type=click.Path(path_type=Path), metavar="TABLE",
              help="Target list: CSV (or ECSV, FITS, Parquet) with ra and dec columns in "
                   "degrees; optional size (pixels, per target) and id columns.")
@click.option("--region", "regions", multiple=True, metavar="SHAPE",
              help="A region instead of targets: 'CIRCLE ra dec r', 'POLYGON ra1 dec1 ...' or "
                   "'RANGE ra1 ra2 dec1 dec2' (degrees; repeatable).")
@click.option("--size", default=64, show_default=True, type=click.IntRange(1, 16384),
              help="Stamp side in pixels, for targets without a size column.")
@click.option("--band", "bands", cls=_Words, metavar="BAND...",
              help="Bands to cut (default: all): --band g r i.")
@click.option("--dataset-type", "dataset_types", cls=_Words, metavar="TYPE...",
              help="Coadd dataset types [default: deepCoadd].")
@click.option("--skymap", help="Only coadds of this sky map.")
@click.option("--inner", is_flag=True,
              help="One stamp per target and coadd type/band: from the patch whose inner "
                   "region holds it (else every patch holding pixels of the stamp).")
@click.option("--partial", is_flag=True,
              help="Stamps crossing a coadd's edge keep the full size (NaN/0 outside) "
                   "instead of being trimmed.")
@click.option("--sparse", is_flag=True, help="Regions: only the selected pixels (tables).")
@click.option("--scratch", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Copy each coadd to this local directory first, and reuse the copies.")
@click.option("--scratch-size", metavar="SIZE",
              help="Size limit of --scratch, e.g. 200G (least recently used copies go).")
@click.option("--executor", metavar="tcp://HOST:PORT",
              help="Cut on a Dask distributed cluster (one task per patch's coadds).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False,
              path_type=Path), help="Output multi-extension FITS file.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bars (shown on a terminal only).")
@click.pass_context
@friendly_errors
def stamps_command(ctx: click.Context, targets_path: Path | None, regions: tuple[str, ...],
                   size: int, bands: tuple[str, ...], dataset_types: tuple[str, ...],
                   skymap: str | None, inner: bool, partial: bool, sparse: bool,
                   scratch: Path | None, scratch_size: str | None, executor: str | None,
                   out_path: Path, progress: bool) -> None:
    """Cut postage stamps of targets from every registered coadd that covers them.

    For each target (or region) and each coadd of the chosen dataset types and bands whose
    patch holds pixels of its stamp, the stamp's pixels of every plane (image, mask,
    variance) go to one FITS file: one HDU per stamp and plane (EXTNAME IMAGE/MASK/VARIANCE,
    EXTVER = stamp number), each with its exact WCS and its source in the header (TARGET,
    DSTYPE, TRACT, PATCH, BAND, SRCURI, SRCX0/SRCY0, COMPLETE).

    The work is planned from the registry first (no file opened), then each coadd file is
    opened once. A file that cannot be read is listed and the others are still cut; the
    command then exits with status 2.

    \b
    Examples:
      skyreg stamps --targets objects.csv --size 64 --band g r i --out stamps.fits
      skyreg stamps --targets blends.csv --inner --scratch /tmp/coadds --out s.fits
      skyreg stamps --region 'CIRCLE 150.1 2.2 0.01' --out region.fits
      skyreg stamps --targets t.csv --dataset-type deepCoadd goodSeeingCoadd --out s.fits
    """
    from skyreg.cutouts import ScratchCache, StampRequestError, parse_size

    if (targets_path is None) == (not regions):
        raise StampRequestError("give --targets TABLE or --region SHAPE (one of them)")
    target: Any
    size_arg: Any = size
    if targets_path is not None:
        ra, dec, sizes, _ = _read_targets(targets_path, True)
        target = (ra, dec)
        if sizes is not None:
            size_arg = sizes
    else:
        target = list(regions)
    cache = None
    if scratch is not None:
        cache = ScratchCache(scratch, parse_size(scratch_size))
    elif scratch_size is not None:
        raise StampRequestError("--scratch-size needs --scratch DIR")
    client = None
    if executor is not None:
        from distributed import Client

        client = Client(executor)  # type: ignore[no-untyped-call]
    try:
        with open_registry(ctx) as registry, IngestProgress(progress) as bar:
            result = registry.postage_stamps(
                target, size=size_arg, dataset_types=dataset_types or ("deepCoadd",),
                bands=bands or None, skymap=skymap, inner=inner,
                mode="partial" if partial else "trim", sparse=sparse, scratch=cache,
                executor=client, progress=bar)
            result.to_fits(out_path)
    finally:
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]
    for problem in result.problems:
        click.echo(f"failed: {problem}", err=True)
    files = len(result.files)
    click.echo(f"{len(result)} stamps of {result.n_targets} targets from {files} coadd "
               f"file{'s' if files != 1 else ''} -> {out_path} (planned in "
               f"{result.plan_seconds * 1000:.0f} ms, cut in {result.cut_seconds:.2f} s)")
    if result.problems:
        click.echo(f"error: {len(result.problems)} file(s) could not be read; their stamps "
                   "are missing", err=True)
        sys.exit(2)
