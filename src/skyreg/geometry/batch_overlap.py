"""Exact overlap of many convex polygon pairs at once, with numpy, identical to sphgeom.

sphgeom decides whether two convex polygons P and Q overlap (``ConvexPolygon.overlaps``, the
predicate every spatial query of the registry uses) from the signs of orientation
determinants ``det(a, b, c) = a · cross(b, c)`` of their vertices, which it evaluates exactly:

* a vertex ``v`` of one polygon lies in the other when ``det(v, q_j, q_j+1) >= 0`` for every
  edge ``(q_j, q_j+1)`` of the other;
* otherwise an edge ``(a, b)`` of P crosses an edge ``(c, d)`` of Q when
  ``det(a, c, d)``, ``det(b, d, c)``, ``det(c, b, a)`` and ``det(d, a, b)`` all have the same
  non-zero sign;
* the polygons overlap when any vertex of either lies in the other or any edge pair crosses.

Every one of these determinants is ``±(vertex · edge normal)`` with the normal
``n = cross(c, d)`` of an edge of the *other* polygon, so a pair of polygons with ``k`` and ``m``
vertices needs ``2·k·m`` dot products; the normals are computed once per polygon.

**Error bound.** With ``u = 2⁻⁵³`` and IEEE double arithmetic, the normal
``n_x = fl(fl(c_y d_z) - fl(c_z d_y))`` (and cyclically; one rounding per numpy elementwise
operation) followed by the dot product ``v · n`` (three products and two additions in any
order, fused or not) differs from the exact ``v · cross(c, d)`` by at most
``γ₅ · Σᵢ |vᵢ| (|c_j d_k| + |c_k d_j|)``, ``γ₅ = 5u/(1-5u)`` (each term of the permanent
passes through at most five roundings). By Cauchy-Schwarz
``|c_j d_k| + |c_k d_j| <= |c| |d|``, so the permanent is at most ``√3 |v| |c| |d|``. For
vectors of norm at most ``1 + 1e-12`` (checked: polygons with other vertices are never
decided here) the error is below ``5.6e-16 · 1.74 < 1e-15``; gradual underflow adds at most
``1e-300``. :data:`SIGN_BOUND` = ``4e-15`` keeps a factor of four in hand: a computed value
``> SIGN_BOUND`` proves the exact determinant positive, ``< -SIGN_BOUND`` negative.

A pair is decided when the signs it needs are proven (for typical CCD and patch sizes, 0.01°
and up, determinants are ~1e-8 or larger; even 1″ regions give ~1e-11); the rest — shared or
touching edges, vertices on edges, collinear vertices — go to sphgeom, so the answer is
always exactly sphgeom's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import ConvexPolygon, UnitVector3d

#: A computed determinant beyond ± this value has the exact determinant's sign (see above).
SIGN_BOUND = 4e-15
#: Vertices whose norm differs from 1 by more than this are left to sphgeom.
NORM_TOLERANCE = 1e-12
#: Pairs tested per numpy pass: small enough for the per-pair vectors to stay in cache.
CHUNK = 4_096

_TYPE_CODE = b"p"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Results of :func:`classify_pairs`.
DISJOINT, OVERLAPS, UNDECIDED = 0, 1, -1


@dataclass(frozen=True)
class PolygonArrays:
    """Vertices of many convex polygons: ``vertices[i, :counts[i]]`` are polygon ``i``'s.

    Rows are padded (by repeating the last vertex) to the largest vertex count. ``normals``
    holds the edge normals ``cross(v_j, v_j+1)`` in the rounding the error bound assumes, and
    ``usable`` says which polygons have unit vertices (the others are always left to sphgeom).
    """

    vertices: FloatArray
    counts: IntArray
    normals: FloatArray
    usable: BoolArray
    #: ``vertices`` and ``normals`` as (vertex, coordinate, polygon) arrays: the tests gather
    #: and compute on contiguous per-polygon vectors.
    by_vertex: FloatArray
    normals_by_vertex: FloatArray

    def __len__(self) -> int:
        return len(self.counts)

    @classmethod
    def from_vertex_lists(cls, polygons: Sequence[FloatArray]) -> PolygonArrays:
        """From one ``(k, 3)`` unit-vector array per polygon (sphgeom's vertex order)."""
        counts = np.array([len(p) for p in polygons], dtype=np.int64)
        width = int(counts.max()) if len(counts) else 3
        vertices = np.empty((len(polygons), width, 3), dtype=np.float64)
        for i, poly in enumerate(polygons):
            vertices[i, :len(poly)] = poly
            vertices[i, len(poly):] = poly[-1]
        return cls.from_padded(vertices, counts)

    @classmethod
    def from_encoded(cls, blobs: Sequence[bytes]) -> PolygonArrays:
        """From ``ConvexPolygon.encode()`` bytes: exactly the doubles sphgeom decodes."""
        lengths = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=len(blobs))
        if len(blobs) and bool((lengths == lengths[0]).all()):  # the usual case: one shape
            raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), -1)
            vertices = raw[:, 1:].copy().view("<f8").reshape(len(blobs), -1, 3)
            counts = np.full(len(blobs), vertices.shape[1], dtype=np.int64)
            return cls.from_padded(vertices.astype(np.float64), counts)
        return cls.from_vertex_lists([np.frombuffer(b, dtype="<f8", offset=1).reshape(-1, 3)
                                      for b in blobs])

    @classmethod
    def from_padded(cls, vertices: FloatArray, counts: IntArray) -> PolygonArrays:
        # Edge j runs from vertex j to vertex (j + 1) mod k; padding edges (last vertex to
        # itself) get an exactly zero normal.
        following = vertices.copy()
        for k in _kinds(counts):
            rows = np.flatnonzero(counts == k)
            following[rows, :k] = np.roll(vertices[rows, :k], -1, axis=1)
        normals = _cross(vertices, following)
        norms = np.sqrt(np.einsum("nkc,nkc->nk", vertices, vertices))
        usable = (np.abs(norms - 1.0) <= NORM_TOLERANCE).all(axis=1)
        return cls(vertices, counts, normals, usable,
                   np.ascontiguousarray(vertices.transpose(1, 2, 0)),
                   np.ascontiguousarray(normals.transpose(1, 2, 0)))

    def polygon(self, i: int) -> ConvexPolygon:
        """Polygon ``i`` as sphgeom holds it (same doubles: decoded from its own encoding)."""
        rows = np.ascontiguousarray(self.vertices[i, :self.counts[i]], dtype="<f8")
        polygon = ConvexPolygon.decode(_TYPE_CODE + rows.tobytes())
        assert isinstance(polygon, ConvexPolygon)
        return polygon


