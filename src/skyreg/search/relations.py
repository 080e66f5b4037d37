"""Searches the overlap relations answer: one stored patch, tract or CCD and no geometry.

``find_ccds(patch=/tract=)``, ``find_patches(ccd=)`` and ``find_tracts(ccd=)`` ask which stored
footprints overlap another stored footprint. Ingest has already stored every such pair, decided
by the exact test the pixel path would apply to the candidates
(:mod:`skyreg.schema.overlaps`), so these searches read the pairs
(:mod:`skyreg.search.relation_statements`) instead of repeating that test on every query.
Searches with any other region, or with the wrong number of regions (an error that
:func:`skyreg.search.regions.query_region` words), take the pixel path.
"""

from __future__ import annotations

from typing import Any

from skyreg.db.connection import ReadConnection
from skyreg.search import regions

#: kind → (key types, example, names of the key's bound parameters)
_KEYS: dict[str, tuple[tuple[type, ...], str, tuple[str, ...]]] = {
    "patch": (*regions.PATCH_KEY, ("skymap", "tract", "patch")),
    "tract": (*regions.TRACT_KEY, ("skymap", "tract")),
    "ccd": (*regions.CCD_KEY, ("instrument", "visit", "detector")),
}


def stored_kind(stored: dict[str, Any], others: dict[str, Any]) -> str | None:
    """The kind of the one stored footprint a search names, when it names exactly one and no
    other region (then a relation answers it); None otherwise."""
    given = [kind for kind, value in stored.items() if value is not None]
    if len(given) == 1 and all(value is None for value in others.values()):
        return given[0]
    return None


def key_params(kind: str, value: Any) -> dict[str, Any]:
    """The bound parameters of a stored footprint's key, checked as the pixel path checks it
    (a :class:`~skyreg.search.validation.QueryError` for a malformed key)."""
    types, example, names = _KEYS[kind]
    return dict(zip(names, regions.key(value, types, kind, example), strict=True))


def related_rows(conn: ReadConnection, kind: str, value: Any, sql: str,
                 params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows of relation statement ``sql`` for one stored footprint (``params`` holding its
    :func:`key_params`). An empty answer is checked: a footprint that is not registered raises
    :class:`~skyreg.errors.NotFoundError`, as the pixel path does when it looks it up."""
    rows = conn.fetch(sql, params)
    if not rows:  # raises NotFoundError for an unknown footprint
        if kind == "patch":
            regions.patch_region(conn, value)
        elif kind == "tract":
            regions.tract_region(conn, value)
        else:
            regions.ccd_region(conn, value)
    return rows
