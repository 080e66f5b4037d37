"""Many encoded sphgeom polygons as numpy vertex arrays, decoded in bulk.

A spatial query tests thousands of stored footprints (``ConvexPolygon.encode()`` bytes) against
one region. Decoding each with sphgeom costs a Python call and an object per footprint; here
the bytes are joined once and read as float64 vertices (exactly the doubles sphgeom decodes),
grouped by vertex count, for the vectorised tests of :mod:`skyreg.geometry.circle_overlap`
and :mod:`skyreg.geometry.batch_overlap`. Any footprint that is not a polygon encoding is left
out of the groups, so the callers ask sphgeom about it (and sphgeom says what is wrong).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import ConvexPolygon

_TYPE_CODE = ord("p")
_VERTEX_BYTES = 24

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EncodedPolygons:
    """Encoded regions ``data[starts[i]:starts[i] + lengths[i]]``, one per footprint."""

    data: bytes
    lengths: IntArray

    @classmethod
    def from_blobs(cls, blobs: Sequence[bytes]) -> EncodedPolygons:
        """From one ``encode()`` bytes object per footprint."""
        lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
        return cls(b"".join(blobs), lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    @cached_property
    def starts(self) -> IntArray:
        """Where each footprint's bytes begin in ``data``."""
        starts = np.zeros(len(self.lengths), dtype=np.int64)
        np.cumsum(self.lengths[:-1], out=starts[1:])
        return starts

    def blobs(self) -> list[bytes]:
        """Each footprint's encoded bytes."""
        data, starts = self.data, self.starts.tolist()
        return [data[start:start + length]
                for start, length in zip(starts, self.lengths.tolist(), strict=True)]

    def polygon(self, i: int) -> ConvexPolygon:
        """Footprint ``i`` as sphgeom decodes it (for the candidates left to sphgeom)."""
        start = int(self.starts[i])
        polygon = ConvexPolygon.decode(self.data[start:start + int(self.lengths[i])])
        assert isinstance(polygon, ConvexPolygon)
        return polygon

    def groups(self) -> Iterator[tuple[IntArray, FloatArray]]:
        """``(rows, vertices)`` per vertex count ``k``: the footprints ``rows`` and their
        vertices, a (len(rows), k, 3) float64 array (possibly a strided view of ``data``).

        Only polygon encodings (type code, then whole vertices) are grouped; other footprints
        are in no group.
        """
        n = len(self.lengths)
        if not n:
            return
        first = int(self.lengths[0])
        if (first - 1) % _VERTEX_BYTES == 0 and first > 1 and bool(
                (self.lengths == first).all()) and len(self.data) == n * first:
            # The usual case, one vertex count: a strided view of the bytes (no copy yet).
            vertices = np.ndarray(shape=(n, (first - 1) // _VERTEX_BYTES, 3), dtype="<f8",
                                  buffer=self.data, offset=1, strides=(first, _VERTEX_BYTES, 8))
            codes = np.frombuffer(self.data, dtype=np.uint8)[::first]
            rows = np.flatnonzero(codes == _TYPE_CODE)
            yield rows, (vertices if len(rows) == n else vertices[rows])
            return
        starts = self.starts
        raw = np.frombuffer(self.data, dtype=np.uint8)
        ok = (self.lengths > 1) & ((self.lengths - 1) % _VERTEX_BYTES == 0)
        ok[ok] = raw[starts[ok]] == _TYPE_CODE
        for length in np.unique(self.lengths[ok]).tolist():
            rows = np.flatnonzero(ok & (self.lengths == length))
            offsets = starts[rows, None] + 1 + np.arange(length - 1)[None, :]
            vertices = raw[offsets].view("<f8").reshape(len(rows), -1, 3)
            yield rows, vertices.astype(np.float64, copy=False)
