"""matplotlib figures of footprints and coverage, from plain data (no database).

Two kinds of map:

* **all-sky** (Mollweide, RA increasing to the left, RA 180° in the middle by default): the
  coverage count map of a whole survey, cells coloured by their number of visits;
* **tangent plane** (astropy WCSAxes on a TAN WCS — the tract's own WCS for a tract or a
  patch): footprints of CCDs, patches and tracts, or the depth map of a tract.

Figures are made with :class:`matplotlib.figure.Figure` directly (no pyplot, so no GUI
backend and no global state); ``fig.savefig("x.png")`` or ``.pdf`` writes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.wcs import WCS
from matplotlib import colormaps
from matplotlib.collections import PolyCollection
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon

from skyreg.geometry.sky_data import CoverageMap, Footprint, vertices_of
from skyreg.plots.colors import band_color
from skyreg.plots.sphere import (
    allsky_pieces,
    angular_distance,
    densify,
    radec,
    unit_vectors,
)

#: Footprints farther than this from a tangent plane's centre are not drawn (TAN diverges).
MAX_TANGENT_DISTANCE_DEG = 80.0


def _grid(count: int) -> tuple[int, int]:
    columns = min(count, 3)
    return math.ceil(count / columns), columns


# -- all-sky ------------------------------------------------------------------------------------


def _allsky_axes(fig: Figure, rows: int, columns: int, index: int, center_ra: float) -> Any:
    ax = fig.add_subplot(rows, columns, index, projection="mollweide")
    ticks = np.arange(-150, 181, 30)
    ax.set_xticks(np.radians(ticks))
    ax.set_xticklabels([f"{(center_ra - t) % 360:.0f}°" for t in ticks], fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(True, linewidth=0.4, alpha=0.5)
    return ax


def allsky_collection(rings: Sequence[tuple[Sequence[float], Sequence[float]]],
                      colors: Sequence[Any], center_ra: float = 180.0, **style: Any
                      ) -> PolyCollection:
    """One PolyCollection (radians, for a Mollweide/Hammer axes) of many spherical polygons;
    each polygon may become several paths (seam, poles), all with its colour."""
    paths: list[np.ndarray] = []
    facecolors: list[Any] = []
    for (ra, dec), color in zip(rings, colors, strict=True):
        for piece in allsky_pieces(ra, dec, center_ra):
            paths.append(np.radians(piece))
            facecolors.append(color)
    return PolyCollection(paths, facecolors=facecolors, **style)


def allsky_coverage_figure(coverage: CoverageMap, bands: Sequence[str | None], *,
                           center_ra: float = 180.0, title: str | None = None,
                           cmap: str = "viridis") -> Figure:
    """One Mollweide panel per band (None: every band) of visits per coverage cell."""
    rows, columns = _grid(len(bands))
    fig = Figure(figsize=(5.2 * columns, 3.2 * rows), layout="constrained")
    vertices = [vertices_of(coverage.cell_polygon(int(c))) for c in coverage.cells]
    for index, band in enumerate(bands, start=1):
        ax = _allsky_axes(fig, rows, columns, index, center_ra)
        counts = coverage.band_counts(band)
        keep = np.flatnonzero(counts > 0)
        top = max(1, int(counts.max())) if len(counts) else 1
        norm = Normalize(0, top)
        palette = colormaps[cmap]
        collection = allsky_collection([vertices[i] for i in keep],
                                       [palette(norm(counts[i])) for i in keep], center_ra,
                                       edgecolors="none", linewidths=0)
        collection.set_gid(f"coverage-{band or 'all'}")
        ax.add_collection(collection)
        mappable = _scalar_mappable(palette, norm)
        fig.colorbar(mappable, ax=ax, orientation="horizontal", shrink=0.6, pad=0.04,
                     label=f"visits ({band or 'all bands'})")
        ax.set_title(f"{band or 'all bands'}: {len(keep)} cells ({coverage.scheme} "
                     f"level {coverage.level})", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def _scalar_mappable(cmap: Any, norm: Normalize) -> Any:
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


# -- tangent plane ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """A tangent-plane frame: a WCS and the pixel box (x0, x1, y0, y1) to show."""

    wcs: WCS
    box: tuple[float, float, float, float]

    @property
    def center(self) -> tuple[float, float]:
        ra, dec = self.wcs.wcs.crval
        return float(ra), float(dec)


def tan_wcs(ra: float, dec: float, scale_deg: float) -> WCS:
    """A TAN WCS centred on (ra, dec), RA increasing to the left, ``scale_deg`` per pixel."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [0.0, 0.0]
    wcs.wcs.cdelt = [-scale_deg, scale_deg]
    return wcs


def wcs_from_cards(cards: Mapping[str, Any]) -> WCS:
    """A WCS from FITS keywords (a tract's stored WCS)."""
    from astropy.io import fits

    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    return WCS(header)


def project(frame: Frame, ra: Sequence[float] | np.ndarray, dec: Sequence[float] | np.ndarray
            ) -> np.ndarray:
    """(n, 2) pixel coordinates (0-based) of RA/Dec points in the frame's WCS."""
    x, y = frame.wcs.wcs_world2pix(np.asarray(ra, float), np.asarray(dec, float), 0)
    return np.column_stack([x, y])


