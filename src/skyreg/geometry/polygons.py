"""Validation and encoding of convex spherical polygons given as vertex lists in degrees.

Input polygons come from files and users, so nothing is trusted: a polygon needs at least three
finite vertices with Dec in [-90, 90], and must be convex and smaller than a hemisphere. RA is
wrapped into [0, 360) first (360.0 becomes 0.0, -10 becomes 350), the way astropy's
``Longitude`` wraps it.

*Convex* is meant as real pipelines write polygons, not only as textbooks draw them. A visit
region made with ``lsst.sphgeom.ConvexPolygon.convexHull`` keeps every CCD corner that lies on
a hull edge, so several consecutive vertices lie on one great circle; written out in degrees
and read back, such a vertex is off that circle by ~1e-16 rad, on either side. Consecutive
repeats of a vertex are common too. Such a polygon is accepted and stored as the **exact convex
hull of its vertices** (sphgeom's, exact orientation predicate), without the vertices that are
redundant on it: a repeated vertex, one on the great circle through its neighbours, or one at
most :data:`TOLERANCE_RAD` inside the hull. The stored polygon therefore contains every given
vertex, differs from the given one by at most that tolerance, and has only strictly convex
corners — which is also what keeps the plain-SQL functions, which re-derive the polygon from
the stored vertex arrays, in step with the encoded polygon (see ``docs/sql.md``).

Refused: concave polygons (a vertex deeper inside than the tolerance), self-intersecting ones
(vertices out of order around the hull), polygons whose vertices lie on one great circle, and
polygons that are not smaller than a hemisphere.

Why not just ``ConvexPolygon(vertices)``? That constructor silently returns the convex hull of
any input, concave or tangled, which would index a different region than the one supplied.

Vertices are turned into unit vectors with numpy using the same formula as sphgeom's
``UnitVector3d(LonLat.fromDegrees(ra, dec))`` (the results are bit-identical), and the polygon is
serialised in sphgeom's own ``encode()`` layout. The common case — a strictly convex polygon
whose orientation signs are far from zero — is decided for millions of polygons at once without
a Python object per vertex; only the rare polygon with a sign near zero takes the exact path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import ConvexPolygon, UnitVector3d, orientation

from skyreg.errors import SkyregError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: First byte of sphgeom's ConvexPolygon encoding, followed by x, y, z per vertex (float64 LE).
_POLYGON_TYPE_CODE = b"p"

#: How far (radians, ~20 µas) a vertex may lie inside the hull of the others and still count
#: as sitting on its edge. Degrees written as float64 round a vertex by ~1e-16 rad; a real
#: concavity is many orders of magnitude deeper than this.
TOLERANCE_RAD = 1e-10

#: Orientation determinants of unit vectors larger than this in magnitude have a certain sign
#: (sphgeom's bound for the floating-point determinant is 1.7e-15); smaller ones are decided
#: exactly by sphgeom.
_CERTAIN = 1e-14

NOT_CONVEX = "polygon is not convex (concave or self-intersecting)"
ON_GREAT_CIRCLE = "polygon is not convex (its vertices lie on one great circle)"
HEMISPHERE = "polygon is not convex (not smaller than a hemisphere)"
TOO_FEW = "polygon has only {n} distinct vertices, at least 3 are needed"


class GeometryError(SkyregError, ValueError):
    """A polygon or region that cannot be used; ``field`` names the offending input."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def wrap_ra(ra_deg: npt.ArrayLike) -> FloatArray:
    """RA wrapped into [0, 360) as astropy's ``Longitude`` does; NaN and inf pass through.

    The modulo is exact (numpy's, like Python's ``%``), so for |RA| beyond ~1e15 degrees the
    result can differ from astropy's, which rounds there. ``-0.0`` and tiny negative values
    that round up to 360 become 0.0.
    """
    with np.errstate(invalid="ignore"):  # NaN and inf stay NaN, for the caller to refuse
        wrapped = np.mod(np.asarray(ra_deg, dtype=np.float64), 360.0)
    return np.where(wrapped >= 360.0, 0.0, wrapped) + 0.0  # + 0.0 turns -0.0 into 0.0


