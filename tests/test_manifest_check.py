"""``ingest manifest --check`` and re-runs: every check without writes, no repeated pixel work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from manifest_builder import box, write_manifest
from skyreg import ConflictError, Registry
from skyreg.cli.main import cli
from skyreg.errors import InputErrors
from skyreg.geometry.pixelization import PixelScheme
from skyreg.ingest import footprints
from test_ingest import small_spec

TABLES = ("instrument", "detector", "visit", "ccd", "ccd_pixel", "skymap", "tract",
          "tract_pixel", "patch", "patch_pixel", "ccd_dataset")


def database_state(url: str) -> dict[str, Any]:
    """Row counts and a digest of every registry table, and the state of every sequence."""
    engine = create_engine(url)
    with engine.connect() as connection:
        state: dict[str, Any] = {
            name: connection.execute(text(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                f"FROM {name} t")).one()
            for name in TABLES}
        for (sequence,) in connection.execute(text(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()")):
            state[sequence] = connection.execute(
                text(f'SELECT last_value, is_called FROM "{sequence}"')).one()
    engine.dispose()
    return state


def test_check_writes_nothing_and_says_what_would_be_new(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    registry.ingest_manifest(write_manifest(tmp_path / "a", small_spec(40)))
    before = database_state(database_url)
    report = registry.ingest_manifest(write_manifest(tmp_path / "b", small_spec(60)),
                                      check=True)
    assert report.checked_only and not report.changed
    assert report.counts["ccd"].in_input == 60 and report.counts["ccd"].inserted == 20
    assert report.counts["visit"].inserted == 2 and report.counts["patch"].inserted == 0
    assert "nothing was written" in report.lines()[-1]
    assert database_state(database_url) == before
    # A load does what the check said.
    loaded = registry.ingest_manifest(tmp_path / "b")
    assert {k: c.inserted for k, c in loaded.counts.items()} == \
        {k: c.inserted for k, c in report.counts.items()}


def test_check_of_a_fresh_registry_leaves_it_empty(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    before = database_state(database_url)
    report = registry.ingest_manifest(write_manifest(tmp_path / "m", small_spec(40)),
                                      check=True)
    assert report.counts["ccd"].inserted == 40 and report.counts["tract"].inserted == 1
    assert database_state(database_url) == before


def test_check_finds_conflicts_and_unknown_parents(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    registry.ingest_manifest(write_manifest(tmp_path / "a", small_spec(20)))
    before = database_state(database_url)
    moved = small_spec(30)
    moved.ccds[3]["ra"], moved.ccds[3]["dec"] = box(50.0, 50.0, 0.1)
    with pytest.raises(ConflictError, match=r"visit=1000, detector=3.*different footprint"):
        registry.ingest_manifest(write_manifest(tmp_path / "b", moved), check=True)
    orphan = small_spec(20)
    orphan.instrument, orphan.detectors, orphan.ccds = None, [], []
    for row in orphan.visits:
        row["instrument"] = "OtherCam"
    with pytest.raises(InputErrors, match=r"OtherCam.*neither in this manifest nor registered"):
        registry.ingest_manifest(write_manifest(tmp_path / "c", orphan), check=True)
    assert database_state(database_url) == before


def test_cli_check(database_url: str, tmp_path: Path) -> None:
    root = write_manifest(tmp_path / "m", small_spec(40))
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", database_url, "ingest", "manifest", "--check",
                                 "--no-progress", str(root)])
    assert result.exit_code == 0, result.output
    assert "would be new" in result.output and "nothing was written" in result.output
    assert any(line.split()[:4] == ["ccd", "40", "40", "0"] for line in result.output.splitlines())
    assert database_state(database_url)["ccd"][0] == 0
    moved = small_spec(40)
    runner.invoke(cli, ["--db", database_url, "ingest", "manifest", "--no-progress", str(root)])
    moved.ccds[0]["ra"], moved.ccds[0]["dec"] = box(60.0, 10.0, 0.1)
    result = runner.invoke(cli, ["--db", database_url, "ingest", "manifest", "--check",
                                 "--no-progress", str(write_manifest(tmp_path / "x", moved))])
    assert result.exit_code != 0 and "already registered with different footprint" in \
        result.output, result.output


@pytest.fixture
def envelopes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the footprints whose pixel coverage is computed: sphgeom envelope calls, and
    the polygons covered on whole arrays (footprints._vertex_covers; small inputs, so in this
    process)."""
    calls: list[int] = []
    original = PixelScheme.envelope
    vertex_covers = footprints._vertex_covers

    def counting(self: PixelScheme, region: Any) -> Any:
        calls.append(1)
        return original(self, region)

    def counting_arrays(vertices: Any, level: int, neighbours: Any) -> Any:
        calls.extend([1] * len(vertices))
        return vertex_covers(vertices, level, neighbours)

    monkeypatch.setattr(PixelScheme, "envelope", counting)
    monkeypatch.setattr(footprints, "_vertex_covers", counting_arrays)
    return calls


def test_rerun_computes_pixels_only_for_new_rows(
        registry: Registry, tmp_path: Path, envelopes: list[int]) -> None:
    registry.ingest_manifest(write_manifest(tmp_path / "a", small_spec(40)))
    assert len(envelopes) >= 40 + 1 + 2  # CCDs, the tract, the patches
    envelopes.clear()
    again = registry.ingest_manifest(tmp_path / "a")
    assert not again.changed and envelopes == []
    bigger = registry.ingest_manifest(write_manifest(tmp_path / "b", small_spec(60)))
    assert bigger.counts["ccd"].inserted == 20 and len(envelopes) == 20
    envelopes.clear()
    registry.ingest_manifest(write_manifest(tmp_path / "c", small_spec(60)), check=True)
    assert envelopes == []
