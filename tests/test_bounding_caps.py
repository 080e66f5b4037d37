"""The caps stored with each CCD (revision 0016) bound its footprint, and the SQL searches'
first prefilter built on them never contradicts sphgeom.

``ccd.cap_*`` holds a centre, a cap inside the footprint and a cap holding it
(:mod:`skyreg.geometry.bounding_caps`); ``skyreg_bounds_verdict`` says true when a cone
reaches into the inner cap, false when it misses the outer one. Checked here: the caps bound
random footprints (poles, RA 0/360, slivers, 3 to 8 vertices, either orientation); every
verdict it gives is sphgeom's; ingest and the migration store the same caps; and a CCD
stored without caps (another program's INSERT) is still answered exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from alembic import command
from hypothesis import given
from hypothesis import strategies as st
from lsst.sphgeom import Angle, Circle, ConvexPolygon, UnitVector3d

from manifest_builder import box, survey_spec, write_manifest
from skyreg import Registry
from skyreg.geometry.bounding_caps import CAP_COLUMNS, caps_of_encoded, footprint_caps
from test_migrations import _alembic
from test_sql_prefilter import (
    SETTINGS,
    centres,
    footprints,
    radii,
    sph_polygon,
    through_a_vertex,
    vector,
)

#: skyreg_bounds_verdict of given caps against a cone (its cos/sin from skyreg_cone_cap).
BOUNDS = """
SELECT skyreg_bounds_verdict(%(px)s, %(py)s, %(pz)s, %(ic)s, %(is)s, %(oc)s, %(os)s,
                             l[1], l[2], l[3], l[7], l[8])
FROM skyreg_cone_cap(skyreg_circle(%(cra)s, %(cdec)s, %(r)s)) AS l
"""


@pytest.fixture(scope="module")
def conn(database_factory: Any) -> Iterator[psycopg.Connection[Any]]:
    url = database_factory().replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection


def _caps(polygon: ConvexPolygon) -> dict[str, float]:
    px, py, pz, ic, is_, oc, os_ = caps_of_encoded([polygon.encode()])[0].tolist()
    return {"px": px, "py": py, "pz": pz, "ic": ic, "is": is_, "oc": oc, "os": os_}


def _along(centre: UnitVector3d, towards: UnitVector3d, angle: float) -> UnitVector3d:
    """The point at ``angle`` radians from ``centre`` on the great circle towards ``towards``."""
    c = np.array([centre.x(), centre.y(), centre.z()])
    t = np.array([towards.x(), towards.y(), towards.z()])
    d = t - np.dot(t, c) * c
    d /= np.linalg.norm(d)
    p = math.cos(angle) * c + math.sin(angle) * d
    return UnitVector3d(*p.tolist())


@SETTINGS
@given(data=st.data())
def test_caps_bound_the_footprint(data: st.DataObject) -> None:
    poly = data.draw(footprints())
    polygon = sph_polygon(poly)
    caps = _caps(polygon)
    centre = UnitVector3d(caps["px"], caps["py"], caps["pz"])
    inner = math.atan2(caps["is"], caps["ic"])
    outer = math.atan2(caps["os"], caps["oc"])
    assert polygon.contains(centre) or inner == 0.0
    vertices = polygon.getVertices()
    for k, vertex in enumerate(vertices):
        # Every vertex and edge point lies in the outer cap (unless it is "none": 180°).
        edge_point = UnitVector3d(vertex + vertices[(k + 1) % len(vertices)])
        for point in (vertex, edge_point):
            distance = math.atan2(centre.cross(point).getNorm(), centre.dot(point))
            assert outer == pytest.approx(math.pi) or distance <= outer
        # The inner cap's rim towards every vertex and edge is inside the footprint.
        if inner > 0:
            assert polygon.contains(_along(centre, vertex, inner))
            assert polygon.contains(_along(centre, edge_point, inner))


@SETTINGS
@given(data=st.data())
def test_bounds_verdict_agrees_with_sphgeom(conn: psycopg.Connection[Any],
                                            data: st.DataObject) -> None:
    poly = data.draw(footprints())
    cra, cdec = data.draw(centres(poly))
    radius = data.draw(radii)
    polygon = sph_polygon(poly)
    caps = _caps(polygon)
    if data.draw(st.integers(0, 2)) == 0:  # a cone just touching a cap, or just missing it
        centre = UnitVector3d(caps["px"], caps["py"], caps["pz"])
        rim = math.degrees(math.atan2(caps[data.draw(st.sampled_from(["is", "os"]))],
                                      caps["ic" if data.draw(st.booleans()) else "oc"]))
        radius = min(180.0, max(0.0, abs(math.degrees(
            math.acos(max(-1.0, min(1.0, centre.dot(vector(cra, cdec))))))) - rim
            + data.draw(st.sampled_from([0.0, 1e-13, -1e-13, 1e-10, -1e-10]))))
    elif data.draw(st.booleans()):
        radius = through_a_vertex(poly, (cra, cdec), data.draw(st.integers(0, 3)))
    got = conn.execute(BOUNDS, {**caps, "cra": cra, "cdec": cdec, "r": radius}).fetchone()
    assert got is not None
    expected = polygon.overlaps(Circle(vector(cra, cdec), Angle.fromDegrees(radius)))
    assert got[0] is None or got[0] == expected
    point = conn.execute(BOUNDS, {**caps, "cra": cra, "cdec": cdec, "r": 0.0}).fetchone()
    assert point is not None
    assert point[0] is None or point[0] == polygon.contains(vector(cra, cdec))


def test_a_survey_like_cone_is_mostly_decided_by_the_caps(conn: psycopg.Connection[Any]
                                                           ) -> None:
    """CCD-sized boxes around a 0.2° cone: the caps decide most of them (or the first
    prefilter would not be worth its columns), and never wrongly."""
    rng = np.random.default_rng(7)
    decided = 0
    for _ in range(300):
        ra, dec = 150 + rng.uniform(-0.5, 0.5), 2 + rng.uniform(-0.5, 0.5)
        polygon = sph_polygon(box(ra, dec, 0.114, float(rng.uniform(0, 90))))
        got = conn.execute(BOUNDS, {**_caps(polygon), "cra": 150.0, "cdec": 2.0,
                                    "r": 0.2}).fetchone()
        assert got is not None
        if got[0] is not None:
            decided += 1
            assert got[0] == polygon.overlaps(Circle(vector(150.0, 2.0),
                                                     Angle.fromDegrees(0.2)))
    assert decided >= 0.75 * 300


def test_degenerate_inputs_give_safe_caps() -> None:
    """A sliver whose vertex mean is not safely inside is centred on a vertex (inner radius
    0), and a polygon too large for a bounding cap below 90° gets none (outer 180°)."""
    sliver = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1e-13, 1e-13]]])
    sliver[0, 2] /= np.linalg.norm(sliver[0, 2])
    caps = footprint_caps(sliver)
    assert caps[0, 3] == 1.0 and caps[0, 4] == 0.0
    assert caps[0, :3].tolist() == sliver[0, 0].tolist()
    big = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 1e-3]]])
    big /= np.linalg.norm(big, axis=2)[..., None]
    assert footprint_caps(big)[0, 5] == -1.0


def _cone_and_point_answers(registry: Registry, url: str) -> list[list[tuple[Any, ...]]]:
    answers = []
    with psycopg.connect(url) as connection:
        for ra, dec, r in ((0.05, 0.0, 0.3), (359.95, 0.1, 0.05), (10.0, 89.95, 0.2),
                           (10.0, 89.95, 0.0), (0.0, 0.0, 0.0), (120.0, -45.0, 0.25)):
            answers.append(connection.execute(
                "SELECT * FROM skyreg_ccds_in_cone(%s, %s, %s)", (ra, dec, r)).fetchall())
            answers.append(connection.execute(
                "SELECT * FROM skyreg_ccds_containing_point(%s, %s)", (ra, dec)).fetchall())
            answers.append([tuple(row) for row in registry.find_ccds(cone=(ra, dec, r))])
    return answers


def _survey(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    polygons = []
    for ra0, dec0 in ((0.0, 0.0), (10.0, 89.9), (120.0, -45.0)):
        for _ in range(40):
            polygons.append(box((ra0 + rng.uniform(-0.4, 0.4)) % 360.0,
                                min(89.99, dec0 + rng.uniform(-0.4, 0.4)),
                                float(rng.choice([0.01, 0.114, 0.3])),
                                float(rng.uniform(0, 90))))
    return write_manifest(tmp_path / "m", survey_spec(polygons))


def _stored_caps(url: str) -> dict[int, tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return {row[0]: tuple(row[1:]) for row in connection.execute(
            f"SELECT ccd_id, {', '.join(CAP_COLUMNS)}, region FROM ccd")}


def test_ingest_and_migration_store_the_caps_and_null_caps_change_no_answer(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    registry.ingest_manifest(_survey(tmp_path))
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    stored = _stored_caps(url)
    for *caps, region in stored.values():
        assert caps == caps_of_encoded([bytes(region)])[0].tolist()
    truth = _cone_and_point_answers(registry, url)
    assert any(truth) and all(a == b for a, b in zip(truth[0::3], truth[2::3], strict=True))
    # Without caps (a CCD written by another program) the other tests decide, identically.
    with psycopg.connect(url) as connection:
        connection.execute("UPDATE ccd SET " + ", ".join(f"{c} = NULL" for c in CAP_COLUMNS))
    assert _cone_and_point_answers(registry, url) == truth
    registry.close()
    # 0015 had no caps; the upgrade computes them for the stored CCDs.
    _alembic(database_url, command.downgrade, "0015")
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT count(*) FROM information_schema.columns WHERE "
                            "table_name = 'ccd' AND column_name LIKE 'cap%'").fetchone() == (0,)
    _alembic(database_url, command.upgrade, "head")
    assert _stored_caps(url) == stored
    with Registry.connect(database_url) as again:
        assert _cone_and_point_answers(again, url) == truth
    # A region that is no polygon (another program's) gets NULL caps; the upgrade goes on.
    _alembic(database_url, command.downgrade, "0015")
    odd = min(stored)
    circle = Circle(vector(10.0, 0.0), Angle.fromDegrees(0.1)).encode()
    with psycopg.connect(url) as connection:
        connection.execute("UPDATE ccd SET region = %s WHERE ccd_id = %s", (circle, odd))
    _alembic(database_url, command.upgrade, "head")
    after = _stored_caps(url)
    assert after[odd][:-1] == (None,) * len(CAP_COLUMNS)
    assert {k: v for k, v in after.items() if k != odd} == \
        {k: v for k, v in stored.items() if k != odd}
