"""``--columns`` and the table-file formats of the search commands, read back with astropy and
pyarrow and compared with the Python API's answer."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.table import Table
from click.testing import CliRunner

from manifest_builder import box, survey_spec, write_manifest
from skyreg import Registry
from skyreg.cli.main import cli

CONE = ["--cone", "20.6", "1.0", "0.5"]
COLUMNS = ["band", "mjd_start", "exposure_time", "uri", "footprint_ra", "footprint_dec"]


def _run(url: str, *args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(cli, ["--db", url, *args], catch_exceptions=False)
    return result.exit_code, result.stdout_bytes, result.stderr


@pytest.fixture
def loaded(database_url: str, tmp_path: Path) -> str:
    spec = survey_spec([box(20.0 + 0.25 * i, 1.0, 0.1, angle=5.0 * i) for i in range(12)],
                       per_visit=4, tract_polygons=[box(20.8, 1.0, 1.2)],
                       patch_polygons=[[box(20.3, 1.0, 0.3), box(21.3, 1.0, 0.3)]])
    for i, row in enumerate(spec.ccds):
        if i % 4:
            row["uri"] = f"s3://bucket/raw/{row['visit']}/{row['detector']}.fits"
    with Registry.connect(database_url) as registry:
        registry.ingest_manifest(write_manifest(tmp_path / "m", spec))
    return database_url


def _expected(url: str) -> Table:
    with Registry.connect(url) as registry:
        found = registry.find_ccds(cone=(20.6, 1.0, 0.5), columns=COLUMNS, dataset_type="raw")
    assert len(found) > 4 and any(uri is None for uri in found["uri"])
    return found.to_table()


def _same(got: Table, expected: Table) -> None:
    assert got.colnames == expected.colnames and len(got) == len(expected)
    for name in ("instrument", "band"):
        assert [str(v) for v in got[name]] == [str(v) for v in expected[name]]
    for name in ("visit", "detector", "mjd_start", "exposure_time"):
        assert np.array_equal(np.asarray(got[name]), np.asarray(expected[name])), name
    assert got["mjd_start"].unit == expected["mjd_start"].unit == "d"
    uris = [None if expected["uri"].mask[i] else str(expected["uri"][i])
            for i in range(len(expected))]
    assert [str(v) or None if not np.ma.is_masked(v) else None for v in got["uri"]] == uris
    for i in range(len(expected)):
        assert list(got["footprint_ra"][i]) == list(expected["footprint_ra"][i])
        assert list(got["footprint_dec"][i]) == list(expected["footprint_dec"][i])


@pytest.mark.parametrize("fmt", ["votable", "fits", "parquet"])
def test_table_files_round_trip(loaded: str, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"ccds.{fmt}"
    code, _, err = _run(loaded, "ccds", *CONE, "--columns", ",".join(COLUMNS),
                        "--dataset-type", "raw", "--format", fmt, "--out", str(out))
    assert code == 0, err
    if fmt == "parquet":
        arrow = pq.read_table(out)
        assert arrow.schema.field("mjd_start").metadata == {b"unit": b"d"}
        got = Table.from_pandas(arrow.to_pandas())
        got["mjd_start"].unit = "d"
    else:
        got = Table.read(out, format=fmt)
    _same(got, _expected(loaded))


@pytest.mark.parametrize("fmt", ["votable", "fits", "parquet"])
def test_empty_answers_write_their_columns(loaded: str, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"none.{fmt}"
    code, _, err = _run(loaded, "ccds", "--cone", "200", "-40", "0.1", "--columns",
                        "band,footprint,uri", "--dataset-type", "raw", "--format", fmt,
                        "--out", str(out))
    assert code == 0, err
    got = pq.read_table(out).column_names if fmt == "parquet" else Table.read(
        out, format=fmt).colnames
    assert got == ["instrument", "visit", "detector", "band", "footprint_ra",
                   "footprint_dec", "uri"]


def test_binary_formats_go_to_a_pipe_but_not_to_a_terminal(loaded: str) -> None:
    code, data, _ = _run(loaded, "ccds", *CONE, "--columns", "band", "--format", "parquet")
    assert code == 0 and pq.read_table(io.BytesIO(data)).column_names[-1] == "band"
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "skyreg", "--db", loaded, "ccds", *CONE, "--format", "fits"],
            stdout=secondary, stderr=subprocess.PIPE, timeout=120,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    finally:
        os.close(secondary)
        os.close(primary)
    assert done.returncode == 2
    assert b"--format fits writes a binary file: give --out FILE" in done.stderr


def test_columns_in_text_formats(loaded: str) -> None:
    code, data, _ = _run(loaded, "ccds", *CONE, "--columns", "band,footprint", "--format",
                         "json")
    rows = json.loads(data)
    assert code == 0 and rows and set(rows[0]) == {"instrument", "visit", "detector", "band",
                                                   "footprint_ra", "footprint_dec"}
    assert len(rows[0]["footprint_ra"]) == 4
    code, data, _ = _run(loaded, "ccds", *CONE, "--columns", "uri", "--dataset-type", "raw",
                         "--format", "csv")
    table = list(csv.DictReader(io.StringIO(data.decode())))
    assert code == 0 and {row["uri"] for row in table} >= {""}
    assert any(row["uri"].startswith("s3://bucket/raw/") for row in table)
    code, data, _ = _run(loaded, "patches", *CONE, "--columns", "cell_x,outer")
    assert code == 0 and b"cell_x" in data and b"outer_ra" in data and b"(2 rows)" in data
    code, data, _ = _run(loaded, "tracts", *CONE, "--columns", "ra_center", "--format", "csv")
    assert code == 0 and data.decode().splitlines()[0] == "skymap,tract,ra_center"
    code, data, _ = _run(loaded, "datasets", "raw", *CONE, "--columns", "mjd_start",
                         "--format", "csv")
    assert code == 0 and data.decode().splitlines()[0].endswith(",checksum,mjd_start")


def test_bad_columns_are_one_line_errors(loaded: str) -> None:
    code, _, err = _run(loaded, "ccds", *CONE, "--columns", "band,colour")
    assert code == 1 and "error: columns: find_ccds has no column 'colour'; valid: band" in err
    code, _, err = _run(loaded, "ccds", *CONE, "--columns", "uri")
    assert code == 1 and "dataset_type=" in err and "Traceback" not in err


def test_help_teaches_columns_and_formats() -> None:
    for command, example in (("ccds", "--columns band,mjd_start,uri --dataset-type raw"),
                             ("patches", "--columns cell_x,cell_y,outer"),
                             ("tracts", "--format fits --out t.fits"),
                             ("datasets", "--columns mjd_start,footprint")):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and example in result.stdout, command
        assert "votable|parquet|fits" in result.stdout
