"""The JSON API against the Python API, limits and errors, the OpenAPI surface fuzzed with
schemathesis, the ObsCore SQL helpers, and the RANGE overlap test against brute force."""

from __future__ import annotations

import io
import math
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pyarrow.parquet as pq
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsst.sphgeom import LonLat, UnitVector3d

from service_fixtures import Archive, LiveService, ServiceRoles
from skyreg import Registry
from skyreg.registry.dataset_ids import DatasetKey, dataset_id, parse_dataset_id
from skyreg.service.regions import PolygonShape, RangeShape, polygon_overlaps_box


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_lookups_equal_the_python_api(archive: Archive, service: LiveService) -> None:
    api = f"{service.base}/api/v1"
    with Registry.connect(archive.url) as registry:
        assert httpx.get(f"{api}/counts").json() == registry.counts()
        patch = registry.find_patches(cone=(150.4, 2.4, 0.05), skymap="rings")[0]
        expected = registry.find_ccds(patch=tuple(patch), band="r")
        got = httpx.get(f"{api}/ccds", params={"patch": ",".join(map(str, patch)),
                                               "band": "r", "limit": 10000}).json()
        assert got["total"] == len(expected) > 0
        assert list(zip(*got["columns"].values(), strict=True)) == [tuple(c) for c in expected]
        ccd = expected[0]
        tiles = httpx.get(f"{api}/patches",
                          params={"ccd": f"{ccd.instrument},{ccd.visit},{ccd.detector}"}).json()
        assert tiles["total"] == len(registry.find_patches(ccd=tuple(ccd)))
        cone = registry.find_datasets("raw", cone=(150.4, 2.4, 0.05), instrument="DECam")
        files = httpx.get(f"{api}/datasets/raw", params={"cone": "150.4,2.4,0.05",
                                                         "instrument": "DECam"}).json()
        assert files["columns"]["uri"] == [f.uri for f in cone]
        assert httpx.get(f"{api}/tracts", params={"point": "150.4,2.4"}).json()["total"] == len(
            registry.find_tracts(point=(150.4, 2.4)))
        region = httpx.get(f"{api}/footprint", params={"patch": ",".join(map(str, patch))})
        assert len(region.json()["ra"]) == 4
        assert httpx.get(f"{api}/skymaps").json()[0]["name"] == "rings"


def test_paging_and_downloads(service: LiveService) -> None:
    url = f"{service.base}/api/v1/ccds"
    first = httpx.get(url, params={"cone": "150.4,2.4,0.1", "limit": 7}).json()
    second = httpx.get(first["next"]).json()
    whole = httpx.get(url, params={"cone": "150.4,2.4,0.1", "limit": 14}).json()
    assert first["columns"]["visit"] + second["columns"]["visit"] == whole["columns"]["visit"]
    csv = httpx.get(url, params={"cone": "150.4,2.4,0.1", "limit": 14, "format": "csv"}).text
    assert csv.splitlines()[0] == "instrument,visit,detector" and len(csv.splitlines()) == 15
    parquet = httpx.get(url, params={"cone": "150.4,2.4,0.1", "limit": 14, "format": "parquet"})
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.column("visit").to_pylist() == whole["columns"]["visit"]


