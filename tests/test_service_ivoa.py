"""The IVOA endpoints through real clients: pyvo (SIA 2.0, DataLink, SODA) and astropy.

A live ``skyreg serve`` answers on a loopback port; every VOTable it writes is parsed by
astropy with warnings turned into errors.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
import pyvo
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.io.votable import parse
from astropy.time import Time
from astropy.wcs import WCS

from service_fixtures import SMALL, Archive, LiveService
from skyreg import Registry
from skyreg.registry.dataset_ids import (
    ccd_dataset_key,
    dataset_id,
    parse_dataset_id,
    patch_dataset_key,
)
from skyreg.service.obscore import COLUMNS

pytestmark = pytest.mark.filterwarnings("error")


def strict_parse(body: bytes) -> Any:
    """astropy's VOTable parser with every warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return parse(io.BytesIO(body), verify="exception")


def _bands(url: str, lo: float, hi: float) -> list[str]:
    with psycopg.connect(_plain(url)) as connection:
        return [r[0] for r in connection.execute(
            "SELECT band FROM ivoa.skyreg_band WHERE em_min <= %s AND em_max >= %s",
            (hi, lo))]


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def expected_ids(archive: Archive, cone: tuple[float, float, float],
                 band: tuple[float, float] | None = None,
                 time: tuple[float, float] | None = None) -> set[str]:
    """The Python API's answer to an SIA query, as dataset identifiers."""
    names = _bands(archive.url, *band) if band else None
    found: set[str] = set()
    with Registry.connect(archive.url) as registry:
        in_time = ({tuple(c) for c in registry.find_ccds(cone=cone, time=time)}
                   if time else None)
        for dataset_type, dims in registry.dataset_types().items():
            if names == []:
                continue
            for ref in registry.find_datasets(dataset_type, cone=cone, band=names):
                if dims == "ccd":
                    key = (ref.instrument, ref.visit, ref.detector)
                    if in_time is not None and key not in in_time:
                        continue
                    found.add(dataset_id(ccd_dataset_key(dataset_type, *key)))  # type: ignore[arg-type]
                elif in_time is None:  # coadds have no time: a TIME constraint never matches
                    found.add(dataset_id(patch_dataset_key(
                        dataset_type, ref.skymap, ref.tract, ref.patch, ref.band)))  # type: ignore[arg-type]
    return found


def test_sia2_search_equals_the_python_api(archive: Archive, service: LiveService) -> None:
    sia = pyvo.dal.SIA2Service(f"{service.base}/sia2")
    cone = (150.4, 2.4, 0.12)
    everything = sia.search(pos=cone, maxrec=5000)
    ids = {r.obs_publisher_did for r in everything}
    assert ids == expected_ids(archive, cone) and len(ids) > 50
    types = {r.obs_collection for r in everything}
    assert {"raw", "deepCoadd"} <= types
    band = (5.6e-7, 6.0e-7)  # r only
    in_r = sia.search(pos=cone, band=band, maxrec=5000)
    assert {r.obs_publisher_did for r in in_r} == expected_ids(archive, cone, band=band)
    with psycopg.connect(_plain(archive.url)) as connection:
        first = connection.execute("SELECT min(mjd_tai_start) FROM visit WHERE instrument = "
                                   "'LSSTCam'").fetchone()[0]  # type: ignore[index]
    span = (first, first + 0.02)
    times = (Time(span[0], format="mjd", scale="tai"), Time(span[1], format="mjd", scale="tai"))
    timed = sia.search(pos=cone, time=times, maxrec=5000)
    expected = expected_ids(archive, cone, time=span)
    assert {r.obs_publisher_did for r in timed} == expected and expected


def test_repeated_parameters_or_and_different_ones_and(service: LiveService,
                                                       archive: Archive) -> None:
    sia = pyvo.dal.SIA2Service(f"{service.base}/sia2")
    a, b = (150.3, 2.35, 0.03), (150.6, 2.5, 0.03)
    both = {r.obs_publisher_did for r in sia.search(pos=[a, b], maxrec=5000)}
    assert both == expected_ids(archive, a) | expected_ids(archive, b)
    raw_g = sia.search(pos=a, collection="raw", band=(4.1e-7, 5.0e-7), maxrec=5000)
    assert {r.obs_publisher_did for r in raw_g} == {
        i for i in expected_ids(archive, a, band=(4.1e-7, 5.0e-7)) if "/raw?" in i}
    assert len(sia.search(pos=a, calib_level=[1, 3], maxrec=5000)) == len(
        [i for i in expected_ids(archive, a) if "/calexp?" not in i])


