"""The Level-1 (APDB) tables, built from Rubin's ``apdb.yaml`` of the ``lsst-sdm-schemas`` package.

The table and column definitions (names, types, nullability, keys, indexes) are data shipped
by Rubin and read here, so that what alert-production code writes and reads matches Rubin's
schema exactly; the package is a pinned dependency and the schema version it carries is
recorded in ``apdb.metadata`` (key ``version:schema``) by the migration that creates the tables.

skyreg adds to Rubin's definitions only what its own machinery needs:

* ``pixelId`` (bigint, HTM level 20 of the row's ra/dec, as Rubin's ``dax_apdb`` SQL backend)
  on DiaObject, DiaSource and DiaForcedSource, with a B-tree; on DiaObject that index is
  partial (latest versions only: ``validityEndMjdTai IS NULL``) because only latest versions
  are ever read by region;
* a unique partial index on DiaObject(diaObjectId) for latest versions, so two writers can
  never leave an object with two open validity intervals;
* ``skyreg_stored_ccd``: one row per (visit, detector) stored through ``store``, with the
  digest of what was stored, which makes a re-run of the same CCD recognisable.

All of it lives in the PostgreSQL schema ``apdb`` (quoted mixed-case names, as Rubin's).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from sqlalchemy import (
    REAL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.types import CHAR, TypeEngine

#: The PostgreSQL schema of the Level-1 tables.
APDB_SCHEMA = "apdb"
#: HTM level of ``pixelId`` (as dax_apdb's SQL backend): a level-20 trixel is ~0.3″ across.
APDB_HTM_LEVEL = 20
#: The Rubin tables skyreg creates (SSObject and the orbit tables are for solar-system
#: processing, which skyreg does not run).
APDB_TABLES = ("metadata", "DiaObject", "DiaSource", "DiaForcedSource",
               "DiaObject_To_Object_Match")
#: Tables that get a ``pixelId`` column from their ra/dec.
PIXEL_TABLES = ("DiaObject", "DiaSource", "DiaForcedSource")
PIXEL_COLUMN = "pixelId"
STORED_CCD_TABLE = "skyreg_stored_ccd"

#: Felis data types of apdb.yaml → SQLAlchemy types, as Felis maps them for PostgreSQL.
_TYPES: dict[str, Any] = {
    "boolean": lambda _: Boolean(),
    "byte": lambda _: SmallInteger(),
    "short": lambda _: SmallInteger(),
    "int": lambda _: Integer(),
    "long": lambda _: BigInteger(),
    "float": lambda _: REAL(),
    "double": lambda _: Double(),
    "char": lambda length: CHAR(length),
    "string": lambda length: String(length),
    "unicode": lambda length: String(length),
    "text": lambda _: Text(),
    "timestamp": lambda _: DateTime(timezone=False),
}


class ApdbSchemaError(RuntimeError):
    """apdb.yaml is missing or holds something this version of skyreg cannot map."""


@lru_cache(maxsize=1)
def load_apdb_yaml() -> dict[str, Any]:
    """The parsed apdb.yaml of the installed ``lsst-sdm-schemas``."""
    try:
        source = resources.files("lsst.sdm.schemas").joinpath("apdb.yaml")
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise ApdbSchemaError(
            "the APDB schema needs the lsst-sdm-schemas package (pip install lsst-sdm-schemas)"
        ) from err
    if not isinstance(document, dict) or "tables" not in document:
        raise ApdbSchemaError("apdb.yaml of lsst-sdm-schemas holds no tables")
    return document


def apdb_schema_version() -> str:
    """Version of the APDB schema in apdb.yaml (e.g. ``10.0.0``)."""
    return str(load_apdb_yaml()["version"])


def _column_name(reference: str) -> str:
    """``#DiaObject.diaObjectId`` → ``diaObjectId``."""
    return reference.rsplit(".", 1)[-1]


