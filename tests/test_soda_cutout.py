"""The SODA cutout core: one file, one region, FITS bytes with every plane and an exact WCS."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS, Sip
from hypothesis import given, settings
from hypothesis import strategies as st

from skyreg.cutouts import (
    CutoutTooLarge,
    FileReadError,
    RegionError,
    parse_region,
    soda_cutout,
)
from skyreg.skymaps import build_skymap, patch_wcs
from stamp_builder import STAMP_SKYMAP, decode, pixel_id, write_coadd

GEOMETRY = build_skymap(STAMP_SKYMAP)


def _coadd(tmp_path: Path, compressed: bool, tract: int = 0, patch: int = 0) -> Path:
    row = GEOMETRY.patch_row(tract, patch)
    p = GEOMETRY.patches
    shape = (int(p.outer_y1[row] - p.outer_y0[row]), int(p.outer_x1[row] - p.outer_x0[row]))
    return write_coadd(tmp_path / f"c{int(compressed)}.fits", patch_wcs(GEOMETRY, tract, patch),
                       shape, tract, (int(p.outer_x0[row]), int(p.outer_y0[row])), "g",
                       compressed)


def _inside(region: object, wcs: WCS, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    gx, gy = np.meshgrid(np.arange(w), np.arange(h))
    ra, dec = wcs.all_pix2world(gx.ravel(), gy.ravel(), 0)
    r, d = np.radians(ra), np.radians(dec)
    return np.asarray(region.contains(np.cos(d) * np.cos(r), np.cos(d) * np.sin(r),  # type: ignore[attr-defined]
                                      np.sin(d))).reshape(h, w)


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("shape", ["CIRCLE 359.98 -0.1 0.03", "POLYGON 0.05 -0.15 359.95 -0.15 "
                                   "359.95 -0.05", "RANGE 359.95 0.1 -1 -0.1",
                                   "CIRCLE 359.9 0.0 5"])
def test_cutout_is_the_bounding_rectangle_of_the_region(tmp_path: Path, compressed: bool,
                                                        shape: str) -> None:
    path = _coadd(tmp_path, compressed)
    data = soda_cutout(path, 1, shape)
    assert data is not None
    source = fits.open(path)
    full_wcs = WCS(source[1].header)
    full_shape = (source[1].header.get("ZNAXIS2") or source[1].header["NAXIS2"],
                  source[1].header.get("ZNAXIS1") or source[1].header["NAXIS1"])
    inside = _inside(parse_region(shape), full_wcs, full_shape)
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    with fits.open(io.BytesIO(data)) as hdus:
        hdus.verify("exception")
        assert [h.name for h in hdus[1:]] == ["IMAGE", "MASK", "VARIANCE"]
        for hdu in hdus[1:]:
            assert hdu.header["SRCX0"] == cols[0] and hdu.header["SRCY0"] == rows[0]
            assert hdu.data.shape == (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
        planes = {h.name.lower(): h.data for h in hdus[1:]}
        ra, dec, ident = decode(planes, compressed)
        wcs = WCS(hdus[1].header)
        h, w = ident.shape
        gx, gy = np.meshgrid(np.arange(w), np.arange(h))
        wra, wdec = wcs.all_pix2world(gx, gy, 0)
        assert np.abs((ra - wra + 180) % 360 - 180).max() < 1e-4
        assert np.abs(dec - wdec).max() < 1e-4
        row = GEOMETRY.patch_row(0, 0)
        assert np.array_equal(ident, pixel_id(0, GEOMETRY.patches.outer_x0[row] + cols[0] + gx,
                                               GEOMETRY.patches.outer_y0[row] + rows[0] + gy))


def test_no_pixel_inside_gives_none_and_bad_input_raises(tmp_path: Path) -> None:
    path = _coadd(tmp_path, False)
    assert soda_cutout(path, 1, "CIRCLE 120 30 0.1") is None
    assert soda_cutout(path, 1, "CIRCLE 359.9 0.0 0.0001") is not None  # one pixel centre
    with pytest.raises(FileReadError, match="file not found"):
        soda_cutout(tmp_path / "nonesuch.fits", 1, "CIRCLE 0 0 1")
    with pytest.raises(FileReadError, match="not a 2-D image"):
        soda_cutout(path, 0, "CIRCLE 0 0 1")


@pytest.mark.parametrize("compressed", [False, True])
def test_several_regions_give_one_group_of_planes_each(tmp_path: Path, compressed: bool) -> None:
    path = _coadd(tmp_path, compressed)
    regions = ["CIRCLE 359.98 -0.1 0.03", "CIRCLE 120 30 0.1",
               "POLYGON 0.05 -0.15 359.95 -0.15 359.95 -0.05"]
    data = soda_cutout(path, 1, regions)
    assert data is not None
    with fits.open(io.BytesIO(data)) as hdus:
        hdus.verify("exception")
        primary = hdus[0].header
        assert primary["NPOS"] == 3 and primary["NOPIX2"] is True and "POS2" not in primary
        assert primary["POS3"] == regions[2]
        assert [(h.name, h.ver) for h in hdus[1:]] == [
            (name, k) for k in (1, 3) for name in ("IMAGE", "MASK", "VARIANCE")]
        for k in (1, 3):
            # Each group is what the region alone gives, pixel for pixel.
            with fits.open(io.BytesIO(soda_cutout(path, 1, regions[k - 1]) or b"")) as alone:
                for name in ("IMAGE", "MASK", "VARIANCE"):
                    assert np.array_equal(hdus[name, k].data, alone[name].data)
                    assert hdus[name, k].header["POS"] == regions[k - 1]
                    assert hdus[name, k].header["SRCX0"] == alone[name].header["SRCX0"]
    assert soda_cutout(path, 1, ["CIRCLE 120 30 0.1", "CIRCLE 100 30 0.1"]) is None


def test_size_limits_are_checked_before_reading(tmp_path: Path) -> None:
    path = _coadd(tmp_path, False)
    whole = "CIRCLE 359.9 0.0 5"  # holds the whole 58 x 58 image
    assert soda_cutout(path, 1, whole, max_side=58) is not None
    with pytest.raises(CutoutTooLarge, match="58 x 58 pixels; at most 57"):
        soda_cutout(path, 1, whole, max_side=57)
    with pytest.raises(CutoutTooLarge, match="at most 20000 per request"):
        soda_cutout(path, 1, [whole, whole], max_pixels=20_000)  # 2 x 3 planes x 58 x 58
    with pytest.raises(RegionError, match="POS 2: CIRCLE takes 3 numbers"):
        soda_cutout(path, 1, [whole, "CIRCLE 1 2"])


@pytest.mark.parametrize("shape, message", [
    ("CIRCLE 1 2", "3 numbers"), ("CIRCLE 1 2 0", "radius"), ("CIRCLE 1 95 1", "dec 95"),
    ("CIRCLE a 2 1", "'a' is not a number"), ("CIRCLE nan 2 1", "not a finite"),
    ("POLYGON 0 0 1 0", "at least 3"), ("POLYGON 0 0 1 0 1 1 0 1 0.5 0.5", "convex"),
    ("RANGE 0 1 2", "4 numbers"), ("RANGE 0 1 5 2", "above dec_max"), ("BOX 0 0 1 1", "BOX"),
    ("", "empty"),
])
def test_region_strings_are_validated(shape: str, message: str) -> None:
    with pytest.raises(RegionError, match=message):
        parse_region(shape)


def test_range_forms() -> None:
    whole = parse_region("RANGE -Inf +Inf -Inf +Inf")
    assert whole.getLon().isFull() and whole.getLat().getA().asDegrees() == -90.0
    wrap = parse_region("RANGE 350 10 -5 5")
    r = np.radians([355.0, 5.0, 180.0])
    inside = wrap.contains(np.cos(r), np.sin(r), np.zeros(3))
    assert list(inside) == [True, True, False]


@given(st.floats(-720, 720), st.floats(-90, 90), st.floats(1e-6, 180))
def test_circles_parse_to_what_they_say(ra: float, dec: float, radius: float) -> None:
    circle = parse_region(f"CIRCLE {ra!r} {dec!r} {radius!r}")
    assert abs(circle.getOpeningAngle().asDegrees() - radius) < 1e-9 * max(1.0, radius)


@given(st.text(max_size=40))
def test_any_string_parses_or_raises_a_region_error(text: str) -> None:
    with contextlib.suppress(RegionError):
        parse_region(text)


def test_sip_distortion_is_kept_in_the_cutout_wcs(tmp_path: Path) -> None:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    wcs.wcs.crval = [30.0, 10.0]
    wcs.wcs.crpix = [60.0, 50.0]
    wcs.wcs.cd = [[-5e-4, 0.0], [0.0, 5e-4]]
    a, b = np.zeros((4, 4)), np.zeros((4, 4))
    a[2, 0], a[0, 3], b[1, 1] = 3e-5, 1e-6, -2e-5
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    image = np.arange(100 * 120, dtype=np.float32).reshape(100, 120)
    path = tmp_path / "sip.fits"
    fits.HDUList([fits.PrimaryHDU(image, header=wcs.to_header(relax=True))]).writeto(path)
    data = soda_cutout(path, 0, "CIRCLE 30.01 10.005 0.01")
    assert data is not None
    with fits.open(io.BytesIO(data)) as hdus:
        cut = WCS(hdus[1].header)
        assert cut.sip is not None
        x0, y0 = hdus[1].header["SRCX0"], hdus[1].header["SRCY0"]
        pixels = np.array([[0.0, 0.0], [5.0, 9.0], [17.0, 3.0]])
        assert np.allclose(cut.all_pix2world(pixels, 0),
                           wcs.all_pix2world(pixels + np.array([x0, y0]), 0), atol=1e-11, rtol=0)
        assert np.array_equal(hdus[1].data, image[y0:y0 + hdus[1].data.shape[0],
                                                  x0:x0 + hdus[1].data.shape[1]])


def test_a_gzipped_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    import gzip

    path = _coadd(tmp_path, False)
    zipped = tmp_path / "c.fits.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(FileReadError, match=r"compressed whole \(fits.gz\)"):
        soda_cutout(zipped, 1, "CIRCLE 359.9 0.0 0.05")


@settings(max_examples=60, deadline=None)
@given(st.floats(359.7, 360.1), st.floats(-0.3, 0.1), st.floats(0.001, 0.3),
       st.sampled_from(["CIRCLE", "POLYGON"]))
def test_rectangles_equal_the_brute_force_mask(ra: float, dec: float, size: float,
                                               kind: str) -> None:
    """The edge-shrinking search gives the bounding rectangle of every selected pixel centre,
    also for regions beside, across or around the image."""
    from skyreg.cutouts.soda import _region_rectangle

    wcs = patch_wcs(GEOMETRY, 0, 0)
    row = GEOMETRY.patch_row(0, 0)
    p = GEOMETRY.patches
    shape = (int(p.outer_y1[row] - p.outer_y0[row]), int(p.outer_x1[row] - p.outer_x0[row]))
    text = (f"CIRCLE {ra % 360} {dec} {size}" if kind == "CIRCLE" else
            f"POLYGON {ra % 360} {dec} {(ra + size) % 360} {dec} {ra % 360} {dec + size}")
    region = parse_region(text)
    inside = _inside(region, wcs, shape)
    found = _region_rectangle(region, wcs, shape[1], shape[0])
    if not inside.any():
        assert found is None
        return
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    assert found == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
