"""Where catalogs live: the ``catalogs`` schema, its table of loaded catalogs, and names.

Revision 0009 creates the schema and ``catalogs.skyreg_catalog`` (one row per loaded
catalog: its table, id/RA/Dec columns, column list and row count); each catalog's own table
is created in the same schema when it is first loaded. Names that reach SQL are validated
here and then always quoted with :class:`psycopg.sql.Identifier`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from skyreg.errors import NotFoundError, SkyregError

SCHEMA = "catalogs"
REGISTRY_TABLE = "skyreg_catalog"

#: Columns every catalog table gets besides the file's own (file columns may not use the
#: ``skyreg_`` prefix).
PIXEL_COLUMN, X_COLUMN, Y_COLUMN, Z_COLUMN = "skyreg_pix", "skyreg_x", "skyreg_y", "skyreg_z"
RESERVED_PREFIX = "skyreg_"

_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")


class CatalogError(SkyregError, ValueError):
    """A catalog name, column or request that cannot be used."""


@dataclass(frozen=True)
class CatalogColumn:
    """One column of a catalog: its name in the file and its PostgreSQL type."""

    name: str
    sql_type: str


@dataclass(frozen=True)
class CatalogInfo:
    """What ``catalogs.skyreg_catalog`` records about a loaded catalog."""

    name: str
    table: str
    id_column: str
    ra_column: str
    dec_column: str
    columns: tuple[CatalogColumn, ...]
    row_count: int
    pixel_order: int

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def column_types(self) -> dict[str, str]:
        """PostgreSQL type of each column, by name."""
        return {column.name: column.sql_type for column in self.columns}

    def table_sql(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(self.table))

    def check_columns(self, columns: Any) -> tuple[str, ...]:
        """The requested columns (all for None), the id column first; unknown ones refused."""
        if columns is None:
            wanted: list[str] = list(self.column_names)
        else:
            if isinstance(columns, str):
                columns = [columns]
            try:
                wanted = [str(c) if isinstance(c, str) else _bad_column(c) for c in columns]
            except TypeError as err:
                raise CatalogError(
                    f"columns: expected a list of column names, got {columns!r}") from err
            unknown = [c for c in wanted if c not in self.column_names]
            if unknown:
                raise CatalogError(
                    f"catalog {self.name!r} has no column {', '.join(map(repr, unknown))}; "
                    f"it has {len(self.columns)} columns, e.g. "
                    f"{', '.join(self.column_names[:8])}")
        ordered = [self.id_column, *(c for c in wanted if c != self.id_column)]
        return tuple(dict.fromkeys(ordered))


def _bad_column(value: Any) -> str:
    raise TypeError(value)


def check_catalog_name(name: Any) -> str:
    """``name`` if it can name a catalog (and its table), else :class:`CatalogError`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CatalogError(
            f"catalog name {name!r}: use 1-48 lower-case letters, digits or underscores, "
            "starting with a letter")
    if name.startswith(RESERVED_PREFIX):
        raise CatalogError(f"catalog name {name!r}: the prefix {RESERVED_PREFIX!r} is reserved")
    return name


#: Runs a SELECT (SQL text, named parameters) and returns its rows: a registry's
#: :meth:`~skyreg.db.connection.ReadConnection.fetch`, or :func:`driver_fetch` in a transaction.
Fetch = Callable[[str, Mapping[str, Any]], list[tuple[Any, ...]]]

_SELECT = sql.SQL(
    "SELECT name, table_name, id_column, ra_column, dec_column, columns, row_count, "
    "pixel_order FROM {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(REGISTRY_TABLE))


def driver_fetch(driver: psycopg.Connection[Any]) -> Fetch:
    """A :data:`Fetch` on a psycopg connection (inside its current transaction)."""
    def fetch(statement: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return driver.execute(statement, params).fetchall()

    return fetch


def _info(row: tuple[Any, ...]) -> CatalogInfo:
    columns = tuple(CatalogColumn(c["name"], c["type"]) for c in row[5])
    return CatalogInfo(row[0], row[1], row[2], row[3], row[4], columns, int(row[6]), int(row[7]))


def find_catalog(fetch: Fetch, name: str) -> CatalogInfo | None:
    rows = fetch((_SELECT + sql.SQL(" WHERE name = %(name)s")).as_string(None), {"name": name})
    return _info(rows[0]) if rows else None


def get_catalog(fetch: Fetch, name: Any) -> CatalogInfo:
    """The catalog called ``name``, or :class:`~skyreg.errors.NotFoundError` listing those
    that exist."""
    found = find_catalog(fetch, check_catalog_name(name))
    if found is None:
        known = [info.name for info in list_catalogs(fetch)]
        raise NotFoundError(f"no catalog {name!r} in this registry (loaded: "
                            f"{', '.join(known) if known else 'none'}; load one with "
                            "`skyreg catalog load`)")
    return found


def list_catalogs(fetch: Fetch) -> list[CatalogInfo]:
    return [_info(row) for row in fetch((_SELECT + sql.SQL(" ORDER BY name")).as_string(None),
                                        {})]
