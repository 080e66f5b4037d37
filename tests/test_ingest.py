"""Manifest ingest: idempotency, conflicts, bad input, concurrency and crashes, on a real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from lsst.sphgeom import ConvexPolygon
from sqlalchemy import create_engine, text

from hull_shapes import has_collinear_run, visit_hull
from manifest_builder import ManifestSpec, box, survey_spec, write_manifest
from skyreg import ConflictError, InputError, Registry, SkyregError
from skyreg.errors import InputErrors


def small_spec(n: int = 40) -> ManifestSpec:
    ccds = [box(10.0 + 0.3 * (i % 10), -5.0 + 0.3 * (i // 10), 0.1) for i in range(n)]
    tracts = [box(11.5, -4.0, 1.0)]
    patches = [[box(11.0, -4.5, 0.3), box(12.0, -3.5, 0.3)]]
    return survey_spec(ccds, tract_polygons=tracts, patch_polygons=patches)


def table_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as connection:
        counts = {name: connection.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
                  for name in ("instrument", "detector", "visit", "ccd", "ccd_pixel", "skymap",
                               "tract", "tract_pixel", "patch", "patch_pixel",
                               "ccd_patch_overlap", "ccd_tract_overlap")}
        counts["ccd_id_seq"] = connection.execute(
            text("SELECT last_value FROM ccd_ccd_id_seq")).scalar_one()
    engine.dispose()
    return counts


def test_ingest_then_reingest_changes_nothing(registry: Registry, database_url: str,
                                              tmp_path: Path) -> None:
    root = write_manifest(tmp_path / "m", small_spec())
    first = registry.ingest_manifest(root)
    assert first.counts["ccd"].inserted == 40
    assert first.counts["patch"].inserted == 2
    before = table_counts(database_url)
    assert before["ccd"] == 40 and before["ccd_pixel"] >= 40
    second = registry.ingest_manifest(root)
    assert not second.changed
    assert second.counts["ccd"].already_present == 40
    assert table_counts(database_url) == before  # sequence values not consumed either


def test_incremental_manifest_adds_only_new(registry: Registry, database_url: str,
                                            tmp_path: Path) -> None:
    spec = small_spec(40)
    registry.ingest_manifest(write_manifest(tmp_path / "a", spec))
    bigger = small_spec(60)
    report = registry.ingest_manifest(write_manifest(tmp_path / "b", bigger))
    assert report.counts["ccd"].inserted == 20
    assert table_counts(database_url)["ccd"] == 60


def test_conflicting_geometry_is_refused_and_nothing_written(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    spec = small_spec(20)
    registry.ingest_manifest(write_manifest(tmp_path / "a", spec))
    before = table_counts(database_url)
    changed = small_spec(30)  # ten new CCDs ...
    changed.ccds[3]["ra"] = box(50.0, 50.0, 0.1)[0]  # ... and one moved CCD
    changed.ccds[3]["dec"] = box(50.0, 50.0, 0.1)[1]
    with pytest.raises(ConflictError) as caught:
        registry.ingest_manifest(write_manifest(tmp_path / "b", changed))
    message = str(caught.value)
    assert "visit_detector_regions.parquet" in message
    assert "visit=1000, detector=3" in message and "footprint" in message
    assert table_counts(database_url) == before


def test_skymap_with_other_hash_is_refused(registry: Registry, tmp_path: Path) -> None:
    registry.ingest_manifest(write_manifest(tmp_path / "a", small_spec()))
    other = small_spec()
    assert other.skymap is not None
    other.skymap["hash_sha1_hex"] = "cd" * 20
    with pytest.raises(ConflictError, match=r"skymap .*name='testmap'.*different definition"):
        registry.ingest_manifest(write_manifest(tmp_path / "b", other))


def _refusal(registry: Registry, root: Path) -> str:
    with pytest.raises(SkyregError) as caught:
        registry.ingest_manifest(root)
    return str(caught.value)


def _bad(tmp_path: Path, edit: str) -> Path:
    """A manifest with one planted defect."""
    spec = small_spec()
    if edit == "nan":
        spec.ccds[7]["dec"] = [float("nan"), *spec.ccds[7]["dec"][1:]]
    elif edit == "ra_infinite":
        spec.ccds[8]["ra"] = [float("inf"), *spec.ccds[8]["ra"][1:]]
    elif edit == "dec_range":
        spec.ccds[8]["dec"] = [-91.0, *spec.ccds[8]["dec"][1:]]
    elif edit == "two_vertices":
        spec.ccds[9]["ra"], spec.ccds[9]["dec"] = [1.0, 2.0], [0.0, 0.0]
    elif edit == "bowtie":
        ra, dec = spec.ccds[10]["ra"], spec.ccds[10]["dec"]
        spec.ccds[10]["ra"], spec.ccds[10]["dec"] = [ra[0], ra[2], ra[1], ra[3]], \
            [dec[0], dec[2], dec[1], dec[3]]
    elif edit == "concave":
        spec.ccds[11]["ra"] = [10.0, 12.0, 11.0, 12.0, 10.0]
        spec.ccds[11]["dec"] = [0.0, 0.0, 1.0, 2.0, 2.0]
    elif edit == "hemisphere":
        spec.ccds[12]["ra"] = [0.0, 90.0, 180.0, 270.0]
        spec.ccds[12]["dec"] = [0.0, 0.0, 0.0, 0.0]
    elif edit == "unknown_visit":
        spec.ccds[13]["visit"] = 999_999
    elif edit == "unknown_detector":
        spec.ccds[14]["detector"] = 77
    elif edit == "mismatched_vertices":
        spec.ccds[15]["dec"] = spec.ccds[15]["dec"][:3]
    elif edit == "duplicate":
        spec.ccds[16] = dict(spec.ccds[17])
    return write_manifest(tmp_path / edit, spec)


@pytest.mark.parametrize(("edit", "row", "field", "words"), [
    ("nan", 7, "dec", "NaN"),
    ("ra_infinite", 8, "ra", "NaN or infinite"),
    ("dec_range", 8, "dec", "outside [-90, 90]"),
    ("two_vertices", 9, "ra", "at least 3"),
    ("bowtie", 10, "ra/dec", "not convex"),
    ("concave", 11, "ra/dec", "not convex"),
    ("hemisphere", 12, "ra/dec", "not convex"),
    ("unknown_visit", 13, "visit", "not in visits.parquet"),
    ("unknown_detector", 14, "detector", "not in detectors.parquet"),
    ("mismatched_vertices", 15, "dec", "different vertex counts"),
    ("duplicate", 17, "detector", "duplicate key"),
])
def test_bad_ccd_rows_are_named(registry: Registry, database_url: str, tmp_path: Path,
                                edit: str, row: int, field: str, words: str) -> None:
    message = _refusal(registry, _bad(tmp_path, edit))
    assert f"visit_detector_regions.parquet: row {row}, field '{field}'" in message, message
    assert words in message
    assert table_counts(database_url)["ccd"] == 0


def test_missing_column_wrong_version_and_checksum(registry: Registry, tmp_path: Path) -> None:
    root = write_manifest(tmp_path / "cols", small_spec())
    table = pq.read_table(root / "visits.parquet").drop_columns(["band"])
    pq.write_table(table, root / "visits.parquet")
    message = _refusal(registry, root)
    assert "visits.parquet: sha256 checksum mismatch" in message

    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["files"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert "visits.parquet: field 'band': missing column" in _refusal(registry, root)

    manifest["format_version"] = 2
    (root / "manifest.json").write_text(json.dumps(manifest))
    message = _refusal(registry, root)
    assert "manifest.json: field 'format_version': unsupported format_version 2" in message

    (root / "manifest.json").unlink()
    assert "manifest.json: file not found" in _refusal(registry, root)
    assert "not a directory" in _refusal(registry, tmp_path / "nowhere")


def test_not_parquet_and_bad_json(registry: Registry, tmp_path: Path) -> None:
    spec = small_spec()
    spec.checksums = False
    root = write_manifest(tmp_path / "m", spec)
    (root / "patches.parquet").write_text("this is not parquet")
    (root / "skymap.json").write_text("{not json")
    message = _refusal(registry, root)
    assert "patches.parquet: not a readable Parquet file" in message
    assert "skymap.json: not readable as JSON" in message


def test_many_problems_reported_together(registry: Registry, tmp_path: Path) -> None:
    spec = small_spec()
    for row in range(30):
        spec.ccds[row]["ra"] = [400.0, *spec.ccds[row]["ra"][1:]]
    with pytest.raises(InputErrors) as caught:
        registry.ingest_manifest(write_manifest(tmp_path / "m", spec))
    assert caught.value.total == 30
    assert all(isinstance(p, InputError) and p.row is not None for p in caught.value.problems)
    assert "... and 5 more problems" in str(caught.value)


def test_visit_of_unknown_instrument_is_refused(registry: Registry, tmp_path: Path) -> None:
    spec = small_spec()
    spec.instrument = None
    spec.detectors = []
    spec.ccds = []
    message = _refusal(registry, write_manifest(tmp_path / "m", spec))
    assert "visits.parquet" in message and "neither in this manifest nor registered" in message


_INGEST_SCRIPT = """
import sys
from skyreg import Registry
with Registry.connect(sys.argv[1]) as registry:
    report = registry.ingest_manifest(sys.argv[2])
