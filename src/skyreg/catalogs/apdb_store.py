"""The Level-1 store: Rubin's APDB calls on PostgreSQL, exact and fast.

Reads turn a region into at most 16 ranges of HTM-20 ``pixelId`` (a B-tree range scan each),
drop on the server the candidates clearly outside the region
(:mod:`skyreg.catalogs.region_sql`), fetch the rest with ``COPY ... TO STDOUT`` in binary,
parsed by numpy
(:mod:`skyreg.catalogs.apdb_binary`), and keep the rows whose position the region contains
(sphgeom, vectorized): the result is exactly the region, never the superset dax_apdb hands
back.

Writes (:meth:`Apdb.store`) run in one transaction. The frames are checked, then the server
locks the objects and closes their open versions while a thread encodes the rows as binary
COPY data built from their Arrow buffers; the rows are COPYed straight into the tables (or,
when some of them are there already, through session temporary tables merged by a few
set-oriented statements). The rules:

* DiaObject rows are versions keyed by (diaObjectId, validityStartMjdTai); ``store`` gives its
  rows ``validityStartMjdTai = visit_time``. Each object's validity intervals form a chain —
  a version ends where the next begins, the latest is open (``validityEndMjdTai`` NULL) — and
  the chain is re-derived for every object a call touches, so versions may arrive in any
  order and a unique partial index guarantees one open version per object.
* Neighbouring CCDs of one visit share DiaObjects near their edges, so two writers may both
  store a version of the same object at the same visit time: the later commit replaces the
  earlier version (the rule of Cassandra-backed APDBs, "last writer wins"), never a duplicate.
  Writers lock the object ids they touch (advisory locks taken in one sorted order, then
  the CCD's, so two writers cannot deadlock) before reading the chains. A version newer
  than every stored one (the usual case) closes the open version in one statement without
  reading the chain.
* A (visit, detector) stored once is recorded with the digest of its rows (SHA-256 of the
  binary COPY data in key order; digests recorded over CSV by earlier versions are still
  recognised): storing the same
  rows again changes nothing; different rows for it are refused with a
  :class:`ApdbConflictError` that names them. A DiaSource or DiaForcedSource that exists with
  other values is refused the same way.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
import pyarrow as pa
from lsst.sphgeom import HtmPixelization, Region
from sqlalchemy import Engine

from skyreg.catalogs.apdb_binary import copy_out, frame_from_binary, select_list, to_binary
from skyreg.catalogs.apdb_frames import (
    add_pixels,
    check_unique,
    layout,
    to_arrow,
    to_csv,
    with_column,
)
from skyreg.catalogs.region_sql import region_conditions
from skyreg.db.connection import ReadConnection, writing
from skyreg.errors import ConflictError, InputError
from skyreg.geometry.htm_index import unit_vectors
from skyreg.geometry.polygons import GeometryError
from skyreg.schema.apdb import APDB_HTM_LEVEL, APDB_SCHEMA, PIXEL_COLUMN, STORED_CCD_TABLE

if TYPE_CHECKING:
    from skyreg.catalogs.apdb_match import MatchReport

#: Ranges per region query. dax_apdb uses 64 (htm_max_ranges); since the server drops the
#: candidates outside the region before sending them, fewer, wider ranges cost less planning
#: than the extra candidates cost filtering (measured on 40 CCD regions at a fifth of the
#: full data set: 9.2-10.2 ms of server time with 16, 10.9-11.2 ms with 64, 11.4-13.9 with 4).
MAX_RANGES = 16
#: One "month" of the history windows, as dax_apdb (read_sources_months x 30 days).
MONTH_DAYS = 30.0
#: Advisory-lock class ids (two-key form, apart from skyreg's single-key schema lock).
_CCD_LOCK = 0x41504401
_OBJECT_LOCK = 0x41504402
#: Conflicting rows named in an error message, at most.
_NAMED = 10

_PIXELIZATION = HtmPixelization(APDB_HTM_LEVEL)


class ApdbConflictError(ConflictError):
    """A store that contradicts what is stored: the message names the rows."""


@dataclass(frozen=True)
class StoreReport:
    """What one :meth:`Apdb.store` did."""

    visit: int | None
    detector: int | None
    already_stored: bool  #: the same rows were stored before: nothing changed
    objects_inserted: int = 0
    objects_replaced: int = 0  #: same-visit versions of another writer, replaced
    objects_unchanged: int = 0
    sources_inserted: int = 0
    forced_sources_inserted: int = 0


def mjd_tai(value: Any) -> float:
    """MJD (TAI) of an astropy Time, or a number taken as MJD TAI."""
    if hasattr(value, "tai") and hasattr(value, "mjd"):
        result = float(value.tai.mjd)
    else:
        try:
            result = float(value)
        except (TypeError, ValueError) as err:
            raise InputError(f"visit_time: expected an astropy Time or an MJD (TAI), got "
                             f"{value!r}", field="visit_time") from err
    if not math.isfinite(result):
        raise InputError(f"visit_time: must be finite, got {result}", field="visit_time")
    return result


def _q(name: str) -> str:
    """A quoted identifier (every APDB name is a plain word; quoting keeps its case)."""
    return '"' + name.replace('"', '""') + '"'


def _t(name: str) -> str:
    return f"{APDB_SCHEMA}.{_q(name)}"


def _columns(names: Iterable[str], prefix: str = "") -> str:
    return ", ".join(prefix + _q(n) for n in names)


def _region_conditions(region: Region) -> list[str]:
    """The envelope's ranges, then the conservative test of the region itself: fewer
    candidates sent, the client's exact test unchanged (:mod:`skyreg.catalogs.region_sql`)."""
    return [_ranges_condition(region), *region_conditions(region)]


def _ranges_condition(region: Region) -> str:
    """``pixelId`` in the region's HTM-20 envelope, as inline integer literals (COPY takes no
    parameters; the numbers come from sphgeom, not from the caller)."""
    ranges = [(int(a), int(b)) for a, b in _PIXELIZATION.envelope(region, MAX_RANGES)]
    if not ranges:
        return "FALSE"
    return "(" + " OR ".join(
        f"{_q(PIXEL_COLUMN)} BETWEEN {a} AND {b - 1}" for a, b in ranges) + ")"


