"""The :class:`Registry`: the Python entry point to a skyreg database.

The Registry is a facade: it holds the engine, the session for reads and the pixel scheme, and
hands each question to the layer that answers it. Searches (region → pixel ranges → candidates
→ exact sphgeom test → a columnar result) are :mod:`skyreg.search`; writes are
:mod:`skyreg.ingest`; postage stamps are :mod:`skyreg.cutouts`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from lsst.sphgeom import ConvexPolygon, Region
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError

from skyreg.db.connection import ReadConnection, writing
from skyreg.db.engine import describe, first_line, open_engine
from skyreg.db.migrate import ensure_schema
from skyreg.errors import DatabaseError
from skyreg.geometry.pixelization import PixelScheme
from skyreg.geometry.polygons import GeometryError
from skyreg.geometry.query_regions import QueryRegion
from skyreg.schema import DIMENSIONS, ccd, dataset_type, patch, skymap, tract, visit
from skyreg.search import ccds, datasets, regions, tiles
from skyreg.search.regions import PATCH_KEY, key, names
from skyreg.search.results import CcdRef, DatasetRef, PatchRef, ResultTable, TractRef
from skyreg.search.validation import NameChecker, QueryError, stored_name, stored_text

if TYPE_CHECKING:
    from astropy.wcs import WCS
    from matplotlib.figure import Figure

    from skyreg.catalogs.apdb_store import Apdb
    from skyreg.catalogs.level2_load import CatalogLoadReport
    from skyreg.catalogs.level2_query import Level2Catalog
    from skyreg.catalogs.store import CatalogInfo
    from skyreg.cutouts import FileProblem, ScratchCache, StampPlan, StampResult
    from skyreg.cutouts.lookup import CoaddLookup
    from skyreg.geometry.sky_data import CoverageMap, Footprint
    from skyreg.ingest.fits_ingest import FitsIngestReport
    from skyreg.ingest.report import IngestReport
    from skyreg.ingest.skymap_ingest import SkymapReport
    from skyreg.skymaps import SkyMapDefinition

def _list(found: tuple[str, ...] | None) -> list[str] | None:
    return None if found is None else list(found)


def _scratch(value: Any) -> ScratchCache | None:
    """A ScratchCache from a cache or a directory (unlimited size)."""
    if value is None:
        return None
    from skyreg.cutouts import ScratchCache

    return value if isinstance(value, ScratchCache) else ScratchCache(value)


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

    @cached_property
    def apdb(self) -> Apdb:
        """The Level-1 catalogs, with Rubin's APDB calls (``get_dia_objects(region)``, ...,
        ``store``) returning pandas DataFrames: see docs/catalogs.md. Reads share the
        registry's read session."""
        from skyreg.catalogs.apdb_store import Apdb

        return Apdb(self.engine, self._reads)

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

    # -- object catalogs ----------------------------------------------------------------------

    def catalog(self, name: str) -> Level2Catalog:
        """A loaded object catalog, for exact ``cone``/``polygon``/``region`` queries and the
        ``near`` cross-match (see :class:`skyreg.catalogs.level2_query.Level2Catalog`).

        Raises :class:`~skyreg.errors.NotFoundError` naming the loaded catalogs."""
        from skyreg.catalogs.level2_query import Level2Catalog
        from skyreg.catalogs.store import get_catalog

        return Level2Catalog(self._reads, get_catalog(self._reads.fetch, name))

    def catalogs(self) -> list[CatalogInfo]:
        """What is recorded about every loaded object catalog, by name."""
        from skyreg.catalogs.store import list_catalogs

        return list_catalogs(self._reads.fetch)

    def load_catalog(self, name: str, files: Sequence[str | PathLike[str]], *, ra: str,
                     dec: str, id: str, progress: Callable[[str, int, int], None] | None = None
                     ) -> CatalogLoadReport:
        """Load Parquet object catalog files into catalog ``name`` (one transaction,
        idempotent by ``id``; see :mod:`skyreg.catalogs.level2_load`)."""
        from skyreg.catalogs.level2_load import load_catalog

        with writing(self.engine, f"the load of catalog {name!r}"):
            return load_catalog(self.engine, name, [Path(f) for f in files], ra=ra, dec=dec,
                                id=id, progress=progress)

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
        columns: str | Iterable[str] | None = None,
        dataset_type: str | None = None,
    ) -> ResultTable[CcdRef]:
        """CCDs whose footprint overlaps the given patch, tract or region.

        Give exactly one of ``patch`` (skymap, tract, patch), ``tract`` (skymap, tract),
        ``cone`` (ra, dec, radius) or (SkyCoord, radius), ``polygon`` [(ra, dec), ...],
        ``point`` (ra, dec) or SkyCoord (CCDs containing it), or ``region`` (sphgeom Region).
        Degrees unless astropy quantities are given. ``inner=True`` uses the inner polygon of
        a patch or tract. ``time`` is (start, end) as astropy Time or MJD (TAI): visits whose
        exposure overlaps it.

        ``columns`` asks for more than the key, fetched by the same query: the visit's
        ``band``, ``physical_filter``, ``day_obs``, ``seq_num``, ``exposure_time`` (s),
        ``mjd_start``/``mjd_end`` (MJD TAI), ``boresight_ra``/``boresight_dec``,
        ``rotation_deg``; the CCD's ``footprint_ra``/``footprint_dec`` vertex arrays
        (``footprint`` for both); and the ``uri``, ``hdu``, ``size_bytes``, ``checksum`` of
        each CCD's file of ``dataset_type`` (None for a CCD without one). Unknown names raise
        a :class:`QueryError` (a ``ValueError``) listing the valid ones. The answer is a
        :class:`~skyreg.search.results.ResultTable`.
        """
        return ccds.find_ccds(
            self._reads, self.pixel_scheme, patch=patch, tract=tract, cone=cone,
            polygon=polygon, point=point, region=region, instrument=instrument, band=band,
            time=time, inner=inner, columns=columns, dataset_type=dataset_type,
            checker=self._names, stacklevel=4)

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
        columns: str | Iterable[str] | None = None,
    ) -> ResultTable[PatchRef]:
        """Patches whose outer polygon (inner with ``inner=True``) overlaps a CCD or region.

        ``columns``: ``cell_x``, ``cell_y``, ``inner_bbox``, ``outer_bbox`` (tract pixels),
        ``outer_ra``/``outer_dec``/``inner_ra``/``inner_dec`` vertex arrays (``outer``,
        ``inner`` for both). Files of a patch (one per band) are found by
        :meth:`find_datasets`.
        """
        return tiles.find_patches(self._reads, self.pixel_scheme, skymap=skymap, inner=inner,
                                  columns=columns, checker=self._names, stacklevel=4, ccd=ccd,
                                  cone=cone, polygon=polygon, point=point, region=region)

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
        columns: str | Iterable[str] | None = None,
    ) -> ResultTable[TractRef]:
        """Tracts whose outer polygon (inner with ``inner=True``) overlaps a CCD or region.

        ``columns``: ``ra_center``, ``dec_center``, ``ring`` and the polygons' vertex arrays
        (as :meth:`find_patches`).
        """
        return tiles.find_tracts(self._reads, self.pixel_scheme, skymap=skymap, inner=inner,
                                 columns=columns, checker=self._names, stacklevel=4, ccd=ccd,
                                 cone=cone, polygon=polygon, point=point, region=region)

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
        columns: str | Iterable[str] | None = None,
    ) -> ResultTable[DatasetRef]:
        """Archived files of ``dataset_type`` whose footprint overlaps a region.

        The region arguments are those of :meth:`find_ccds`; give none of them for every file
        of the type. A CCD type (``raw``, ``calexp``) is matched through its CCD's footprint, a
        patch type (``deepCoadd``) through its patch's outer polygon (inner with ``inner``).
        ``instrument``, ``skymap`` and ``band`` restrict the data IDs. ``columns``: for CCD
        types the visit columns of :meth:`find_ccds` (``mjd_start``, ``exposure_time``, ...)
        and ``footprint_ra``/``footprint_dec``; for patch types ``footprint_ra``/
        ``footprint_dec`` (the patch's outer polygon).
        """
        return datasets.find_datasets(
            self._reads, self.pixel_scheme, dataset_type, patch=patch, tract=tract, cone=cone,
            polygon=polygon, point=point, region=region, instrument=instrument, skymap=skymap,
            band=band, inner=inner, columns=columns, checker=self._names, stacklevel=4)

    def dataset_types(self) -> dict[str, str]:
        """Registered dataset types and their dimensions (``'ccd'`` or ``'patch'``)."""
        return datasets.dataset_types(self._reads)

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
        found = key((skymap_name, tract_id, patch_id), PATCH_KEY[0], "patch", PATCH_KEY[1])
        return self._stamp_lookup().patch_frame(*found)

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

        types = names(dataset_types, "dataset_types")
        assert types is not None
        return make_plan(self._stamp_lookup(), self.pixel_scheme,
                         make_targets(targets, size, groups), dataset_types=list(types),
                         bands=_list(names(bands, "bands")),
                         skymaps=_list(names(skymap, "skymap")), inner=inner)

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
        return regions.ccd_region(self._reads, (instrument, visit_id, detector))

    def patch_region(
        self, skymap_name: str, tract_id: int, patch_id: int, *, inner: bool = False
    ) -> ConvexPolygon:
        """The outer (or inner) polygon of one patch."""
        return regions.patch_region(self._reads, (skymap_name, tract_id, patch_id), inner)

    def tract_region(
        self, skymap_name: str, tract_id: int, *, inner: bool = False
    ) -> ConvexPolygon:
        """The outer (or inner) polygon of one tract."""
        return regions.tract_region(self._reads, (skymap_name, tract_id), inner)

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

    def datasets_of(self, ref: CcdRef | PatchRef) -> ResultTable[DatasetRef]:
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

    def _query_region(self, *, stored: tuple[str, ...], **given: Any) -> QueryRegion:
        """Exactly one search region, as the searches resolve it (for pictures of a query)."""
        return regions.query_region(self._reads, stored=stored, **given)


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
