"""Footprints must contain every pixel of the image (edges included) and stay tight."""

from __future__ import annotations

import warnings
from pathlib import Path

import astropy.wcs
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st
from lsst.sphgeom import ConvexPolygon, UnitVector3d

from fits_builder import ccd_wcs_cards, folding_sip
from skyreg.fits.wcs_footprint import FootprintError, footprint_from_wcs
from skyreg.geometry.polygons import polygon_from_vertices, unit_vectors

DATA = Path(astropy.wcs.__file__).parent / "tests" / "data"


def _pixel_grid(width: int, height: int) -> np.ndarray:
    """Every pixel centre and pixel-edge position for small images; for big ones a fine grid
    plus every edge pixel (centres and outer edges) on all four sides."""
    if width * height <= 300_000:
        xs, ys = np.arange(0.5, width + 0.51, 0.5), np.arange(0.5, height + 0.51, 0.5)
    else:
        xs = np.unique(np.concatenate([np.linspace(0.5, width + 0.5, 300), [1.0, width]]))
        ys = np.unique(np.concatenate([np.linspace(0.5, height + 0.5, 300), [1.0, height]]))
    gx, gy = np.meshgrid(xs, ys)
    points = [np.stack([gx.ravel(), gy.ravel()], axis=1)]
    for x in (0.5, 1.0, width, width + 0.5):
        y = np.arange(0.5, height + 0.51, 0.5)
        points.append(np.stack([np.full_like(y, x), y], axis=1))
    for y in (0.5, 1.0, height, height + 0.5):
        x = np.arange(0.5, width + 0.51, 0.5)
        points.append(np.stack([x, np.full_like(x, y)], axis=1))
    return np.concatenate(points)


