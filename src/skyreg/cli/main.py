"""``skyreg``: ingest survey metadata and ask exact spatial questions about it.

Every command works on the embedded database in ``$SKYREG_HOME`` unless ``--db URL`` (or
``SKYREG_DATABASE_URL``) names a PostgreSQL server. Errors are printed as one line each, never as
a traceback, and the exit status is non-zero.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from skyreg.cli import (
    archive_commands,
    catalog_commands,
    operator_commands,
    plot_commands,
    server_commands,
    skymap_commands,
    stamps_commands,
)
from skyreg.cli.common import (
    emit,
    format_option,
    friendly_errors,
    open_registry,
    parse_time,
    region_kwargs,
    region_options,
)
from skyreg.cli.output import render
from skyreg.cli.progress import IngestProgress
from skyreg.cli.server_commands import emit_mapping
from skyreg.errors import ConflictError, SkyregError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--db", metavar="URL", envvar="SKYREG_DATABASE_URL",
              help="PostgreSQL URL, e.g. postgresql://user@host/dbname "
                   "[env SKYREG_DATABASE_URL]. Default: the embedded server.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="SKYREG_HOME",
              help="Data directory of the embedded server [env SKYREG_HOME; default: the "
                   "platform's user data dir].")
@click.version_option(package_name="skyreg")
@click.pass_context
def cli(ctx: click.Context, db: str | None, home: Path | None) -> None:
    """skyreg: a spatially indexed metadata registry for survey data.

    \b
    Quick start:
      skyreg demo                              # synthetic survey → embedded DB → queries
      skyreg ingest manifest path/to/survey    # load a survey manifest (format v1)
      skyreg ingest fits -r /data/raw          # FITS headers -> CCDs, visits, file archive
      skyreg skymap register rings hsc_rings_v1   # the full-sky HSC rings sky map
      skyreg datasets calexp --cone 150.1 2.2 0.1 # files whose footprint overlaps a cone
      skyreg stamps --targets objects.csv --band g r i --out stamps.fits
      skyreg catalog load dr1 object.parquet --ra coord_ra --dec coord_dec --id objectId
      skyreg sql                               # psql on the registry
      skyreg ccds --patch rings 9813 40        # CCDs overlapping patch 40 of tract 9813
      skyreg patches --ccd LSSTCam 2027010100042 94
      skyreg ccds --cone 150.1 2.2 0.2 --band r --format csv
      skyreg plot coverage --out coverage.png  # all-sky coverage map (matplotlib)
      skyreg serve                             # web service and sky viewer on :8000

    Answers are exact: a CCD is returned if and only if its polygon overlaps the region.
    """
    ctx.obj = {"db": db, "home": home}


# -- ingest -----------------------------------------------------------------------------------


@cli.group()
def ingest() -> None:
    """Load metadata into the registry."""


@ingest.command("manifest")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--check", is_flag=True,
              help="Run every check (conflicts with the registry included), write nothing, "
                   "and say what a load would insert.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bars (shown on a terminal only).")
@format_option
@click.pass_context
@friendly_errors
def ingest_manifest(ctx: click.Context, directory: Path, check: bool, progress: bool,
                    fmt: str) -> None:
    """Load a survey manifest directory (format version 1).

    All or nothing and idempotent: bad input is refused with one line per problem (file, row,
    field) and nothing is written; loading the same manifest twice changes nothing. With
    --check, nothing is written in any case.
    """
    with open_registry(ctx) as registry, IngestProgress(progress) as bar:
        report = registry.ingest_manifest(directory, check=check, progress=bar)
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo("\n".join(report.lines()))


# -- queries ----------------------------------------------------------------------------------


@cli.command()
@click.option("--patch", nargs=3, metavar="SKYMAP TRACT PATCH", help="Overlapping a patch.")
@click.option("--tract", nargs=2, metavar="SKYMAP TRACT", help="Overlapping a tract.")
@region_options
@click.option("--instrument", multiple=True, help="Only this instrument (repeatable).")
@click.option("--band", multiple=True, help="Only visits in this band (repeatable).")
@click.option("--time", "time_range", nargs=2, metavar="START END",
              help="Only visits overlapping this span: MJD (TAI) or ISO times (UTC).")
@click.option("--dataset-type", metavar="TYPE",
              help="CCD dataset type (raw, calexp, ...) whose files the uri, hdu, size_bytes "
                   "and checksum columns describe.")
@click.pass_context
@friendly_errors
def ccds(ctx: click.Context, patch: tuple[str, str, str] | None,
         tract: tuple[str, str] | None, cone: Any, polygon: Any, point: Any, inner: bool,
         columns: str | None, fmt: str, out: Path | None, instrument: tuple[str, ...],
         band: tuple[str, ...], time_range: tuple[str, str] | None,
         dataset_type: str | None) -> None:
    """CCDs whose footprint overlaps a patch, a tract or a region.

    \b
    Examples:
      skyreg ccds --patch rings 9813 40
      skyreg ccds --tract rings 9813 --band r --band i
      skyreg ccds --cone 150.1 2.2 0.2 --format json
      skyreg ccds --cone 10h00m24s 2d12m 12arcmin
      skyreg ccds --point 150.1 2.2
      skyreg ccds --polygon '150,2 150.3,2 150.3,2.3 150,2.3' --format csv
      skyreg ccds --patch rings 9813 40 --columns band,mjd_start,uri --dataset-type raw
      skyreg ccds --tract rings 9813 --columns band,footprint --format parquet --out t.parquet

    \b
    --columns (besides instrument, visit, detector):
      band physical_filter day_obs seq_num exposure_time mjd_start mjd_end
      boresight_ra boresight_dec rotation_deg   (of the visit)
      footprint_ra footprint_dec, or footprint  (vertices of the CCD, degrees)
      uri hdu size_bytes checksum               (the CCD's file of --dataset-type;
                                                 empty for a CCD without one)
    """
    kwargs = region_kwargs(cone, polygon, point, patch=patch, tract=tract)
    if time_range:
        kwargs["time"] = tuple(parse_time(value) for value in time_range)
    with open_registry(ctx) as registry:
        results = registry.find_ccds(instrument=instrument or None, band=band or None,
                                     inner=inner, columns=columns, dataset_type=dataset_type,
                                     **kwargs)
    emit(results, fmt, out)



def _tile_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by the patch and tract searches."""
    command = click.option("--skymap", multiple=True,
                           help="Only this sky map (repeatable).")(command)
    command = region_options(command)
    return click.option("--ccd", nargs=3, metavar="INSTRUMENT VISIT DETECTOR",
                        help="Overlapping this CCD's footprint.")(command)


