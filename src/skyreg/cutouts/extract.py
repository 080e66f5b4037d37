"""Cut the planned stamps out of one file: open once, one world -> pixel call, read boxes.

The file is opened by walking its headers (no pixel data read); each plane is then read box
by box (memory-mapped slices, or fitsio tile subsets for compressed planes), straight into
one preallocated block per plane and stamp size, so the stamps of a file cost one copy each
and no per-stamp allocation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS
from numpy.lib.stride_tricks import sliding_window_view

from skyreg.cutouts.geometry import (
    Boxes,
    candidate_box,
    region_mask,
    stamp_boxes,
    tight_box,
    world_to_pixel,
)
from skyreg.cutouts.plan import CoaddId, FileTask
from skyreg.cutouts.planes import FileLayout, Plane, PlaneReader, layout_wcs, read_layout

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass
class StampBlock:
    """Position stamps of one file that share a size; arrays hold the *requested* boxes.

    ``planes[name][k]`` is stamp ``k``'s full requested box, with the plane's fill value
    (NaN, or 0 for integers) outside the image; ``covered`` is the part inside the image.
    """

    targets: IntArray
    x: FloatArray  # positions in the file's pixels (0-based)
    y: FloatArray
    requested: Boxes
    covered: Boxes
    planes: dict[str, npt.NDArray[Any]]


@dataclass
class RegionStamp:
    """A region target's pixels in one file: bounding rectangle ``box`` and the mask in it.

    ``planes[name]`` is the rectangle (``sparse`` False) or the values of the selected pixels
    only, in row-major order of the mask (``sparse`` True).
    """

    target: int
    box: Boxes
    mask: BoolArray
    planes: dict[str, npt.NDArray[Any]]
    sparse: bool = False


@dataclass
class FileStamps:
    """All stamps cut from one file, with what is needed to describe them."""

    coadd: CoaddId
    uri: str
    hdu: int
    wcs: WCS
    width: int
    height: int
    plane_names: list[str]
    #: The tract pixel of this file's pixel (0, 0) (the patch's outer box origin).
    origin: tuple[int, int]
    blocks: list[StampBlock] = field(default_factory=list)
    regions: list[RegionStamp] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(b.targets) for b in self.blocks) + len(self.regions)


def cut_file(task: FileTask, path: str, sparse: bool = False) -> FileStamps:
    """The stamps of ``task`` from the local file ``path``; raises LayoutError/OSError."""
    layout = read_layout(path, task.hdu)
    wcs = layout_wcs(layout)
    result = FileStamps(task.coadd, task.uri, task.hdu, wcs, layout.width, layout.height,
                        [p.name for p in layout.planes], task.origin)
    reader = PlaneReader(layout)
    try:
        if task.targets.size:
            result.blocks = _position_blocks(task, layout, wcs, reader)
        for target, region in task.regions:
            box = candidate_box(region, wcs, layout.width, layout.height)
            if box is None:
                continue
            mask = region_mask(region, wcs, box)
            tight = tight_box(mask, box)
            if tight is None:
                continue
            mask = mask[int(tight.y0[0] - box.y0[0]):int(tight.y1[0] - box.y0[0]),
                        int(tight.x0[0] - box.x0[0]):int(tight.x1[0] - box.x0[0])]
            result.regions.append(_region_stamp(target, tight, mask, layout, reader, sparse))
        for piece in task.masks:
            h, w = piece.mask.shape
            box = Boxes(*(np.array([v], dtype=np.int64) for v in
                          (piece.x0, piece.y0, piece.x0 + w, piece.y0 + h)))
            clipped = box.clip(layout.width, layout.height)
            if not clipped.nonempty[0]:
                continue
            sub = piece.mask[int(clipped.y0[0] - piece.y0):int(clipped.y1[0] - piece.y0),
                             int(clipped.x0[0] - piece.x0):int(clipped.x1[0] - piece.x0)]
            tight = tight_box(sub, clipped)
            if tight is None:
                continue
            sub = sub[int(tight.y0[0] - clipped.y0[0]):int(tight.y1[0] - clipped.y0[0]),
                      int(tight.x0[0] - clipped.x0[0]):int(tight.x1[0] - clipped.x0[0])]
            result.regions.append(_region_stamp(piece.target, tight, sub, layout, reader,
                                                sparse))
    finally:
        reader.close()
    return result


def _position_blocks(task: FileTask, layout: FileLayout, wcs: WCS, reader: PlaneReader
                     ) -> list[StampBlock]:
    x, y = world_to_pixel(wcs, task.ra, task.dec)
    requested = stamp_boxes(x, y, task.width, task.height)
    covered = requested.clip(layout.width, layout.height)
    keep = covered.nonempty
    blocks = []
    sizes = np.stack([task.width, task.height], axis=1)
    for w, h in np.unique(sizes[keep], axis=0).tolist():
        rows = np.flatnonzero(keep & (task.width == w) & (task.height == h))
        req, cov = requested.take(rows), covered.take(rows)
        planes = {}
        for plane in layout.planes:
            planes[plane.name] = _read_block(reader, plane, req, cov, int(h), int(w))
            # Unmap at once: the mapped pages of a plane count in the process's RSS.
            reader.release(plane)
        blocks.append(StampBlock(task.targets[rows], x[rows], y[rows], req, cov, planes))
    return blocks


def _read_block(reader: PlaneReader, plane: Plane, req: Boxes, cov: Boxes, h: int, w: int
                ) -> npt.NDArray[Any]:
    """(n, h, w) array of the requested boxes of one plane, fill value outside the image.

    Stamps wholly inside an uncompressed plane are gathered by one fancy index into a
    sliding-window view of the memory map (one C loop copying every stamp); the others are
    copied box by box.
    """
    n = len(req)
    partial = ((cov.x0 != req.x0) | (cov.y0 != req.y0) | (cov.x1 != req.x1)
               | (cov.y1 != req.y1))
    simple = not plane.compressed and plane.bscale == 1.0 and plane.bzero == 0.0
    if simple:
        source = reader.array(plane)
        windows = sliding_window_view(source, (h, w)) if h <= plane.height and w <= plane.width \
            else None
        if windows is not None and not partial.any():
            return np.asarray(windows[req.y0, req.x0])
        block = np.empty((n, h, w), dtype=plane.dtype)
        inside = np.flatnonzero(~partial)
        if windows is not None and inside.size:
            block[inside] = windows[req.y0[inside], req.x0[inside]]
        rows = np.flatnonzero(partial)
    else:
        block = np.empty((n, h, w), dtype=plane.dtype)
        rows = np.arange(n)
    if partial.any():
        block[partial] = plane.fill
    if plane.compressed:
        _read_compressed(reader, plane, block, req, cov)
        return block
    columns = (cov.x0[rows].tolist(), cov.y0[rows].tolist(), cov.x1[rows].tolist(),
               cov.y1[rows].tolist(), (cov.x0 - req.x0)[rows].tolist(),
               (cov.y0 - req.y0)[rows].tolist())
    for k, x0, y0, x1, y1, sx, sy in zip(rows.tolist(), *columns, strict=True):
        reader.read_into(plane, block[k, sy:sy + y1 - y0, sx:sx + x1 - x0], x0, y0, x1, y1)
    return block


#: Stamps of a compressed plane are gathered per bin of this many pixels (or a tile, if
#: larger), which bounds the memory of one gathering.
BIN_PIXELS = 512


def _tile_rectangles(plane: Plane, x0: Any, y0: Any, x1: Any, y1: Any
                     ) -> list[tuple[int, int, int, int]]:
    """Rectangles (x0, y0, x1, y1) of whole tiles covering every tile the boxes touch, once.

    Runs of neighbouring tiles in a tile row become one rectangle, and rows with the same runs
    are merged, so a dense group costs few reads and each tile is decompressed once.
    """
    tw, th = plane.tile
    rows: dict[int, set[int]] = {}
    for ax0, ay0, ax1, ay1 in zip((x0 // tw).tolist(), (y0 // th).tolist(),
                                  ((x1 - 1) // tw).tolist(), ((y1 - 1) // th).tolist(),
                                  strict=True):
        for ty in range(ay0, ay1 + 1):
            rows.setdefault(ty, set()).update(range(ax0, ax1 + 1))
    rectangles: list[tuple[int, int, int, int]] = []  # tx0, ty0, tx1, ty1 (inclusive)
    active: dict[tuple[int, int], int] = {}  # run of tiles -> its first tile row
    last = -2
    for ty in sorted(rows):
        runs = set(_runs(sorted(rows[ty])))
        for run in list(active):
            if ty != last + 1 or run not in runs:
                rectangles.append((run[0], active.pop(run), run[1], last))
        for run in runs:
            active.setdefault(run, ty)
        last = ty
    rectangles += [(run[0], ty0, run[1], last) for run, ty0 in active.items()]
    return [(tx0 * tw, ty0 * th, min((tx1 + 1) * tw, plane.width),
             min((ty1 + 1) * th, plane.height)) for tx0, ty0, tx1, ty1 in rectangles]


def _runs(tiles: list[int]) -> list[tuple[int, int]]:
    """Runs (first, last) of consecutive integers in a sorted list."""
    runs: list[tuple[int, int]] = []
    for tile in tiles:
        if runs and tile == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], tile)
        else:
            runs.append((tile, tile))
    return runs


def _read_compressed(reader: PlaneReader, plane: Plane, block: npt.NDArray[Any], req: Boxes,
                     cov: Boxes) -> None:
    """Fill ``block`` from a tile-compressed plane, decompressing every needed tile once.

    Every read decompresses each tile its box touches, so stamps of a dense group read one
    by one would decompress shared tiles many times (and, in row-tiled images, whole rows per
    stamp). Instead the stamps are binned by position; per bin, the tiles any stamp touches
    are read as few whole-tile rectangles into a canvas of the bin's extent, and the stamps
    are sliced out of it. A read is never larger than a bin plus a stamp.
    """
    tw, th = plane.tile
    bin_x, bin_y = max(BIN_PIXELS, tw), max(BIN_PIXELS, th)
    keys = (cov.y0 // bin_y) * (plane.width // bin_x + 1) + cov.x0 // bin_x
    order = np.argsort(keys, kind="stable")
    for members in np.split(order, np.flatnonzero(np.diff(keys[order])) + 1):
        m = members
        rectangles = _tile_rectangles(plane, cov.x0[m], cov.y0[m], cov.x1[m], cov.y1[m])
        ux0, uy0 = min(r[0] for r in rectangles), min(r[1] for r in rectangles)
        ux1, uy1 = max(r[2] for r in rectangles), max(r[3] for r in rectangles)
        canvas = np.empty((uy1 - uy0, ux1 - ux0), dtype=plane.dtype)
        for x0, y0, x1, y1 in rectangles:
            reader.read_into(plane, canvas[y0 - uy0:y1 - uy0, x0 - ux0:x1 - ux0], x0, y0, x1,
                             y1)
        for k, x0, y0, x1, y1, rx, ry in zip(m.tolist(), cov.x0[m].tolist(),
                                             cov.y0[m].tolist(), cov.x1[m].tolist(),
                                             cov.y1[m].tolist(), req.x0[m].tolist(),
                                             req.y0[m].tolist(), strict=True):
            block[k, y0 - ry:y1 - ry, x0 - rx:x1 - rx] = canvas[y0 - uy0:y1 - uy0,
                                                                x0 - ux0:x1 - ux0]


def _region_stamp(target: int, box: Boxes, mask: BoolArray, layout: FileLayout,
                  reader: PlaneReader, sparse: bool) -> RegionStamp:
    x0, y0, x1, y1 = (int(v[0]) for v in (box.x0, box.y0, box.x1, box.y1))
    planes: dict[str, npt.NDArray[Any]] = {}
    for plane in layout.planes:
        out = np.empty((y1 - y0, x1 - x0), dtype=plane.dtype)
        reader.read_into(plane, out, x0, y0, x1, y1)
        planes[plane.name] = out[mask] if sparse else out
    return RegionStamp(target, box, mask, planes, sparse)
