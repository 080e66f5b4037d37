"""The Level-1 store: exact region reads, validity versions, idempotent and concurrent stores."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsst.sphgeom import Angle, Circle, ConvexPolygon, LonLat, Region, UnitVector3d
from lsst.sphgeom import Box as SkyBox

from apdb_builder import ccd_frames, random_objects
from skyreg import Registry
from skyreg.catalogs.apdb_binary import copy_out, to_binary
from skyreg.catalogs.apdb_frames import add_pixels, layout, to_arrow, to_csv
from skyreg.catalogs.apdb_store import ApdbConflictError, store_digest
from skyreg.db.engine import make_engine
from skyreg.db.migrate import upgrade
from skyreg.errors import InputError
from skyreg.schema.apdb import APDB_SCHEMA, apdb_metadata, apdb_schema_version
from skyreg.synthetic.apdb_catalogs import Box, dia_objects

T0 = 60000.0


def _contains(region: Region, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Brute force, one point at a time with sphgeom's scalar test."""
    return np.array([region.contains(UnitVector3d(LonLat.fromDegrees(float(a), float(b))))
                     for a, b in zip(ra, dec, strict=True)], dtype=bool)


def test_migrated_apdb_schema_equals_the_yaml(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    upgrade(engine)
    metadata = apdb_metadata()

    def only_apdb(name: str | None, kind: str, parent: dict[str, str | None]) -> bool:
        return kind != "schema" or name == APDB_SCHEMA

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "include_schemas": True, "include_name": only_apdb})
        assert compare_metadata(context, metadata) == []
        version = connection.exec_driver_sql(
            "SELECT value FROM apdb.metadata WHERE name = 'version:schema'").scalar_one()
        columns = connection.exec_driver_sql(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'apdb' "
            "AND table_name = 'DiaObject'").scalar_one()
    engine.dispose()
    assert version == apdb_schema_version()
    assert columns == 83 + 1  # Rubin's columns and pixelId


@pytest.fixture(scope="module")
def seeded(database_factory: Callable[..., str]) -> str:
    """A registry holding 3,000 objects over RA 359-1 (two versions each) near the equator,
    120 at the north pole and sources over a year."""
    url = database_factory()
    with Registry.connect(url) as registry:
        apdb = registry.apdb
        ids, ra, dec = random_objects(3000, Box(359.0, 1.0, -1.0, 1.0), seed=1)
        pole_ids, pole_ra, pole_dec = random_objects(120, Box(0.0, 360.0, 89.5, 90.0), seed=2,
                                                     first_id=10_000)
        ids, ra, dec = (np.concatenate([ids, pole_ids]), np.concatenate([ra, pole_ra]),
                        np.concatenate([dec, pole_dec]))
        for visit, time in ((1, T0 - 400.0), (2, T0 - 100.0)):
            frames = ccd_frames(visit, 0, time, ids, ra, dec, seed=visit)
            apdb.store(time, frames.objects, frames.sources, frames.forced)
    return url


@pytest.fixture(scope="module")
def seeded_registry(seeded: str) -> Iterator[tuple[Registry, pd.DataFrame, pd.DataFrame]]:
    """The seeded registry, open, with every latest DiaObject and every DiaSource."""
    with Registry.connect(seeded) as registry:
        apdb = registry.apdb
        yield (registry, apdb._select("DiaObject", ['"validityEndMjdTai" IS NULL']),
               apdb._select("DiaSource", ["TRUE"]))


def _regions() -> st.SearchStrategy[Region]:
    centres = st.tuples(st.sampled_from([0.0, 359.9, 0.2, 180.0]), st.floats(-1.5, 1.5))
    pole = st.tuples(st.floats(0.0, 360.0), st.floats(89.0, 90.0))
    circles = st.builds(
        lambda c, r: Circle(UnitVector3d(LonLat.fromDegrees(*c)), Angle.fromDegrees(r)),
        st.one_of(centres, pole), st.floats(0.001, 1.2))
    polygons = st.builds(
        lambda c, h: ConvexPolygon([UnitVector3d(LonLat.fromDegrees(c[0] + dx, c[1] + dy))
                                    for dx, dy in ((-h, -h), (h, -h), (h * 1.3, h), (-h, h))]),
        centres, st.floats(0.01, 0.8))
    boxes = st.builds(
        lambda c, w, h: SkyBox(LonLat.fromDegrees(c[0] - w, max(c[1] - h, -90.0)),
                               LonLat.fromDegrees(c[0] + w, min(c[1] + h, 90.0))),
        st.one_of(centres, pole), st.floats(0.001, 1.5), st.floats(0.001, 1.0))
    return st.one_of(circles, polygons, boxes)


