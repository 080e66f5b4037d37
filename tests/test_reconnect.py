"""A Registry outlives its connections: lost backends are replaced, reads retried once.

The connections are cut for real, with ``pg_terminate_backend`` from another session (what a
server restart, a failover or an operator does to a client), on whichever server the test
session runs against. Restarts of the embedded server itself are in test_embedded_server.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from manifest_builder import box, survey_spec, write_manifest
from skyreg import Registry
from skyreg.errors import DatabaseError


def libpq(url: str) -> str:
    return url.replace("+psycopg", "")


def terminate_backends(url: str) -> int:
    """End every other session on the database of ``url``, as a server restart would."""
    with psycopg.connect(libpq(url), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (ended,) in rows if ended)


def small_survey(tmp_path: Path, name: str = "m") -> Path:
    ccds = [box(150.0 + 0.1 * i, 2.0, 0.05) for i in range(20)]
    tracts = [box(150.5, 2.0, 1.0)]
    patches = [[box(150.25, 2.0, 0.3), box(150.75, 2.0, 0.3)]]
    spec = survey_spec(ccds, tract_polygons=tracts, patch_polygons=patches)
    return write_manifest(tmp_path / name, spec)


def prepared_statements(registry: Registry) -> int:
    """Statements prepared in the registry's own session (its autocommit connection)."""
    return int(registry._conn.execute(
        text("SELECT count(*) FROM pg_prepared_statements")).scalar_one())


def test_connect_error_is_a_database_error_without_the_password() -> None:
    with pytest.raises(DatabaseError) as info:
        Registry.connect("postgresql://nobody:s3cret@127.0.0.1:1/x")
    message = str(info.value)
    assert "nobody@127.0.0.1:1/x" in message
    assert "s3cret" not in message
    assert "refused" in message.lower()


def test_connect_to_a_missing_database_is_a_database_error(database_url: str) -> None:
    missing = make_url(database_url).set(database="skyreg_no_such_db").render_as_string(
        hide_password=False)
    with pytest.raises(DatabaseError, match="skyreg_no_such_db"):
        Registry.connect(missing)


def test_reads_survive_terminated_backends(registry: Registry, database_url: str,
                                           tmp_path: Path) -> None:
    registry.ingest_manifest(small_survey(tmp_path))
    expected = registry.find_ccds(cone=(150.5, 2.0, 0.3))
    assert len(expected) > 0
    counts = registry.counts()
    assert prepared_statements(registry) >= 1

    # The prepared-statement path (the raw driver connection) retries on a new connection,
    # where the statements are prepared again.
    assert terminate_backends(database_url) >= 1
    assert registry.find_ccds(cone=(150.5, 2.0, 0.3)) == expected
    assert prepared_statements(registry) >= 1
    assert registry.find_patches(ccd=("TestCam", 1000, 3)) == registry.find_patches(
        ccd=("TestCam", 1000, 3))

    # The SQLAlchemy path (counts, sky maps, dataset types) too.
    assert terminate_backends(database_url) >= 1
    assert registry.counts() == counts
    assert terminate_backends(database_url) >= 1
    assert "testmap" in registry.skymaps()
    assert terminate_backends(database_url) >= 1
    assert registry.patch_region("testmap", 0, 1) is not None

    # Writes that start after a cut get a fresh connection from the pool.
    assert terminate_backends(database_url) >= 1
    assert registry.register_dataset_type("calexp", "ccd") in (True, False)
    assert "calexp" in registry.dataset_types()


def test_ingest_cut_off_mid_transaction_is_not_retried_and_leaves_nothing(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    survey = small_survey(tmp_path)
    cuts: list[str] = []

    def cut_when_inserting(stage: str, done: int, total: int) -> None:
        if stage.startswith("inserting") and not cuts:
            cuts.append(stage)
            assert terminate_backends(database_url) >= 1

    progress: Callable[[str, int, int], None] = cut_when_inserting
    with pytest.raises(DatabaseError) as info:
        registry.ingest_manifest(survey, progress=progress)
    assert cuts, "the ingest never reached its insert stage"
    message = str(info.value)
    assert "lost" in message and "run it again" in message
    assert registry.counts()["ccds"] == 0, "an interrupted ingest must leave nothing"

    report = registry.ingest_manifest(survey)
    assert report.counts["ccd"].inserted == 20
    assert registry.counts()["ccds"] == 20