def _find_tiles(ctx: click.Context, method: str, ccd: tuple[str, str, str] | None, cone: Any,
                polygon: Any, point: Any, inner: bool, columns: str | None, fmt: str,
                out: Path | None, skymap: tuple[str, ...]) -> None:
    kwargs = region_kwargs(cone, polygon, point, ccd=ccd)
    with open_registry(ctx) as registry:
        results = getattr(registry, method)(skymap=skymap or None, inner=inner,
                                            columns=columns, **kwargs)
    emit(results, fmt, out)


@cli.command()
@_tile_options
@click.pass_context
@friendly_errors
def patches(ctx: click.Context, ccd: tuple[str, str, str] | None, cone: Any, polygon: Any,
            point: Any, inner: bool, columns: str | None, fmt: str, out: Path | None,
            skymap: tuple[str, ...]) -> None:
    """Patches whose outer polygon (inner with --inner) overlaps a CCD or a region.

    \b
    Examples:
      skyreg patches --ccd LSSTCam 2027010100042 94
      skyreg patches --cone 150.1 2.2 0.3 --skymap rings
      skyreg patches --cone 150.1 2.2 0.3 --columns cell_x,cell_y,outer --format votable

    \b
    --columns (besides skymap, tract, patch):
      cell_x cell_y inner_bbox outer_bbox        (grid cell, boxes in tract pixels)
      outer_ra outer_dec inner_ra inner_dec, or outer, inner   (vertices, degrees)
    """
    _find_tiles(ctx, "find_patches", ccd, cone, polygon, point, inner, columns, fmt, out,
                skymap)


