"""DiaObject → Object matches: a region's cross-match kept in DiaObject_To_Object_Match,
compared with a brute-force match over every pair, re-runs replacing, the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from lsst.sphgeom import Angle, Circle, LonLat, Region, UnitVector3d

from apdb_builder import ccd_frames, random_objects
from skyreg import Registry
from skyreg.catalogs.store import CatalogError
from skyreg.cli.main import cli
from skyreg.errors import NotFoundError
from skyreg.synthetic.apdb_catalogs import Box

T0 = 60000.0
ARCSEC = 1.0 / 3600.0


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=1)


def _brute_force(region: Region, dia: pd.DataFrame, objects: pd.DataFrame, radius_deg: float,
                 nearest: bool) -> set[tuple[int, int]]:
    """Every (diaObjectId, objectId) pair within the radius, testing all pairs; the region
    one point at a time with sphgeom's scalar test."""
    keep = np.array([region.contains(UnitVector3d(LonLat.fromDegrees(float(a), float(b))))
                     for a, b in zip(dia["ra"], dia["dec"], strict=True)], dtype=bool)
    dia = dia[keep]
    a, b = _unit(dia["ra"].to_numpy(), dia["dec"].to_numpy()), _unit(
        objects["coord_ra"].to_numpy(), objects["coord_dec"].to_numpy())
    sep = np.degrees(2 * np.arcsin(np.clip(np.linalg.norm(
        a[:, None, :] - b[None, :, :], axis=2) / 2, 0, 1)))
    pairs: set[tuple[int, int]] = set()
    for row, dia_id in enumerate(dia["diaObjectId"].to_numpy()):
        within = np.flatnonzero(sep[row] <= radius_deg)
        if nearest and len(within):
            within = within[[int(np.argmin(sep[row][within]))]]
        pairs |= {(int(dia_id), int(objects["objectId"].iloc[k])) for k in within}
    return pairs