@pytest.mark.parametrize(("params", "status"), [
    ({}, 400), ({"cone": "1,2"}, 400), ({"cone": "1,2,x"}, 400), ({"cone": "1,95,1"}, 400),
    ({"patch": "nosuch,1,2"}, 404), ({"patch": "rings,x,2"}, 400),
    ({"cone": "150,2,30"}, 413), ({"cone": "150,2,0.1", "limit": 10**6}, 413),
    ({"cone": "150,2,0.1", "point": "1,2"}, 400), ({"polygon": "0,0,1,0,2,0"}, 400),
    ({"time": "5,1", "cone": "150,2,0.1"}, 400),
    # Query arguments are read by the endpoints themselves, with FastAPI's rules and status.
    ({"cone": "150,2,0.1", "limit": 0}, 422), ({"cone": "150,2,0.1", "limit": "x"}, 422),
    ({"cone": "150,2,0.1", "offset": -1}, 422), ({"cone": "150,2,0.1", "format": "xml"}, 422),
    ({"cone": "150,2,0.1", "inner": "maybe"}, 422),
])
def test_bad_requests_are_4xx_with_a_reason(service: LiveService, params: dict[str, object],
                                            status: int) -> None:
    response = httpx.get(f"{service.base}/api/v1/ccds", params=params)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_query_arguments_keep_their_meaning(archive: Archive, service: LiveService) -> None:
    """The last of repeated scalars counts, booleans read as FastAPI reads them, repeated
    lists OR, and /openapi.json still documents every argument."""
    url = f"{service.base}/api/v1/ccds"
    plain = httpx.get(url, params={"cone": "150.4,2.4,0.1", "limit": 5}).json()
    repeated = httpx.get(url, params=[("cone", "150.4,2.4,0.1"), ("limit", "9"),
                                      ("limit", "5")]).json()
    assert repeated["columns"] == plain["columns"] and repeated["limit"] == 5
    def totals(word: str) -> int:
        return int(httpx.get(f"{service.base}/api/v1/patches", params={
            "cone": "150.4,2.4,0.05", "inner": word}).json()["total"])

    with Registry.connect(archive.url) as registry:
        inner = len(registry.find_patches(cone=(150.4, 2.4, 0.05), inner=True))
        outer = len(registry.find_patches(cone=(150.4, 2.4, 0.05)))
    assert {totals(w) for w in ("true", "1", "yes", "on", "TRUE")} == {inner}
    assert {totals(w) for w in ("false", "0", "no", "off")} == {outer}
    both = httpx.get(url, params=[("cone", "150.4,2.4,0.1"), ("band", "g"), ("band", "r"),
                                  ("limit", 10000)]).json()
    g = httpx.get(url, params={"cone": "150.4,2.4,0.1", "band": "g", "limit": 10000}).json()
    r = httpx.get(url, params={"cone": "150.4,2.4,0.1", "band": "r", "limit": 10000}).json()
    assert both["total"] == g["total"] + r["total"] > 0
    schema = httpx.get(f"{service.base}/openapi.json").json()
    names = {p["name"] for p in schema["paths"]["/api/v1/ccds"]["get"]["parameters"]}
    assert {"patch", "tract", "cone", "polygon", "point", "instrument", "band", "time",
            "inner", "limit", "offset", "format"} <= names


def test_offline_docs(service: LiveService) -> None:
    page = httpx.get(f"{service.base}/docs").text
    assert "cdn" not in page.lower() and "/static-docs/swagger-ui-bundle.js" in page
    assert httpx.get(f"{service.base}/static-docs/swagger-ui-bundle.js").status_code == 200
    assert "fonts.googleapis" not in httpx.get(f"{service.base}/redoc").text


def test_no_request_makes_a_server_error(service: LiveService) -> None:
    """schemathesis fuzzes every operation of /openapi.json (bounded): nothing answers 5xx."""
    schema = schemathesis.openapi.from_url(f"{service.base}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            response = case.call(timeout=30)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query}: "
                                f"{response.status_code} {response.text[:300]}")

        check()
    assert not failures, "\n".join(failures)


def test_the_read_role_answers_sia_datalink_and_soda(archive: Archive, service: LiveService,
                                                     service_roles: ServiceRoles) -> None:
    """The shared service reads through a role made by ensure_roles after the migrations
    (which created the ivoa schema before the role existed): the IVOA endpoints, which read
    ivoa.obscore, work through it."""
    assert f"database connections use role {service_roles.reader}" in service.log_text()
    sia = httpx.get(f"{service.base}/sia2/query", params={
        "POS": "CIRCLE 150.45 2.45 0.05", "INSTRUMENT": "DECam", "MAXREC": "100"})
    assert sia.status_code == 200, sia.text
    assert b"permission denied" not in sia.content
    with Registry.connect(archive.url) as registry:
        rice = next(r for r in registry.find_datasets("raw", instrument="DECam")
                    if r.visit == 950)
    identifier = dataset_id(DatasetKey("raw", instrument="DECam", visit=950,
                                       detector=rice.detector))
    assert identifier.encode() in sia.content
    links = httpx.get(f"{service.base}/datalink/links", params={"ID": identifier})
    assert links.status_code == 200 and b"#cutout" in links.content, links.text
    cut = httpx.get(f"{service.base}/soda/sync", params={
        "ID": identifier, "CIRCLE": "150.45 2.45 0.002"})
    assert cut.status_code == 200 and cut.content.startswith(b"SIMPLE"), cut.text


def test_uri_escape_in_sql_equals_python(archive: Archive) -> None:
    names = ["plain", "with space", "a/b?c#d", "ümlaut", "100%", "~._-", "", "日本", "x\ty"]
    with psycopg.connect(_plain(archive.url)) as connection:
        for name in names:
            sql = connection.execute("SELECT ivoa.skyreg_uri_escape(%s)", (name,)).fetchone()
            assert sql is not None and sql[0] == quote(name, safe=""), name


@given(st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s),
       st.integers(-(2**63), 2**63 - 1), st.integers(0, 10**6))