def plane_path(frame: Frame, ra: Sequence[float], dec: Sequence[float],
               step_deg: float) -> np.ndarray | None:
    """A polygon's densified ring in the frame's pixels; None when it lies too far away."""
    if float(angular_distance(ra, dec, *frame.center).max()) > MAX_TANGENT_DISTANCE_DEG:
        return None
    dense_ra, dense_dec = densify(ra, dec, step_deg)
    return project(frame, dense_ra, dense_dec)


def frame_around(rings: Sequence[tuple[Sequence[float], Sequence[float]]],
                 wcs: WCS | None = None, margin: float = 0.06) -> Frame:
    """A frame showing every ring: the given WCS, or a TAN one centred on the rings."""
    if wcs is None:
        vectors = np.concatenate([unit_vectors(ra, dec) for ra, dec in rings]) if rings \
            else unit_vectors([0.0], [0.0])
        mean = vectors.mean(axis=0)
        centre = mean / max(float(np.linalg.norm(mean)), 1e-12)
        ra0, dec0 = radec(centre[None, :])
        radius = float(np.degrees(np.arccos(np.clip(vectors @ centre, -1, 1))).max())
        wcs = tan_wcs(float(ra0[0]), float(dec0[0]), max(radius, 1e-3) / 500)
    frame = Frame(wcs, (0.0, 1.0, 0.0, 1.0))
    xy = np.concatenate([project(frame, ra, dec) for ra, dec in rings]) if rings else np.zeros(
        (1, 2))
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    pad = margin * max(x1 - x0, y1 - y0, 1.0)
    return Frame(wcs, (x0 - pad, x1 + pad, y0 - pad, y1 + pad))


def _plane_axes(fig: Figure, frame: Frame, rows: int = 1, columns: int = 1,
                index: int = 1) -> Any:
    ax = fig.add_subplot(rows, columns, index, projection=frame.wcs)
    x0, x1, y0, y1 = frame.box
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.coords.grid(True, color="0.6", linewidth=0.4, alpha=0.6)
    ax.coords[0].set_axislabel("RA")
    ax.coords[1].set_axislabel("Dec")
    ax.coords[0].set_major_formatter("d.dd")
    ax.coords[1].set_major_formatter("d.dd")
    return ax


def _step(frame: Frame) -> float:
    """Densification step: fine enough that chords stay within a pixel of the arcs."""
    scale = float(np.abs(frame.wcs.wcs.cdelt).max())
    if frame.wcs.wcs.has_cd():
        scale = float(np.abs(frame.wcs.wcs.cd).max())
    span = max(frame.box[1] - frame.box[0], frame.box[3] - frame.box[2]) * scale
    return max(span / 200.0, 1e-4)


def footprints_figure(frame: Frame, *, ccds: Sequence[Footprint] = (),
                      patches: Sequence[Footprint] = (), tracts: Sequence[Footprint] = (),
                      region: tuple[Sequence[float], Sequence[float]] | None = None,
                      title: str | None = None, label_patches: bool = True) -> Figure:
    """CCDs coloured by band (translucent fills: depth shows as darker overlaps), patch outer
    (dashed) and inner (solid) boxes, tract outlines and the query region, on a tangent
    plane. Each drawn polygon carries a ``gid`` naming what it is (``ccd:inst/visit/det``)."""
    fig = Figure(figsize=(7.5, 7.0), layout="constrained")
    ax = _plane_axes(fig, frame)
    step = _step(frame)
    bands_seen: dict[str, str] = {}
    for footprint in ccds:
        path = plane_path(frame, footprint.ra, footprint.dec, step)
        if path is None:
            continue
        color = band_color(footprint.band)
        bands_seen.setdefault(footprint.band or "?", color)
        ax.add_patch(Polygon(path, closed=True, facecolor=to_rgba(color, 0.12),
                             edgecolor=color, linewidth=0.8,
                             gid="ccd:" + "/".join(map(str, footprint.key))))
    for footprint in patches:
        outer = plane_path(frame, footprint.ra, footprint.dec, step)
        inner = plane_path(frame, footprint.inner_ra, footprint.inner_dec, step)
        if outer is None or inner is None:
            continue
        name = "/".join(map(str, footprint.key))
        ax.add_patch(Polygon(outer, closed=True, fill=False, edgecolor="0.35",
                             linestyle=(0, (4, 3)), linewidth=0.7, gid=f"patch-outer:{name}"))
        ax.add_patch(Polygon(inner, closed=True, fill=False, edgecolor="0.1", linewidth=1.0,
                             gid=f"patch-inner:{name}"))
        if label_patches:
            cx, cy = inner.mean(axis=0)
            ax.text(cx, cy, str(footprint.key[-1]), ha="center", va="center", fontsize=7,
                    color="0.1", alpha=0.8)
    for footprint in tracts:
        outer = plane_path(frame, footprint.ra, footprint.dec, step)
        if outer is None:
            continue
        ax.add_patch(Polygon(outer, closed=True, fill=False, edgecolor="#444488",
                             linewidth=1.6, gid="tract:" + "/".join(map(str, footprint.key))))
    if region is not None:
        path = plane_path(frame, region[0], region[1], step)
        if path is not None:
            ax.add_patch(Polygon(path, closed=True, fill=False, edgecolor="#e7298a",
                                 linestyle="--", linewidth=1.4, gid="region"))
    handles = [Line2D([], [], color=color, linewidth=2, label=band)
               for band, color in sorted(bands_seen.items())]
    if patches:
        handles += [Line2D([], [], color="0.1", linewidth=1, label="patch inner"),
                    Line2D([], [], color="0.35", linestyle="--", linewidth=0.7,
                           label="patch outer")]
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.8)
    ax.set_title(title or f"{len(ccds)} CCDs", fontsize=10)
    return fig