@cli.command()
@_tile_options
@click.pass_context
@friendly_errors
def tracts(ctx: click.Context, ccd: tuple[str, str, str] | None, cone: Any, polygon: Any,
           point: Any, inner: bool, columns: str | None, fmt: str, out: Path | None,
           skymap: tuple[str, ...]) -> None:
    """Tracts whose outer polygon (inner with --inner) overlaps a CCD or a region.

    \b
    Examples:
      skyreg tracts --ccd LSSTCam 2027010100042 94
      skyreg tracts --point 150.1 2.2 --inner
      skyreg tracts --cone 150.1 2.2 1 --columns ra_center,dec_center --format fits --out t.fits

    \b
    --columns (besides skymap, tract):
      ra_center dec_center ring
      outer_ra outer_dec inner_ra inner_dec, or outer, inner   (vertices, degrees)
    """
    _find_tiles(ctx, "find_tracts", ccd, cone, polygon, point, inner, columns, fmt, out,
                skymap)


# -- database and server ------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Schema management."""


@db.command("upgrade")
@click.option("--pixelization", default=None, metavar="SCHEME",
              help="For a new registry only: htm9 (default), htm10, healpix10, ...")
@click.pass_context
@friendly_errors
def db_upgrade(ctx: click.Context, pixelization: str | None) -> None:
    """Create the schema, or migrate it to this version of skyreg."""
    from skyreg.db.engine import open_engine
    from skyreg.db.migrate import head_revision, upgrade
    from skyreg.registry import parse_pixelization

    options = ctx.find_root().obj
    engine = open_engine(options["db"], options["home"])
    try:
        scheme = upgrade(engine, parse_pixelization(pixelization) if pixelization else None)
    finally:
        engine.dispose()
    click.echo(f"schema at revision {head_revision()}, pixelization {scheme}")


@db.command("status")
@format_option
@click.pass_context
@friendly_errors
def db_status(ctx: click.Context, fmt: str) -> None:
    """Where the registry is, its schema revision, pixelization and row counts."""
    from skyreg.db.migrate import current_revision, server_version

    with open_registry(ctx) as registry:
        with registry.engine.connect() as connection:
            info: dict[str, Any] = {
                "url": registry.engine.url.render_as_string(hide_password=True),
                "server_version": server_version(connection),
                "revision": current_revision(connection),
                "pixelization": str(registry.pixel_scheme),
            }
        info.update(registry.counts())
    emit_mapping(info, fmt)


# -- web service ------------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes (each with its own database connections).")
@click.option("--base-url", metavar="URL",
              help="Public URL of the service, for links in answers (default: the URL each "
                   "request came in on, X-Forwarded-* headers of trusted proxies included).")
@click.option("--read-role", default="skyreg_reader", show_default=True, metavar="ROLE",
              help="Role to SET on every connection when it exists and the login may use it "
                   "('' for none). Transactions are read-only either way.")
@click.option("--max-rows", default=10_000, show_default=True, type=click.IntRange(1),
              help="Most rows in one answer (MAXREC and page size are capped to it).")
@click.option("--max-area", default=100.0, show_default=True, type=click.FloatRange(0, None,
              min_open=True), help="Largest search region, square degrees.")
@click.option("--max-cutout", default=4096, show_default=True, type=click.IntRange(1),
              help="Largest cutout, pixels along each axis.")
@click.option("--max-cutout-regions", default=50, show_default=True, type=click.IntRange(1),
              help="Most spatial filters (CIRCLE/POLYGON/POS) in one SODA request.")