def unit_vectors(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> FloatArray:
    """Unit vectors (..., 3) for RA/Dec in degrees, bit-identical to sphgeom's conversion."""
    lon = np.radians(np.asarray(ra_deg, dtype=np.float64))
    lat = np.radians(np.asarray(dec_deg, dtype=np.float64))
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)], axis=-1)


def _coordinate_errors(ra: FloatArray, dec: FloatArray) -> npt.NDArray[np.object_]:
    """Per polygon (rows of ``ra``/``dec``), the first coordinate problem found, else None."""
    errors = np.full(ra.shape[0], None, dtype=object)
    checks: list[tuple[Any, str]] = [
        (~np.isfinite(dec).all(axis=1), "dec: vertex is NaN or infinite"),
        (((dec < -90.0) | (dec > 90.0)).any(axis=1), "dec: vertex outside [-90, 90]"),
        (~np.isfinite(ra).all(axis=1), "ra: vertex is NaN or infinite"),
    ]
    # Later checks must not overwrite earlier ones, so apply them in reverse order.
    for bad, message in reversed(checks):
        errors[bad] = message
    return errors


def _strictly_convex(xyz: FloatArray) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Masks of the polygons that are certainly strictly convex, counter-clockwise or not.

    ``xyz`` has shape (n_polygons, n_vertices, 3). For the edge from vertex i to i+1 the sign of
    ``(v_i x v_i+1) . v_j`` tells on which side vertex j lies; a polygon is strictly convex and
    counter-clockwise when that sign is positive for every edge and every vertex not on it.
    Only signs beyond the rounding bound count: a polygon with a sign near zero is in neither
    mask and goes to :func:`_exact_hull`.
    """
    n = xyz.shape[1]
    edges = np.cross(xyz, np.roll(xyz, -1, axis=1))  # (P, n, 3): normal of edge i -> i+1
    sides = np.einsum("pik,pjk->pij", edges, xyz)  # (P, n, n): side of vertex j w.r.t. edge i
    idx = np.arange(n)
    off_edge = (idx[None, :] != idx[:, None]) & (idx[None, :] != ((idx[:, None] + 1) % n))
    ccw = np.asarray(np.where(off_edge[None], sides > _CERTAIN, True).all(axis=(1, 2)))
    cw = np.asarray(np.where(off_edge[None], sides < -_CERTAIN, True).all(axis=(1, 2)))
    return ccw, cw


def sphgeom_points(xyz: FloatArray) -> list[UnitVector3d]:
    """sphgeom unit vectors with exactly these components (the constructor would renormalise).

    Decoding sphgeom's own polygon layout is the one way to get vertex objects bit for bit.
    """
    blob = _POLYGON_TYPE_CODE + np.ascontiguousarray(xyz, dtype="<f8").tobytes()
    return list(decode_polygon(blob).getVertices())


@dataclass(frozen=True)
class _Hull:
    """The stored form of a polygon: which input vertices it keeps, and their orientation."""

    keep: IntArray  # indices into the input vertices, in input order
    counter_clockwise: bool


def _exact_hull(xyz: FloatArray) -> _Hull | str:
    """Decide one polygon exactly: its stored form, or the reason it is refused.

    See the module docstring for the rule. The hull is sphgeom's (exact orientation predicate);
    the input must then go once round that hull's boundary, in one direction, backing up by no
    more than :data:`TOLERANCE_RAD` (so a vertex one ulp "behind" a repeat of itself is fine),
    and every vertex must lie within that tolerance of the boundary.
    """
    unique, first = np.unique(xyz, axis=0, return_index=True)
    if len(unique) < 3:
        return TOO_FEW.format(n=len(unique))
    order = np.sort(first)  # distinct vertices, in input order
    points = sphgeom_points(xyz[order])
    try:
        hull = ConvexPolygon.convexHull(points)
    except ValueError as err:
        return HEMISPHERE if "entire unit sphere" in str(err) else ON_GREAT_CIRCLE
    vertices = hull.getVertices()
    m = len(vertices)
    # sphgeom keeps hull vertices that lie exactly on an edge; they are redundant.
    corners = [v for k, v in enumerate(vertices)
               if orientation(vertices[k - 1], v, vertices[(k + 1) % m]) != 0]
    if len(corners) < 3:
        return ON_GREAT_CIRCLE
    if not _corners_strictly_convex(corners) or not _contains_all(corners, points):
        return HEMISPHERE
    index = {tuple(v): int(i) for i, v in zip(order.tolist(), xyz[order].tolist(), strict=True)}
    keep = [index[(v.x(), v.y(), v.z())] for v in corners]  # counter-clockwise
    corner_xyz = xyz[keep]
    if _laps(xyz, corner_xyz) == 1:
        counter_clockwise = True
    elif _laps(xyz[::-1], corner_xyz) == 1:
        counter_clockwise = False
    else:
        return NOT_CONVEX
    if not counter_clockwise:
        keep = keep[::-1]
    start = int(np.argmin(keep))  # the stored list starts where the input does
    return _Hull(np.array(keep[start:] + keep[:start], dtype=np.int64), counter_clockwise)


def _corners_strictly_convex(corners: list[UnitVector3d]) -> bool:
    """Every corner strictly inside every edge it is not on (exact): < a hemisphere, no twist."""
    m = len(corners)
    for k in range(m):
        a, b = corners[k], corners[(k + 1) % m]
        for j in range(m):
            if j != k and j != (k + 1) % m and orientation(corners[j], a, b) <= 0:
                return False
    return True


def _contains_all(corners: list[UnitVector3d], points: list[UnitVector3d]) -> bool:
    """Whether the polygon of ``corners`` holds every point (exact).

    sphgeom's hull can drop a point when the first ones it looks at lie on one great circle
    and the set is not within a hemisphere; this catches that.
    """
    polygon = decode_polygon(_POLYGON_TYPE_CODE + b"".join(
        np.array([v.x(), v.y(), v.z()], dtype="<f8").tobytes() for v in corners))
    return all(polygon.contains(p) for p in points)


def _laps(vertices: FloatArray, corners: FloatArray) -> float:
    """How many times the vertex path goes counter-clockwise round the hull's boundary.

    Each vertex gets a position along the boundary (perimeter measured along the chords) from
    the hull edge it lies on. Steps between consecutive vertices may go back by up to the
    tolerance; the steps then add up to a whole number of perimeters, which is the answer
    (NaN when a vertex is farther than the tolerance from the boundary: a concave polygon).
    Distances come from differences of nearby vectors, so they are accurate to ~1e-16 even for
    edges a few ulps long.
    """
    chords = np.roll(corners, -1, axis=0) - corners
    lengths = np.linalg.norm(chords, axis=1)
    along = chords / lengths[:, None]
    normals = np.cross(corners, chords)
    normals /= np.linalg.norm(normals, axis=1)[:, None]
    starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    perimeter = float(lengths.sum())
    offsets = vertices[:, None, :] - corners[None, :, :]  # (vertex, edge, 3)
    off_plane = np.abs(np.einsum("vek,ek->ve", offsets, normals))
    t = np.einsum("vek,ek->ve", offsets, along)
    near = (off_plane <= TOLERANCE_RAD) & (t >= -TOLERANCE_RAD) & (t <= lengths + TOLERANCE_RAD)
    if not near.any(axis=1).all():
        return float("nan")
    edge = np.argmin(np.where(near, off_plane, np.inf), axis=1)
    position = starts[edge] + t[np.arange(len(vertices)), edge]
    steps = np.mod(np.diff(np.concatenate([position, position[:1]])), perimeter)
    steps = np.where(steps > perimeter - TOLERANCE_RAD, steps - perimeter, steps)
    return float(np.round(steps.sum() / perimeter, 6))


@dataclass(frozen=True)
class CheckedPolygons:
    """Per polygon: its sphgeom encoding (None if refused) and the reason (None if accepted).

    ``stored`` holds, for the polygons whose stored vertex lists differ from the input (RA
    wrapped, redundant vertices dropped), those lists; :meth:`vertices` gives the lists to
    store for any row, so that the vertex arrays and the encoded polygon always agree.
    """

    encoded: list[bytes | None]
    errors: list[str | None]
    stored: dict[int, tuple[list[float], list[float]]] = field(default_factory=dict)

    def vertices(self, row: int, ra: Sequence[float], dec: Sequence[float]
                 ) -> tuple[list[float], list[float]]:
        """The RA/Dec lists to store for ``row``, given that row's input lists."""
        stored = self.stored.get(row)
        return stored if stored is not None else (list(ra), list(dec))


