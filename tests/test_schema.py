"""Schema: migrations equal the metadata, upgrades are safe, and the planner uses the indexes."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from manifest_builder import box, survey_spec, write_manifest
from skyreg import Registry
from skyreg.db.engine import make_engine, normalize_url
from skyreg.db.migrate import current_revision, head_revision, upgrade
from skyreg.errors import DatabaseError
from skyreg.geometry.pixelization import PixelScheme
from skyreg.schema import metadata
from skyreg.search import relation_statements
from skyreg.search import statements as queries
from skyreg.search.columns import resolve
from skyreg.search.sql import compiled as _sql


def test_migrated_schema_equals_metadata(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        assert current_revision(connection) == head_revision()
        comment = connection.execute(text(
            "SELECT obj_description('ccd'::regclass, 'pg_class')")).scalar_one()
        assert "CCDs" in comment
    engine.dispose()


def test_connect_creates_schema_once_and_keeps_pixelization(empty_database_url: str) -> None:
    database_url = empty_database_url
    with Registry.connect(database_url, pixelization="htm10") as registry:
        assert str(registry.pixel_scheme) == "htm10"
    with Registry.connect(database_url) as registry:  # second open: nothing to do
        assert registry.pixel_scheme == PixelScheme("htm", 10)
    with pytest.raises(DatabaseError, match="indexed with htm10; it cannot switch to healpix8"):
        Registry.connect(database_url, pixelization="healpix8")
    engine = make_engine(database_url)
    assert upgrade(engine) == PixelScheme("htm", 10)  # idempotent
    engine.dispose()


def test_foreign_or_outdated_database_is_not_touched(empty_database_url: str) -> None:
    database_url = empty_database_url
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE ccd (x int)"))
    with pytest.raises(DatabaseError, match="point skyreg at an empty database"):
        Registry.connect(database_url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE ccd"))
        connection.execute(text("CREATE TABLE alembic_version (version_num varchar(32))"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0000')"))
    with pytest.raises(DatabaseError, match="run `skyreg db upgrade`"):
        Registry.connect(database_url)
    engine.dispose()


def test_urls_are_checked() -> None:
    assert normalize_url("postgresql://u@h/db").startswith("postgresql+psycopg://")
    with pytest.raises(DatabaseError, match="needs PostgreSQL"):
        normalize_url("sqlite:///x.db")
    with pytest.raises(DatabaseError, match="not a database URL"):
        normalize_url("::nonsense::")


def _plan(registry: Registry, sql: str, params: dict[str, object]) -> str:
    driver = registry._conn.connection.driver_connection
    assert driver is not None
    rows = driver.execute("EXPLAIN " + sql, params).fetchall()  # type: ignore[attr-defined]
    return "\n".join(row[0] for row in rows)


def test_spatial_queries_use_the_indexes(database_factory: Callable[[], str],
                                         tmp_path: Path) -> None:
    """With enough rows that a sequential scan would be tempting, plans stay on the indexes."""
    ccds = [box((i * 0.37) % 360, -60 + (i * 0.11) % 120, 0.1) for i in range(3000)]
    tracts = [box(1.7 * t, -20.0 + (t % 40), 0.5) for t in range(200)]
    patches = [[box(1.7 * t - 0.4 + 0.04 * p, -20.0 + (t % 40), 0.05) for p in range(20)]
               for t in range(200)]
    spec = survey_spec(ccds, per_visit=10, tract_polygons=tracts, patch_polygons=patches)
    for row in spec.ccds:  # a file per CCD, so that a scan of the archive would show
        row["uri"] = f"s3://bucket/{row['visit']}/{row['detector']}.fits"
    root = write_manifest(tmp_path / "m", spec)
    with Registry.connect(database_factory()) as registry:
        registry.ingest_manifest(root)
        ranges = {"lo": [1, 100], "hi": [5, 120]}
        plans = {
            "ccd": _plan(registry, _sql(queries.ccd_candidates, queries.CcdFilters()), ranges),
            "ccd+filters": _plan(registry, _sql(queries.ccd_candidates,
                                                queries.CcdFilters(True, True, True)),
                                 {**ranges, "instruments": ["TestCam"], "bands": ["r"],
                                  "mjd_start": 0.0, "mjd_end": 1e5}),
            "patch": _plan(registry, _sql(queries.patch_candidates, False, False), ranges),
            "tract": _plan(registry, _sql(queries.tract_candidates, True, True),
                           {**ranges, "skymaps": ["testmap"]}),
            "patch->ccds": _plan(registry, _sql(
                relation_statements.ccds_of_tile, "patch", False,
                queries.CcdFilters(True, True, True), resolve("ccd", ["band", "uri"], (), "")),
                {"skymap": "testmap", "tract": 3, "patch": 5, "instruments": ["TestCam"],
                 "bands": ["r"], "mjd_start": 0.0, "mjd_end": 1e5, "dataset_type": "raw"}),
            "tract->ccds": _plan(registry, _sql(relation_statements.ccds_of_tile, "tract", True,
                                                queries.CcdFilters()),
                                 {"skymap": "testmap", "tract": 3}),
            "ccd->patches": _plan(registry, _sql(
                relation_statements.tiles_of_ccd, "patch", True, False,
                resolve("patch", ["cell_x", "outer"], (), "")),
                {"instrument": "TestCam", "visit": 1, "detector": 2, "skymaps": ["testmap"]}),
            "ccd->tracts": _plan(registry, _sql(relation_statements.tiles_of_ccd, "tract",
                                                False, True),
                                 {"instrument": "TestCam", "visit": 1, "detector": 2}),
            # columns= reads the visit and the file of each candidate by primary key.
            "ccd+columns": _plan(registry, _sql(
                queries.ccd_candidates, queries.CcdFilters(),
                resolve("ccd", ["band", "mjd_start", "uri"], ("instrument",), "find_ccds")),
                {**ranges, "dataset_type": "raw"}),
        }
    large = re.compile(r"Seq Scan on (ccd|ccd_pixel|patch|patch_pixel|tract|tract_pixel|visit|"
                       r"ccd_dataset)\b")
    for name, plan in plans.items():
        assert not large.search(plan), f"{name}:\n{plan}"
    assert "pk_ccd_pixel" in plans["ccd"] and "pk_ccd" in plans["ccd"]
    assert "pk_patch_pixel" in plans["patch"] and "pk_tract_pixel" in plans["tract"]
    # Stored footprints read the relation, never the pixel index. (The relations of this
    # sparse survey are a few pages, which a planner may read whole rather than by key.)
    for name, relation in (("patch->ccds", "ccd_patch_overlap"),
                           ("tract->ccds", "ccd_tract_overlap"),
                           ("ccd->patches", "ccd_patch_overlap"),
                           ("ccd->tracts", "ccd_tract_overlap")):
        assert relation in plans[name] and "_pixel" not in plans[name], f"{name}:\n{plans[name]}"
    assert "pk_visit" in plans["ccd+columns"] and "pk_ccd_dataset" in plans["ccd+columns"]
    assert "pk_visit" in plans["patch->ccds"] and "pk_ccd_dataset" in plans["patch->ccds"]


def test_bulk_load_restores_every_constraint(database_url: str, tmp_path: Path) -> None:
    """A first load rebuilds the pixel index and foreign keys: they must all be back."""
    ccds = [box(5.0 + 0.3 * i, 5.0, 0.1) for i in range(30)]
    root = write_manifest(tmp_path / "m", survey_spec(ccds, tract_polygons=[box(8, 5, 2)],
                                                       patch_polygons=[[box(8, 5, 0.5)]]))
    with Registry.connect(database_url) as registry:
        report = registry.ingest_manifest(root)
        assert report.counts["ccd"].inserted == 30
    engine = make_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        names = set(connection.execute(text(
            "SELECT conname FROM pg_constraint WHERE conrelid IN "
            "('ccd'::regclass, 'ccd_pixel'::regclass, 'patch_pixel'::regclass)")).scalars())
    assert {"pk_ccd_pixel", "pk_patch_pixel", "fk_ccd_instrument_visit_visit",
            "fk_ccd_instrument_detector_detector"} <= names
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO ccd (instrument, visit, detector, region, ra, dec) "
            "VALUES ('TestCam', 424242, 0, '\\x00', '{0}', '{0}')"))
    engine.dispose()
