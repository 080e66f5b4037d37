"""The columns a search can return: their names, value types, units, and where they come from.

A search always returns the key of each row (``instrument, visit, detector`` for a CCD, ...);
``columns=`` asks for more, fetched by the same SQL statement that finds the candidates, so a
pipeline gets e.g. the band, time span and file URI of every CCD of a patch in one query. This
module is only a catalogue (plain data, no SQL objects): the statements in
:mod:`skyreg.search.statements` turn a column's ``source`` and ``field`` into a column of the
table named there, and :class:`~skyreg.search.results.ResultTable` uses the value type and unit
to build numpy, astropy and Arrow columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from skyreg.search.validation import QueryError

#: ``text``: str (or None); ``int``/``float``: numbers (None when missing); ``floats``/``ints``:
#: a variable-length array per row (the vertices of a polygon, a pixel box).
ValueKind = Literal["text", "int", "float", "floats", "ints"]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a result: what it holds and which stored column it is read from."""

    name: str
    kind: ValueKind
    unit: str | None
    description: str
    #: Table the value comes from, as the statements name them (``visit``, ``ccd``, ``file``,
    #: ``patch``, ``tract``); ``key`` for the key fields every result has.
    source: str = "key"
    #: Column of that table (defaults to ``name``).
    field: str = ""

    @property
    def stored(self) -> str:
        return self.field or self.name


def _specs(*specs: ColumnSpec) -> dict[str, ColumnSpec]:
    return {spec.name: spec for spec in specs}


_VISIT = (
    ColumnSpec("band", "text", None, "abstract filter of the visit (g, r, ...)", "visit"),
    ColumnSpec("physical_filter", "text", None, "filter in the beam", "visit"),
    ColumnSpec("day_obs", "int", None, "observing day, YYYYMMDD", "visit"),
    ColumnSpec("seq_num", "int", None, "sequence number within the day", "visit"),
    ColumnSpec("exposure_time", "float", "s", "exposure time", "visit"),
    ColumnSpec("mjd_start", "float", "d", "MJD (TAI) at shutter open", "visit",
               "mjd_tai_start"),
    ColumnSpec("mjd_end", "float", "d", "MJD (TAI) at shutter close", "visit", "mjd_tai_end"),
    ColumnSpec("boresight_ra", "float", "deg", "telescope pointing RA (ICRS)", "visit"),
    ColumnSpec("boresight_dec", "float", "deg", "telescope pointing Dec (ICRS)", "visit"),
    ColumnSpec("rotation_deg", "float", "deg", "sky rotation angle of the focal plane",
               "visit"),
)

_CCD_FOOTPRINT = (
    ColumnSpec("footprint_ra", "floats", "deg", "RA of the CCD polygon's vertices", "ccd", "ra"),
    ColumnSpec("footprint_dec", "floats", "deg", "Dec of the CCD polygon's vertices", "ccd",
               "dec"),
)

#: Columns of the file of ``dataset_type=`` for each CCD (None for CCDs without one).
FILE_COLUMNS = (
    ColumnSpec("uri", "text", None, "URI of the file holding the CCD's image", "file"),
    ColumnSpec("hdu", "int", None, "HDU of the image within the file (0 = primary)", "file"),
    ColumnSpec("size_bytes", "int", "byte", "file size", "file"),
    ColumnSpec("checksum", "text", None, "checksum of the file (algorithm:hex)", "file"),
)

_TILE_POLYGONS = tuple(
    ColumnSpec(f"{which}_{axis}", "floats", "deg",
               f"{'RA' if axis == 'ra' else 'Dec'} of the {which} polygon's vertices",
               "tile")
    for which in ("outer", "inner") for axis in ("ra", "dec"))

