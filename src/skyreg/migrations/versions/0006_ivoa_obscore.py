"""IVOA ObsCore: the ``ivoa.obscore`` view over the file archive, and its lookup tables.

One row per archived image: every CCD dataset (``raw``, ``calexp``, ...) and every patch
dataset (``deepCoadd``, ...), with the 30 mandatory ObsCore 1.1 columns followed by
``skyreg_*`` columns holding the data ID (so the view can be joined with the search functions
and the service can look rows up by key). The SIA service reads its answers from this view,
so what an operator's TAP server publishes and what ``/sia2/query`` answers are the same rows.

``ivoa.skyreg_band`` maps band names to wavelength ranges (em_min/em_max) and
``ivoa.skyreg_facility`` instruments to facility names; operators may add rows for their own
filters and cameras. ``access_url`` points at the web service's ``/files`` endpoint when the
setting ``skyreg.base_url`` is set (``ALTER DATABASE ... SET skyreg.base_url = 'https://...'``;
the service sets it on its own connections) and is the registered URI otherwise.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Wavelength range (metres) of each band: approximate half-maximum limits of the LSST
#: filters, used for the other cameras' bands of the same name (docs/service.md).
BANDS = (
    ("u", 320e-9, 400e-9),
    ("g", 400e-9, 552e-9),
    ("r", 552e-9, 691e-9),
    ("i", 691e-9, 818e-9),
    ("z", 818e-9, 922e-9),
    ("y", 948e-9, 1060e-9),
    ("Y", 948e-9, 1060e-9),
)

FACILITIES = (
    ("LSSTCam", "Rubin:Simonyi"),
    ("LSSTComCam", "Rubin:Simonyi"),
    ("LATISS", "Rubin:AuxTel"),
    ("DECam", "CTIO-4m"),
    ("HSC", "Subaru"),
)

_FUNCTIONS = r"""
CREATE FUNCTION ivoa.skyreg_uri_escape_all(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT string_agg(CASE WHEN c ~ '^[A-Za-z0-9._~-]$' THEN c
                      ELSE upper(regexp_replace(encode(convert_to(c, 'UTF8'), 'hex'),
                                                '(..)', '%\1', 'g')) END,
                      '' ORDER BY n)
    FROM regexp_split_to_table(value, '') WITH ORDINALITY AS s(c, n)
$$;
-- Not STRICT and a single expression, so PostgreSQL inlines it: names that need no escaping
-- (nearly all) cost one regular-expression match.
CREATE FUNCTION ivoa.skyreg_uri_escape(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value ~ '^[A-Za-z0-9._~-]*$' THEN value
                ELSE ivoa.skyreg_uri_escape_all(value) END
$$;
COMMENT ON FUNCTION ivoa.skyreg_uri_escape(text) IS
    'Percent-encode every character but A-Z a-z 0-9 . _ ~ - (as Python''s quote(s, safe=""))';

-- A set-returning SQL function that is not STRICT is inlined into the view's query, so the
-- per-row cost is that of the expressions, not of a function call.
CREATE FUNCTION ivoa.skyreg_footprint(ra_deg float8[], dec_deg float8[])
RETURNS TABLE (s_ra float8, s_dec float8, s_fov float8, s_region text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN lon >= 360.0 THEN 0.0 ELSE lon END,
           atan2d(cz, sqrt(cx * cx + cy * cy)),
           2.0 * max_angle,
           region
    FROM (
        SELECT sum(x) AS cx, sum(y) AS cy, sum(z) AS cz,
               'POLYGON ICRS ' || string_agg(r::text || ' ' || d::text, ' ' ORDER BY n) AS region,
               array_agg(x ORDER BY n) AS xs, array_agg(y ORDER BY n) AS ys,
               array_agg(z ORDER BY n) AS zs
        FROM (SELECT r, d, n, cosd(d) * cosd(r) AS x, cosd(d) * sind(r) AS y, sind(d) AS z
              FROM unnest(ra_deg, dec_deg) WITH ORDINALITY AS t(r, d, n)) AS v
    ) AS c
    CROSS JOIN LATERAL (SELECT mod(atan2d(cy, cx)::numeric + 360, 360)::float8 AS lon) AS a
    CROSS JOIN LATERAL (
        SELECT max(atan2d(sqrt((cy * z - cz * y) ^ 2 + (cz * x - cx * z) ^ 2
                               + (cx * y - cy * x) ^ 2),
                          cx * x + cy * y + cz * z)) AS max_angle
        FROM unnest(xs, ys, zs) AS u(x, y, z)
    ) AS m
$$;
COMMENT ON FUNCTION ivoa.skyreg_footprint(float8[], float8[]) IS
    'Centre (direction of the sum of the vertex unit vectors), diameter (degrees) and STC-S '
    'polygon (vertices as stored) of a footprint';
"""

# Both branches produce the same column types, so PostgreSQL flattens the UNION ALL and
# pushes key conditions into each branch (primary-key lookups of ccd_dataset/patch_dataset).
_VIEW = r"""
CREATE VIEW ivoa.obscore AS
SELECT
    'image'::text AS dataproduct_type,
    (CASE WHEN d.dataset_type = 'raw' THEN 1 ELSE 2 END)::integer AS calib_level,
    d.dataset_type AS obs_collection,
    d.instrument || '/' || d.visit || '/' || d.detector AS obs_id,
    ids.did AS obs_publisher_did,
    CASE WHEN d.uri LIKE 'file://%' AND nullif(current_setting('skyreg.base_url', true), '') IS NOT NULL
         THEN current_setting('skyreg.base_url', true) || '/files?ID=' || ivoa.skyreg_uri_escape(ids.did)
         ELSE d.uri END AS access_url,
    CASE WHEN lower(d.format) = 'fits' THEN 'image/fits' ELSE d.format END AS access_format,
    ceil(d.size_bytes / 1000.0)::bigint AS access_estsize,
    NULL::text AS target_name,
    f.s_ra, f.s_dec, f.s_fov, f.s_region,
    NULL::float8 AS s_resolution,
    NULL::bigint AS s_xel1,
    NULL::bigint AS s_xel2,
    v.mjd_tai_start AS t_min,
    v.mjd_tai_end AS t_max,
    v.exposure_time AS t_exptime,
    v.exposure_time AS t_resolution,
    1::bigint AS t_xel,
    b.em_min, b.em_max,
    (b.em_min + b.em_max) / 2.0 / (b.em_max - b.em_min) AS em_res_power,
    1::bigint AS em_xel,
    CASE WHEN d.dataset_type = 'raw' THEN 'phot.count' ELSE 'phot.flux' END AS o_ucd,
    NULL::text AS pol_states,
    NULL::bigint AS pol_xel,
    fac.facility_name,
    d.instrument AS instrument_name,
    d.dataset_type AS skyreg_dataset_type,
    d.instrument AS skyreg_instrument,
    d.visit AS skyreg_visit,
    d.detector AS skyreg_detector,
    NULL::text AS skyreg_skymap,
    NULL::bigint AS skyreg_tract,
    NULL::bigint AS skyreg_patch,
    v.band AS skyreg_band,
    d.uri AS skyreg_uri,
    d.hdu AS skyreg_hdu
FROM ccd_dataset AS d
JOIN ccd AS c ON c.instrument = d.instrument AND c.visit = d.visit AND c.detector = d.detector
JOIN visit AS v ON v.instrument = d.instrument AND v.visit = d.visit
LEFT JOIN ivoa.skyreg_band AS b ON b.band = v.band
LEFT JOIN ivoa.skyreg_facility AS fac ON fac.instrument = d.instrument
CROSS JOIN LATERAL ivoa.skyreg_footprint(c.ra, c.dec) AS f
CROSS JOIN LATERAL (
    SELECT 'ivo://skyreg/' || ivoa.skyreg_uri_escape(d.dataset_type) || '?'
           || ivoa.skyreg_uri_escape(d.instrument) || '/' || d.visit || '/' || d.detector AS did
) AS ids
UNION ALL
SELECT
    'image'::text,
    3::integer,
    d.dataset_type,
    d.skymap || '/' || d.tract || '/' || d.patch || '/' || d.band,
    ids.did,
    CASE WHEN d.uri LIKE 'file://%' AND nullif(current_setting('skyreg.base_url', true), '') IS NOT NULL
         THEN current_setting('skyreg.base_url', true) || '/files?ID=' || ivoa.skyreg_uri_escape(ids.did)
         ELSE d.uri END,
    CASE WHEN lower(d.format) = 'fits' THEN 'image/fits' ELSE d.format END,
    ceil(d.size_bytes / 1000.0)::bigint,
    NULL::text,
    f.s_ra, f.s_dec, f.s_fov, f.s_region,
    NULL::float8,
    (p.outer_bbox[3] - p.outer_bbox[1] + 1)::bigint,
    (p.outer_bbox[4] - p.outer_bbox[2] + 1)::bigint,
    NULL::float8,
    NULL::float8,
    NULL::float8,
    NULL::float8,
    1::bigint,
    b.em_min, b.em_max,
    (b.em_min + b.em_max) / 2.0 / (b.em_max - b.em_min),
    1::bigint,
    'phot.flux'::text,
    NULL::text,
    NULL::bigint,
    NULL::text,
    NULL::text,
    d.dataset_type,
    NULL::text,
    NULL::bigint,
    NULL::bigint,
    d.skymap,
    d.tract,
    d.patch,
    d.band,
    d.uri,
    d.hdu
FROM patch_dataset AS d
JOIN patch AS p ON p.skymap = d.skymap AND p.tract = d.tract AND p.patch = d.patch
LEFT JOIN ivoa.skyreg_band AS b ON b.band = d.band
CROSS JOIN LATERAL ivoa.skyreg_footprint(p.outer_ra, p.outer_dec) AS f
CROSS JOIN LATERAL (
    SELECT 'ivo://skyreg/' || ivoa.skyreg_uri_escape(d.dataset_type) || '?'
           || ivoa.skyreg_uri_escape(d.skymap) || '/' || d.tract || '/' || d.patch || '/'
           || ivoa.skyreg_uri_escape(d.band) AS did
) AS ids;

COMMENT ON VIEW ivoa.obscore IS
    'IVOA ObsCore 1.1: one row per archived image (CCD and patch datasets); skyreg_* columns hold the data ID';
"""


def _run(sql: str) -> None:
    """Send a script of several statements as it is (no bind-parameter parsing)."""
    driver = op.get_bind().connection.driver_connection
    assert driver is not None
    driver.execute(sql)


def upgrade() -> None:
    _run("""
        CREATE SCHEMA IF NOT EXISTS ivoa;
        COMMENT ON SCHEMA ivoa IS 'IVOA data models over the registry (ObsCore)';
        CREATE TABLE ivoa.skyreg_band (
            band text PRIMARY KEY,
            em_min float8 NOT NULL,
            em_max float8 NOT NULL,
            CONSTRAINT ck_skyreg_band_range CHECK (em_min > 0 AND em_max > em_min)
        );
        COMMENT ON TABLE ivoa.skyreg_band IS
            'Wavelength range of each band (metres): em_min/em_max of ivoa.obscore';
        CREATE TABLE ivoa.skyreg_facility (
            instrument text PRIMARY KEY,
            facility_name text NOT NULL
        );
        COMMENT ON TABLE ivoa.skyreg_facility IS
            'Facility (telescope) of each instrument: facility_name of ivoa.obscore';
    """)
    bind = op.get_bind()
    driver = bind.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.executemany("INSERT INTO ivoa.skyreg_band VALUES (%s, %s, %s)", BANDS)
        cursor.executemany("INSERT INTO ivoa.skyreg_facility VALUES (%s, %s)", FACILITIES)
    _run(_FUNCTIONS)
    _run(_VIEW)
    # Readers of the registry read the view too (skyreg db roles grants the rest again).
    _run("""
        DO $$
        DECLARE r text;
        BEGIN
            FOREACH r IN ARRAY ARRAY['skyreg_reader', 'skyreg_writer'] LOOP
                IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
                    EXECUTE format('GRANT USAGE ON SCHEMA ivoa TO %I', r);
                    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA ivoa TO %I', r);
                    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ivoa TO %I', r);
                END IF;
            END LOOP;
        END $$;
    """)


def downgrade() -> None:
    _run("DROP SCHEMA ivoa CASCADE")