def _kinds(values: IntArray) -> list[int]:
    """The distinct values (nearly always just one: every polygon a quadrilateral)."""
    if not len(values):
        return []
    low, high = int(values.min()), int(values.max())
    return [low] if low == high else [int(v) for v in np.unique(values)]


def _cross(b: FloatArray, c: FloatArray) -> FloatArray:
    """``cross(b, c)`` with exactly one rounding per product and per difference."""
    out = np.empty(np.broadcast_shapes(b.shape, c.shape), dtype=np.float64)
    out[..., 0] = b[..., 1] * c[..., 2] - b[..., 2] * c[..., 1]
    out[..., 1] = b[..., 2] * c[..., 0] - b[..., 0] * c[..., 2]
    out[..., 2] = b[..., 0] * c[..., 1] - b[..., 1] * c[..., 0]
    return out


def _all(values: BoolArray, axis: int | tuple[int, ...]) -> BoolArray:
    reduced: BoolArray = np.all(values, axis=axis)
    return reduced


def _any(values: BoolArray, axis: int | tuple[int, ...]) -> BoolArray:
    reduced: BoolArray = np.any(values, axis=axis)
    return reduced


def _dots(points: FloatArray, normals: FloatArray) -> FloatArray:
    """``d[n, i, j] = points[n, i] · normals[n, j]`` (a batched matrix product).

    The bound holds for any order of the three-term sum and with or without fused
    multiply-adds (each only removes roundings), so the product may come from BLAS.
    """
    product: FloatArray = np.matmul(points, np.swapaxes(normals, 1, 2))
    return product


def _dot(a: FloatArray, b: FloatArray) -> FloatArray:
    """Per-pair dot products of (3, n) arrays: three products, two sums (as bounded)."""
    result: FloatArray = a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
    return result


def _min(values: list[FloatArray]) -> FloatArray:
    return functools.reduce(np.minimum, values)