#: Extra columns of each search, by the kind of row it returns.
EXTRA_COLUMNS: dict[str, dict[str, ColumnSpec]] = {
    "ccd": _specs(*_VISIT, *_CCD_FOOTPRINT, *FILE_COLUMNS),
    "patch": _specs(
        ColumnSpec("cell_x", "int", None, "column of the patch in its tract's grid", "tile"),
        ColumnSpec("cell_y", "int", None, "row of the patch in its tract's grid", "tile"),
        ColumnSpec("inner_bbox", "ints", "pix", "inner box in tract pixels (x0, y0, x1, y1)",
                   "tile"),
        ColumnSpec("outer_bbox", "ints", "pix", "outer box in tract pixels (x0, y0, x1, y1)",
                   "tile"),
        *_TILE_POLYGONS),
    "tract": _specs(
        ColumnSpec("ra_center", "float", "deg", "RA of the tract centre", "tile"),
        ColumnSpec("dec_center", "float", "deg", "Dec of the tract centre", "tile"),
        ColumnSpec("ring", "int", None, "ring of a rings sky map (None otherwise)", "tile"),
        *_TILE_POLYGONS),
    "ccd_dataset": _specs(*(spec for spec in _VISIT if spec.name != "band"), *_CCD_FOOTPRINT),
    "patch_dataset": _specs(
        ColumnSpec("footprint_ra", "floats", "deg", "RA of the patch's outer polygon", "tile",
                   "outer_ra"),
        ColumnSpec("footprint_dec", "floats", "deg", "Dec of the patch's outer polygon",
                   "tile", "outer_dec"),
    ),
}

#: Shorthands accepted in ``columns=``: one name for several columns.
ALIASES: dict[str, tuple[str, ...]] = {
    "footprint": ("footprint_ra", "footprint_dec"),
    "outer": ("outer_ra", "outer_dec"),
    "inner": ("inner_ra", "inner_dec"),
}

_KEYS = _specs(
    ColumnSpec("instrument", "text", None, "instrument name"),
    ColumnSpec("visit", "int", None, "visit id"),
    ColumnSpec("detector", "int", None, "detector id"),
    ColumnSpec("skymap", "text", None, "sky map name"),
    ColumnSpec("tract", "int", None, "tract id"),
    ColumnSpec("patch", "int", None, "patch id within the tract"),
    ColumnSpec("dataset_type", "text", None, "dataset type"),
    ColumnSpec("band", "text", None, "band"),
    ColumnSpec("uri", "text", None, "file URI"),
    ColumnSpec("hdu", "int", None, "HDU index within the file"),
    ColumnSpec("format", "text", None, "file format"),
    ColumnSpec("size_bytes", "int", "byte", "file size"),
    ColumnSpec("checksum", "text", None, "file checksum"),
)


def spec_of(name: str) -> ColumnSpec:
    """The spec of any result column by name (keys and extras; names mean one thing
    everywhere). Unknown names are taken as text."""
    if name in _KEYS:
        return _KEYS[name]
    for specs in EXTRA_COLUMNS.values():
        if name in specs:
            return specs[name]
    return ColumnSpec(name, "text", None, "")


class ColumnError(QueryError):
    """``columns=`` named a column this search does not have."""


def resolve(kind: str, names: str | Iterable[str] | None, keys: tuple[str, ...],
            what: str) -> tuple[ColumnSpec, ...]:
    """The extra columns asked for, in the order given, aliases expanded, duplicates and key
    fields (which every result has) dropped. ``what`` names the search in errors."""
    if names is None:
        return ()
    if isinstance(names, str):
        names = [part.strip() for part in names.split(",") if part.strip()]
    available: Mapping[str, ColumnSpec] = EXTRA_COLUMNS[kind]
    chosen: dict[str, ColumnSpec] = {}
    for name in names:
        if not isinstance(name, str):
            raise ColumnError(f"columns: expected column names, got {name!r}")
        for part in ALIASES.get(name, (name,)):
            if part in keys:
                continue
            if part not in available:
                valid = ", ".join([*available, *(a for a, parts in ALIASES.items()
                                                  if all(p in available for p in parts))])
                raise ColumnError(f"columns: {what} has no column {part!r}; valid: {valid}")
            chosen[part] = available[part]
    return tuple(chosen.values())
