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
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE ROWS 16
-- (a custom plan of the descent for each call's values costs more than running it)
SET plan_cache_mode = force_generic_plan AS $$
-- Half-open ranges [lo, hi) of level-`level` HTM indexes covering a region: kind 'circle'
-- (region = skyreg_circle(...)) or 'polygon' (region = skyreg_polygon(...)).
--
-- The descent is one recursive query: each row is a trixel (its level, id and 9 vertex
-- components) with the two decisions about it, and the children of the kept trixels that are
-- neither whole nor at the stop level are the next rows. The decisions are computed with the
-- same floating-point operations as before, so the cover is unchanged; one statement instead
-- of some fifteen PL/pgSQL statements per trixel is what makes it cheaper.
DECLARE
    margin constant float8 := 1e-9;
    centre float8[];
    radius float8;        -- region's bounding radius, radians
    stop_level int;
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
    RETURN QUERY
    WITH RECURSIVE tri (lvl, id, t, keep, whole) AS (
        SELECT 0, 8 + r.k::bigint, r.t, d.keep, d.whole
        FROM (SELECT k, roots[9*k+1:9*k+9] AS t
              FROM skyreg_htm_roots() AS roots, generate_series(0, 7) AS k) AS r
        CROSS JOIN LATERAL skyreg_htm_decide(kind, region, centre, radius, margin, r.t) AS d
        UNION ALL
        SELECT p.lvl + 1, 4 * p.id + ch.k, ch.t, d.keep, d.whole
        FROM tri AS p
        -- skyreg_htm_children, written out: w0, w1, w2 are the normalised edge midpoints
        CROSS JOIN LATERAL (
            SELECT ARRAY[m.x0 / m.n0, m.y0 / m.n0, m.z0 / m.n0] AS w0,
                   ARRAY[m.x1 / m.n1, m.y1 / m.n1, m.z1 / m.n1] AS w1,
                   ARRAY[m.x2 / m.n2, m.y2 / m.n2, m.z2 / m.n2] AS w2
            FROM (SELECT s.*, sqrt(s.x0 * s.x0 + s.y0 * s.y0 + s.z0 * s.z0) AS n0,
                         sqrt(s.x1 * s.x1 + s.y1 * s.y1 + s.z1 * s.z1) AS n1,
                         sqrt(s.x2 * s.x2 + s.y2 * s.y2 + s.z2 * s.z2) AS n2
                  FROM (SELECT p.t[4] + p.t[7] AS x0, p.t[5] + p.t[8] AS y0,
                               p.t[6] + p.t[9] AS z0, p.t[1] + p.t[7] AS x1,
                               p.t[2] + p.t[8] AS y1, p.t[3] + p.t[9] AS z1,
                               p.t[1] + p.t[4] AS x2, p.t[2] + p.t[5] AS y2,
                               p.t[3] + p.t[6] AS z2 OFFSET 0) AS s
                  OFFSET 0) AS m
            OFFSET 0) AS w
        CROSS JOIN LATERAL (VALUES (0, p.t[1:3] || w.w2 || w.w1),
                                   (1, p.t[4:6] || w.w0 || w.w2),
                                   (2, p.t[7:9] || w.w1 || w.w0),
                                   (3, w.w0 || w.w1 || w.w2)) AS ch (k, t)
        CROSS JOIN LATERAL skyreg_htm_decide(kind, region, centre, radius, margin, ch.t) AS d
        WHERE p.keep AND NOT p.whole AND p.lvl < stop_level
    ),
    r AS (SELECT tri.id << (2 * (level - tri.lvl)) AS lo,
                 (tri.id + 1) << (2 * (level - tri.lvl)) AS hi
          FROM tri WHERE tri.keep AND (tri.whole OR tri.lvl = stop_level)),
    flagged AS (
        SELECT r.lo, r.hi, CASE WHEN r.lo <= max(r.hi) OVER (ORDER BY r.lo, r.hi
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) THEN 0 ELSE 1 END AS starts
        FROM r),
    grouped AS (SELECT f.lo, f.hi, sum(f.starts) OVER (ORDER BY f.lo, f.hi) AS grp
                FROM flagged AS f)
    SELECT min(g.lo), max(g.hi) FROM grouped AS g GROUP BY g.grp ORDER BY 1;
END $$;

CREATE FUNCTION skyreg_htm_decide(kind text, region float8[], centre float8[], radius float8,
                                  margin float8, t float8[])
RETURNS TABLE (keep boolean, whole boolean)
LANGUAGE sql IMMUTABLE PARALLEL SAFE ROWS 1 AS $$
    -- Whether the cover keeps trixel t (its bounding circle, inflated by `margin`, may touch
    -- the region) and whether it lies wholly inside the region; for skyreg_htm_cover (centre
    -- and radius: the region's bounding circle, radians). The
    -- centre is skyreg_normalized of the vertex sum and the angles are skyreg_angle, written
    -- out (operation for operation) so that the whole query is planned as one.
    SELECT k.keep,
           k.keep AND CASE WHEN kind = 'circle' THEN b.dist + b.tr < radius - margin
                           ELSE skyreg_polygon_contains(region, t[1], t[2], t[3])
                                AND skyreg_polygon_contains(region, t[4], t[5], t[6])
                                AND skyreg_polygon_contains(region, t[7], t[8], t[9]) END
    FROM (SELECT a.*, 2 * asin(least(1.0, sqrt(
                     (a.x - centre[1]) ^ 2 + (a.y - centre[2]) ^ 2 + (a.z - centre[3]) ^ 2) / 2))
                 AS dist
          FROM (SELECT c.x, c.y, c.z, greatest(
                    2 * asin(least(1.0, sqrt((c.x - t[1]) ^ 2 + (c.y - t[2]) ^ 2
                                             + (c.z - t[3]) ^ 2) / 2)),
                    2 * asin(least(1.0, sqrt((c.x - t[4]) ^ 2 + (c.y - t[5]) ^ 2
                                             + (c.z - t[6]) ^ 2) / 2)),
                    2 * asin(least(1.0, sqrt((c.x - t[7]) ^ 2 + (c.y - t[8]) ^ 2
                                             + (c.z - t[9]) ^ 2) / 2))) + margin AS tr
                FROM (SELECT s.x / s.n AS x, s.y / s.n AS y, s.z / s.n AS z
                      FROM (SELECT u.x, u.y, u.z, sqrt(u.x * u.x + u.y * u.y + u.z * u.z) AS n
                            FROM (SELECT t[1] + t[4] + t[7] AS x, t[2] + t[5] + t[8] AS y,
                                         t[3] + t[6] + t[9] AS z OFFSET 0) AS u
                            OFFSET 0) AS s
                      OFFSET 0) AS c
                OFFSET 0) AS a
          OFFSET 0) AS b
    CROSS JOIN LATERAL (SELECT CASE WHEN kind = 'circle' THEN b.dist <= radius + b.tr + margin
        -- A trixel circle 1e-6 rad clear of the polygon's bounding circle (which holds the
        -- polygon if its radius is below 1.5) is farther from the polygon than
        -- skyreg_polygon_overlaps_circle's tolerance: that test would say false, so skip it.
        WHEN radius < 1.5 AND b.dist > radius + b.tr + 1e-6 THEN false
        ELSE skyreg_polygon_overlaps_circle(region,
                 ARRAY[b.x, b.y, b.z, 4 * sin(least(b.tr, pi() / 2) / 2) ^ 2]) END AS keep) AS k
$$;