def check_flat_polygons(ra: FloatArray, dec: FloatArray, offsets: IntArray) -> CheckedPolygons:
    """Validate and encode many polygons stored as flat vertex arrays.

    Polygon ``i`` has vertices ``ra[offsets[i]:offsets[i+1]]`` (likewise ``dec``), the layout of
    an Arrow list column, so a Parquet column converts without a Python object per vertex.
    Error messages start with ``ra:``/``dec:`` when they concern one coordinate.
    """
    count = len(offsets) - 1
    encoded: list[bytes | None] = [None] * count
    errors: list[str | None] = [None] * count
    stored: dict[int, tuple[list[float], list[float]]] = {}
    sizes = np.diff(offsets)
    for n_vertices in np.unique(sizes).tolist():
        rows = np.flatnonzero(sizes == n_vertices)
        if n_vertices < 3:
            for row in rows.tolist():
                errors[row] = f"ra: polygon has {n_vertices} vertices, at least 3 are needed"
            continue
        index = offsets[rows][:, None] + np.arange(n_vertices)[None, :]
        given_ra, poly_dec = ra[index], dec[index]
        poly_ra = wrap_ra(given_ra)
        coord_errors = _coordinate_errors(poly_ra, poly_dec)
        ok = coord_errors == None  # noqa: E711 - elementwise comparison on an object array
        xyz = unit_vectors(np.where(ok[:, None], poly_ra, 0.0),
                           np.where(ok[:, None], poly_dec, 0.0)).astype("<f8", copy=False)
        ccw, cw = _strictly_convex(xyz)
        wrapped = ok & (poly_ra != given_ra).any(axis=1)
        # Strictly convex polygons stored as given (nearly all of them: every patch of a sky
        # map, most CCDs) are encoded in one numpy pass, not one Python step each.
        plain = np.flatnonzero(ok & (ccw | cw) & ~wrapped)
        for row, blob in zip(rows[plain].tolist(),
                             _encode_convex(xyz[plain], ccw[plain]), strict=True):
            encoded[row] = blob
        done = np.zeros(len(rows), dtype=bool)
        done[plain] = True
        for k in np.flatnonzero(~done).tolist():
            row = int(rows[k])
            if not ok[k]:
                errors[row] = str(coord_errors[k])
                continue
            if ccw[k] or cw[k]:
                vectors = xyz[k] if ccw[k] else xyz[k, ::-1]
                encoded[row] = _POLYGON_TYPE_CODE + vectors.tobytes()
                if wrapped[k]:
                    stored[row] = (poly_ra[k].tolist(), poly_dec[k].tolist())
                continue
            hull = _exact_hull(xyz[k])
            if isinstance(hull, str):
                errors[row] = hull
                continue
            vectors = xyz[k, hull.keep] if hull.counter_clockwise else xyz[k, hull.keep[::-1]]
            encoded[row] = _POLYGON_TYPE_CODE + np.ascontiguousarray(vectors).tobytes()
            if wrapped[k] or len(hull.keep) < n_vertices:
                stored[row] = (poly_ra[k, hull.keep].tolist(), poly_dec[k, hull.keep].tolist())
    return CheckedPolygons(encoded, errors, stored)


