"""Command line: ``python -m skyreg.synthetic OUT --visits N --seed S``.

A thin wrapper so the benchmarks can produce large manifests without importing the package in
their own process; it prints the counts and the generation time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import SkyregError
from .survey import SurveySpec, generate_survey


def _parser() -> argparse.ArgumentParser:
    """Arguments map one-to-one onto :class:`SurveySpec` fields."""
    defaults = SurveySpec()
    p = argparse.ArgumentParser(
        prog="python -m skyreg.synthetic",
        description="Write a synthetic LSSTCam-like survey as a survey manifest directory.",
    )
    p.add_argument("out", help="output directory (created if missing; files are overwritten)")
    p.add_argument("--visits", type=int, default=defaults.n_visits, help="number of visits")
    p.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    p.add_argument("--ra", type=float, default=defaults.center_ra, help="area centre RA (deg)")
    p.add_argument("--dec", type=float, default=defaults.center_dec, help="area centre Dec (deg)")
    p.add_argument("--width", type=float, default=defaults.width_deg, help="area width (deg)")
    p.add_argument("--height", type=float, default=defaults.height_deg, help="area height (deg)")
    p.add_argument("--instrument", default=defaults.instrument, help="instrument name")
    p.add_argument("--skymap", default=defaults.skymap, help="sky map name")
    p.add_argument(
        "--bands",
        default=",".join(defaults.bands),
        help="comma-separated bands (default: %(default)s)",
    )
    p.add_argument(
        "--first-day-obs", type=int, default=defaults.first_day_obs, help="first night, YYYYMMDD"
    )
    p.add_argument(
        "--file-uri-template", default=None,
        help="give each CCD a file URI, e.g. 's3://bucket/raw/{instrument}/{visit}/{detector}"
             ".fits' (optional 'uri' column, registered in the file archive)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, generate, report; exit status 2 on a bad specification."""
    args = _parser().parse_args(argv)
    try:
        spec = SurveySpec(
            n_visits=args.visits,
            seed=args.seed,
            center_ra=args.ra,
            center_dec=args.dec,
            width_deg=args.width,
            height_deg=args.height,
            instrument=args.instrument,
            skymap=args.skymap,
            bands=tuple(b for b in args.bands.split(",") if b),
            first_day_obs=args.first_day_obs,
            file_uri_template=args.file_uri_template,
        )
        summary = generate_survey(args.out, spec)
    except SkyregError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {summary.out_dir}: {summary.n_visits} visits, {summary.n_ccds} CCDs, "
        f"{summary.n_tracts} tracts, {summary.n_patches} patches "
        f"in {summary.seconds:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
