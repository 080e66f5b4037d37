"""Pictures of the registry for reports and notebooks: matplotlib figures, no server.

``Registry.plot_coverage``, ``plot_patch`` and ``plot_ccds`` (and ``skyreg plot``) gather the
footprints and coverage counts (:mod:`skyreg.registry.sky`) and draw them with
:mod:`skyreg.plots.figures`; :mod:`skyreg.plots.sphere` turns spherical polygons into plane
paths that never jump across a map (RA 0/360, the seam of an all-sky map, the poles).
matplotlib is an optional extra (``pip install 'skyreg[plot]'``); importing this package does
not import it.
"""

from skyreg.plots.colors import BAND_COLORS, band_color

__all__ = ["BAND_COLORS", "band_color"]
