"""Large batches bound for empty tables are COPYed straight into them (loader._copy_into_empty).

The direct path must store exactly what the staged path stores, leave nothing behind when it
fails, and step aside whenever staging has work to do (a non-empty target).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from manifest_builder import box, survey_spec, write_manifest
from skyreg import Registry
from skyreg.errors import InputErrors
from skyreg.ingest import loader
from skyreg.ingest.loader import Batch, Staged, load
from skyreg.schema import skymap
from skyreg.skymaps import DiscreteDefinition

#: Three tracts (at RA 0/360, near the south pole, at RA 150) of ~1,000 small patches.
SKYMAP = DiscreteDefinition(ra_deg=(0.1, 359.95, 150.0), dec_deg=(0.0, -89.7, 2.0),
                            radius_deg=0.5, pixel_scale_arcsec=2.0, patch_inner_pixels=100,
                            patch_border_pixels=10, tract_overlap_deg=0.01)

_PATCHES = text("""
    SELECT p.tract, p.patch, p.cell_x, p.cell_y, p.inner_bbox, p.outer_bbox, p.inner_region,
           p.inner_ra, p.inner_dec, p.outer_region, p.outer_ra, p.outer_dec,
           array_agg(x.pix ORDER BY x.pix) AS pixels
    FROM patch AS p JOIN patch_pixel AS x USING (patch_id) WHERE p.skymap = :name
    GROUP BY p.patch_id ORDER BY p.tract, p.patch""")
_TRACTS = text("""
    SELECT t.tract, t.ra_center, t.dec_center, t.ring, t.wcs, t.inner_region, t.outer_region,
           array_agg(x.pix ORDER BY x.pix) AS pixels
    FROM tract AS t JOIN tract_pixel AS x USING (tract_id) WHERE t.skymap = :name
    GROUP BY t.tract_id ORDER BY t.tract""")


def _rows(database_url: str, name: str) -> tuple[list[Any], list[Any]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return ([tuple(row) for row in connection.execute(_TRACTS, {"name": name})],
                    [tuple(row) for row in connection.execute(_PATCHES, {"name": name})])
    finally:
        engine.dispose()


def _record_direct_copies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Send every batch down the direct path when allowed; return the kinds that took it."""
    taken: list[str] = []
    copy_into_empty = loader._copy_into_empty

    def recording(connection: Any, staged: Staged, first_id: int) -> None:
        taken.append(staged.batch.kind)
        copy_into_empty(connection, staged, first_id)

    monkeypatch.setattr(loader, "DIRECT_COPY_MIN_ROWS", 1)
    monkeypatch.setattr(loader, "_copy_into_empty", recording)
    return taken