def _max(values: list[FloatArray]) -> FloatArray:
    return functools.reduce(np.maximum, values)


def _classify_shape(a: PolygonArrays, pa: IntArray, k: int, b: PolygonArrays, pb: IntArray,
                    m: int) -> npt.NDArray[np.int8]:
    """:func:`classify_pairs` for pairs whose polygons all have ``k`` and ``m`` vertices.

    The vertices and normals are gathered as (vertex, coordinate, pair) arrays, so that the
    determinants of all pairs come from one ``einsum`` (three products and two sums per
    determinant, as bounded) and every reduction runs over contiguous per-pair vectors; the
    second polygon's vertices and the first one's normals only for the pairs the first step
    leaves open.
    """
    # m1[i, j] = det(p_i, q_j, q_j+1): p_i is left of Q's edge j; m2[j, i] likewise.
    m1 = _vertex_dots(_gather(a.by_vertex, k, pa), _gather(b.normals_by_vertex, m, pb))
    # A vertex proven left of every edge of the other polygon is inside it: overlap.
    # An edge with every vertex of the other polygon proven on its right separates them.
    # Such a pair has no common point, so sphgeom (exact) finds no contained vertex and no
    # crossing. For convex polygons within a hemisphere some edge always separates
    # disjoint, non-touching polygons (the separating axis theorem through the gnomonic
    # projection), so this decides nearly every disjoint pair. (Both cannot be proven for
    # one pair.) The vertices of P against the edges of Q decide most candidate pairs
    # already; only the others need Q's vertices against P's edges.
    result = _proven(m1)
    open_ = np.flatnonzero(result == UNDECIDED)
    if not len(open_):
        return result
    m1 = m1[:, :, open_]
    m2 = _vertex_dots(_gather(b.by_vertex, m, pb[open_]),
                      _gather(a.normals_by_vertex, k, pa[open_]))
    decided = _proven(m2)
    rest = np.flatnonzero(decided == UNDECIDED)
    if len(rest):
        decided[rest] = _classify_rest(np.moveaxis(m1[:, :, rest], 2, 0),
                                       np.moveaxis(m2[:, :, rest], 2, 0))
    result[open_] = decided
    return result


def _gather(values: FloatArray, count: int, rows: IntArray) -> FloatArray:
    """``values[:count, :, rows]`` laid out C-contiguous (fancy indexing would put the pair
    axis first in memory, and every per-pair vector would be strided)."""
    gathered: FloatArray = values[:count].take(rows, axis=2)
    return gathered


def _vertex_dots(points: FloatArray, normals: FloatArray) -> FloatArray:
    """``d[i, j, n] = points[i, :, n] · normals[j, :, n]`` of (vertex, coordinate, pair) arrays.

    Three products and two additions per value, in whatever order ``einsum`` sums them: the
    error bound holds for any order, fused or not.
    """
    dots: FloatArray = np.einsum("icn,jcn->ijn", points, normals)
    return dots


def _proven(dets: FloatArray) -> npt.NDArray[np.int8]:
    """OVERLAPS where some vertex of one polygon is proven inside the other, DISJOINT where
    some edge of the other has every vertex proven on its right, UNDECIDED elsewhere.

    ``dets[i, j, n]`` is det(v_i, e_j, e_j+1) of pair ``n``: one polygon's vertices against
    the other's edges (see :func:`_classify_shape`).
    """
    inside = dets.min(axis=1).max(axis=0) > SIGN_BOUND
    separated = dets.max(axis=0).min(axis=0) < -SIGN_BOUND
    codes = np.full(dets.shape[2], UNDECIDED, dtype=np.int8)
    codes[separated] = DISJOINT
    codes[inside] = OVERLAPS
    return codes


