"""The file archive: dataset types, file rows from manifests, and spatial dataset searches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from manifest_builder import box, survey_spec, write_manifest
from skyreg import Registry
from skyreg.errors import ConflictError, InputErrors, UnknownNameWarning
from skyreg.registry.registry import QueryError


def _grid(count: int, spacing: float = 0.3) -> list[tuple[list[float], list[float]]]:
    """CCD boxes on a line across RA 0, so cones near the wrap find some of them."""
    return [box((359.0 + i * spacing) % 360.0, 0.5 * (i % 3), 0.12) for i in range(count)]


def _with_files(tmp_path: Path, count: int = 40, name: str = "m") -> Path:
    spec = survey_spec(_grid(count), per_visit=10)
    for i, row in enumerate(spec.ccds):
        if i % 4 != 3:  # every fourth CCD has no file
            row["uri"] = f"s3://bucket/raw/{row['visit']}/{row['detector']}.fits"
            row["size_bytes"] = 1000 + i
    return write_manifest(tmp_path / name, spec)


def test_manifest_uris_fill_the_archive(registry: Registry, tmp_path: Path) -> None:
    report = registry.ingest_manifest(_with_files(tmp_path))
    assert report.counts["ccd_dataset"].inserted == 30
    everything = registry.find_datasets("raw")
    assert len(everything) == 30
    assert all(f.format == "fits" and f.hdu == 0 and f.path is None for f in everything)
    rng = np.random.default_rng(5)
    for _ in range(30):
        cone = (float(rng.uniform(358.5, 361.5) % 360.0), float(rng.uniform(-0.5, 1.5)),
                float(rng.uniform(0.01, 1.0)))
        ccds = {(c.visit, c.detector) for c in registry.find_ccds(cone=cone)}
        files = {(f.visit, f.detector) for f in registry.find_datasets("raw", cone=cone)}
        with_uri = {(f.visit, f.detector) for f in everything}
        assert files == ccds & with_uri
    by_band = registry.find_datasets("raw", band="g")
    assert by_band and {f.band for f in by_band} == {"g"}
    with pytest.warns(UnknownNameWarning, match="OtherCam"):
        assert registry.find_datasets("raw", instrument="OtherCam") == []
    with pytest.warns(UnknownNameWarning, match="testmap"):
        assert registry.find_datasets("raw", skymap="testmap") == []
    table = everything.to_table()
    assert len(table) == 30 and "uri" in table.colnames


def test_reingest_is_idempotent_and_a_moved_file_conflicts(registry: Registry,
                                                           tmp_path: Path) -> None:
    registry.ingest_manifest(_with_files(tmp_path))
    again = registry.ingest_manifest(_with_files(tmp_path, name="again"))
    assert again.counts["ccd_dataset"].inserted == 0
    spec = survey_spec(_grid(40), per_visit=10)
    spec.ccds[0]["uri"] = "s3://elsewhere/0.fits"
    with pytest.raises(ConflictError, match="ccd_dataset"):
        registry.ingest_manifest(write_manifest(tmp_path / "moved", spec))


def test_unknown_dataset_type_in_a_manifest_is_refused(registry: Registry,
                                                       tmp_path: Path) -> None:
    spec = survey_spec(_grid(10), per_visit=10)
    spec.ccds[0]["uri"] = "s3://bucket/x.fits"
    spec.ccds[0]["dataset_type"] = "nonesuch"
    with pytest.raises(InputErrors, match="dataset_type"):
        registry.ingest_manifest(write_manifest(tmp_path / "m", spec))
    assert registry.counts()["ccds"] == 0


def test_dataset_types(registry: Registry) -> None:
    assert registry.dataset_types() == {"raw": "ccd", "calexp": "ccd", "deepCoadd": "patch"}
    assert registry.register_dataset_type("postISRCCD", "ccd", "after ISR") is True
    assert registry.register_dataset_type("postISRCCD", "ccd") is False
    with pytest.raises(QueryError, match="dimensions 'ccd'"):
        registry.register_dataset_type("postISRCCD", "patch")
    for bad in ("", "a b", "x'; DROP TABLE ccd; --"):
        with pytest.raises(QueryError):
            registry.register_dataset_type(bad, "ccd")
    with pytest.raises(QueryError, match="dimensions must be"):
        registry.register_dataset_type("fine", "exposure")
    with pytest.raises(QueryError, match="not registered"):
        registry.find_datasets("nonesuch")
    assert registry.find_datasets("deepCoadd") == []
