"""Tables of the registry.

Design choices an operator reading ``\\d+`` should know:

* Every footprint is stored twice: as vertex arrays in degrees (``*_ra``, ``*_dec``), readable in
  plain SQL, and as ``*_region``, the ``lsst.sphgeom`` encoding of the same convex polygon, which
  the code decodes in well under a microsecond for the exact overlap test.
* The spatial index is a set of narrow ``*_pixel`` tables: one row per (pixel, footprint) for
  every pixel of the registry's pixelization (``registry_config``) that the footprint touches,
  with a B-tree on (pixel, id). A spatial query looks up the pixels of its region there, then
  keeps only the candidates whose polygon really overlaps (exact test with sphgeom).
* Pixel rows are written only by ingest, in the same transaction as their footprint.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

DoubleArray = ARRAY(Double, dimensions=1)


def _footprint_columns(prefix: str, what: str) -> list[Column[object]]:
    """The three columns that hold one convex polygon: encoded, and RA/Dec vertex arrays."""
    name = f"{prefix}_" if prefix else ""
    return [
        Column(
            f"{name}region",
            LargeBinary,
            nullable=False,
            comment=f"{what}: lsst.sphgeom ConvexPolygon.encode() bytes",
        ),
        Column(f"{name}ra", DoubleArray, nullable=False, comment=f"{what}: vertex RA, degrees"),
        Column(f"{name}dec", DoubleArray, nullable=False, comment=f"{what}: vertex Dec, degrees"),
    ]


def _cap_columns() -> list[Column[object]]:
    """Two caps of the footprint, derived from ``region`` at ingest, for the SQL searches'
    first prefilter (skyreg.geometry.bounding_caps). NULL when a writer did not compute them:
    the searches then run their other tests, with the same answers."""
    what = {"cap_x": "centre of both caps (unit vector x), inside the footprint",
            "cap_y": "centre of both caps (unit vector y)",
            "cap_z": "centre of both caps (unit vector z)",
            "cap_inner_cos": "cosine of the radius of a cap inside the footprint",
            "cap_inner_sin": "sine of that radius",
            "cap_outer_cos": "cosine of the radius of a cap holding the footprint "
                             "(-1: no such cap below 90 degrees)",
            "cap_outer_sin": "sine of that radius"}
    return [Column(name, Double, nullable=True, comment=comment)
            for name, comment in what.items()]


def _pixel_table(name: str, owner: str, owner_id: str) -> Table:
    return Table(
        name,
        metadata,
        Column("pix", BigInteger, nullable=False, comment="pixel index (see registry_config)"),
        Column(owner_id, BigInteger, nullable=False, comment=f"{owner}.{owner_id}"),
        PrimaryKeyConstraint("pix", owner_id),
        comment=(
            f"Spatial index of {owner} footprints: one row per pixel the footprint touches. "
            "Candidates only: the exact overlap test uses the polygon."
        ),
    )


registry_config = Table(
    "registry_config",
    metadata,
    Column("id", SmallInteger, nullable=False, server_default="1"),
    Column("pixel_scheme", Text, nullable=False, comment="'htm' or 'healpix' (nested)"),
    Column("pixel_level", SmallInteger, nullable=False, comment="pixelization level / order"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("id"),
    CheckConstraint("id = 1", name="single_row"),
    CheckConstraint("pixel_scheme IN ('htm', 'healpix')", name="known_scheme"),
    CheckConstraint("pixel_level BETWEEN 0 AND 24", name="level_range"),
    comment="One row: the pixelization every *_pixel table uses. Fixed when the registry is made.",
)

instrument = Table(
    "instrument",
    metadata,
    Column("name", Text, nullable=False, comment="instrument key, e.g. LSSTCam"),
    Column("detector_max", BigInteger, nullable=False, comment="exclusive bound of detector ids"),
    Column("visit_max", BigInteger, nullable=False, comment="exclusive bound of visit ids"),
    Column("bands", ARRAY(Text, dimensions=1), nullable=True),
    Column("physical_filters", ARRAY(Text, dimensions=1), nullable=True),
    PrimaryKeyConstraint("name"),
    comment="Instruments (cameras).",
)

detector = Table(
    "detector",
    metadata,
    Column("instrument", Text, nullable=False),
    Column("detector", BigInteger, nullable=False, comment="detector id within the instrument"),
    Column("full_name", Text, nullable=False, comment="e.g. R22_S11"),
    Column("raft", Text, nullable=False, server_default=""),
    Column("name_in_raft", Text, nullable=False, server_default=""),
    Column("purpose", Text, nullable=False, comment="SCIENCE, GUIDER, WAVEFRONT, ..."),
    Column("fp_x_min", Double, nullable=True, comment="focal-plane box, degrees"),
    Column("fp_x_max", Double, nullable=True),
    Column("fp_y_min", Double, nullable=True),
    Column("fp_y_max", Double, nullable=True),
    PrimaryKeyConstraint("instrument", "detector"),
    ForeignKeyConstraint(["instrument"], ["instrument.name"]),
    comment="Detectors (CCDs of the focal plane) of each instrument.",
)

visit = Table(
    "visit",
    metadata,
    Column("instrument", Text, nullable=False),
    Column("visit", BigInteger, nullable=False),
    Column("day_obs", Integer, nullable=False, comment="observing day, YYYYMMDD"),
    Column("seq_num", BigInteger, nullable=False),
    Column("band", Text, nullable=False),
    Column("physical_filter", Text, nullable=False),
    Column("boresight_ra", Double, nullable=True, comment="degrees, ICRS; NULL if unknown"),
    Column("boresight_dec", Double, nullable=True, comment="degrees, ICRS; NULL if unknown"),
    Column("rotation_deg", Double, nullable=True,
           comment="sky rotation angle, degrees; NULL if unknown"),
    Column("exposure_time", Double, nullable=False, comment="seconds"),
    Column("mjd_tai_start", Double, nullable=False, comment="MJD (TAI) at shutter open"),
    Column("mjd_tai_end", Double, nullable=False, comment="MJD (TAI) at shutter close"),
    *_footprint_columns("", "whole-visit footprint"),
    PrimaryKeyConstraint("instrument", "visit"),
    ForeignKeyConstraint(["instrument"], ["instrument.name"]),
    CheckConstraint("mjd_tai_end >= mjd_tai_start", name="time_order"),
    comment="Visits (exposures): pointing, filter, time span and whole-focal-plane footprint.",
)

ccd = Table(
    "ccd",
    metadata,
    Column("ccd_id", BigInteger, Identity(always=False), nullable=False,
           comment="surrogate key used by ccd_pixel"),
    Column("instrument", Text, nullable=False),
    Column("visit", BigInteger, nullable=False),
    Column("detector", BigInteger, nullable=False),
    *_footprint_columns("", "CCD footprint"),
    *_cap_columns(),
    Column("centre_pix", BigInteger, nullable=True,
           comment="HTM index of the caps' centre at a level chosen by the outer radius "
                   "(skyreg.geometry.centre_pixels); NULL when a writer did not compute it"),
    PrimaryKeyConstraint("ccd_id"),
    UniqueConstraint("instrument", "visit", "detector"),
    ForeignKeyConstraint(["instrument", "visit"], ["visit.instrument", "visit.visit"]),
    ForeignKeyConstraint(["instrument", "detector"], ["detector.instrument", "detector.detector"]),
    # The key of a CCD by its id, without visiting the table: searches answered from the
    # overlap relations (patch/tract -> CCDs) turn each pair's ccd_id into the key this way,
    # an index-only probe instead of a heap fetch of the wide footprint row.
    Index("ix_ccd_ccd_id_key", "ccd_id",
          postgresql_include=["instrument", "visit", "detector"]),
    # Cone and point searches: one entry per CCD with its key, caps and polygon, so that the
    # candidates of a cone are an index-only range scan, most of them decided by their caps.
    Index("ix_ccd_centre_pix", "centre_pix",
          postgresql_include=["ccd_id", "instrument", "visit", "detector", "cap_x", "cap_y",
                              "cap_z", "cap_inner_cos", "cap_inner_sin", "cap_outer_cos",
                              "cap_outer_sin", "region"]),
    comment="CCDs: one detector of one visit, with its footprint on the sky.",
)

skymap = Table(
    "skymap",
    metadata,
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False, comment="rings, healpix, discrete, ..."),
    Column("hash_sha1_hex", Text, nullable=False, comment="identifies the definition"),
    Column("parameters", JSONB, nullable=False, comment="definition parameters, as given"),
    PrimaryKeyConstraint("name"),
    comment="Sky maps: tessellations of the sky into tracts and patches.",
)

tract = Table(
    "tract",
    metadata,
    Column("tract_id", BigInteger, Identity(always=False), nullable=False),
    Column("skymap", Text, nullable=False),
    Column("tract", BigInteger, nullable=False),
    Column("ra_center", Double, nullable=False),
    Column("dec_center", Double, nullable=False),
    Column("ring", Integer, nullable=True),
    Column("wcs", JSONB, nullable=True,
           comment="tract WCS as FITS keywords (CTYPEi, CRVALi, CRPIXi, CDi_j, NAXISi); "
                   "NULL when the sky map came without one"),
    *_footprint_columns("inner", "the sky the tract owns"),
    *_footprint_columns("outer", "the tract's full extent"),
    PrimaryKeyConstraint("tract_id"),
    UniqueConstraint("skymap", "tract"),
    ForeignKeyConstraint(["skymap"], ["skymap.name"]),
    comment="Tracts of each sky map, with inner (owned) and outer (full) footprints.",
)

patch = Table(
    "patch",
    metadata,
    Column("patch_id", BigInteger, Identity(always=False), nullable=False),
    Column("skymap", Text, nullable=False),
    Column("tract", BigInteger, nullable=False),
    Column("patch", BigInteger, nullable=False, comment="unique within its tract"),
    Column("cell_x", Integer, nullable=False),
    Column("cell_y", Integer, nullable=False),
    Column("inner_bbox", ARRAY(Integer, dimensions=1), nullable=True,
           comment="inner pixel box in tract pixels: x_min, y_min, x_max, y_max (inclusive)"),
    Column("outer_bbox", ARRAY(Integer, dimensions=1), nullable=True,
           comment="outer pixel box (the patch image) in tract pixels, as inner_bbox"),
    *_footprint_columns("inner", "the sky the patch owns"),
    *_footprint_columns("outer", "the patch's full extent"),
    PrimaryKeyConstraint("patch_id"),
    UniqueConstraint("skymap", "tract", "patch"),
    ForeignKeyConstraint(["skymap", "tract"], ["tract.skymap", "tract.tract"]),
    comment="Patches of each tract, with inner (owned) and outer (full) footprints.",
)

ccd_pixel = _pixel_table("ccd_pixel", "ccd", "ccd_id")
tract_pixel = _pixel_table("tract_pixel", "tract", "tract_id")
patch_pixel = _pixel_table("patch_pixel", "patch", "patch_id")


def _overlap_table(name: str, tile: str, tile_id: str) -> Table:
    """Every (CCD, tile) pair whose footprints overlap, with which tile polygon they overlap.

    Keyed (tile, CCD key) for tile → CCDs: the CCD's instrument, visit and detector are stored
    with the pair (a CCD's key never changes), so a patch's CCDs are one index-only range scan
    returning their keys in key order, with no lookup per CCD. A second index (CCD, tile) serves
    CCD → tiles. Both carry the two flags, so either lookup stays index-only.
    """
    return Table(
        name,
        metadata,
        Column(tile_id, BigInteger, nullable=False, comment=f"{tile}.{tile_id}"),
        Column("ccd_id", BigInteger, nullable=False, comment="ccd.ccd_id"),
        Column("outer_overlap", Boolean, nullable=False,
               comment=f"the CCD overlaps the {tile}'s outer polygon (find_ccds({tile}=...))"),
        Column("inner_overlap", Boolean, nullable=False,
               comment=f"the CCD overlaps the {tile}'s inner polygon (inner=True)"),
        Column("instrument", Text, nullable=False, comment="ccd.instrument of ccd_id"),
        Column("visit", BigInteger, nullable=False, comment="ccd.visit of ccd_id"),
        Column("detector", BigInteger, nullable=False, comment="ccd.detector of ccd_id"),
        PrimaryKeyConstraint(tile_id, "instrument", "visit", "detector",
                             postgresql_include=["ccd_id", "outer_overlap", "inner_overlap"]),
        Index(f"ix_{name}_ccd_id_{tile_id}", "ccd_id", tile_id,
              postgresql_include=["outer_overlap", "inner_overlap"]),
        CheckConstraint("outer_overlap OR inner_overlap", name="some_overlap"),
        comment=(
            f"Exact overlaps of CCD footprints with {tile} polygons (sphgeom's "
            "ConvexPolygon.overlaps), one row per pair that overlaps the outer or the inner "
            "polygon, with the CCD's key. Written by every ingest in the transaction that "
            f"stores the CCD or the {tile}; patch/tract searches read it instead of testing "
            "polygons."
        ),
    )


ccd_patch_overlap = _overlap_table("ccd_patch_overlap", "patch", "patch_id")
ccd_tract_overlap = _overlap_table("ccd_tract_overlap", "tract", "tract_id")
