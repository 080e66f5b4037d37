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


def test_db_upgrade_demo_and_server_status(empty_database_url: str, tmp_path: Path) -> None:
    database_url = empty_database_url
    code, out, _ = _run(database_url, "db", "upgrade", "--pixelization", "htm10")
    assert code == 0 and "pixelization htm10" in out
    code, out, _ = _run(database_url, "db", "upgrade")
    assert code == 0 and "pixelization htm10" in out
    code, out, _ = _run(database_url, "--home", str(tmp_path), "demo", "--visits", "50")
    assert code == 0, out
    assert "CCDs overlapping patch" in out and "rows)" in out
    assert "registry: postgresql" in out and "Try next" in out
    assert "(first 10 of " in out and "in all" not in out
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


def test_two_regions_are_refused_by_every_search_command(database_url: str,
                                                         tmp_path: Path) -> None:
    _run(database_url, "ingest", "manifest", str(_manifest(tmp_path)))
    cone, point, polygon = (["--cone", "20.5", "1", "1"], ["--point", "20.5", "1"],
                            ["--polygon", "20,0.9 21,0.9 21,1.1"])
    cases = [
        ["ccds", *point, *cone], ["ccds", *cone, *polygon], ["ccds", "--patch", "testmap", "0",
                                                             "0", *point],
        ["ccds", "--tract", "testmap", "0", *cone], ["datasets", "raw", *point, *cone],
        ["datasets", "raw", "--tract", "testmap", "0", *polygon],
        ["patches", "--ccd", "TestCam", "1000", "0", *point], ["tracts", *point, *polygon],
    ]
    for args in cases:
        code, out, err = _run(database_url, *args)
        assert code == 2 and "give one search region, not" in err, (args, err)
        assert out == ""
    code, out, _ = _run(database_url, "ccds", *point, "--format", "json")
    assert code == 0 and json.loads(out)  # one region alone is fine


def test_sexagesimal_ra_is_hours(database_url: str, tmp_path: Path) -> None:
    _run(database_url, "ingest", "manifest", str(_manifest(tmp_path)))
    plain = _run(database_url, "ccds", "--cone", "20.5", "1.0", "0.2", "--format", "json")
    assert plain[0] == 0 and json.loads(plain[1])
    # 20.5 degrees = 1h22m00s; Dec with colons is degrees.
    for ra, dec in (("1:22:00", "1:00:00"), ("1h22m00s", "1d00m00s"), ("01:22:00.0", "1.0")):
        code, out, err = _run(database_url, "ccds", "--cone", ra, dec, "12arcmin",
                              "--format", "json")
        assert (code, out) == plain[:2], (ra, dec, err)
        code, out, err = _run(database_url, "tracts", "--point", ra, dec, "--format", "json")
        assert code == 0 and json.loads(out) == [{"skymap": "testmap", "tract": 0}], err
    code, _, err = _run(database_url, "ccds", "--cone", "1h22m", "20d", "1")
    assert code == 0, err
    code, _, err = _run(database_url, "ccds", "--cone", "1:22d", "1", "1")
    assert code == 2 and "mixes hours and degrees" in err


def test_reversed_time_and_unknown_names(database_url: str, tmp_path: Path) -> None:
    _run(database_url, "ingest", "manifest", str(_manifest(tmp_path)))
    cone = ["--cone", "20.5", "1.0", "1"]
    code, _, err = _run(database_url, "ccds", *cone, "--time", "61001", "61000")
    assert code == 1 and err.startswith("error: time: the range ends") and "Traceback" not in err
    code, _, err = _run(database_url, "ccds", *cone, "--time", "2027-01-02", "2027-01-01")
    assert code == 1 and "before it starts" in err
    code, out, err = _run(database_url, "ccds", *cone, "--time", "61000", "61000.5")
    assert code == 0 and "TestCam" in out and err == ""
    for args, words in ((["ccds", *cone, "--band", "R"], "no band 'R'"),
                        (["ccds", *cone, "--instrument", "TestKam"], "no instrument 'TestKam'"),
                        (["patches", *cone, "--skymap", "nomap"], "no sky map 'nomap'"),
                        (["datasets", "raw", "--band", "q", "--skymap", "testmap"],
                         "no band 'q'")):
        code, out, err = _run(database_url, *args)
        assert code == 0 and "(0 rows)" in out, (args, out)
        assert err.startswith("warning: ") and words in err and len(err.splitlines()) == 1
    code, out, err = _run(database_url, "ccds", *cone, "--band", "g", "--band", "R")
    assert code == 0 and "TestCam" in out and "no band 'R'" in err and "'g'" not in err
    code, out, err = _run(database_url, "ccds", *cone, "--band", "g", "--instrument", "TestCam")
    assert code == 0 and err == ""


def test_bad_pixelization_is_a_one_line_error(database_url: str) -> None:
    for name, words in (("htm20", "within [4, 14], got 20"), ("mesh9", "expected e.g."),
                        ("htm²", "expected e.g.")):
        code, _, err = _run(database_url, "db", "upgrade", "--pixelization", name)
        assert code == 1 and err.startswith(f"error: pixelization {name!r}") and words in err
        assert "Traceback" not in err