def test_every_obscore_column_reads_through_pyvo(service: LiveService) -> None:
    results = pyvo.dal.SIA2Service(f"{service.base}/sia2").search(
        pos=(150.4, 2.4, 0.12), maxrec=5000)
    assert {c.name for c in COLUMNS} <= set(results.fieldnames) and len(COLUMNS) == 30
    properties = [name for name in dir(pyvo.dal.sia2.ObsCoreRecord)
                  if isinstance(getattr(pyvo.dal.sia2.ObsCoreRecord, name), property)]
    kinds = set()
    for record in results:
        for name in properties:
            getattr(record, name)
        kinds.add(record.obs_collection)
        assert record.s_region.startswith("POLYGON ICRS ")
        assert record.access_format == "image/fits"
    assert {"raw", "deepCoadd"} <= kinds


def test_overflow_and_metadata_only(service: LiveService) -> None:
    sia = pyvo.dal.SIA2Service(f"{service.base}/sia2")
    few = sia.search(pos=(150.4, 2.4, 0.2), maxrec=3)  # pyvo is silent: the client set it
    assert len(few) == 3
    status = strict_parse(httpx.get(f"{service.base}/sia2/query", params={
        "POS": "CIRCLE 150.4 2.4 0.2", "MAXREC": "3"}).content).resources[0].infos[0]
    assert status.name == "QUERY_STATUS" and status.value == "OVERFLOW"
    body = httpx.get(f"{service.base}/sia2/query", params={"POS": "CIRCLE 150.4 2.4 0.2",
                                                           "MAXREC": "0"}).content
    table = strict_parse(body).get_first_table()
    assert len(table.array) == 0 and len(table.fields) == 30


def test_bad_input_is_a_dali_error(service: LiveService) -> None:
    sia = pyvo.dal.SIA2Service(f"{service.base}/sia2")
    with pytest.raises(pyvo.dal.DALQueryError, match="UsageFault"):
        sia.search(POS="CIRCLE 10 95 1")
    for params in ({"POS": "CIRCLE 10 20"}, {"POS": "POLYGON 0 0 1 0 2 0"},
                   {"POS": "BOX 1 2 3 4"}, {"BAND": "7 5"}, {"MAXREC": "-1"},
                   {"CALIB": "x"}, {"POS": "RANGE 0 360 -90 90"},
                   {"RESPONSEFORMAT": "fits"}, {"MAXREC": ["1", "2"]},
                   {"RESPONSEFORMAT": ["votable", "votable"]}, {"RUNID": "r" * 65},
                   {"UPLOAD": "t1,http://example.com/t1.xml"}, {"RELEASEDATE": "yesterday"},
                   {"RESPONSEFORMAT": "application/x-votable+xml;serialization=BINARY2"}):
        response = httpx.get(f"{service.base}/sia2/query", params=params)
        assert 400 <= response.status_code < 500, (params, response.text)
        status = strict_parse(response.content).resources[0].infos[0]
        assert status.value == "ERROR" and status.content.startswith(
            ("UsageFault", "MultiValued")), (params, status.content)


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    table = strict_parse(response.content).get_first_table()
    return [str(v) for v in table.array["obs_publisher_did"]]


def _infos(response: httpx.Response) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in strict_parse(response.content).resources[0].infos:
        found.setdefault(item.name, []).append(item.value)
    return found


