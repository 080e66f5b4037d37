"""The region of a search: a stored footprint (a CCD, patch or tract) or user geometry.

Arguments are checked here (exactly one region, well-formed keys), so that every caller of the
searches refuses the same input with the same :class:`~skyreg.search.validation.QueryError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lsst.sphgeom import ConvexPolygon

from skyreg.db.connection import ReadConnection
from skyreg.errors import NotFoundError
from skyreg.geometry.polygons import decode_polygon
from skyreg.geometry.query_regions import QueryRegion, make_query_region
from skyreg.search import statements
from skyreg.search.sql import compiled
from skyreg.search.validation import QueryError

CCD_KEY = ((str, int, int), "(instrument, visit, detector)")
PATCH_KEY = ((str, int, int), "(skymap, tract, patch)")
TRACT_KEY = ((str, int), "(skymap, tract)")


def names(value: str | Sequence[str] | None, what: str) -> tuple[str, ...] | None:
    """A filter's names as a tuple (one name or a list of them); None for no filter."""
    if value is None:
        return None
    if not isinstance(value, Sequence):
        raise QueryError(f"{what}: expected a name or a list of names, got {value!r}")
    found = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(name, str) for name in found):
        raise QueryError(f"{what}: expected a name or a list of names, got {value!r}")
    if any("\x00" in name for name in found):
        raise QueryError(f"{what}: names cannot contain NUL characters")
    return found


def key(value: Any, types: tuple[type, ...], what: str, example: str) -> tuple[Any, ...]:
    """Check a tuple key such as (skymap, tract, patch) and coerce its integers."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != len(types):
        raise QueryError(f"{what}: expected {example}, got {value!r}")
    try:
        found = tuple(kind(item) for kind, item in zip(types, value, strict=True))
    except (TypeError, ValueError, OverflowError) as err:
        raise QueryError(f"{what}: expected {example}, got {value!r}") from err
    if any(isinstance(item, str) and "\x00" in item for item in found):
        raise QueryError(f"{what}: names cannot contain NUL characters")
    if any(isinstance(item, int) and not -(2**63) <= item < 2**63 for item in found):
        raise QueryError(f"{what}: {value!r} holds an id outside the 64-bit range")
    return found


def _polygon(conn: ReadConnection, sql: str, params: dict[str, Any], what: str
             ) -> ConvexPolygon:
    rows = conn.fetch(sql, params)
    if not rows:
        raise NotFoundError(f"{what} is not in the registry")
    return decode_polygon(rows[0][0])


def ccd_region(conn: ReadConnection, ccd: Any) -> ConvexPolygon:
    """The footprint of one CCD (NotFoundError if it is not registered)."""
    found = key(ccd, CCD_KEY[0], "ccd", CCD_KEY[1])
    return _polygon(conn, compiled(statements.ccd_region),
                    dict(zip(("instrument", "visit", "detector"), found, strict=True)),
                    f"CCD {found}")


def patch_region(conn: ReadConnection, patch: Any, inner: bool = False) -> ConvexPolygon:
    """The outer (or inner) polygon of one patch."""
    found = key(patch, PATCH_KEY[0], "patch", PATCH_KEY[1])
    return _polygon(conn, compiled(statements.patch_region, inner),
                    dict(zip(("skymap", "tract", "patch"), found, strict=True)),
                    f"patch {found}")


def tract_region(conn: ReadConnection, tract: Any, inner: bool = False) -> ConvexPolygon:
    """The outer (or inner) polygon of one tract."""
    found = key(tract, TRACT_KEY[0], "tract", TRACT_KEY[1])
    return _polygon(conn, compiled(statements.tract_region, inner),
                    dict(zip(("skymap", "tract"), found, strict=True)), f"tract {found}")


def query_region(conn: ReadConnection, *, stored: tuple[str, ...], patch: Any = None,
                 tract: Any = None, ccd: Any = None, inner: bool = False, **regions: Any
                 ) -> QueryRegion:
    """Exactly one search region, from a stored footprint (kinds ``stored``) or geometry
    (``cone``, ``polygon``, ``point``, ``region``: see :func:`make_query_region`)."""
    given = [name for name, value in (("patch", patch), ("tract", tract), ("ccd", ccd),
                                      *regions.items()) if value is not None]
    if len(given) != 1:
        choices = ", ".join(f"{name}=" for name in (*stored, *regions))
        raise QueryError(
            f"give exactly one search region ({choices}), got {', '.join(given) or 'none'}"
        )
    if patch is not None:
        return QueryRegion("region", patch_region(conn, patch, inner))
    if tract is not None:
        return QueryRegion("region", tract_region(conn, tract, inner))
    if ccd is not None:
        return QueryRegion("region", ccd_region(conn, ccd))
    query = make_query_region(**regions)
    if query is None:  # only when no region was given, which is refused above
        raise QueryError("give a search region")
    return query