def depth_grid(frame: Frame, ccds: Sequence[Footprint], bands: Sequence[str | None],
               samples: int = 300, within: Footprint | None = None
               ) -> tuple[dict[str | None, np.ndarray], tuple[float, float, float, float]]:
    """Exact depth per band on a grid of points over the frame: at each point, the number of
    CCDs (so of visits: a visit's CCDs do not overlap) whose polygon contains it. Points
    outside ``within``'s outer polygon are NaN."""
    x0, x1, y0, y1 = frame.box
    nx = samples
    ny = max(2, round(samples * (y1 - y0) / max(x1 - x0, 1e-9)))
    xs = np.linspace(x0, x1, nx)
    ys = np.linspace(y0, y1, ny)
    gx, gy = np.meshgrid(xs, ys)
    ra, dec = frame.wcs.wcs_pix2world(gx.ravel(), gy.ravel(), 0)
    lon, lat = np.radians(ra), np.radians(dec)
    depth = {band: np.zeros(gx.size) for band in bands}
    dx, dy = xs[1] - xs[0], ys[1] - ys[0]
    for footprint in ccds:
        targets = [b for b in bands if b is None or b == footprint.band]
        if not targets:
            continue
        corners = project(frame, *densify(footprint.ra, footprint.dec, 0.05))
        if not np.all(np.isfinite(corners)):
            continue
        i0 = max(0, int(np.floor((corners[:, 0].min() - x0) / dx)))
        i1 = min(nx, int(np.ceil((corners[:, 0].max() - x0) / dx)) + 1)
        j0 = max(0, int(np.floor((corners[:, 1].min() - y0) / dy)))
        j1 = min(ny, int(np.ceil((corners[:, 1].max() - y0) / dy)) + 1)
        if i0 >= i1 or j0 >= j1:
            continue
        index = (np.arange(j0, j1)[:, None] * nx + np.arange(i0, i1)[None, :]).ravel()
        inside = footprint.polygon().contains(lon[index], lat[index])
        for band in targets:
            depth[band][index] += inside
    mask = None
    if within is not None:
        mask = ~np.asarray(within.polygon().contains(lon, lat), dtype=bool)
    result: dict[str | None, np.ndarray] = {}
    for band, values in depth.items():
        grid = values.reshape(ny, nx)
        if mask is not None:
            grid = np.where(mask.reshape(ny, nx), np.nan, grid)
        result[band] = grid
    half = (dx / 2, dy / 2)
    return result, (x0 - half[0], x1 + half[0], y0 - half[1], y1 + half[1])


def tract_depth_figure(frame: Frame, ccds: Sequence[Footprint], bands: Sequence[str | None],
                       tract: Footprint, patches: Sequence[Footprint] = (), *,
                       samples: int = 300, title: str | None = None,
                       cmap: str = "viridis") -> Figure:
    """One tangent-plane panel per band of the exact depth over a tract, patches outlined."""
    grids, extent = depth_grid(frame, ccds, bands, samples, within=tract)
    rows, columns = _grid(len(bands))
    fig = Figure(figsize=(4.6 * columns, 4.4 * rows), layout="constrained")
    step = _step(frame)
    for index, band in enumerate(bands, start=1):
        ax = _plane_axes(fig, frame, rows, columns, index)
        grid = grids[band]
        top = max(1, int(np.nanmax(grid))) if np.isfinite(grid).any() else 1
        image = ax.imshow(grid, origin="lower", extent=extent, cmap=cmap, vmin=0, vmax=top,
                          interpolation="nearest")
        image.set_gid(f"depth-{band or 'all'}")
        for footprint in patches:
            inner = plane_path(frame, footprint.inner_ra, footprint.inner_dec, step)
            if inner is not None:
                ax.add_patch(Polygon(inner, closed=True, fill=False, edgecolor="white",
                                     linewidth=0.4, alpha=0.6))
        outline = plane_path(frame, tract.ra, tract.dec, step)
        if outline is not None:
            ax.add_patch(Polygon(outline, closed=True, fill=False, edgecolor="black",
                                 linewidth=1.2))
        ax.set_xlim(frame.box[0], frame.box[1])
        ax.set_ylim(frame.box[2], frame.box[3])
        fig.colorbar(image, ax=ax, shrink=0.7, label="visits")
        ax.set_title(f"{band or 'all bands'}: max {top} visits", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig
