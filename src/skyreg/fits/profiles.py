"""Instrument profiles: which header keywords give a CCD's data-ID fields, as a YAML file.

A profile is data, not code, so a user can describe a new camera without touching skyreg.
Built-in profiles live next to this module in ``profiles/*.yaml``; the schema is documented in
``docs/instrument-profiles.md``. Everything a profile says is checked when it is loaded, and
every error names the file and the key, because a profile mistake would otherwise surface as
thousands of per-HDU problems during an ingest.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from skyreg.errors import SkyregError

#: Data-ID fields a profile may define, in the order they are documented.
FIELDS = (
    "visit",
    "detector",
    "detector_name",
    "band",
    "physical_filter",
    "day_obs",
    "seq_num",
    "exposure_time",
    "mjd_start",
    "mjd_end",
    "boresight_ra",
    "boresight_dec",
    "rotation_deg",
)
#: Fields a CCD record can do without (None when absent); every other field is required.
OPTIONAL_FIELDS = ("boresight_ra", "boresight_dec", "rotation_deg")
REQUIRED_FIELDS = tuple(name for name in FIELDS if name not in OPTIONAL_FIELDS)
#: The output type each field must have once converted.
FIELD_KINDS: dict[str, Literal["int", "float", "str"]] = {
    "visit": "int",
    "detector": "int",
    "detector_name": "str",
    "band": "str",
    "physical_filter": "str",
    "day_obs": "int",
    "seq_num": "int",
    "exposure_time": "float",
    "mjd_start": "float",
    "mjd_end": "float",
    "boresight_ra": "float",
    "boresight_dec": "float",
    "rotation_deg": "float",
}
#: Conversion used when a source does not name one.
DEFAULT_TYPES = {
    **FIELD_KINDS,
    "mjd_start": "time",
    "mjd_end": "time",
    "boresight_ra": "angle",
    "boresight_dec": "angle",
    "rotation_deg": "angle",
}
#: Conversions a source may request, and the field kind each produces.
TYPES: dict[str, Literal["int", "float", "str"]] = {
    "int": "int",
    "float": "float",
    "str": "str",
    "time": "float",
    "angle": "float",
    "date": "int",
}
#: Derivations computed from other fields rather than read from the header.
DERIVATIONS = {
    "day_obs": ("mjd_start",),
    "end_from_exposure_time": ("mjd_start", "exposure_time"),
}
TIME_SCALES = ("utc", "tai", "tt")
ANGLE_UNITS = ("deg", "hour")
SOURCE_KEYS = {
    "keywords", "template", "value", "derive", "regex", "map", "unmapped", "type", "scale",
    "format", "unit", "multiply", "add", "wrap", "offset_hours", "default",
}
PROFILE_KEYS = {"name", "instrument", "description", "match", "time_scale", "fields"}

BUILTIN_PROFILES = {"decam": "decam.yaml", "hsc": "hsc.yaml", "lsstcam": "lsstcam.yaml"}


class ProfileError(SkyregError, ValueError):
    """A profile file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Source:
    """One way of obtaining a field's value; a field tries its sources in order."""

    keywords: tuple[str, ...] = ()
    template: str | None = None
    value: Any = None
    derive: str | None = None
    regex: re.Pattern[str] | None = None
    map: Mapping[str, Any] | None = None
    unmapped: Literal["keep", "error"] = "keep"
    type: str = "str"
    scale: str = "utc"
    time_format: Literal["auto", "mjd", "iso"] = "auto"
    unit: Literal["deg", "hour"] = "deg"
    multiply: float = 1.0
    add: float = 0.0
    wrap: float | None = None
    offset_hours: float = 0.0
    default: Any = None

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Other fields this source needs first."""
        if self.derive is not None:
            return DERIVATIONS[self.derive]
        if self.template is not None:
            return tuple(name for name in template_fields(self.template) if name != "h")
        return ()


@dataclass(frozen=True)
class FieldSpec:
    name: str
    sources: tuple[Source, ...]
    required: bool

    @property
    def keywords(self) -> tuple[str, ...]:
        return tuple(kw for source in self.sources for kw in source.keywords)


@dataclass(frozen=True)
class InstrumentProfile:
    """A validated profile: how to recognise an instrument's headers and read its fields."""

    name: str
    instrument: str
    match: Mapping[str, str | re.Pattern[str]]
    time_scale: str
    fields: Mapping[str, FieldSpec]
    #: Field names in an order where every field comes after the fields it depends on.
    order: tuple[str, ...]
    source: str = "<built-in>"
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def detector_keywords(self) -> frozenset[str]:
        """Header keywords the detector is read from (``keywords`` and ``h[...]`` templates).

        An image HDU that carries one of them in its own header is a CCD of this instrument,
        so lacking a WCS is a problem rather than a reason to pass it over. Empty when the
        detector does not come from the header (a constant): every image HDU is then a CCD.
        """
        found: set[str] = set()
        for source in self.fields["detector"].sources:
            found.update(source.keywords)
            if source.template is not None:
                found.update(key.strip().upper() for key in
                             re.findall(r"\bh\[([^\]]+)\]", source.template))
        return frozenset(found)

    def matches(self, header: Mapping[str, Any]) -> bool:
        """True when every ``match`` keyword has the given value (or matches the regex)."""
        if not self.match:
            return False
        for keyword, expected in self.match.items():
            value = header.get(keyword)
            if value is None:
                return False
            text = str(value).strip()
            if isinstance(expected, re.Pattern):
                if not expected.search(text):
                    return False
            elif text.lower() != expected.lower():
                return False
        return True


def template_fields(template: str) -> list[str]:
    """Top-level names used by a ``str.format`` template (``h`` is the header)."""
    names = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None:
            names.append(re.split(r"[.\[]", name, maxsplit=1)[0])
    return names


def load_profile(path: str | Path) -> InstrumentProfile:
    """Load and validate a profile YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc.strerror or exc}") from None
    return parse_profile(text, str(path))


def builtin_profile(name: str) -> InstrumentProfile:
    """A built-in profile by (case-insensitive) name: DECam, HSC or LSSTCam."""
    key = name.lower()
    if key not in BUILTIN_PROFILES:
        known = ", ".join(p.name for p in builtin_profiles())
        raise ProfileError(f"unknown instrument profile {name!r}; built-in profiles: {known}")
    return _load_builtin(key)


def builtin_profiles() -> list[InstrumentProfile]:
    return [_load_builtin(key) for key in BUILTIN_PROFILES]


_BUILTIN_CACHE: dict[str, InstrumentProfile] = {}


def _load_builtin(key: str) -> InstrumentProfile:
    if key not in _BUILTIN_CACHE:
        resource = resources.files("skyreg.fits").joinpath("profiles", BUILTIN_PROFILES[key])
        text = resource.read_text(encoding="utf-8")
        _BUILTIN_CACHE[key] = parse_profile(text, f"<built-in {BUILTIN_PROFILES[key]}>")
    return _BUILTIN_CACHE[key]


def resolve_profile(
    name_or_path: str | Path | InstrumentProfile | None, primary_header: Mapping[str, Any]
) -> InstrumentProfile:
    """A built-in profile by name, a YAML profile by path, or the built-in matching the header.

    A string is a path when it ends in ``.yaml``/``.yml`` or names an existing file.
    """
    if isinstance(name_or_path, InstrumentProfile):
        return name_or_path
    if name_or_path is not None:
        text = str(name_or_path)
        if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or (
            Path(text).is_file()
        ):
            return load_profile(text)
        return builtin_profile(text)
    for profile in builtin_profiles():
        if profile.matches(primary_header):
            return profile
    instrume = primary_header.get("INSTRUME")
    seen = f"INSTRUME={str(instrume).strip()!r}" if instrume is not None else "no INSTRUME"
    raise ProfileError(f"no built-in instrument profile matches this header ({seen})")


def parse_profile(text: str, origin: str) -> InstrumentProfile:
    """Validate a profile given as YAML text; ``origin`` names the file in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{origin}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{origin}: a profile must be a mapping of keys to values")
    _unknown_keys(origin, "", data, PROFILE_KEYS)
    name = _required_str(origin, data, "name")
    instrument = _required_str(origin, data, "instrument")
    time_scale = data.get("time_scale", "utc")
    if time_scale not in TIME_SCALES:
        raise ProfileError(f"{origin}: time_scale: must be one of {', '.join(TIME_SCALES)}")
    match = _parse_match(origin, data.get("match", {}))
    raw_fields = data.get("fields")
    if not isinstance(raw_fields, dict):
        raise ProfileError(f"{origin}: fields: required mapping of field name to source")
    _unknown_keys(origin, "fields.", raw_fields, set(FIELDS))
    fields: dict[str, FieldSpec] = {}
    for name_ in FIELDS:
        where = f"fields.{name_}"
        if name_ not in raw_fields:
            if name_ in REQUIRED_FIELDS:
                raise ProfileError(f"{origin}: {where}: required field is not defined")
            continue
        raw = raw_fields[name_]
        alternatives = raw if isinstance(raw, list) else [raw]
        if not alternatives:
            raise ProfileError(f"{origin}: {where}: empty list of sources")
        sources = tuple(
            _parse_source(origin, f"{where}[{i}]" if isinstance(raw, list) else where, item,
                          name_, time_scale)
            for i, item in enumerate(alternatives)
        )
        fields[name_] = FieldSpec(name_, sources, name_ in REQUIRED_FIELDS)
    order = _dependency_order(origin, fields)
    return InstrumentProfile(
        name=name,
        instrument=instrument,
        match=match,
        time_scale=time_scale,
        fields=fields,
        order=order,
        source=origin,
        description=str(data.get("description", "")),
    )


