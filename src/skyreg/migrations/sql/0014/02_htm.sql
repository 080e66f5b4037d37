-- HTM pixel covers in SQL, for the pixel index of the *_pixel tables.
--
-- The cover of a region is computed by descending from the 8 root trixels: a trixel is dropped
-- when its bounding circle (inflated by 1e-9 rad) surely misses the region, emitted whole when
-- it surely lies inside, and split otherwise. Dropping needs certainty, so the cover contains
-- every trixel the region touches (a superset of lsst.sphgeom's HtmPixelization.envelope);
-- for a large region the descent stops early and coarse trixels are emitted as the ranges of
-- their descendants, which keeps the number of ranges small without losing any pixel.

CREATE FUNCTION skyreg_htm_roots() RETURNS float8[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- Vertices of root trixels S0..S3 (ids 8-11) and N0..N3 (ids 12-15).
    SELECT ARRAY[
        1, 0, 0,   0, 0, -1,   0, 1, 0,
        0, 1, 0,   0, 0, -1,   -1, 0, 0,
        -1, 0, 0,  0, 0, -1,   0, -1, 0,
        0, -1, 0,  0, 0, -1,   1, 0, 0,
        1, 0, 0,   0, 0, 1,    0, -1, 0,
        0, -1, 0,  0, 0, 1,    -1, 0, 0,
        -1, 0, 0,  0, 0, 1,    0, 1, 0,
        0, 1, 0,   0, 0, 1,    1, 0, 0]::float8[]
$$;

CREATE FUNCTION skyreg_htm_children(t float8[]) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- The 4 children of trixel (v0, v1, v2), 9 floats each: (v0, w2, w1), (v1, w0, w2),
-- (v2, w1, w0), (w0, w1, w2), where wi is the normalised midpoint of the edge opposite vi.
DECLARE
    w0 float8[]; w1 float8[]; w2 float8[];
    v0 float8[] := t[1:3];
    v1 float8[] := t[4:6];
    v2 float8[] := t[7:9];
BEGIN
    w0 := skyreg_normalized(ARRAY[t[4] + t[7], t[5] + t[8], t[6] + t[9]]);
    w1 := skyreg_normalized(ARRAY[t[1] + t[7], t[2] + t[8], t[3] + t[9]]);
    w2 := skyreg_normalized(ARRAY[t[1] + t[4], t[2] + t[5], t[3] + t[6]]);
    RETURN v0 || w2 || w1 || v1 || w0 || w2 || v2 || w1 || w0 || w0 || w1 || w2;
END $$;

CREATE FUNCTION skyreg_normalized(v float8[]) RETURNS float8[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ARRAY[v[1] / n, v[2] / n, v[3] / n]
    FROM (SELECT sqrt(v[1] * v[1] + v[2] * v[2] + v[3] * v[3]) AS n) AS norm
$$;

CREATE FUNCTION skyreg_angle(a float8[], b float8[]) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    -- Angle between two unit vectors, radians, from the chord (accurate for small angles).
    SELECT 2 * asin(least(1.0, sqrt((a[1] - b[1]) ^ 2 + (a[2] - b[2]) ^ 2
                                    + (a[3] - b[3]) ^ 2) / 2))
$$;

CREATE FUNCTION skyreg_htm_index(ra_deg float8, dec_deg float8, level int) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- HTM index of the trixel of the given level holding a point (sphgeom's
-- HtmPixelization(level).index). A point on a trixel edge may get either neighbour.
DECLARE
    p float8[] := skyreg_unit_vector(ra_deg, dec_deg);
    roots float8[] := skyreg_htm_roots();
    t float8[];
    kids float8[];
    id bigint;
    r int;
    k int;
BEGIN
    IF level < 0 OR level > 24 THEN
        RAISE EXCEPTION 'level % is outside [0, 24]', level USING ERRCODE = '22023';
    END IF;
    -- (an integer FOR loop variable is local to its loop, hence the explicit counters)
    r := 0;
    LOOP
        t := roots[9*r+1:9*r+9];
        EXIT WHEN r = 7 OR skyreg_in_triangle(t, p);
        r := r + 1;
    END LOOP;
    id := 8 + r;
    FOR l IN 1..level LOOP
        kids := skyreg_htm_children(t);
        k := 0;
        LOOP
            t := kids[9*k+1:9*k+9];
            EXIT WHEN k = 3 OR skyreg_in_triangle(t, p);
            k := k + 1;
        END LOOP;
        id := id * 4 + k;
    END LOOP;
    RETURN id;
END $$;
COMMENT ON FUNCTION skyreg_htm_index(float8, float8, int) IS
    'HTM index at the given level of the trixel holding RA/Dec (degrees).';

CREATE FUNCTION skyreg_in_triangle(t float8[], p float8[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT bool_and(
        p[1] * (t[3*i+2] * t[3*j+3] - t[3*i+3] * t[3*j+2])
      + p[2] * (t[3*i+3] * t[3*j+1] - t[3*i+1] * t[3*j+3])
      + p[3] * (t[3*i+1] * t[3*j+2] - t[3*i+2] * t[3*j+1]) >= 0)
    FROM (VALUES (0, 1), (1, 2), (2, 0)) AS e(i, j)
$$;

CREATE FUNCTION skyreg_htm_cover(kind text, region float8[], level int)
RETURNS TABLE (lo bigint, hi bigint)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE ROWS 16 AS $$
-- Half-open ranges [lo, hi) of level-`level` HTM indexes covering a region: kind 'circle'
-- (region = skyreg_circle(...)) or 'polygon' (region = skyreg_polygon(...)).
DECLARE
    margin constant float8 := 1e-9;
    centre float8[];
    radius float8;        -- region's bounding radius, radians
    stop_level int;
    ids bigint[] := ARRAY[8, 9, 10, 11, 12, 13, 14, 15];
    tris float8[] := skyreg_htm_roots();
    next_ids bigint[];
    next_tris float8[];
    los bigint[] := '{}';
    his bigint[] := '{}';
    lvl int := 0;
    i int;
    t float8[];
    tc float8[];
    tr float8;
    dist float8;
    keep boolean;
    whole boolean;
    shift int;
    n int;
BEGIN
    IF level < 0 OR level > 24 THEN
        RAISE EXCEPTION 'level % is outside [0, 24]', level USING ERRCODE = '22023';
    END IF;
    IF kind = 'circle' THEN
        centre := region[1:3];
        radius := CASE WHEN region[4] >= 4 THEN pi()
                       ELSE 2 * asin(least(1.0, sqrt(greatest(region[4], 0)) / 2)) END;
    ELSIF kind = 'polygon' THEN
        n := array_length(region, 1) / 3;
        centre := skyreg_normalized(ARRAY[
            (SELECT sum(region[3*k+1]) FROM generate_series(0, n - 1) AS k),
            (SELECT sum(region[3*k+2]) FROM generate_series(0, n - 1) AS k),
            (SELECT sum(region[3*k+3]) FROM generate_series(0, n - 1) AS k)]);
        radius := (SELECT max(skyreg_angle(centre, region[3*k+1:3*k+3]))
                   FROM generate_series(0, n - 1) AS k);
    ELSE
        RAISE EXCEPTION 'unknown region kind %', kind USING ERRCODE = '22023';
    END IF;
    -- Trixels of level l are about 90 / 2^l degrees across: stop where ~8 span the region.
    stop_level := least(level, greatest(2, floor(log(2, (720.0 / greatest(degrees(radius),
        1e-12))::numeric))::int));
    LOOP
        next_ids := '{}';
        next_tris := '{}';
        FOR i IN 1..coalesce(array_length(ids, 1), 0) LOOP
            t := tris[9*(i-1)+1:9*(i-1)+9];
            tc := skyreg_normalized(ARRAY[t[1] + t[4] + t[7], t[2] + t[5] + t[8],
                                          t[3] + t[6] + t[9]]);
            tr := greatest(skyreg_angle(tc, t[1:3]), skyreg_angle(tc, t[4:6]),
                           skyreg_angle(tc, t[7:9])) + margin;
            IF kind = 'circle' THEN
                dist := skyreg_angle(tc, centre);
                keep := dist <= radius + tr + margin;
                whole := dist + tr < radius - margin;
            ELSE
                keep := skyreg_polygon_overlaps_circle(region,
                    tc || (4 * sin(least(tr, pi() / 2) / 2) ^ 2));
                whole := keep AND skyreg_polygon_contains(region, t[1], t[2], t[3])
                    AND skyreg_polygon_contains(region, t[4], t[5], t[6])
                    AND skyreg_polygon_contains(region, t[7], t[8], t[9]);
            END IF;
            CONTINUE WHEN NOT keep;
            IF whole OR lvl = stop_level THEN
                shift := 2 * (level - lvl);
                los := los || (ids[i] << shift);
                his := his || ((ids[i] + 1) << shift);
            ELSE
                next_ids := next_ids || ARRAY[4 * ids[i], 4 * ids[i] + 1, 4 * ids[i] + 2,
                                              4 * ids[i] + 3];
                next_tris := next_tris || skyreg_htm_children(t);
            END IF;
        END LOOP;
        EXIT WHEN coalesce(array_length(next_ids, 1), 0) = 0;
        ids := next_ids;
        tris := next_tris;  -- 9 floats per trixel, in the order of ids
        lvl := lvl + 1;
    END LOOP;
    RETURN QUERY
    WITH r AS (SELECT unnest(los) AS lo, unnest(his) AS hi),
    flagged AS (
        SELECT r.lo, r.hi, CASE WHEN r.lo <= max(r.hi) OVER (ORDER BY r.lo, r.hi
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) THEN 0 ELSE 1 END AS starts
        FROM r),
    grouped AS (SELECT f.lo, f.hi, sum(f.starts) OVER (ORDER BY f.lo, f.hi) AS grp
                FROM flagged AS f)
    SELECT min(g.lo), max(g.hi) FROM grouped AS g GROUP BY g.grp ORDER BY 1;
END $$;