def test_direct_copy_stores_what_staging_stores(registry: Registry, database_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _record_direct_copies(monkeypatch)
    first = registry.register_skymap("direct", SKYMAP)
    assert taken == ["skymap", "tract", "patch"]
    # The tables hold a sky map now: the same definition under another name is staged.
    second = registry.register_skymap("staged", SKYMAP)
    assert taken == ["skymap", "tract", "patch"]
    assert first.counts == second.counts
    direct_tracts, direct_patches = _rows(database_url, "direct")
    staged_tracts, staged_patches = _rows(database_url, "staged")
    assert len(direct_patches) == first.counts["patch"].inserted > 100
    assert direct_tracts == staged_tracts
    assert direct_patches == staged_patches
    # Queries see both alike, through the pixel index and the exact test.
    for point in [(0.0, 0.0), (359.99, 0.1), (12.0, -89.9), (150.1, 2.2)]:
        found = {skymap_name: {(p.tract, p.patch) for p in
                               registry.find_patches(point=point, skymap=skymap_name)}
                 for skymap_name in ("direct", "staged")}
        assert found["direct"] == found["staged"] and found["direct"]
    # Rows copied frozen leave the VACUUM after the commit nothing to do: all pages visible.
    engine = create_engine(database_url)
    with engine.connect() as connection:
        visible = connection.execute(text(
            "SELECT relname, relpages, relallvisible FROM pg_class "
            "WHERE relname IN ('patch', 'patch_pixel', 'tract', 'tract_pixel')")).all()
    engine.dispose()
    assert all(pages > 0 and all_visible == pages for _, pages, all_visible in visible), visible


def test_failed_direct_copy_leaves_nothing(registry: Registry, database_url: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _record_direct_copies(monkeypatch)
    row = ("twice", "rings", "0" * 40, psycopg.types.json.Jsonb({}))
    batch = Batch("skymap", skymap, ("name",), ("name", "kind", "hash_sha1_hex", "parameters"),
                  [row, row], source="test")
    # The key is built after the COPY (the tables referring to it are empty), so the
    # duplicate is found there, as SQLAlchemy reports it.
    with pytest.raises(IntegrityError, match="duplicated"):
        load(registry.engine, [batch])
    assert taken == ["skymap"]
    assert registry.skymaps() == {}
    # The rolled-back TRUNCATE took nothing with it, and the next load works.
    registry.register_skymap("after", SKYMAP)
    assert set(registry.skymaps()) == {"after"}
    assert _rows(database_url, "after")[1]


_CCD_STATE = text("""
    SELECT c.instrument, c.visit, c.detector, c.region, c.ra, c.dec,
           (SELECT array_agg(x.pix ORDER BY x.pix) FROM ccd_pixel AS x
            WHERE x.ccd_id = c.ccd_id) AS pixels,
           (SELECT array_agg(p.patch ORDER BY p.patch) FROM ccd_patch_overlap AS o
            JOIN patch AS p USING (patch_id) WHERE o.ccd_id = c.ccd_id) AS patches
    FROM ccd AS c ORDER BY 1, 2, 3""")


def _ccd_state(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(_CCD_STATE)]
    finally:
        engine.dispose()


def _survey() -> Any:
    ccds = [box(10.0 + 0.05 * (i % 40), -5.0 + 0.05 * (i // 40), 0.02) for i in range(400)]
    patches = [[box(10.0 + 0.2 * (i % 10), -5.0 + 0.2 * (i // 10), 0.1) for i in range(30)]]
    return survey_spec(ccds, tract_polygons=[box(11.0, -4.0, 1.5)], patch_polygons=patches)


def test_manifest_copied_directly_equals_staged(database_factory: Callable[..., str],
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_manifest(tmp_path / "m", _survey())
    staged_url = database_factory()
    with Registry.connect(staged_url) as registry:
        registry.ingest_manifest(root)
    taken = _record_direct_copies(monkeypatch)
    direct_url = database_factory()
    with Registry.connect(direct_url) as registry:
        report = registry.ingest_manifest(root)
        # Instrument and detectors are parents of reference checks: they stay staged.
        assert {"visit", "ccd", "patch"} <= set(taken) and "detector" not in taken
        assert report.counts["ccd"].inserted == 400
        again = registry.ingest_manifest(root)  # the tables are not empty any more
        assert again.counts["ccd"].inserted == 0
        found = {(c.visit, c.detector) for c in registry.find_ccds(patch=("testmap", 0, 12))}
    state = _ccd_state(direct_url)
    assert state == _ccd_state(staged_url)
    assert found == {(visit, detector) for _, visit, detector, *_, patches in state
                     if patches and 12 in patches}


def test_direct_copy_refuses_unknown_parents(registry: Registry, database_url: str,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _record_direct_copies(monkeypatch)
    spec = _survey()
    spec.instrument, spec.detectors, spec.ccds = None, [], []
    for row in spec.visits:
        row["instrument"] = "OtherCam"  # neither in this manifest nor registered
    with pytest.raises(InputErrors, match=r"OtherCam.*neither in this manifest nor registered"):
        registry.ingest_manifest(write_manifest(tmp_path / "m", spec))
    assert taken == []
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM visit")).scalar_one() == 0
    engine.dispose()
