"""The :class:`Registry`: the Python entry point to a skyreg database.

A query runs as: user input → :func:`make_query_region` (validation, astropy conversion) → pixel
ranges of the region → one SQL statement that returns candidates → exact sphgeom test → sorted
result rows. Candidates never leave this module unfiltered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from lsst.sphgeom import ConvexPolygon, Region
from sqlalchemy import Engine, Select, func, select
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError

from skyreg.db.connection import ReadConnection, writing
from skyreg.db.engine import describe, first_line, open_engine
from skyreg.db.migrate import ensure_schema
from skyreg.errors import DatabaseError, NotFoundError
from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.polygons import GeometryError, decode_polygon
from skyreg.geometry.query_regions import QueryRegion, make_query_region
from skyreg.registry import dataset_queries, queries, relation_queries
from skyreg.registry.results import (
    CcdRef,
    DatasetRef,
    PatchRef,
    ResultList,
    TractRef,
    ccd_results,
    dataset_results,
    patch_results,
    tract_results,
)
from skyreg.registry.validation import (
    NameChecker,
    QueryError,
    stored_name,
    stored_text,
    time_range,
)
from skyreg.schema import DIMENSIONS, ccd, dataset_type, patch, skymap, tract, visit

if TYPE_CHECKING:
    from astropy.wcs import WCS
    from matplotlib.figure import Figure

    from skyreg.cutouts import FileProblem, ScratchCache, StampPlan, StampResult
    from skyreg.cutouts.lookup import CoaddLookup
    from skyreg.geometry.sky_data import CoverageMap, Footprint
    from skyreg.ingest.fits_ingest import FitsIngestReport
    from skyreg.ingest.report import IngestReport
    from skyreg.ingest.skymap_ingest import SkymapReport
    from skyreg.skymaps import SkyMapDefinition

#: Upper bound on pixel ranges per query: huge regions get a coarser (still conservative) cover.
MAX_QUERY_RANGES = 64


_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]


@lru_cache(maxsize=128)
def _sql(builder: Callable[..., Select[Any]], *args: Any) -> str:
    """SQL text of a composed statement, compiled once per statement shape.

    Hot queries skip SQLAlchemy's per-execution work (cache keys, result processing) and go to
    psycopg as prepared statements; the statements themselves are still composed objects.
    """
    return str(builder(*args).compile(dialect=_DIALECT))


def _names(value: str | Sequence[str] | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, Sequence):
        raise QueryError(f"{what}: expected a name or a list of names, got {value!r}")
    names = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(name, str) for name in names):
        raise QueryError(f"{what}: expected a name or a list of names, got {value!r}")
    if any("\x00" in name for name in names):
        raise QueryError(f"{what}: names cannot contain NUL characters")
    return names


def _list(names: tuple[str, ...] | None) -> list[str] | None:
    return None if names is None else list(names)


def _scratch(value: Any) -> ScratchCache | None:
    """A ScratchCache from a cache or a directory (unlimited size)."""
    if value is None:
        return None
    from skyreg.cutouts import ScratchCache

    return value if isinstance(value, ScratchCache) else ScratchCache(value)


def _key(value: Any, types: tuple[type, ...], what: str, example: str) -> tuple[Any, ...]:
    """Check a tuple key such as (skymap, tract, patch) and coerce its integers."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != len(types):
        raise QueryError(f"{what}: expected {example}, got {value!r}")
    try:
        key = tuple(kind(item) for kind, item in zip(types, value, strict=True))
    except (TypeError, ValueError, OverflowError) as err:
        raise QueryError(f"{what}: expected {example}, got {value!r}") from err
    if any(isinstance(item, str) and "\x00" in item for item in key):
        raise QueryError(f"{what}: names cannot contain NUL characters")
    if any(isinstance(item, int) and not -(2**63) <= item < 2**63 for item in key):
        raise QueryError(f"{what}: {value!r} holds an id outside the 64-bit range")
    return key