def _references(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [_column_name(v) for v in ([value] if isinstance(value, str) else value)]


def _column(spec: dict[str, Any]) -> Column[Any]:
    datatype = spec["datatype"]
    if datatype not in _TYPES:
        raise ApdbSchemaError(f"apdb.yaml column {spec['name']}: unknown datatype {datatype!r}")
    kind: TypeEngine[Any] = _TYPES[datatype](spec.get("length"))
    description = " ".join(str(spec.get("description", "")).split())
    unit = spec.get("fits:tunit") or spec.get("ivoa:unit")
    comment = f"{description} [{unit}]" if unit else description
    default = spec.get("value")
    return Column(spec["name"], kind, nullable=bool(spec.get("nullable", True)),
                  comment=comment or None, autoincrement=False,
                  server_default=None if default is None else text(repr(default)))


def _table(metadata: MetaData, spec: dict[str, Any]) -> Table:
    name = spec["name"]
    columns = [_column(c) for c in spec["columns"]]
    if name in PIXEL_TABLES:
        columns.append(Column(PIXEL_COLUMN, BigInteger, nullable=False, autoincrement=False,
                              comment=f"HTM level-{APDB_HTM_LEVEL} index of (ra, dec) (skyreg)"))
    constraints: list[Any] = []
    keys = _references(spec.get("primaryKey"))
    if keys:
        constraints.append(PrimaryKeyConstraint(*keys, name=f"pk_{name}"))
    table = Table(name, metadata, *columns, *constraints, schema=APDB_SCHEMA,
                  comment=" ".join(str(spec.get("description", "")).split()) or None)
    for index in spec.get("indexes", []):
        Index(index["name"], *(table.c[c] for c in _references(index["columns"])))
    return table


def _add_skyreg_indexes(tables: dict[str, Table]) -> None:
    objects = tables["DiaObject"]
    latest = objects.c.validityEndMjdTai.is_(None)
    Index("IDX_DiaObject_pixelId_latest", objects.c.pixelId, postgresql_where=latest)
    Index("UQ_DiaObject_latest", objects.c.diaObjectId, unique=True, postgresql_where=latest)
    for name in ("DiaSource", "DiaForcedSource"):
        table = tables[name]
        Index(f"IDX_{name}_pixelId", table.c.pixelId, table.c.midpointMjdTai)


def _stored_ccd(metadata: MetaData) -> Table:
    return Table(
        STORED_CCD_TABLE, metadata,
        Column("visit", BigInteger, nullable=False, autoincrement=False),
        Column("detector", SmallInteger, nullable=False, autoincrement=False),
        Column("visitTimeMjdTai", Double, nullable=False,
               comment="visit_time given to store (validityStartMjdTai of its DiaObjects)"),
        Column("digest", Text, nullable=False,
               comment="SHA-256 of the stored rows (canonical CSV): tells a re-run apart"),
        Column("nDiaObjects", Integer, nullable=False),
        Column("nDiaSources", Integer, nullable=False),
        Column("nDiaForcedSources", Integer, nullable=False),
        Column("storedAt", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("visit", "detector", name=f"pk_{STORED_CCD_TABLE}"),
        CheckConstraint(text("\"nDiaObjects\" >= 0"), name=f"ck_{STORED_CCD_TABLE}_counts"),
        schema=APDB_SCHEMA,
        comment="(visit, detector) pairs stored by skyreg's Apdb.store, with a digest (skyreg)",
    )


def build_apdb_metadata() -> MetaData:
    """SQLAlchemy metadata of the ``apdb`` schema, from apdb.yaml plus skyreg's additions."""
    document = load_apdb_yaml()
    metadata = MetaData()
    specs = {spec["name"]: spec for spec in document["tables"]}
    missing = [name for name in APDB_TABLES if name not in specs]
    if missing:
        raise ApdbSchemaError(f"apdb.yaml {document.get('version')} lacks tables {missing}")
    tables = {name: _table(metadata, specs[name]) for name in APDB_TABLES}
    _add_skyreg_indexes(tables)
    _stored_ccd(metadata)
    return metadata


@lru_cache(maxsize=1)
def apdb_metadata() -> MetaData:
    """The metadata, built once per process (the yaml is data of a pinned package)."""
    return build_apdb_metadata()


def apdb_table(name: str) -> Table:
    """One table of the ``apdb`` schema by its Rubin name (``DiaObject``, ...)."""
    return apdb_metadata().tables[f"{APDB_SCHEMA}.{name}"]
