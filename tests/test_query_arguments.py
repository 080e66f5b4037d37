"""Query arguments that are not geometry: time ranges and filter names (Python API)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
from astropy.time import Time

from manifest_builder import box, survey_spec, write_manifest
from skyreg import QueryError, Registry
from skyreg.errors import SkyregError, UnknownNameWarning

CONE = (20.5, 1.0, 1.0)


@pytest.fixture
def loaded(registry: Registry, tmp_path: Path) -> Registry:
    ccds = [box(20.0 + 0.25 * i, 1.0, 0.1) for i in range(8)]
    registry.ingest_manifest(write_manifest(tmp_path / "m", survey_spec(
        ccds, per_visit=4, tract_polygons=[box(20.8, 1.0, 1.2)],
        patch_polygons=[[box(20.3, 1.0, 0.3)]])))
    return registry


def test_reversed_or_non_finite_time_range_is_refused(loaded: Registry) -> None:
    with pytest.raises(QueryError, match=r"time: the range ends \(MJD 61000.0\) before"):
        loaded.find_ccds(cone=CONE, time=(61001.0, 61000.0))
    with pytest.raises(QueryError, match="before it starts"):
        loaded.find_ccds(cone=CONE, time=(Time("2026-01-02"), Time("2026-01-01")))
    for bad, words in (((math.nan, 61000.0), r"time\[0\]: must be finite"),
                       ((61000.0, math.inf), r"time\[1\]: must be finite"),
                       (("61000", 61001.0), "got the string"),
                       ((61000.0,), "expected \\(start, end\\)"),
                       ("61000 61001", "expected \\(start, end\\)")):
        with pytest.raises(QueryError, match=words):
            loaded.find_ccds(cone=CONE, time=bad)  # type: ignore[arg-type]
    assert len(loaded.find_ccds(cone=CONE, time=(61000.0, 61000.0))) == 4  # an instant


def test_unknown_filter_names_warn_and_known_ones_do_not(loaded: Registry) -> None:
    with pytest.warns(UnknownNameWarning, match="band: no band 'R' in this registry"):
        assert loaded.find_ccds(cone=CONE, band="R") == []
    with pytest.warns(UnknownNameWarning, match="instrument: no instrument 'Nope'"):
        assert loaded.find_ccds(cone=CONE, instrument=["TestCam", "Nope"]) != []
    with pytest.warns(UnknownNameWarning, match="skymap: no sky map 'other'"):
        assert loaded.find_tracts(cone=CONE, skymap="other") == []
    with pytest.warns(UnknownNameWarning, match="no band 'x'"):
        loaded.find_datasets("raw", band=["g", "x"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loaded.find_ccds(cone=CONE, band=["g", "r"], instrument="TestCam")
        assert loaded.find_patches(cone=CONE, skymap="testmap")
        loaded.find_ccds(cone=CONE, band="g")  # remembered: no query, no warning
    assert issubclass(UnknownNameWarning, UserWarning)
    assert not issubclass(UnknownNameWarning, SkyregError)
