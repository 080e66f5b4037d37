"""Initial schema: instruments, visits, CCDs, sky maps and their pixel indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 09:15:27.585970
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ccd_pixel",
        sa.Column(
            "pix", sa.BigInteger(), nullable=False, comment="pixel index (see registry_config)"
        ),
        sa.Column("ccd_id", sa.BigInteger(), nullable=False, comment="ccd.ccd_id"),
        sa.PrimaryKeyConstraint("pix", "ccd_id", name=op.f("pk_ccd_pixel")),
        comment="Spatial index of ccd footprints: one row per pixel the footprint touches. Candidates only: the exact overlap test uses the polygon.",
    )
    op.create_table(
        "instrument",
        sa.Column("name", sa.Text(), nullable=False, comment="instrument key, e.g. LSSTCam"),
        sa.Column(
            "detector_max",
            sa.BigInteger(),
            nullable=False,
            comment="exclusive bound of detector ids",
        ),
        sa.Column(
            "visit_max", sa.BigInteger(), nullable=False, comment="exclusive bound of visit ids"
        ),
        sa.Column("bands", postgresql.ARRAY(sa.Text(), dimensions=1), nullable=True),
        sa.Column("physical_filters", postgresql.ARRAY(sa.Text(), dimensions=1), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instrument")),
        comment="Instruments (cameras).",
    )
    op.create_table(
        "patch_pixel",
        sa.Column(
            "pix", sa.BigInteger(), nullable=False, comment="pixel index (see registry_config)"
        ),
        sa.Column("patch_id", sa.BigInteger(), nullable=False, comment="patch.patch_id"),
        sa.PrimaryKeyConstraint("pix", "patch_id", name=op.f("pk_patch_pixel")),
        comment="Spatial index of patch footprints: one row per pixel the footprint touches. Candidates only: the exact overlap test uses the polygon.",
    )
    op.create_table(
        "registry_config",
        sa.Column("id", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("pixel_scheme", sa.Text(), nullable=False, comment="'htm' or 'healpix' (nested)"),
        sa.Column(
            "pixel_level", sa.SmallInteger(), nullable=False, comment="pixelization level / order"
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "pixel_scheme IN ('htm', 'healpix')", name=op.f("ck_registry_config_known_scheme")
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_registry_config_single_row")),
        sa.CheckConstraint(
            "pixel_level BETWEEN 0 AND 24", name=op.f("ck_registry_config_level_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_config")),
        comment="One row: the pixelization every *_pixel table uses. Fixed when the registry is made.",
    )
    op.create_table(
        "skymap",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False, comment="rings, healpix, discrete, ..."),
        sa.Column("hash_sha1_hex", sa.Text(), nullable=False, comment="identifies the definition"),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="definition parameters, as given",
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_skymap")),
        comment="Sky maps: tessellations of the sky into tracts and patches.",
    )
    op.create_table(
        "tract_pixel",
        sa.Column(
            "pix", sa.BigInteger(), nullable=False, comment="pixel index (see registry_config)"
        ),
        sa.Column("tract_id", sa.BigInteger(), nullable=False, comment="tract.tract_id"),
        sa.PrimaryKeyConstraint("pix", "tract_id", name=op.f("pk_tract_pixel")),
        comment="Spatial index of tract footprints: one row per pixel the footprint touches. Candidates only: the exact overlap test uses the polygon.",
    )
    op.create_table(
        "detector",
        sa.Column("instrument", sa.Text(), nullable=False),
        sa.Column(
            "detector", sa.BigInteger(), nullable=False, comment="detector id within the instrument"
        ),
        sa.Column("full_name", sa.Text(), nullable=False, comment="e.g. R22_S11"),
        sa.Column("raft", sa.Text(), server_default="", nullable=False),
        sa.Column("name_in_raft", sa.Text(), server_default="", nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False, comment="SCIENCE, GUIDER, WAVEFRONT, ..."),
        sa.Column("fp_x_min", sa.Double(), nullable=True, comment="focal-plane box, degrees"),
        sa.Column("fp_x_max", sa.Double(), nullable=True),
        sa.Column("fp_y_min", sa.Double(), nullable=True),
        sa.Column("fp_y_max", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["instrument"], ["instrument.name"], name=op.f("fk_detector_instrument_instrument")
        ),
        sa.PrimaryKeyConstraint("instrument", "detector", name=op.f("pk_detector")),
        comment="Detectors (CCDs of the focal plane) of each instrument.",
    )
    op.create_table(
        "tract",
        sa.Column("tract_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("skymap", sa.Text(), nullable=False),
        sa.Column("tract", sa.BigInteger(), nullable=False),
        sa.Column("ra_center", sa.Double(), nullable=False),
        sa.Column("dec_center", sa.Double(), nullable=False),
        sa.Column("ring", sa.Integer(), nullable=True),
        sa.Column(
            "inner_region",
            sa.LargeBinary(),
            nullable=False,
            comment="the sky the tract owns: lsst.sphgeom ConvexPolygon.encode() bytes",
        ),
        sa.Column(
            "inner_ra",
            postgresql.ARRAY(sa.Double(), dimensions=1),
            nullable=False,
            comment="the sky the tract owns: vertex RA, degrees",
        ),
        sa.Column(
            "inner_dec",
            postgresql.ARRAY(sa.Double(), dimensions=1),
            nullable=False,
            comment="the sky the tract owns: vertex Dec, degrees",
        ),
        sa.Column(
            "outer_region",
            sa.LargeBinary(),
            nullable=False,
            comment="the tract's full extent: lsst.sphgeom ConvexPolygon.encode() bytes",
        ),
        sa.Column(
            "outer_ra",
            postgresql.ARRAY(sa.Double(), dimensions=1),
            nullable=False,
            comment="the tract's full extent: vertex RA, degrees",
        ),
        sa.Column(
            "outer_dec",
            postgresql.ARRAY(sa.Double(), dimensions=1),
            nullable=False,
            comment="the tract's full extent: vertex Dec, degrees",
        ),
        sa.ForeignKeyConstraint(["skymap"], ["skymap.name"], name=op.f("fk_tract_skymap_skymap")),
        sa.PrimaryKeyConstraint("tract_id", name=op.f("pk_tract")),
        sa.UniqueConstraint("skymap", "tract", name=op.f("uq_tract_skymap_tract")),
        comment="Tracts of each sky map, with inner (owned) and outer (full) footprints.",
    )
    op.create_table(
        "visit",
        sa.Column("instrument", sa.Text(), nullable=False),
        sa.Column("visit", sa.BigInteger(), nullable=False),
        sa.Column("day_obs", sa.Integer(), nullable=False, comment="observing day, YYYYMMDD"),
        sa.Column("seq_num", sa.BigInteger(), nullable=False),
        sa.Column("band", sa.Text(), nullable=False),
        sa.Column("physical_filter", sa.Text(), nullable=False),
        sa.Column("boresight_ra", sa.Double(), nullable=False, comment="degrees, ICRS"),
        sa.Column("boresight_dec", sa.Double(), nullable=False, comment="degrees, ICRS"),
        sa.Column(
            "rotation_deg", sa.Double(), nullable=False, comment="sky rotation angle, degrees"
        ),
        sa.Column("exposure_time", sa.Double(), nullable=False, comment="seconds"),
        sa.Column(
            "mjd_tai_start", sa.Double(), nullable=False, comment="MJD (TAI) at shutter open"
        ),
        sa.Column("mjd_tai_end", sa.Double(), nullable=False, comment="MJD (TAI) at shutter close"),
        sa.Column(
            "region",
            sa.LargeBinary(),
            nullable=False,
            comment="whole-visit footprint: lsst.sphgeom ConvexPolygon.encode() bytes",
        ),
        sa.Column(
            "ra",
            postgresql.ARRAY(sa.Double(), dimensions=1),
            nullable=False,
            comment="whole-visit footprint: vertex RA, degrees",
        ),
        sa.Column(
            "dec",
            postgresql.ARRAY(sa.Double(), dimensions=1),
            nullable=False,
            comment="whole-visit footprint: vertex Dec, degrees",
        ),
        sa.CheckConstraint("mjd_tai_end >= mjd_tai_start", name=op.f("ck_visit_time_order")),
        sa.ForeignKeyConstraint(
            ["instrument"], ["instrument.name"], name=op.f("fk_visit_instrument_instrument")
        ),
        sa.PrimaryKeyConstraint("instrument", "visit", name=op.f("pk_visit")),
        comment="Visits (exposures): pointing, filter, time span and whole-focal-plane footprint.",
    )
    op.create_table(
        "ccd",
        sa.Column(
            "ccd_id",
            sa.BigInteger(),
            sa.Identity(always=False),
            nullable=False,
            comment="surrogate key used by ccd_pixel",
        ),
        sa.Column("instrument", sa.Text(), nullable=False),
        sa.Column("visit", sa.BigInteger(), nullable=False),
        sa.Column("detector", sa.BigInteger(), nullable=False),
        sa.Column(
            "region",
            sa.LargeBinary(),
            nullable=False,
            comment="CCD footprint: lsst.sphgeom ConvexPolygon.encode() bytes",
        ),
        sa.Column(
            "ra",
            postgresql.ARRAY(sa.Double(), dimensions=1),
            nullable=False,
            comment="CCD footprint: vertex RA, degrees",
        ),
        sa.Column(
            "dec",
            postgresql.ARRAY(sa.Double(), dimensions=1),
            nullable=False,
            comment="CCD footprint: vertex Dec, degrees",
        ),
        sa.ForeignKeyConstraint(
            ["instrument", "detector"],
            ["detector.instrument", "detector.detector"],
            name=op.f("fk_ccd_instrument_detector_detector"),
        ),
        sa.ForeignKeyConstraint(
            ["instrument", "visit"],
            ["visit.instrument", "visit.visit"],
            name=op.f("fk_ccd_instrument_visit_visit"),
        ),
        sa.PrimaryKeyConstraint("ccd_id", name=op.f("pk_ccd")),
        sa.UniqueConstraint(
            "instrument", "visit", "detector", name=op.f("uq_ccd_instrument_visit_detector")
        ),
        comment="CCDs: one detector of one visit, with its footprint on the sky.",
    )
    op.create_table(
        "patch",
        sa.Column("patch_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("skymap", sa.Text(), nullable=False),
        sa.Column("tract", sa.BigInteger(), nullable=False),
        sa.Column("patch", sa.BigInteger(), nullable=False, comment="unique within its tract"),
        sa.Column("cell_x", sa.Integer(), nullable=False),
        sa.Column("cell_y", sa.Integer(), nullable=False),
        sa.Column(
            "inner_region",
            sa.LargeBinary(),
            nullable=False,
            comment="the sky the patch owns: lsst.sphgeom ConvexPolygon.encode() bytes",
        ),
        sa.Column(
            "inner_ra",
            postgresql.ARRAY(sa.Double(), dimensions=1),
            nullable=False,
            comment="the sky the patch owns: vertex RA, degrees",
        ),
        sa.Column(
            "inner_dec",
            postgresql.ARRAY(sa.Double(), dimensions=1),
            nullable=False,
            comment="the sky the patch owns: vertex Dec, degrees",
        ),
        sa.Column(
            "outer_region",
            sa.LargeBinary(),
            nullable=False,
            comment="the patch's full extent: lsst.sphgeom ConvexPolygon.encode() bytes",
        ),
        sa.Column(
            "outer_ra",
            postgresql.ARRAY(sa.Double(), dimensions=1),
            nullable=False,
            comment="the patch's full extent: vertex RA, degrees",
        ),
        sa.Column(
            "outer_dec",
            postgresql.ARRAY(sa.Double(), dimensions=1),
            nullable=False,
            comment="the patch's full extent: vertex Dec, degrees",
        ),
        sa.ForeignKeyConstraint(
            ["skymap", "tract"],
            ["tract.skymap", "tract.tract"],
            name=op.f("fk_patch_skymap_tract_tract"),
        ),
        sa.PrimaryKeyConstraint("patch_id", name=op.f("pk_patch")),
        sa.UniqueConstraint("skymap", "tract", "patch", name=op.f("uq_patch_skymap_tract_patch")),
        comment="Patches of each tract, with inner (owned) and outer (full) footprints.",
    )


def downgrade() -> None:
    op.drop_table("patch")
    op.drop_table("ccd")
    op.drop_table("visit")
    op.drop_table("tract")
    op.drop_table("detector")
    op.drop_table("tract_pixel")
    op.drop_table("skymap")
    op.drop_table("registry_config")
    op.drop_table("patch_pixel")
    op.drop_table("instrument")
    op.drop_table("ccd_pixel")