def _encode_convex(xyz: FloatArray, counter_clockwise: npt.NDArray[np.bool_]) -> list[bytes]:
    """sphgeom encodings of strictly convex polygons, (n, k, 3) little-endian unit vectors,
    each turned counter-clockwise (sphgeom's vertex order) where it is not."""
    if not len(xyz):
        return []
    vectors = np.where(counter_clockwise[:, None, None], xyz, xyz[:, ::-1])
    count, width = len(xyz), 1 + xyz.shape[1] * 24
    blobs = np.empty((count, width), dtype=np.uint8)
    blobs[:, 0] = _POLYGON_TYPE_CODE[0]
    blobs[:, 1:] = np.ascontiguousarray(vectors, dtype="<f8").reshape(count, -1).view(np.uint8)
    data = blobs.tobytes()
    return [data[i:i + width] for i in range(0, count * width, width)]


def encode_flat_polygons(
    ra: FloatArray, dec: FloatArray, offsets: IntArray
) -> tuple[list[bytes | None], list[str | None]]:
    """:func:`check_flat_polygons`' encodings and errors, for callers that store no vertices."""
    checked = check_flat_polygons(ra, dec, offsets)
    return checked.encoded, checked.errors


def check_polygons(
    ra_lists: Sequence[Sequence[float]], dec_lists: Sequence[Sequence[float]]
) -> CheckedPolygons:
    """:func:`check_flat_polygons` for ragged Python lists of vertices."""
    if len(ra_lists) != len(dec_lists):
        raise GeometryError(f"{len(ra_lists)} RA lists but {len(dec_lists)} Dec lists")
    encoded: list[bytes | None] = [None] * len(ra_lists)
    errors: list[str | None] = [None] * len(ra_lists)
    stored: dict[int, tuple[list[float], list[float]]] = {}
    good = []
    for i, (ra, dec) in enumerate(zip(ra_lists, dec_lists, strict=True)):
        if len(ra) != len(dec):
            errors[i] = f"ra has {len(ra)} vertices but dec has {len(dec)}"
        else:
            good.append(i)
    sizes = np.array([len(ra_lists[i]) for i in good], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    flat_ra = np.array([v for i in good for v in ra_lists[i]], dtype=np.float64)
    flat_dec = np.array([v for i in good for v in dec_lists[i]], dtype=np.float64)
    sub = check_flat_polygons(flat_ra, flat_dec, offsets)
    for k, i in enumerate(good):
        encoded[i], errors[i] = sub.encoded[k], sub.errors[k]
        if k in sub.stored:
            stored[i] = sub.stored[k]
    return CheckedPolygons(encoded, errors, stored)


def encode_polygons(
    ra_lists: Sequence[Sequence[float]], dec_lists: Sequence[Sequence[float]]
) -> tuple[list[bytes | None], list[str | None]]:
    """:func:`check_polygons`' encodings and errors, for callers that store no vertices."""
    checked = check_polygons(ra_lists, dec_lists)
    return checked.encoded, checked.errors


def decode_polygon(encoded: bytes) -> ConvexPolygon:
    """A polygon from bytes written by :func:`check_flat_polygons` (or sphgeom's encode)."""
    try:
        polygon = ConvexPolygon.decode(encoded)
    except (RuntimeError, ValueError, TypeError) as err:
        raise GeometryError(f"stored region is not an encoded polygon: {err}") from err
    if not isinstance(polygon, ConvexPolygon):
        raise GeometryError(f"stored region is a {type(polygon).__name__}, not a ConvexPolygon")
    return polygon


def polygon_from_vertices(ra: Sequence[float], dec: Sequence[float]) -> ConvexPolygon:
    """Build one validated polygon (as stored); raises :class:`GeometryError` if refused."""
    checked = check_polygons([ra], [dec])
    error, encoded = checked.errors[0], checked.encoded[0]
    if error is not None or encoded is None:
        message = error or NOT_CONVEX
        field = message.split(":", 1)[0] if message.startswith(("ra:", "dec:")) else None
        raise GeometryError(message, field=field)
    return decode_polygon(encoded)