@settings(max_examples=30, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(region=_regions())
def test_region_reads_are_exact(seeded_registry: tuple[Registry, pd.DataFrame, pd.DataFrame],
                                region: Region) -> None:
    registry, everything, all_sources = seeded_registry
    apdb = registry.apdb
    expected = set(everything["diaObjectId"][_contains(region, everything["ra"].to_numpy(),
                                                       everything["dec"].to_numpy())])
    got = apdb.get_dia_objects(region)
    assert set(got["diaObjectId"]) == expected
    assert len(got) == len(expected)  # latest versions only: one row per object
    sources = apdb.get_dia_sources(region, visit_time=T0, months=None)
    inside = _contains(region, all_sources["ra"].to_numpy(), all_sources["dec"].to_numpy())
    assert set(sources["diaSourceId"]) == set(all_sources["diaSourceId"][inside])
    forced = apdb.get_dia_forced_sources(region, visit_time=T0, months=None)
    assert set(forced["diaObjectId"]) == expected  # forced photometry at the positions
    assert len(forced) == 2 * len(expected)  # of both visits


def test_versions_history_window_and_values(seeded: str) -> None:
    with Registry.connect(seeded) as registry:
        apdb = registry.apdb
        region = Circle(UnitVector3d(LonLat.fromDegrees(0.0, 0.0)), Angle.fromDegrees(0.3))
        objects = apdb.get_dia_objects(region)
        assert len(objects) > 50
        assert (objects["validityStartMjdTai"] == T0 - 100.0).all()
        assert objects["validityEndMjdTai"].isna().all()
        versions = apdb._select("DiaObject", [
            f'"diaObjectId" = {int(objects["diaObjectId"].iloc[0])}'])
        assert sorted(versions["validityStartMjdTai"]) == [T0 - 400.0, T0 - 100.0]
        first = versions.sort_values("validityStartMjdTai").iloc[0]
        assert first["validityEndMjdTai"] == T0 - 100.0
        ids = objects["diaObjectId"].to_numpy()
        recent = apdb.get_dia_sources(object_ids=ids, visit_time=T0, months=12)
        every = apdb.get_dia_sources(object_ids=ids, visit_time=T0, months=None)
        assert set(recent["visit"]) == {2} and set(every["visit"]) == {1, 2}
        assert set(recent["diaObjectId"]) <= set(ids)
        # Values come back as stored, with the schema's types.
        assert objects["ra"].dtype == np.float64 and objects["raErr"].dtype == np.float32
        assert objects["nDiaSources"].dtype == np.int32
        assert apdb.contains_visit_detector(2, 0) and not apdb.contains_visit_detector(2, 1)


def test_store_is_idempotent_and_refuses_a_different_rerun(database_url: str) -> None:
    ids, ra, dec = random_objects(200, Box(10.0, 10.2, 5.0, 5.2), seed=3)
    frames = ccd_frames(7, 3, T0, ids, ra, dec, seed=3)
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        first = apdb.store(T0, frames.objects, frames.sources, frames.forced)
        assert not first.already_stored and first.objects_inserted == 200
        assert first.sources_inserted == len(frames.sources)
        again = apdb.store(T0, frames.objects.iloc[::-1], frames.sources, frames.forced)
        assert again.already_stored
        counts = {t: apdb.count(t) for t in ("DiaObject", "DiaSource", "DiaForcedSource")}
        assert counts == {"DiaObject": 200, "DiaSource": len(frames.sources),
                          "DiaForcedSource": 200}
        changed = frames.sources.copy()
        changed.loc[5, "psfFlux"] = -1.0
        bad_id = int(changed.loc[5, "diaSourceId"])
        with pytest.raises(ApdbConflictError, match=f"diaSourceId={bad_id}"):
            apdb.store(T0, frames.objects, changed, frames.forced)
        with pytest.raises(ApdbConflictError, match="was stored and is missing now"):
            apdb.store(T0, frames.objects, frames.sources.iloc[1:], frames.forced)
        assert {t: apdb.count(t) for t in counts} == counts
        # Bad input is named: table, row, column.
        broken = frames.objects.copy()
        broken.loc[4, "dec"] = 95.0
        with pytest.raises(InputError, match=r"row 4.*'dec'"):
            apdb.store(T0 + 1, broken)
        with pytest.raises(InputError, match="'nDiaSources'"):
            apdb.store(T0 + 1, frames.objects.drop(columns=["nDiaSources"]))
        with pytest.raises(InputError, match="unknown column 'bogus'"):
            apdb.store(T0 + 1, frames.objects.assign(bogus=1))
        with pytest.raises(InputError, match="appears twice"):
            apdb.store(T0 + 1, pd.concat([frames.objects, frames.objects.iloc[:1]]))


def _chains(apdb: Any) -> dict[int, tuple[list[float], list[float]]]:
    """Every stored DiaObject's version starts and ends (NaN: open), in start order."""
    rows = apdb._select("DiaObject", ["TRUE"]).sort_values(
        ["diaObjectId", "validityStartMjdTai"])
    return {int(object_id): (versions["validityStartMjdTai"].tolist(),
                             versions["validityEndMjdTai"].tolist())
            for object_id, versions in rows.groupby("diaObjectId")}


def test_out_of_order_versions_keep_one_chain(database_url: str) -> None:
    ids, ra, dec = random_objects(20, Box(20.0, 20.1, 0.0, 0.1), seed=4)
    rng = np.random.default_rng(0)
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        for time in (T0 + 2, T0, T0 + 1):
            apdb.store(time, dia_objects(ids, ra, dec, rng))
        for starts, ends in _chains(apdb).values():
            assert starts == [T0, T0 + 1, T0 + 2]
            assert ends[:2] == [T0 + 1, T0 + 2] and pd.isna(ends[2])
        circle = Circle(UnitVector3d(LonLat.fromDegrees(20.05, 0.05)), Angle.fromDegrees(1))
        assert (apdb.get_dia_objects(circle)["validityStartMjdTai"] == T0 + 2).all()


def _store_ccd(url: str, detector: int, ids: np.ndarray, ra: np.ndarray, dec: np.ndarray,
               rounds: int) -> None:
    with Registry.connect(url) as registry:
        for round_ in range(rounds):
            frames = ccd_frames(100 + round_, detector, T0 + round_, ids, ra, dec,
                                seed=detector * 100 + round_)
            registry.apdb.store(frames.time, frames.objects, frames.sources, frames.forced)


def test_concurrent_writers_on_overlapping_ccds(database_url: str) -> None:
    """Four writers, neighbouring CCDs sharing a strip of objects, three visits each: every
    object ends with one chain of versions, one per visit, and nothing is lost."""
    shared, sra, sdec = random_objects(100, Box(30.0, 30.2, 0.0, 0.05), seed=5)
    jobs = []
    for detector in range(4):
        own, ora, odec = random_objects(300, Box(30.0, 30.2, 0.1 + detector, 0.3 + detector),
                                        seed=10 + detector, first_id=1000 * (detector + 1))
        jobs.append((database_url, detector, np.concatenate([shared, own]),
                     np.concatenate([sra, ora]), np.concatenate([sdec, odec]), 3))
    # fork: the children inherit no open connection of ours and start in no time.
    context = multiprocessing.get_context("fork")
    with context.Pool(4) as pool:
        pool.starmap(_store_ccd, jobs)
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        rows = apdb._select("DiaObject", ["TRUE"])
        assert len(rows) == (100 + 4 * 300) * 3  # one version per object and visit
        latest = rows[rows["validityEndMjdTai"].isna()]
        assert len(latest) == 1300 and latest["diaObjectId"].is_unique
        assert (latest["validityStartMjdTai"] == T0 + 2).all()
        assert apdb.count("DiaForcedSource") == 400 * 4 * 3
        for visit in (100, 101, 102):
            assert all(apdb.contains_visit_detector(visit, d) for d in range(4))


def test_nulls_and_texts_read_back_as_stored(database_url: str) -> None:
    """NULL floats read as NaN, NULL integers make the column float with NaN, NULL flags are
    None, texts come back as written (the binary reader's fixed-width encodings)."""
    ids, ra, dec = random_objects(5, Box(50.0, 50.01, 0.0, 0.01), seed=6)
    frames = ccd_frames(3, 2, T0, ids, ra, dec, seed=6, source_fraction=1.0)
    sources = frames.sources.copy()
    sources["band"] = ["g", "r", None, "é", "y"]
    sources["reliabilityVersion"] = ["v1.2.3", None, "", "ü7", "x"]
    sources["ssObjectId"] = pd.array([None, 5, None, 7, 8], dtype="Int64")
    sources["isDipole"] = pd.array([True, None, False, True, None], dtype="boolean")
    sources["psfFlux"] = [np.nan, 1.5, None, 2.5, 3.5]
    forced = frames.forced.sort_values("diaObjectId").reset_index(drop=True)
    forced["band"] = ["g", None, "r", "", "i"]  # ASCII only, with a NULL and an empty text
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        apdb.store(T0, frames.objects, sources, forced)
        back_forced = apdb.get_dia_forced_sources(object_ids=ids, months=None).sort_values(
            "diaObjectId")
        bands = back_forced["band"].tolist()
        assert bands[:1] == ["g"] and pd.isna(bands[1]) and bands[2:] == ["r", "", "i"]
        back = apdb.get_dia_sources(object_ids=ids, months=None).sort_values("diaSourceId")
        given_ = sources.sort_values("diaSourceId")
        assert back["band"].tolist()[:2] == ["g", "r"] and pd.isna(back["band"].iloc[2])
        assert back["band"].tolist()[3:] == ["é", "y"]
        assert back["reliabilityVersion"].tolist()[2:] == ["", "ü7", "x"]
        assert pd.isna(back["reliabilityVersion"].iloc[1])
        assert back["ssObjectId"].dtype == np.float64
        assert np.isnan(back["ssObjectId"].iloc[0]) and back["ssObjectId"].iloc[1] == 5
        assert back["isDipole"].tolist() == [True, None, False, True, None]
        assert np.isnan(back["psfFlux"].iloc[0]) and np.isnan(back["psfFlux"].iloc[2])
        assert back["psfFlux"].iloc[3] == 2.5
        assert (back["ra"].to_numpy() == given_["ra"].to_numpy()).all()  # exact round trip
        assert back["diaObjectId"].dtype == np.int64 and back["detector"].dtype == np.int16


def test_binary_copy_writes_what_csv_writes(database_url: str) -> None:
    """The binary COPY writer against Arrow's CSV (what stores used before): every type of
    the APDB tables, NULLs, multi-byte and empty texts, sliced arrays, uniform rows."""
    rng = np.random.default_rng(11)
    n = 300

    def column(values: np.ndarray, kind: pa.DataType, nulls: bool) -> pa.Array:
        return pa.array(values, kind, mask=(rng.random(n) < 0.2) if nulls else None)

    def table(nulls: bool) -> pa.Table:
        texts = np.array(["", "é", "abcdefg", "x y"] if nulls else ["abc", "déf"])
        return pa.table({
            "i2": column(rng.integers(-30000, 30000, n), pa.int16(), nulls),
            "i4": column(rng.integers(-2**31, 2**31 - 1, n), pa.int32(), nulls),
            "i8": column(rng.integers(-2**62, 2**62, n), pa.int64(), nulls),
            "f4": column(rng.normal(size=n).astype(np.float32), pa.float32(), nulls),
            "f8": column(rng.normal(size=n) * 1e300, pa.float64(), nulls),
            "b": column(rng.random(n) < 0.5, pa.bool_(), nulls),
            "t": column(texts[rng.integers(0, len(texts), n)], pa.string(), nulls),
            "c": column(np.array(["r", "g"])[rng.integers(0, 2, n)], pa.string(), nulls),
            "ts": column(rng.integers(0, 2**50, n), pa.timestamp("us"), nulls)})

    with Registry.connect(database_url) as registry, registry.engine.begin() as session:
        connection: Any = session.connection.driver_connection
        connection.execute("CREATE TEMP TABLE a (i2 int2, i4 int4, i8 int8, f4 float4, "
                           "f8 float8, b bool, t varchar(7), c char(1), ts timestamp)")
        connection.execute("CREATE TEMP TABLE b (LIKE a)")
        for data in (table(True), table(True).slice(7, 100), table(False),
                     table(False).slice(3, 50), table(True).slice(0, 0)):
            binary, columns = to_binary(data, data.column_names)
            text, _ = to_csv(data, data.column_names)
            connection.execute("TRUNCATE a; TRUNCATE b")
            with connection.cursor().copy(
                    f"COPY a ({', '.join(columns)}) FROM STDIN (FORMAT binary)") as copy:
                if binary:
                    copy.write(binary)
            with connection.cursor().copy(
                    f"COPY b ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as copy:
                if text:
                    copy.write(text)
            row = connection.execute(
                "SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM ((TABLE a EXCEPT ALL "
                "TABLE b) UNION ALL (TABLE b EXCEPT ALL TABLE a)) AS d)").fetchone()
            assert row == (data.num_rows, 0)
    with pytest.raises(ValueError, match="no binary COPY encoding"):
        to_binary(pa.table({"x": pa.array([[1]])}), ["x"])


def test_rerun_of_a_ccd_with_a_csv_digest(database_url: str) -> None:
    """A CCD whose digest was recorded over CSV (before the binary format) is still
    recognised as stored; a CSV digest of other rows is still refused."""
    ids, ra, dec = random_objects(40, Box(60.0, 60.1, 0.0, 0.1), seed=12)
    frames = ccd_frames(8, 1, T0, ids, ra, dec, seed=12)
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        apdb.store(T0, frames.objects, frames.sources, frames.forced)
        stored = {name: apdb._select(name, ["TRUE"]) for name in ("DiaObject", "DiaSource",
                                                                   "DiaForcedSource")}
        csv: dict[str, tuple[bytes, tuple[str, ...]]] = {}
        for name, frame in stored.items():
            columns = [c for c in layout(name).stored_columns if c in frame.columns
                       and c != "validityEndMjdTai"]
            table = add_pixels({name: to_arrow(frame[columns], name, pixel=False)})[name]
            table = table.sort_by([(k, "ascending") for k in layout(name).key])
            csv[name] = to_csv(table, layout(name).stored_columns)
        legacy = store_digest(T0, csv, legacy=True)
        with registry.engine.begin() as connection:
            connection.exec_driver_sql(
                "UPDATE apdb.skyreg_stored_ccd SET digest = %(d)s WHERE visit = 8",
                {"d": legacy})
        assert apdb.store(T0, frames.objects, frames.sources, frames.forced).already_stored
        with registry.engine.begin() as connection:
            connection.exec_driver_sql(
                "UPDATE apdb.skyreg_stored_ccd SET digest = %(d)s WHERE visit = 8",
                {"d": "0" * 64})
        with pytest.raises(ApdbConflictError, match="visit 8 detector 1"):
            apdb.store(T0, frames.objects, frames.sources, frames.forced)


def test_contains_visit_detector_is_never_prepared(database_url: str) -> None:
    """Its generic plan scans DiaForcedSource: the read session must not prepare it."""
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        for visit in range(8):
            assert not apdb.contains_visit_detector(visit, 0)

        def prepared(driver: Any) -> int:
            row = driver.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE "
                "'%skyreg_stored_ccd%'").fetchone()
            return int(row[0])

        assert apdb.reads.read(prepared) == 0


def test_one_store_of_newer_new_and_older_versions(database_url: str) -> None:
    """One call mixing objects seen before (its version is the newest), new objects and
    objects already stored later: every chain comes out right."""
    ids, ra, dec = random_objects(30, Box(70.0, 70.1, 0.0, 0.1), seed=13)
    rng = np.random.default_rng(13)
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        apdb.store(T0, dia_objects(ids[:10], ra[:10], dec[:10], rng))  # seen before
        apdb.store(T0 + 5, dia_objects(ids[10:20], ra[10:20], dec[10:20], rng))  # later
        report = apdb.store(T0 + 1, dia_objects(ids, ra, dec, rng))
        assert report.objects_inserted == 30
        for object_id, (starts, ends) in _chains(apdb).items():
            if object_id in ids[:10]:
                assert starts == [T0, T0 + 1] and ends[0] == T0 + 1 and pd.isna(ends[1])
            elif object_id in ids[10:20]:
                assert starts == [T0 + 1, T0 + 5] and ends[0] == T0 + 5 and pd.isna(ends[1])
            else:
                assert starts == [T0 + 1] and pd.isna(ends[0])


def test_newest_and_new_objects_are_copied_straight_in(database_url: str) -> None:
    """A visit's store: objects seen before (its versions the newest) and new ones. They go
    straight into DiaObject; the chains come out as by the general path, and a neighbouring
    CCD's version of the same visit still replaces, never duplicates."""
    ids, ra, dec = random_objects(40, Box(75.0, 75.1, 0.0, 0.1), seed=15)
    rng = np.random.default_rng(15)
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        first = apdb.store(T0, dia_objects(ids[:25], ra[:25], dec[:25], rng))
        assert first.objects_inserted == 25
        second = apdb.store(T0 + 1, dia_objects(ids, ra, dec, rng))
        assert (second.objects_inserted, second.objects_replaced) == (40, 0)
        neighbour = dia_objects(ids[20:30], ra[20:30], dec[20:30], rng)
        third = apdb.store(T0 + 1, neighbour)
        assert (third.objects_inserted, third.objects_replaced) == (0, 10)
        chains = _chains(apdb)
        assert sum(len(starts) for starts, _ in chains.values()) == 65
        for object_id, (starts, ends) in chains.items():
            if object_id in ids[:25]:
                assert starts == [T0, T0 + 1] and ends[0] == T0 + 1 and pd.isna(ends[1])
            else:
                assert starts == [T0 + 1] and pd.isna(ends[0])
        latest = apdb.get_dia_objects(ConvexPolygon([UnitVector3d(LonLat.fromDegrees(a, d))
                                                      for a, d in ((74.9, -0.1), (75.2, -0.1),
                                                                   (75.2, 0.2), (74.9, 0.2))]))
        assert sorted(latest["diaObjectId"]) == sorted(ids.tolist())
        replaced = latest.set_index("diaObjectId").loc[ids[20:30], "ra"].to_numpy()
        assert np.array_equal(replaced, neighbour["ra"].to_numpy())


def test_store_over_sources_already_there(database_url: str) -> None:
    """Sources of a CCD already stored without its record (as a bulk load leaves them): the
    plain insert fails, its savepoint is rolled back, and the careful insert keeps what is
    there, or names the rows stored with other values."""
    ids, ra, dec = random_objects(30, Box(80.0, 80.1, 0.0, 0.1), seed=14)
    frames = ccd_frames(9, 2, T0, ids, ra, dec, seed=14)
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        apdb.store(T0, frames.objects, frames.sources, frames.forced)

        def forget() -> None:
            with registry.engine.begin() as connection:
                connection.exec_driver_sql("DELETE FROM apdb.skyreg_stored_ccd WHERE visit = 9")

        forget()
        again = apdb.store(T0, frames.objects, frames.sources, frames.forced)
        assert not again.already_stored
        assert again.sources_inserted == 0 and again.forced_sources_inserted == 0
        assert apdb.count("DiaForcedSource") == 30
        assert apdb.contains_visit_detector(9, 2)
        forget()
        changed = frames.forced.copy()
        changed.loc[3, "psfFlux"] = -5.0
        bad_id = int(changed.loc[3, "diaObjectId"])
        with pytest.raises(ApdbConflictError, match=f"diaObjectId={bad_id}"):
            apdb.store(T0, frames.objects, frames.sources, changed)
        assert apdb.count("DiaForcedSource") == 30


def test_a_failing_copy_leaves_the_read_session_usable(database_url: str) -> None:
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        with pytest.raises(psycopg.errors.DivisionByZero):
            apdb._copy_out("SELECT 1 / 0")
        assert apdb.count("DiaObject") == 0
        with registry.engine.connect() as connection:  # not autocommit, no transaction yet
            driver: Any = connection.connection.driver_connection
            data = copy_out(driver, "COPY (SELECT 1::int4) TO STDOUT (FORMAT binary)")
            assert data.endswith(b"\x00\x01\x00\x00\x00\x04\x00\x00\x00\x01\xff\xff")


def _comparable_chains(apdb: Any) -> dict[int, tuple[list[float], list[float | None]]]:
    """:func:`_chains` with None for open ends (NaN equals nothing)."""
    return {object_id: (starts, [None if pd.isna(end) else end for end in ends])
            for object_id, (starts, ends) in _chains(apdb).items()}


def test_refused_sources_leave_the_open_versions_open(database_url: str) -> None:
    """The objects' open versions are closed on the server while a thread checks the
    sources: sources refused there roll all of it back."""
    ids, ra, dec = random_objects(50, Box(85.0, 85.1, 0.0, 0.1), seed=16)
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        first = ccd_frames(20, 1, T0, ids, ra, dec, seed=16)
        apdb.store(T0, first.objects, first.sources, first.forced)
        before = _comparable_chains(apdb)
        second = ccd_frames(21, 1, T0 + 1, ids, ra, dec, seed=17)
        broken = second.sources.copy()
        broken.loc[2, "dec"] = 91.0
        with pytest.raises(InputError, match=r"row 2, field 'dec': DiaSource"):
            apdb.store(T0 + 1, second.objects, broken, second.forced)
        with pytest.raises(InputError, match="DiaForcedSource: required column 'visit'"):
            apdb.store(T0 + 1, second.objects, second.sources,
                       second.forced.drop(columns=["visit"]))
        assert _comparable_chains(apdb) == before
        assert not apdb.contains_visit_detector(21, 1)
        assert apdb.count("DiaSource") == len(first.sources)


def test_rerun_after_a_later_visit_changes_nothing(database_url: str) -> None:
    """A CCD stored again with the same rows after a later visit of its objects: the
    closing statement that runs before the digest is compared finds nothing to close."""
    ids, ra, dec = random_objects(40, Box(86.0, 86.1, 0.0, 0.1), seed=18)
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        first = ccd_frames(30, 4, T0, ids, ra, dec, seed=18)
        apdb.store(T0, first.objects, first.sources, first.forced)
        later = ccd_frames(31, 4, T0 + 1, ids, ra, dec, seed=19)
        apdb.store(T0 + 1, later.objects, later.sources, later.forced)
        before = _comparable_chains(apdb)
        assert all(ends == [T0 + 1, None] for _, ends in before.values())
        assert apdb.store(T0, first.objects, first.sources, first.forced).already_stored
        assert _comparable_chains(apdb) == before


def _store_in_child(url: str) -> int:
    ids, ra, dec = random_objects(30, Box(87.0, 87.1, 0.0, 0.1), seed=21, first_id=5000)
    frames = ccd_frames(41, 0, T0, ids, ra, dec, seed=21)
    with Registry.connect(url) as registry:
        return registry.apdb.store(T0, frames.objects, frames.sources,
                                   frames.forced).objects_inserted


def test_a_forked_child_stores_after_its_parent(database_url: str) -> None:
    """The threads that prepare a store's rows do not survive a fork: a child whose parent
    stored before makes its own (with the parent's, it would wait forever)."""
    ids, ra, dec = random_objects(30, Box(88.0, 88.1, 0.0, 0.1), seed=20)
    frames = ccd_frames(40, 0, T0, ids, ra, dec, seed=20)
    with Registry.connect(database_url) as registry:
        registry.apdb.store(T0, frames.objects, frames.sources, frames.forced)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_store_in_child, (database_url,)).get(timeout=60) == 30


def test_a_ccd_named_by_float_columns_is_locked_once_checked(database_url: str) -> None:
    """Visits and detectors given as floats are not taken before they are checked: the
    CCD's lock and digest then follow the check, and a re-run is still recognised."""
    ids, ra, dec = random_objects(20, Box(89.0, 89.1, 0.0, 0.1), seed=22)
    frames = ccd_frames(50, 6, T0, ids, ra, dec, seed=22)
    sources = frames.sources.astype({"visit": "float64", "detector": "float64"})
    forced = frames.forced.astype({"visit": "float64"})
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        first = apdb.store(T0, frames.objects, sources, forced)
        assert (first.visit, first.detector, first.already_stored) == (50, 6, False)
        assert apdb.store(T0, frames.objects, frames.sources, frames.forced).already_stored
        with pytest.raises(InputError, match="name different CCDs"):
            apdb.store(T0, frames.objects, sources.assign(visit=51.0), forced)
