"""Reader and writer roles: idempotent creation, and the reader really cannot write."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import event

from manifest_builder import box, survey_spec, write_manifest
from skyreg import Registry
from skyreg.db.engine import make_engine
from skyreg.db.roles import (
    RoleError,
    check_role_name,
    drop_roles,
    ensure_roles,
    registry_schemas,
)
from skyreg.schema.namespaces import EXTRA_SCHEMAS


@pytest.fixture
def roles(database_url: str) -> Iterator[tuple[str, str, str]]:
    """Role names unique to this test run (roles are cluster-wide), dropped afterwards."""
    suffix = f"{os.getpid()}_{abs(hash(database_url)) % 10**6}"
    reader, writer = f"t_reader_{suffix}", f"t_writer_{suffix}"
    yield database_url, reader, writer
    engine = make_engine(database_url)
    try:
        drop_roles(engine, reader, writer)
    finally:
        engine.dispose()


def _load(database_url: str, root: Path, n: int, first: int = 0) -> Registry:
    ccds = [box(10.0 + 0.3 * i, 5.0, 0.1) for i in range(first, first + n)]
    spec = survey_spec(ccds, tract_polygons=[box(12, 5, 3)], patch_polygons=[[box(12, 5, 1)]])
    for visit in spec.visits:
        visit["visit"] += first
    for ccd in spec.ccds:
        ccd["visit"] += first
    write_manifest(root, spec)
    return Registry.connect(database_url)


def _act_as(registry: Registry, role: str) -> None:
    """From here on, every connection of the registry switches to ``role``."""
    @event.listens_for(registry.engine, "connect")
    def _set_role(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        dbapi_connection.commit()

    registry.engine.dispose()


def _as(database_url: str, role: str) -> psycopg.Connection[Any]:
    connection = psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True)
    connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    return connection


def test_reader_reads_and_cannot_write(roles: tuple[str, str, str], tmp_path: Path) -> None:
    database_url, reader, writer = roles
    with _load(database_url, tmp_path / "m", 20) as registry:
        registry.ingest_manifest(tmp_path / "m")
        first = ensure_roles(registry.engine, reader, writer)
        again = ensure_roles(registry.engine, reader, writer)  # idempotent
    assert set(first.created) == {reader, writer} and again.created == ()
    with _as(database_url, reader) as connection:
        assert connection.execute("SELECT count(*) FROM ccd").fetchone() == (20,)
        rows = connection.execute("SELECT * FROM skyreg_ccds_in_cone(10.0, 5.0, 0.2)").fetchall()
        assert rows and rows[0][0] == "TestCam"
        assert connection.execute(
            "SELECT count(*) FROM skyreg_ccd_patch_pairs('testmap', 0)").fetchone() > (0,)
        for statement in [
            "INSERT INTO skymap VALUES ('x', 'rings', 'ab', '{}')",
            "UPDATE ccd SET detector = detector + 1",
            "DELETE FROM ccd_pixel",
            "TRUNCATE ccd_pixel",
            "CREATE TABLE mine (x int)",
            "DROP FUNCTION skyreg_ccds_in_cone(float8, float8, float8)",
            "ALTER TABLE ccd ADD COLUMN x int",
            "CREATE FUNCTION skyreg_evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
    with _as(database_url, writer) as connection:
        connection.execute("UPDATE visit SET exposure_time = exposure_time")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("CREATE TABLE mine (x int)")


def test_writer_can_ingest(roles: tuple[str, str, str], tmp_path: Path) -> None:
    database_url, reader, writer = roles
    with _load(database_url, tmp_path / "a", 10) as registry:
        registry.ingest_manifest(tmp_path / "a")
        ensure_roles(registry.engine, reader, writer, login=True, password="it's; a \"test\"")
    # Connect as the writer itself (password authentication may be off on a test server; the
    # role switch is what matters for privileges).
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            logins = connection.exec_driver_sql(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname IN (%(r)s, %(w)s)",
                {"r": reader, "w": writer}).scalars().all()
        assert logins == [True, True]
    finally:
        engine.dispose()
    _load(database_url, tmp_path / "b", 10, first=10).close()
    with Registry.connect(database_url) as registry:
        _act_as(registry, writer)
        report = registry.ingest_manifest(tmp_path / "b")
        assert report.counts["ccd"].inserted == 10
        assert registry.counts()["ccds"] == 20


def test_writer_can_make_the_first_load(roles: tuple[str, str, str], tmp_path: Path) -> None:
    """Into empty tables it does not own, the writer loads without the owner-only bulk path."""
    database_url, reader, writer = roles
    with _load(database_url, tmp_path / "a", 10) as registry:
        ensure_roles(registry.engine, reader, writer)
    with Registry.connect(database_url) as registry:
        _act_as(registry, writer)
        report = registry.ingest_manifest(tmp_path / "a")
        assert report.counts["ccd"].inserted == 10
        assert [c.detector for c in registry.find_ccds(point=(10.0, 5.0))] == [0]


@pytest.mark.parametrize("name", ["Robert'); DROP TABLE ccd; --", "a b", "", "x" * 64, "pg_x",
                                  "Ümlaut", "semi;colon", "nul\x00", "public", "UPPER"])
def test_bad_role_names_are_refused(name: str) -> None:
    with pytest.raises(RoleError):
        check_role_name(name)


def test_roles_cover_every_schema_of_the_registry(roles: tuple[str, str, str],
                                                  tmp_path: Path) -> None:
    """Roles made after the upgrade that created ``ivoa`` (its grants then found no role) read
    the ObsCore view, and tables the owner adds later there, and still cannot write."""
    database_url, reader, writer = roles
    with _load(database_url, tmp_path / "m", 5) as registry:
        registry.ingest_manifest(tmp_path / "m")
        ensure_roles(registry.engine, reader, writer)
    owner = psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True)
    with owner:
        owner.execute("CREATE TABLE ivoa.added_later (x int)")
        owner.execute("INSERT INTO ivoa.added_later VALUES (1)")
    with _as(database_url, reader) as connection:
        assert connection.execute("SELECT count(*) FROM ivoa.obscore").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM ivoa.skyreg_band").fetchone() > (0,)
        assert connection.execute("SELECT ivoa.skyreg_uri_escape('a b')").fetchone() == (
            "a%20b",)
        assert connection.execute("SELECT x FROM ivoa.added_later").fetchone() == (1,)
        for statement in ["INSERT INTO ivoa.skyreg_band VALUES ('q', 1e-7, 2e-7)",
                          "DELETE FROM ivoa.added_later", "CREATE TABLE ivoa.mine (x int)",
                          "DROP VIEW ivoa.obscore"]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
    with _as(database_url, writer) as connection:
        connection.execute("UPDATE ivoa.skyreg_band SET em_min = em_min")
        connection.execute("INSERT INTO ivoa.added_later VALUES (2)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("CREATE TABLE ivoa.mine (x int)")


def test_every_schema_the_migrations_create_is_a_registry_schema(registry: Registry) -> None:
    """A migration that creates a schema must list it in EXTRA_SCHEMAS, or the roles would
    not reach it: a fully migrated database holds exactly the listed schemas besides its own."""
    with registry.engine.connect() as connection:
        driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
        present = {row[0] for row in driver.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname <> 'information_schema' AND nspname <> current_schema()")}
        assert registry_schemas(driver)[1:] == sorted(present)
    assert present == set(EXTRA_SCHEMAS)
