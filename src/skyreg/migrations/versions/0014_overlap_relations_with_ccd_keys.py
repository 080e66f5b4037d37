"""Overlap relations keyed by the CCD key: a patch's CCDs come out of one index-only scan.

``find_ccds(patch=...)``, ``skyreg_ccds_overlapping_patch`` and ``skyreg_ccd_patch_pairs``
read a patch's pairs from ``ccd_patch_overlap`` and then turned each ``ccd_id`` into the CCD's
key with one probe of ``ix_ccd_ccd_id_key`` per CCD: ~0.8 of the ~1.0 ms of server time of a
~1,000-CCD patch at 1.89 M CCDs. The relations now store the key with the pair
(``instrument``, ``visit``, ``detector``: a CCD's key never changes) and are keyed
(tile, instrument, visit, detector) INCLUDE (ccd_id, flags): the range scan returns the keys,
in key order, and nothing else is read. The (CCD, tile) index is unchanged. This costs ~470
bytes per CCD at survey depth (1,207 → 1,673; docs/benchmarks.md).

The upgrade fills the new columns from ``ccd`` with the keys dropped and builds them once
afterwards; ``ix_ccd_ccd_id_key`` (revision 0012) stays, for the SQL functions of older
revisions and for operators' joins. The SQL functions are re-installed from
``skyreg/migrations/sql/0014``: 0013's, with the patch and tract functions reading the keys
from the relations, and the candidate id arrays of the pixel searches sorted by their
subquery. The downgrade puts 0013's functions and 0007's keys back and drops the columns.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 20:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from skyreg.migrations import functions

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: SHA-256 of ``sql/0014`` (``functions.sql_digest``): the suite fails if the files change.
SQL_SHA256 = "35dd4ddcddc0c2a1741d4247b377f3703faecffbe0070b49b35d40e12ac0f153"

#: (relation, tile id column)
_RELATIONS = (("ccd_patch_overlap", "patch_id"), ("ccd_tract_overlap", "tract_id"))
_FLAGS = "outer_overlap, inner_overlap"


def upgrade() -> None:
    for relation, tile_id in _RELATIONS:
        # Without the keys, the UPDATE writes each row once, not once per index as well.
        op.execute(f'ALTER TABLE "{relation}" DROP CONSTRAINT "pk_{relation}"')
        op.execute(f'DROP INDEX "ix_{relation}_ccd_id_{tile_id}"')
        op.execute(f'ALTER TABLE "{relation}" ADD COLUMN instrument text, '
                   "ADD COLUMN visit bigint, ADD COLUMN detector bigint")
        op.execute(f'UPDATE "{relation}" AS o SET instrument = c.instrument, '
                   "visit = c.visit, detector = c.detector FROM ccd AS c "
                   "WHERE c.ccd_id = o.ccd_id")
        op.execute(f'ALTER TABLE "{relation}" ALTER COLUMN instrument SET NOT NULL, '
                   "ALTER COLUMN visit SET NOT NULL, ALTER COLUMN detector SET NOT NULL")
        for column in ("instrument", "visit", "detector"):
            op.execute(f"COMMENT ON COLUMN \"{relation}\".{column} IS "
                       f"'ccd.{column} of ccd_id'")
        op.execute(f'ALTER TABLE "{relation}" ADD CONSTRAINT "pk_{relation}" PRIMARY KEY '
                   f"({tile_id}, instrument, visit, detector) INCLUDE (ccd_id, {_FLAGS})")
        op.execute(f'CREATE INDEX "ix_{relation}_ccd_id_{tile_id}" ON "{relation}" '
                   f"(ccd_id, {tile_id}) INCLUDE ({_FLAGS})")
        op.execute(f"""COMMENT ON TABLE "{relation}" IS {_comment(tile_id[:-3])}""")
    functions.install(revision)


def downgrade() -> None:
    functions.install("0013")
    for relation, tile_id in _RELATIONS:
        op.execute(f'ALTER TABLE "{relation}" DROP CONSTRAINT "pk_{relation}"')
        op.execute(f'ALTER TABLE "{relation}" DROP COLUMN instrument, DROP COLUMN visit, '
                   "DROP COLUMN detector")
        op.execute(f'ALTER TABLE "{relation}" ADD CONSTRAINT "pk_{relation}" PRIMARY KEY '
                   f"({tile_id}, ccd_id) INCLUDE ({_FLAGS})")
        op.execute(f"""COMMENT ON TABLE "{relation}" IS {_comment(tile_id[:-3], keys=False)}""")


def _comment(tile: str, keys: bool = True) -> str:
    """The table comment (as a SQL literal) of the relation, with or without the keys."""
    text = (f"Exact overlaps of CCD footprints with {tile} polygons (sphgeom's "
            "ConvexPolygon.overlaps), one row per pair that overlaps the outer or the inner "
            f"polygon{', with the CCD' + chr(39) + 's key' if keys else ''}. Written by every "
            f"ingest in the transaction that stores the CCD or the {tile}; patch/tract "
            "searches read it instead of testing polygons.")
    return "'" + text.replace("'", "''") + "'"
