"""Hostile names and numbers: clear errors or empty answers, never damage, never tracebacks.

Through the Python API, the CLI and the SQL functions: quotes, semicolons, an injection
attempt, Unicode, NUL bytes, 64-bit overflow, NaN and infinities, empty strings. After all of
them the registry must hold exactly what it held before.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from manifest_builder import box, survey_spec, write_manifest
from skyreg import Registry
from skyreg.cli.main import cli
from skyreg.errors import SkyregError

# Hostile names are unknown names: the registry says so, and that is not what is tested here.
pytestmark = pytest.mark.filterwarnings("ignore::skyreg.errors.UnknownNameWarning")

NAMES = ["'", '"', "x'; DROP TABLE ccd; --", "'); DROP TABLE ccd; --", "Robert\"); --",
         "; SELECT pg_sleep(10)", "ünïcødé ☃ \U0001d518", "\u202e", "", " ", "%s", "%(x)s", "$1",
         "a\\b", "TestCam\x00", "\x00"]
INTS = [2**63, -(2**63) - 1, 10**30]
FLOATS = [math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324]


@pytest.fixture(scope="module")
def loaded(database_factory: Any, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Registry, str]]:
    ccds = [box(10.0 + 0.3 * i, 5.0, 0.1) for i in range(30)]
    root = write_manifest(tmp_path_factory.mktemp("hostile") / "m",
                          survey_spec(ccds, tract_polygons=[box(12, 5, 3)],
                                      patch_polygons=[[box(12, 5, 1)]]))
    url = database_factory()
    with Registry.connect(url) as registry:
        registry.ingest_manifest(root)
        yield registry, url
        assert registry.counts() == {"visits": 3, "ccds": 30, "skymaps": 1, "tracts": 1,
                                     "patches": 1}


def _clear_error_or_empty(call: Any) -> None:
    """The call returns an empty answer or raises a skyreg error or a database DataError."""
    try:
        result = call()
    except (SkyregError, psycopg.errors.DataError) as err:
        assert str(err).strip()
        return
    assert len(result) == 0


@pytest.mark.parametrize("name", NAMES)
def test_python_api_names(loaded: tuple[Registry, str], name: str) -> None:
    registry = loaded[0]
    _clear_error_or_empty(lambda: registry.find_ccds(patch=(name, 0, 0)))
    _clear_error_or_empty(lambda: registry.find_ccds(tract=(name, 0)))
    _clear_error_or_empty(lambda: registry.find_patches(ccd=(name, 1000, 0)))
    _clear_error_or_empty(lambda: registry.find_ccds(cone=(10, 5, 1), instrument=name))
    _clear_error_or_empty(lambda: registry.find_ccds(cone=(10, 5, 1), band=[name, "r"]))
    _clear_error_or_empty(lambda: registry.find_tracts(point=(12, 5), skymap=name))


def _clear_error_or_answer(call: Any) -> None:
    """Any answer (a huge RA is still an RA) or a clear skyreg error."""
    try:
        call()
    except SkyregError as err:
        assert str(err).strip()


@pytest.mark.parametrize("number", [*INTS, *FLOATS])
def test_python_api_numbers(loaded: tuple[Registry, str], number: float) -> None:
    registry = loaded[0]
    if not math.isinf(number):  # see test_infinite_ids_in_keys
        _clear_error_or_answer(lambda: registry.find_ccds(patch=("testmap", number, 0)))
        _clear_error_or_answer(lambda: registry.find_patches(ccd=("TestCam", number, number)))
    _clear_error_or_answer(lambda: registry.find_ccds(cone=(number, 5, 1)))
    _clear_error_or_answer(lambda: registry.find_ccds(cone=(10, 5, number)))
    _clear_error_or_answer(lambda: registry.find_ccds(point=(10, number)))
    _clear_error_or_answer(lambda: registry.find_ccds(polygon=[(10, 5), (11, 5), (number, 6)]))


def test_infinite_ids_in_keys(loaded: tuple[Registry, str]) -> None:
    with pytest.raises(SkyregError):
        loaded[0].find_ccds(patch=("testmap", math.inf, 0))


CLI_CASES = [
    ["ccds", "--patch", "x'; DROP TABLE ccd; --", "0", "0"],
    ["ccds", "--patch", "testmap", str(2**63), "0"],
    ["ccds", "--patch", "testmap", "1e400", "0"],
    ["ccds", "--tract", "'); DROP TABLE ccd; --", "-9223372036854775809"],
    ["ccds", "--cone", "nan", "5", "1"],
    ["ccds", "--cone", "10", "inf", "1"],
    ["ccds", "--cone", "10", "5", "-1"],
    ["ccds", "--cone", "10", "5", "1", "--instrument", "ünï'\"; --"],
    ["ccds", "--point", "10", "95"],
    ["ccds", "--polygon", "10,5 ; DROP TABLE ccd"],
    ["ccds", "--polygon", "10,5 11,5 10,5"],
    ["patches", "--ccd", "TestCam", "1000", str(10**30)],
    ["patches", "--ccd", "", "", ""],
    ["tracts", "--point", "12", "5", "--skymap", "%s%s%(x)s"],
    ["db", "roles", "--reader", "x; DROP ROLE postgres"],
]


@pytest.mark.parametrize("args", CLI_CASES, ids=[str(i) for i in range(len(CLI_CASES))])
def test_cli_never_shows_a_traceback(loaded: tuple[Registry, str], args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["--db", loaded[1], *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.output
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        assert "error" in result.output.lower() or "usage" in result.output.lower()


SQL_CALLS = [
    ("SELECT * FROM skyreg_ccds_overlapping_patch(%s, 0, 0)", "name"),
    ("SELECT * FROM skyreg_ccds_overlapping_tract(%s, 0)", "name"),
    ("SELECT * FROM skyreg_patches_overlapping_ccd(%s, 1000, 0)", "name"),
    ("SELECT * FROM skyreg_patches_overlapping_ccd('TestCam', 1000, 0, %s)", "name"),
    ("SELECT * FROM skyreg_ccd_patch_pairs(%s, 0)", "name"),
    ("SELECT * FROM skyreg_ccds_in_cone(%s::float8, 5, 1)", "number"),
    ("SELECT * FROM skyreg_ccds_in_cone(10, %s::float8, 1)", "number"),
    ("SELECT * FROM skyreg_ccds_in_cone(10, 5, %s::float8)", "number"),
    ("SELECT * FROM skyreg_ccds_containing_point(10, %s::float8)", "number"),
    ("SELECT * FROM skyreg_ccds_in_polygon(ARRAY[10, 11, %s::float8], ARRAY[5, 5, 6])",
     "number"),
    ("SELECT * FROM skyreg_ccds_overlapping_patch('testmap', %s, 0)", "int"),
    ("SELECT * FROM skyreg_tracts_overlapping_ccd('TestCam', %s, %s)", "int2"),
]


def _sql_values(kind: str) -> list[tuple[Any, ...]]:
    if kind == "name":
        return [(name,) for name in NAMES]
    if kind == "number":
        return [(value,) for value in FLOATS] + [(float(2**63),), (1e30,)]
    values = [(value,) for value in INTS] + [(math.nan,)]
    return [(*v, *v) for v in values] if kind == "int2" else values


@pytest.mark.parametrize("statement,kind", SQL_CALLS)
def test_sql_functions(loaded: tuple[Registry, str], statement: str, kind: str) -> None:
    url = loaded[1].replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as connection:
        for params in _sql_values(kind):
            try:
                rows = connection.execute(statement, params).fetchall()
            except psycopg.Error as err:
                # A clear, classified error: data exception (22), no data (P0), or a type
                # mismatch found before running (42) — never an internal error. A NUL byte is
                # refused by the driver before anything is sent.
                if err.sqlstate is None:
                    assert "NUL" in str(err)
                else:
                    assert err.sqlstate[:2] in ("22", "P0", "42"), err
                assert str(err).strip()
            else:
                assert rows == [] or kind == "number", (statement, params, rows)
        intact = connection.execute("SELECT count(*) FROM ccd").fetchone()
        assert intact == (30,)


def test_empty_polygon_and_nulls_in_sql(loaded: tuple[Registry, str]) -> None:
    url = loaded[1].replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in [
            "SELECT * FROM skyreg_ccds_in_polygon('{}', '{}')",
            "SELECT * FROM skyreg_ccds_in_polygon(NULL, NULL)",
            "SELECT * FROM skyreg_ccds_in_polygon('{10,11,NULL}', '{5,5,6}')",
            "SELECT * FROM skyreg_ccds_in_polygon('{{10,11},{12,13}}', '{{5,5},{6,6}}')",
            "SELECT * FROM skyreg_ccds_in_cone(NULL, 5, 1)",
        ]:
            with pytest.raises(psycopg.DataError):
                connection.execute(statement)


def test_manifest_with_hostile_names_round_trips(tmp_path: Path, database_url: str) -> None:
    """Names are data: a manifest full of SQL syntax is stored and found again as-is."""
    name = "x'); DROP TABLE ccd; -- ☃"
    spec = survey_spec([box(10.0, 5.0, 0.1)], tract_polygons=[box(10, 5, 1)],
                       patch_polygons=[[box(10, 5, 0.5)]])
    assert spec.instrument is not None and spec.skymap is not None
    spec.instrument["name"] = name
    spec.skymap["name"] = name
    for rows in (spec.visits, spec.ccds, spec.tracts, spec.patches):
        for row in rows:
            row["instrument" if "instrument" in row else "skymap"] = name
    write_manifest(tmp_path / "m", spec)
    with Registry.connect(database_url) as registry:
        registry.ingest_manifest(tmp_path / "m")
        found = registry.find_ccds(patch=(name, 0, 0))
        assert [tuple(c) for c in found] == [(name, 1000, 0)]
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT * FROM skyreg_ccds_overlapping_patch(%s, 0, 0)",
                                  (name,)).fetchall()
    assert rows == [(name, 1000, 0)]
