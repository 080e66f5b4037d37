"""Sky map definitions and their tract/patch geometry (pure computation, no database)."""

from skyreg.skymaps.definitions import (
    DiscreteDefinition,
    HealpixDefinition,
    RingsDefinition,
    SkyMapDefinition,
    SkyMapDefinitionError,
    canonical_json,
    definition_from_parameters,
    definition_hash,
    load_definition_file,
)
from skyreg.skymaps.geometry import (
    SkyMapGeometry,
    TractTable,
    build_skymap,
    patch_wcs,
    tract_wcs,
)
from skyreg.skymaps.patches import PatchTable
from skyreg.skymaps.rings import tract_of as rings_tract_of

__all__ = [
    "DiscreteDefinition",
    "HealpixDefinition",
    "PatchTable",
    "RingsDefinition",
    "SkyMapDefinition",
    "SkyMapDefinitionError",
    "SkyMapGeometry",
    "TractTable",
    "build_skymap",
    "canonical_json",
    "definition_from_parameters",
    "definition_hash",
    "load_definition_file",
    "patch_wcs",
    "rings_tract_of",
    "tract_wcs",
]
