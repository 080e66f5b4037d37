"""IVOA Simple Cone Search at /scs/{catalog}, queried with pyvo against a live server that
reads through the read-only role: answers equal the Python API, errors follow SCS 1.03."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import pyvo
from astropy.io.votable import parse

from catalog_builder import catalog_table, write_catalog
from service_fixtures import LiveService, live_service
from skyreg import Registry
from skyreg.db.roles import drop_roles, ensure_roles

pytestmark = pytest.mark.filterwarnings("error")


def strict_parse(body: bytes) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return parse(io.BytesIO(body), verify="exception")


@pytest.fixture(scope="module")
def scs(database_factory: Any, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[LiveService, str]]:
    """A server on a registry holding catalog ``obj``, its connections in a reader role made
    before the catalog was loaded."""
    url = database_factory()
    root = tmp_path_factory.mktemp("scs")
    reader, writer = f"scs_reader_{os.getpid()}", f"scs_writer_{os.getpid()}"
    with Registry.connect(url) as registry:
        ensure_roles(registry.engine, reader, writer)
        try:
            path = write_catalog(root / "obj.parquet", catalog_table(rows=20_000))
            registry.load_catalog("obj", [path], ra="coord_ra", dec="coord_dec", id="objectId")
            with live_service(url, root, "--read-role", reader, "--max-rows", "500",
                              "--max-area", "5000") as live:
                yield live, url
        finally:
            drop_roles(registry.engine, reader, writer)


def _expected(url: str, ra: float, dec: float, radius: float) -> list[int]:
    with Registry.connect(url) as registry:
        return registry.catalog("obj").cone(ra, dec, radius, columns=[])["objectId"].tolist()


@pytest.mark.parametrize("ra, dec, radius", [(0.0, 0.0, 5 / 3600), (359.9999, 10.0, 3 / 3600),
                                             (45.0, 89.9999, 4 / 3600), (120.0, 30.0, 2.0),
                                             (200.0, -89.9999, 0.5)])
def test_pyvo_search_equals_the_python_api(scs: tuple[LiveService, str], ra: float,
                                           dec: float, radius: float) -> None:
    live, url = scs
    results = pyvo.dal.SCSService(f"{live.base}/scs/obj").search(pos=(ra, dec), radius=radius)
    expected = _expected(url, ra, dec, radius)
    assert [int(v) for v in results["objectId"]] == expected and expected
    assert "read role" not in live.log_text()
    record = results[0]
    assert record.id == results["objectId"][0]
    assert record.pos.ra.deg == pytest.approx(float(results["coord_ra"][0]))


def test_verbosity_and_fields(scs: tuple[LiveService, str]) -> None:
    live, _ = scs
    service = pyvo.dal.SCSService(f"{live.base}/scs/obj")
    minimal = service.search(pos=(0.0, 0.0), radius=5 / 3600, verbosity=1)
    assert minimal.fieldnames == ("objectId", "coord_ra", "coord_dec")
    everything = service.search(pos=(0.0, 0.0), radius=5 / 3600, verbosity=3)
    assert len(everything.fieldnames) == 12
    body = httpx.get(f"{live.base}/scs/obj", params={"RA": 0, "DEC": 0, "SR": 0.001,
                                                    "VERB": 3}).content
    table = strict_parse(body).get_first_table()
    ucds = {f.name: f.ucd for f in table.fields}
    assert ucds["objectId"] == "ID_MAIN" and ucds["coord_ra"] == "POS_EQ_RA_MAIN"
    assert ucds["coord_dec"] == "POS_EQ_DEC_MAIN"
    names = table.array["name"]
    assert np.ma.is_masked(names) or len(names)
    meta = strict_parse(httpx.get(f"{live.base}/scs/obj", params={
        "RA": 0, "DEC": 0, "SR": 0}).content).get_first_table()
    assert len(meta.array) == 0 and len(meta.fields) >= 3
    assert len(service.search(pos=(0.0, 0.0), radius=1.0, maxrec=0)) == 0


def test_overflow_is_signalled(scs: tuple[LiveService, str]) -> None:
    live, url = scs
    body = httpx.get(f"{live.base}/scs/obj", params={"RA": 0, "DEC": 0, "SR": 5 / 3600,
                                                    "MAXREC": 10}).content
    votable = strict_parse(body)
    infos = {i.name: i.value for i in votable.resources[0].infos}
    assert infos["QUERY_STATUS"] == "OVERFLOW"
    ids = [int(v) for v in votable.get_first_table().array["objectId"]]
    assert ids == _expected(url, 0.0, 0.0, 5 / 3600)[:10]
    # Above the service's own limit (--max-rows 500): cut there, and said so.
    big = strict_parse(httpx.get(f"{live.base}/scs/obj", params={
        "RA": 120, "DEC": 30, "SR": 20, "MAXREC": 100000}).content)
    assert len(big.get_first_table().array) == 500
    assert {i.name: i.value for i in big.resources[0].infos}["QUERY_STATUS"] == "OVERFLOW"
    whole = strict_parse(httpx.get(f"{live.base}/scs/obj", params={
        "RA": 0, "DEC": 0, "SR": 5 / 3600}).content)
    assert {i.name: i.value for i in whole.resources[0].infos}["QUERY_STATUS"] == "OK"


@pytest.mark.parametrize("params, message", [
    ({"RA": "abc", "DEC": 0, "SR": 1}, "RA: 'abc' is not a number"),
    ({"RA": 400, "DEC": 0, "SR": 1}, "RA: 400.0 is outside"),
    ({"RA": 10, "DEC": -91, "SR": 1}, "DEC: -91.0 is outside"),
    ({"RA": 10, "DEC": 0, "SR": -1}, "SR: -1.0 is outside"),
    ({"RA": 10, "DEC": 0}, "SR: required parameter missing"),
    ({"RA": 10, "DEC": 0, "SR": "nan"}, "SR: NaN is not allowed"),
    ({"RA": 10, "DEC": 0, "SR": 1, "VERB": 7}, "VERB: 7 is outside"),
    ({"RA": 10, "DEC": 0, "SR": 1, "MAXREC": -3}, "MAXREC: -3 is outside"),
    ({"RA": 10, "DEC": 0, "SR": 60}, "more than this service's limit"),
])
def test_bad_input_is_an_scs_error(scs: tuple[LiveService, str], params: dict[str, Any],
                                   message: str) -> None:
    live, _ = scs
    response = httpx.get(f"{live.base}/scs/obj", params=params)
    assert 400 <= response.status_code < 500
    votable = strict_parse(response.content)
    errors = [i for i in votable.infos if i.name == "Error"]
    assert len(errors) == 1 and message in errors[0].value
    assert "Traceback" not in response.text


def test_pyvo_raises_dal_query_error(scs: tuple[LiveService, str]) -> None:
    live, _ = scs
    service = pyvo.dal.SCSService(f"{live.base}/scs/obj")
    with pytest.raises(pyvo.dal.DALQueryError, match=r"SR: -1.0 is outside"):
        service.search(pos=(10.0, 5.0), radius=-1.0)
    with pytest.raises(pyvo.dal.DALQueryError, match="VERB: 0 is outside"):
        service.search(pos=(10.0, 5.0), radius=0.1, verbosity=0)
    with pytest.raises(pyvo.dal.DALQueryError, match="no catalog 'nope'"):
        pyvo.dal.SCSService(f"{live.base}/scs/nope").search(pos=(10.0, 5.0), radius=0.1)
    with pytest.raises(pyvo.dal.DALQueryError, match="catalog name"):
        pyvo.dal.SCSService(f"{live.base}/scs/Bad%20Name").search(pos=(10.0, 5.0), radius=0.1)


def test_post_and_case_insensitive_names(scs: tuple[LiveService, str], tmp_path: Path) -> None:
    live, url = scs
    posted = httpx.post(f"{live.base}/scs/obj", data={"ra": "0", "dec": "0",
                                                      "sr": str(5 / 3600), "verb": "1"})
    ids = [int(v) for v in strict_parse(posted.content).get_first_table().array["objectId"]]
    assert ids == _expected(url, 0.0, 0.0, 5 / 3600)
