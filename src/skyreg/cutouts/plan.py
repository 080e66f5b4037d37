"""The work plan of a stamp request: which (target, coadd file) pairs, grouped by file.

Planning needs the registry only (no file is opened):

1. targets are grouped on the sky (an HTM level-7 trixel per group, or the caller's groups);
   each group's bounding circle -- its positions grown by the stamps' half diagonal -- is
   covered by the registry's pixel index, and one statement returns every coadd file of every
   patch indexed in those pixels (:mod:`skyreg.cutouts.lookup`);
2. in the pixel frame of each candidate tract, all positions are projected at once (the
   tract's registered TAN WCS, in numpy) and each stamp box is tested against the patches'
   outer boxes -- exact on the pixel grid, so a pair is planned if and only if the patch's
   coadd holds a pixel of the stamp; with ``inner=True`` only the patch whose inner box holds
   the position, in the tract whose inner polygon holds it, is used;
3. the pairs are gathered into one :class:`FileTask` per file, so each file is opened once and
   its world -> pixel transform is one vectorised call.

Regions are planned from their outline (bounding rectangle in each tract's frame); whether a
piece selects any pixel is decided exactly when its file is read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from lsst.sphgeom import Angle, Circle, HtmPixelization, LonLat, Region, UnitVector3d

from skyreg.cutouts.errors import StampRequestError
from skyreg.cutouts.geometry import Boxes, stamp_boxes
from skyreg.cutouts.lookup import CoaddLookup, FileRows, TractFrame
from skyreg.cutouts.regions import PixelMask, contains, outline
from skyreg.cutouts.targets import Targets, angular_to_pixels
from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.polygons import unit_vectors
from skyreg.skymaps.tan_wcs import pixel_to_sky, sky_to_pixel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Level of the HTM trixels that group targets for the index lookup (~0.4 degrees).
GROUP_LEVEL = 7
#: Pixel ranges per group cover (coarser covers stay conservative).
MAX_GROUP_RANGES = 16


class CoaddId(NamedTuple):
    """The data ID of a coadd file."""

    dataset_type: str
    skymap: str
    tract: int
    patch: int
    band: str


@dataclass
class MaskPiece:
    """The part of a pixel-mask target inside one coadd file, in that file's pixels."""

    target: int
    x0: int
    y0: int
    mask: npt.NDArray[np.bool_]


@dataclass
class FileTask:
    """Everything needed to cut the stamps of one file; picklable (sent to Dask workers)."""

    coadd: CoaddId
    uri: str
    hdu: int
    size_bytes: int | None
    checksum: str | None
    #: Patch outer box origin in tract pixels (the file's pixel (0, 0)).
    origin: tuple[int, int]
    targets: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ra: FloatArray = field(default_factory=lambda: np.zeros(0))
    dec: FloatArray = field(default_factory=lambda: np.zeros(0))
    width: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    height: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    regions: list[tuple[int, Region]] = field(default_factory=list)
    masks: list[MaskPiece] = field(default_factory=list)

    @property
    def count(self) -> int:
        return int(self.targets.shape[0]) + len(self.regions) + len(self.masks)


@dataclass
class StampPlan:
    """The planned work: one task per file, and how long planning took."""

    targets: Targets
    tasks: list[FileTask]
    seconds: float = 0.0
    candidates: int = 0

    @property
    def pairs(self) -> int:
        """Planned (target, file) pairs."""
        return sum(task.count for task in self.tasks)

    def by_patch(self) -> list[list[FileTask]]:
        """Tasks grouped by patch: the coadds of one patch share targets and a WCS."""
        groups: dict[tuple[str, int, int], list[FileTask]] = {}
        for task in self.tasks:
            groups.setdefault(task.coadd[1:4], []).append(task)
        return list(groups.values())


