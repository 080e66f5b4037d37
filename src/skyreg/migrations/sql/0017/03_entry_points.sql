-- Entry points for operators: set-returning SQL functions that answer the registry's spatial
-- questions exactly, like the Python API. Each is one inlinable SELECT, so EXPLAIN shows its
-- whole plan: candidate ids from the *_pixel tables (index range scans over the pixel cover
-- of the region), then the exact test on each candidate's polygon.

CREATE FUNCTION skyreg_cover(kind text, region float8[]) RETURNS TABLE (lo bigint, hi bigint)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE ROWS 16 AS $$
DECLARE
    scheme text;
    lvl int;
BEGIN
    SELECT c.pixel_scheme, c.pixel_level INTO scheme, lvl FROM registry_config AS c;
    IF scheme IS NULL THEN
        RAISE EXCEPTION 'registry_config is empty: this database holds no skyreg registry yet'
            USING ERRCODE = '55000';
    END IF;
    IF scheme <> 'htm' THEN
        RAISE EXCEPTION 'the skyreg SQL functions support HTM-indexed registries only; this '
            'registry is indexed with % level %', scheme, lvl
            USING ERRCODE = '0A000',
                  HINT = 'use the Python API or the skyreg command for this registry';
    END IF;
    RETURN QUERY SELECT h.lo, h.hi FROM skyreg_htm_cover(kind, region, lvl) AS h;
END $$;
COMMENT ON FUNCTION skyreg_cover(text, float8[]) IS
    'Pixel ranges [lo, hi) covering a region (kind ''circle'' or ''polygon'') in this '
    'registry''s pixelization (registry_config; HTM only).';