def _id_condition(column: str, ids: npt.NDArray[np.int64]) -> str:
    if len(ids) == 0:
        return "FALSE"
    return f"{_q(column)} = ANY('{{{','.join(str(int(i)) for i in ids)}}}'::bigint[])"


def _ids(values: Any, field: str) -> npt.NDArray[np.int64]:
    try:
        array = np.unique(np.asarray(list(values), dtype=np.int64))
    except (TypeError, ValueError, OverflowError) as err:
        raise InputError(f"{field}: expected integer ids", field=field) from err
    return array


def _check_region(region: Any) -> Region:
    if not isinstance(region, Region):
        raise GeometryError("region: expected an lsst.sphgeom Region", field="region")
    return region


def inside(region: Region, ra: npt.NDArray[np.float64],
           dec: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Which positions (degrees) ``region`` contains: the exact test of every region read."""
    if len(ra) == 0:
        return np.zeros(0, dtype=bool)
    xyz = unit_vectors(ra, dec)
    return np.asarray(region.contains(xyz[:, 0], xyz[:, 1], xyz[:, 2]), dtype=bool)


class Apdb:
    """Rubin's APDB interface on the registry's database (``reg.apdb``).

    Reads go through the registry's read session (autocommit; retried once if the connection
    was lost); every :meth:`store` is one transaction on a connection of its own.
    """

    def __init__(self, engine: Engine, reads: ReadConnection | None = None) -> None:
        self.engine = engine
        self._reads = reads if reads is not None else ReadConnection(engine)

    @property
    def reads(self) -> ReadConnection:
        """The read session (shared with the registry's other reads)."""
        return self._reads

    # -- reads --------------------------------------------------------------------------------

    def _copy_out(self, select: str) -> bytes:
        def run(driver: psycopg.Connection[Any]) -> bytes:
            return copy_out(driver, f"COPY ({select}) TO STDOUT (FORMAT binary)")

        return self._reads.read(run)

    def _select(self, table: str, conditions: Sequence[str],
                columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows of ``table`` (all Rubin columns, or ``columns``) meeting every condition."""
        names = list(columns) if columns is not None else list(layout(table).columns)
        where = " AND ".join(f"({c})" for c in conditions) or "TRUE"
        sql = f"SELECT {select_list(table, names)} FROM {_t(table)} WHERE {where}"
        return frame_from_binary(self._copy_out(sql), table, names)

    def _exact(self, frame: pd.DataFrame, region: Region | None) -> pd.DataFrame:
        if region is None or frame.empty:
            return frame
        keep = inside(region, frame["ra"].to_numpy(np.float64),
                      frame["dec"].to_numpy(np.float64))
        return frame[keep].reset_index(drop=True)

    def get_dia_objects(self, region: Region) -> pd.DataFrame:
        """Latest versions of the DiaObjects whose position ``region`` contains (exactly)."""
        region = _check_region(region)
        frame = self._select("DiaObject", ['"validityEndMjdTai" IS NULL',
                                           *_region_conditions(region)])
        return self._exact(frame, region)

    def dia_objects_in_region(self, region: Region, columns: Sequence[str] = (
            "diaObjectId", "ra", "dec")) -> pd.DataFrame:
        """A few columns of the latest DiaObjects in ``region`` (exact): what a cross-match
        against an Object catalog reads."""
        region = _check_region(region)
        names = list(dict.fromkeys([*columns, "ra", "dec"]))
        unknown = [n for n in names if n not in layout("DiaObject").types]
        if unknown:
            raise InputError(f"DiaObject has no column {unknown[0]!r}", field=unknown[0])
        frame = self._select("DiaObject", ['"validityEndMjdTai" IS NULL',
                                           *_region_conditions(region)], names)
        return self._exact(frame, region)[list(columns)]

    def _history(self, table: str, region: Region | None, object_ids: Any, visit_time: Any,
                 months: float | None) -> pd.DataFrame:
        conditions: list[str] = []
        if region is None and object_ids is None:
            raise InputError(f"{table}: give a region, object_ids or both", field="region")
        if region is not None:
            region = _check_region(region)
            conditions += _region_conditions(region)
        if object_ids is not None:
            conditions.append(_id_condition("diaObjectId", _ids(object_ids, "object_ids")))
        if months is not None:
            if not isinstance(months, int | float) or not math.isfinite(months) or months < 0:
                raise InputError(f"months: expected a number >= 0, got {months!r}",
                                 field="months")
            start = mjd_tai(visit_time) - months * MONTH_DAYS
            conditions.append(f'"midpointMjdTai" > {float(start)!r}')
        return self._exact(self._select(table, conditions), region)

    def get_dia_sources(self, region: Region | None = None, object_ids: Any = None, *,
                        visit_time: Any = None, months: float | None = 12) -> pd.DataFrame:
        """DiaSources of the last ``months`` x 30 days before ``visit_time`` (MJD TAI or an
        astropy Time), in ``region`` (exactly) and/or of ``object_ids``; ``months=None``:
        the whole history."""
        if months is not None and visit_time is None:
            raise InputError("visit_time is needed for a history window (or months=None)",
                             field="visit_time")
        return self._history("DiaSource", region, object_ids, visit_time, months)

    def get_dia_forced_sources(self, region: Region | None = None, object_ids: Any = None, *,
                               visit_time: Any = None,
                               months: float | None = 12) -> pd.DataFrame:
        """DiaForcedSources, selected as :meth:`get_dia_sources`."""
        if months is not None and visit_time is None:
            raise InputError("visit_time is needed for a history window (or months=None)",
                             field="visit_time")
        return self._history("DiaForcedSource", region, object_ids, visit_time, months)

    def contains_visit_detector(self, visit: int, detector: int) -> bool:
        """Whether anything of (visit, detector) is stored: a ``store`` of it, or its
        DiaSources or DiaForcedSources (bulk loads)."""
        try:
            key = (int(visit), int(detector))
        except (TypeError, ValueError) as err:
            raise InputError("visit and detector must be integers", field="visit") from err
        sql = " OR ".join(
            f"EXISTS (SELECT 1 FROM {_t(name)} WHERE visit = %(visit)s AND detector = "
            "%(detector)s)" for name in (STORED_CCD_TABLE, "DiaSource", "DiaForcedSource"))

        def run(driver: psycopg.Connection[Any]) -> bool:
            # Never prepared: a generic plan cannot know that one (visit, detector) is a few
            # rows of DiaForcedSource and scanned the whole table (measured: 37 ms at 320,000
            # rows, against 0.1 ms for the custom plan's index-only scans, planned in 0.6 ms).
            row = driver.execute(f"SELECT {sql}", {"visit": key[0], "detector": key[1]},
                                 prepare=False).fetchone()
            return bool(row and row[0])

        return self._reads.read(run)

    def count(self, table: str) -> int:
        """Rows of an APDB table (all DiaObject versions)."""
        layout(table)  # a known table

        def run(driver: psycopg.Connection[Any]) -> int:
            row = driver.execute(f"SELECT count(*) FROM {_t(table)}").fetchone()
            return int(row[0]) if row else 0

        return self._reads.read(run)

    # -- writes -------------------------------------------------------------------------------

    def store(self, visit_time: Any, objects: pd.DataFrame,
              sources: pd.DataFrame | None = None,
              forced_sources: pd.DataFrame | None = None) -> StoreReport:
        """Store one CCD's new and updated DiaObjects, its DiaSources and DiaForcedSources.

        One transaction. DiaObjects get ``validityStartMjdTai = visit_time``; the (visit,
        detector) is read from the sources (all rows of one call belong to one CCD). Storing
        the same rows again is a no-op; different rows for a stored CCD are refused.
        """
        time = mjd_tai(visit_time)
        objects_table = to_arrow(objects, "DiaObject",
                                 fixed=("validityStartMjdTai", "validityEndMjdTai"),
                                 pixel=False)
        objects_table = with_column(objects_table, "validityStartMjdTai",
                                    pa.array(np.full(objects_table.num_rows, time)))
        check_unique(objects_table, "DiaObject")
        # The server starts on the objects (their locks, the closing of their open
        # versions: ~15 ms) while a thread checks the sources and makes every row ready to
        # write (~15 ms: pixel indices, key order, COPY data); the server's waits release
        # the GIL. A refused input is raised from the thread: nothing is written.
        pool = _prepare_executor()
        source_rows = pool.submit(_sources_to_write, objects_table, sources, forced_sources)
        rows = pool.submit(_rows_to_write, time, source_rows)
        threads: list[futures.Future[Any]] = [source_rows, rows]
        try:
            with writing(self.engine, "the APDB store"), self.engine.begin() as connection:
                driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
                return _Store(driver, time, objects_table, source_rows, rows,
                              _likely_ccd(sources, forced_sources)).run()
        finally:
            # Back to the caller only once nothing reads its frames any more.
            futures.wait(threads)

    def store_matches(self, matches: pd.DataFrame) -> int:
        """Replace the DiaObject → Object matches of the DiaObjects in ``matches``.

        ``matches`` has DiaObject_To_Object_Match's columns (diaObjectId, objectId, dist, lnP);
        every match stored before for one of its diaObjectIds is dropped first (in the same
        transaction, under the match writers' locks). Returns rows stored. To cross-match a
        region and store the answer, see :meth:`match_objects`.
        """
        from skyreg.catalogs.apdb_match import MATCH_TABLE, replace_matches

        table = to_arrow(matches, MATCH_TABLE)
        ids = _ids(table.column("diaObjectId").to_numpy(), "diaObjectId")
        with writing(self.engine, "the match store"), self.engine.begin() as connection:
            driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
            replace_matches(driver, ids, matches)
        return int(table.num_rows)

    def match_objects(self, region: Region, catalog: Any, radius: Any = 1.0 / 3600.0, *,
                      nearest: bool = True) -> MatchReport:
        """Cross-match the latest DiaObjects in ``region`` with a Level-2 catalog and keep
        the answer in ``DiaObject_To_Object_Match``.

        ``catalog``: a :class:`~skyreg.catalogs.level2_query.Level2Catalog` or its name.
        ``radius``: degrees or an astropy quantity (default 1″, at most 7°). ``nearest``:
        the closest Object of each DiaObject only (ties: smallest id), else every Object
        within the radius. ``dist`` is the separation in arcseconds, ``lnP`` NULL. One
        transaction replaces every match stored before for the region's DiaObjects, also of
        those that match nothing now: a re-run leaves exactly the latest answer.
        """
        from skyreg.catalogs.apdb_match import match_objects

        return match_objects(self, _check_region(region), catalog, radius, nearest=nearest)

    def get_matches(self, dia_object_ids: Any) -> pd.DataFrame:
        """Stored DiaObject → Object matches of ``dia_object_ids``."""
        return self._select("DiaObject_To_Object_Match", [
            _id_condition("diaObjectId", _ids(dia_object_ids, "dia_object_ids"))])


def _ccd_of(batches: dict[str, pa.Table]) -> tuple[int, int] | None:
    """The one (visit, detector) of a store's sources, None when it has none."""
    pairs: set[tuple[int, int]] = set()
    for name in ("DiaSource", "DiaForcedSource"):
        table = batches.get(name)
        if table is None or table.num_rows == 0:
            continue
        visits = np.unique(table.column("visit").to_numpy())
        detectors = np.unique(table.column("detector").to_numpy())
        if len(visits) > 1 or len(detectors) > 1:
            raise InputError(f"{name}: one store holds one CCD's rows, got visits "
                             f"{visits[:5].tolist()} and detectors {detectors[:5].tolist()}",
                             field="visit")
        pairs.add((int(visits[0]), int(detectors[0])))
    if len(pairs) > 1:
        raise InputError(f"DiaSource and DiaForcedSource name different CCDs: {sorted(pairs)}",
                         field="visit")
    return next(iter(pairs)) if pairs else None


def _likely_ccd(*frames: pd.DataFrame | None) -> tuple[int, int] | None:
    """The CCD the sources name as given, before they are checked (by :func:`_ccd_of`, which
    decides), or None where that is not plain: its lock can then go in the first round
    trip."""
    pairs: set[tuple[int, int]] = set()
    for frame in frames:
        if frame is None or len(frame) == 0:
            continue
        if not isinstance(frame, pd.DataFrame) or not {"visit", "detector"} <= set(frame):
            return None
        visits, detectors = frame["visit"].to_numpy(), frame["detector"].to_numpy()
        if (visits.dtype.kind not in "iu" or detectors.dtype.kind not in "iu"
                or (visits != visits[0]).any() or (detectors != detectors[0]).any()):
            return None
        pairs.add((int(visits[0]), int(detectors[0])))
    return pairs.pop() if len(pairs) == 1 else None


def _canonical(table: pa.Table, name: str) -> pa.Table:
    """The rows in key order: equal row sets give equal COPY bytes (the digest)."""
    if table.num_rows < 2:
        return table
    return table.sort_by([(k, "ascending") for k in layout(name).key
                          if k in table.column_names])


@dataclass(frozen=True)
class _SourceRows:
    """A store's checked DiaSources and DiaForcedSources, ready to write (with ``pixelId``,
    in key order, as COPY data), their CCD, and the DiaObjects with ``pixelId``."""

    ccd: tuple[int, int] | None
    tables: dict[str, pa.Table]
    data: dict[str, tuple[bytes, tuple[str, ...]]]
    objects: pa.Table


def _sources_to_write(objects: pa.Table, sources: pd.DataFrame | None,
                      forced_sources: pd.DataFrame | None) -> _SourceRows:
    """Check the sources, index every row's position (forced sources lie at the objects'
    positions: each distinct position is indexed once) and encode the sources."""
    batches = {"DiaObject": objects}
    if sources is not None:
        batches["DiaSource"] = to_arrow(sources, "DiaSource", pixel=False)
    if forced_sources is not None:
        batches["DiaForcedSource"] = to_arrow(forced_sources, "DiaForcedSource", pixel=False)
    for name, table in batches.items():
        if name != "DiaObject":
            check_unique(table, name)
    ccd = _ccd_of(batches)
    batches = add_pixels(batches)
    tables = {name: _canonical(table, name) for name, table in batches.items()
              if name != "DiaObject"}
    data = {name: to_binary(table, layout(name).stored_columns)
            for name, table in tables.items()}
    return _SourceRows(ccd, tables, data, batches["DiaObject"])


@dataclass(frozen=True)
class _Rows:
    """All rows of a store ready to write: Arrow tables with ``pixelId`` in key order, their
    COPY data, and the digest of it all."""

    tables: dict[str, pa.Table]
    data: dict[str, tuple[bytes, tuple[str, ...]]]
    digest: str


def _rows_to_write(time: float, source_rows: futures.Future[_SourceRows]) -> _Rows:
    """Encode the DiaObjects (while the server takes the sources) and digest the store."""
    ready = source_rows.result()
    objects = _canonical(ready.objects, "DiaObject")
    data = {"DiaObject": to_binary(objects, layout("DiaObject").stored_columns), **ready.data}
    return _Rows({"DiaObject": objects, **ready.tables}, data, store_digest(time, data))


_executor: tuple[int, futures.ThreadPoolExecutor] | None = None


def _prepare_executor() -> futures.ThreadPoolExecutor:
    """The threads that prepare stores' rows, one pool per process (a pool's threads do not
    survive a fork: a forked child that used its parent's pool would wait forever)."""
    global _executor
    if _executor is None or _executor[0] != os.getpid():
        _executor = (os.getpid(), futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="skyreg-apdb-store"))
    return _executor[1]


#: Marks digests taken over the binary COPY data; digests without it were taken over CSV.
_DIGEST_FORMAT = "bin1:"


def store_digest(time: float, data: dict[str, tuple[bytes, tuple[str, ...]]],
                 legacy: bool = False) -> str:
    """SHA-256 of what one store writes: the visit time, then per table its columns and
    rows as COPY data (in key order). ``legacy``: ``data`` holds CSV (digests of CCDs
    stored before the binary format, recognised by their missing prefix)."""
    digest = hashlib.sha256(repr(time).encode())
    for name in ("DiaObject", "DiaSource", "DiaForcedSource"):
        digest.update(name.encode() + b"\0")
        if name in data:
            digest.update(",".join(data[name][1]).encode() + b"\0" + data[name][0])
    return digest.hexdigest() if legacy else _DIGEST_FORMAT + digest.hexdigest()


def _same_digest(stored: str, time: float, tables: dict[str, pa.Table], digest: str) -> bool:
    if stored.startswith(_DIGEST_FORMAT):
        return stored == digest
    csv = {name: to_csv(table, layout(name).stored_columns) for name, table in tables.items()}
    return stored == store_digest(time, csv, legacy=True)


def _temp(name: str) -> str:
    return _q(f"skyreg_apdb_{name}")


class _Store:
    """The statements of one store, in one transaction (see the module docstring)."""

    def __init__(self, driver: psycopg.Connection[Any], time: float, objects: pa.Table,
                 source_rows: futures.Future[_SourceRows], rows: futures.Future[_Rows],
                 likely_ccd: tuple[int, int] | None) -> None:
        self.driver = driver
        self.time = time
        self.objects = objects  # checked, in the caller's order, without pixelId
        self._source_rows = source_rows
        self._rows = rows
        self.likely_ccd = likely_ccd
        self.ccd: tuple[int, int] | None = None
        self.data: dict[str, tuple[bytes, tuple[str, ...]]] = {}
        self.counts: dict[str, int] = {}

    def source_rows(self) -> _SourceRows:
        """The sources, waiting for their thread."""
        ready = self._source_rows.result()
        self.ccd = ready.ccd
        self.data = dict(ready.data)
        self.counts = {name: table.num_rows for name, table in ready.tables.items()}
        return ready

    def rows(self) -> _Rows:
        """Every row, waiting for their thread."""
        ready = self._rows.result()
        self.data = ready.data
        self.counts = {name: table.num_rows for name, table in ready.tables.items()}
        return ready

    def run(self) -> StoreReport:
        driver = self.driver
        # Each round trip is a wait for the server's turn on a core: under load, 0.3-3 ms of
        # a store's wall time apiece, so statements go in pipelines. First the planner
        # settings, the objects' locks and the closing of their open versions (the usual
        # case of merge_objects), and the CCD's lock and digest. The locks are taken in that
        # order by every store (objects in sorted order, then the CCD): two writers cannot
        # deadlock. The CCD is the one the sources name as given; should the checked sources
        # name another, its lock and digest take a round trip of their own. The temporary
        # tables are made only by the paths that use them (a visit's store copies straight
        # into the tables).
        closing_cursor = digest_cursor = None
        ids = self.objects.column("diaObjectId").to_numpy().astype(np.int64)
        starts = self.objects.column("validityStartMjdTai").to_numpy().astype(np.float64)
        with driver.pipeline():
            _key_lookups_only(driver)
            if len(ids):  # (ids are unique: check_unique, all versions start at self.time)
                closing_cursor = lock_and_close(driver, ids, starts)
            if self.likely_ccd is not None:
                digest_cursor = self._lock_ccd(self.likely_ccd)
        closed = (np.fromiter((row[0] for row in closing_cursor.fetchall()), np.int64)
                  if closing_cursor is not None else np.zeros(0, dtype=np.int64))
        self.source_rows()
        if self.ccd is not None and self.ccd != self.likely_ccd:
            with driver.pipeline():
                digest_cursor = self._lock_ccd(self.ccd)
        stored = (digest_cursor.fetchone()
                  if self.ccd is not None and digest_cursor is not None else None)
        if stored is not None:
            assert self.ccd is not None
            rows = self.rows()
            # Stored with the same rows: the closing above changed nothing, as every object
            # of the CCD has a version starting at self.time (stored by the CCD, or by a
            # neighbour of the same visit), and its open version starts there or later.
            if _same_digest(stored[0], self.time, rows.tables, rows.digest):
                return StoreReport(*self.ccd, already_stored=True)
            copy_to_temps(driver, self.data)
            self._refuse_rerun()
        inserted = self._insert_sources(
            [n for n in ("DiaSource", "DiaForcedSource") if n in self.data])
        sources, forced = inserted.get("DiaSource", 0), inserted.get("DiaForcedSource", 0)
        rows = self.rows()
        objects = rows.tables["DiaObject"]
        merged = (merge_objects(driver, objects, replace=True, data=self.data["DiaObject"],
                                closed=closed)
                  if objects.num_rows else MergeResult(0, 0, 0, []))
        if self.ccd is not None:
            driver.execute(
                f"INSERT INTO {_t(STORED_CCD_TABLE)} (visit, detector, {_q('visitTimeMjdTai')}, "
                f"digest, {_q('nDiaObjects')}, {_q('nDiaSources')}, {_q('nDiaForcedSources')}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (*self.ccd, self.time, rows.digest, self.counts.get("DiaObject", 0),
                 self.counts.get("DiaSource", 0), self.counts.get("DiaForcedSource", 0)))
        visit, detector = self.ccd if self.ccd is not None else (None, None)
        return StoreReport(visit, detector, False, merged.inserted, merged.replaced,
                           merged.unchanged, sources, forced)

    def _lock_ccd(self, ccd: tuple[int, int]) -> psycopg.Cursor[Any]:
        """Lock the CCD; the cursor returns its stored digest, if any (for a pipeline)."""
        self.driver.execute("SELECT pg_advisory_xact_lock(%s, hashint8(%s::bigint * 65536 "
                            "+ %s))", (_CCD_LOCK, *ccd))
        return self.driver.execute(f"SELECT digest FROM {_t(STORED_CCD_TABLE)} WHERE "
                                   "visit = %s AND detector = %s", ccd)

    def _keys(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.driver.execute(sql).fetchall()]

    def _refuse_rerun(self) -> None:
        """This CCD was stored with other rows: name what differs, then refuse."""
        assert self.ccd is not None
        visit, detector = self.ccd
        problems: list[str] = []
        for name in ("DiaSource", "DiaForcedSource"):
            key = layout(name).key
            columns = layout(name).stored_columns
            if name in self.data:
                changed = self._keys(
                    f"SELECT {_columns(key, 't.')} FROM {_temp(name)} AS t WHERE NOT EXISTS ("
                    f"SELECT 1 FROM {_t(name)} AS s WHERE ({_columns(columns, 's.')}) IS NOT "
                    f"DISTINCT FROM ({_columns(columns, 't.')})) ORDER BY 1 LIMIT {_NAMED}")
                problems += [f"{name} {_key_text(key, k)} differs or is new" for k in changed]
            kept = (f"AND NOT EXISTS (SELECT 1 FROM {_temp(name)} AS t WHERE "
                    f"({_columns(key, 't.')}) = ({_columns(key, 's.')}))"
                    if name in self.data else "")
            gone = self._keys(
                f"SELECT {_columns(key, 's.')} FROM {_t(name)} AS s WHERE s.visit = {visit} "
                f"AND s.detector = {detector} {kept} ORDER BY 1 LIMIT {_NAMED}")
            problems += [f"{name} {_key_text(key, k)} was stored and is missing now"
                         for k in gone]
        values = _object_values()
        changed = self._keys(
            f"SELECT t.{_q('diaObjectId')} FROM {_temp('DiaObject')} AS t WHERE NOT EXISTS ("
            f"SELECT 1 FROM {_t('DiaObject')} AS d WHERE d.{_q('diaObjectId')} = "
            f"t.{_q('diaObjectId')} AND d.{_q('validityStartMjdTai')} = "
            f"t.{_q('validityStartMjdTai')} AND ({_columns(values, 'd.')}) IS NOT DISTINCT "
            f"FROM ({_columns(values, 't.')})) ORDER BY 1 LIMIT {_NAMED}")
        problems += [f"DiaObject diaObjectId={k[0]} differs from the stored version or is new"
                     for k in changed]
        detail = "; ".join(problems[:_NAMED]) or "the visit time or the row set differs"
        raise ApdbConflictError(
            f"visit {visit} detector {detector} was stored before with other rows; a re-run "
            f"must store the same rows (nothing was written): {detail}")

    def _insert_sources(self, names: Sequence[str]) -> dict[str, int]:
        """Insert the new DiaSources and DiaForcedSources; refuse rows stored before with
        other values.

        A CCD not stored before usually brings only new sources: they are copied straight
        into their tables, under a savepoint (with the objects copied straight in too, a
        store cost the server 49.3 ms instead of 56.9 ms through the temporary tables,
        measured at full scale, docs/benchmarks.md). If one of
        them is there already (a bulk load brought it), the savepoint is rolled back and
        they go in the careful way, through the temporary tables, which names the ones
        stored with other values.
        """
        driver = self.driver
        if not names:
            return {}
        driver.execute("SAVEPOINT skyreg_apdb_sources")
        try:
            counts = {name: copy_into(driver, _t(name), *self.data[name]) for name in names}
            driver.execute("RELEASE SAVEPOINT skyreg_apdb_sources")
            return counts
        except psycopg.errors.UniqueViolation:
            driver.execute("ROLLBACK TO SAVEPOINT skyreg_apdb_sources")
        copy_to_temps(driver, {name: self.data[name] for name in names})
        counts = insert_new_many(driver, names)
        for name in names:
            if counts[name] < self.counts.get(name, 0):  # some were there: same values?
                clash = clashing_keys(self.driver, name, _NAMED)
                if clash:
                    raise ApdbConflictError(
                        f"{name}: rows stored before with other values (nothing was "
                        "written): " + "; ".join(_key_text(layout(name).key, k)
                                                 for k in clash))
        return counts


def _key_lookups_only(driver: psycopg.Connection[Any]) -> None:
    """:func:`key_lookups_only` as two statements (a pipeline takes one at a time)."""
    driver.execute("SET LOCAL enable_hashjoin = off")
    driver.execute("SET LOCAL enable_mergejoin = off")


def key_lookups_only(driver: psycopg.Connection[Any]) -> None:
    """Plan this transaction's joins as index lookups by key.

    A write joins a few thousand new rows with tables of millions by their keys; the planner
    sometimes prefers to scan and hash the whole catalog (measured: 80-170 ms per statement
    on a 40,000-row DiaObject, where key lookups take a few). The temporary tables get
    statistics of their key columns only (:func:`copy_to_temp`): a full ANALYZE of a
    1,000-row, 84-column table costs 20 ms.
    """
    driver.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")


def copy_to_temp(driver: psycopg.Connection[Any], name: str, data: bytes,
                 columns: Sequence[str]) -> None:
    """COPY rows of table ``name`` (binary COPY data of :func:`to_binary`) into its session
    temporary twin (emptied at commit), then its row count and key statistics, so that joins
    on the key are planned as lookups."""
    copy_to_temps(driver, {name: (data, tuple(columns))})


def _create_temp_sql(name: str) -> str:
    return (f"CREATE TEMP TABLE IF NOT EXISTS {_temp(name)} "
            f"(LIKE {_t(name)} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")


def copy_to_temps(driver: psycopg.Connection[Any],
                  frames: dict[str, tuple[bytes, tuple[str, ...]]]) -> None:
    """:func:`copy_to_temp` for several tables in three round trips fewer per table: one
    message creates the temporary tables, one COPY each, one ANALYZE for all."""
    if not frames:
        return
    driver.execute("; ".join(_create_temp_sql(name) for name in frames))
    for name, (data, columns) in frames.items():
        copy_into(driver, _temp(name), data, columns)
    driver.execute(_analyze_sql(frames))


def copy_into(driver: psycopg.Connection[Any], target: str, data: bytes,
              columns: Sequence[str]) -> int:
    """COPY binary data (of :func:`to_binary`) into ``target`` (a quoted table name);
    returns the rows copied."""
    if not data:
        return 0
    with driver.cursor() as cursor:
        with cursor.copy(f"COPY {target} ({_columns(columns)}) FROM STDIN (FORMAT binary)"
                         ) as copy:
            copy.write(data)
        return max(cursor.rowcount, 0)


def _analyze_sql(frames: dict[str, Any]) -> str:
    return "ANALYZE " + ", ".join(
        f"{_temp(name)} ({_columns(layout(name).key)})" for name in frames)


def _clash_condition(name: str, stored: str = "s") -> str:
    """Rows of the temporary table ``t`` whose key is stored (as ``stored``) with other
    values (for DiaObject: other values than its validity)."""
    spec = layout(name)
    values = _object_values() if name == "DiaObject" else list(spec.stored_columns)
    return (f"({_columns(spec.key, stored + '.')}) = ({_columns(spec.key, 't.')}) AND "
            f"({_columns(values, stored + '.')}) IS DISTINCT FROM ({_columns(values, 't.')})")


def clashing_keys(driver: psycopg.Connection[Any], name: str,
                  limit: int | None = None) -> list[tuple[Any, ...]]:
    """Keys in the temporary table of ``name`` stored with other values (sorted)."""
    key = layout(name).key
    bound = f" LIMIT {int(limit)}" if limit is not None else ""
    rows = driver.execute(
        f"SELECT {_columns(key, 't.')} FROM {_temp(name)} AS t JOIN {_t(name)} AS s ON "
        f"{_clash_condition(name)} ORDER BY {', '.join(str(i + 1) for i in range(len(key)))}"
        f"{bound}").fetchall()
    return [tuple(row) for row in rows]


def discard_clashes(driver: psycopg.Connection[Any], name: str) -> None:
    """Drop from the temporary table the rows :func:`clashing_keys` names."""
    driver.execute(f"DELETE FROM {_temp(name)} AS t USING {_t(name)} AS s "
                   f"WHERE {_clash_condition(name)}")


def _insert_sql(name: str) -> str:
    """Insert the temporary rows of ``name`` (all of them: none may be stored already)."""
    columns = layout(name).stored_columns
    return (f"INSERT INTO {_t(name)} ({_columns(columns)}) SELECT {_columns(columns, 't.')} "
            f"FROM {_temp(name)} AS t")


def _insert_new_sql(name: str) -> str:
    return _insert_sql(name) + " ON CONFLICT DO NOTHING"


def insert_new(driver: psycopg.Connection[Any], name: str) -> int:
    """Insert the temporary rows of a source table whose key is not stored yet."""
    return max(driver.execute(_insert_new_sql(name)).rowcount, 0)


def insert_new_many(driver: psycopg.Connection[Any], names: Sequence[str]) -> dict[str, int]:
    """:func:`insert_new` of several tables in one message (one round trip); rows inserted
    per table."""
    if not names:
        return {}
    cursor = driver.execute("; ".join(_insert_new_sql(name) for name in names))
    counts = [max(cursor.rowcount, 0)]
    while cursor.nextset():
        counts.append(max(cursor.rowcount, 0))
    if len(counts) != len(names):
        raise RuntimeError(f"expected {len(names)} results, got {len(counts)}")
    return dict(zip(names, counts, strict=True))


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge_objects` did."""

    inserted: int
    replaced: int
    unchanged: int
    clashes: list[tuple[Any, ...]]  #: same key, other values: refused (when not replacing)


def _chain(ids: npt.NDArray[np.int64], starts: npt.NDArray[np.float64]
           ) -> npt.NDArray[np.float64]:
    """Validity end of each (id, start): the next greater start of the same id, NaN for the
    last. Pairs given twice (stored and given again) are one version and get the same end.
    """
    order = np.lexsort((starts, ids))
    sorted_ids, sorted_starts = ids[order], starts[order]
    # Runs of equal (id, start) collapse to their first element: the distinct versions.
    first = np.ones(len(ids), dtype=bool)
    first[1:] = (sorted_ids[1:] != sorted_ids[:-1]) | (sorted_starts[1:] != sorted_starts[:-1])
    version = np.cumsum(first) - 1  # distinct version of each sorted element
    distinct_ids, distinct_starts = sorted_ids[first], sorted_starts[first]
    version_ends = np.full(len(distinct_ids), np.nan)
    same = distinct_ids[1:] == distinct_ids[:-1]
    version_ends[:-1][same] = distinct_starts[1:][same]
    ends = np.empty(len(ids))
    ends[order] = version_ends[version]
    return ends


def _array(values: npt.NDArray[Any]) -> str:
    """An array literal for a ``%s::int8[]``/``float8[]`` parameter: psycopg's list dumper
    checks every element (measured: 5 ms for 800 ids), the text form is one join; repr of a
    float is its shortest exact form."""
    return "{" + ",".join(map(repr, values.tolist())) + "}"


_OBJECT_LOCK_SQL = (f"SELECT count(pg_advisory_xact_lock({_OBJECT_LOCK}, h)) FROM (SELECT "
                    "DISTINCT hashint8(x) AS h FROM unnest(%s::int8[]) AS x ORDER BY 1) AS l")


def lock_and_close(driver: psycopg.Connection[Any], ids: npt.NDArray[np.int64],
                   starts: npt.NDArray[np.float64]) -> psycopg.Cursor[Any]:
    """Lock the objects ``ids`` (unique) and close each one's open version where it starts
    before the given version (``starts``); the cursor returns the closed objects' ids.

    The usual case of a merge: the given version is newer than every stored one (a visit's
    objects, of an object seen before). The open version is the newest of its chain, so
    closing it settles the chain in one statement, by the unique index of open versions,
    without reading any stored version (measured: the read cost 10-18 ms of a CCD's store,
    the update of the ends another 8-12 ms). Two statements, to be sent in a pipeline.
    """
    oid, start, end = _q("diaObjectId"), _q("validityStartMjdTai"), _q("validityEndMjdTai")
    driver.execute(_OBJECT_LOCK_SQL, (_array(np.unique(ids)),))
    return driver.execute(
        f"UPDATE {_t('DiaObject')} AS d SET {end} = u.s FROM unnest(%s::int8[], "
        f"%s::float8[]) AS u(i, s) WHERE d.{oid} = u.i AND d.{end} IS NULL AND "
        f"d.{start} < u.s RETURNING d.{oid}", (_array(ids), _array(starts)))


def merge_objects(driver: psycopg.Connection[Any], table: pa.Table, *,
                  replace: bool, data: tuple[bytes, tuple[str, ...]] | None = None,
                  closed: npt.NDArray[np.int64] | None = None) -> MergeResult:
    """Merge DiaObject versions (an Arrow table with validityStartMjdTai and pixelId).

    Locks the objects, reads their stored version starts, derives every version's validity
    end in numpy (each ends where the next begins), then: corrects the ends of stored
    versions, replaces same-key versions that differ (``replace``, the rule for neighbouring
    CCDs of one visit) or refuses them (reported in ``clashes``), inserts new versions.
    Statements look rows up by key: arrays in, no joins left to the planner's guesses.
    ``data``: the rows (without validity ends) as :func:`to_binary` data, if the caller
    has them (else they are made here). ``closed``: the caller ran :func:`lock_and_close`
    on these rows in this transaction, which closed these objects. When every given version
    is either the newest of its object or the first one of a new object (a visit's store, a
    first load), they are copied straight into DiaObject; otherwise they go through the
    temporary table.
    """
    oid, start, end = _q("diaObjectId"), _q("validityStartMjdTai"), _q("validityEndMjdTai")
    catalog = _t("DiaObject")
    ids = table.column("diaObjectId").to_numpy().astype(np.int64)
    starts = table.column("validityStartMjdTai").to_numpy().astype(np.float64)
    unique_ids = np.unique(ids)
    # The objects lock_and_close did not close (new ones, a version of the same visit
    # stored by a neighbouring CCD, or one older than what is stored) take the general
    # path below. The lock and that statement go in one round trip (a pipeline).
    if closed is None and len(ids) and len(unique_ids) == len(ids):
        with driver.pipeline():
            closing_cursor = lock_and_close(driver, ids, starts)
        closed = np.fromiter((row[0] for row in closing_cursor.fetchall()), np.int64)
    elif closed is None:
        driver.execute(_OBJECT_LOCK_SQL, (_array(unique_ids),))
    newest = (np.isin(ids, closed) if closed is not None and len(closed)
              else np.zeros(len(ids), dtype=bool))
    other_ids = unique_ids if not newest.any() else np.unique(ids[~newest])
    # The stored versions of the others as fixed-width binary COPY, straight into numpy
    # (fetching them as Python tuples cost ~1 µs a value). COPY takes no parameters: the ids
    # are numpy's.
    names = ["diaObjectId", "validityStartMjdTai", "validityEndMjdTai"]
    if len(other_ids):
        versions = frame_from_binary(copy_out(
            driver, f"COPY (SELECT {select_list('DiaObject', names)} FROM {catalog} WHERE "
            f"{oid} = ANY('{_array(other_ids)}'::int8[])) TO STDOUT (FORMAT binary)"),
            "DiaObject", names)
        stored_ids = versions["diaObjectId"].to_numpy(np.int64)
        stored_starts = versions["validityStartMjdTai"].to_numpy(np.float64)
        stored_ends = versions["validityEndMjdTai"].to_numpy(np.float64)
    else:
        stored_ids = np.zeros(0, dtype=np.int64)
        stored_starts = stored_ends = np.zeros(0, dtype=np.float64)
    # A key both stored and given is one version: the chain runs over distinct keys (in
    # numpy: pandas' drop_duplicates and two merges cost ~8 ms of a CCD's store). The newest
    # versions are open (their end stays NULL).
    every_end = _chain(np.concatenate([stored_ids, ids[~newest]]),
                       np.concatenate([stored_starts, starts[~newest]]))
    new_ends = np.full(len(ids), np.nan)
    new_ends[~newest] = every_end[len(stored_ids):]
    # Rows are copied without their ends, then the few that are not open get theirs:
    # usually none, as a visit's versions are the newest.
    if "validityEndMjdTai" in table.column_names:
        table = table.drop_columns(["validityEndMjdTai"])
    if data is None:
        data = to_binary(table, layout("DiaObject").stored_columns)
    closed = ~np.isnan(new_ends)
    if not len(stored_ids) and not closed.any():
        # Nothing stored to correct, replace or clash with, and every given version open:
        # straight into the table (saves the server the COPY into the temporary table and
        # the INSERT from it; see _Store._insert_sources for what the two together save).
        inserted = copy_into(driver, catalog, *data)
        return MergeResult(inserted, 0, len(ids) - inserted, [])
    copy_to_temp(driver, "DiaObject", *data)
    if closed.any():
        driver.execute("SET LOCAL enable_hashjoin = on")  # temporary x array: no index
        driver.execute(
            f"UPDATE {_temp('DiaObject')} AS t SET {end} = u.e FROM unnest(%s::int8[], "
            f"%s::float8[], %s::float8[]) AS u(i, s, e) WHERE t.{oid} = u.i AND "
            f"t.{start} = u.s", (_array(ids[closed]), _array(starts[closed]),
                                 _array(new_ends[closed])))
        driver.execute("SET LOCAL enable_hashjoin = off")
    # Stored versions whose end changes: closed ones first (the open one may be superseded),
    # re-opened ones after the inserts (one open version per object, always).
    wanted = every_end[:len(stored_ids)]
    changed = ~((np.isnan(wanted) & np.isnan(stored_ends)) | (wanted == stored_ends))
    closing = changed & ~np.isnan(wanted)
    reopening = changed & np.isnan(wanted)
    update_end = (f"UPDATE {catalog} AS d SET {end} = u.e FROM unnest(%s::int8[], "
                  f"%s::float8[], %s::float8[]) AS u(i, s, e) WHERE d.{oid} = u.i AND "
                  f"d.{start} = u.s")
    if closing.any():
        driver.execute(update_end, (_array(stored_ids[closing]), _array(stored_starts[closing]),
                                    _array(wanted[closing])))
    clashes: list[tuple[Any, ...]] = []
    replaced = 0
    if len(stored_ids):
        if replace:
            values = _object_values()
            # Never prepared: a constant array is hashed, a generic plan's is searched.
            replaced = driver.execute(
                f"UPDATE {catalog} AS d SET ({_columns(values)}) = ROW("
                f"{_columns(values, 't.')}) FROM {_temp('DiaObject')} AS t WHERE "
                f"t.{oid} = ANY(%s::int8[]) AND {_clash_condition('DiaObject', 'd')}",
                (_array(np.unique(stored_ids)),), prepare=False).rowcount
        else:
            clashes = clashing_keys(driver, "DiaObject")
            if clashes:
                discard_clashes(driver, "DiaObject")
    # No given version stored already (the usual case; the objects are locked, so none can
    # appear meanwhile): a plain INSERT, which costs the server a third less
    # than ON CONFLICT.
    stored_keys = set(zip(stored_ids.tolist(), stored_starts.tolist(), strict=True))
    any_stored = bool(stored_keys) and not stored_keys.isdisjoint(
        zip(ids[~newest].tolist(), starts[~newest].tolist(), strict=True))
    inserted = driver.execute(_insert_new_sql("DiaObject") if any_stored or clashes
                              else _insert_sql("DiaObject")).rowcount
    if reopening.any():
        driver.execute(f"UPDATE {catalog} AS d SET {end} = NULL FROM unnest(%s::int8[], "
                       f"%s::float8[]) AS u(i, s) WHERE d.{oid} = u.i AND d.{start} = u.s",
                       (_array(stored_ids[reopening]), _array(stored_starts[reopening])))
    return MergeResult(inserted, replaced, len(ids) - inserted - replaced - len(clashes),
                       clashes)


def _object_values() -> list[str]:
    """DiaObject's columns but its key and validity: what two versions differ in."""
    return [c for c in layout("DiaObject").stored_columns
            if c not in ("diaObjectId", "validityStartMjdTai", "validityEndMjdTai")]


def _key_text(key: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(key, values, strict=True))