def test_dali_parameters_and_unknown_ones(service: LiveService) -> None:
    """DALI's common parameters are honoured; parameters SIA does not define are ignored
    (as TAP and Cone Search require and SIA 2.0 allows) and listed in the answer."""
    query = f"{service.base}/sia2/query"
    cone = {"POS": "CIRCLE 150.4 2.4 0.05", "MAXREC": "5000"}
    plain = httpx.get(query, params=cone)
    expected = _ids(plain)
    assert expected and plain.headers["content-type"] == "application/x-votable+xml"
    # RESPONSEFORMAT: short form, media types (echoed as Content-Type), MIME parameters.
    for value, media_type in (("votable", "application/x-votable+xml"),
                              ("application/x-votable+xml", "application/x-votable+xml"),
                              ("text/xml", "text/xml"),
                              ("application/x-votable+xml;serialization=TABLEDATA",
                               "application/x-votable+xml;serialization=TABLEDATA")):
        response = httpx.get(query, params={**cone, "RESPONSEFORMAT": value})
        assert _ids(response) == expected
        assert response.headers["content-type"].startswith(media_type), value
    # Names are case-insensitive; RUNID is echoed and logged; others are ignored, listed.
    response = httpx.get(query, params={"pos": cone["POS"], "maxRec": "5000",
                                        "RunId": "survey-check-7", "NONSENSE": "1",
                                        "REQUEST": "query", "VERSION": "2.0"})
    assert _ids(response) == expected
    infos = _infos(response)
    assert infos["RUNID"] == ["survey-check-7"] and infos["ignored_parameter"] == ["NONSENSE"]
    assert "runid='survey-check-7'" in service.log_text()
    posted = httpx.post(query, data={**cone, "RUNID": "posted-run"})
    assert _ids(posted) == expected and "runid='posted-run'" in service.log_text()
    # MAXREC=0: metadata only, with the overflow indicator.
    empty = httpx.get(query, params={**cone, "MAXREC": "0"})
    assert _ids(empty) == [] and _infos(empty)["QUERY_STATUS"] == ["OVERFLOW"]
    # RELEASEDATE (SIA 2.1): the registry has no release dates, so nothing matches.
    released = httpx.get(query, params={**cone, "RELEASEDATE": "2020-01-01 2040-01-01T12:00"})
    assert _ids(released) == [] and _infos(released)["QUERY_STATUS"] == ["OK"]


def test_topcat_style_requests(service: LiveService) -> None:
    """As TOPCAT sends them: the query URL from the capabilities, '+' for spaces, POS as a
    CIRCLE and FORMAT values ORed; FORMAT matches access_format exactly."""
    import urllib.request
    from xml.etree import ElementTree

    caps = ElementTree.fromstring(httpx.get(f"{service.base}/sia2/capabilities").content)
    url = next(c.find("interface/accessURL").text  # type: ignore[union-attr]
               for c in caps.iter("capability")
               if c.get("standardID") == "ivo://ivoa.net/std/SIA#query-2.0")
    assert url == f"{service.base}/sia2/query"
    expected = _ids(httpx.get(url, params={"POS": "CIRCLE 150.4 2.4 0.05", "MAXREC": "5000"}))

    def fetch(query: str) -> list[str]:
        with urllib.request.urlopen(f"{url}?{query}", timeout=30) as answer:
            body = answer.read()
        table = strict_parse(body).get_first_table()
        return [str(v) for v in table.array["obs_publisher_did"]]

    everything = fetch("POS=CIRCLE+150.4+2.4+0.05&MAXREC=5000")
    assert everything == expected
    assert fetch("POS=CIRCLE+150.4+2.4+0.05&FORMAT=image%2Ffits&MAXREC=5000") == expected
    assert fetch("POS=CIRCLE+150.4+2.4+0.05&FORMAT=image%2Fpng&FORMAT=image%2Fjpeg"
                 "&FORMAT=image%2Fgif") == []
    assert fetch("POS=CIRCLE+150.4+2.4+0.05&FORMAT=application%2Fx-votable%2Bxml"
                 "%3Bcontent%3Ddatalink") == []