@pytest.fixture(scope="module")
def matched(database_factory: object, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """1,500 DiaObjects in 1° x 1° around (45, 0), two versions each (the older one far
    off), and a catalog holding Objects 0.3″ from a third of them (a second one 0.6″
    from some), 2″ from another third, and random ones."""
    url = database_factory()  # type: ignore[operator]
    ids, ra, dec = random_objects(1500, Box(44.5, 45.5, -0.5, 0.5), seed=3)
    rng = np.random.default_rng(4)
    offsets = [(ids[0::3], 0.3), (ids[0::6], 0.6), (ids[1::3], 2.0)]
    rows = []
    for chosen, arcsec in offsets:
        index = np.searchsorted(ids, chosen)
        angle = rng.uniform(0, 2 * np.pi, len(index))
        step = arcsec * ARCSEC
        rows.append(pd.DataFrame({
            "coord_ra": ra[index] + step * np.cos(angle) / np.cos(np.radians(dec[index])),
            "coord_dec": dec[index] + step * np.sin(angle)}))
    rows.append(pd.DataFrame({"coord_ra": rng.uniform(44.4, 45.6, 3000),
                              "coord_dec": rng.uniform(-0.6, 0.6, 3000)}))
    objects = pd.concat(rows, ignore_index=True)
    objects.insert(0, "objectId", np.arange(100, 100 + len(objects), dtype=np.int64))
    path = tmp_path_factory.mktemp("match") / "object.parquet"
    pq.write_table(pa.Table.from_pandas(objects, preserve_index=False), path)
    with Registry.connect(url) as registry:
        old = ccd_frames(1, 3, T0 - 10, ids, ra + 3.0, dec, seed=1)  # an older, moved version
        registry.apdb.store(T0 - 10, old.objects, old.sources, old.forced)
        new = ccd_frames(2, 3, T0, ids, ra, dec, seed=2)
        registry.apdb.store(T0, new.objects, new.sources, new.forced)
        registry.load_catalog("dr1", [path], ra="coord_ra", dec="coord_dec", id="objectId")
    yield url, new.objects[["diaObjectId", "ra", "dec"]], objects


def _stored(registry: Registry) -> pd.DataFrame:
    return registry.apdb._select("DiaObject_To_Object_Match", ["TRUE"])


def _circle(ra: float, dec: float, radius: float) -> Circle:
    return Circle(UnitVector3d(LonLat.fromDegrees(ra, dec)), Angle.fromDegrees(radius))


def test_match_equals_brute_force_and_reruns_replace(
        matched: tuple[str, pd.DataFrame, pd.DataFrame]) -> None:
    url, dia, objects = matched
    region = _circle(45.1, 0.05, 0.3)
    with Registry.connect(url) as registry:
        apdb = registry.apdb
        report = apdb.match_objects(region, "dr1", 1 * ARCSEC)
        stored = _stored(registry)
        pairs = set(zip(stored["diaObjectId"], stored["objectId"], strict=True))
        expected = _brute_force(region, dia, objects, ARCSEC, nearest=True)
        assert pairs == expected and len(stored) == len(expected) == report.stored
        assert report.catalog == "dr1" and report.matched == len(expected)
        assert report.dia_objects == len(apdb.get_dia_objects(region)) > report.matched
        # dist in arcsec: 0.3″ or 0.6″ by construction; lnP has no model: NULL.
        assert np.allclose(stored["dist"], 0.3, atol=1e-3)
        assert stored["lnP"].isna().all()
        # The same run again: the same rows, nothing duplicated.
        again = apdb.match_objects(region, registry.catalog("dr1"), ARCSEC)
        assert again.replaced == report.stored and len(_stored(registry)) == len(stored)
        # Every Object within 2.5″: the 0.6″ and 2″ neighbours join; the answer replaces.
        wide = apdb.match_objects(region, "dr1", 2.5 * ARCSEC, nearest=False)
        stored = _stored(registry)
        pairs = set(zip(stored["diaObjectId"], stored["objectId"], strict=True))
        assert pairs == _brute_force(region, dia, objects, 2.5 * ARCSEC, nearest=False)
        assert wide.stored == len(stored) > len(expected)
        assert len(apdb.get_matches(stored["diaObjectId"])) == len(stored)
        # A second, overlapping region keeps the first's matches outside it.
        other = _circle(45.35, 0.05, 0.2)
        apdb.match_objects(other, "dr1", 0.1 * ARCSEC)  # nothing that close: drops them
        stored = _stored(registry)
        pairs = set(zip(stored["diaObjectId"], stored["objectId"], strict=True))
        inside_other = set(apdb.get_dia_objects(other)["diaObjectId"].tolist())
        wide_pairs = _brute_force(region, dia, objects, 2.5 * ARCSEC, nearest=False)
        assert pairs == {p for p in wide_pairs if p[0] not in inside_other}
        # An empty region stores nothing and changes nothing.
        empty = apdb.match_objects(_circle(200.0, 50.0, 0.1), "dr1")
        assert (empty.dia_objects, empty.stored) == (0, 0)
        assert len(_stored(registry)) == len(stored)


def test_match_errors(matched: tuple[str, pd.DataFrame, pd.DataFrame]) -> None:
    url, _dia, _objects = matched
    with Registry.connect(url) as registry:
        with pytest.raises(NotFoundError, match=r"no catalog 'nope'.*dr1"):
            registry.apdb.match_objects(_circle(45, 0, 0.1), "nope")
        with pytest.raises(CatalogError, match="radius"):
            registry.apdb.match_objects(_circle(45, 0, 0.1), "dr1", radius=-1)
        with pytest.raises(ValueError, match="region"):
            registry.apdb.match_objects("45 0 1", "dr1")  # type: ignore[arg-type]


def test_match_apdb_command(matched: tuple[str, pd.DataFrame, pd.DataFrame],
                            tmp_path: Path) -> None:
    url, dia, objects = matched
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", url, "catalog", "match-apdb", "dr1", "--cone",
                                 "44.8", "-0.2", "6arcmin", "--format", "json"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    region = _circle(44.8, -0.2, 0.1)
    expected = _brute_force(region, dia, objects, ARCSEC, nearest=True)
    assert report["catalog"] == "dr1" and report["stored"] == len(expected) > 0
    with Registry.connect(url) as registry:
        stored = registry.apdb.get_matches(registry.apdb.get_dia_objects(region)["diaObjectId"])
    assert set(zip(stored["diaObjectId"], stored["objectId"], strict=True)) == expected
    missing = runner.invoke(cli, ["--db", url, "catalog", "match-apdb", "dr1"])
    assert missing.exit_code == 2 and "--cone" in missing.output
    bad = runner.invoke(cli, ["--db", url, "catalog", "match-apdb", "dr1", "--cone", "44.8",
                              "-0.2", "0.1", "--radius", "10deg"])
    assert bad.exit_code != 0 and "radius" in bad.output and "Traceback" not in bad.output



def test_concurrent_replacements_of_the_same_objects_leave_no_duplicates(
        matched: tuple[str, pd.DataFrame, pd.DataFrame]) -> None:
    """A writer replaces matches while another one's replacement of the same DiaObjects is
    still uncommitted: it waits for it (the lock) and then replaces its rows, so the
    objects end with one copy of their matches. Without the lock its DELETE would not see
    the other's uncommitted rows and both copies would stay."""
    import threading
    import time

    from skyreg.catalogs.apdb_match import match_frame, replace_matches
    from skyreg.db.engine import make_engine

    url, _dia, _objects = matched
    region = _circle(45.2, 0.1, 0.1)
    engine = make_engine(url)
    try:
        with Registry.connect(url) as registry:
            dia_ids = registry.apdb.get_dia_objects(region)["diaObjectId"].to_numpy()
            objects = registry.apdb.dia_objects_in_region(region)
            frame = match_frame(objects, registry.catalog("dr1"), ARCSEC, nearest=True)
        assert len(frame) > 0
        finished: list[float] = []

        def second_writer() -> None:
            with engine.begin() as connection:
                replace_matches(connection.connection.driver_connection, dia_ids, frame)
            finished.append(time.perf_counter())

        with engine.begin() as connection:
            replace_matches(connection.connection.driver_connection, dia_ids, frame)
            thread = threading.Thread(target=second_writer)
            thread.start()
            time.sleep(0.5)
            committed = time.perf_counter()
        thread.join()
        assert finished and finished[0] >= committed  # it waited for the first commit
        with Registry.connect(url) as registry:
            stored = registry.apdb.get_matches(dia_ids)
        pairs = list(zip(stored["diaObjectId"], stored["objectId"], strict=True))
        assert len(pairs) == len(set(pairs)) == len(frame)
    finally:
        engine.dispose()
