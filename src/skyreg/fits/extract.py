"""Apply an instrument profile to one HDU's headers and get its data-ID fields.

Lookups go to the HDU's own header first and then to the primary header, because MEF files
keep per-CCD keywords (CCDNUM, DETPOS) in extensions and per-exposure ones in the primary HDU,
though some writers copy everything everywhere. Time conversions go through astropy.time and
are memoised: every HDU of an exposure carries the same timestamps, and an astropy ``Time``
costs far more than the rest of the extraction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from astropy.io.fits.card import Undefined
from astropy.time import Time

from skyreg.fits.headers import UnparsableCard
from skyreg.fits.profiles import FIELD_KINDS, FieldSpec, InstrumentProfile, Source


class FieldError(Exception):
    """A field could not be obtained; the message is one line naming keyword and field."""


class _Missing(Exception):
    """A source found none of its keywords (the next source is tried)."""

    def __init__(self, keyword: str) -> None:
        super().__init__(keyword)
        self.keyword = keyword


class HeaderView(Mapping[str, Any]):
    """Keyword lookup in the HDU header, then the primary header; blank values are absent."""

    def __init__(self, hdu: Mapping[str, Any], primary: Mapping[str, Any] | None) -> None:
        self._headers = [hdu] if primary is None or primary is hdu else [hdu, primary]

    def __getitem__(self, keyword: str) -> Any:
        for header in self._headers:
            value = header.get(keyword)
            if value is None or isinstance(value, Undefined):
                continue
            if isinstance(value, str) and not value.strip():
                continue
            return value
        raise _Missing(keyword)

    def get(self, keyword: str, default: Any = None) -> Any:
        try:
            return self[keyword]
        except _Missing:
            return default

    def __iter__(self) -> Any:
        seen: dict[str, None] = {}
        for header in self._headers:
            seen.update(dict.fromkeys(header))
        return iter(seen)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def extract_fields(profile: InstrumentProfile, header: HeaderView) -> dict[str, Any]:
    """All fields of ``profile`` for one HDU; raises :class:`FieldError` for the first problem.

    Optional fields that no source provides are None.
    """
    values: dict[str, Any] = {}
    for name in profile.order:
        values[name] = _field_value(profile.fields[name], header, values)
    for name in FIELD_KINDS:
        values.setdefault(name, None)
    return values


def _field_value(spec: FieldSpec, header: HeaderView, values: dict[str, Any]) -> Any:
    missing: str | None = None
    for source in spec.sources:
        try:
            return _source_value(source, spec.name, header, values)
        except _Missing as exc:
            missing = missing or exc.keyword
    if not spec.required:
        return None
    if missing is None:
        raise FieldError(f"cannot determine {spec.name}")
    raise FieldError(f"missing keyword {missing} ({spec.name})")


def _source_value(source: Source, name: str, header: HeaderView, values: dict[str, Any]) -> Any:
    keyword = "value"
    if source.derive is not None:
        return _derive(source, name, values)
    try:
        if source.keywords:
            raw, keyword = _first_keyword(source.keywords, header)
        elif source.template is not None:
            keyword = "template"
            for dependency in source.depends_on:
                if values.get(dependency) is None:
                    raise _Missing(dependency)
            try:
                raw = source.template.format(h=header, **values)
            except UnparsableCard:
                raise
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise FieldError(f"template {source.template!r} failed ({name}): {exc}") from None
        else:
            raw = source.value
    except _Missing:
        if source.default is None:
            raise
        raw, keyword = source.default, "default"
    except UnparsableCard as exc:
        raise FieldError(f"{exc} ({name})") from None
    return _convert(source, name, keyword, raw)


def _first_keyword(keywords: tuple[str, ...], header: HeaderView) -> tuple[Any, str]:
    for keyword in keywords:
        value = header.get(keyword)
        if value is not None:
            return value, keyword
    raise _Missing(keywords[0])


def _convert(source: Source, name: str, keyword: str, raw: Any) -> Any:
    value = raw
    if source.regex is not None:
        found = source.regex.search(str(value).strip())
        if found is None:
            raise FieldError(
                f"keyword {keyword} value {str(raw).strip()!r} does not match "
                f"/{source.regex.pattern}/ ({name})"
            )
        value = found.group(1) if found.re.groups else found.group(0)
    if source.map is not None:
        key = str(value).strip()
        if key in source.map:
            value = source.map[key]
        elif source.unmapped == "error":
            raise FieldError(
                f"keyword {keyword} value {key!r} is not in the profile's map ({name})"
            )
    try:
        return _typed(source, value)
    except (ValueError, TypeError, OverflowError):
        raise FieldError(
            f"keyword {keyword} value {str(raw).strip()!r} is not a valid {source.type} ({name})"
        ) from None


def _typed(source: Source, value: Any) -> Any:
    kind = source.type
    if kind == "str":
        return str(value).strip()
    if kind == "int":
        return _to_int(value)
    if kind == "date":
        return _to_date(value)
    if kind == "time":
        return _mjd_tai(value, source.scale, source.time_format)
    number = _angle(value, source.unit) if kind == "angle" else _to_float(value)
    number = number * source.multiply + source.add
    if source.wrap is not None:
        number = number % source.wrap
    if not math.isfinite(number):
        raise ValueError("not finite")
    return number


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("not integral")
        return int(value)
    return int(str(value).strip())


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("bool")
    return float(value if isinstance(value, (int, float)) else str(value).strip())


_NUMBER = r"(\d+(?:\.\d*)?)"
_SEXAGESIMAL = re.compile(rf"^([+-]?){_NUMBER}(?:[: ]{_NUMBER}(?:[: ]{_NUMBER})?)?$")


def _angle(value: Any, unit: str) -> float:
    """Degrees from a number or a sexagesimal string ("12:34:56.7", "-30 12 00")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        found = _SEXAGESIMAL.match(str(value).strip())
        if found is None:
            raise ValueError("not an angle")
        sign, whole, minutes, seconds = found.groups()
        number = float(whole) + float(minutes or 0) / 60.0 + float(seconds or 0) / 3600.0
        number = -number if sign == "-" else number
    return number * 15.0 if unit == "hour" else number


