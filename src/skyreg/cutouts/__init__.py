"""Postage stamps and cutouts of registered coadds.

* :func:`plan_stamps` / :func:`run_plan` -- the batch path behind
  :meth:`skyreg.Registry.postage_stamps`: a work plan from the registry (exact patch lookups),
  then one pass per file (memory-mapped or tile-subset reads), locally or on Dask;
* :func:`soda_cutout` / :func:`soda_cuts` -- one file, one or more regions, FITS bytes or
  arrays: the core of the SODA endpoint;
* :class:`ScratchCache` -- local copies of coadds, LRU under a size limit, safe across
  processes.

This package reads the registry through :mod:`skyreg.cutouts.lookup` only.
"""

from skyreg.cutouts.errors import (
    FileReadError,
    RegionError,
    StampError,
    StampRequestError,
    TargetError,
)
from skyreg.cutouts.plan import CoaddId, FileTask, StampPlan, make_plan
from skyreg.cutouts.regions import PixelMask, parse_region
from skyreg.cutouts.results import FileProblem, Stamp, StampResult
from skyreg.cutouts.run import execute, prefetch
from skyreg.cutouts.scratch import ScratchCache, parse_size
from skyreg.cutouts.soda import CutoutTooLarge, SodaCut, SodaCuts, soda_cutout, soda_cuts
from skyreg.cutouts.targets import Targets, make_targets

__all__ = [
    "CoaddId",
    "CutoutTooLarge",
    "FileProblem",
    "FileReadError",
    "FileTask",
    "PixelMask",
    "RegionError",
    "ScratchCache",
    "SodaCut",
    "SodaCuts",
    "Stamp",
    "StampError",
    "StampPlan",
    "StampRequestError",
    "StampResult",
    "TargetError",
    "Targets",
    "execute",
    "make_plan",
    "make_targets",
    "parse_region",
    "parse_size",
    "prefetch",
    "soda_cutout",
    "soda_cuts",
]
