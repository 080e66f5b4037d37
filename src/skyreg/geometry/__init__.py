"""Spherical geometry: validated polygons, query regions and pixel coverage.

All geometry of skyreg lives here and is computed with ``lsst.sphgeom``; the rest of the package
only passes sphgeom values (or their ``encode()`` bytes) around.
"""

from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.polygons import (
    GeometryError,
    encode_flat_polygons,
    encode_polygons,
    polygon_from_vertices,
)
from skyreg.geometry.query_regions import QueryRegion, make_query_region

__all__ = [
    "GeometryError",
    "PixelScheme",
    "QueryRegion",
    "encode_flat_polygons",
    "encode_polygons",
    "make_query_region",
    "polygon_from_vertices",
]
