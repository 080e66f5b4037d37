"""Validation and encoding of convex spherical polygons given as vertex lists in degrees.

Input polygons come from files and users, so nothing is trusted: every polygon must have at
least three finite vertices inside the coordinate ranges and be *strictly* convex (every vertex
strictly on the inner side of every edge that does not touch it). Strict convexity also implies
the polygon is smaller than a hemisphere.

Why not just ``ConvexPolygon(vertices)``? That constructor silently returns the convex hull of a
non-convex input, which would index a different region than the one supplied.

Vertices are turned into unit vectors with numpy using the same formula as sphgeom's
``UnitVector3d(LonLat.fromDegrees(ra, dec))`` (the results are bit-identical), and the polygon is
serialised in sphgeom's own ``encode()`` layout. Bulk ingest thereby validates and encodes
millions of polygons without building a Python object per vertex, while queries still decode the
exact polygon the input described.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import ConvexPolygon

from skyreg.errors import SkyregError

FloatArray = npt.NDArray[np.float64]

#: First byte of sphgeom's ConvexPolygon encoding, followed by x, y, z per vertex (float64 LE).
_POLYGON_TYPE_CODE = b"p"


class GeometryError(SkyregError, ValueError):
    """A polygon or region that cannot be used; ``field`` names the offending input."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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
        (((ra < 0.0) | (ra >= 360.0)).any(axis=1), "ra: vertex outside [0, 360)"),
    ]
    # Later checks must not overwrite earlier ones, so apply them in reverse order.
    for bad, message in reversed(checks):
        errors[bad] = message
    return errors


def _orient_and_check(xyz: FloatArray) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Return the polygons reordered counter-clockwise and a mask of the strictly convex ones.

    ``xyz`` has shape (n_polygons, n_vertices, 3). For the edge from vertex i to i+1 the sign of
    ``(v_i x v_i+1) . v_j`` tells on which side vertex j lies. A polygon is strictly convex and
    counter-clockwise when that sign is positive for every edge and every vertex not on it;
    clockwise input is accepted by reversing it.
    """
    n = xyz.shape[1]
    edges = np.cross(xyz, np.roll(xyz, -1, axis=1))  # (P, n, 3): normal of edge i -> i+1
    sides = np.einsum("pik,pjk->pij", edges, xyz)  # (P, n, n): side of vertex j w.r.t. edge i
    idx = np.arange(n)
    off_edge = (idx[None, :] != idx[:, None]) & (idx[None, :] != ((idx[:, None] + 1) % n))
    ccw = np.asarray(np.where(off_edge[None], sides > 0.0, True).all(axis=(1, 2)), dtype=bool)
    cw = np.asarray(np.where(off_edge[None], sides < 0.0, True).all(axis=(1, 2)), dtype=bool)
    oriented = np.where(cw[:, None, None], xyz[:, ::-1, :], xyz)
    return oriented.astype(np.float64), ccw | cw


IntArray = npt.NDArray[np.int64]

NOT_CONVEX = (
    "polygon is not strictly convex (self-intersecting, concave, with repeated or collinear "
    "vertices, or larger than a hemisphere)"
)


def encode_flat_polygons(
    ra: FloatArray, dec: FloatArray, offsets: IntArray
) -> tuple[list[bytes | None], list[str | None]]:
    """Validate and encode many polygons stored as flat vertex arrays.

    Polygon ``i`` has vertices ``ra[offsets[i]:offsets[i+1]]`` (likewise ``dec``), the layout of
    an Arrow list column, so a Parquet column converts without a Python object per vertex.
    Returns, per polygon, the sphgeom encoding (None if invalid) and an error message (None if
    valid). Messages start with ``ra:``/``dec:`` when they concern one coordinate.
    """
    count = len(offsets) - 1
    encoded: list[bytes | None] = [None] * count
    errors: list[str | None] = [None] * count
    sizes = np.diff(offsets)
    for n_vertices in np.unique(sizes).tolist():
        rows = np.flatnonzero(sizes == n_vertices)
        if n_vertices < 3:
            for row in rows.tolist():
                errors[row] = f"ra: polygon has {n_vertices} vertices, at least 3 are needed"
            continue
        index = offsets[rows][:, None] + np.arange(n_vertices)[None, :]
        poly_ra, poly_dec = ra[index], dec[index]
        coord_errors = _coordinate_errors(poly_ra, poly_dec)
        ok = coord_errors == None  # noqa: E711 - elementwise comparison on an object array
        oriented, convex = _orient_and_check(
            unit_vectors(np.where(ok[:, None], poly_ra, 0.0), np.where(ok[:, None], poly_dec, 0.0))
        )
        blobs = oriented.astype("<f8", copy=False)
        for k, row in enumerate(rows.tolist()):
            if not ok[k]:
                errors[row] = str(coord_errors[k])
            elif not convex[k]:
                errors[row] = NOT_CONVEX
            else:
                encoded[row] = _POLYGON_TYPE_CODE + blobs[k].tobytes()
    return encoded, errors


def encode_polygons(
    ra_lists: Sequence[Sequence[float]], dec_lists: Sequence[Sequence[float]]
) -> tuple[list[bytes | None], list[str | None]]:
    """:func:`encode_flat_polygons` for ragged Python lists of vertices."""
    if len(ra_lists) != len(dec_lists):
        raise ValueError("ra_lists and dec_lists differ in length")
    encoded: list[bytes | None] = [None] * len(ra_lists)
    errors: list[str | None] = [None] * len(ra_lists)
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
    sub_encoded, sub_errors = encode_flat_polygons(flat_ra, flat_dec, offsets)
    for k, i in enumerate(good):
        encoded[i], errors[i] = sub_encoded[k], sub_errors[k]
    return encoded, errors


def decode_polygon(encoded: bytes) -> ConvexPolygon:
    """A polygon from bytes written by :func:`encode_flat_polygons` (or sphgeom's encode)."""
    polygon = ConvexPolygon.decode(encoded)
    assert isinstance(polygon, ConvexPolygon)
    return polygon


def polygon_from_vertices(ra: Sequence[float], dec: Sequence[float]) -> ConvexPolygon:
    """Build one validated polygon; raises :class:`GeometryError` for invalid input."""
    encoded, errors = encode_polygons([ra], [dec])
    if errors[0] is not None:
        field = errors[0].split(":", 1)[0] if errors[0].startswith(("ra:", "dec:")) else None
        raise GeometryError(errors[0], field=field)
    assert encoded[0] is not None
    return decode_polygon(encoded[0])
