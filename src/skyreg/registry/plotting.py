"""``Registry.plot_*``: gather footprints and counts with the registry's searches, then draw
them with :mod:`skyreg.plots.figures` (which knows nothing of the database).

Every picture shows exactly what the searches answer: the CCDs of a patch are those
``find_ccds(patch=...)`` returns, the depth of a tract counts the CCDs ``find_ccds(tract=...)``
returns, point by point with sphgeom's ``contains``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from skyreg.errors import NotFoundError, SkyregError
from skyreg.geometry.sky_data import Footprint, vertices_of
from skyreg.search.results import PatchRef, TractRef

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from skyreg.registry.registry import Registry


class PlotError(SkyregError):
    """A plot that cannot be drawn (matplotlib missing, nothing to show)."""


def _figures() -> Any:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotError("plots need matplotlib: pip install 'skyreg[plot]'") from None
    from skyreg.plots import figures

    return figures


def _bands(band: str | Sequence[str] | None, present: Sequence[str]) -> list[str | None]:
    """Panels: the bands asked for, else every band present (after an all-bands panel when
    there are several)."""
    if band is not None:
        return [band] if isinstance(band, str) else list(band)
    chosen: list[str | None] = [*sorted(set(present))]
    if len(chosen) > 1:
        chosen.insert(0, None)
    return chosen or [None]


_TRACT_WCS = "SELECT wcs FROM tract WHERE skymap = %(skymap)s AND tract = %(tract)s"


def _tract_frame(registry: Registry, tract: TractRef, rings: list[Any], margin: float) -> Any:
    """The tract's own WCS (as stored) when it has one, else a TAN frame around the rings."""
    figures = _figures()
    rows = registry._fetch(_TRACT_WCS, {"skymap": tract.skymap, "tract": tract.tract})
    wcs = figures.wcs_from_cards(rows[0][0]) if rows and rows[0][0] else None
    return figures.frame_around(rings, wcs, margin)


def _tract(registry: Registry, key: tuple[str, int]) -> Footprint:
    ref = TractRef(str(key[0]), int(key[1]))
    found = registry.footprints([ref])
    if not found:
        raise NotFoundError(f"tract {tuple(ref)} is not in the registry")
    return found[0]


def plot_coverage(registry: Registry, *, tract: tuple[str, int] | None = None,
                  band: str | Sequence[str] | None = None, level: int | None = None,
                  center_ra: float = 180.0, samples: int = 300,
                  title: str | None = None) -> Figure:
    """All-sky coverage count map, or the exact depth over one tract, per band."""
    figures = _figures()
    if tract is None:
        coverage = registry.coverage_map(level)
        if not len(coverage.cells):
            raise PlotError("the registry has no CCDs: nothing to map")
        return figures.allsky_coverage_figure(  # type: ignore[no-any-return]
            coverage, _bands(band, coverage.bands), center_ra=center_ra,
            title=title or f"coverage: {registry.counts()['visits']} visits")
    outline = _tract(registry, tract)
    ref = TractRef(*outline.key)
    ccds = registry.footprints(registry.find_ccds(tract=(ref.skymap, ref.tract)))
    patches = [p for p in registry.footprints(
        registry.find_patches(region=outline.polygon(), skymap=ref.skymap))
        if p.key[1] == ref.tract]
    frame = _tract_frame(registry, ref, [(outline.ra, outline.dec)], 0.03)
    return figures.tract_depth_figure(  # type: ignore[no-any-return]
        frame, ccds, _bands(band, [c.band for c in ccds if c.band]), outline, patches,
        samples=samples, title=title or f"tract {ref.skymap} {ref.tract}: {len(ccds)} CCDs")


def plot_patch(registry: Registry, key: tuple[str, int, int], *,
               band: str | Sequence[str] | None = None, title: str | None = None) -> Figure:
    """The CCDs overlapping one patch, over the patch's inner and outer boxes."""
    figures = _figures()
    ref = PatchRef(str(key[0]), int(key[1]), int(key[2]))
    found = registry.footprints([ref])
    if not found:
        raise NotFoundError(f"patch {tuple(ref)} is not in the registry")
    patch = found[0]
    ccds = registry.footprints(registry.find_ccds(patch=(ref.skymap, ref.tract, ref.patch),
                                                    band=band))
    frame = _tract_frame(registry, TractRef(ref.skymap, ref.tract), [(patch.ra, patch.dec)],
                         0.25)
    bands = sorted({c.band for c in ccds if c.band})
    return figures.footprints_figure(  # type: ignore[no-any-return]
        frame, ccds=ccds, patches=[patch],
        title=title or (f"patch {ref.skymap} {ref.tract} {ref.patch}: {len(ccds)} CCDs"
                        + (f" ({', '.join(bands)})" if bands else "")))


def _region_ring(registry: Registry, query: dict[str, Any]
                 ) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The outline of a find_ccds query's region (a circle as a 128-gon; none for a point)."""
    from lsst.sphgeom import Circle, ConvexPolygon, LonLat, UnitVector3d

    spatial = {k: query[k] for k in ("patch", "tract", "cone", "polygon", "point", "region")
               if query.get(k) is not None}
    region = registry._query_region(stored=("patch", "tract"), inner=bool(query.get("inner")),
                                    **spatial).region
    if isinstance(region, ConvexPolygon):
        return vertices_of(region)
    if isinstance(region, Circle):
        centre = region.getCenter()
        radius = region.getOpeningAngle().asRadians()
        north = UnitVector3d(0.0, 0.0, 1.0)
        axis = UnitVector3d.orthogonalTo(centre, north) if abs(centre.z()) < 1 - 1e-12 \
            else UnitVector3d(1.0, 0.0, 0.0)
        c = np.array([centre.x(), centre.y(), centre.z()])
        u = np.array([axis.x(), axis.y(), axis.z()])
        w = np.cross(c, u)
        t = np.linspace(0, 2 * np.pi, 128, endpoint=False)[:, None]
        points = np.cos(radius) * c + np.sin(radius) * (np.cos(t) * u + np.sin(t) * w)
        lonlat = [LonLat(UnitVector3d(*p)) for p in points]
        return (tuple(p.getLon().asDegrees() for p in lonlat),
                tuple(p.getLat().asDegrees() for p in lonlat))
    return None


def plot_ccds(registry: Registry, *, title: str | None = None, **query: Any) -> Figure:
    """The CCDs of a find_ccds query, coloured by band, with the query's region."""
    figures = _figures()
    ccds = registry.footprints(registry.find_ccds(**query))
    region = _region_ring(registry, query)
    rings = [(c.ra, c.dec) for c in ccds] + ([region] if region else [])
    if not rings:
        raise PlotError("the query found no CCDs and has no region to draw")
    frame = figures.frame_around(rings)
    return figures.footprints_figure(  # type: ignore[no-any-return]
        frame, ccds=ccds, region=region, title=title or f"{len(ccds)} CCDs")
