"""Spatial queries answer exactly: every result equals a brute-force sphgeom oracle.

A registry answers a spatial query in two steps (pixel index for candidates, then an exact
sphgeom test), so a wrong pixel cover shows up as a missing footprint and a wrong exact test as
an extra one. These tests compare every answer, as a set, with the answer computed here without
any skyreg code: a footprint belongs to the result iff ``ConvexPolygon.overlaps(region)`` is true
for the polygon sphgeom builds from the footprint's vertices (for a point: iff the polygon
contains it).

The data set spreads CCD-like quads of 1 arcsec to 2 degrees over the whole sphere, with many
straddling RA 0/360, crowding both poles and containing a pole, plus tracts of up to 20 degrees
with patches. Some footprints are written as pipelines write them: sphgeom hulls of an
LSSTCam-like visit's CCD corners (collinear runs), vertices repeated or one ulp apart, RA 0
written as 360; the oracle's polygon is then sphgeom's hull of the given vertices (RA wrapped).
Two instruments share it so that the instrument, band and time filters can be checked against
the visit attributes too. A smaller data set indexed with HEALPix shows the same
exactness under the other pixelization.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsst.sphgeom import (
    Angle,
    Circle,
    ConvexPolygon,
    HealpixPixelization,
    HtmPixelization,
    LonLat,
    Region,
    UnitVector3d,
)

from hull_shapes import hull_like_footprints
from manifest_builder import ManifestSpec, Polygon, box, survey_spec, write_manifest
from skyreg import Registry
from skyreg.geometry.pixelization import PixelScheme

ARCSEC = 1.0 / 3600.0
MAIN_CAM, OTHER_CAM = "TestCam", "OtherCam"

Key = tuple[Any, ...]
Query = dict[str, Any]


# -- geometry used to build data and queries (no skyreg code) ------------------------------------


def vector(ra: float, dec: float) -> UnitVector3d:
    """RA wrapped into [0, 360) first, as the manifest format says (and astropy does):
    sphgeom's own LonLat keeps 360 degrees as 2 pi, 2.4e-16 rad away from RA 0."""
    return UnitVector3d(LonLat.fromDegrees(wrap(ra), dec))


def sph_polygon(poly: Polygon) -> ConvexPolygon:
    """The oracle's polygon: sphgeom's own construction from the vertices."""
    return ConvexPolygon([vector(ra, dec) for ra, dec in zip(*poly, strict=True)])


def circle(ra: float, dec: float, radius: float) -> Circle:
    return Circle(vector(ra, dec), Angle.fromDegrees(radius))


def _ra_dec(xyz: np.ndarray) -> tuple[float, float]:
    x, y, z = (float(c) for c in xyz / np.linalg.norm(xyz))
    return wrap(math.degrees(math.atan2(y, x))), math.degrees(math.asin(max(-1.0, min(1.0, z))))


def _frame(ra: float, dec: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre vector and two unit vectors perpendicular to it (any orientation at a pole)."""
    lon, lat = math.radians(ra), math.radians(dec)
    centre = np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon),
                       math.sin(lat)])
    east = np.array([-math.sin(lon), math.cos(lon), 0.0])
    north = np.cross(centre, east)
    return centre, east, north


def offset(ra: float, dec: float, distance: float, position_angle: float) -> tuple[float, float]:
    """The point ``distance`` degrees from (ra, dec) towards ``position_angle`` degrees."""
    centre, east, north = _frame(ra, dec)
    r, a = math.radians(distance), math.radians(position_angle)
    return _ra_dec(math.cos(r) * centre
                   + math.sin(r) * (math.sin(a) * east + math.cos(a) * north))


def ngon(ra: float, dec: float, radius: float, angles: Sequence[float]) -> Polygon:
    """Convex polygon with its vertices on the circle of ``radius`` degrees around (ra, dec)."""
    vertices = [offset(ra, dec, radius, a) for a in sorted(angles)]
    return [v[0] for v in vertices], [v[1] for v in vertices]


def random_angles(rng: np.random.Generator, n: int) -> list[float]:
    """``n`` position angles (degrees) at least 5 degrees apart."""
    while True:
        angles = np.sort(rng.uniform(0.0, 360.0, n))
        gaps = np.diff(np.concatenate([angles, [angles[0] + 360.0]]))
        if gaps.min() > 5.0:
            return [float(a) for a in angles]


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def uniform_sky(rng: np.random.Generator) -> tuple[float, float]:
    return float(rng.uniform(0.0, 360.0)), math.degrees(math.asin(rng.uniform(-1.0, 1.0)))


def near_ra0(rng: np.random.Generator, width: float, dec_limit: float = 75.0
             ) -> tuple[float, float]:
    return wrap(float(rng.uniform(-width, width))), float(rng.uniform(-dec_limit, dec_limit))


# -- the data set and its oracle -----------------------------------------------------------------


@dataclass
class Ccd:
    key: Key
    poly: Polygon
    region: ConvexPolygon
    band: str
    mjd_start: float
    mjd_end: float


@dataclass
class Tile:
    """A tract or a patch, with its outer and inner polygons."""

    key: Key
    outer: Polygon
    inner: Polygon
    outer_region: ConvexPolygon
    inner_region: ConvexPolygon


@dataclass
class Sky:
    registry: Registry
    ccds: list[Ccd]
    tracts: list[Tile]
    patches: list[Tile]


def overlap_test(query: Query) -> Callable[[ConvexPolygon], bool]:
    """The oracle's predicate for a query given as the keywords of a find_* call."""
    if "point" in query:
        point = vector(*query["point"])
        return lambda polygon: bool(polygon.contains(point))
    region: Region
    if "cone" in query:
        region = circle(*query["cone"])
    elif "polygon" in query:
        ras, decs = zip(*query["polygon"], strict=True)
        region = sph_polygon((list(ras), list(decs)))
    else:
        region = query["region"]

    def test(polygon: ConvexPolygon) -> bool:
        answer = polygon.overlaps(region)
        assert answer is not None, f"sphgeom cannot decide overlap for {query}"
        return bool(answer)

    return test


def expected_ccds(sky: Sky, test: Callable[[ConvexPolygon], bool], *,
                  instrument: Sequence[str] | None = None, band: Sequence[str] | None = None,
                  time: tuple[float, float] | None = None) -> set[Key]:
    keep = set()
    for ccd in sky.ccds:
        if instrument is not None and ccd.key[0] not in instrument:
            continue
        if band is not None and ccd.band not in band:
            continue
        if time is not None and not (ccd.mjd_end >= time[0] and ccd.mjd_start <= time[1]):
            continue
        if test(ccd.region):
            keep.add(ccd.key)
    return keep


def expected_tiles(tiles: Sequence[Tile], test: Callable[[ConvexPolygon], bool],
                   inner: bool = False) -> set[Key]:
    return {t.key for t in tiles if test(t.inner_region if inner else t.outer_region)}


def ccd_footprints(rng: np.random.Generator, counts: dict[str, int]) -> list[Polygon]:
    """CCD-like quads (half size 1 arcsec to 2 degrees, any rotation) in the named places,
    one in ten an irregular 3- to 8-gon instead, one in four listed clockwise."""
    places: dict[str, Callable[[], tuple[float, float]]] = {
        "anywhere": lambda: uniform_sky(rng),
        "ra0": lambda: near_ra0(rng, 4.0),
        "ra0_exact": lambda: (0.0, float(rng.uniform(-80.0, 80.0))),
        "north": lambda: (float(rng.uniform(0.0, 360.0)), float(rng.uniform(84.0, 89.95))),
        "south": lambda: (float(rng.uniform(0.0, 360.0)), float(rng.uniform(-89.95, -84.0))),
        "dec89.9": lambda: (float(rng.uniform(0.0, 360.0)), float(rng.choice([-89.9, 89.9]))),
        "pole": lambda: (float(rng.uniform(0.0, 360.0)), float(rng.choice([-90.0, 90.0]))),
        "cluster": lambda: (float(rng.uniform(149.0, 151.0)), float(rng.uniform(1.0, 3.0))),
    }
    footprints = []
    for place, n in counts.items():
        top = 0.3 if place == "cluster" else 2.0
        for _ in range(n):
            ra, dec = places[place]()
            half = log_uniform(rng, ARCSEC, top)
            if rng.random() < 0.1:
                poly = ngon(ra, dec, half * math.sqrt(2),
                            random_angles(rng, int(rng.integers(3, 9))))
            else:
                poly = box(ra, dec, half, float(rng.uniform(0, 90)))
            if rng.random() < 0.25:
                poly = (poly[0][::-1], poly[1][::-1])
            footprints.append(poly)
    order = rng.permutation(len(footprints))  # mix places within visits
    return [footprints[i] for i in order]


def wrap(ra: float) -> float:
    """RA in [0, 360): a tiny negative angle would otherwise round up to 360."""
    ra = ra % 360.0
    return 0.0 if ra >= 360.0 else ra


#: Points where HTM trixels meet (and the poles), where aligned footprints share vertices.
CORNERS = [(0.0, 0.0), (90.0, 0.0), (180.0, 0.0), (270.0, 0.0), (0.0, 90.0), (0.0, -90.0)]


def aligned_polygons() -> list[Polygon]:
    """Footprints with vertices on the corners of the HTM root triangles and edges along the
    equator and the meridians 0/90/180/270 (pixel edges at every level): squares on both
    sides of each edge, and triangles meeting at each pole."""
    polygons: list[Polygon] = []
    for ra0 in (0.0, 90.0, 180.0, 270.0):
        for east in (1.0, -1.0):
            for north in (1.0, -1.0):
                ra1 = wrap(ra0 + east)
                polygons.append(([ra0, ra1, ra1, ra0], [0.0, 0.0, north, north]))
    for pole in (90.0, -90.0):
        rim = pole - math.copysign(1.0, pole)
        for ra0 in (0.0, 90.0, 180.0, 270.0):
            polygons.append(([ra0, wrap(ra0 + 90.0), 0.0], [rim, rim, pole]))
    return polygons


def aligned_points() -> list[tuple[float, float]]:
    """Shared vertices and points on shared edges of the aligned footprints."""
    points = list(CORNERS)
    for ra0 in (0.0, 90.0, 180.0, 270.0):
        points += [(wrap(ra0 + 0.5), 0.0), (wrap(ra0 - 0.5), 0.0), (ra0, 0.5), (ra0, -0.5),
                   (wrap(ra0 + 1.0), 0.0), (ra0, 1.0), (wrap(ra0 - 1.0), -1.0),
                   (ra0, 89.5), (ra0, -89.5), (ra0, 89.0), (ra0, -89.0)]
    return points


def sky_tiles(rng: np.random.Generator, n_tracts: int, max_half: float
              ) -> tuple[list[Polygon], list[Polygon], list[list[Polygon]], list[list[Polygon]]]:
    """Tracts (outer, inner) and their patches (outer, inner), inner a shrunk copy of outer."""
    tract_outer, tract_inner, patch_outer, patch_inner = [], [], [], []
    for t in range(n_tracts):
        half = log_uniform(rng, 1.0, max_half)
        if t % 10 == 0:
            ra, dec = near_ra0(rng, half / 2)
        elif t % 10 == 1:
            ra, dec = float(rng.uniform(0, 360)), float(rng.choice([-1, 1]) * rng.uniform(87, 90))
        elif t % 10 == 2:
            ra, dec = float(rng.uniform(149.0, 151.0)), float(rng.uniform(1.0, 3.0))
        else:
            ra, dec = uniform_sky(rng)
        angle = float(rng.uniform(0, 90))
        tract_outer.append(box(ra, dec, half, angle))
        tract_inner.append(box(ra, dec, 0.9 * half, angle))
        outers, inners = [], []
        for _ in range(int(rng.integers(3, 9))):
            pra, pdec = offset(ra, dec, float(rng.uniform(0, 0.6 * half)),
                               float(rng.uniform(0, 360)))
            phalf = half * float(rng.uniform(0.15, 0.4))
            outers.append(box(pra, pdec, phalf, angle))
            inners.append(box(pra, pdec, 0.8 * phalf, angle))
        patch_outer.append(outers)
        patch_inner.append(inners)
    return tract_outer, tract_inner, patch_outer, patch_inner


def build_specs(rng: np.random.Generator, main_counts: dict[str, int],
                other_counts: dict[str, int], n_tracts: int, max_half: float
                ) -> list[ManifestSpec]:
    """Two manifests: TestCam with the sky map, OtherCam (other bands and times) without."""
    tract_outer, tract_inner, patch_outer, patch_inner = sky_tiles(rng, n_tracts, max_half)
    awkward = hull_like_footprints(np.random.default_rng(len(main_counts)), 10,
                                   aligned_polygons()[:8])
    main = survey_spec(ccd_footprints(rng, main_counts) + aligned_polygons() + awkward,
                       per_visit=10,
                       tract_polygons=tract_outer, patch_polygons=patch_outer)
    for row in main.tracts:
        row["inner_ra"], row["inner_dec"] = tract_inner[row["tract"]]
    for row in main.patches:
        row["inner_ra"], row["inner_dec"] = patch_inner[row["tract"]][row["patch"]]

    other = survey_spec(ccd_footprints(rng, other_counts), per_visit=7)
    assert other.instrument is not None
    other.instrument.update(name=OTHER_CAM, bands=["i", "r"], physical_filters=["i_2", "r_2"])
    for row in other.visits:
        band = "ir"[row["visit"] % 2]
        start = 61000.37 + 0.71 * (row["visit"] - 1000)
        row.update(instrument=OTHER_CAM, band=band, physical_filter=f"{band}_2",
                   mjd_tai_start=start, mjd_tai_end=start + 45 / 86400)
    for row in other.ccds:
        row["instrument"] = OTHER_CAM
    return [main, other]


def load_sky(registry: Registry, specs: Sequence[ManifestSpec], root: Path) -> Sky:
    ccds, tracts, patches = [], [], []
    for number, spec in enumerate(specs):
        report = registry.ingest_manifest(write_manifest(root / f"m{number}", spec))
        assert report.counts["ccd"].inserted == len(spec.ccds)
        visits = {(v["instrument"], v["visit"]): v for v in spec.visits}
        for row in spec.ccds:
            visit = visits[row["instrument"], row["visit"]]
            poly = (row["ra"], row["dec"])
            ccds.append(Ccd((row["instrument"], row["visit"], row["detector"]), poly,
                            sph_polygon(poly), visit["band"], visit["mjd_tai_start"],
                            visit["mjd_tai_end"]))
        for rows, keys, out in ((spec.tracts, ("skymap", "tract"), tracts),
                                (spec.patches, ("skymap", "tract", "patch"), patches)):
            for row in rows:
                outer, inner = (row["outer_ra"], row["outer_dec"]), (row["inner_ra"],
                                                                     row["inner_dec"])
                out.append(Tile(tuple(row[k] for k in keys), outer, inner, sph_polygon(outer),
                                sph_polygon(inner)))
    counts = registry.counts()
    assert (counts["ccds"], counts["tracts"], counts["patches"]) == (
        len(ccds), len(tracts), len(patches))
    return Sky(registry, ccds, tracts, patches)


MAIN_PLACES = {"anywhere": 1500, "ra0": 450, "ra0_exact": 50, "north": 280, "south": 280,
               "dec89.9": 60, "pole": 30, "cluster": 450}
OTHER_PLACES = {"anywhere": 300, "ra0": 100, "north": 50, "south": 50, "pole": 10,
                "cluster": 200}


@pytest.fixture(scope="module")
def sky(database_factory: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Sky]:
    specs = build_specs(np.random.default_rng(20270101), MAIN_PLACES, OTHER_PLACES,
                        n_tracts=30, max_half=10.0)
    with Registry.connect(database_factory(), pixelization="htm9") as registry:
        yield load_sky(registry, specs, tmp_path_factory.mktemp("exact-htm"))


@pytest.fixture(scope="module")
def healpix_sky(database_factory: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[Sky]:
    main = {"anywhere": 120, "ra0": 40, "north": 25, "south": 25, "pole": 6, "dec89.9": 6,
            "cluster": 60}
    other = {"anywhere": 20, "ra0": 10, "cluster": 20}
    specs = build_specs(np.random.default_rng(4242), main, other, n_tracts=8, max_half=6.0)
    with Registry.connect(database_factory(pixelization="healpix8"),
                          pixelization="healpix8") as registry:
        assert str(registry.pixel_scheme) == "healpix8"
        yield load_sky(registry, specs, tmp_path_factory.mktemp("exact-healpix"))


# -- checking answers ----------------------------------------------------------------------------


@dataclass
class Tally:
    """Per kind of call: queries run and non-empty answers; and every wrong answer."""

    queries: dict[str, int] = field(default_factory=dict)
    non_empty: dict[str, int] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)

    def check(self, what: str, query: Query, got: Sequence[Any], expected: set[Key]) -> None:
        answer = {tuple(row) for row in got}
        self.queries[what] = self.queries.get(what, 0) + 1
        self.non_empty[what] = self.non_empty.get(what, 0) + bool(expected)
        if len(answer) != len(got):
            self.wrong.append(f"{what}({query!r}): duplicate rows")
        if answer != expected:
            self.wrong.append(f"{what}({query!r}): missing {sorted(expected - answer)[:5]}, "
                              f"extra {sorted(answer - expected)[:5]}")

    def verify(self, min_non_empty: float, main: str | None = "find_ccds",
               every: bool = True) -> None:
        """No wrong answer; a share of the ``main`` calls (of all calls if None) and, with
        ``every``, at least one of each kind of call found something (no vacuous pass)."""
        assert not self.wrong, f"{len(self.wrong)} wrong answers:\n" + "\n".join(self.wrong[:20])
        queries = self.queries[main] if main else sum(self.queries.values())
        non_empty = self.non_empty[main] if main else sum(self.non_empty.values())
        assert non_empty >= min_non_empty * queries, (
            f"only {non_empty} of {queries} {main or ''} answers are non-empty: {self}")
        if every:
            assert all(self.non_empty.values()), f"a call never found anything: {self}"


def check_region_query(sky: Sky, tally: Tally, query: Query) -> None:
    """find_ccds, find_patches and find_tracts (outer and inner) for one region."""
    test = overlap_test(query)
    tally.check("find_ccds", query, sky.registry.find_ccds(**query), expected_ccds(sky, test))
    for inner in (False, True):
        tally.check(f"find_patches[inner={inner}]", query,
                    sky.registry.find_patches(**query, inner=inner),
                    expected_tiles(sky.patches, test, inner))
        tally.check(f"find_tracts[inner={inner}]", query,
                    sky.registry.find_tracts(**query, inner=inner),
                    expected_tiles(sky.tracts, test, inner))


# -- query generators ----------------------------------------------------------------------------


def cone_queries(rng: np.random.Generator, kind: str, n: int, max_radius: float = 30.0
                 ) -> list[Query]:
    queries = []
    for _ in range(n):
        radius = log_uniform(rng, ARCSEC, max_radius)
        if kind == "anywhere":
            ra, dec = uniform_sky(rng)
        elif kind == "on_ra0":
            ra, dec = 0.0, float(rng.uniform(-80, 80))
        elif kind == "near_ra0":
            ra, dec = near_ra0(rng, 0.5, 85.0)
        elif kind == "pole":
            ra, dec = float(rng.uniform(0, 360)), float(rng.choice([-90.0, 90.0, -89.9, 89.9]))
        elif kind == "cluster":
            ra, dec = float(rng.uniform(149.0, 151.0)), float(rng.uniform(1.0, 3.0))
            radius = log_uniform(rng, ARCSEC, min(1.0, max_radius))
        elif kind == "aligned":
            points = aligned_points()
            ra, dec = points[int(rng.integers(len(points)))]
            radius = 0.0 if rng.random() < 0.3 else log_uniform(rng, ARCSEC, min(2.0, max_radius))
        else:
            raise AssertionError(kind)
        queries.append({"cone": (ra, dec, radius)})
    return queries


def box_query(poly: Polygon) -> Query:
    return {"polygon": list(zip(*poly, strict=True))}


def polygon_queries(rng: np.random.Generator, kind: str, n: int, max_half: float = 20.0
                    ) -> list[Query]:
    queries = []
    for _ in range(n):
        half, angle = log_uniform(rng, ARCSEC, max_half), float(rng.uniform(0, 90))
        if kind == "anywhere":
            poly = box(*uniform_sky(rng), half, angle)
        elif kind == "straddle_ra0":
            poly = box(*near_ra0(rng, min(half, 2.0) / 2, 80.0), half, angle)
        elif kind == "pole":
            dec = float(rng.choice([-1.0, 1.0])) * (90.0 - float(rng.uniform(0, 0.5)) * half)
            poly = box(float(rng.uniform(0, 360)), dec, half, angle)
        elif kind == "cluster":
            poly = box(float(rng.uniform(149.0, 151.0)), float(rng.uniform(1.0, 3.0)),
                       log_uniform(rng, ARCSEC, min(1.0, max_half)), angle)
        elif kind == "ngon":
            ra, dec = uniform_sky(rng) if rng.random() < 0.7 else near_ra0(rng, 1.0, 89.0)
            poly = ngon(ra, dec, log_uniform(rng, ARCSEC, 2 * max_half),
                        random_angles(rng, int(rng.integers(3, 9))))
        elif kind == "aligned":
            # Squares next to the aligned footprints, touching them along an edge or at a
            # corner only, or small boxes around a corner of the HTM root triangles.
            if rng.random() < 0.25:
                poly = box(*CORNERS[int(rng.integers(len(CORNERS)))], half / 20, angle)
            else:
                ra0 = float(rng.choice([0.0, 90.0, 180.0, 270.0]))
                dra, ddec = float(rng.choice([-2.0, -1.0, 1.0])), float(rng.choice([-2, -1, 1]))
                lo_ra, hi_ra = sorted((ra0 + dra, ra0 + dra + 1.0))
                lo_dec, hi_dec = sorted((ddec, ddec + 1.0))
                poly = ([wrap(lo_ra), wrap(hi_ra), wrap(hi_ra), wrap(lo_ra)],
                        [lo_dec, lo_dec, hi_dec, hi_dec])
        else:
            raise AssertionError(kind)
        if rng.random() < 0.3:
            poly = (poly[0][::-1], poly[1][::-1])  # clockwise
        queries.append(box_query(poly))
    return queries


def point_queries(sky: Sky, rng: np.random.Generator, kind: str, n: int) -> list[Query]:
    points: list[tuple[float, float]] = aligned_points() if kind == "aligned" else []
    while len(points) < n:
        if kind == "ccd_vertex":
            ccd = sky.ccds[int(rng.integers(len(sky.ccds)))]
            k = int(rng.integers(len(ccd.poly[0])))
            points.append((ccd.poly[0][k], ccd.poly[1][k]))
        elif kind in ("patch_vertex", "tract_vertex"):
            tiles = sky.patches if kind == "patch_vertex" else sky.tracts
            tile = tiles[int(rng.integers(len(tiles)))]
            poly = tile.inner if rng.random() < 0.5 else tile.outer
            k = int(rng.integers(len(poly[0])))
            points.append((poly[0][k], poly[1][k]))
        elif kind == "ccd_centre":
            # The mean of the vertices, on the sphere: inside a convex polygon.
            ccd = sky.ccds[int(rng.integers(len(sky.ccds)))]
            xyz = sum(np.array([v.x(), v.y(), v.z()]) for v in ccd.region.getVertices())
            points.append(_ra_dec(xyz))
        elif kind == "ra0":
            points.append((0.0, float(rng.uniform(-80, 80))))
        elif kind == "pole":
            points.append((float(rng.choice([0.0, rng.uniform(0, 360)])),
                           float(rng.choice([-90.0, 90.0, -89.9, 89.9]))))
        elif kind == "anywhere":
            points.append(uniform_sky(rng))
        else:
            raise AssertionError(kind)
    return [{"point": p} for p in points]


# -- parametrised checks against the HTM data set ------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """A batch of random queries: seed, count, and the share that must find something in
    ``main`` (None: over all calls; ``every``: each kind of call finds something at least once).
    """

    seed: int
    n: int
    min_non_empty: float
    main: str | None = "find_ccds"
    every: bool = True


CONES = {"anywhere": Batch(1, 120, 0.25), "on_ra0": Batch(2, 40, 0.4),
         "near_ra0": Batch(3, 40, 0.4), "pole": Batch(4, 60, 0.4),
         "cluster": Batch(5, 40, 0.7), "aligned": Batch(6, 40, 0.9, every=False)}
POLYGONS = {"anywhere": Batch(11, 120, 0.2), "straddle_ra0": Batch(12, 50, 0.4),
            "pole": Batch(13, 50, 0.4), "cluster": Batch(14, 40, 0.7),
            "ngon": Batch(15, 60, 0.25), "aligned": Batch(16, 40, 0.8, every=False)}
POINTS = {"ccd_vertex": Batch(21, 120, 1.0), "ccd_centre": Batch(23, 60, 1.0),
          "patch_vertex": Batch(22, 30, 1.0, "find_patches[inner=False]", every=False),
          "tract_vertex": Batch(27, 30, 1.0, "find_tracts[inner=False]", every=False),
          "ra0": Batch(24, 40, 0.2, every=False), "pole": Batch(25, 20, 0.5, every=False),
          "aligned": Batch(0, 0, 1.0, every=False),
          "anywhere": Batch(26, 40, 0.0, every=False)}


@pytest.mark.parametrize("kind", sorted(CONES))
def test_cone_queries_are_exact(sky: Sky, kind: str) -> None:
    batch = CONES[kind]
    tally = Tally()
    for query in cone_queries(np.random.default_rng(batch.seed), kind, batch.n):
        check_region_query(sky, tally, query)
    tally.verify(batch.min_non_empty, batch.main, batch.every)


@pytest.mark.parametrize("kind", sorted(POLYGONS))
def test_polygon_queries_are_exact(sky: Sky, kind: str) -> None:
    batch = POLYGONS[kind]
    tally = Tally()
    for query in polygon_queries(np.random.default_rng(batch.seed), kind, batch.n):
        check_region_query(sky, tally, query)
    tally.verify(batch.min_non_empty, batch.main, batch.every)


@pytest.mark.parametrize("kind", sorted(POINTS))
def test_point_queries_are_exact(sky: Sky, kind: str) -> None:
    batch = POINTS[kind]
    tally = Tally()
    for query in point_queries(sky, np.random.default_rng(batch.seed), kind, batch.n):
        check_region_query(sky, tally, query)
    tally.verify(batch.min_non_empty, batch.main, batch.every)


def test_tiles_of_ccds_are_exact(sky: Sky) -> None:
    """find_patches(ccd=) and find_tracts(ccd=), outer and inner, for CCDs in and out of tracts."""
    rng = np.random.default_rng(31)
    in_tracts = [c for c in sky.ccds if any(c.region.overlaps(t.outer_region) for t in sky.tracts)]
    chosen = [in_tracts[i] for i in rng.choice(len(in_tracts), 150, replace=False)]
    chosen += [sky.ccds[i] for i in rng.choice(len(sky.ccds), 100, replace=False)]
    tally = Tally()
    for ccd in chosen:
        query = {"ccd": ccd.key}
        test = overlap_test({"region": ccd.region})
        for inner in (False, True):
            tally.check(f"find_patches[inner={inner}]", query,
                        sky.registry.find_patches(ccd=ccd.key, inner=inner),
                        expected_tiles(sky.patches, test, inner))
            tally.check(f"find_tracts[inner={inner}]", query,
                        sky.registry.find_tracts(ccd=ccd.key, inner=inner),
                        expected_tiles(sky.tracts, test, inner))
    tally.verify(0.5, main="find_tracts[inner=False]")


@pytest.mark.parametrize("kind", ["tract", "patch"])
def test_ccds_of_tiles_are_exact(sky: Sky, kind: str) -> None:
    """find_ccds(tract=) and find_ccds(patch=) for every tile, outer and inner polygon."""
    tiles = sky.tracts if kind == "tract" else sky.patches
    tally = Tally()
    for tile in tiles:
        for inner in (False, True):
            region = tile.inner_region if inner else tile.outer_region
            got = sky.registry.find_ccds(**{kind: tile.key}, inner=inner)
            tally.check(f"find_ccds[inner={inner}]", {kind: tile.key}, got,
                        expected_ccds(sky, overlap_test({"region": region})))
    tally.verify(0.4, main="find_ccds[inner=False]")


def test_inner_and_outer_answers_differ(sky: Sky) -> None:
    """The inner polygons are really used: some tile query answers differ between the two."""
    differ = 0
    for tract in sky.tracts:
        outer = sky.registry.find_ccds(tract=tract.key)
        inner = sky.registry.find_ccds(tract=tract.key, inner=True)
        assert set(inner) <= set(outer)
        differ += set(inner) != set(outer)
    assert differ >= len(sky.tracts) // 3


def filter_queries(sky: Sky, rng: np.random.Generator, n: int) -> list[Query]:
    span_start = min(c.mjd_start for c in sky.ccds)
    span_end = max(c.mjd_end for c in sky.ccds)
    queries: list[Query] = []
    for i in range(n):
        if i % 3 == 0:
            region: Query = {"cone": (float(rng.uniform(149, 151)), float(rng.uniform(1, 3)),
                                      log_uniform(rng, 0.05, 2.0))}
        elif i % 3 == 1:
            region = {"cone": (*uniform_sky(rng), log_uniform(rng, 1.0, 30.0))}
        else:
            region = box_query(box(*near_ra0(rng, 2.0, 80.0), log_uniform(rng, 0.1, 10.0),
                                   float(rng.uniform(0, 90))))
        filters: Query = {}
        choice = rng.integers(8)
        if choice & 1:
            filters["instrument"] = [[MAIN_CAM], [OTHER_CAM], [MAIN_CAM, OTHER_CAM],
                                     ["NoCam"]][int(rng.integers(4))]
        if choice & 2:
            filters["band"] = [["g"], ["r"], ["i"], ["g", "i"], ["r", "z"]][int(rng.integers(5))]
        if choice & 4 or not filters:
            start = float(rng.uniform(span_start - 5, span_end))
            filters["time"] = (start, start + log_uniform(rng, 0.01, 300.0))
            if rng.random() < 0.2:  # a window that just touches one exposure
                ccd = sky.ccds[int(rng.integers(len(sky.ccds)))]
                filters["time"] = ((ccd.mjd_end, ccd.mjd_end + 0.3) if rng.random() < 0.5
                                   else (ccd.mjd_start - 0.3, ccd.mjd_start))
        queries.append({**region, **filters})
    return queries


@pytest.mark.filterwarnings("ignore::skyreg.errors.UnknownNameWarning")
def test_filters_combined_with_regions_are_exact(sky: Sky) -> None:
    """instrument=, band= and time= keep exactly the CCDs whose visit matches (time windows
    are closed: touching an exposure counts)."""
    tally = Tally()
    for query in filter_queries(sky, np.random.default_rng(41), 240):
        region = {k: v for k, v in query.items() if k in ("cone", "polygon")}
        names = sorted(k for k in query if k not in region)
        expected = expected_ccds(sky, overlap_test(region), instrument=query.get("instrument"),
                                 band=query.get("band"), time=query.get("time"))
        tally.check(f"find_ccds[{'+'.join(names)}]", query, sky.registry.find_ccds(**query),
                    expected)
    tally.verify(0.2, main=None)


@pytest.mark.filterwarnings("ignore::skyreg.errors.UnknownNameWarning")
def test_name_filters(sky: Sky) -> None:
    """A plain string works like a one-element list; skymap= restricts tiles."""
    query: Query = {"cone": (150.0, 2.0, 1.5)}
    test = overlap_test(query)
    for band in ("g", "r", "i"):
        expected = expected_ccds(sky, test, band=[band])
        assert expected
        assert set(sky.registry.find_ccds(**query, band=band)) == expected
    for instrument in (MAIN_CAM, OTHER_CAM):
        expected = expected_ccds(sky, test, instrument=[instrument])
        assert expected
        assert set(sky.registry.find_ccds(**query, instrument=instrument)) == expected
    tiles = expected_tiles(sky.patches, test)
    assert tiles
    assert set(sky.registry.find_patches(**query, skymap="testmap")) == tiles
    assert set(sky.registry.find_patches(**query, skymap=["nomap", "testmap"])) == tiles
    assert sky.registry.find_patches(**query, skymap="nomap") == []
    assert sky.registry.find_tracts(**query, skymap="nomap") == []


def test_key_only_and_column_searches_give_the_same_sorted_rows(sky: Sky) -> None:
    """A key-only search by region is answered as columns, one with columns= as rows: both
    give the same rows in the same (key) order, across instruments, and with filters."""
    rng = np.random.default_rng(11)
    queries: list[Query] = [{"cone": (150.0, 2.0, 1.5)}, {"cone": (0.0, 89.5, 3.0)},
                            {"point": (150.2, 2.1)}, {"cone": (359.99, -10.0, 0.0)}]
    queries += cone_queries(rng, "cluster", 6) + cone_queries(rng, "pole", 6)
    mixed = 0
    for query in queries:
        for filters in ({}, {"band": ["r", "i"]}, {"instrument": OTHER_CAM}):
            keys = sky.registry.find_ccds(**query, **filters)
            rows = sky.registry.find_ccds(**query, **filters, columns=["band"])
            assert list(keys) == list(rows)
            assert list(keys) == sorted(keys)
            assert keys["visit"].dtype == np.int64 and keys["instrument"].dtype == object
            mixed += len({row.instrument for row in keys}) > 1
    assert mixed  # some answers hold both instruments


def test_data_set_covers_the_awkward_places(sky: Sky) -> None:
    """The data set holds what the queries are meant to stress (so they stay meaningful)."""
    north, south = vector(0.0, 90.0), vector(0.0, -90.0)
    ras = [c.poly[0] for c in sky.ccds]
    assert sum(c.region.contains(north) for c in sky.ccds) >= 10
    assert sum(c.region.contains(south) for c in sky.ccds) >= 10
    assert sum(max(r) > 300.0 and min(r) < 60.0 for r in ras) >= 150  # straddle RA 0
    assert sum(t.outer_region.contains(north) or t.outer_region.contains(south)
               for t in sky.tracts) >= 2
    assert sum(max(t.outer[0]) > 300.0 and min(t.outer[0]) < 60.0 for t in sky.tracts) >= 2
    halves = [c.region.getBoundingCircle().getOpeningAngle().asDegrees() for c in sky.ccds]
    assert min(halves) < 2 * ARCSEC and max(halves) > 2.0


# -- degenerate and huge regions ------------------------------------------------------------------


def test_whole_sky_cone_returns_everything(sky: Sky) -> None:
    for centre in ((0.0, 0.0), (123.4, -90.0), (359.999, 45.0)):
        cone = (*centre, 180.0)
        assert {tuple(r) for r in sky.registry.find_ccds(cone=cone)} == {
            c.key for c in sky.ccds}
        assert {tuple(r) for r in sky.registry.find_patches(cone=cone)} == {
            p.key for p in sky.patches}
        assert {tuple(r) for r in sky.registry.find_tracts(cone=cone, inner=True)} == {
            t.key for t in sky.tracts}


def test_tiny_cone_far_from_everything_returns_nothing(sky: Sky) -> None:
    rng = np.random.default_rng(51)
    found = 0
    for _ in range(2000):
        ra, dec = uniform_sky(rng)
        clearance = circle(ra, dec, 0.5)
        if any(c.region.overlaps(clearance) for c in sky.ccds) or any(
                t.outer_region.overlaps(clearance) for t in (*sky.tracts, *sky.patches)):
            continue
        found += 1
        for radius in (0.0, ARCSEC, 0.01):
            cone = (ra, dec, radius)
            assert sky.registry.find_ccds(cone=cone) == []
            assert sky.registry.find_patches(cone=cone) == []
            assert sky.registry.find_tracts(cone=cone) == []
        assert sky.registry.find_ccds(point=(ra, dec)) == []
        if found == 10:
            break
    assert found == 10


def test_stored_polygon_as_query_returns_itself(sky: Sky) -> None:
    rng = np.random.default_rng(61)
    tally = Tally()
    for i in rng.choice(len(sky.ccds), 60, replace=False):
        ccd = sky.ccds[int(i)]
        query = box_query(ccd.poly)
        got = sky.registry.find_ccds(**query)
        assert ccd.key in {tuple(r) for r in got}
        tally.check("find_ccds", query, got, expected_ccds(sky, overlap_test(query)))
        # The same polygon given as a sphgeom region: the same answer.
        assert set(sky.registry.find_ccds(region=ccd.region)) == {tuple(r) for r in got}
    for tile in (*sky.tracts, *sky.patches):
        query = box_query(tile.inner)
        assert tile.key in {tuple(r) for r in (
            sky.registry.find_tracts(**query, inner=True) if len(tile.key) == 2
            else sky.registry.find_patches(**query, inner=True))}
    tally.verify(1.0)


def test_zero_radius_cone_is_a_point(sky: Sky) -> None:
    """A cone of radius 0 at a CCD vertex or centre, or on an aligned edge, is exact and finds
    at least what the point query finds (sphgeom's circle overlap test is the more lenient of
    the two on a polygon's boundary: at (90, 0.5) it accepts both squares sharing that edge,
    where ``contains`` accepts one)."""
    rng = np.random.default_rng(71)
    tally = Tally()
    for query in point_queries(sky, rng, "ccd_vertex", 30) + point_queries(
            sky, rng, "ccd_centre", 30) + point_queries(sky, rng, "aligned", 0):
        cone = {"cone": (*query["point"], 0.0)}
        got = sky.registry.find_ccds(**cone)
        tally.check("find_ccds", cone, got, expected_ccds(sky, overlap_test(cone)))
        assert set(sky.registry.find_ccds(**query)) <= set(got), query
    tally.verify(1.0)


# -- property tests ----------------------------------------------------------------------------

ras = st.floats(0.0, 360.0, exclude_max=True)
decs = st.floats(-90.0, 90.0)


@settings(max_examples=120, deadline=None)
@given(ra=ras, dec=decs, radius=st.one_of(st.floats(0.0, 2.0), st.floats(0.0, 180.0)))
def test_property_random_cones(sky: Sky, ra: float, dec: float, radius: float) -> None:
    query = {"cone": (ra, dec, radius)}
    test = overlap_test(query)
    assert {tuple(r) for r in sky.registry.find_ccds(**query)} == expected_ccds(sky, test)
    assert {tuple(r) for r in sky.registry.find_tracts(**query)} == expected_tiles(
        sky.tracts, test)


@settings(max_examples=120, deadline=None)
@given(ra=ras, dec=decs, half=st.floats(ARCSEC, 20.0), angle=st.floats(0.0, 90.0))
def test_property_random_boxes(sky: Sky, ra: float, dec: float, half: float,
                               angle: float) -> None:
    query = box_query(box(ra, dec, half, angle))
    test = overlap_test(query)
    assert {tuple(r) for r in sky.registry.find_ccds(**query)} == expected_ccds(sky, test)
    assert {tuple(r) for r in sky.registry.find_patches(**query)} == expected_tiles(
        sky.patches, test)


@settings(max_examples=60, deadline=None)
@given(ra=ras, dec=decs, radius=st.floats(ARCSEC, 60.0),
       angles=st.lists(st.floats(0.0, 360.0, exclude_max=True), min_size=3, max_size=9))
def test_property_random_convex_polygons(sky: Sky, ra: float, dec: float, radius: float,
                                         angles: list[float]) -> None:
    angles = sorted(angles)
    gaps = np.diff([*angles, angles[0] + 360.0])
    if gaps.min() < 1.0:  # nearly collinear vertices
        angles = [a * 360.0 / len(angles) for a in range(len(angles))]
    query = box_query(ngon(ra, dec, radius, angles))
    test = overlap_test(query)
    assert {tuple(r) for r in sky.registry.find_ccds(**query)} == expected_ccds(sky, test)
    assert {tuple(r) for r in sky.registry.find_tracts(**query, inner=True)} == expected_tiles(
        sky.tracts, test, inner=True)


@st.composite
def polygon_and_points(draw: st.DrawFn, max_radius: float) -> tuple[Polygon, list[UnitVector3d]]:
    """A random convex polygon and points inside it (vertices, and near edges and corners)."""
    ra, dec = draw(ras), draw(decs)
    radius = draw(st.floats(max_radius / 1000, min(max_radius, 60.0)))
    n = draw(st.integers(3, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    poly = ngon(ra, dec, radius, random_angles(rng, n))
    corners = np.array([[v.x(), v.y(), v.z()] for v in sph_polygon(poly).getVertices()])
    points = [UnitVector3d(*map(float, corner)) for corner in corners]
    for alpha in (0.05, 0.3, 1.0):
        for weights in rng.dirichlet(np.full(len(corners), alpha), 5):
            points.append(UnitVector3d(*map(float, weights @ corners)))
    return poly, points


@settings(max_examples=300, deadline=None)
@given(level=st.integers(4, 14), data=st.data())
def test_property_htm_cover_is_conservative(level: int, data: st.DataObject) -> None:
    """Every HTM pixel holding a point of a polygon (or the point of a query) is in its cover."""
    pixel_size = 90.0 / 2**level
    poly, points = data.draw(polygon_and_points(30 * pixel_size))
    region = sph_polygon(poly)
    scheme, pixelization = PixelScheme("htm", level), HtmPixelization(level)
    cover = set(scheme.pixels(region).tolist())
    for point in points:
        if not region.contains(point):  # rounding may push an edge point just outside
            continue
        pixel = pixelization.index(point)
        assert pixel in cover, (level, poly, point)
        assert pixel in set(scheme.pixels(Circle(point)).tolist()), (level, point)


@settings(max_examples=100, deadline=None)
@given(level=st.integers(4, 7), data=st.data())
def test_property_healpix_cover_is_conservative(level: int, data: st.DataObject) -> None:
    """Same for HEALPix (nested) at low orders."""
    pixel_size = 58.6 / 2**level
    poly, points = data.draw(polygon_and_points(20 * pixel_size))
    region = sph_polygon(poly)
    scheme, pixelization = PixelScheme("healpix", level), HealpixPixelization(level)
    cover = set(scheme.pixels(region).tolist())
    for point in points:
        if not region.contains(point):  # rounding may push an edge point just outside
            continue
        pixel = pixelization.index(point)
        assert pixel in cover, (level, poly, point)
        assert pixel in set(scheme.pixels(Circle(point)).tolist()), (level, point)


# -- the same exactness under HEALPix ----------------------------------------------------------


# sphgeom's HEALPix envelope is slow for big regions (about 10 s for a 30 degree cone at
# order 8, with memory to match), so queries here stay small.
@pytest.mark.parametrize("kind", ["cone", "polygon", "point"])
def test_healpix_region_queries_are_exact(healpix_sky: Sky, kind: str) -> None:
    sky = healpix_sky
    rng = np.random.default_rng({"cone": 81, "polygon": 82, "point": 83}[kind])
    queries: list[Query] = []
    if kind == "cone":
        for where in ("anywhere", "on_ra0", "pole", "cluster", "aligned"):
            queries += cone_queries(rng, where, 8, max_radius=3.0)
    elif kind == "polygon":
        for where in ("anywhere", "straddle_ra0", "pole", "cluster", "ngon", "aligned"):
            queries += polygon_queries(rng, where, 6, max_half=2.0)
    else:
        for where in ("ccd_vertex", "ccd_centre", "ra0", "pole", "aligned"):
            queries += point_queries(sky, rng, where, 8)
    tally = Tally()
    for query in queries:
        check_region_query(sky, tally, query)
    tally.verify(0.4)


def test_healpix_stored_region_queries_are_exact(healpix_sky: Sky) -> None:
    sky = healpix_sky
    tally = Tally()
    for tile in (*sky.tracts, *sky.patches[::3]):
        kind = "tract" if len(tile.key) == 2 else "patch"
        for inner in (False, True):
            region = tile.inner_region if inner else tile.outer_region
            tally.check(f"find_ccds[{kind}, inner={inner}]", {kind: tile.key},
                        sky.registry.find_ccds(**{kind: tile.key}, inner=inner),
                        expected_ccds(sky, overlap_test({"region": region})))
    rng = np.random.default_rng(84)
    in_tracts = [c for c in sky.ccds if any(c.region.overlaps(t.outer_region) for t in sky.tracts)]
    chosen = [in_tracts[i] for i in rng.choice(len(in_tracts), 20, replace=False)]
    for ccd in chosen + [sky.ccds[i] for i in rng.choice(len(sky.ccds), 10, replace=False)]:
        test = overlap_test({"region": ccd.region})
        tally.check("find_tracts[ccd]", {"ccd": ccd.key},
                    sky.registry.find_tracts(ccd=ccd.key), expected_tiles(sky.tracts, test))
        tally.check("find_patches[ccd]", {"ccd": ccd.key},
                    sky.registry.find_patches(ccd=ccd.key), expected_tiles(sky.patches, test))
    tally.verify(0.3, main=None, every=False)
