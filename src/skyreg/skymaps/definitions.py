"""Sky map definitions: the small set of parameters from which a sky map's geometry follows.

A definition is pure data. Geometry is derived from it deterministically by
:func:`skyreg.skymaps.build_skymap`, so the registry only has to store the definition (and its
hash) to know exactly which tracts and patches it describes.

Three kinds exist, mirroring ``lsst.skymap``:

* ``rings`` -- :class:`RingsDefinition`, ``RingsSkyMap`` with the legacy tract builder;
* ``healpix`` -- :class:`HealpixDefinition`, one tract per nested HEALPix pixel;
* ``discrete`` -- :class:`DiscreteDefinition`, tracts at explicit centres (``DiscreteSkyMap``).

All angles are degrees unless the name says otherwise. Parameters are validated on
construction, so an invalid definition cannot exist; messages name the offending parameter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml

from skyreg.errors import SkyregError

#: HEALPix orders above this give more than 3 billion tracts; nobody wants that as a sky map.
MAX_HEALPIX_ORDER = 13


class SkyMapDefinitionError(SkyregError, ValueError):
    """An invalid sky map definition; ``key`` names the parameter and ``file`` the config file."""

    def __init__(self, message: str, *, key: str | None = None, file: str | None = None) -> None:
        prefix = f"{file}: " if file else ""
        where = f"{key}: " if key else ""
        super().__init__(f"{prefix}{where}{message}")
        self.reason = message
        self.key = key
        self.file = file


def _check_positive(key: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0.0:
        raise SkyMapDefinitionError(f"must be a finite number > 0, got {value!r}", key=key)


def _check_common(
    pixel_scale_arcsec: float,
    patch_inner_pixels: int,
    patch_border_pixels: int,
    tract_overlap_deg: float,
) -> None:
    """Checks shared by all kinds: the tract-builder and WCS parameters."""
    _check_positive("pixel_scale_arcsec", pixel_scale_arcsec)
    if patch_inner_pixels < 1:
        raise SkyMapDefinitionError(
            f"must be an integer >= 1, got {patch_inner_pixels!r}", key="patch_inner_pixels"
        )
    if patch_border_pixels < 0:
        raise SkyMapDefinitionError(
            f"must be an integer >= 0, got {patch_border_pixels!r}", key="patch_border_pixels"
        )
    if not math.isfinite(tract_overlap_deg) or not 0.0 <= tract_overlap_deg < 10.0:
        raise SkyMapDefinitionError(
            f"must be in [0, 10) degrees, got {tract_overlap_deg!r}", key="tract_overlap_deg"
        )


@dataclasses.dataclass(frozen=True)
class RingsDefinition:
    """``lsst.skymap.RingsSkyMap`` (legacy tract builder, TAN projection, no rotation).

    ``num_rings`` declination rings plus two polar caps; ring height is 180° / (num_rings + 1).
    HSC's ``hsc_rings_v1`` is ``RingsDefinition(120, 0.168, 4000, 100, 1/60)``.
    """

    num_rings: int
    pixel_scale_arcsec: float
    patch_inner_pixels: int
    patch_border_pixels: int
    tract_overlap_deg: float
    ra_start_deg: float = 0.0

    kind: ClassVar[str] = "rings"

    def __post_init__(self) -> None:
        if self.num_rings < 1:
            raise SkyMapDefinitionError(
                f"must be an integer >= 1, got {self.num_rings!r}", key="num_rings"
            )
        _check_common(
            self.pixel_scale_arcsec,
            self.patch_inner_pixels,
            self.patch_border_pixels,
            self.tract_overlap_deg,
        )
        # Same range lsst.skymap's RingsSkyMapConfig.raStart accepts.
        if not math.isfinite(self.ra_start_deg) or not 0.0 <= self.ra_start_deg < 360.0:
            raise SkyMapDefinitionError(
                f"must be in [0, 360), got {self.ra_start_deg!r}", key="ra_start_deg"
            )
        # The tract half-size (half a ring plus the overlap) must stay well inside the TAN
        # projection's hemisphere, or bounding boxes become meaningless.
        half_size = 90.0 / (self.num_rings + 1) + self.tract_overlap_deg
        if half_size >= 60.0:
            raise SkyMapDefinitionError(
                f"rings too wide for a TAN projection (half ring + overlap = {half_size:.3f}°, "
                "must be < 60°): use more rings or less overlap",
                key="num_rings",
            )

    def to_parameters(self) -> dict[str, Any]:
        """Canonical JSON-able parameters (input of :func:`definition_from_parameters`)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class HealpixDefinition:
    """One tract per nested HEALPix pixel of ``order`` (nside = 2**order)."""

    order: int
    pixel_scale_arcsec: float
    patch_inner_pixels: int
    patch_border_pixels: int
    tract_overlap_deg: float

    kind: ClassVar[str] = "healpix"

    def __post_init__(self) -> None:
        if not 0 <= self.order <= MAX_HEALPIX_ORDER:
            raise SkyMapDefinitionError(
                f"must be an integer in [0, {MAX_HEALPIX_ORDER}], got {self.order!r}", key="order"
            )
        _check_common(
            self.pixel_scale_arcsec,
            self.patch_inner_pixels,
            self.patch_border_pixels,
            self.tract_overlap_deg,
        )

    def to_parameters(self) -> dict[str, Any]:
        """Canonical JSON-able parameters (input of :func:`definition_from_parameters`)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DiscreteDefinition:
    """``lsst.skymap.DiscreteSkyMap``: square tracts of half-size ``radius_deg`` at given centres.

    Tract id is the position in the lists.
    """

    ra_deg: tuple[float, ...]
    dec_deg: tuple[float, ...]
    radius_deg: float
    pixel_scale_arcsec: float
    patch_inner_pixels: int
    patch_border_pixels: int
    tract_overlap_deg: float

    kind: ClassVar[str] = "discrete"

    def __post_init__(self) -> None:
        if len(self.ra_deg) == 0:
            raise SkyMapDefinitionError("needs at least one tract centre", key="ra_deg")
        if len(self.ra_deg) != len(self.dec_deg):
            raise SkyMapDefinitionError(
                f"has {len(self.dec_deg)} values but ra_deg has {len(self.ra_deg)}", key="dec_deg"
            )
        for i, ra in enumerate(self.ra_deg):
            if not math.isfinite(ra) or not 0.0 <= ra < 360.0:
                raise SkyMapDefinitionError(
                    f"value {i} must be in [0, 360), got {ra!r}", key="ra_deg"
                )
        for i, dec in enumerate(self.dec_deg):
            if not math.isfinite(dec) or not -90.0 <= dec <= 90.0:
                raise SkyMapDefinitionError(
                    f"value {i} must be in [-90, 90], got {dec!r}", key="dec_deg"
                )
        if not math.isfinite(self.radius_deg) or not 0.0 <= self.radius_deg < 45.0:
            raise SkyMapDefinitionError(
                f"must be in [0, 45) degrees, got {self.radius_deg!r}", key="radius_deg"
            )
        _check_common(
            self.pixel_scale_arcsec,
            self.patch_inner_pixels,
            self.patch_border_pixels,
            self.tract_overlap_deg,
        )

    def to_parameters(self) -> dict[str, Any]:
        """Canonical JSON-able parameters (input of :func:`definition_from_parameters`)."""
        params = dataclasses.asdict(self)
        params["ra_deg"] = list(self.ra_deg)
        params["dec_deg"] = list(self.dec_deg)
        return params


SkyMapDefinition = RingsDefinition | HealpixDefinition | DiscreteDefinition

_KINDS: dict[str, type[RingsDefinition] | type[HealpixDefinition] | type[DiscreteDefinition]] = {
    "rings": RingsDefinition,
    "healpix": HealpixDefinition,
    "discrete": DiscreteDefinition,
}

_INT_FIELDS = frozenset({"num_rings", "order", "patch_inner_pixels", "patch_border_pixels"})
_LIST_FIELDS = frozenset({"ra_deg", "dec_deg"})


def _coerce(key: str, value: Any) -> Any:
    """Convert one parameter to its declared type, refusing lossy or surprising conversions."""
    if key in _INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SkyMapDefinitionError(f"must be an integer, got {value!r}", key=key)
        return value
    if key in _LIST_FIELDS:
        if not isinstance(value, list | tuple):
            raise SkyMapDefinitionError(f"must be a list of numbers, got {value!r}", key=key)
        return tuple(_coerce_float(key, item) for item in value)
    return _coerce_float(key, value)


def _coerce_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SkyMapDefinitionError(f"must be a number, got {value!r}", key=key)
    return float(value)


def definition_from_parameters(kind: str, parameters: Mapping[str, Any]) -> SkyMapDefinition:
    """Build and validate a definition from its kind and a parameter mapping.

    Unknown and missing parameters are errors (a typo must not silently fall back to a default).
    """
    cls = _KINDS.get(kind)
    if cls is None:
        raise SkyMapDefinitionError(
            f"unknown sky map kind {kind!r}; expected one of {', '.join(sorted(_KINDS))}",
            key="kind",
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(parameters) - set(fields))
    if unknown:
        raise SkyMapDefinitionError(
            f"unknown parameter for a {kind} sky map (allowed: {', '.join(fields)})",
            key=unknown[0],
        )
    missing = [
        name
        for name, f in fields.items()
        if name not in parameters and f.default is dataclasses.MISSING
    ]
    if missing:
        raise SkyMapDefinitionError(f"missing parameter for a {kind} sky map", key=missing[0])
    values = {key: _coerce(key, value) for key, value in parameters.items()}
    return cls(**values)


def canonical_json(defn: SkyMapDefinition) -> str:
    """The canonical text of a definition: sorted keys, floats as ``repr`` (shortest round-trip)."""
    return json.dumps(
        {"kind": defn.kind, "parameters": defn.to_parameters()},
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    )


def definition_hash(defn: SkyMapDefinition) -> str:
    """SHA-1 hex digest of :func:`canonical_json`; equal definitions hash equal.

    Python's ``json`` writes floats with ``repr``, so any change of a parameter value, however
    small, changes the hash, while ``1/60`` always writes the same text.
    """
    return hashlib.sha1(canonical_json(defn).encode("utf-8")).hexdigest()


def load_definition_file(path: str | Path) -> tuple[str | None, SkyMapDefinition]:
    """Read ``name`` (optional), ``kind`` and the parameters from a YAML or JSON file.

    JSON is a subset of YAML, so one parser reads both. Errors name the file and the key.
    """
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SkyMapDefinitionError(f"cannot read sky map file: {err.strerror}", file=file) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SkyMapDefinitionError(f"not valid YAML or JSON: {err}", file=file) from err
    if not isinstance(data, dict):
        raise SkyMapDefinitionError("must contain a mapping of keys to values", file=file)
    data = dict(data)
    name = data.pop("name", None)
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise SkyMapDefinitionError(
            f"must be a non-empty string, got {name!r}", key="name", file=file
        )
    kind = data.pop("kind", None)
    if not isinstance(kind, str):
        raise SkyMapDefinitionError("missing or not a string", key="kind", file=file)
    bad_keys = [key for key in data if not isinstance(key, str)]
    if bad_keys:
        raise SkyMapDefinitionError("keys must be strings", key=str(bad_keys[0]), file=file)
    try:
        defn = definition_from_parameters(kind, data)
    except SkyMapDefinitionError as err:
        raise SkyMapDefinitionError(err.reason, key=err.key, file=file) from err
    return name, defn