def test_dataset_ids_round_trip(name: str, visit: int, detector: int) -> None:
    key = DatasetKey("raw", instrument=name, visit=visit, detector=detector)
    assert parse_dataset_id(dataset_id(key)) == key


def test_obscore_key_lookups_use_the_indexes(archive: Archive) -> None:
    from skyreg.service import obscore

    shape, _ = obscore.constraint_params({}, {}, None, None)
    sql = obscore.rows_by_ccd_keys(shape).replace("%(types)s", "ARRAY['raw']").replace(
        "%(instruments)s", "ARRAY['LSSTCam']").replace("%(visits)s", "ARRAY[1::bigint]").replace(
        "%(detectors)s", "ARRAY[1::bigint]")
    with psycopg.connect(_plain(archive.url)) as connection:
        plan = "\n".join(r[0] for r in connection.execute("EXPLAIN " + sql))
    assert "Seq Scan on ccd_dataset" not in plan and "pk_ccd_dataset" in plan, plan


def _sample_inside(polygon: PolygonShape, n: int = 40) -> list[tuple[float, float]]:
    vertices = polygon.region().getVertices()
    points = []
    for i in range(n + 1):
        for j in range(n + 1 - i):
            a, b = i / n, j / n
            c = 1.0 - a - b
            for k in range(1, len(vertices) - 1):
                v = vertices[0] * c + vertices[k] * a + vertices[k + 1] * b
                p = LonLat(UnitVector3d(v))
                points.append((p.getLon().asDegrees(), p.getLat().asDegrees()))
    return points


@settings(max_examples=150, deadline=None)
@given(st.floats(0, 359), st.floats(-80, 80), st.floats(0.05, 3), st.floats(0, 359),
       st.floats(-85, 85), st.floats(0.05, 3), st.floats(0.05, 3))
def test_range_overlap_against_sampling(ra: float, dec: float, size: float, bra: float,
                                        bdec: float, width: float, height: float) -> None:
    """polygon_overlaps_box agrees with a dense sample wherever the sample is conclusive."""
    polygon = PolygonShape((ra, (ra + size) % 360, (ra + size) % 360, ra),
                           (dec, dec, min(dec + size, 89.0), min(dec + size, 89.0)))
    box = RangeShape(bra, (bra + width) % 360, max(bdec - height, -90), min(bdec + height, 90))
    answer = polygon_overlaps_box(polygon.region(), box)
    # Boundaries that touch (to ~1e-15 rad) may go either way (service/regions.py): a sample
    # point proves an overlap only when it is inside the box by a margin.
    eps = 1e-9
    clearly = RangeShape(bra + eps, (bra + width - eps) % 360, box.dec_min + eps,
                         box.dec_max - eps)
    if any(clearly.contains_lonlat(r % 360, d) for r, d in _sample_inside(polygon)):
        assert answer
    elif answer:
        # The sample missed: the overlap must then be thin, near the polygon's boundary.
        nearest = min(math.hypot(((r - bra) + 180) % 360 - 180, d - bdec)
                      for r, d in _sample_inside(polygon, 10))
        assert nearest < 2 * (size + width + height)


def test_band_table_in_the_docs_is_the_database_one(archive: Archive) -> None:
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs" / "service.md").read_text()
    rows = {(b, float(lo), float(hi)) for b, lo, hi in
            re.findall(r"^\| (\w) \| ([\d.e+-]+) \| ([\d.e+-]+) \|$", doc, flags=re.MULTILINE)}
    with psycopg.connect(_plain(archive.url)) as connection:
        stored = set(connection.execute("SELECT band, em_min, em_max FROM ivoa.skyreg_band"))
    assert rows == stored and len(rows) == 7


def test_more_requests_than_connections_wait_for_one(archive: Archive) -> None:
    """A worker answers more concurrent requests than it has database connections: they
    wait for a registry instead of failing once the engine's pool is exhausted."""
    import threading
    import time

    from skyreg.service.database import RegistryPool
    from skyreg.service.settings import ServiceSettings

    pool = RegistryPool(ServiceSettings(database_url=archive.url, pool_size=2, read_role=None,
                                        query_timeout_s=5.0))
    errors: list[BaseException] = []
    most = [0]
    busy = [0]
    lock = threading.Lock()

    def request() -> None:
        try:
            with pool.registry() as registry:
                with lock:
                    busy[0] += 1
                    most[0] = max(most[0], busy[0])
                registry.counts()
                time.sleep(0.1)
                with lock:
                    busy[0] -= 1
        except BaseException as err:  # collected: the assertion below names it
            errors.append(err)

    try:
        threads = [threading.Thread(target=request) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        pool.close()
    assert not errors, errors
    assert most[0] == 2
