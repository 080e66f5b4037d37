"""The sky viewer: its JSON against the Python API, the typed-position parser, and the page
itself in a real headless Chromium (Debian's ``chromium``, driven by Playwright) against a
live ``skyreg serve`` on a loopback port.

The browser tests need a Chromium binary; they are skipped, saying so, only when none is
installed (CI installs Debian's package). Playwright never downloads a browser here: it is
pointed at the system's binary.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.colors import to_rgb
from PIL import Image

from service_fixtures import LiveService, live_service, write_ramp_mef
from skyreg import Registry
from skyreg.plots import band_color
from skyreg.service.targets import TargetError, parse_target
from skyreg.synthetic import SurveySpec, generate_survey

CHROMIUM = next((path for path in (os.environ.get("SKYREG_TEST_CHROMIUM"),
                                   shutil.which("chromium"), "/usr/bin/chromium")
                 if path and Path(path).is_file()), None)
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium browser installed (apt-get install chromium): the "
                             "sky viewer's browser tests need one")
#: What Chromium needs on a machine without a display, GPU or outside network.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
#: Where to write the screenshot that docs/viewer.md shows (set to refresh it).
SCREENSHOT_ENV = "SKYREG_VIEWER_SCREENSHOT"

#: A DECam exposure of four CCDs whose files are on disk (so they have PNG previews).
DECAM = {"visit": 900, "boresight": (150.3, 2.35), "band": "g"}


@pytest.fixture(scope="module")
def sky(database_factory: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[str, LiveService]]:
    """A small survey (LSSTCam manifest), one DECam exposure with files, and a server."""
    root = tmp_path_factory.mktemp("viewer")
    url = database_factory()
    generate_survey(root / "survey", SurveySpec(
        n_visits=5, seed=4, center_ra=150.4, center_dec=2.4, width_deg=2.0, height_deg=2.0,
        bands=("r", "i")))
    raw = root / "raw"
    raw.mkdir()
    write_ramp_mef(raw / "decam.fits", visit=DECAM["visit"], detectors=range(4),
                   boresight=DECAM["boresight"], band=DECAM["band"])
    with Registry.connect(url) as registry:
        registry.ingest_manifest(root / "survey")
        assert registry.ingest_fits(raw, recursive=True, jobs=1).ok
    with live_service(url, root) as live:
        yield url, live


# -- JSON ------------------------------------------------------------------------------------------


def test_field_equals_the_python_api(sky: tuple[str, LiveService]) -> None:
    url, live = sky
    with Registry.connect(url) as registry:
        for params, query in (
            ({"cone": "150.3,2.35,0.2"}, {"cone": (150.3, 2.35, 0.2)}),
            ({"cone": "150.3,2.35,0.2", "band": "g"}, {"cone": (150.3, 2.35, 0.2), "band": "g"}),
        ):
            answer = httpx.get(f"{live.base}/api/v1/sky/field", params=params).json()
            expected = registry.find_ccds(**query)
            got = list(zip(answer["ccds"]["instrument"], answer["ccds"]["visit"],
                           answer["ccds"]["detector"], strict=True))
            assert got == [tuple(c) for c in expected] and got
            shapes = registry.footprints(expected)
            assert answer["ccds"]["ra"] == [[round(v, 9) for v in s.ra] for s in shapes]
            assert answer["ccds"]["band"] == [s.band for s in shapes]
            assert answer["total"]["patches"] == len(registry.find_patches(cone=query["cone"]))
        patch = registry.find_patches(point=(150.3, 2.35))[0]
        tract = httpx.get(f"{live.base}/api/v1/sky/field",
                          params={"tract": f"{patch.skymap},{patch.tract}"}).json()
        assert set(tract["patches"]["tract"]) == {patch.tract}
        assert tract["total"]["ccds"] == len(registry.find_ccds(tract=patch[:2]))
        assert tract["region"]["kind"] == "tract"


def test_details_link_the_files_and_preview(sky: tuple[str, LiveService]) -> None:
    _, live = sky
    answer = httpx.get(f"{live.base}/api/v1/sky/details",
                       params={"ccd": f"DECam,{DECAM['visit']},1"}).json()
    assert answer["data_id"] == {"instrument": "DECam", "visit": 900, "detector": 1}
    assert answer["band"] == "g" and answer["color"] == band_color("g")
    (file,) = answer["files"]
    assert file["dataset_type"] == "raw" and file["id"] == "ivo://skyreg/raw?DECam/900/1"
    preview = httpx.get(file["preview"])
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    assert httpx.get(file["datalink"]).status_code == 200
    lsst = httpx.get(f"{live.base}/api/v1/sky/field", params={"cone": "150.4,2.4,0.1"}).json()
    key = next(k for k in zip(lsst["ccds"]["instrument"], lsst["ccds"]["visit"],
                              lsst["ccds"]["detector"], strict=True) if k[0] == "LSSTCam")
    other = httpx.get(f"{live.base}/api/v1/sky/details",
                      params={"ccd": ",".join(map(str, key))}).json()
    assert other["files"] == []  # a manifest CCD without files
    for params, status in (({"ccd": "DECam,1,1"}, 404), ({"patch": "rings,x,1"}, 400),
                           ({}, 400), ({"ccd": "DECam,900,1", "tract": "rings,1"}, 400)):
        response = httpx.get(f"{live.base}/api/v1/sky/details", params=params)
        assert response.status_code == status, response.text
        assert response.json()["detail"]


def test_coverage_is_the_registry_map_and_cached(sky: tuple[str, LiveService]) -> None:
    url, live = sky
    first = httpx.get(f"{live.base}/api/v1/sky/coverage", params={"level": 5})
    assert first.status_code == 200
    answer = first.json()
    with Registry.connect(url) as registry:
        coverage = registry.coverage_map(5)
    assert answer["cells"]["pixel"] == [int(c) for c in coverage.cells]
    assert answer["counts"]["all"] == [int(c) for c in coverage.total]
    assert answer["bands"] == list(coverage.bands) and "g" in answer["bands"]
    assert len(answer["cells"]["ra"][0]) == 3  # HTM trixels
    again = httpx.get(f"{live.base}/api/v1/sky/coverage", params={"level": 5},
                      headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert httpx.get(f"{live.base}/api/v1/sky/coverage", params={"level": 12}).status_code \
        == 422


def test_field_errors_are_4xx_with_a_reason(sky: tuple[str, LiveService]) -> None:
    _, live = sky
    for params, status in (({"cone": "150,2,30"}, 413), ({"cone": "150,95,1"}, 400),
                           ({"tract": "nosuch,1"}, 404), ({}, 400),
                           ({"cone": "150,2,0.1", "limit": 10**6}, 413)):
        response = httpx.get(f"{live.base}/api/v1/sky/field", params=params)
        assert response.status_code == status, response.text
        assert response.json()["detail"]
    names = httpx.get(f"{live.base}/api/v1/sky/resolve", params={"q": "M31"})
    assert names.status_code == 400 and "name resolver" in names.json()["detail"]


@given(ra=st.floats(0, 360, exclude_max=True), dec=st.floats(-90, 90),
       radius=st.sampled_from(["", " 0.25", " 12arcmin", " 30arcsec"]))
def test_sexagesimal_positions_parse_back(ra: float, dec: float, radius: str) -> None:
    hours = ra / 15
    h, m = int(hours), int(hours * 60) % 60
    s = (hours * 3600) % 60
    sign = "-" if dec < 0 else "+"
    d, dm = int(abs(dec)), int(abs(dec) * 60) % 60
    ds = (abs(dec) * 3600) % 60
    if s >= 59.9999995 or ds >= 59.9999995:
        return  # formatting would round up to 60
    text = f"{h:02d}:{m:02d}:{s:010.7f} {sign}{d:02d}:{dm:02d}:{ds:010.7f}{radius}"
    target = parse_target(text)
    assert target.kind == "cone"
    assert abs((target.ra or 0) - ra) % 360 < 1e-6 or abs((target.ra or 0) - ra) % 360 > 360 - 1e-6
    assert target.dec == pytest.approx(dec, abs=1e-6)
    units = {"": 0.3, " 0.25": 0.25, " 12arcmin": 0.2, " 30arcsec": 30 / 3600}
    assert target.radius == pytest.approx(units[radius])
    degrees = parse_target(f"{ra!r}, {dec!r}")
    assert degrees.ra == ra % 360 and degrees.dec == dec


@pytest.mark.parametrize("text", ["", "M31", "NGC 1300", "150 95", "25:00:00 +10:00:00",
                                  "tract rings", "patch rings 1 x", "150 2 0", "150 2 -1"])
def test_unusable_text_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(TargetError) as error:
        parse_target(text)
    assert str(error.value)


# -- the page in a browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS,
                                              headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 640})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    requests: list[str] = []
    tab.on("request", lambda request: requests.append(request.url))
    yield tab
    context.close()
    assert not errors, errors
    outside = [u for u in requests if not u.startswith(("http://127.0.0.1", "data:"))]
    assert not outside, f"the page fetched from elsewhere: {outside}"


def _screenshot(element: Any) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(element.screenshot())).convert("RGB"), dtype=float)


def _colour_pixels(pixels: np.ndarray, colour: str, tolerance: float = 60.0) -> int:
    target = np.array(to_rgb(colour)) * 255
    return int((np.abs(pixels - target).sum(axis=-1) < tolerance).sum())


@needs_browser
def test_overview_draws_the_coverage_cells(sky: tuple[str, LiveService], page: Any) -> None:
    _, live = sky
    page.goto(live.base + "/")
    page.wait_for_selector("body[data-state=ready]")
    coverage = httpx.get(f"{live.base}/api/v1/sky/coverage").json()
    drawn = page.eval_on_selector_all(".cell", "cells => cells.map(c => +c.dataset.pixel)")
    assert sorted(drawn) == [p for p, n in zip(coverage["cells"]["pixel"],
                                                coverage["counts"]["all"], strict=True) if n]
    assert "cells with visits" in page.inner_text("#status")


@needs_browser
def test_typed_position_draws_footprints_and_a_click_shows_the_ccd(
        sky: tuple[str, LiveService], page: Any) -> None:
    url, live = sky
    page.goto(live.base + "/")
    page.wait_for_selector("body[data-state=ready]")
    page.fill("#target", "10:01:12 +02:21:00 0.15")  # RA 150.3, Dec 2.35
    page.click("#search button[type=submit]")
    page.wait_for_function("document.body.dataset.state === 'ready' && "
                           "document.querySelectorAll('.ccd').length > 0")
    with Registry.connect(url) as registry:
        expected = registry.find_ccds(cone=(150.3, 2.35, 0.15))
    drawn = page.eval_on_selector_all(".ccd", "ccds => ccds.map(c => c.dataset.key)")
    assert sorted(drawn) == sorted("/".join(map(str, c)) for c in expected)
    # The DECam CCDs are drawn in the g-band colour where their paths are.
    decam = page.locator(f'.ccd[data-key="DECam/{DECAM["visit"]}/1"]')
    box = decam.bounding_box()
    assert box and 5 < box["width"] < 1100 and 5 < box["height"] < 640
    page.select_option("#band", "g")
    pixels = _screenshot(page.locator("#map"))
    x0, y0 = page.locator("#map").bounding_box()["x"], page.locator("#map").bounding_box()["y"]
    inside = pixels[int(box["y"] - y0):int(box["y"] - y0 + box["height"]) + 1,
                    int(box["x"] - x0):int(box["x"] - x0 + box["width"]) + 1]
    assert _colour_pixels(inside, band_color("g")) > 20
    assert _colour_pixels(pixels, band_color("r")) < 5  # other bands hidden by the filter
    decam.dispatch_event("click")
    page.wait_for_selector("#details .data-id")
    assert page.inner_text("#details .data-id") == f"CCD DECam {DECAM['visit']} 1"
    assert "raw" in page.inner_text("#details table")
    page.wait_for_function("(() => { const i = document.getElementById('preview');"
                           " return i && i.complete && i.naturalWidth > 0; })()")
    target = os.environ.get(SCREENSHOT_ENV)
    if target:
        page.select_option("#band", "")
        shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
        shot.quantize(128).save(target, optimize=True)  # a small PNG for the docs


@needs_browser
def test_object_names_are_refused_on_the_page(sky: tuple[str, LiveService], page: Any) -> None:
    _, live = sky
    page.goto(live.base + "/#q=150.3%202.35%200.1")
    page.wait_for_selector("body[data-state=ready]")
    assert page.locator(".ccd").count() > 0
    page.fill("#target", "M31")
    page.click("#search button[type=submit]")
    page.wait_for_selector("#status.error")
    assert "name resolver" in page.inner_text("#status")


def test_the_page_and_its_files_are_served(sky: tuple[str, LiveService]) -> None:
    """Without a browser too: the page names only files the package serves itself."""
    _, live = sky
    page = httpx.get(live.base + "/")
    assert page.status_code == 200 and "viewer/viewer.js" in page.text
    for asset in ("viewer/viewer.js", "viewer/viewer.css", "viewer/vendor/d3.min.js",
                  "viewer/vendor/d3-geo-projection.min.js", "viewer/vendor/LICENSE-d3"):
        assert httpx.get(f"{live.base}/{asset}").status_code == 200, asset
    assert "http" not in page.text.split("<body")[0].replace("http-equiv", "")
