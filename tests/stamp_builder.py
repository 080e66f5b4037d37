"""Synthetic coadds for the stamp tests: pixels that say where they are on the sky.

Every coadd is written on its patch's registered grid (``Registry.patch_wcs``) with three
planes, as Rubin's deepCoadd has them: ``IMAGE`` holds each pixel centre's RA, ``VARIANCE``
its Dec (float32, degrees) and ``MASK`` its tract pixel as ``tract * 10**8 + y * 10**4 + x``
(int32). A stamp's pixels can thus be checked against the position its WCS claims for them,
and against the exact source pixel. Tile-compressed (RICE) coadds store RA and Dec in
micro-degrees as int32, which RICE keeps exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from skyreg import Registry
from skyreg.skymaps import DiscreteDefinition, build_skymap

#: Three tracts of 2 x 2 patches (50-pixel inner boxes, 8-pixel borders, 20"/pixel): tract 0
#: straddles RA 0, tract 1 overlaps it, tract 2 holds the north pole.
STAMP_SKYMAP = DiscreteDefinition(ra_deg=(359.9, 0.3, 45.0), dec_deg=(0.0, 0.0, 89.9),
                                  radius_deg=0.25, pixel_scale_arcsec=20.0,
                                  patch_inner_pixels=50, patch_border_pixels=8,
                                  tract_overlap_deg=0.01)


def encoded_planes(wcs: WCS, shape: tuple[int, int], tract: int, x0: int, y0: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ra, dec, tract pixel id) of every pixel of an image with this WCS and shape."""
    ny, nx = shape
    gx, gy = np.meshgrid(np.arange(nx, dtype=np.float64), np.arange(ny, dtype=np.float64))
    ra, dec = wcs.all_pix2world(gx, gy, 0)
    ident = tract * 10**8 + (gy.astype(np.int64) + y0) * 10**4 + gx.astype(np.int64) + x0
    return np.mod(ra, 360.0), dec, ident.astype(np.int32)


def pixel_id(tract: int, x: int, y: int) -> int:
    return tract * 10**8 + y * 10**4 + x


def write_coadd(path: Path, wcs: WCS, shape: tuple[int, int], tract: int,
                origin: tuple[int, int], band: str, compressed: bool = False,
                tile: tuple[int, int] = (16, 16)) -> Path:
    """A coadd file: empty primary, then IMAGE, MASK, VARIANCE (RICE-compressed if asked)."""
    ra, dec, ident = encoded_planes(wcs, shape, tract, *origin)
    header = wcs.to_header()
    header["FILTER"] = band
    hdus: list[fits.hdu.base.ExtensionHDU] = []
    if compressed:
        planes = [("IMAGE", np.round(ra * 1e6).astype(np.int32)), ("MASK", ident),
                  ("VARIANCE", np.round(dec * 1e6).astype(np.int32))]
        for name, data in planes:
            hdus.append(fits.CompImageHDU(data, header=header, name=name,
                                          compression_type="RICE_1", tile_shape=tile))
    else:
        planes = [("IMAGE", ra.astype(np.float32)), ("MASK", ident),
                  ("VARIANCE", dec.astype(np.float32))]
        hdus = [fits.ImageHDU(data, header=header, name=name) for name, data in planes]
    fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(path, overwrite=True)
    return path


def decode(stamp_planes: dict[str, np.ndarray], compressed: bool
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ra, dec, pixel id) arrays of a stamp's planes."""
    scale = 1e-6 if compressed else 1.0
    return (stamp_planes["image"].astype(np.float64) * scale,
            stamp_planes["variance"].astype(np.float64) * scale, stamp_planes["mask"])


def populate(reg: Registry, directory: Path, *, bands: tuple[str, ...] = ("g", "r"),
             rice_type: str | None = "riceCoadd", skymap: str = "stamps") -> dict[str, Path]:
    """Register STAMP_SKYMAP, write a coadd of every patch and band, ingest them.

    Uncompressed coadds are ``deepCoadd``; with ``rice_type`` the same patches are written
    RICE-compressed as that dataset type too. Returns {file name: path}.
    """
    reg.register_skymap(skymap, STAMP_SKYMAP)
    geometry = build_skymap(STAMP_SKYMAP)
    written: dict[str, Path] = {}
    kinds = [("deepCoadd", False)] + ([(rice_type, True)] if rice_type else [])
    for kind, compressed in kinds:
        folder = directory / kind
        folder.mkdir(parents=True, exist_ok=True)
        for tract, patch, ox, oy in zip(geometry.patches.tract.tolist(),
                                         geometry.patches.patch.tolist(),
                                         geometry.patches.outer_x0.tolist(),
                                         geometry.patches.outer_y0.tolist(), strict=True):
            wcs, shape = reg.patch_wcs(skymap, tract, patch)
            for band in bands:
                name = f"{kind}_{tract}_{patch}_{band}.fits"
                written[name] = write_coadd(folder / name, wcs, shape, tract, (ox, oy), band,
                                            compressed)
        report = reg.ingest_fits(folder, recursive=True, dataset_type=kind, skymap=skymap,
                                 jobs=1)
        assert report.ok, report.problem_lines()
    return written
