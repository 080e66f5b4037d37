"""Geometry stage of ingest: validate and encode footprints, compute their pixel coverage.

Validation and encoding are vectorised (numpy); pixel coverage needs one sphgeom call per
footprint (~30 µs at HTM 9), so large batches are spread over a process pool.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from lsst.sphgeom import ConvexPolygon

from skyreg.geometry.htm_cover import expand_ranges, htm_polygon_covers
from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.polygons import check_flat_polygons
from skyreg.ingest.problems import Problems
from skyreg.ingest.process_pool import process_pool

#: Footprints per task sent to a worker process.
CHUNK = 20_000
#: Below this many footprints the pool's start-up costs more than it saves.
POOL_THRESHOLD = 60_000

Progress = Callable[[int], None]


@dataclass
class Footprints:
    """Encoded polygons and vertex lists of one polygon column pair (rows in input order)."""

    encoded: list[bytes]
    ra: list[list[float]]
    dec: list[list[float]]


def _flat(column: pa.ChunkedArray) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    array = column.combine_chunks()
    offsets = array.offsets.to_numpy().astype(np.int64)
    values = array.values.to_numpy(zero_copy_only=False).astype(np.float64)
    # Arrow offsets may not start at 0 for sliced arrays; rebase to the values buffer slice.
    return values[offsets[0]:offsets[-1]], offsets - offsets[0]


def encode_column_pair(table: pa.Table, file: str, ra_field: str, dec_field: str,
                       problems: Problems) -> Footprints | None:
    """Validate and encode the polygons in columns ``ra_field``/``dec_field`` of ``table``."""
    ra, ra_offsets = _flat(table.column(ra_field))
    dec, dec_offsets = _flat(table.column(dec_field))
    mismatch = np.flatnonzero(ra_offsets != dec_offsets)
    if mismatch.size:
        row = max(int(mismatch[0]) - 1, 0)
        problems.add(file, f"{ra_field} and {dec_field} have different vertex counts",
                     row=row, field=dec_field)
        return None
    checked = check_flat_polygons(ra, dec, ra_offsets)
    bad_rows = [i for i, error in enumerate(checked.errors) if error is not None]
    for row in bad_rows:
        message = str(checked.errors[row])
        field = f"{ra_field}/{dec_field}"
        if message.startswith("ra: "):
            field, message = ra_field, message[4:]
        elif message.startswith("dec: "):
            field, message = dec_field, message[5:]
        problems.add(file, message, row=row, field=field)
    if bad_rows:
        return None
    # What is stored is what was encoded: RA wrapped into [0, 360), redundant vertices of
    # hull-like polygons dropped (the rare rows in ``checked.stored``).
    ra_lists, dec_lists = table.column(ra_field).to_pylist(), table.column(dec_field).to_pylist()
    for row, (stored_ra, stored_dec) in checked.stored.items():
        ra_lists[row], dec_lists[row] = stored_ra, stored_dec
    return Footprints(
        encoded=checked.encoded,  # type: ignore[arg-type]  # no None once errors are ruled out
        ra=ra_lists,
        dec=dec_lists,
    )


@dataclass(frozen=True)
class PixelSets:
    """The pixels of many footprints: row ``i`` owns ``flat[offsets[i]:offsets[i + 1]]``.

    Flat numpy arrays cross process boundaries and reach the database (binary COPY built with
    numpy) without a Python object per pixel.
    """

    flat: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> npt.NDArray[np.int64]:
        return self.flat[self.offsets[i]:self.offsets[i + 1]]

    def owners(self) -> npt.NDArray[np.int64]:
        """Row number of every pixel in ``flat``."""
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.offsets))

    def first(self) -> npt.NDArray[np.int64]:
        """Smallest pixel of each row (-1 for a row without pixels)."""
        counts = np.diff(self.offsets)
        result = np.full(len(self), -1, dtype=np.int64)
        has = counts > 0
        if has.any():
            # Segments start at each non-empty row; empty rows in between add nothing.
            result[has] = np.minimum.reduceat(self.flat, self.offsets[:-1][has])
        return result

    def take(self, order: npt.NDArray[np.int64]) -> PixelSets:
        """The rows at the given positions, in that order."""
        if len(order) == len(self) and np.array_equal(order, np.arange(len(self))):
            return self
        counts = np.diff(self.offsets)[order]
        offsets = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        # Position k of new row i reads old position offsets[order[i]] + k.
        starts = np.repeat(self.offsets[:-1][order] - offsets[:-1], counts)
        return PixelSets(self.flat[starts + np.arange(offsets[-1], dtype=np.int64)], offsets)

    def union(self, rows: npt.NDArray[np.int64], extra: PixelSets) -> PixelSets:
        """These sets with row ``extra[k]`` added to row ``rows[k]`` (sorted, no duplicates)."""
        owners = np.concatenate([self.owners(), rows[extra.owners()]])
        flat = np.concatenate([self.flat, extra.flat])
        order = np.lexsort((flat, owners))
        owners, flat = owners[order], flat[order]
        keep = np.ones(len(flat), dtype=bool)
        keep[1:] = (owners[1:] != owners[:-1]) | (flat[1:] != flat[:-1])
        owners, flat = owners[keep], flat[keep]
        offsets = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(np.bincount(owners, minlength=len(self)), out=offsets[1:])
        return PixelSets(flat, offsets)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[int] | npt.NDArray[np.int64]]) -> PixelSets:
        counts = np.array([len(r) for r in rows], dtype=np.int64)
        flat = (np.concatenate([np.asarray(r, dtype=np.int64) for r in rows])
                if len(rows) else np.empty(0, dtype=np.int64))
        return cls(flat.astype(np.int64), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    @classmethod
    def concat(cls, parts: Sequence[PixelSets]) -> PixelSets:
        if not parts:
            return cls.from_rows([])
        flat = np.concatenate([p.flat for p in parts])
        counts = np.concatenate([np.diff(p.offsets) for p in parts])
        return cls(flat, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def _pixels_of(scheme: PixelScheme, encoded: list[bytes]) -> PixelSets:
    decode = ConvexPolygon.decode
    envelope = scheme.envelope
    spans: list[tuple[int, int]] = []
    counts = np.zeros(len(encoded), dtype=np.int64)
    for i, blob in enumerate(encoded):
        ranges = envelope(decode(blob)).ranges()
        spans += ranges
        counts[i] = len(ranges)
    # Expanding the ranges in numpy: a Python loop over range() took as long as sphgeom.
    bounds = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    owners = np.repeat(np.arange(len(encoded), dtype=np.int64), counts)
    per_row = np.bincount(owners, weights=bounds[:, 1] - bounds[:, 0], minlength=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(per_row.astype(np.int64), out=offsets[1:])
    return PixelSets(expand_ranges(bounds), offsets)


def add_uncontained(scheme: PixelScheme, outer: Sequence[bytes], inner: Sequence[bytes],
                    pixels: PixelSets, rows: Sequence[int] | None = None) -> PixelSets:
    """Add the pixels of each inner polygon that may not lie inside its outer one.

    Tiles are indexed by their outer polygon, which serves inner-polygon searches too as long
    as inner lies within outer; where it may not, the index gets the union of both covers.
    ``rows``, when given, are the rows to treat so (found by a cheaper test); otherwise each
    row is checked with sphgeom.
    """
    if rows is None:
        decode = ConvexPolygon.decode
        rows = [i for i in range(len(outer))
                if not decode(outer[i]).contains(decode(inner[i]))]
    if not rows:
        return pixels
    covers = pixel_coverage(scheme, [inner[i] for i in rows])
    return pixels.union(np.asarray(rows, dtype=np.int64), covers)


def _chunks(items: list[bytes]) -> Iterator[list[bytes]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def start_pixel_coverage(scheme: PixelScheme, encoded: list[bytes]
                         ) -> Callable[[], PixelSets]:
    """Start computing :func:`pixel_coverage` on worker processes; call the result to wait.

    The caller goes on (with database work, say) while the workers compute. Small inputs are
    computed at once.
    """
    if len(encoded) < POOL_THRESHOLD or (os.cpu_count() or 1) < 2:
        result = pixel_coverage(scheme, encoded)
        return lambda: result
    return _in_pool([(_pixels_of, (scheme, chunk)) for chunk in _chunks(encoded)])


def _in_pool(tasks: Sequence[tuple[Callable[..., PixelSets], tuple[Any, ...]]]
             ) -> Callable[[], PixelSets]:
    """Submit the tasks to a new process pool; the result waits, concatenates, shuts it down."""
    pool = process_pool(os.cpu_count() or 1)
    futures = [pool.submit(function, *arguments) for function, arguments in tasks]

    def wait() -> PixelSets:
        try:
            return PixelSets.concat([future.result() for future in futures])
        finally:
            pool.shutdown()

    return wait


def pixel_coverage(scheme: PixelScheme, encoded: list[bytes],
                   progress: Progress | None = None) -> PixelSets:
    """Pixels touched by each encoded polygon, computed on all cores for large inputs."""
    parts: list[PixelSets] = []
    workers = os.cpu_count() or 1
    if len(encoded) < POOL_THRESHOLD or workers < 2:
        for chunk in _chunks(encoded):
            parts.append(_pixels_of(scheme, chunk))
            if progress is not None:
                progress(len(chunk))
        return PixelSets.concat(parts)
    with process_pool(workers) as pool:
        chunks = list(_chunks(encoded))
        for chunk, pixels in zip(chunks, pool.map(_pixels_of, [scheme] * len(chunks), chunks),
                                 strict=True):
            parts.append(pixels)
            if progress is not None:
                progress(len(chunk))
    return PixelSets.concat(parts)


def start_polygon_coverage(scheme: PixelScheme, encoded: list[bytes],
                           vertices: npt.NDArray[np.float64],
                           neighbours: npt.NDArray[np.int64]) -> Callable[[], PixelSets]:
    """:func:`start_pixel_coverage` of polygons given also as (n, k, 3) unit vectors.

    On an HTM registry the covers are computed on whole arrays (:mod:`skyreg.geometry.
    htm_cover`, 6 to 9 µs of CPU per sky-map patch instead of ~22 µs through sphgeom one by one),
    in parts of ~``VERTEX_CHUNK`` polygons, cut where ``neighbours`` (a label per polygon:
    tract, visit) changes when it soon does; other schemes take sphgeom's path.
    """
    if scheme.scheme != "htm":
        return start_pixel_coverage(scheme, encoded)
    parts = _label_parts(neighbours, VERTEX_CHUNK)
    if len(encoded) < POOL_THRESHOLD or (os.cpu_count() or 1) < 2:
        result = PixelSets.concat([_vertex_covers(vertices[a:b], scheme.level, neighbours[a:b])
                                   for a, b in parts])
        return lambda: result
    return _in_pool([(_vertex_covers, (vertices[a:b], scheme.level, neighbours[a:b]))
                     for a, b in parts])


def polygon_coverage(scheme: PixelScheme, encoded: list[bytes],
                     vertices: npt.NDArray[np.float64],
                     neighbours: npt.NDArray[np.int64]) -> PixelSets:
    """:func:`start_polygon_coverage`, waited for."""
    return start_polygon_coverage(scheme, encoded, vertices, neighbours)()


#: Polygons per task of the whole-array HTM cover (~0.5 s of work each).
VERTEX_CHUNK = 100_000


def _vertex_covers(vertices: npt.NDArray[np.float64], level: int,
                   neighbours: npt.NDArray[np.int64]) -> PixelSets:
    flat, offsets = htm_polygon_covers(vertices, level, neighbours)
    return PixelSets(flat, offsets)


def _label_parts(labels: npt.NDArray[np.int64], size: int) -> list[tuple[int, int]]:
    """Consecutive ranges of about ``size`` rows, each ending where the label changes if it
    changes soon enough (labels only make the groups tighter: any cut gives the same covers)."""
    n = len(labels)
    changes = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    cuts = [0]
    for target in range(size, n, size):
        at = int(np.searchsorted(changes, target))
        cut = int(changes[at]) if at < len(changes) else n
        if cut - target > size // 10:
            cut = target
        if cuts[-1] < cut < n:
            cuts.append(cut)
    cuts.append(n)
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]
