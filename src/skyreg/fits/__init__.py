"""FITS header scanning: instrument profiles, WCS footprints and per-HDU CCD records."""

from skyreg.fits.profiles import InstrumentProfile, ProfileError, load_profile, resolve_profile
from skyreg.fits.scan import (
    CoaddRecord,
    FileScan,
    HduProblem,
    HduRecord,
    WcsSummary,
    scan_coadd_file,
    scan_file,
)
from skyreg.fits.wcs_footprint import FootprintError, footprint_from_wcs

__all__ = [
    "CoaddRecord",
    "FileScan",
    "FootprintError",
    "HduProblem",
    "HduRecord",
    "InstrumentProfile",
    "ProfileError",
    "WcsSummary",
    "footprint_from_wcs",
    "load_profile",
    "resolve_profile",
    "scan_coadd_file",
    "scan_file",
]
