"""Migrations of the SQL functions: frozen per revision, same result on every path to head.

A registry created when revision 0002 shipped holds 0002's functions; upgraded to head it must
hold exactly what a fresh registry holds (definitions, comments, the set of functions), and a
downgrade must give the older functions back. The SQL of a shipped revision never changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

import skyreg
from skyreg.db.engine import make_engine
from skyreg.db.migrate import alembic_config, head_revision, upgrade
from skyreg.migrations.functions import SQL_ROOT, sql_digest

#: The frozen SQL, found by path so that this file does not depend on how migrations load it.
FROZEN = Path(skyreg.__file__).resolve().parent / "migrations" / "sql"

FUNCTIONS = """
SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), obj_description(p.oid, 'pg_proc')
FROM pg_proc AS p
WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'skyreg\\_%'
ORDER BY 1
"""

Functions = dict[str, tuple[str, str | None]]


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _functions(url: str) -> Functions:
    with psycopg.connect(_libpq(url)) as connection:
        return {row[0]: (row[1], row[2]) for row in connection.execute(FUNCTIONS)}


def _alembic(url: str, action: Callable[..., None], revision: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            action(alembic_config(connection), revision)
    finally:
        engine.dispose()


def _as_released(url: str, revision: str = "0002") -> None:
    """A registry made when ``revision`` shipped: the schema before it, then its SQL as it
    shipped (run by hand, not through today's migration code), stamped at ``revision``."""
    previous = {"0002": "0001"}[revision]
    _alembic(url, command.upgrade, previous)
    with psycopg.connect(_libpq(url)) as connection:
        for path in sorted((FROZEN / revision).glob("*.sql")):
            connection.execute(path.read_text(encoding="utf-8"))
    _alembic(url, command.stamp, revision)


def _differences(got: Functions, expected: Functions) -> list[str]:
    lines = [f"missing: {name}" for name in sorted(expected.keys() - got.keys())]
    lines += [f"unexpected: {name}" for name in sorted(got.keys() - expected.keys())]
    lines += [f"differs: {name}" for name in sorted(got.keys() & expected.keys())
              if got[name] != expected[name]]
    return lines


def test_upgraded_registry_has_the_functions_of_a_fresh_one(
        database_factory: Callable[..., str]) -> None:
    old = database_factory(empty=True)
    _as_released(old)
    at_0002 = _functions(old)
    assert len(at_0002) > 30

    # Migration 0002 installs its own SQL, whenever it runs.
    migrated = database_factory(empty=True)
    _alembic(migrated, command.upgrade, "0002")
    assert _differences(_functions(migrated), at_0002) == []

    fresh = _functions(database_factory())  # a new registry at head
    assert _differences(at_0002, fresh) != []  # (the functions did change since 0002)
    engine = make_engine(old)
    try:
        upgrade(engine)  # what `skyreg db upgrade` does
    finally:
        engine.dispose()
    assert _differences(_functions(old), fresh) == []

    # Down to 0003 (the functions of 0002 come back), and up again.
    _alembic(old, command.downgrade, "0003")
    assert _differences(_functions(old), at_0002) == []
    _alembic(old, command.upgrade, "head")
    assert _differences(_functions(old), fresh) == []


def test_privileges_on_functions_survive_a_reinstall(empty_database_url: str) -> None:
    url = empty_database_url
    role = f"skyreg_grantee_{os.getpid()}"
    cone = "skyreg_ccds_in_cone(double precision,double precision,double precision)"
    unit = "skyreg_unit_vector(double precision,double precision)"
    _alembic(url, command.upgrade, "0002")
    with psycopg.connect(_libpq(url), autocommit=True) as connection:
        connection.execute(f'CREATE ROLE "{role}"')
        try:
            connection.execute(f'GRANT EXECUTE ON FUNCTION {cone} TO "{role}"')
            connection.execute(f"REVOKE EXECUTE ON FUNCTION {unit} FROM PUBLIC")
            _alembic(url, command.upgrade, "head")
            assert connection.execute("SELECT has_function_privilege(%s, %s, 'EXECUTE')",
                                      (role, cone)).fetchone() == (True,)
            acl = connection.execute(
                "SELECT proacl::text FROM pg_proc WHERE oid = %s::regprocedure", (unit,)
            ).fetchone()
            assert acl is not None and acl[0] is not None  # not the default (PUBLIC) any more
            assert "{=" not in acl[0] and ",=" not in acl[0]
            new = connection.execute(
                "SELECT proacl FROM pg_proc WHERE proname = 'skyreg_ccds_overlapping_vertices'"
            ).fetchone()
            assert new == (None,)  # a function new in this revision gets the defaults
        finally:
            connection.execute(f'DROP OWNED BY "{role}"')
            connection.execute(f'DROP ROLE "{role}"')


def test_shipped_sql_never_changes() -> None:
    """Every revision that installs SQL functions records the digest of its own copy."""
    recorded = {}
    for script in ScriptDirectory.from_config(alembic_config()).walk_revisions():
        digest = getattr(script.module, "SQL_SHA256", None)
        if digest is not None:
            recorded[script.revision] = digest
    assert SQL_ROOT == FROZEN
    unrecorded = {path.name: sql_digest(path.name) for path in FROZEN.iterdir()
                  if path.is_dir() and path.name not in recorded}
    assert unrecorded == {}, (
        "every directory of SQL belongs to the revision of the same name, which records its "
        f"digest as SQL_SHA256 (revision: digest): {unrecorded}")
    for revision, digest in sorted(recorded.items()):
        assert sql_digest(revision) == digest, (
            f"the SQL of revision {revision} changed ({sql_digest(revision)} now): a shipped "
            f"revision is never edited; copy {FROZEN / revision} to a new revision instead "
            "(docs/design.md, 'Changing the SQL functions')")
    assert max(recorded) <= head_revision()


@pytest.mark.parametrize("revision", ["0002", "0004", "0007", "0013", "0014", "0015", "0016",
                                      "0017"])
def test_frozen_sql_is_complete(revision: str) -> None:
    """Each copy holds the whole set (install replaces every function), and only functions."""
    text = "".join(p.read_text(encoding="utf-8") for p in sorted((FROZEN / revision).glob("*.sql")))
    assert text.count("CREATE FUNCTION skyreg_") >= 30
    assert "CREATE OR REPLACE" not in text and "DROP " not in text


_FOOTPRINT = "SELECT pg_get_functiondef('ivoa.skyreg_footprint(float8[], float8[])'::regprocedure)"


def test_footprint_of_0011_equals_that_of_0006(database_url: str, empty_database_url: str,
                                               tmp_path: Path) -> None:
    """Revision 0011's ObsCore footprint function gives the values of 0006's, bit for bit, on
    every CCD of a survey; its downgrade gives 0006's definition back."""
    _alembic(empty_database_url, command.upgrade, "0009")
    with psycopg.connect(_libpq(empty_database_url)) as connection:
        as_0006 = connection.execute(_FOOTPRINT).fetchone()
    from skyreg import Registry
    from skyreg.synthetic import SurveySpec, generate_survey

    survey = tmp_path / "survey"
    generate_survey(survey, SurveySpec(n_visits=3, seed=11,
                                       file_uri_template="s3://b/{instrument}/{visit}/"
                                                         "{detector}.fits"))
    with Registry.connect(database_url) as registry:
        registry.ingest_manifest(survey)
    with psycopg.connect(_libpq(database_url), autocommit=True) as connection:
        at_head = connection.execute(_FOOTPRINT).fetchone()
        _alembic(database_url, command.downgrade, "0009")
        at_0009 = connection.execute(_FOOTPRINT).fetchone()
        assert at_head != at_0009 and at_0009 == as_0006
        old_values = connection.execute(
            "SELECT c.ccd_id, f.* FROM ccd AS c, ivoa.skyreg_footprint(c.ra, c.dec) AS f "
            "ORDER BY 1").fetchall()
        _alembic(database_url, command.upgrade, "head")
        assert connection.execute(_FOOTPRINT).fetchone() == at_head
        new_values = connection.execute(
            "SELECT c.ccd_id, f.* FROM ccd AS c, ivoa.skyreg_footprint(c.ra, c.dec) AS f "
            "ORDER BY 1").fetchall()
    assert len(old_values) > 300
    assert new_values == old_values  # floats compared exactly, s_region as text