def _classify_rest(m1: FloatArray, m2: FloatArray) -> npt.NDArray[np.int8]:
    """The remaining pairs, following sphgeom's test step by step with proven signs only."""
    bound = SIGN_BOUND
    # sphgeom: overlap iff a vertex of either lies in the other, or an edge pair crosses.
    inside = _any(_all(m1 > bound, 2), 1) | _any(_all(m2 > bound, 2), 1)
    outside = _all(_any(m1 < -bound, 2), 1) & _all(_any(m2 < -bound, 2), 1)
    # Edge (a, b) = (p_i, p_i+1) against edge (c, d) = (q_j, q_j+1): it crosses when
    # det(a,c,d) = m1[i, j], det(b,d,c) = -m1[i+1, j], det(c,b,a) = -m2[j, i] and
    # det(d,a,b) = m2[j+1, i] have one non-zero sign.
    signs = (m1, -np.roll(m1, -1, axis=1), -np.swapaxes(m2, 1, 2),
             np.swapaxes(np.roll(m2, -1, axis=1), 1, 2))
    positive = [value > bound for value in signs]
    negative = [value < -bound for value in signs]
    all_pos = positive[0] & positive[1] & positive[2] & positive[3]
    all_neg = negative[0] & negative[1] & negative[2] & negative[3]
    mixed = ((positive[0] | positive[1] | positive[2] | positive[3])
             & (negative[0] | negative[1] | negative[2] | negative[3]))
    crossing = _any(all_pos | all_neg, (1, 2))
    no_crossing = _all(mixed, (1, 2))
    result = np.full(len(m1), UNDECIDED, dtype=np.int8)
    result[outside & no_crossing] = DISJOINT
    result[inside | crossing] = OVERLAPS
    return result


def classify_pairs(a: PolygonArrays, ia: IntArray, b: PolygonArrays, ib: IntArray
                   ) -> npt.NDArray[np.int8]:
    """For each pair (``a[ia[k]]``, ``b[ib[k]]``): OVERLAPS, DISJOINT or UNDECIDED.

    Decided answers are proven equal to sphgeom's; undecided pairs need :func:`overlaps`.
    """
    ia, ib = np.asarray(ia, dtype=np.int64), np.asarray(ib, dtype=np.int64)
    result = np.full(len(ia), UNDECIDED, dtype=np.int8)
    if not len(ia):
        return result
    shapes = a.counts[ia] * 1024 + b.counts[ib]
    usable = a.usable[ia] & b.usable[ib]
    for shape in _kinds(shapes):
        rows = np.flatnonzero((shapes == shape) & usable)
        k, m = int(shape // 1024), int(shape % 1024)
        for start in range(0, len(rows), CHUNK):
            part = rows[start:start + CHUNK]
            result[part] = _classify_shape(a, ia[part], k, b, ib[part], m)
    return result


def overlaps(a: PolygonArrays, ia: IntArray, b: PolygonArrays, ib: IntArray) -> BoolArray:
    """``a[ia[k]].overlaps(b[ib[k]])`` for every k, exactly as sphgeom answers it."""
    result = classify_pairs(a, ia, b, ib)
    undecided = np.flatnonzero(result == UNDECIDED)
    if len(undecided):
        cache_a: dict[int, ConvexPolygon] = {}
        cache_b: dict[int, ConvexPolygon] = {}
        for k in undecided:
            i, j = int(ia[k]), int(ib[k])
            if i not in cache_a:
                cache_a[i] = a.polygon(i)
            if j not in cache_b:
                cache_b[j] = b.polygon(j)
            pa, pb = cache_a[i], cache_b[j]
            result[k] = OVERLAPS if pa.overlaps(pb) else DISJOINT
    decided: BoolArray = result == OVERLAPS
    return decided


def contain_point(a: PolygonArrays, rows: IntArray, point: UnitVector3d) -> BoolArray:
    """``a[rows[k]].contains(point)`` for every k, exactly as sphgeom answers it.

    Containment is ``det(point, v_j, v_j+1) >= 0`` for every edge; the signs come from the
    same bounded dot products, and the unproven rows are asked of sphgeom.
    """
    rows = np.asarray(rows, dtype=np.int64)
    p = np.array([point.x(), point.y(), point.z()], dtype=np.float64)
    normals = a.normals[rows]
    dets = (p[0] * normals[..., 0] + p[1] * normals[..., 1]) + p[2] * normals[..., 2]
    # Padding edges have an exactly zero normal: they never decide anything.
    width = normals.shape[1]
    real = np.arange(width)[None, :] < a.counts[rows][:, None]
    proven_out = ((dets < -SIGN_BOUND) & real).any(axis=1)
    proven_in = ((dets > SIGN_BOUND) | ~real).all(axis=1)
    usable = a.usable[rows]
    result: BoolArray = usable & proven_in
    for k in np.flatnonzero(~(usable & (proven_in | proven_out))):
        result[k] = bool(a.polygon(int(rows[k])).contains(point))
    return result