print(report.counts["ccd"].inserted)
"""


def _ingest_process(url: str, root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _INGEST_SCRIPT, url, str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_concurrent_ingests_neither_fail_nor_duplicate(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    root = write_manifest(tmp_path / "m", small_spec(400))
    first, second = _ingest_process(database_url, root), _ingest_process(database_url, root)
    results = [process.communicate(timeout=120) for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, results
    inserted = sorted(int(out.strip()) for out, _ in results)
    assert inserted == [0, 400]
    assert table_counts(database_url)["ccd"] == 400


def test_killed_ingest_leaves_nothing(registry: Registry, database_url: str,
                                      tmp_path: Path) -> None:
    root = write_manifest(tmp_path / "m", small_spec(400))
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as blocker:
        # Hold the ingest lock so the child is stopped inside its transaction, after staging.
        blocker.execute(text("SELECT pg_advisory_lock(:key)"),
                        {"key": 0x736B7972_65670002})
        child = _ingest_process(database_url, root)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            waiting = blocker.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()")).scalar_one()
            if waiting:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the ingest never reached the database")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        # The killed client's backend leaves the lock queue (it does not wait for the lock
        # only to find its client gone).
        deadline = time.monotonic() + 5
        while blocker.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()")).scalar_one():
            assert time.monotonic() < deadline, "the killed ingest still waits for the lock"
            time.sleep(0.05)
        blocker.execute(text("SELECT pg_advisory_unlock_all()"))
    engine.dispose()
    counts = table_counts(database_url)
    assert counts["ccd"] == 0 and counts["visit"] == 0 and counts["ccd_pixel"] == 0
    report = registry.ingest_manifest(root)  # and the next run loads everything
    assert report.counts["ccd"].inserted == 400


def test_inner_polygon_outside_outer_is_still_found(registry: Registry, tmp_path: Path) -> None:
    spec = small_spec()
    spec.tracts[0]["inner_ra"], spec.tracts[0]["inner_dec"] = box(30.0, 20.0, 1.0)
    registry.ingest_manifest(write_manifest(tmp_path / "m", spec))
    assert [tuple(t) for t in registry.find_tracts(point=(30.0, 20.0), inner=True)] == \
        [("testmap", 0)]
    assert registry.find_tracts(point=(30.0, 20.0)) == []


def test_file_and_geometry_problems_are_reported_together(registry: Registry,
                                                         database_url: str,
                                                         tmp_path: Path) -> None:
    spec = small_spec()
    spec.visits[1]["dec"] = 95.0
    spec.ccds[3]["ra"], spec.ccds[3]["dec"] = [10.0, 12.0, 11.0, 12.0, 10.0], [0, 0, 1, 2, 2]
    message = _refusal(registry, write_manifest(tmp_path / "m", spec))
    assert "visits.parquet: row 1, field 'dec': value 95.0 outside [-90.0, 90.0] (1 row)" \
        in message
    assert "visit_detector_regions.parquet: row 3, field 'ra/dec': polygon is not convex" \
        in message
    assert table_counts(database_url)["visit"] == 0


def test_hull_regions_and_ra_360_are_ingested_as_stored_polygons(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    """Visit regions made as Rubin makes them (sphgeom hulls of CCD corners: corners in a row
    on one great circle) and tract/patch boxes with an edge at RA 360 load; the stored vertex
    arrays are wrapped and reduced so that the SQL functions derive the very polygon that was
    encoded, and a second load changes nothing."""
    spec = small_spec()
    for i, visit in enumerate(spec.visits):
        visit["region_ra"], visit["region_dec"] = visit_hull(12.0, -4.0, 17.0 * i)
    assert any(has_collinear_run((v["region_ra"], v["region_dec"])) for v in spec.visits)
    edge = ([359.0, 360.0, 360.0, 359.0], [-1.0, -1.0, 1.0, 1.0])
    spec.tracts.append({"skymap": "testmap", "tract": 1, "ra_center": 359.5,
                        "dec_center": 0.0, "inner_ra": edge[0], "inner_dec": edge[1],
                        "outer_ra": edge[0], "outer_dec": edge[1]})
    spec.patches.append({"skymap": "testmap", "tract": 1, "patch": 0, "cell_x": 0,
                         "cell_y": 0, "inner_ra": edge[0], "inner_dec": edge[1],
                         "outer_ra": [-1.0, 0.0, 0.0, -1.0], "outer_dec": edge[1]})
    spec.ccds[0]["ra"] = [359.9, 360.0, 360.0, 359.9]
    spec.ccds[0]["dec"] = [-0.1, -0.1, 0.1, 0.1]
    root = write_manifest(tmp_path / "m", spec)
    report = registry.ingest_manifest(root)
    assert report.counts["visit"].inserted == len(spec.visits)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        for query in ("SELECT ra, dec, region FROM visit",
                      "SELECT ra, dec, region FROM ccd",
                      "SELECT outer_ra, outer_dec, outer_region FROM tract",
                      "SELECT outer_ra, outer_dec, outer_region FROM patch"):
            for ra, dec, region in connection.execute(text(query)):
                assert all(0.0 <= r < 360.0 for r in ra), (query, ra)
                vertices = connection.execute(text("SELECT skyreg_vertices(:ra, :dec)"),
                                              {"ra": ra, "dec": dec}).scalar_one()
                stored = ConvexPolygon.decode(bytes(region))
                assert vertices == [c for v in stored.getVertices()
                                    for c in (v.x(), v.y(), v.z())], query
        tract_ra = connection.execute(text(
            "SELECT outer_ra FROM tract WHERE tract = 1")).scalar_one()
        visit_sizes = connection.execute(text(
            "SELECT cardinality(ra) FROM visit ORDER BY visit")).scalars().all()
    engine.dispose()
    assert tract_ra == [359.0, 0.0, 0.0, 359.0]
    assert [len(v["region_ra"]) for v in spec.visits] > visit_sizes  # redundant ones dropped
    assert {tuple(t) for t in registry.find_tracts(point=(0.0, 0.0))} == {("testmap", 1)}
    assert {tuple(t) for t in registry.find_patches(point=(359.5, 0.0))} == {("testmap", 1, 0)}
    assert ("TestCam", 1000, 0) in {tuple(c) for c in registry.find_ccds(point=(0.0, 0.0))}
    assert not registry.ingest_manifest(root).changed


def _set_all(rows: list[dict[str, object]], **values: object) -> None:
    for row in rows:
        row.update(values)


@pytest.mark.parametrize(("edit", "words"), [
    # Each of these reached the database and came back as a raw driver error (DataError,
    # OverflowError), or worse, was stored wrong: a 32-bit column got the value wrapped round.
    (lambda s: s.visits[0].update(band="g\x00"),
     "visits.parquet: row 0, field 'band': text contains a NUL character"),
    (lambda s: s.detectors[1].update(full_name="D\x00"),
     "detectors.parquet: row 1, field 'full_name': text contains a NUL character"),
    (lambda s: s.instrument.update(bands=["g", "r\x00"]),  # type: ignore[union-attr]
     "instrument.json: field 'bands[1]': text contains a NUL character"),
    (lambda s: s.skymap.update(note={"a": "b\x00"}),  # type: ignore[union-attr]
     "skymap.json: field 'note.a': text contains a NUL character"),
    (lambda s: s.instrument.update(detector_max=10**30),  # type: ignore[union-attr]
     "instrument.json: field 'detector_max': 1000000000000000000000000000000 is outside"),
    (lambda s: s.instrument.update(visit_max="many"),  # type: ignore[union-attr]
     "instrument.json: field 'visit_max': expected int, got 'many'"),
    (lambda s: _set_all(s.ccds, uri="file:///x.fits", hdu=2**32),
     "visit_detector_regions.parquet: row 0, field 'hdu': value 4294967296 outside "
     "[0, 2147483647]"),
    (lambda s: s.tracts[0].update(ring=-(2**40)),
     "tracts.parquet: row 0, field 'ring': value -1099511627776 outside"),
    (lambda s: s.visits[2].update(ra=float("nan")),
     "visits.parquet: row 2, field 'ra': value nan is not finite"),
])
def test_values_the_database_cannot_hold_are_input_errors(
        registry: Registry, database_url: str, tmp_path: Path, edit: object,
        words: str) -> None:
    spec = small_spec()
    edit(spec)  # type: ignore[operator]
    message = _refusal(registry, write_manifest(tmp_path / "m", spec))
    assert words in message, message
    assert table_counts(database_url)["visit"] == 0


def test_boresight_and_tract_centre_ra_are_wrapped(registry: Registry, database_url: str,
                                                   tmp_path: Path) -> None:
    spec = small_spec()
    spec.visits[0]["ra"] = 360.0
    spec.visits[1]["ra"] = -10.25
    spec.tracts[0]["ra_center"] = 371.5
    registry.ingest_manifest(write_manifest(tmp_path / "m", spec))
    engine = create_engine(database_url)
    with engine.connect() as connection:
        ras = connection.execute(text(
            "SELECT boresight_ra FROM visit ORDER BY visit LIMIT 2")).scalars().all()
        centre = connection.execute(text("SELECT ra_center FROM tract")).scalar_one()
    engine.dispose()
    assert ras == [0.0, 349.75] and centre == 11.5
