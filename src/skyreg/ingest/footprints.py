"""Geometry stage of ingest: validate and encode footprints, compute their pixel coverage.

Validation and encoding are vectorised (numpy); pixel coverage needs one sphgeom call per
footprint (~30 µs at HTM 9), so large batches are spread over a process pool.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from lsst.sphgeom import ConvexPolygon

from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.polygons import encode_flat_polygons
from skyreg.ingest.problems import Problems

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
    encoded, errors = encode_flat_polygons(ra, dec, ra_offsets)
    bad_rows = [i for i, error in enumerate(errors) if error is not None]
    for row in bad_rows:
        message = errors[row]
        assert message is not None
        field = f"{ra_field}/{dec_field}"
        if message.startswith("ra: "):
            field, message = ra_field, message[4:]
        elif message.startswith("dec: "):
            field, message = dec_field, message[5:]
        problems.add(file, message, row=row, field=field)
    if bad_rows:
        return None
    return Footprints(
        encoded=encoded,  # type: ignore[arg-type]  # no None left once errors are ruled out
        ra=table.column(ra_field).to_pylist(),
        dec=table.column(dec_field).to_pylist(),
    )


def _pixels_of(scheme: PixelScheme, encoded: list[bytes]) -> list[list[int]]:
    decode = ConvexPolygon.decode
    pixels = scheme.pixels
    return [pixels(decode(blob)).tolist() for blob in encoded]


def add_uncontained(scheme: PixelScheme, outer: list[bytes], inner: list[bytes],
                    pixels: list[list[int]]) -> None:
    """Add the pixels of each inner polygon that is not inside its outer one.

    Tiles are indexed by their outer polygon, which serves inner-polygon searches too as long
    as inner lies within outer; for input where it does not, the index gets the union.
    """
    decode = ConvexPolygon.decode
    for i, (outer_blob, inner_blob) in enumerate(zip(outer, inner, strict=True)):
        inner_polygon = decode(inner_blob)
        if not decode(outer_blob).contains(inner_polygon):
            extra = scheme.pixels(inner_polygon).tolist()
            pixels[i] = sorted(set(pixels[i]).union(extra))


def _chunks(items: list[bytes]) -> Iterator[list[bytes]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def pixel_coverage(scheme: PixelScheme, encoded: list[bytes],
                   progress: Progress | None = None) -> list[list[int]]:
    """Pixels touched by each encoded polygon, computed on all cores for large inputs."""
    result: list[list[int]] = []
    workers = os.cpu_count() or 1
    if len(encoded) < POOL_THRESHOLD or workers < 2:
        for chunk in _chunks(encoded):
            result.extend(_pixels_of(scheme, chunk))
            if progress is not None:
                progress(len(chunk))
        return result
    # On Linux, fork: no re-import of __main__ (which fails for scripts read from stdin) and no
    # start-up cost. Workers only compute, and leave through os._exit, so the database
    # connections they inherit are never touched.
    context = get_context("fork" if sys.platform == "linux" else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        chunks = list(_chunks(encoded))
        for chunk, pixels in zip(chunks, pool.map(_pixels_of, [scheme] * len(chunks), chunks),
                                 strict=True):
            result.extend(pixels)
            if progress is not None:
                progress(len(chunk))
    return result
