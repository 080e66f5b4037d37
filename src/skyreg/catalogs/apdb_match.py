"""DiaObject → Object matches: cross-match a region's DiaObjects with a Level-2 catalog and
keep the answer in ``DiaObject_To_Object_Match``.

Alert production looks up the data-release Objects near its DiaObjects. The match of a region
reads the region's latest DiaObjects (exactly), cross-matches their positions with the catalog
(:meth:`.level2_query.Level2Catalog.near`, one statement), and replaces in one transaction
every match stored before for those DiaObjects — also for those that match nothing now — so a
re-run leaves exactly the latest answer, never a duplicate. The table has no key of its own,
so writers of overlapping regions take advisory locks on the DiaObject ids, in one sorted
order, before replacing: two concurrent runs cannot both insert the same object's matches.

``lnP`` (the log-probability that the two are the same source) stays NULL: it needs an error
model of both catalogs, which a generic Parquet catalog does not carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
from lsst.sphgeom import Region

from skyreg.catalogs.apdb_frames import layout, to_arrow, to_csv
from skyreg.catalogs.level2_query import Level2Catalog
from skyreg.catalogs.store import get_catalog
from skyreg.db.connection import writing

if TYPE_CHECKING:
    from skyreg.catalogs.apdb_store import Apdb

MATCH_TABLE = "DiaObject_To_Object_Match"
#: Advisory-lock class of match writers (apart from the store's CCD and object locks).
_MATCH_LOCK = 0x41504403
#: Default match radius: 1″, in degrees.
DEFAULT_RADIUS_DEG = 1.0 / 3600.0


@dataclass(frozen=True)
class MatchReport:
    """What one :meth:`Apdb.match_objects` did."""

    catalog: str
    dia_objects: int  #: latest DiaObjects inside the region
    matched: int  #: of them, those with at least one Object within the radius
    stored: int  #: DiaObject_To_Object_Match rows now stored for them
    replaced: int  #: rows stored before for them, dropped


def _table() -> str:
    return f'apdb."{MATCH_TABLE}"'


def _array(ids: npt.NDArray[np.int64]) -> str:
    return "{" + ",".join(map(str, ids.tolist())) + "}"


def resolve_catalog(apdb: Apdb, catalog: Any) -> Level2Catalog:
    """A Level2Catalog given as itself or by name (through the store's read session)."""
    if isinstance(catalog, Level2Catalog):
        return catalog
    return Level2Catalog(apdb.reads, get_catalog(apdb.reads.fetch, catalog))


def match_frame(objects: pd.DataFrame, catalog: Level2Catalog, radius: Any, *,
                nearest: bool) -> pd.DataFrame:
    """DiaObject_To_Object_Match rows for ``objects`` (diaObjectId, ra, dec) against
    ``catalog``: ``dist`` is the separation in arcseconds (as apdb.yaml's unit says)."""
    targets = pd.DataFrame({"ra": objects["ra"].to_numpy(np.float64),
                            "dec": objects["dec"].to_numpy(np.float64)})
    found = catalog.near(targets, radius, nearest=nearest)
    dia_ids = objects["diaObjectId"].to_numpy(np.int64)
    rows = found["input"].to_numpy(np.int64)
    return pd.DataFrame({
        "diaObjectId": dia_ids[rows],
        "objectId": found[catalog.info.id_column].to_numpy(np.int64),
        "dist": found["separation_arcsec"].to_numpy(np.float32),
        "lnP": np.full(len(rows), np.nan, dtype=np.float32)})


def replace_matches(driver: psycopg.Connection[Any], dia_object_ids: npt.NDArray[np.int64],
                    matches: pd.DataFrame) -> int:
    """In the caller's transaction: drop every match of ``dia_object_ids`` and store
    ``matches`` (whose diaObjectIds must be among them). Returns the rows dropped."""
    ids = np.unique(dia_object_ids.astype(np.int64))
    if len(ids) == 0:
        return 0
    driver.execute(
        f"SELECT count(pg_advisory_xact_lock({_MATCH_LOCK}, h)) FROM (SELECT DISTINCT "
        "hashint8(x) AS h FROM unnest(%s::int8[]) AS x ORDER BY 1) AS l", (_array(ids),))
    dropped = driver.execute(f'DELETE FROM {_table()} WHERE "diaObjectId" = ANY(%s::int8[])',
                             (_array(ids),)).rowcount
    if len(matches):
        data, columns = to_csv(to_arrow(matches, MATCH_TABLE), layout(MATCH_TABLE).columns)
        names = ", ".join(f'"{c}"' for c in columns)
        with driver.cursor() as cursor, cursor.copy(
                f"COPY {_table()} ({names}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(data)
    return max(dropped, 0)


def match_objects(apdb: Apdb, region: Region, catalog: Any, radius: Any, *,
                  nearest: bool) -> MatchReport:
    """See :meth:`skyreg.catalogs.apdb_store.Apdb.match_objects`."""
    target = resolve_catalog(apdb, catalog)
    objects = apdb.dia_objects_in_region(region, ("diaObjectId", "ra", "dec"))
    matches = match_frame(objects, target, radius, nearest=nearest)
    ids = objects["diaObjectId"].to_numpy(np.int64)
    replaced = 0
    if len(ids):
        with writing(apdb.engine, "the match store"), apdb.engine.begin() as connection:
            driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
            replaced = replace_matches(driver, ids, matches)
    return MatchReport(target.name, len(ids), int(matches["diaObjectId"].nunique()),
                       len(matches), replaced)