@click.option("--max-request-pixels", default=64 * 1024 * 1024, show_default=True,
              type=click.IntRange(1), help="Most pixels (all cutouts or stamps, all planes) "
              "in one cutout or stamp request.")
@click.option("--max-stamp-objects", default=10_000, show_default=True,
              type=click.IntRange(1), help="Most objects in one POST /api/v1/stamps request.")
@click.option("--max-stamps", default=100_000, show_default=True, type=click.IntRange(1),
              help="Most stamps (objects x coadds) in one POST /api/v1/stamps request.")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0.001),
              help="Time limit of each SQL statement, seconds.")
@click.option("--cors-origin", multiple=True, metavar="ORIGIN",
              help="Allow browser pages from this origin (repeatable; '*' for any).")
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True,
              help="Proxies whose X-Forwarded-* headers are trusted.")
@click.option("--no-access-log", is_flag=True, help="Do not log one line per request.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
@friendly_errors
def serve(ctx: click.Context, host: str, port: int, workers: int, base_url: str | None,
          read_role: str, max_rows: int, max_area: float, max_cutout: int,
          max_cutout_regions: int, max_request_pixels: int, max_stamp_objects: int,
          max_stamps: int, timeout: float,
          cors_origin: tuple[str, ...], forwarded_allow_ips: str, no_access_log: bool,
          log_level: str) -> None:
    """Run the web service: JSON API, IVOA SIA 2.0, DataLink and SODA (docs/service.md).

    \b
    Examples:
      skyreg serve                                  # http://127.0.0.1:8000/docs
      skyreg serve --workers 4 --base-url https://survey.example.org/registry
      skyreg --db postgresql://ops@dbhost/survey serve --host 0.0.0.0
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise SkyregError(f"the web service needs its extra packages ({err.name} is "
                          "missing): pip install 'skyreg[service]'") from None
    from skyreg.service.server import serve as run
    from skyreg.service.settings import ServiceSettings

    options = ctx.find_root().obj
    # Create or check the schema with the login's own rights (the service itself only
    # reads); with the embedded server this also keeps it running while we serve.
    with open_registry(ctx):
        pass
    settings = ServiceSettings(
        database_url=options["db"], home=str(options["home"]) if options["home"] else None,
        base_url=base_url, read_role=read_role or None, max_rows=max_rows,
        default_rows=min(1000, max_rows), max_area_deg2=max_area,
        max_cutout_pixels=max_cutout, max_cutout_regions=max_cutout_regions,
        max_request_pixels=max_request_pixels, max_stamp_objects=max_stamp_objects,
        max_stamps=max_stamps, query_timeout_s=timeout, cors_origins=cors_origin,
        log_requests=not no_access_log)
    run(settings, host=host, port=port, workers=workers,
        forwarded_allow_ips=forwarded_allow_ips, log_level=log_level)


# -- demo -------------------------------------------------------------------------------------


def demo_spec(visits: int = 100, seed: int = 1) -> Any:
    """The demo's survey: the README's examples are written for it (and tested on it).

    A compact 8°x6° field around COSMOS, deep enough that every example finds something;
    bands g, r, i observed in one night (2027-01-01, MJD ~61407); CCD images registered under
    synthetic ``s3://skyreg-demo/...`` URIs, so that ``skyreg datasets raw`` has files to list.
    """
    from skyreg.synthetic import SurveySpec

    return SurveySpec(n_visits=visits, seed=seed, width_deg=8.0, height_deg=6.0,
                      bands=("g", "r", "i"),
                      file_uri_template="s3://skyreg-demo/raw/{instrument}/{visit}/{detector}.fits")


@cli.command()
@click.option("--visits", default=100, show_default=True, help="Visits in the synthetic survey.")
@click.option("--seed", default=1, show_default=True)
@click.pass_context
@friendly_errors
def demo(ctx: click.Context, visits: int, seed: int) -> None:
    """Generate a small synthetic survey, ingest it and answer example queries.

    The survey (LSSTCam-like focal plane, rings sky map around COSMOS, bands g, r, i) is
    written to <home>/demo-survey; the registry is the one --db/--home point at.
    """
    from skyreg.db.embedded import default_home
    from skyreg.synthetic import generate_survey

    options = ctx.find_root().obj
    home = Path(options["home"] or default_home())
    target = home / "demo-survey"
    spec = demo_spec(visits, seed)
    summary = generate_survey(target, spec)
    click.echo(f"generated {summary.n_visits} visits, {summary.n_ccds:,} CCDs, "
               f"{summary.n_tracts} tracts, {summary.n_patches:,} patches in {target}")
    with open_registry(ctx) as registry, IngestProgress(True) as bar:
        try:
            report = registry.ingest_manifest(target, progress=bar)
        except ConflictError as err:
            raise ConflictError(f"{err}\nthis registry already holds another demo survey (other "
                                "--visits/--seed, or an older skyreg's); give the demo a "
                                "fresh --home or --db") from err
        click.echo("\n".join(report.lines()))
        if options["db"] is None:
            click.echo(f"\nregistry: the embedded PostgreSQL server, data in {home} "
                       "('skyreg server status' shows its socket)")
        else:
            click.echo("\nregistry: "
                       f"{registry.engine.url.render_as_string(hide_password=True)}")
        center = (spec.center_ra, spec.center_dec)
        _demo_query(f"CCDs containing the point RA={center[0]}, Dec={center[1]}:",
                    f"skyreg ccds --point {center[0]} {center[1]}",
                    registry.find_ccds(point=center))
        near = registry.find_ccds(cone=(*center, 1.0))
        if not near:
            click.echo("no CCD within 1 degree of the survey centre; try more --visits")
            return
        ccd = near[0]
        found = registry.find_patches(ccd=ccd)
        _demo_query(f"Patches overlapping CCD {tuple(ccd)}:",
                    f"skyreg patches --ccd {ccd.instrument} {ccd.visit} {ccd.detector}", found)
        if found:
            patch = found[0]
            _demo_query(f"CCDs overlapping patch {tuple(patch)} (coadd inputs):",
                        f"skyreg ccds --patch {patch.skymap} {patch.tract} {patch.patch}",
                        registry.find_ccds(patch=patch))
        _demo_query("CCDs within 0.2 degrees of the survey centre, bands g and r:",
                    f"skyreg ccds --cone {center[0]} {center[1]} 0.2 --band g --band r",
                    registry.find_ccds(cone=(*center, 0.2), band=("g", "r")))
        _demo_query("CCDs overlapping patch 40 of tract 9813 (COSMOS):",
                    "skyreg ccds --patch rings 9813 40",
                    registry.find_ccds(patch=("rings", 9813, 40)))
    db = "" if options["db"] is None else " --db URL"
    click.echo("\nTry next (every command has --help with examples):\n"
               f"  skyreg{db} ccds --tract rings 9813 --band r --format csv\n"
               f"  skyreg{db} ccds --cone 10:00:24 2:12:00 12arcmin --time 2027-01-01T23:00 "
               "2027-01-02T03:00\n"
               f"  skyreg{db} datasets raw --cone 150.1 2.2 0.1 --band r\n"
               f"  skyreg{db} db status\n"
               f"  skyreg{db} sql                 # psql on the registry")


def _demo_query(title: str, command: str, results: Any) -> None:
    click.echo(f"\n{title}\n  $ {command}")
    shown = results[:10]
    click.echo(render(results.columns, shown.records(), "table", total=len(results)))


ingest.add_command(archive_commands.ingest_fits)
cli.add_command(archive_commands.datasets)
cli.add_command(archive_commands.dataset_type)
cli.add_command(skymap_commands.skymap)
cli.add_command(catalog_commands.catalog)
cli.add_command(stamps_commands.stamps_command)
cli.add_command(plot_commands.plot)
cli.add_command(server_commands.server)
cli.add_command(operator_commands.sql_command)
db.add_command(operator_commands.roles_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="skyreg")


if __name__ == "__main__":
    main()