CREATE FUNCTION skyreg_bounding_circle(v float8[]) RETURNS float8[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    -- A circle {x, y, z, squared chord} holding every vertex of v (so every convex polygon
    -- made of them, if they lie in a hemisphere), with a 1e-9 rad margin.
    SELECT c || (4 * sin(least(pi(), max(skyreg_angle(c, v[3*k+1:3*k+3])) + 1e-9) / 2) ^ 2)
    FROM (SELECT skyreg_normalized(ARRAY[sum(v[3*k+1]), sum(v[3*k+2]), sum(v[3*k+3])]) AS c
          FROM generate_series(0, array_length(v, 1) / 3 - 1) AS k) AS centre,
         generate_series(0, array_length(v, 1) / 3 - 1) AS k
    GROUP BY c
$$;

-- Stored footprints by key (errors, not empty answers, for unknown keys) --------------------

CREATE FUNCTION skyreg_ccd_id(instrument text, visit bigint, detector bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    result bigint;
BEGIN
    SELECT c.ccd_id INTO result FROM ccd AS c
    WHERE c.instrument = $1 AND c.visit = $2 AND c.detector = $3;
    IF result IS NULL THEN
        RAISE EXCEPTION 'CCD (%, %, %) is not in the registry', $1, $2, $3
            USING ERRCODE = 'P0002';
    END IF;
    RETURN result;
END $$;
COMMENT ON FUNCTION skyreg_ccd_id(text, bigint, bigint) IS
    'ccd_id of one CCD (the key of ccd_patch_overlap and ccd_tract_overlap); error if it is '
    'not registered.';

CREATE FUNCTION skyreg_patch_id(skymap text, tract bigint, patch bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    result bigint;
BEGIN
    SELECT p.patch_id INTO result FROM patch AS p
    WHERE p.skymap = $1 AND p.tract = $2 AND p.patch = $3;
    IF result IS NULL THEN
        RAISE EXCEPTION 'patch (%, %, %) is not in the registry', $1, $2, $3
            USING ERRCODE = 'P0002';
    END IF;
    RETURN result;
END $$;
COMMENT ON FUNCTION skyreg_patch_id(text, bigint, bigint) IS
    'patch_id of one patch (the key of ccd_patch_overlap); error if it is not registered.';

CREATE FUNCTION skyreg_tract_id(skymap text, tract bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    result bigint;
BEGIN
    SELECT t.tract_id INTO result FROM tract AS t WHERE t.skymap = $1 AND t.tract = $2;
    IF result IS NULL THEN
        RAISE EXCEPTION 'tract (%, %) is not in the registry', $1, $2 USING ERRCODE = 'P0002';
    END IF;
    RETURN result;
END $$;
COMMENT ON FUNCTION skyreg_tract_id(text, bigint) IS
    'tract_id of one tract (the key of ccd_tract_overlap); error if it is not registered.';

CREATE FUNCTION skyreg_ccd_vertices(instrument text, visit bigint, detector bigint)
RETURNS float8[]
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    result float8[];
BEGIN
    SELECT skyreg_vertices(c.ra, c.dec) INTO result FROM ccd AS c
    WHERE c.instrument = $1 AND c.visit = $2 AND c.detector = $3;
    IF result IS NULL THEN
        RAISE EXCEPTION 'CCD (%, %, %) is not in the registry', $1, $2, $3
            USING ERRCODE = 'P0002';
    END IF;
    RETURN result;
END $$;
COMMENT ON FUNCTION skyreg_ccd_vertices(text, bigint, bigint) IS
    'Unit-vector polygon of one CCD; error if it is not registered.';

CREATE FUNCTION skyreg_patch_vertices(skymap text, tract bigint, patch bigint,
                                      use_inner boolean DEFAULT false)
RETURNS float8[]
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    result float8[];
BEGIN
    SELECT CASE WHEN coalesce($4, false) THEN skyreg_vertices(p.inner_ra, p.inner_dec)
                ELSE skyreg_vertices(p.outer_ra, p.outer_dec) END
    INTO result FROM patch AS p WHERE p.skymap = $1 AND p.tract = $2 AND p.patch = $3;
    IF result IS NULL THEN
        RAISE EXCEPTION 'patch (%, %, %) is not in the registry', $1, $2, $3
            USING ERRCODE = 'P0002';
    END IF;
    RETURN result;
END $$;
COMMENT ON FUNCTION skyreg_patch_vertices(text, bigint, bigint, boolean) IS
    'Unit-vector outer (or inner) polygon of one patch; error if it is not registered.';

CREATE FUNCTION skyreg_tract_vertices(skymap text, tract bigint, use_inner boolean DEFAULT false)
RETURNS float8[]
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    result float8[];
BEGIN
    SELECT CASE WHEN coalesce($3, false) THEN skyreg_vertices(t.inner_ra, t.inner_dec)
                ELSE skyreg_vertices(t.outer_ra, t.outer_dec) END
    INTO result FROM tract AS t WHERE t.skymap = $1 AND t.tract = $2;
    IF result IS NULL THEN
        RAISE EXCEPTION 'tract (%, %) is not in the registry', $1, $2 USING ERRCODE = 'P0002';
    END IF;
    RETURN result;
END $$;
COMMENT ON FUNCTION skyreg_tract_vertices(text, bigint, boolean) IS
    'Unit-vector outer (or inner) polygon of one tract; error if it is not registered.';

CREATE FUNCTION skyreg_cone_cap(c float8[]) RETURNS float8[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    -- The limits skyreg_cap_verdict needs for a circle c from skyreg_circle, as
    -- {x, y, z, t_in, t_out, sin_o, t, s}. A vertex v with c . v > t_in = 1 - cl2 / 2 + 1e-14
    -- has a squared chord length to the centre below cl2 - 1e-14 (+ ~4e-15 of rounding), so
    -- sphgeom finds it inside. Disjointness is proven against the circle enlarged to a
    -- squared chord of cl2 + 1e-12, which keeps every point of the footprint farther than
    -- sphgeom's tolerance of 2.5e-15; only for radii below ~85 degrees (cl2 < 1.9), where
    -- the enlarged cap is within a hemisphere (otherwise t_out = -2 and sin_o = 2 disable it).
    -- The last two values, {t, s}, are the cosine and sine of the radius itself, for
    -- skyreg_bounds_verdict (within ~1e-16 of the exact ones: cl2 = 2 - 2 cos r).
    SELECT ARRAY[c[1], c[2], c[3], 1 - c[4] / 2 + 1e-14,
                 CASE WHEN c[4] < 1.9 THEN 1 - (c[4] + 1e-12) / 2 ELSE -2 END,
                 CASE WHEN c[4] < 1.9 THEN sqrt((c[4] + 1e-12) * (1 - (c[4] + 1e-12) / 4))
                      ELSE 2 END,
                 1 - c[4] / 2, sqrt(c[4] * (1 - c[4] / 4))]
$$;

CREATE FUNCTION skyreg_polygon_cap(poly float8[]) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- The limits skyreg_cap_verdict needs for a convex polygon (unit vectors, counter-clockwise),
-- as {x, y, z, t_in, t_out, sin_o}: a cap around the centre m of skyreg_bounding_circle that
-- lies inside the polygon and the bounding circle itself, which holds the polygon when its
-- radius is below ~85 degrees (a footprint that misses it misses the polygon). The inner
-- cap's radius is the smallest angle from m to an edge's great circle, asin(m . n / |n|)
-- with n = a x b, less 1e-12 rad and less 1e-14 / |n| (n is accurate to ~4e-16 in each
-- component, so short edges make the angle less precise); a vertex of a footprint with
-- c . v > t_in is then strictly inside the polygon, and the polygons overlap. Where anything
-- is out of range the limits decide nothing and the exact test does the work.
DECLARE
    b float8[];
    n int := array_length(poly, 1) / 3;
    rho float8;
BEGIN
    b := skyreg_bounding_circle(poly);
    SELECT min(asin(greatest(-1, least(1, e.dot / e.len))) - 1e-12 - 1e-14 / e.len)
    INTO rho
    FROM generate_series(0, n - 1) AS i, LATERAL (SELECT (i + 1) % n AS j) AS k,
         LATERAL (SELECT b[1] * x + b[2] * y + b[3] * z AS dot, sqrt(x ^ 2 + y ^ 2 + z ^ 2) AS len
                  FROM (SELECT poly[3*i+2] * poly[3*k.j+3] - poly[3*i+3] * poly[3*k.j+2] AS x,
                               poly[3*i+3] * poly[3*k.j+1] - poly[3*i+1] * poly[3*k.j+3] AS y,
                               poly[3*i+1] * poly[3*k.j+2] - poly[3*i+2] * poly[3*k.j+1] AS z)
                       AS c) AS e;
    RETURN ARRAY[b[1], b[2], b[3],
                 CASE WHEN rho > 1e-6 THEN cos(rho) + 1e-13 ELSE 2 END,
                 CASE WHEN b[4] < 1.9 THEN 1 - b[4] / 2 - 1e-13 ELSE -2 END,
                 CASE WHEN b[4] < 1.9 THEN sqrt(b[4] * (1 - b[4] / 4)) + 1e-13 ELSE 2 END];
EXCEPTION WHEN numeric_value_out_of_range OR invalid_argument_for_power_function
               OR division_by_zero THEN
    RETURN ARRAY[0, 0, 1, 2, -2, 2]::float8[];
END $$;

CREATE FUNCTION skyreg_polygon_sides(poly float8[]) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- For skyreg_sides_verdict: a convex polygon of 3 or 4 vertices (unit vectors,
-- counter-clockwise) as its 4 vertices (a triangle's last one repeated) and the normals
-- a x b of its 4 edges (a triangle's last edge repeated), 24 floats; NULL for a polygon of
-- more vertices, or one with a component or normal below 1e-60 in magnitude (whose products
-- could underflow).
DECLARE
    n int := array_length(poly, 1) / 3;
    v float8[];
    r float8[] := '{}';
    i int;
    j int;
BEGIN
    IF n < 3 OR n > 4 OR array_length(poly, 1) <> 3 * n THEN
        RETURN NULL;
    END IF;
    v := poly || CASE WHEN n = 3 THEN poly[7:9] ELSE '{}'::float8[] END;
    FOR k IN 0..3 LOOP
        i := least(k, n - 1);      -- a triangle's edges: 0-1, 1-2, 2-0 and 2-0 again
        j := (i + 1) % n;
        r := r || ARRAY[v[3*i+2] * v[3*j+3] - v[3*i+3] * v[3*j+2],
                        v[3*i+3] * v[3*j+1] - v[3*i+1] * v[3*j+3],
                        v[3*i+1] * v[3*j+2] - v[3*i+2] * v[3*j+1]];
    END LOOP;
    r := v || r;
    IF EXISTS (SELECT FROM unnest(r) AS c WHERE c <> 0 AND abs(c) < 1e-60) THEN
        RETURN NULL;
    END IF;
    RETURN r;
EXCEPTION WHEN numeric_value_out_of_range THEN
    RETURN NULL;
END $$;

-- CCD searches ---------------------------------------------------------------------------------
--
-- Each candidate (from the pixel index) is decided by an inline prefilter in built-in float
-- arithmetic where it can prove the answer with a margin: for cones and points first from the
-- caps stored with each CCD (skyreg_bounds_verdict), then from its vertices
-- (skyreg_cap_verdict, skyreg_point_verdict, skyreg_sides_verdict); the exact PL/pgSQL test
-- runs only for the rest (coalesce evaluates each only when those before it gave NULL), so
-- the answers are the exact test's.

CREATE FUNCTION skyreg_centre_cover(circle float8[]) RETURNS TABLE (lo bigint, hi bigint)
LANGUAGE sql STABLE STRICT PARALLEL SAFE ROWS 64 AS $$
    -- Ranges [lo, hi) of ccd.centre_pix where the centre of a CCD overlapping the circle (from
    -- skyreg_circle) can lie, for the cone search. (The point search keeps the pixel rows:
    -- the cover of a point grown by a CCD's size costs more in SQL than it saves.) Each CCD's centre is stored at an HTM level chosen by the radius
    -- of its outer cap (skyreg.geometry.centre_pixels): at level L >= 2 that radius is at most
    -- 90 / 2^(L - 2) degrees, at level 0 it is unbounded. For every level at which some
    -- centre is stored (one index probe each), the circle grown by that bound and by 1e-9 rad
    -- is covered at that level; a grown circle reaching 180 degrees takes the whole level.
    SELECT c.lo, c.hi
    FROM unnest(ARRAY[0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]) AS l (level)
    CROSS JOIN LATERAL (
        SELECT CASE WHEN l.level = 0 THEN pi() ELSE pi() / 2 / 2 ^ (l.level - 2) END
               + CASE WHEN circle[4] >= 4 THEN pi()
                      ELSE 2 * asin(least(1.0, sqrt(greatest(circle[4], 0)) / 2)) END
               + 1e-9 AS reach) AS g
    CROSS JOIN LATERAL (
        SELECT 8::bigint << (2 * l.level) AS lo, 16::bigint << (2 * l.level) AS hi
        WHERE g.reach >= pi()
        UNION ALL
        SELECT h.lo, h.hi
        FROM skyreg_htm_cover('circle', circle[1:3] || (4 * sin(g.reach / 2) ^ 2), l.level) AS h
        WHERE g.reach < pi()) AS c
    WHERE EXISTS (SELECT 1 FROM ccd
                  WHERE ccd.centre_pix >= 8::bigint << (2 * l.level)
                    AND ccd.centre_pix < 16::bigint << (2 * l.level))
$$;
COMMENT ON FUNCTION skyreg_centre_cover(float8[]) IS
    'Ranges of ccd.centre_pix where the centre of a CCD overlapping a circle '
    '(skyreg_circle) can lie: the candidates of the cone and point searches.';

CREATE FUNCTION skyreg_ccds_in_cone(ra_deg float8, dec_deg float8, radius_deg float8)
RETURNS TABLE (instrument text, visit bigint, detector bigint)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 100 AS $$
    WITH q AS MATERIALIZED (
        SELECT s.circle, l[1] AS cx, l[2] AS cy, l[3] AS cz, l[4] AS t_in, l[5] AS t_out,
               l[6] AS sin_o, l[7] AS t, l[8] AS s
        FROM (SELECT skyreg_circle($1, $2, $3) AS circle) AS s,
             LATERAL skyreg_cone_cap(s.circle) AS l),
    -- The candidates: one entry of ix_ccd_centre_pix each (an index-only scan per range of
    -- the centre cover, which holds the caps), with the stored caps' verdict
    -- (skyreg_bounds_verdict, inlined); CCDs without a centre pixel are all undecided.
    k AS MATERIALIZED (
        SELECT c.ccd_id, c.instrument, c.visit, c.detector, c.verdict
        FROM q CROSS JOIN LATERAL skyreg_centre_cover(q.circle) AS r
        CROSS JOIN LATERAL (
            SELECT p.ccd_id, p.instrument, p.visit, p.detector,
                   skyreg_bounds_verdict(p.cap_x, p.cap_y, p.cap_z, p.cap_inner_cos,
                                         p.cap_inner_sin, p.cap_outer_cos, p.cap_outer_sin,
                                         q.cx, q.cy, q.cz, q.t, q.s) AS verdict
            FROM ccd AS p WHERE p.centre_pix >= r.lo AND p.centre_pix < r.hi OFFSET 0) AS c
        UNION ALL
        SELECT p.ccd_id, p.instrument, p.visit, p.detector, NULL
        FROM ccd AS p WHERE p.centre_pix IS NULL)
    -- The undecided are read from the table by id for the vertex prefilter, then, where it
    -- gives NULL, the exact test.
    SELECT k.instrument, k.visit, k.detector
    FROM q, k
    WHERE coalesce(k.verdict,
                   (SELECT coalesce(f.verdict,
                                    skyreg_polygon_overlaps_circle(skyreg_vertices(h.ra, h.dec),
                                                                   q.circle))
                    FROM ccd AS h
                    CROSS JOIN LATERAL skyreg_cap_verdict(h.ra, h.dec, q.cx, q.cy, q.cz,
                                                          q.t_in, q.t_out, q.sin_o) AS f
                    WHERE h.ccd_id = k.ccd_id))
    ORDER BY 1, 2, 3
$$;
COMMENT ON FUNCTION skyreg_ccds_in_cone(float8, float8, float8) IS
    'CCDs whose footprint overlaps the cone (RA, Dec, radius; degrees). '
    'Example: SELECT * FROM skyreg_ccds_in_cone(150.1, 2.2, 0.2);';

CREATE FUNCTION skyreg_ccds_containing_point(ra_deg float8, dec_deg float8)
RETURNS TABLE (instrument text, visit bigint, detector bigint)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 20 AS $$
    -- As the cone search, for a cone of radius 0 (cos 1, sin 0).
    WITH q AS MATERIALIZED (SELECT skyreg_circle($1, $2, 0) AS circle)
    SELECT c.instrument, c.visit, c.detector
    FROM q, ccd AS c
    WHERE c.ccd_id = ANY (ARRAY(
            SELECT p.ccd_id FROM q CROSS JOIN LATERAL skyreg_cover('circle', q.circle) AS r
            JOIN ccd_pixel AS p ON p.pix >= r.lo AND p.pix < r.hi ORDER BY 1))
      AND coalesce(skyreg_bounds_verdict(c.cap_x, c.cap_y, c.cap_z, c.cap_inner_cos,
                                         c.cap_inner_sin, c.cap_outer_cos, c.cap_outer_sin,
                                         q.circle[1], q.circle[2], q.circle[3], 1, 0),
                   (SELECT f.verdict
                    FROM skyreg_point_verdict(c.ra, c.dec, q.circle[1], q.circle[2],
                                              q.circle[3]) AS f),
                   skyreg_polygon_contains(skyreg_vertices(c.ra, c.dec), q.circle[1],
                                           q.circle[2], q.circle[3]))
    ORDER BY 1, 2, 3
$$;
COMMENT ON FUNCTION skyreg_ccds_containing_point(float8, float8) IS
    'CCDs whose footprint (boundary included) contains the point (RA, Dec; degrees).';

CREATE FUNCTION skyreg_ccds_overlapping_vertices(poly float8[])
RETURNS TABLE (instrument text, visit bigint, detector bigint)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 200 AS $$
    -- A polygon of 3 or 4 vertices (patches, tracts, most query polygons) is prefiltered by
    -- its edges (skyreg_sides_verdict); a larger one by a cap inside it and its bounding
    -- circle (skyreg_cap_verdict, with limits that decide nothing for the smaller ones).
    WITH q AS MATERIALIZED (
        SELECT s.poly, s.sides, l[1] AS cx, l[2] AS cy, l[3] AS cz, l[4] AS t_in,
               l[5] AS t_out, l[6] AS sin_o
        FROM (SELECT $1 AS poly, skyreg_polygon_sides($1) AS sides) AS s,
             LATERAL (SELECT CASE WHEN s.sides IS NULL THEN skyreg_polygon_cap(s.poly)
                                  ELSE ARRAY[0, 0, 1, 2, -2, 2]::float8[] END) AS k (l))
    SELECT c.instrument, c.visit, c.detector
    FROM q, ccd AS c
    CROSS JOIN LATERAL skyreg_sides_verdict(c.ra, c.dec, q.sides) AS e
    CROSS JOIN LATERAL skyreg_cap_verdict(c.ra, c.dec, q.cx, q.cy, q.cz, q.t_in, q.t_out,
                                          q.sin_o) AS f
    WHERE c.ccd_id = ANY (ARRAY(
            SELECT p.ccd_id FROM q CROSS JOIN LATERAL skyreg_cover('polygon', q.poly) AS r
            JOIN ccd_pixel AS p ON p.pix >= r.lo AND p.pix < r.hi ORDER BY 1))
      AND coalesce(e.verdict, f.verdict,
                   skyreg_polygons_overlap(skyreg_vertices(c.ra, c.dec), q.poly))
    ORDER BY 1, 2, 3
$$;
COMMENT ON FUNCTION skyreg_ccds_overlapping_vertices(float8[]) IS
    'CCDs whose footprint overlaps a convex polygon given as unit vectors (the output of '
    'skyreg_polygon, skyreg_patch_vertices or skyreg_tract_vertices): the search the polygon, '
    'patch and tract functions share.';

CREATE FUNCTION skyreg_ccds_in_polygon(ra_deg float8[], dec_deg float8[])
RETURNS TABLE (instrument text, visit bigint, detector bigint)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 100 AS $$
    SELECT * FROM skyreg_ccds_overlapping_vertices(skyreg_polygon($1, $2))
$$;
COMMENT ON FUNCTION skyreg_ccds_in_polygon(float8[], float8[]) IS
    'CCDs whose footprint overlaps a convex polygon given by vertex RA and Dec arrays '
    '(degrees, either order). Example: '
    'SELECT * FROM skyreg_ccds_in_polygon(''{150,150.3,150.3}'', ''{2,2,2.3}'');';

CREATE FUNCTION skyreg_ccds_overlapping_patch(skymap text, tract bigint, patch bigint,
                                              use_inner boolean DEFAULT false)
RETURNS TABLE (instrument text, visit bigint, detector bigint)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 200 AS $$
    -- The pairs are stored with the CCD keys (ccd_patch_overlap): one index-only range scan,
    -- in key order.
    SELECT o.instrument, o.visit, o.detector
    FROM ccd_patch_overlap AS o
    WHERE o.patch_id = skyreg_patch_id($1, $2, $3)
      AND CASE WHEN coalesce($4, false) THEN o.inner_overlap ELSE o.outer_overlap END
    ORDER BY 1, 2, 3
$$;
COMMENT ON FUNCTION skyreg_ccds_overlapping_patch(text, bigint, bigint, boolean) IS
    'CCDs whose footprint overlaps the outer (inner if the 4th argument is true) polygon of a '
    'patch, from ccd_patch_overlap. '
    'Example: SELECT * FROM skyreg_ccds_overlapping_patch(''rings'', 9813, 40);';

CREATE FUNCTION skyreg_ccds_overlapping_tract(skymap text, tract bigint,
                                              use_inner boolean DEFAULT false)
RETURNS TABLE (instrument text, visit bigint, detector bigint)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1000 AS $$
    SELECT o.instrument, o.visit, o.detector
    FROM ccd_tract_overlap AS o
    WHERE o.tract_id = skyreg_tract_id($1, $2)
      AND CASE WHEN coalesce($3, false) THEN o.inner_overlap ELSE o.outer_overlap END
    ORDER BY 1, 2, 3
$$;
COMMENT ON FUNCTION skyreg_ccds_overlapping_tract(text, bigint, boolean) IS
    'CCDs whose footprint overlaps the outer (inner if the 3rd argument is true) polygon of a '
    'tract, from ccd_tract_overlap. '
    'Example: SELECT * FROM skyreg_ccds_overlapping_tract(''rings'', 9813);';

-- Patch and tract searches ---------------------------------------------------------------------

CREATE FUNCTION skyreg_patches_overlapping_ccd(instrument text, visit bigint, detector bigint,
                                               skymap text DEFAULT NULL,
                                               use_inner boolean DEFAULT false)
RETURNS TABLE (skymap text, tract bigint, patch bigint)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 10 AS $$
    SELECT t.skymap, t.tract, t.patch
    FROM ccd_patch_overlap AS o JOIN patch AS t ON t.patch_id = o.patch_id
    WHERE o.ccd_id = skyreg_ccd_id($1, $2, $3)
      AND ($4 IS NULL OR t.skymap = $4)
      AND CASE WHEN coalesce($5, false) THEN o.inner_overlap ELSE o.outer_overlap END
    ORDER BY 1, 2, 3
$$;
COMMENT ON FUNCTION skyreg_patches_overlapping_ccd(text, bigint, bigint, text, boolean) IS
    'Patches whose outer (inner if the 5th argument is true) polygon overlaps a CCD, '
    'optionally of one sky map, from ccd_patch_overlap. '
    'Example: SELECT * FROM skyreg_patches_overlapping_ccd(''LSSTCam'', 2027010100042, 94);';

CREATE FUNCTION skyreg_tracts_overlapping_ccd(instrument text, visit bigint, detector bigint,
                                              skymap text DEFAULT NULL,
                                              use_inner boolean DEFAULT false)
RETURNS TABLE (skymap text, tract bigint)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 4 AS $$
    SELECT t.skymap, t.tract
    FROM ccd_tract_overlap AS o JOIN tract AS t ON t.tract_id = o.tract_id
    WHERE o.ccd_id = skyreg_ccd_id($1, $2, $3)
      AND ($4 IS NULL OR t.skymap = $4)
      AND CASE WHEN coalesce($5, false) THEN o.inner_overlap ELSE o.outer_overlap END
    ORDER BY 1, 2
$$;
COMMENT ON FUNCTION skyreg_tracts_overlapping_ccd(text, bigint, bigint, text, boolean) IS
    'Tracts whose outer (inner if the 5th argument is true) polygon overlaps a CCD, '
    'optionally of one sky map, from ccd_tract_overlap.';

-- Bulk join ------------------------------------------------------------------------------------

CREATE FUNCTION skyreg_ccd_patch_pairs(skymap text, tract bigint, use_inner boolean DEFAULT false)
RETURNS TABLE (patch bigint, instrument text, visit bigint, detector bigint)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 10000 AS $$
    -- The tract's patches (unique index) and their stored pairs with the CCD keys (one
    -- index-only range scan of ccd_patch_overlap per patch).
    SELECT t.patch, o.instrument, o.visit, o.detector
    FROM patch AS t
    JOIN ccd_patch_overlap AS o ON o.patch_id = t.patch_id
    WHERE t.skymap = $1 AND t.tract = $2
      AND CASE WHEN coalesce($3, false) THEN o.inner_overlap ELSE o.outer_overlap END
    ORDER BY 1, 2, 3, 4
$$;
COMMENT ON FUNCTION skyreg_ccd_patch_pairs(text, bigint, boolean) IS
    'Every (patch, CCD) pair of a tract whose polygons overlap (outer patch polygons, inner if '
    'the 3rd argument is true), from ccd_patch_overlap: the inputs of every coadd of the '
    'tract. Example: SELECT * FROM skyreg_ccd_patch_pairs(''rings'', 9813);';