def _group_circles(targets: Targets, radius_deg: FloatArray) -> list[Circle]:
    """Bounding circles of target groups: caller's groups, or HTM trixels."""
    xyz = unit_vectors(targets.ra, targets.dec)
    if targets.groups is not None:
        labels = targets.groups
    else:
        htm = HtmPixelization(GROUP_LEVEL)
        labels = np.array([htm.index(UnitVector3d(*v)) for v in xyz.tolist()], dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    circles = []
    for members in np.split(order, bounds):
        centre = xyz[members].sum(axis=0)
        norm = float(np.linalg.norm(centre))
        centre = centre / norm if norm > 0 else xyz[members[0]]
        spread = np.degrees(np.arccos(np.clip(xyz[members] @ centre, -1.0, 1.0)))
        opening = float((spread + radius_deg[members]).max())
        circles.append(Circle(UnitVector3d(*centre.tolist()),
                              Angle.fromDegrees(min(opening * (1 + 1e-9) + 1e-9, 180.0))))
    return circles


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _project(frame: TractFrame, ra: FloatArray, dec: FloatArray) -> tuple[FloatArray,
                                                                          FloatArray]:
    return sky_to_pixel(ra, dec, frame.crval[0], frame.crval[1], frame.crpix[0],
                        frame.crpix[1], frame.cd)


def make_plan(
    lookup: CoaddLookup,
    scheme: PixelScheme,
    targets: Targets,
    *,
    dataset_types: list[str],
    bands: list[str] | None,
    skymaps: list[str] | None,
    inner: bool,
) -> StampPlan:
    """Plan the stamps of ``targets``: see the module docstring."""
    started = time.perf_counter()
    known = lookup.patch_types()
    for name in dataset_types:
        if known.get(name) != "patch":
            patch_types = ", ".join(sorted(n for n, d in known.items() if d == "patch"))
            what = "is not registered" if name not in known else "is not a patch (coadd) type"
            raise StampRequestError(f"dataset type {name!r} {what} (coadd types: "
                                    f"{patch_types or 'none'})")
    scales = lookup.pixel_scales()
    if skymaps is not None:
        for name in skymaps:
            if name not in scales:
                raise StampRequestError(f"sky map {name!r} is not registered with a pixel grid "
                                        f"(known: {', '.join(sorted(scales)) or 'none'})")
    usable = [scales[name] for name in (skymaps or scales)]
    if not usable:
        return StampPlan(targets, [], time.perf_counter() - started)
    if targets.angular is not None:
        if len(usable) != 1:
            raise StampRequestError("size as an angle needs one sky map: pass skymap=")
        targets.width = angular_to_pixels(targets.angular[0], usable[0])
        targets.height = angular_to_pixels(targets.angular[1], usable[0])
    circles = _target_circles(targets, max(usable), lookup)
    ranges: list[tuple[int, int]] = []
    for circle in circles:
        ranges.extend(scheme.ranges(circle, MAX_GROUP_RANGES))
    files = lookup.candidate_files(_merge(ranges), dataset_types, bands, skymaps)
    tasks = _select(lookup, targets, files, inner)
    return StampPlan(targets, tasks, time.perf_counter() - started, len(files))


def _target_circles(targets: Targets, scale_deg: float, lookup: CoaddLookup) -> list[Circle]:
    circles: list[Circle] = []
    positions = np.flatnonzero(targets.kind == 0)
    if positions.size:
        half_diagonal = 0.5 * np.hypot(targets.width, targets.height) * scale_deg
        sub = Targets(targets.ra[positions], targets.dec[positions], targets.width[positions],
                      targets.height[positions], targets.kind[positions],
                      groups=None if targets.groups is None else targets.groups[positions])
        circles.extend(_group_circles(sub, half_diagonal[positions] + 2 * scale_deg))
    for index, region in targets.regions.items():
        if isinstance(region, PixelMask):
            circles.append(_mask_circle(lookup, region, index))
        else:
            bound = region.getBoundingCircle()
            circles.append(Circle(bound.getCenter(), Angle.fromDegrees(min(
                180.0, bound.getOpeningAngle().asDegrees() + 2 * scale_deg))))
    return circles


def _mask_frame(lookup: CoaddLookup, mask: PixelMask, index: int) -> TractFrame:
    frames = lookup.tract_frames(mask.skymap, [int(mask.tract)])
    if int(mask.tract) not in frames:
        raise StampRequestError(f"targets[{index}]: tract {mask.tract} of sky map "
                                f"{mask.skymap!r} is not registered")
    return frames[int(mask.tract)]


def _mask_circle(lookup: CoaddLookup, mask: PixelMask, index: int) -> Circle:
    frame = _mask_frame(lookup, mask, index)
    x0, y0 = _mask_origin(lookup, mask, index)
    h, w = mask.mask.shape
    xs = np.array([x0 - 0.5, x0 + w - 0.5, x0 + w - 0.5, x0 - 0.5, x0 + (w - 1) / 2])
    ys = np.array([y0 - 0.5, y0 - 0.5, y0 + h - 0.5, y0 + h - 0.5, y0 + (h - 1) / 2])
    ra, dec = pixel_to_sky(xs, ys, frame.crval[0], frame.crval[1], frame.crpix[0],
                           frame.crpix[1], frame.cd)
    centre = UnitVector3d(LonLat.fromDegrees(float(ra[4]), float(dec[4])))
    xyz = unit_vectors(ra[:4], dec[:4])
    c = np.array([centre.x(), centre.y(), centre.z()])
    opening = float(np.degrees(np.arccos(np.clip(xyz @ c, -1.0, 1.0))).max())
    return Circle(centre, Angle.fromDegrees(opening * 1.01 + 1e-6))


def _mask_origin(lookup: CoaddLookup, mask: PixelMask, index: int) -> tuple[int, int]:
    """The mask's first pixel in tract pixels."""
    if mask.patch is None:
        return int(mask.x0), int(mask.y0)
    try:
        wcs, _ = lookup.patch_frame(mask.skymap, int(mask.tract), int(mask.patch))
    except Exception as err:
        raise StampRequestError(f"targets[{index}]: {err}") from None
    frame = _mask_frame(lookup, mask, index)
    ox = round(frame.crpix[0] - wcs.wcs.crpix[0])
    oy = round(frame.crpix[1] - wcs.wcs.crpix[1])
    return ox + int(mask.x0), oy + int(mask.y0)


def _select(lookup: CoaddLookup, targets: Targets, files: FileRows, inner: bool
            ) -> list[FileTask]:
    """Exact (target, file) pairs in each candidate tract's pixel frame."""
    if not len(files):
        return []
    # One row per candidate patch (its files follow it in `files`, sorted by patch).
    keys = list(zip(files.skymap.tolist(), files.tract.tolist(), files.patch.tolist(),
                    strict=True))
    first = np.flatnonzero([i == 0 or keys[i] != keys[i - 1] for i in range(len(keys))])
    ends = np.append(first[1:], len(keys))
    patch_keys = [keys[i] for i in first]
    outer = Boxes(*(files.outer[first, k] for k in range(4)))
    inner_boxes = Boxes(*(files.inner[first, k] for k in range(4)))
    positions = np.flatnonzero(targets.kind == 0)
    # pairs[patch row] -> target indices
    pairs: dict[int, list[IntArray]] = {}
    region_pairs: dict[int, list[tuple[int, Region]]] = {}
    mask_pairs: dict[int, list[MaskPiece]] = {}
    owner = np.full(len(targets), -1, dtype=np.int64)  # inner mode: chosen patch row
    by_tract: dict[tuple[str, int], list[int]] = {}
    for row, key in enumerate(patch_keys):
        by_tract.setdefault((key[0], key[1]), []).append(row)
    for (skymap, tract), rows_list in sorted(by_tract.items()):
        rows = np.asarray(rows_list, dtype=np.int64)
        frame = lookup.tract_frames(skymap, [tract])[tract]
        boxes_o, boxes_i = outer.take(rows), inner_boxes.take(rows)
        if positions.size:
            x, y = _project(frame, targets.ra[positions], targets.dec[positions])
            if inner:
                _inner_pairs(targets, positions, x, y, frame, rows, boxes_i, owner)
            else:
                stamps = stamp_boxes(x, y, targets.width[positions], targets.height[positions])
                hit = _overlaps(stamps, boxes_o)  # (targets, patches)
                for k in np.flatnonzero(hit.any(axis=0)).tolist():
                    pairs.setdefault(int(rows[k]), []).append(positions[hit[:, k]])
        for index, region in targets.regions.items():
            if isinstance(region, PixelMask):
                if (region.skymap, int(region.tract)) == (skymap, tract):
                    _mask_pieces(lookup, region, index, rows, boxes_o, mask_pairs)
                continue
            _region_pairs(region, index, frame, rows, boxes_o, boxes_i, inner, region_pairs)
    if inner:
        for row in np.unique(owner[owner >= 0]).tolist():
            pairs.setdefault(int(row), []).append(np.flatnonzero(owner == row))
    tasks: list[FileTask] = []
    for row in range(len(patch_keys)):
        if row not in pairs and row not in region_pairs and row not in mask_pairs:
            continue
        chosen = (np.unique(np.concatenate(pairs[row])) if row in pairs
                  else np.zeros(0, dtype=np.int64))
        skymap, tract, patch = patch_keys[row]
        for f in range(int(first[row]), int(ends[row])):
            tasks.append(FileTask(
                CoaddId(str(files.dataset_type[f]), skymap, int(tract), int(patch),
                        str(files.band[f])),
                files.uri[f], int(files.hdu[f]), files.size_bytes[f], files.checksum[f],
                (int(files.outer[f, 0]), int(files.outer[f, 1])),
                chosen, targets.ra[chosen], targets.dec[chosen], targets.width[chosen],
                targets.height[chosen], list(region_pairs.get(row, [])),
                list(mask_pairs.get(row, []))))
    return tasks


def _overlaps(stamps: Boxes, patches: Boxes) -> npt.NDArray[np.bool_]:
    """(n_stamps, n_patches): whether each stamp box shares a pixel with each patch box."""
    return np.asarray(
        (stamps.x0[:, None] < patches.x1[None, :]) & (stamps.x1[:, None] > patches.x0[None, :])
        & (stamps.y0[:, None] < patches.y1[None, :]) & (stamps.y1[:, None] > patches.y0[None, :]),
        dtype=bool)


def _inner_pairs(targets: Targets, positions: IntArray, x: FloatArray, y: FloatArray,
                 frame: TractFrame, rows: IntArray, boxes: Boxes, owner: IntArray) -> None:
    """Give each position not yet owned the patch of this tract whose inner box holds it."""
    free = owner[positions] < 0
    if not free.any():
        return
    in_tract = free & contains(frame.inner, targets.ra[positions], targets.dec[positions])
    with np.errstate(invalid="ignore"):
        inside = ((x[:, None] >= boxes.x0[None, :] - 0.5) & (x[:, None] < boxes.x1[None, :] - 0.5)
                  & (y[:, None] >= boxes.y0[None, :] - 0.5) & (y[:, None] < boxes.y1[None, :] - 0.5)
                  & in_tract[:, None])
    hit = inside.any(axis=1)
    owner[positions[hit]] = rows[np.argmax(inside[hit], axis=1)]


def _region_pairs(region: Region, index: int, frame: TractFrame, rows: IntArray, outer: Boxes,
                  inner_boxes: Boxes, inner: bool,
                  region_pairs: dict[int, list[tuple[int, Region]]]) -> None:
    if inner:
        centre = region.getBoundingCircle().getCenter()
        ll = LonLat(centre)
        ra, dec = np.array([ll.getLon().asDegrees() % 360.0]), np.array([ll.getLat().asDegrees()])
        if not contains(frame.inner, ra, dec)[0]:
            return
        x, y = _project(frame, ra, dec)
        inside = ((x[0] >= inner_boxes.x0 - 0.5) & (x[0] < inner_boxes.x1 - 0.5)
                  & (y[0] >= inner_boxes.y0 - 0.5) & (y[0] < inner_boxes.y1 - 0.5))
        if inside.any():
            already = any(t == index for chosen in region_pairs.values() for t, _ in chosen)
            if not already:
                region_pairs.setdefault(int(rows[np.argmax(inside)]), []).append((index, region))
        return
    ra, dec = outline(region)
    x, y = _project(frame, ra, dec)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        hit = np.ones(len(rows), dtype=bool)  # the outline leaves the projection: all patches
    else:
        box = Boxes(np.array([int(np.floor(x.min() + 0.5)) - 2]),
                    np.array([int(np.floor(y.min() + 0.5)) - 2]),
                    np.array([int(np.floor(x.max() + 0.5)) + 3]),
                    np.array([int(np.floor(y.max() + 0.5)) + 3]))
        hit = _overlaps(box, outer)[0]
        # A region holding a whole patch (its outline all outside the patch) is caught by
        # the patch's centre.
        cx = (outer.x0 + outer.x1 - 1) / 2.0
        cy = (outer.y0 + outer.y1 - 1) / 2.0
        c_ra, c_dec = pixel_to_sky(cx, cy, frame.crval[0], frame.crval[1], frame.crpix[0],
                                   frame.crpix[1], frame.cd)
        hit |= contains(region, c_ra, c_dec)
    for k in np.flatnonzero(hit).tolist():
        region_pairs.setdefault(int(rows[k]), []).append((index, region))


def _mask_pieces(lookup: CoaddLookup, mask: PixelMask, index: int, rows: IntArray,
                 outer: Boxes, mask_pairs: dict[int, list[MaskPiece]]) -> None:
    x0, y0 = _mask_origin(lookup, mask, index)
    h, w = mask.mask.shape
    for k in range(len(rows)):
        bx0, by0 = max(x0, int(outer.x0[k])), max(y0, int(outer.y0[k]))
        bx1, by1 = min(x0 + w, int(outer.x1[k])), min(y0 + h, int(outer.y1[k]))
        if bx1 <= bx0 or by1 <= by0:
            continue
        piece = mask.mask[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0]
        if not piece.any():
            continue
        mask_pairs.setdefault(int(rows[k]), []).append(MaskPiece(
            index, bx0 - int(outer.x0[k]), by0 - int(outer.y0[k]), piece.copy()))


def plan_summary(plan: StampPlan) -> dict[str, Any]:
    """Counts for reports: targets, files, pairs, planning time."""
    return {"targets": len(plan.targets), "files": len(plan.tasks), "pairs": plan.pairs,
            "plan_seconds": plan.seconds}