def _assert_contains(wcs: WCS, width: int, height: int) -> ConvexPolygon:
    ra, dec = footprint_from_wcs(wcs, width, height)
    assert np.all((ra >= 0) & (ra < 360))
    polygon = polygon_from_vertices(ra.tolist(), dec.tolist())
    world = wcs.all_pix2world(_pixel_grid(width, height), 1)
    xyz = unit_vectors(world[:, wcs.wcs.lng], world[:, wcs.wcs.lat])
    inside = polygon.contains(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    assert inside.all(), f"{(~inside).sum()} of {len(inside)} pixel positions outside"
    return polygon


def _area_ratio(wcs: WCS, width: int, height: int) -> float:
    """Polygon area over image area, both in the gnomonic plane around the image centre."""
    ra, dec = footprint_from_wcs(wcs, width, height)
    n = 400
    t = np.arange(n) / n
    x0, x1, y0, y1 = 0.5, width + 0.5, 0.5, height + 0.5
    xs = np.concatenate([x0 + t * (x1 - x0), np.full(n, x1), x1 - t * (x1 - x0), np.full(n, x0)])
    ys = np.concatenate([np.full(n, y0), y0 + t * (y1 - y0), np.full(n, y1), y1 - t * (y1 - y0)])
    world = wcs.all_pix2world(np.stack([xs, ys], axis=1), 1)
    centre = wcs.all_pix2world([[(width + 1) / 2, (height + 1) / 2]], 1)[0]
    c = unit_vectors(centre[0], centre[1])
    e = np.cross([0.0, 0.0, 1.0], c) if abs(c[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
    e /= np.linalg.norm(e)
    nv = np.cross(c, e)

    def area(r: np.ndarray, d: np.ndarray) -> float:
        v = unit_vectors(r, d)
        x, y = v @ e / (v @ c), v @ nv / (v @ c)
        return abs(0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)))

    return area(ra, dec) / area(world[:, 0], world[:, 1])


def _load(name: str, hdu: int = 0) -> tuple[fits.Header, fits.HDUList | None]:
    path = DATA / name
    if name.endswith(".hdr"):
        return fits.Header.fromstring(path.read_bytes().decode("latin-1")), None
    hdul = fits.open(path)
    return hdul[hdu].header, hdul


# (file, hdu, width, height): None sizes come from the header; files whose data were
# stripped for the test suite get the real detector size (SIZAXISn) or twice CRPIX.
REAL = [
    ("irac_sip.hdr", 0, None, None),
    ("siponly.hdr", 0, None, None),
    ("tpvonly.hdr", 0, None, None),
    ("dss.14.29.56-62.41.05.fits.gz", 0, None, None),
    ("sip.fits", 0, "crpix", "crpix"),
    ("sip2.fits", 0, "crpix", "crpix"),
    ("j94f05bgq_flt.fits", 1, 4096, 2048),
    ("j94f05bgq_flt.fits", 4, 4096, 2048),
    ("ie6d07ujq_wcs.fits", 0, "crpix", "crpix"),
]


@pytest.mark.parametrize(("name", "hdu", "width", "height"), REAL)
def test_real_headers_contain_every_pixel(
    name: str, hdu: int, width: int | str | None, height: int | str | None
) -> None:
    header, hdul = _load(name, hdu)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wcs = WCS(header, hdul)
    if width == "crpix":
        width, height = round(2 * header["CRPIX1"]), round(2 * header["CRPIX2"])
    w = int(width if width is not None else header["NAXIS1"])
    h = int(height if height is not None else header["NAXIS2"])
    _assert_contains(wcs, w, h)
    assert _area_ratio(wcs, w, h) < 1.03
    if hdul is not None:
        hdul.close()


def test_lookup_table_distortion_is_used() -> None:
    header, hdul = _load("ie6d07ujq_wcs.fits")
    assert hdul is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wcs = WCS(header, hdul)
    assert wcs.det2im1 is not None or wcs.cpdis1 is not None
    _assert_contains(wcs, 4096, 2051)
    hdul.close()


def _generated(distortion: str, pixels: float, boresight: tuple[float, float],
               offset: tuple[float, float] = (0.9, -0.6), shape: tuple[int, int] = (200, 400),
               scale: float = 0.01, rotation: float = 20.0) -> WCS:
    cards = ccd_wcs_cards(boresight, offset, shape, scale, distortion, pixels,  # type: ignore[arg-type]
                          rotation)
    return WCS(fits.Header(cards))


@pytest.mark.parametrize("distortion", ["sip", "tpv"])
@pytest.mark.parametrize("pixels", [5.0, 40.0])
def test_strong_generated_distortions(distortion: str, pixels: float) -> None:
    wcs = _generated(distortion, pixels, (359.9, -30.0))
    _assert_contains(wcs, 200, 400)
    assert _area_ratio(wcs, 200, 400) < 1.05


def test_near_pole_and_across_ra_zero() -> None:
    for boresight in [(0.0, 89.9), (180.0, -89.5), (0.01, 0.0), (359.99, 45.0)]:
        wcs = _generated("sip", 10.0, boresight, offset=(0.0, 0.0))
        polygon = _assert_contains(wcs, 200, 400)
        assert isinstance(polygon, ConvexPolygon)


def test_pole_inside_image() -> None:
    wcs = _generated("tpv", 5.0, (10.0, 89.0), offset=(0.0, 1.0))
    polygon = _assert_contains(wcs, 200, 400)
    assert polygon.contains(UnitVector3d(0.0, 0.0, 1.0))


@settings(max_examples=40, deadline=None)
@given(
    ra=st.one_of(st.floats(0, 360, exclude_max=True), st.sampled_from([0.0, 359.9999, 1e-9])),
    dec=st.one_of(st.floats(-89.9, 89.9), st.sampled_from([89.9, -89.9, 89.99])),
    rotation=st.floats(0, 360),
    scale_arcsec=st.floats(0.1, 60.0),
    width=st.integers(8, 300),
    height=st.integers(8, 300),
    offset=st.tuples(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0)),
    distortion=st.sampled_from(["none", "sip", "tpv"]),
    pixels=st.floats(0.0, 8.0),
)
def test_random_wcs_contains_every_pixel(
    ra: float, dec: float, rotation: float, scale_arcsec: float, width: int, height: int,
    offset: tuple[float, float], distortion: str, pixels: float,
) -> None:
    scale = scale_arcsec / 3600.0
    offset_deg = (offset[0] * 100 * width * scale, offset[1] * 100 * height * scale)
    wcs = _generated(distortion, pixels, (ra, dec), offset_deg, (width, height), scale, rotation)
    try:
        _assert_contains(wcs, width, height)
    except FootprintError as exc:  # only acceptable for genuinely degenerate transforms
        assert "invert" in str(exc) or "hemisphere" in str(exc)


def test_errors() -> None:
    spectral = WCS(naxis=2)
    spectral.wcs.ctype = ["WAVE", "FREQ"]
    with pytest.raises(FootprintError, match="no celestial WCS"):
        footprint_from_wcs(spectral, 10, 10)

    header, _ = _load("outside_sky.hdr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outside = WCS(header)
    with pytest.raises(FootprintError, match="non-finite"):
        footprint_from_wcs(outside, header["NAXIS1"], header["NAXIS2"])

    folded = WCS(fits.Header(folding_sip(ccd_wcs_cards((10.0, 0.0), (0.0, 0.0), (64, 128),
                                                       0.001), (64, 128))))
    with pytest.raises(FootprintError, match="does not invert"):
        footprint_from_wcs(folded, 64, 128)

    huge = _generated("none", 0.0, (10.0, 0.0), (0.0, 0.0), (100, 100), 20.0, 0.0)
    with pytest.raises(FootprintError, match="hemisphere"):
        footprint_from_wcs(huge, 100, 100)
