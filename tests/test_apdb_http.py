"""``/api/v1/apdb/...`` on a live server, read through the reader role made by ``skyreg db
roles`` (which must grant the apdb schema): exact answers, paging, formats, bad input as 4xx."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pandas as pd
import pytest
from lsst.sphgeom import Angle, Circle, LonLat, UnitVector3d

from apdb_builder import ccd_frames, random_objects
from service_fixtures import LiveService, live_service
from skyreg import Registry
from skyreg.db.engine import make_engine
from skyreg.db.roles import drop_roles, ensure_roles
from skyreg.synthetic.apdb_catalogs import Box

T0 = 60100.0


@pytest.fixture(scope="module")
def apdb_service(database_factory: Callable[[], str],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveService, str]]:
    url = database_factory()
    ids, ra, dec = random_objects(400, Box(359.8, 0.2, 10.0, 10.3), seed=21)
    with Registry.connect(url) as registry:
        for visit, time in ((1, T0 - 500.0), (2, T0 - 10.0)):
            frames = ccd_frames(visit, 9, time, ids, ra, dec, seed=visit)
            registry.apdb.store(time, frames.objects, frames.sources, frames.forced)
    reader, writer = f"apdb_reader_{os.getpid()}", f"apdb_writer_{os.getpid()}"
    engine = make_engine(url)
    ensure_roles(engine, reader, writer)
    try:
        with live_service(url, tmp_path_factory.mktemp("apdb-serve"), "--read-role",
                          reader) as live:
            yield live, url
    finally:
        drop_roles(engine, reader, writer)
        engine.dispose()


def test_dia_objects_by_cone_and_polygon(apdb_service: tuple[LiveService, str]) -> None:
    live, url = apdb_service
    circle = Circle(UnitVector3d(LonLat.fromDegrees(0.0, 10.15)), Angle.fromDegrees(0.1))
    with Registry.connect(url) as registry:
        expected = registry.apdb.get_dia_objects(circle)
    assert 20 < len(expected) < 400
    answer = httpx.get(f"{live.base}/api/v1/apdb/dia-objects",
                       params={"cone": "0,10.15,0.1", "limit": 10000}, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total"] == len(expected)
    assert sorted(body["columns"]["diaObjectId"]) == sorted(expected["diaObjectId"].tolist())
    assert set(body["columns"]["validityStartMjdTai"]) == {T0 - 10.0}
    assert body["columns"]["validityEndMjdTai"][0] is None
    # Paging: pages of 7 add up to the whole answer, in key order.
    seen: list[int] = []
    next_url: str | None = f"{live.base}/api/v1/apdb/dia-objects?cone=0,10.15,0.1&limit=7"
    while next_url:
        page = httpx.get(next_url, timeout=30).json()
        seen += page["columns"]["diaObjectId"]
        next_url = page["next"]
    assert seen == sorted(expected["diaObjectId"].tolist())
    polygon = httpx.get(f"{live.base}/api/v1/apdb/dia-objects", timeout=30, params={
        "polygon": "359.9,10.05,0.1,10.05,0.1,10.25,359.9,10.25", "format": "parquet",
        "limit": 10000})
    assert polygon.status_code == 200
    frame = pd.read_parquet(io.BytesIO(polygon.content))
    assert len(frame) > 0 and ((frame["ra"] > 359.9) | (frame["ra"] < 0.1)).all()
    assert frame["raErr"].dtype == np.float32


def test_history_reads(apdb_service: tuple[LiveService, str]) -> None:
    live, url = apdb_service
    circle = Circle(UnitVector3d(LonLat.fromDegrees(0.05, 10.1)), Angle.fromDegrees(0.05))
    with Registry.connect(url) as registry:
        objects = registry.apdb.get_dia_objects(circle)
        ids = objects["diaObjectId"].tolist()
        recent = registry.apdb.get_dia_sources(object_ids=ids, visit_time=T0)
        everything = registry.apdb.get_dia_forced_sources(object_ids=ids, months=None)
    base = f"{live.base}/api/v1/apdb"
    answer = httpx.get(f"{base}/dia-sources", timeout=30, params={
        "object_ids": ",".join(map(str, ids)), "visit_time": T0, "limit": 10000})
    assert answer.status_code == 200, answer.text
    assert sorted(answer.json()["columns"]["diaSourceId"]) == sorted(recent["diaSourceId"])
    assert set(answer.json()["columns"]["visit"]) == {2}
    forced = httpx.get(f"{base}/dia-forced-sources", timeout=30, params={
        "object_ids": ",".join(map(str, ids)), "all": "true", "format": "csv",
        "limit": 10000})
    assert forced.status_code == 200
    assert len(pd.read_csv(io.StringIO(forced.text))) == len(everything) == 2 * len(ids)
    by_region = httpx.get(f"{base}/dia-sources", timeout=30, params={
        "cone": "0.05,10.1,0.05", "visit_time": T0, "months": 24}).json()
    assert set(by_region["columns"]["visit"]) == {1, 2}
    for fmt in ("json", "csv", "parquet"):  # an empty answer, of text and flag columns too
        empty = httpx.get(f"{base}/dia-sources", timeout=30, params={
            "object_ids": "424242", "all": "true", "format": fmt})
        assert empty.status_code == 200, empty.text
        assert empty.headers["X-Total-Count"] == "0"
    stored = httpx.get(f"{base}/contains-visit-detector", params={"visit": 2, "detector": 9})
    assert stored.json() == {"visit": 2, "detector": 9, "stored": True}
    missing = httpx.get(f"{base}/contains-visit-detector", params={"visit": 3, "detector": 9})
    assert missing.json()["stored"] is False


@pytest.mark.parametrize(("path", "params", "status", "reason"), [
    ("dia-objects", {}, 400, "give exactly one region"),
    ("dia-objects", {"cone": "1,2"}, 400, "cone: expected RA,DEC,RADIUS"),
    ("dia-objects", {"cone": "1,95,0.1"}, 400, "dec"),
    ("dia-objects", {"cone": "1,2,30"}, 413, "square degrees"),
    ("dia-objects", {"cone": "0,10,0.1", "polygon": "0,0,1,0,1,1"}, 400, "exactly one"),
    ("dia-objects", {"cone": "0,10,0.1", "limit": 10**9}, 413, "at most"),
    ("dia-objects", {"polygon": "0,0,1,0"}, 400, "at least 3"),
    ("dia-sources", {"cone": "0,10,0.1"}, 400, "visit_time: required"),
    ("dia-sources", {"object_ids": "1,x", "visit_time": T0}, 400, "not an integer"),
    ("dia-sources", {"object_ids": "1,,2", "all": "true"}, 400, "object_ids"),
    ("dia-sources", {"cone": "0,10,0.1", "visit_time": T0, "months": -1}, 422, "months"),
    ("dia-forced-sources", {"visit_time": T0}, 400, "give exactly one region"),
    ("contains-visit-detector", {"visit": "a", "detector": 1}, 422, "visit"),
    ("contains-visit-detector", {"visit": 1}, 422, "detector"),
])
def test_bad_input_is_a_4xx_with_a_reason(apdb_service: tuple[LiveService, str], path: str,
                                          params: dict[str, object], status: int,
                                          reason: str) -> None:
    live, _ = apdb_service
    answer = httpx.get(f"{live.base}/api/v1/apdb/{path}", params=params, timeout=30)
    assert answer.status_code == status, answer.text
    assert reason in answer.text


def test_openapi_lists_the_endpoints(apdb_service: tuple[LiveService, str]) -> None:
    live, _ = apdb_service
    paths = httpx.get(f"{live.base}/openapi.json", timeout=30).json()["paths"]
    assert {"/api/v1/apdb/dia-objects", "/api/v1/apdb/dia-sources",
            "/api/v1/apdb/dia-forced-sources", "/api/v1/apdb/contains-visit-detector"} <= set(
        paths)
