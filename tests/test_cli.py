"""The command line, run in-process against a real database."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from click.testing import CliRunner

from manifest_builder import box, survey_spec, write_manifest
from skyreg.cli.main import cli


def _run(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--db", url, *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _manifest(tmp_path: Path) -> Path:
    ccds = [box(20.0 + 0.25 * i, 1.0, 0.1) for i in range(8)]
    return write_manifest(tmp_path / "m", survey_spec(
        ccds, per_visit=4, tract_polygons=[box(20.8, 1.0, 1.2)],
        patch_polygons=[[box(20.3, 1.0, 0.3), box(21.3, 1.0, 0.3)]]))


def test_ingest_and_query_in_every_format(database_url: str, tmp_path: Path) -> None:
    code, out, _ = _run(database_url, "ingest", "manifest", str(_manifest(tmp_path)))
    assert code == 0 and "ccd" in out and "loaded from" in out
    code, out, _ = _run(database_url, "ingest", "manifest", str(_manifest(tmp_path)),
                        "--format", "json")
    assert code == 0 and json.loads(out)["counts"]["ccd"] == {"in_input": 8, "inserted": 0}

    code, out, _ = _run(database_url, "ccds", "--patch", "testmap", "0", "0")
    assert code == 0 and "TestCam" in out and out.rstrip().endswith("rows)")
    code, out, _ = _run(database_url, "ccds", "--cone", "20.5", "1.0", "6arcmin",
                        "--format", "json")
    rows = json.loads(out)
    assert code == 0 and rows and set(rows[0]) == {"instrument", "visit", "detector"}
    code, out, _ = _run(database_url, "patches", "--ccd", "TestCam", "1000", "0",
                        "--format", "csv")
    parsed = list(csv.reader(io.StringIO(out)))
    assert code == 0 and parsed[0] == ["skymap", "tract", "patch"] and parsed[1][0] == "testmap"
    code, out, _ = _run(database_url, "tracts", "--point", "20.8", "1.0", "--format", "json")
    assert json.loads(out) == [{"skymap": "testmap", "tract": 0}]
    code, out, _ = _run(database_url, "ccds", "--polygon", "19.9,0.9 20.2,0.9 20.2,1.1",
                        "--band", "g", "--format", "csv")
    assert code == 0 and out.splitlines()[1:] == ["TestCam,1000,0", "TestCam,1000,1"]
    code, out, _ = _run(database_url, "db", "status", "--format", "json")
    assert code == 0 and json.loads(out)["ccds"] == 8


def test_errors_are_one_line_without_traceback(database_url: str, tmp_path: Path) -> None:
    code, _, err = _run(database_url, "ccds", "--patch", "nomap", "1", "2")
    assert code == 1 and err.startswith("error: patch ('nomap', 1, 2) is not in the registry")
    code, _, err = _run(database_url, "ingest", "manifest", str(tmp_path / "missing"))
    assert code == 1 and "not a directory" in err and "Traceback" not in err
    code, _, err = _run(database_url, "ccds", "--cone", "10", "100", "1")
    assert code == 1 and "outside [-90, 90]" in err
    code, _, err = _run(database_url, "ccds")
    assert code == 1 and "give exactly one search region" in err
    code, _, err = _run(database_url, "ccds", "--cone", "1", "2", "banana")
    assert code == 2 and "is not an angle" in err


def test_help_teaches() -> None:
    result = CliRunner().invoke(cli, ["ccds", "--help"])
    assert result.exit_code == 0 and "skyreg ccds --patch rings 9813 40" in result.stdout


def test_db_upgrade_demo_and_server_status(database_url: str, tmp_path: Path) -> None:
    code, out, _ = _run(database_url, "db", "upgrade", "--pixelization", "htm10")
    assert code == 0 and "pixelization htm10" in out
    code, out, _ = _run(database_url, "db", "upgrade")
    assert code == 0 and "pixelization htm10" in out
    code, out, _ = _run(database_url, "--home", str(tmp_path), "demo", "--visits", "50")
    assert code == 0, out
    assert "CCDs overlapping patch" in out and "rows)" in out
    assert (tmp_path / "demo-survey" / "manifest.json").exists()
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "unused"), "server", "status",
                                      "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["running"] is False


def test_unreachable_database_and_huge_ids_are_one_line_errors(database_url: str) -> None:
    code, _, err = _run("postgresql://nobody@127.0.0.1:1/none", "ccds", "--cone", "1", "2", "3")
    assert code == 1 and "Traceback" not in err
    assert err.startswith("error: cannot connect to postgresql://nobody@127.0.0.1:1/none: ")
    code, _, err = _run(database_url, "ccds", "--patch", "rings", "9" * 30, "1")
    assert code == 1 and "outside the 64-bit range" in err