_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})(?:[T ].*)?$")


def _to_date(value: Any) -> int:
    """YYYYMMDD from 20240801, "2024-08-01" or "2024-08-01T12:00:00"."""
    found = _DATE.match(str(value).strip())
    if found is None:
        raise ValueError("not a date")
    year, month, day = (int(part) for part in found.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise ValueError("not a date")
    return year * 10000 + month * 100 + day


def _mjd_tai(value: Any, scale: str, time_format: str) -> float:
    if isinstance(value, bool):
        raise TypeError("bool")
    if isinstance(value, (int, float)):
        if time_format == "iso":
            raise ValueError("number where an ISO time is expected")
        return _mjd_number_to_tai(float(value), scale)
    text = str(value).strip()
    if time_format != "iso":
        try:
            return _mjd_number_to_tai(float(text), scale)
        except ValueError:
            if time_format == "mjd":
                raise
    return _iso_to_tai(text, scale)


@lru_cache(maxsize=4096)
def _mjd_number_to_tai(mjd: float, scale: str) -> float:
    if not math.isfinite(mjd):
        raise ValueError("not finite")
    if scale == "tai":
        return mjd
    return float(Time(mjd, format="mjd", scale=scale).tai.mjd)


@lru_cache(maxsize=4096)
def _iso_to_tai(text: str, scale: str) -> float:
    return float(Time(text, scale=scale).tai.mjd)


def _derive(source: Source, name: str, values: dict[str, Any]) -> Any:
    if source.derive == "end_from_exposure_time":
        start, exposure = values.get("mjd_start"), values.get("exposure_time")
        if start is None or exposure is None:
            raise _Missing("mjd_start" if start is None else "exposure_time")
        return float(start) + float(exposure) / 86400.0
    start = values.get("mjd_start")
    if start is None:
        raise _Missing("mjd_start")
    return _day_obs(float(start), source.offset_hours)


@lru_cache(maxsize=4096)
def _day_obs(mjd_tai: float, offset_hours: float) -> int:
    """Observing day YYYYMMDD: the UTC date of the start time shifted by ``offset_hours``."""
    utc = Time(mjd_tai + offset_hours / 24.0, format="mjd", scale="tai").utc
    return _to_date(utc.isot)