def test_sia_answers_equal_the_sql_view(archive: Archive, service: LiveService) -> None:
    """The view an operator's TAP publishes gives the same rows as /sia2/query."""
    response = httpx.get(f"{service.base}/sia2/query", params={
        "POS": "CIRCLE 150.4 2.4 0.1", "BAND": "4e-7 7e-7", "MAXREC": "5000"})
    table = strict_parse(response.content).get_first_table().to_table()
    with psycopg.connect(_plain(archive.url)) as connection:
        connection.execute("SELECT set_config('skyreg.base_url', %s, false)", (service.base,))
        cursor = connection.execute(
            "SELECT o.* FROM ivoa.obscore AS o WHERE o.em_min <= 7e-7 AND o.em_max >= 4e-7 AND ("
            " (o.skyreg_instrument, o.skyreg_visit, o.skyreg_detector) IN "
            "   (SELECT * FROM skyreg_ccds_in_cone(150.4, 2.4, 0.1))"
            " OR o.skyreg_skymap IS NOT NULL AND skyreg_polygon_overlaps_circle("
            "   skyreg_vertices(p.outer_ra, p.outer_dec), skyreg_circle(150.4, 2.4, 0.1)))"
            " ORDER BY o.obs_publisher_did COLLATE \"C\"".replace(
                "FROM ivoa.obscore AS o", "FROM ivoa.obscore AS o LEFT JOIN patch AS p ON "
                "(p.skymap, p.tract, p.patch) = (o.skyreg_skymap, o.skyreg_tract, "
                "o.skyreg_patch)"))
        names = [d.name for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    assert len(rows) == len(table) > 20
    for row, got in zip(rows, table, strict=True):
        for column in COLUMNS:
            want, value = row[column.name], got[column.name]
            if want is None:
                assert np.ma.is_masked(value) or value in ("", None) or (
                    isinstance(value, float) and np.isnan(value)), column.name
            elif isinstance(want, float):
                assert float(value) == want, column.name
            else:
                assert str(value) == str(want), column.name


def test_datalink_and_files(archive: Archive, service: LiveService) -> None:
    results = pyvo.dal.SIA2Service(f"{service.base}/sia2").search(
        pos=(150.3, 2.35, 0.02), collection="raw", instrument="DECam", maxrec=100)
    assert len(results) >= 1
    record = results[0]
    links = record.getdatalink()
    strict_parse(httpx.get(f"{service.base}/datalink/links",
                           params={"ID": record.obs_publisher_did}).content)
    semantics = {link.semantics: link for link in links}
    assert set(semantics) == {"#this", "#cutout", "#preview"}
    this = semantics["#this"]
    data = httpx.get(this.access_url).content
    key = parse_dataset_id(record.obs_publisher_did)
    with Registry.connect(archive.url) as registry:
        ref = next(r for r in registry.find_datasets("raw", instrument="DECam")
                   if (r.visit, r.detector) == (key.visit, key.detector))
    assert ref.path is not None
    with open(ref.path, "rb") as stream:
        assert data == stream.read()
    preview = httpx.get(semantics["#preview"].access_url)
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
    # Several IDs in one POST, an unknown one among them.
    unknown = "ivo://skyreg/raw?DECam/1/2"
    body = httpx.post(f"{service.base}/datalink/links",
                      data={"ID": [record.obs_publisher_did, unknown, "nonsense"]}).content
    rows = strict_parse(body).get_first_table().to_table()
    errors = {r["ID"]: r["error_message"] for r in rows if r["error_message"]}
    assert errors[unknown].startswith("NotFoundFault") and "nonsense" in errors


def test_datalink_follows_datalink_1_1(service: LiveService) -> None:
    """No ID: an empty answer. More IDs than the service's limit (200): the first are
    answered, with the overflow indicator. RESPONSEFORMAT as DALI says."""
    links = f"{service.base}/datalink/links"
    empty = httpx.get(links)
    assert empty.status_code == 200 and len(strict_parse(empty.content).get_first_table()
                                            .array) == 0
    ids = [f"ivo://skyreg/raw?DECam/1/{i}" for i in range(201)]
    many = httpx.post(links, data={"ID": ids})
    table = strict_parse(many.content).get_first_table().array
    assert [str(v) for v in table["ID"]] == ids[:200]
    assert _infos(many)["QUERY_STATUS"] == ["OVERFLOW"]
    assert httpx.get(links, params={"ID": ids[0], "RESPONSEFORMAT": "votable"}
                     ).status_code == 200
    refused = httpx.get(links, params={"ID": ids[0], "RESPONSEFORMAT": "text/csv"})
    assert refused.status_code == 400
    assert strict_parse(refused.content).resources[0].infos[0].content.startswith("UsageFault")


def _fits(stream: Any) -> fits.HDUList:
    return fits.open(io.BytesIO(stream.read() if hasattr(stream, "read") else stream))


def test_processed_circle_gives_a_cutout_with_a_correct_wcs(service: LiveService) -> None:
    results = pyvo.dal.SIA2Service(f"{service.base}/sia2").search(
        pos=(150.3, 2.35, 0.01), collection="raw", instrument="DECam", maxrec=100)
    record = results[0]
    region = record.s_region.split()[2:]
    ra = float(np.mean([float(v) for v in region[0::2]]))
    dec = float(np.mean([float(v) for v in region[1::2]]))
    import astropy.units as u

    with _fits(record.processed(circle=(ra * u.deg, dec * u.deg, 0.004 * u.deg))) as cut:
        assert [h.name for h in cut] == ["PRIMARY", "IMAGE"]  # the raw has one plane
        hdu = cut["IMAGE", 1]
        ny, nx = hdu.data.shape
        x, y = WCS(hdu.header).world_to_pixel(SkyCoord(ra, dec, unit="deg"))
        assert 0 <= x < nx and 0 <= y < ny and nx < 64
        # The ramp tells which pixels were cut: the LTV offsets name the same ones.
        x0, y0 = -int(hdu.header["LTV1"]), -int(hdu.header["LTV2"])
        assert hdu.data[0, 0] == x0 + 1000 * y0
        assert hdu.data[-1, -1] == x0 + nx - 1 + 1000 * (y0 + ny - 1)


def _rice_id(archive: Archive) -> tuple[str, WCS, tuple[int, int]]:
    with Registry.connect(archive.url) as registry:
        ref = next(r for r in registry.find_datasets("raw", instrument="DECam")
                   if r.visit == 950)
    with fits.open(archive.rice_path) as hdus:
        header = hdus[ref.hdu].header
        return (dataset_id(ccd_dataset_key("raw", "DECam", 950, ref.detector or 0)),
                WCS(header), (header["NAXIS1"], header["NAXIS2"]))


def test_soda_on_a_rice_compressed_image(archive: Archive, service: LiveService) -> None:
    identifier, wcs, (_, ny) = _rice_id(archive)
    # Several stamps of one (cached) file: each header describes its own pixels.
    for px, py in ((120, 80), (40, 150), (120, 80)):
        sky = wcs.pixel_to_world(px, py)
        response = httpx.get(f"{service.base}/soda/sync", params={
            "ID": identifier, "CIRCLE": f"{sky.ra.deg} {sky.dec.deg} 0.002"})
        assert response.status_code == 200, response.text
        with _fits(response.content) as cut:
            data, header = cut[1].data, cut[1].header
            x0, y0 = -int(header["LTV1"]), -int(header["LTV2"])
            height, width = data.shape
            expected = np.add.outer(1000 * np.arange(y0, y0 + height),
                                    np.arange(x0, x0 + width))
            assert np.array_equal(data, expected)  # lossless RICE: the very pixels
            x, y = WCS(header).world_to_pixel(sky)  # SIP inverse included
            assert abs(float(x) + x0 - px) < 1e-3 and abs(float(y) + y0 - py) < 1e-3
    # Clipped at the image edge: a circle around the corner pixel.
    corner = wcs.pixel_to_world(0, 0)
    clipped = httpx.get(f"{service.base}/soda/sync", params={
        "ID": identifier, "POS": f"CIRCLE {corner.ra.deg} {corner.dec.deg} 0.003"})
    with _fits(clipped.content) as cut:
        assert cut[1].header["LTV1"] == 0 and cut[1].header["LTV2"] == 0
        assert 0 < cut[1].data.shape[0] < ny and cut[1].data[0, 0] == 0
    # No pixel inside: 204, empty body.
    far = httpx.get(f"{service.base}/soda/sync", params={
        "ID": identifier, "CIRCLE": f"{(corner.ra.deg + 1) % 360} {corner.dec.deg} 0.01"})
    assert far.status_code == 204 and far.content == b""
    png = httpx.get(f"{service.base}/soda/sync", params={
        "ID": identifier, "CIRCLE": f"{sky.ra.deg} {sky.dec.deg} 0.002", "FORMAT": "png"})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_soda_refusals(archive: Archive, service: LiveService) -> None:
    identifier, wcs, _ = _rice_id(archive)
    sky = wcs.pixel_to_world(50, 50)
    circle = f"{sky.ra.deg} {sky.dec.deg} 0.001"
    cases = [
        ({"ID": identifier, "CIRCLE": [circle, circle], "FORMAT": "png"}, 400,
         "MultiValuedParamNotSupported"),
        ({"ID": identifier, "CIRCLE": [circle] * 51}, 413, "UsageError"),
        ({"ID": [identifier, identifier], "CIRCLE": circle}, 400,
         "MultiValuedParamNotSupported"),
        ({"ID": "ivo://skyreg/raw?DECam/1/1", "CIRCLE": circle}, 404, "UsageError"),
        ({"CIRCLE": circle}, 400, "UsageError"),
        ({"ID": "/etc/passwd"}, 400, "UsageError"),
        ({"ID": identifier, "CIRCLE": "1 2"}, 400, "UsageError"),
        ({"ID": identifier, "BAND": "7 5"}, 400, "UsageError"),
        ({"ID": identifier, "RESPONSEFORMAT": "text/csv"}, 400, "UsageError"),
    ]
    for params, status, fault in cases:
        response = httpx.get(f"{service.base}/soda/sync", params=params)
        assert response.status_code == status, (params, response.text)
        # SODA 1.0: text/plain error documents starting with the error code.
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text.startswith(fault + ": "), response.text
    # BAND and TIME filter the image's one plane; POL selects none (no polarization axis);
    # parameters SODA does not define are ignored.
    cut = {"ID": identifier, "CIRCLE": circle}
    for extra, status in (({"BAND": "4.5e-7 4.6e-7"}, 200), ({"BAND": ["1e-6 2e-6",
                                                                       "4e-7 4.1e-7"]}, 200),
                          ({"BAND": "6e-7 7e-7"}, 204), ({"TIME": "61411 61412"}, 200),
                          ({"TIME": "60000 60001"}, 204), ({"POL": "I"}, 204),
                          ({"NONSENSE": "1", "RUNID": "r1"}, 200)):
        response = httpx.get(f"{service.base}/soda/sync", params={**cut, **extra})
        assert response.status_code == status, (extra, response.text)
    # Files under s3:// URIs are listed but not cut.
    response = httpx.get(f"{service.base}/sia2/query", params={
        "POS": "CIRCLE 150.4 2.4 0.05", "INSTRUMENT": "LSSTCam", "MAXREC": "1"})
    s3_id = strict_parse(response.content).get_first_table().array["obs_publisher_did"][0]
    assert httpx.get(f"{service.base}/soda/sync", params={
        "ID": s3_id, "CIRCLE": "150.4 2.4 0.01"}).status_code == 404


def test_capabilities_and_availability(service: LiveService) -> None:
    caps = httpx.get(f"{service.base}/sia2/capabilities").text
    assert "ivo://ivoa.net/std/SIA#query-2.0" in caps and "MultiValuedParamNotSupported" in caps
    service_object = pyvo.dal.SIA2Service(f"{service.base}/sia2")
    assert any(c.standardid == "ivo://ivoa.net/std/SODA#sync-1.0"
               for c in service_object.capabilities)
    assert "<vosi:available>true</vosi:available>" in httpx.get(
        f"{service.base}/sia2/availability").text


def test_cutout_urls_resolve_to_the_pixels(archive: Archive, service: LiveService) -> None:
    from skyreg.skymaps import build_skymap

    geometry = build_skymap(SMALL)
    row = geometry.patch_row(0, 0)
    ra = float(np.mean(geometry.patches.inner_ra[row]))
    dec = float(np.mean(geometry.patches.inner_dec[row]))
    with Registry.connect(archive.url) as registry:
        url = registry.cutout_url(ra, dec, 0.01, dataset_type="deepCoadd", band="r",
                                  base_url=service.base)
        with pytest.raises(Exception, match="band="):
            registry.cutout_url(ra, dec, 0.01, dataset_type="deepCoadd",
                                base_url=service.base)
    api = httpx.get(f"{service.base}/api/v1/cutout-url", params={
        "ra": ra, "dec": dec, "size": 0.01, "dataset_type": "deepCoadd", "band": "r"}).json()
    assert api["url"] == url and "ID=ivo%3A%2F%2Fskyreg%2FdeepCoadd%3Fsmall%2F0%2F0%2Fr" in url
    with _fits(httpx.get(url).content) as cut:
        x, y = WCS(cut["IMAGE"].header).world_to_pixel(SkyCoord(ra, dec, unit="deg"))
        ny, nx = cut["IMAGE"].data.shape
        assert 0 <= x < nx and 0 <= y < ny
    png = httpx.get(f"{service.base}/api/v1/cutout-url", params={
        "ra": ra, "dec": dec, "size": 0.01, "band": "r", "format": "png"}).json()["url"]
    assert httpx.get(png).content.startswith(b"\x89PNG")


def test_dataset_types_with_datasets(registry: Registry, tmp_path: Any) -> None:
    """The probe an SIA search starts with names exactly the types that hold datasets: not
    the registered types without any, of either kind, nor types of the other dimensions."""
    from skyreg.service.queries import _types_with_datasets
    from skyreg.synthetic import SurveySpec, generate_survey

    registry.register_dataset_type("postISRCCD", "ccd", "empty CCD type")
    registry.register_dataset_type("goodSeeingCoadd", "patch", "empty patch type")
    assert _types_with_datasets(registry) == {}
    survey = tmp_path / "survey"
    generate_survey(survey, SurveySpec(n_visits=2, seed=5,
                                       file_uri_template="s3://b/{instrument}/{visit}/"
                                                         "{detector}.fits"))
    registry.ingest_manifest(survey)
    assert _types_with_datasets(registry) == {"raw": "ccd"}
