"""An LSSTCam-like focal plane: 189 science CCDs plus corner guider and wavefront sensors.

The layout follows the public description of the LSST camera closely enough for realistic
spatial statistics (footprint size, chip gaps, raft gaps, the cross shape left by the corner
rafts), which is what a spatial registry's benchmarks are sensitive to. It is not a metrology
model: all CCDs are perfect rectangles on a flat tangent plane.

Geometry (10 µm pixels, plate scale 0.2"/pixel, i.e. 20"/mm):

* 5 x 5 raft grid with a 127 mm pitch; the four corner rafts hold no science CCDs.
* 3 x 3 CCDs per science raft with a 42.25 mm pitch; a CCD is 4072 x 4000 pixels.
* Corner rafts hold two guide sensors (SG0, SG1) and a wavefront sensor split in two halves
  (SW0, SW1); they are listed as detectors but never produce CCD footprints.

Detector ids follow LSSTCam's order: science CCDs 0..188 sorted by raft then sensor name, then
the corner-raft sensors from 189 on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .sphere import FloatArray, convex_hull_2d

__all__ = ["DETECTOR_MAX", "FocalPlane", "lsstcam_focal_plane"]

_MM_TO_DEG = 20.0 / 3600.0  # 0.2 arcsec per 10 µm pixel
_PIXEL_MM = 0.010
_RAFT_PITCH_MM = 127.0
_CCD_PITCH_MM = 42.25
_CCD_NX, _CCD_NY = 4072, 4000
_CORNER_RAFTS = ("R00", "R04", "R40", "R44")

DETECTOR_MAX = 205
"""Exclusive upper bound of detector ids: 189 science CCDs + 16 corner-raft sensors."""


@dataclass(frozen=True)
class FocalPlane:
    """Detector table of the camera, with boxes in tangent-plane degrees.

    ``x_min``..``y_max`` are axis-aligned boxes on the focal plane (x and y in degrees, before
    the sky rotation of a visit is applied). ``science`` marks the detectors that produce CCD
    footprints; by construction those are exactly ids ``0..n_science-1``.
    """

    detector: npt.NDArray[np.int64]
    full_name: list[str]
    raft: list[str]
    name_in_raft: list[str]
    purpose: list[str]
    x_min: FloatArray
    x_max: FloatArray
    y_min: FloatArray
    y_max: FloatArray

    @property
    def n_science(self) -> int:
        """Number of science CCDs (the detectors that get footprints)."""
        return sum(1 for p in self.purpose if p == "SCIENCE")

    def science_corners(self) -> tuple[FloatArray, FloatArray]:
        """Corners of the science CCDs as ``(x, y)`` arrays shaped ``(n_science, 4)``.

        The corner order goes around the box (counter-clockwise in x/y), so the projected
        polygon is a proper quadrilateral rather than a bow tie.
        """
        n = self.n_science
        x0, x1 = self.x_min[:n, None], self.x_max[:n, None]
        y0, y1 = self.y_min[:n, None], self.y_max[:n, None]
        xs = np.concatenate([x0, x1, x1, x0], axis=1)
        ys = np.concatenate([y0, y0, y1, y1], axis=1)
        return xs, ys

    def science_hull(self, grow: float = 2e-5) -> FloatArray:
        """Convex hull of all science CCD corners, scaled outwards by ``1 + grow``.

        Projected through the same TAN projection as the CCDs, this hull is the visit region.
        CCD corners on the hull's edges would otherwise sit exactly on the region boundary,
        and floating-point rounding could put them a hair outside; the relative growth of
        ``2e-5`` (about 0.1 arcsec at the edge of the field) makes containment robust for any
        reader while being negligible for queries.
        """
        xs, ys = self.science_corners()
        hull = convex_hull_2d(np.stack([xs.ravel(), ys.ravel()], axis=1))
        return hull * (1.0 + grow)


def _box(cx_mm: float, cy_mm: float, w_px: float, h_px: float) -> tuple[float, float, float, float]:
    """Focal-plane box (degrees) of a sensor centred at (cx, cy) mm with the given pixel size."""
    hw = 0.5 * w_px * _PIXEL_MM
    hh = 0.5 * h_px * _PIXEL_MM
    return (
        (cx_mm - hw) * _MM_TO_DEG,
        (cx_mm + hw) * _MM_TO_DEG,
        (cy_mm - hh) * _MM_TO_DEG,
        (cy_mm + hh) * _MM_TO_DEG,
    )


def lsstcam_focal_plane() -> FocalPlane:
    """Build the LSSTCam-like detector table (205 detectors, 189 of them science CCDs)."""
    names: list[tuple[str, str, str]] = []  # (raft, sensor, purpose)
    boxes: list[tuple[float, float, float, float]] = []

    for row in range(5):
        for col in range(5):
            raft = f"R{row}{col}"
            if raft in _CORNER_RAFTS:
                continue
            rx = (col - 2) * _RAFT_PITCH_MM
            ry = (row - 2) * _RAFT_PITCH_MM
            for srow in range(3):
                for scol in range(3):
                    cx = rx + (scol - 1) * _CCD_PITCH_MM
                    cy = ry + (srow - 1) * _CCD_PITCH_MM
                    names.append((raft, f"S{srow}{scol}", "SCIENCE"))
                    boxes.append(_box(cx, cy, _CCD_NX, _CCD_NY))

    # Corner rafts: in raft-local coordinates whose +u/+v axes point away from the centre of
    # the focal plane, the wavefront sensor sits in the outer quadrant and the two guiders on
    # either side of it, so the three never overlap and all stay inside the raft.
    half_pitch = 0.5 * _CCD_PITCH_MM
    for raft in _CORNER_RAFTS:
        row, col = int(raft[1]), int(raft[2])
        su = 1.0 if col > 2 else -1.0
        sv = 1.0 if row > 2 else -1.0
        rx = (col - 2) * _RAFT_PITCH_MM
        ry = (row - 2) * _RAFT_PITCH_MM
        local = [
            ("SG0", "GUIDER", -half_pitch, half_pitch, _CCD_NX, _CCD_NY),
            ("SG1", "GUIDER", half_pitch, -half_pitch, _CCD_NX, _CCD_NY),
            ("SW0", "WAVEFRONT", half_pitch, half_pitch + 0.25 * _CCD_NY * _PIXEL_MM,
             _CCD_NX, _CCD_NY / 2),
            ("SW1", "WAVEFRONT", half_pitch, half_pitch - 0.25 * _CCD_NY * _PIXEL_MM,
             _CCD_NX, _CCD_NY / 2),
        ]  # fmt: skip
        for sensor, purpose, u, v, w, h in local:
            names.append((raft, sensor, purpose))
            boxes.append(_box(rx + su * u, ry + sv * v, w, h))

    box_arr = np.array(boxes, dtype=np.float64)
    return FocalPlane(
        detector=np.arange(len(names), dtype=np.int64),
        full_name=[f"{r}_{s}" for r, s, _ in names],
        raft=[r for r, _, _ in names],
        name_in_raft=[s for _, s, _ in names],
        purpose=[p for _, _, p in names],
        x_min=box_arr[:, 0],
        x_max=box_arr[:, 1],
        y_min=box_arr[:, 2],
        y_max=box_arr[:, 3],
    )