def _required_str(origin: str, data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ProfileError(f"{origin}: {key}: required non-empty string")
    return value.strip()


def _unknown_keys(origin: str, prefix: str, data: Mapping[str, Any], known: set[str]) -> None:
    for key in data:
        if key not in known:
            raise ProfileError(
                f"{origin}: {prefix}{key}: unknown key (expected one of {', '.join(sorted(known))})"
            )


def _parse_match(origin: str, raw: Any) -> dict[str, str | re.Pattern[str]]:
    if not isinstance(raw, dict):
        raise ProfileError(f"{origin}: match: must map header keywords to values")
    match: dict[str, str | re.Pattern[str]] = {}
    for keyword, expected in raw.items():
        where = f"match.{keyword}"
        if isinstance(expected, dict) and set(expected) == {"regex"}:
            match[str(keyword).upper()] = _compile(origin, where, expected["regex"])
        elif isinstance(expected, (str, int, float)) and not isinstance(expected, bool):
            match[str(keyword).upper()] = str(expected)
        else:
            raise ProfileError(f"{origin}: {where}: must be a value or {{regex: PATTERN}}")
    return match


def _compile(origin: str, where: str, pattern: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ProfileError(f"{origin}: {where}: regex must be a string")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ProfileError(f"{origin}: {where}: invalid regex: {exc}") from None


def _number(origin: str, where: str, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ProfileError(f"{origin}: {where}: must be a number")
    return float(raw)


def _parse_source(
    origin: str, where: str, raw: Any, field_name: str, time_scale: str
) -> Source:
    if isinstance(raw, str):
        raw = {"keywords": [raw]}
    if not isinstance(raw, dict):
        raise ProfileError(f"{origin}: {where}: must be a keyword name or a mapping")
    _unknown_keys(origin, f"{where}.", raw, SOURCE_KEYS)
    kinds = [key for key in ("keywords", "template", "value", "derive") if key in raw]
    if len(kinds) != 1:
        raise ProfileError(
            f"{origin}: {where}: give exactly one of keywords, template, value or derive"
        )
    type_ = raw.get("type", DEFAULT_TYPES[field_name])
    if type_ not in TYPES:
        raise ProfileError(f"{origin}: {where}.type: must be one of {', '.join(TYPES)}")
    if TYPES[type_] != FIELD_KINDS[field_name] and "derive" not in raw:
        raise ProfileError(
            f"{origin}: {where}.type: {type_!r} gives a {TYPES[type_]} but {field_name} is a "
            f"{FIELD_KINDS[field_name]}"
        )
    keywords: tuple[str, ...] = ()
    if "keywords" in raw:
        value = raw["keywords"]
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not value or not all(
            isinstance(k, str) and k.strip() for k in value
        ):
            raise ProfileError(f"{origin}: {where}.keywords: must be a keyword or list of them")
        keywords = tuple(k.strip().upper() for k in value)
    template = raw.get("template")
    if template is not None:
        if not isinstance(template, str):
            raise ProfileError(f"{origin}: {where}.template: must be a string")
        try:
            names = template_fields(template)
        except ValueError as exc:
            raise ProfileError(f"{origin}: {where}.template: {exc}") from None
        for name in names:
            if name != "h" and name not in FIELDS:
                raise ProfileError(
                    f"{origin}: {where}.template: {{{name}}} is neither a field nor h[KEYWORD]"
                )
        if re.search(r"\{[^{}]*\.[^{}]*[:}]", template.replace("{{", "").replace("}}", "")):
            raise ProfileError(f"{origin}: {where}.template: attribute access is not allowed")
    derive = raw.get("derive")
    if derive is not None and derive not in DERIVATIONS:
        raise ProfileError(f"{origin}: {where}.derive: must be one of {', '.join(DERIVATIONS)}")
    mapping = raw.get("map")
    if mapping is not None and not isinstance(mapping, dict):
        raise ProfileError(f"{origin}: {where}.map: must be a mapping of value to value")
    unmapped = raw.get("unmapped", "keep")
    if unmapped not in ("keep", "error"):
        raise ProfileError(f"{origin}: {where}.unmapped: must be keep or error")
    scale = raw.get("scale", time_scale)
    if scale not in TIME_SCALES:
        raise ProfileError(f"{origin}: {where}.scale: must be one of {', '.join(TIME_SCALES)}")
    time_format = raw.get("format", "auto")
    if time_format not in ("auto", "mjd", "iso"):
        raise ProfileError(f"{origin}: {where}.format: must be auto, mjd or iso")
    unit = raw.get("unit", "deg")
    if unit not in ANGLE_UNITS:
        raise ProfileError(f"{origin}: {where}.unit: must be one of {', '.join(ANGLE_UNITS)}")
    wrap = raw.get("wrap")
    return Source(
        keywords=keywords,
        template=template,
        value=raw.get("value"),
        derive=derive,
        regex=_compile(origin, f"{where}.regex", raw["regex"]) if "regex" in raw else None,
        map={str(k): v for k, v in mapping.items()} if mapping is not None else None,
        unmapped=unmapped,
        type=type_,
        scale=scale,
        time_format=time_format,
        unit=unit,
        multiply=_number(origin, f"{where}.multiply", raw.get("multiply", 1.0)),
        add=_number(origin, f"{where}.add", raw.get("add", 0.0)),
        wrap=None if wrap is None else _number(origin, f"{where}.wrap", wrap),
        offset_hours=_number(origin, f"{where}.offset_hours", raw.get("offset_hours", 0.0)),
        default=raw.get("default"),
    )


def _dependency_order(origin: str, fields: Mapping[str, FieldSpec]) -> tuple[str, ...]:
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = " -> ".join([*chain[chain.index(name):], name])
            raise ProfileError(f"{origin}: fields.{name}: circular dependency {cycle}")
        state[name] = "active"
        for source in fields[name].sources:
            for dependency in source.depends_on:
                if dependency not in fields:
                    raise ProfileError(
                        f"{origin}: fields.{name}: uses field {dependency}, which is not defined"
                    )
                visit(dependency, [*chain, name])
        state[name] = "done"
        order.append(name)

    for name in fields:
        visit(name, [])
    return tuple(order)