class Registry:
    """A connection to one skyreg registry (embedded or on a PostgreSQL server).

    Use :meth:`connect` rather than the constructor. A Registry holds one database connection;
    close it (or use it as a context manager) when done.

    A Registry survives its server restarting (``skyreg server stop``, a PostgreSQL restart,
    a terminated session): a read that finds its connection lost reconnects and runs once
    more (the embedded server is started again if needed). A write is never repeated: an
    ingest interrupted that way raises :class:`~skyreg.errors.ConnectionLostError`, and since
    every ingest is transactional (what the server had not committed is rolled back) and
    idempotent, running it again completes it.
    """

    def __init__(self, engine: Engine, scheme: PixelScheme) -> None:
        self.engine = engine
        self.pixel_scheme = scheme
        self._reads = ReadConnection(engine)
        self._lookup: CoaddLookup | None = None
        self._names = NameChecker()

    # -- life cycle ---------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        home: str | PathLike[str] | None = None,
        pixelization: str | PixelScheme | None = None,
    ) -> Registry:
        """Open a registry, creating its schema if the database is empty.

        Parameters
        ----------
        url
            PostgreSQL URL (``postgresql://user@host/db``). Default: ``$SKYREG_DATABASE_URL``,
            else the embedded server in ``home``.
        home
            skyreg's data directory for the embedded server (default ``$SKYREG_HOME`` or the
            platform's user data directory).
        pixelization
            ``"htm9"``, ``"healpix10"``, ... — only used when the registry is created.

        Raises :class:`~skyreg.errors.DatabaseError` if the database cannot be reached or
        set up; its message names the database (without password).
        """
        scheme = parse_pixelization(pixelization) if pixelization is not None else None
        engine = open_engine(url, Path(home) if home is not None else None)
        try:
            stored = ensure_schema(engine, scheme)
        except (DBAPIError, psycopg.Error) as exc:
            engine.dispose()
            raise DatabaseError(f"cannot open the registry in {describe(engine)}: "
                                f"{first_line(exc)}") from exc
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, stored)

    def close(self) -> None:
        """Release the database connection (also one the server already dropped)."""
        self._reads.close()
        self._lookup = None
        self.engine.dispose()

    def read_session(self) -> ReadConnection:
        """The registry's session for reads (autocommit; a read that finds its connection lost
        runs once more on a new one), for callers that run their own read statements next to
        the query methods (the web service's ObsCore lookups)."""
        return self._reads

    def reset_connection(self) -> None:
        """Give the connection back but keep the engine; the next query opens a new one.

        For callers that share one engine between registries (the web service's pool).
        """
        self._reads.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _conn(self) -> ReadConnection:
        """The session for reads (autocommit; reconnects and retries a read once if lost)."""
        return self._reads

    # -- ingest -------------------------------------------------------------------------------

    def ingest_manifest(
        self,
        path: str | PathLike[str],
        *,
        check: bool = False,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> IngestReport:
        """Load a survey manifest directory (format v1); see ``docs/manifest-format.md``.

        All or nothing: on any error nothing of this manifest is written. Idempotent: loading
        the same manifest again writes nothing and succeeds. ``check=True`` runs every check
        a load runs (conflicts with the stored rows included) and writes nothing: the
        report's ``inserted`` counts are what a load would insert.
        """
        from skyreg.ingest.manifest_ingest import ingest_manifest

        with writing(self.engine, "the ingest"):
            return ingest_manifest(self.engine, self.pixel_scheme, Path(path), progress=progress,
                                   check=check)

    def ingest_fits(
        self,
        paths: str | PathLike[str] | Sequence[str | PathLike[str]],
        *,
        dataset_type: str = "raw",
        profile: str | None = None,
        skymap: str | None = None,
        band: str | None = None,
        recursive: bool = False,
        jobs: int | None = None,
        executor: Any = None,
        checksum: str = "header",
        progress: Callable[[str, int, int], None] | None = None,
    ) -> FitsIngestReport:
        """Register FITS files: one CCD (or, with ``skymap``, one patch image) per image HDU.

        ``profile`` names a built-in instrument profile (DECam, HSC, LSSTCam) or a YAML file;
        by default it is recognised from the headers. ``executor`` is ``"process"`` (default;
        ``jobs`` processes) or a Dask scheduler address / ``distributed.Client``. Bad files are
        listed in the report's ``problems`` and the others are registered; see
        :mod:`skyreg.ingest.fits_ingest` for what is guaranteed on failures and re-runs.
        """
        from skyreg.ingest.fits_ingest import FitsIngestOptions, ingest_fits

        if isinstance(paths, (str, PathLike)):
            paths = [paths]
        options = FitsIngestOptions(
            dataset_type=dataset_type, profile=profile, checksum=checksum, jobs=jobs,
            executor=executor, recursive=recursive, skymap=skymap, band=band)
        with writing(self.engine, "the ingest"):
            return ingest_fits(self.engine, self.pixel_scheme, [Path(p) for p in paths],
                               options, progress)

    def register_skymap(
        self,
        name: str | None,
        definition: SkyMapDefinition | str | PathLike[str],
        *,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> SkymapReport:
        """Compute a sky map's tracts and patches and register them under ``name``.

        ``definition`` is a :class:`skyreg.skymaps.RingsDefinition` (or Healpix/Discrete
        definition) or the path of a YAML/JSON config file (whose ``name`` is used when
        ``name`` is None). Registering the same definition again does nothing; a different
        definition under a registered name raises :class:`skyreg.errors.ConflictError`.
        """
        from skyreg.ingest.skymap_ingest import register_skymap
        from skyreg.skymaps import load_definition_file

        if isinstance(definition, (str, PathLike)):
            file_name, definition = load_definition_file(Path(definition))
            name = name or file_name
        if not name:
            raise QueryError("a sky map needs a name (give one, or 'name:' in the config file)")
        name = stored_name(name, "sky map")
        with writing(self.engine, f"the registration of sky map {name!r}"):
            return register_skymap(self.engine, self.pixel_scheme, name, definition, progress)

    def skymaps(self) -> dict[str, str]:
        """Registered sky maps: name → definition hash."""
        rows = self._conn.execute(select(skymap.c.name, skymap.c.hash_sha1_hex))
        return {name: digest for name, digest in rows}

    def skymap_summaries(self) -> list[tuple[str, str, int, int, str]]:
        """(name, kind, tracts, patches, hash) of every registered sky map."""
        tracts = (select(func.count()).select_from(tract)
                  .where(tract.c.skymap == skymap.c.name).scalar_subquery())
        patches = (select(func.count()).select_from(patch)
                   .where(patch.c.skymap == skymap.c.name).scalar_subquery())
        rows = self._conn.execute(select(skymap.c.name, skymap.c.kind, tracts, patches,
                                         skymap.c.hash_sha1_hex).order_by(skymap.c.name))
        return [tuple(row) for row in rows]

    # -- spatial queries ----------------------------------------------------------------------

    def find_ccds(
        self,
        *,
        patch: tuple[str, int, int] | None = None,
        tract: tuple[str, int] | None = None,
        cone: Any = None,
        polygon: Any = None,
        point: Any = None,
        region: Region | None = None,
        instrument: str | Sequence[str] | None = None,
        band: str | Sequence[str] | None = None,
        time: tuple[Any, Any] | None = None,
        inner: bool = False,
    ) -> ResultList[CcdRef]:
        """CCDs whose footprint overlaps the given patch, tract or region.

        Give exactly one of ``patch`` (skymap, tract, patch), ``tract`` (skymap, tract),
        ``cone`` (ra, dec, radius) or (SkyCoord, radius), ``polygon`` [(ra, dec), ...],
        ``point`` (ra, dec) or SkyCoord (CCDs containing it), or ``region`` (sphgeom Region).
        Degrees unless astropy quantities are given. ``inner=True`` uses the inner polygon of
        a patch or tract. ``time`` is (start, end) as astropy Time or MJD (TAI): visits whose
        exposure overlaps it.
        """
        kind = relation_queries.stored_kind({"patch": patch, "tract": tract}, cone, polygon,
                                            point, region)
        query = None if kind else self._query_region(
            stored=("patch", "tract"), patch=patch, tract=tract, cone=cone, polygon=polygon,
            point=point, region=region, inner=inner,
        )
        mjd_range = time_range(time) if time is not None else None
        instruments, bands = _names(instrument, "instrument"), _names(band, "band")
        self._names.check(self._conn, "instrument", instruments)
        self._names.check(self._conn, "band", bands)
        filters = queries.CcdFilters(instruments is not None, bands is not None,
                                     mjd_range is not None)
        params: dict[str, Any] = {}
        if instruments is not None:
            params["instruments"] = list(instruments)
        if bands is not None:
            params["bands"] = list(bands)
        if mjd_range is not None:
            params["mjd_start"], params["mjd_end"] = mjd_range
        if kind is not None:
            return ccd_results(self._related(kind, patch if kind == "patch" else tract, _sql(
                relation_queries.ccds_of_tile, kind, inner, filters), params))
        assert query is not None
        rows = self._exact(_sql(queries.ccd_candidates, filters), query, params)
        return ccd_results(rows)

    def find_patches(
        self,
        *,
        ccd: tuple[str, int, int] | None = None,
        cone: Any = None,
        polygon: Any = None,
        point: Any = None,
        region: Region | None = None,
        skymap: str | Sequence[str] | None = None,
        inner: bool = False,
    ) -> ResultList[PatchRef]:
        """Patches whose outer polygon (inner with ``inner=True``) overlaps a CCD or region."""
        rows = self._find_tiles(queries.patch_candidates, skymap, inner, "patch", ccd=ccd,
                                cone=cone, polygon=polygon, point=point, region=region)
        return patch_results(rows)

    def find_tracts(
        self,
        *,
        ccd: tuple[str, int, int] | None = None,
        cone: Any = None,
        polygon: Any = None,
        point: Any = None,
        region: Region | None = None,
        skymap: str | Sequence[str] | None = None,
        inner: bool = False,
    ) -> ResultList[TractRef]:
        """Tracts whose outer polygon (inner with ``inner=True``) overlaps a CCD or region."""
        rows = self._find_tiles(queries.tract_candidates, skymap, inner, "tract", ccd=ccd,
                                cone=cone, polygon=polygon, point=point, region=region)
        return tract_results(rows)

    def _find_tiles(self, builder: Callable[[bool, bool], Select[Any]],
                    skymap: str | Sequence[str] | None, inner: bool, kind: str, **regions: Any
                    ) -> list[tuple[Any, ...]]:
        """Patches or tracts (per ``builder``) matching a CCD or region, exact."""
        ccd = regions.pop("ccd")
        stored = relation_queries.stored_kind({"ccd": ccd}, *regions.values())
        query = None if stored else self._query_region(stored=("ccd",), ccd=ccd, **regions)
        skymaps = _names(skymap, "skymap")
        self._names.check(self._conn, "skymap", skymaps, stacklevel=4)
        if stored is not None:
            return self._related("ccd", ccd, _sql(relation_queries.tiles_of_ccd, kind,
                                                  skymaps is not None, inner),
                                 {"skymaps": list(skymaps)} if skymaps is not None else {})
        assert query is not None
        return self._exact(_sql(builder, skymaps is not None, inner), query,
                           {"skymaps": list(skymaps)} if skymaps is not None else {})

    # -- file archive ---------------------------------------------------------------------------

    def find_datasets(
        self,
        dataset_type: str,
        *,
        patch: tuple[str, int, int] | None = None,
        tract: tuple[str, int] | None = None,
        cone: Any = None,
        polygon: Any = None,
        point: Any = None,
        region: Region | None = None,
        instrument: str | Sequence[str] | None = None,
        skymap: str | Sequence[str] | None = None,
        band: str | Sequence[str] | None = None,
        inner: bool = False,
    ) -> ResultList[DatasetRef]:
        """Archived files of ``dataset_type`` whose footprint overlaps a region.

        The region arguments are those of :meth:`find_ccds`; give none of them for every file
        of the type. A CCD type (``raw``, ``calexp``) is matched through its CCD's footprint, a
        patch type (``deepCoadd``) through its patch's outer polygon (inner with ``inner``).
        ``instrument``, ``skymap`` and ``band`` restrict the data IDs.
        """
        dimensions = self.dataset_types().get(dataset_type)
        if dimensions is None:
            known = ", ".join(sorted(self.dataset_types())) or "none"
            raise QueryError(f"dataset type {dataset_type!r} is not registered (known: {known})")
        spatial = any(value is not None for value in (patch, tract, cone, polygon, point, region))
        instruments, skymaps = _names(instrument, "instrument"), _names(skymap, "skymap")
        bands = _names(band, "band")
        for kind, names in (("instrument", instruments), ("skymap", skymaps), ("band", bands)):
            self._names.check(self._conn, kind, names)  # type: ignore[arg-type]
        filters = dataset_queries.DatasetFilters(spatial, instruments is not None,
                                                 skymaps is not None, bands is not None)
        params: dict[str, Any] = {"dataset_type": dataset_type}
        for name, values in (("instruments", instruments), ("skymaps", skymaps),
                             ("bands", bands)):
            if values is not None:
                params[name] = list(values)
        builder = (dataset_queries.ccd_datasets if dimensions == "ccd"
                   else dataset_queries.patch_datasets)
        if spatial:
            query = self._query_region(stored=("patch", "tract"), patch=patch, tract=tract,
                                       cone=cone, polygon=polygon, point=point, region=region,
                                       inner=inner)
            footprints = (_sql(dataset_queries.ccd_footprints) if dimensions == "ccd"
                          else _sql(dataset_queries.patch_footprints, inner))
            params["ids"] = [row[0] for row in self._exact(footprints, query, {})]
            if not params["ids"]:
                return dataset_results([])
        return dataset_results(self._fetch(_sql(builder, filters), params))

    def dataset_types(self) -> dict[str, str]:
        """Registered dataset types and their dimensions (``'ccd'`` or ``'patch'``)."""
        rows = self._conn.execute(select(dataset_type.c.name, dataset_type.c.dimensions))
        return {name: dims for name, dims in rows}

    def register_dataset_type(self, name: str, dimensions: str, description: str = "") -> bool:
        """Add a dataset type (idempotent); returns whether it was new.

        Refuses a name already registered with other dimensions.
        """
        if dimensions not in DIMENSIONS:
            raise QueryError(f"dimensions must be one of {', '.join(DIMENSIONS)}, "
                             f"got {dimensions!r}")
        name = stored_name(name, "dataset type")
        if not name.replace("_", "").isalnum():
            raise QueryError(f"dataset type name {name!r}: use letters, digits and '_'")
        description = stored_text(description, "description")
        from sqlalchemy.dialects.postgresql import insert

        with self.engine.begin() as connection:
            inserted = connection.execute(
                insert(dataset_type).values(name=name, dimensions=dimensions,
                                            description=description)
                .on_conflict_do_nothing().returning(dataset_type.c.name)
            ).first()
            if inserted is None:
                stored = connection.execute(select(dataset_type.c.dimensions).where(
                    dataset_type.c.name == name)).scalar_one()
                if stored != dimensions:
                    raise QueryError(f"dataset type {name!r} is registered with dimensions "
                                     f"{stored!r}, not {dimensions!r}")
        return inserted is not None

    def cutout_url(self, ra: Any, dec: Any, size: Any, *, dataset_type: str = "deepCoadd",
                   band: str | None = None, instrument: str | None = None,
                   visit: int | None = None, detector: int | None = None,
                   skymap: str | None = None, base_url: str | None = None,
                   format: str = "fits") -> str:
        """A stable SODA URL of a ``size`` x ``size`` stamp centred on (ra, dec).

        The file is the one ``dataset_type`` file containing the point (patch types: the
        patch whose inner polygon contains it); ``band``, ``visit``, ... choose when several
        do. The URL names the file by dataset type and data ID, so it keeps working for as
        long as the file is registered. ``base_url`` is the service's public address
        (default ``$SKYREG_SERVICE_URL``, else ``http://127.0.0.1:8000``); ``format="png"``
        asks for a PNG rendering. Degrees unless astropy angles are given.
        """
        from skyreg.registry.cutout_urls import cutout_url

        return cutout_url(self, ra, dec, size, dataset_type=dataset_type, band=band,
                          instrument=instrument, visit=visit, detector=detector,
                          skymap=skymap, base_url=base_url, format=format)

    # -- postage stamps -------------------------------------------------------------------------

    def patch_wcs(self, skymap_name: str, tract_id: int, patch_id: int
                  ) -> tuple[WCS, tuple[int, int]]:
        """The astropy WCS and numpy shape ``(rows, columns)`` of a patch's outer box.

        This is the pixel grid a coadd of the patch must have to be attached to it by
        ``ingest_fits(..., skymap=...)``: write ``np.zeros(shape)`` with ``wcs.to_header()``.
        """
        key = _key((skymap_name, tract_id, patch_id), (str, int, int), "patch",
                   "(skymap, tract, patch)")
        return self._stamp_lookup().patch_frame(*key)

    def plan_stamps(
        self,
        targets: Any,
        *,
        size: Any = 64,
        dataset_types: str | Sequence[str] = ("deepCoadd",),
        bands: str | Sequence[str] | None = None,
        skymap: str | Sequence[str] | None = None,
        inner: bool = False,
        groups: Any = None,
    ) -> StampPlan:
        """The work plan of :meth:`postage_stamps` (which files, which targets), not run."""
        from skyreg.cutouts import make_plan, make_targets

        types = _names(dataset_types, "dataset_types")
        assert types is not None
        return make_plan(self._stamp_lookup(), self.pixel_scheme,
                         make_targets(targets, size, groups), dataset_types=list(types),
                         bands=_list(_names(bands, "bands")),
                         skymaps=_list(_names(skymap, "skymap")), inner=inner)

    def postage_stamps(
        self,
        targets: Any,
        *,
        size: Any = 64,
        dataset_types: str | Sequence[str] = ("deepCoadd",),
        bands: str | Sequence[str] | None = None,
        skymap: str | Sequence[str] | None = None,
        inner: bool = False,
        mode: str = "trim",
        sparse: bool = False,
        groups: Any = None,
        scratch: ScratchCache | str | PathLike[str] | None = None,
        executor: Any = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> StampResult:
        """Stamps of every target from every registered coadd that holds pixels of it.

        ``targets``: positions -- a SkyCoord, ``(ra, dec)`` arrays in degrees or an (n, 2)
        array -- or regions: sphgeom ConvexPolygon/Circle/Box, DALI strings (``"POLYGON ra1
        dec1 ..."``, ``"CIRCLE ra dec r"``, ``"RANGE ..."``) or :class:`PixelMask` (pixels of a
        tract's frame), one or a list. ``size``: pixels (one value, ``(width, height)``, or one
        per target) or an astropy angle. A stamp crossing a patch edge comes from every patch
        holding pixels of it (``Stamp.covers`` says which part); ``inner=True`` takes only the
        patch whose inner region holds the target. ``mode``: ``"trim"`` (pixels inside the
        file only) or ``"partial"`` (the whole requested box, NaN/0 outside). Regions give the
        bounding rectangle and a ``selection`` mask, or with ``sparse=True`` only the selected
        pixels. ``scratch``: a :class:`ScratchCache` or directory to copy files to first.
        ``executor``: a ``distributed.Client`` to cut on a Dask cluster (one task per patch's
        files). See docs/stamps.md.
        """
        from skyreg.cutouts import execute

        plan = self.plan_stamps(targets, size=size, dataset_types=dataset_types, bands=bands,
                                skymap=skymap, inner=inner, groups=groups)
        if progress is not None:
            progress("planning", 1, 1)
        return execute(plan, scratch=_scratch(scratch), sparse=sparse, mode=mode,
                       executor=executor, progress=progress)

    def prefetch(
        self,
        targets: Any,
        scratch: ScratchCache | str | PathLike[str],
        *,
        size: Any = 64,
        dataset_types: str | Sequence[str] = ("deepCoadd",),
        bands: str | Sequence[str] | None = None,
        skymap: str | Sequence[str] | None = None,
        inner: bool = False,
        executor: Any = None,
    ) -> list[FileProblem]:
        """Copy the files :meth:`postage_stamps` would read into ``scratch``; returns failures."""
        from skyreg.cutouts import prefetch

        cache = _scratch(scratch)
        assert cache is not None
        plan = self.plan_stamps(targets, size=size, dataset_types=dataset_types, bands=bands,
                                skymap=skymap, inner=inner)
        return prefetch(plan, cache, executor)

    def _stamp_lookup(self) -> CoaddLookup:
        from skyreg.cutouts.lookup import CoaddLookup

        if self._lookup is None:
            self._lookup = CoaddLookup(self._reads.fetch)
        return self._lookup

    # -- lookups --------------------------------------------------------------------------------

    def ccd_region(self, instrument: str, visit_id: int, detector: int) -> ConvexPolygon:
        """The footprint of one CCD (NotFoundError if it is not registered)."""
        key = _key((instrument, visit_id, detector), (str, int, int), "ccd",
                   "(instrument, visit, detector)")
        return self._region(_sql(queries.ccd_region),
                            dict(zip(("instrument", "visit", "detector"), key, strict=True)),
                            f"CCD {key}")

    def patch_region(
        self, skymap_name: str, tract_id: int, patch_id: int, *, inner: bool = False
    ) -> ConvexPolygon:
        """The outer (or inner) polygon of one patch."""
        key = _key((skymap_name, tract_id, patch_id), (str, int, int), "patch",
                   "(skymap, tract, patch)")
        return self._region(_sql(queries.patch_region, inner),
                            dict(zip(("skymap", "tract", "patch"), key, strict=True)),
                            f"patch {key}")

    def tract_region(
        self, skymap_name: str, tract_id: int, *, inner: bool = False
    ) -> ConvexPolygon:
        """The outer (or inner) polygon of one tract."""
        key = _key((skymap_name, tract_id), (str, int), "tract", "(skymap, tract)")
        return self._region(_sql(queries.tract_region, inner),
                            dict(zip(("skymap", "tract"), key, strict=True)), f"tract {key}")

    def counts(self) -> dict[str, int]:
        """Number of rows of each kind, for summaries."""
        tables = {"visits": visit, "ccds": ccd, "skymaps": skymap, "tracts": tract,
                  "patches": patch}
        return {
            name: int(self._conn.execute(select(func.count()).select_from(table)).scalar_one())
            for name, table in tables.items()
        }

    # -- pictures ---------------------------------------------------------------------------------

    def footprints(self, refs: Sequence[Any], *, kind: str | None = None) -> list[Footprint]:
        """Vertices (and visit band and time) of CCDs, patches or tracts, e.g. of a search's
        answer: ``reg.footprints(reg.find_ccds(cone=...))``. Plain tuples need ``kind``."""
        from skyreg.registry import sky

        return sky.footprints(self, refs, kind)

    def datasets_of(self, ref: CcdRef | PatchRef) -> ResultList[DatasetRef]:
        """Every archived file of one CCD or patch, whatever its dataset type."""
        from skyreg.registry import sky

        return sky.datasets_of(self, ref)

    def coverage_map(self, level: int | None = None) -> CoverageMap:
        """Visits per sky cell (total and per band) at a coarse level of the registry's
        pixelization, from the pixel index (see :mod:`skyreg.registry.sky`)."""
        from skyreg.registry import sky

        return sky.coverage_map(self, level)

    def plot_coverage(self, *, tract: tuple[str, int] | None = None,
                      band: str | Sequence[str] | None = None, level: int | None = None,
                      **options: Any) -> Figure:
        """Coverage depth per band: an all-sky map (Mollweide) of visits per cell, or with
        ``tract`` a tangent-plane map of the tract with the exact number of visits whose
        CCDs cover each point. Needs matplotlib (``pip install 'skyreg[plot]'``)."""
        from skyreg.registry import plotting

        return plotting.plot_coverage(self, tract=tract, band=band, level=level,
                                            **options)

    def plot_patch(self, skymap_name: str, tract_id: int, patch_id: int, *,
                   band: str | Sequence[str] | None = None, **options: Any) -> Figure:
        """The CCDs overlapping one patch over its inner and outer boxes (tangent plane of
        the tract). Needs matplotlib."""
        from skyreg.registry import plotting

        return plotting.plot_patch(self, (skymap_name, tract_id, patch_id), band=band,
                                         **options)

    def plot_ccds(self, **query: Any) -> Figure:
        """The CCDs a :meth:`find_ccds` query returns (same arguments), coloured by band,
        with the query region. Needs matplotlib."""
        from skyreg.registry import plotting

        return plotting.plot_ccds(self, **query)

    # -- internals ------------------------------------------------------------------------------

    def _fetch(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run compiled SQL (a read) as a prepared statement on the registry's session."""
        return self._reads.fetch(sql, params)

    def _region(self, sql: str, params: dict[str, Any], what: str) -> ConvexPolygon:
        rows = self._fetch(sql, params)
        if not rows:
            raise NotFoundError(f"{what} is not in the registry")
        return decode_polygon(rows[0][0])

    def _query_region(
        self,
        *,
        stored: tuple[str, ...],
        patch: Any = None,
        tract: Any = None,
        ccd: Any = None,
        inner: bool = False,
        **regions: Any,
    ) -> QueryRegion:
        """Exactly one search region, from a stored footprint (kinds ``stored``) or geometry."""
        given = [name for name, value in (("patch", patch), ("tract", tract), ("ccd", ccd),
                                          *regions.items()) if value is not None]
        if len(given) != 1:
            choices = ", ".join(f"{name}=" for name in (*stored, *regions))
            raise QueryError(
                f"give exactly one search region ({choices}), got {', '.join(given) or 'none'}"
            )
        if patch is not None:
            return QueryRegion("region", self.patch_region(*_key(
                patch, (str, int, int), "patch", "(skymap, tract, patch)"), inner=inner))
        if tract is not None:
            return QueryRegion("region", self.tract_region(*_key(
                tract, (str, int), "tract", "(skymap, tract)"), inner=inner))
        if ccd is not None:
            return QueryRegion("region", self.ccd_region(*_key(
                ccd, (str, int, int), "ccd", "(instrument, visit, detector)")))
        query = make_query_region(**regions)
        if query is None:  # only when no region was given, which is refused above
            raise QueryError("give a search region")
        return query

    def _related(self, kind: str, key: Any, sql: str, params: dict[str, Any]
                 ) -> list[tuple[Any, ...]]:
        """Rows of a relation statement for one stored patch, tract or CCD (its key).

        An empty answer is checked: a key that is not registered raises NotFoundError.
        """
        types, names, example, lookup = {
            "patch": ((str, int, int), ("skymap", "tract", "patch"), "(skymap, tract, patch)",
                      self.patch_region),
            "tract": ((str, int), ("skymap", "tract"), "(skymap, tract)", self.tract_region),
            "ccd": ((str, int, int), ("instrument", "visit", "detector"),
                    "(instrument, visit, detector)", self.ccd_region),
        }[kind]
        values = _key(key, types, kind, example)
        rows = self._fetch(sql, {**params, **dict(zip(names, values, strict=True))})
        if not rows:
            lookup(*values)  # type: ignore[operator]  # raises NotFoundError if unknown
        return rows

    def _exact(self, sql: str, query: QueryRegion, params: dict[str, Any]
               ) -> list[tuple[Any, ...]]:
        """Run a candidate statement for the region's pixels; keep exact matches only."""
        ranges = self.pixel_scheme.ranges(query.region, MAX_QUERY_RANGES)
        if not ranges:
            return []
        lo, hi = zip(*ranges, strict=True)
        return query.keep_matching(self._fetch(sql, {**params, "lo": list(lo), "hi": list(hi)}))


def parse_pixelization(value: str | PixelScheme) -> PixelScheme:
    """``"htm9"`` / ``"healpix10"`` → PixelScheme."""
    if isinstance(value, PixelScheme):
        return value
    if not isinstance(value, str):
        raise QueryError(f"pixelization: expected a name such as 'htm9', got {value!r}")
    text = value.strip().lower()
    for scheme in ("healpix", "htm"):
        level = text[len(scheme):]
        if text.startswith(scheme) and level.isascii() and level.isdigit():
            try:
                return PixelScheme(scheme, int(level))
            except GeometryError as err:
                raise QueryError(f"pixelization {value!r}: {err}") from err
    raise QueryError(f"pixelization {value!r}: expected e.g. 'htm9' or 'healpix10'")
