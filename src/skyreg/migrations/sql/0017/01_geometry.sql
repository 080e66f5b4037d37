-- Spherical geometry on unit vectors, in core PostgreSQL only.
--
-- A polygon is a float8[] of its vertices' unit vectors, flattened: {x0,y0,z0, x1,y1,z1, ...},
-- counter-clockwise. Vectors are computed from RA/Dec in degrees exactly as lsst.sphgeom does
-- (UnitVector3d(LonLat.fromDegrees(ra, dec))), so they are bit-identical to the vertices ingest
-- encodes into the *_region columns.
--
-- Polygon/polygon and polygon/point tests use sphgeom's orientation predicate: a floating-point
-- determinant with sphgeom's error bounds, and exact arithmetic (numeric) when the sign is in
-- doubt. Their answers are therefore exact and equal to sphgeom's. The polygon/circle test
-- reproduces sphgeom's floating-point computation operation by operation, tolerances included.

CREATE FUNCTION skyreg_wrap_ra(ra float8) RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    m float8;
    q float8;
BEGIN
    IF ra = 'NaN'::float8 OR ra IN ('Infinity'::float8, '-Infinity'::float8) THEN
        RAISE EXCEPTION 'ra: must be finite, got %', ra USING ERRCODE = '22023';
    END IF;
    IF ra >= 0 AND ra < 360 THEN
        RETURN ra;
    END IF;
    IF abs(ra) >= 4503599627370496 THEN
        -- Beyond 2^52 every float8 is an integer; numeric holds it exactly.
        m := mod(skyreg_exact_numeric(ra), 360)::float8;
    ELSE
        -- fmod(ra, 360), exactly: q * 360 is exact and so is each subtraction (Sterbenz).
        q := trunc(ra / 360);
        m := ra - q * 360;
        WHILE m >= 360 LOOP m := m - 360; END LOOP;
        WHILE m <= -360 LOOP m := m + 360; END LOOP;
        IF (ra > 0 AND m < 0) THEN m := m + 360; END IF;
        IF (ra < 0 AND m > 0) THEN m := m - 360; END IF;
    END IF;
    -- Python's float modulo: the result takes the sign of the divisor.
    IF m < 0 THEN
        m := m + 360;
    END IF;
    IF m >= 360 THEN
        m := 0;
    END IF;
    RETURN m;
END $$;
COMMENT ON FUNCTION skyreg_wrap_ra(float8) IS
    'RA in degrees wrapped into [0, 360) like the Python API (ra % 360); error if not finite.';

CREATE FUNCTION skyreg_exact_numeric(x float8) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- The exact value of a finite float8 as numeric (x::numeric keeps only 15 digits).
DECLARE
    e int;
    ax float8 := abs(x);
    m bigint;
BEGIN
    IF x = 0 THEN
        RETURN 0;
    END IF;
    IF x = 'NaN'::float8 OR ax = 'Infinity'::float8 THEN
        RAISE EXCEPTION 'not a finite number: %', x USING ERRCODE = '22023';
    END IF;
    e := floor(ln(ax) / ln(2::float8))::int;
    e := greatest(-1074, least(1023, e));
    WHILE e > -1074 AND ax < power(2::float8, e) LOOP e := e - 1; END LOOP;
    WHILE e < 1023 AND ax >= power(2::float8, e + 1) LOOP e := e + 1; END LOOP;
    -- x * 2^(52 - e) is an integer of at most 53 bits; scale in two steps to avoid overflow.
    IF 52 - e > 1000 THEN
        m := (x * power(2::float8, 1000) * power(2::float8, 52 - e - 1000))::bigint;
    ELSE
        m := (x * power(2::float8, 52 - e))::bigint;
    END IF;
    IF e - 52 >= 0 THEN
        RETURN m::numeric * power(2::numeric, e - 52);
    END IF;
    RETURN m::numeric / power(2::numeric, 52 - e);
END $$;

CREATE FUNCTION skyreg_orientation_exact(
    ax float8, ay float8, az float8, bx float8, by float8, bz float8,
    cx float8, cy float8, cz float8) RETURNS int
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- Sign of det[a b c] in exact arithmetic. Each component is m * 2^e with an integer m; the
-- determinant is scaled by a power of two so that every term is an integer.
DECLARE
    comps float8[] := ARRAY[ax, ay, az, bx, by, bz, cx, cy, cz];
    ms numeric[] := '{}';
    es int[] := '{}';
    v float8;
    e int;
    emin int := NULL;
    terms int[] := ARRAY[1, 5, 9, 1, 6, 8, 2, 6, 7, 2, 4, 9, 3, 4, 8, 3, 5, 7];
    signs int[] := ARRAY[1, -1, 1, -1, 1, -1];
    k int;
    i int;
    j int;
    l int;
    total numeric := 0;
    texp int;
BEGIN
    FOREACH v IN ARRAY comps LOOP
        IF v = 0 THEN
            ms := ms || 0::numeric;
            es := es || 0;
        ELSE
            e := floor(ln(abs(v)) / ln(2::float8))::int;
            e := greatest(-1074, least(1023, e));
            WHILE e > -1074 AND abs(v) < power(2::float8, e) LOOP e := e - 1; END LOOP;
            WHILE e < 1023 AND abs(v) >= power(2::float8, e + 1) LOOP e := e + 1; END LOOP;
            IF 52 - e > 1000 THEN
                ms := ms || (v * power(2::float8, 1000)
                             * power(2::float8, 52 - e - 1000))::bigint::numeric;
            ELSE
                ms := ms || (v * power(2::float8, 52 - e))::bigint::numeric;
            END IF;
            es := es || (e - 52);
        END IF;
    END LOOP;
    FOR k IN 0..5 LOOP
        i := terms[3 * k + 1]; j := terms[3 * k + 2]; l := terms[3 * k + 3];
        IF ms[i] <> 0 AND ms[j] <> 0 AND ms[l] <> 0 THEN
            texp := es[i] + es[j] + es[l];
            emin := least(coalesce(emin, texp), texp);
        END IF;
    END LOOP;
    IF emin IS NULL THEN
        RETURN 0;
    END IF;
    FOR k IN 0..5 LOOP
        i := terms[3 * k + 1]; j := terms[3 * k + 2]; l := terms[3 * k + 3];
        IF ms[i] <> 0 AND ms[j] <> 0 AND ms[l] <> 0 THEN
            total := total + signs[k + 1] * ms[i] * ms[j] * ms[l]
                     * power(2::numeric, es[i] + es[j] + es[l] - emin);
        END IF;
    END LOOP;
    RETURN sign(total)::int;
END $$;

CREATE FUNCTION skyreg_orientation(
    ax float8, ay float8, az float8, bx float8, by float8, bz float8,
    cx float8, cy float8, cz float8) RETURNS int
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- sphgeom's orientation(a, b, c): +1 if a, b, c are counter-clockwise, -1 if clockwise, 0 if
-- coplanar; the sign of det[a b c], always exact.
DECLARE
    bycz float8 := by * cz;
    bzcy float8 := bz * cy;
    bzcx float8 := bz * cx;
    bxcz float8 := bx * cz;
    bxcy float8 := bx * cy;
    bycx float8 := by * cx;
    det float8 := ax * (bycz - bzcy) + ay * (bzcx - bxcz) + az * (bxcy - bycx);
    bound float8;
BEGIN
    IF det > 1.7e-15 THEN RETURN 1; END IF;
    IF det < -1.7e-15 THEN RETURN -1; END IF;
    bound := 5.6e-16 * (abs(ax) * (abs(bycz) + abs(bzcy)) + abs(ay) * (abs(bzcx) + abs(bxcz))
                        + abs(az) * (abs(bxcy) + abs(bycx))) + 4.0e-307;
    IF det > bound THEN RETURN 1; END IF;
    IF det < -bound THEN RETURN -1; END IF;
    IF (ax = bx AND ay = by AND az = bz) OR (bx = cx AND by = cy AND bz = cz)
       OR (ax = cx AND ay = cy AND az = cz) OR (ax = -bx AND ay = -by AND az = -bz)
       OR (bx = -cx AND by = -cy AND bz = -cz) OR (ax = -cx AND ay = -cy AND az = -cz) THEN
        RETURN 0;
    END IF;
    RETURN skyreg_orientation_exact(ax, ay, az, bx, by, bz, cx, cy, cz);
END $$;
COMMENT ON FUNCTION skyreg_orientation(float8, float8, float8, float8, float8, float8, float8,
                                       float8, float8) IS
    'Exact sign of det[a b c] for unit vectors a, b, c (lsst.sphgeom orientation).';

CREATE FUNCTION skyreg_radians(deg float8) RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- radians(deg), except that a subnormal product that rounds to zero gives 0 (as in C) instead
-- of PostgreSQL's underflow error.
BEGIN
    IF deg <> 0 AND abs(deg) < 1e-300 THEN
        BEGIN
            RETURN radians(deg);
        EXCEPTION WHEN numeric_value_out_of_range THEN
            RETURN 0;
        END;
    END IF;
    RETURN radians(deg);
END $$;

CREATE FUNCTION skyreg_flushed(v float8[]) RETURNS float8[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    -- Vector components below 1e-100 in magnitude become 0: PostgreSQL raises an error where
    -- C arithmetic silently underflows, and products of three components must stay normal.
    -- (Only coordinates within ~1e-98 degrees of a multiple of 90 are affected.)
    SELECT array_agg(CASE WHEN abs(c) < 1e-100 THEN 0 ELSE c END ORDER BY i)
    FROM unnest(v) WITH ORDINALITY AS u(c, i)
$$;

CREATE FUNCTION skyreg_unit_vector(ra_deg float8, dec_deg float8) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- {x, y, z} of RA/Dec in degrees; sphgeom's formula, so the result is bit-identical to it.
DECLARE
    lon float8;
    lat float8;
BEGIN
    IF dec_deg = 'NaN'::float8 OR NOT dec_deg BETWEEN -90 AND 90 THEN
        RAISE EXCEPTION 'dec: % is not within [-90, 90]', dec_deg USING ERRCODE = '22023';
    END IF;
    lon := skyreg_radians(skyreg_wrap_ra(ra_deg));
    lat := skyreg_radians(dec_deg);
    -- A longitude below 1e-200 radians would make sin(lon) * cos(lat) underflow (an error in
    -- PostgreSQL) at the poles; that component is flushed to 0 below anyway, so the result
    -- is the same with lon = 0.
    IF abs(lon) < 1e-200 THEN
        lon := 0;
    END IF;
    RETURN skyreg_flushed(ARRAY[cos(lon) * cos(lat), sin(lon) * cos(lat), sin(lat)]);
END $$;
COMMENT ON FUNCTION skyreg_unit_vector(float8, float8) IS
    'Unit vector {x, y, z} of RA/Dec in degrees (RA wrapped into [0, 360), Dec checked).';

CREATE FUNCTION skyreg_vertices(ra_deg float8[], dec_deg float8[]) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- Unit vectors of a stored footprint (already validated by ingest), counter-clockwise. Ingest
-- encodes clockwise input reversed, and so does this.
DECLARE
    n int := coalesce(array_length(ra_deg, 1), 0);
    out float8[] := '{}';
    lon float8;
    lat float8;
    cl float8;
    i int;
BEGIN
    FOR i IN 1..n LOOP
        lon := skyreg_radians(ra_deg[i]);
        lat := skyreg_radians(dec_deg[i]);
        IF abs(lon) < 1e-200 THEN  -- as in skyreg_unit_vector: no underflow at the poles
            lon := 0;
        END IF;
        cl := cos(lat);
        out := out || ARRAY[cos(lon) * cl, sin(lon) * cl, sin(lat)];
    END LOOP;
    out := skyreg_flushed(out);
    IF n >= 3 AND skyreg_orientation(out[1], out[2], out[3], out[4], out[5], out[6],
                                     out[7], out[8], out[9]) < 0 THEN
        RETURN skyreg_reversed(out);
    END IF;
    RETURN out;
END $$;
COMMENT ON FUNCTION skyreg_vertices(float8[], float8[]) IS
    'Unit vectors (flattened x,y,z per vertex, counter-clockwise) of a stored footprint''s '
    'ra/dec arrays; no validation (see skyreg_polygon for user input).';

CREATE FUNCTION skyreg_reversed(v float8[]) RETURNS float8[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(v[3 * k + c] ORDER BY k DESC, c), '{}')
    FROM generate_series(0, array_length(v, 1) / 3 - 1) AS k, generate_series(1, 3) AS c
$$;

CREATE FUNCTION skyreg_polygon(ra_deg float8[], dec_deg float8[]) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
-- A query polygon from user input: the same checks as the Python API (at least 3 finite
-- vertices, Dec within [-90, 90], strictly convex in either order); RA is wrapped.
DECLARE
    n int;
    v float8[] := '{}';
    nx float8; ny float8; nz float8;
    s float8;
    i int; j int; k int;
    ccw boolean := true;
    cw boolean := true;
BEGIN
    IF ra_deg IS NULL OR dec_deg IS NULL THEN
        RAISE EXCEPTION 'polygon: ra and dec arrays are required' USING ERRCODE = '22004';
    END IF;
    IF array_ndims(ra_deg) > 1 OR array_ndims(dec_deg) > 1 THEN
        RAISE EXCEPTION 'polygon: ra and dec must be one-dimensional arrays'
            USING ERRCODE = '22023';
    END IF;
    n := coalesce(array_length(ra_deg, 1), 0);
    IF n <> coalesce(array_length(dec_deg, 1), 0) THEN
        RAISE EXCEPTION 'polygon: ra has % vertices but dec has %', n,
            coalesce(array_length(dec_deg, 1), 0) USING ERRCODE = '22023';
    END IF;
    IF n < 3 THEN
        RAISE EXCEPTION 'polygon: % vertices, at least 3 are needed', n USING ERRCODE = '22023';
    END IF;
    FOR i IN 1..n LOOP
        IF ra_deg[i] IS NULL OR dec_deg[i] IS NULL THEN
            RAISE EXCEPTION 'polygon[%]: NULL coordinate', i - 1 USING ERRCODE = '22004';
        END IF;
        v := v || skyreg_unit_vector(ra_deg[i], dec_deg[i]);
    END LOOP;
    -- Strict convexity, as ingest checks it: every vertex off an edge strictly on one side.
    FOR i IN 0..n - 1 LOOP
        j := (i + 1) % n;
        nx := v[3*i+2] * v[3*j+3] - v[3*i+3] * v[3*j+2];
        ny := v[3*i+3] * v[3*j+1] - v[3*i+1] * v[3*j+3];
        nz := v[3*i+1] * v[3*j+2] - v[3*i+2] * v[3*j+1];
        FOR k IN 0..n - 1 LOOP
            CONTINUE WHEN k = i OR k = j;
            s := nx * v[3*k+1] + ny * v[3*k+2] + nz * v[3*k+3];
            ccw := ccw AND s > 0;
            cw := cw AND s < 0;
        END LOOP;
    END LOOP;
    IF cw THEN
        RETURN skyreg_reversed(v);
    END IF;
    IF NOT ccw THEN
        RAISE EXCEPTION 'polygon: polygon is not strictly convex (self-intersecting, concave, '
            'with repeated or collinear vertices, or larger than a hemisphere)'
            USING ERRCODE = '22023';
    END IF;
    RETURN v;
END $$;
COMMENT ON FUNCTION skyreg_polygon(float8[], float8[]) IS
    'Query polygon from RA/Dec vertex arrays in degrees (either order), checked like the Python '
    'API: unit vectors, counter-clockwise.';

CREATE FUNCTION skyreg_circle(ra_deg float8, dec_deg float8, radius_deg float8) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
-- {x, y, z, squared chord length} of a cone, like sphgeom's Circle(center, Angle) .
DECLARE
    a float8;
    s float8;
    c float8[];
BEGIN
    IF ra_deg IS NULL OR dec_deg IS NULL OR radius_deg IS NULL THEN
        RAISE EXCEPTION 'cone: ra, dec and radius are required' USING ERRCODE = '22004';
    END IF;
    c := skyreg_unit_vector(ra_deg, dec_deg);
    IF radius_deg = 'NaN'::float8 OR NOT radius_deg BETWEEN 0 AND 180 THEN
        RAISE EXCEPTION 'cone.radius: % is outside [0, 180] degrees', radius_deg
            USING ERRCODE = '22023';
    END IF;
    a := skyreg_radians(radius_deg);
    IF a >= pi() THEN
        RETURN c || 4.0::float8;
    END IF;
    s := sin(0.5 * a);
    RETURN c || (4.0 * s * s);
END $$;
COMMENT ON FUNCTION skyreg_circle(float8, float8, float8) IS
    'Cone (centre RA/Dec, radius, degrees) as {x, y, z, squared chord length}.';

CREATE FUNCTION skyreg_polygon_contains(p float8[], x float8, y float8, z float8)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- sphgeom's ConvexPolygon.contains(point): the closed polygon holds the point. Exact.
DECLARE
    n int := array_length(p, 1) / 3;
    i int;
    j int;
    d float8;
BEGIN
    FOR i IN 0..n - 1 LOOP
        j := (i + 1) % n;
        d := x * (p[3*i+2] * p[3*j+3] - p[3*i+3] * p[3*j+2])
           + y * (p[3*i+3] * p[3*j+1] - p[3*i+1] * p[3*j+3])
           + z * (p[3*i+1] * p[3*j+2] - p[3*i+2] * p[3*j+1]);
        IF d < -1.7e-15 THEN
            RETURN false;
        END IF;
        IF d <= 1.7e-15 AND skyreg_orientation(x, y, z, p[3*i+1], p[3*i+2], p[3*i+3],
                                               p[3*j+1], p[3*j+2], p[3*j+3]) < 0 THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END $$;
COMMENT ON FUNCTION skyreg_polygon_contains(float8[], float8, float8, float8) IS
    'True when the polygon (boundary included) contains the unit vector (x, y, z); exact.';

CREATE FUNCTION skyreg_polygons_overlap(a float8[], b float8[]) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- sphgeom's ConvexPolygon.overlaps(ConvexPolygon): the closed polygons share a point. Either
-- holds a vertex of the other, or two edges cross. Every sign is exact, so the answer is too.
DECLARE
    na int := array_length(a, 1) / 3;
    nb int := array_length(b, 1) / 3;
    i int; j int; k int; l int;
    d float8;
    inside boolean;
    separated boolean;
    acd int; bdc int; cba int; dab int;
BEGIN
    -- Cheap rejection first: an edge of one polygon with every vertex of the other surely
    -- outside its great circle separates them (the typical disjoint candidate pair).
    FOR i IN 0..na - 1 LOOP
        k := (i + 1) % na;
        separated := true;
        FOR j IN 0..nb - 1 LOOP
            d := b[3*j+1] * (a[3*i+2] * a[3*k+3] - a[3*i+3] * a[3*k+2])
               + b[3*j+2] * (a[3*i+3] * a[3*k+1] - a[3*i+1] * a[3*k+3])
               + b[3*j+3] * (a[3*i+1] * a[3*k+2] - a[3*i+2] * a[3*k+1]);
            IF d >= -1.7e-15 THEN separated := false; EXIT; END IF;
        END LOOP;
        IF separated THEN RETURN false; END IF;
    END LOOP;
    FOR i IN 0..nb - 1 LOOP
        k := (i + 1) % nb;
        separated := true;
        FOR j IN 0..na - 1 LOOP
            d := a[3*j+1] * (b[3*i+2] * b[3*k+3] - b[3*i+3] * b[3*k+2])
               + a[3*j+2] * (b[3*i+3] * b[3*k+1] - b[3*i+1] * b[3*k+3])
               + a[3*j+3] * (b[3*i+1] * b[3*k+2] - b[3*i+2] * b[3*k+1]);
            IF d >= -1.7e-15 THEN separated := false; EXIT; END IF;
        END LOOP;
        IF separated THEN RETURN false; END IF;
    END LOOP;
    FOR j IN 0..nb - 1 LOOP
        IF skyreg_polygon_contains(a, b[3*j+1], b[3*j+2], b[3*j+3]) THEN RETURN true; END IF;
    END LOOP;
    FOR j IN 0..na - 1 LOOP
        IF skyreg_polygon_contains(b, a[3*j+1], a[3*j+2], a[3*j+3]) THEN RETURN true; END IF;
    END LOOP;
    -- No vertex inside the other polygon: look for a proper edge crossing.
    FOR i IN 0..na - 1 LOOP
        k := (i + 1) % na;
        FOR j IN 0..nb - 1 LOOP
            l := (j + 1) % nb;
            acd := skyreg_orientation(a[3*i+1], a[3*i+2], a[3*i+3], b[3*j+1], b[3*j+2],
                                      b[3*j+3], b[3*l+1], b[3*l+2], b[3*l+3]);
            CONTINUE WHEN acd = 0;
            bdc := skyreg_orientation(a[3*k+1], a[3*k+2], a[3*k+3], b[3*l+1], b[3*l+2],
                                      b[3*l+3], b[3*j+1], b[3*j+2], b[3*j+3]);
            CONTINUE WHEN bdc <> acd;
            cba := skyreg_orientation(b[3*j+1], b[3*j+2], b[3*j+3], a[3*k+1], a[3*k+2],
                                      a[3*k+3], a[3*i+1], a[3*i+2], a[3*i+3]);
            CONTINUE WHEN cba <> acd;
            dab := skyreg_orientation(b[3*l+1], b[3*l+2], b[3*l+3], a[3*i+1], a[3*i+2],
                                      a[3*i+3], a[3*k+1], a[3*k+2], a[3*k+3]);
            IF dab = cba THEN RETURN true; END IF;
        END LOOP;
    END LOOP;
    RETURN false;
END $$;
COMMENT ON FUNCTION skyreg_polygons_overlap(float8[], float8[]) IS
    'True when two convex polygons (unit-vector arrays) share a point; exact, as '
    'lsst.sphgeom ConvexPolygon.overlaps.';

CREATE FUNCTION skyreg_polygon_overlaps_circle(p float8[], c float8[]) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- sphgeom's ConvexPolygon.overlaps(Circle), operation for operation: a vertex or an edge
-- within MAX_SQUARED_CHORD_LENGTH_ERROR (2.5e-15) of the circle counts as overlapping.
DECLARE
    n int := array_length(p, 1) / 3;
    cx float8 := c[1]; cy float8 := c[2]; cz float8 := c[3]; cl2 float8 := c[4];
    dx float8; dy float8; dz float8;
    d float8;
    inside boolean;
    b boolean;
    i int; j int;
    ux float8; uy float8; uz float8; wx float8; wy float8; wz float8;
    nx float8; ny float8; nz float8;
    vx float8; vy float8; vz float8;
    s float8; cc float8; theta float8; h float8;
BEGIN
    IF cl2 < 0 THEN RETURN false; END IF;   -- empty circle
    IF cl2 >= 4 THEN RETURN true; END IF;   -- full sphere
    FOR i IN 0..n - 1 LOOP
        dx := p[3*i+1] - cx; dy := p[3*i+2] - cy; dz := p[3*i+3] - cz;
        d := dx * dx + dy * dy + dz * dz;
        IF abs(d - cl2) < 2.5e-15 THEN RETURN true; END IF;
        b := d < cl2;
        IF i = 0 THEN
            inside := b;
        ELSIF inside <> b THEN
            RETURN true;
        END IF;
    END LOOP;
    IF inside THEN
        RETURN true;  -- every vertex inside: the polygon is within or crosses the circle
    END IF;
    -- Every vertex outside: is some point inside an edge close enough?
    FOR i IN 0..n - 1 LOOP
        IF i = 0 THEN j := n - 1; ELSE j := i - 1; END IF;  -- edge from vertex j to vertex i
        -- robustCross: (b + a) x (b - a)
        ux := p[3*i+1] + p[3*j+1]; uy := p[3*i+2] + p[3*j+2]; uz := p[3*i+3] + p[3*j+3];
        wx := p[3*i+1] - p[3*j+1]; wy := p[3*i+2] - p[3*j+2]; wz := p[3*i+3] - p[3*j+3];
        nx := uy * wz - uz * wy; ny := uz * wx - ux * wz; nz := ux * wy - uy * wx;
        vx := cy * nz - cz * ny; vy := cz * nx - cx * nz; vz := cx * ny - cy * nx;
        IF vx * p[3*j+1] + vy * p[3*j+2] + vz * p[3*j+3] > 0
           AND vx * p[3*i+1] + vy * p[3*i+2] + vz * p[3*i+3] < 0 THEN
            s := abs(cx * nx + cy * ny + cz * nz);
            cc := sqrt(vx * vx + vy * vy + vz * vz);
            IF cc = 0 THEN theta := 0.5 * pi(); ELSE theta := atan(s / cc); END IF;
            h := sin(0.5 * theta);
            IF 4.0 * h * h < cl2 + 2.5e-15 THEN RETURN true; END IF;
        ELSIF 4.0 < cl2 + 2.5e-15 THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN skyreg_polygon_contains(p, cx, cy, cz);
END $$;
COMMENT ON FUNCTION skyreg_polygon_overlaps_circle(float8[], float8[]) IS
    'True when a convex polygon overlaps a circle from skyreg_circle, as '
    'lsst.sphgeom ConvexPolygon.overlaps(Circle) decides it.';

CREATE FUNCTION skyreg_corner_vectors(ra_deg float8[], dec_deg float8[])
RETURNS TABLE (n int, x1 float8, y1 float8, z1 float8, x2 float8, y2 float8, z2 float8,
               x3 float8, y3 float8, z3 float8, x4 float8, y4 float8, z4 float8)
LANGUAGE sql IMMUTABLE PARALLEL SAFE ROWS 1 AS $$
    -- Unit vectors of the first four vertices of a stored footprint (the last one repeated
    -- for a triangle), in the stored order (which may be clockwise), for the prefilters of
    -- the searches. They are computed with the degree functions sind and cosd, which raise
    -- no error for any finite input, and are within 1e-15 of skyreg_vertices'. A sine can
    -- only be tiny near 0 degrees; adding 1e-60 degrees to its argument keeps every component
    -- 0 or above 1e-94 in magnitude, so that no product of up to three components (with the
    -- query's, 0 or above 1e-100) rounds to zero, which PostgreSQL reports as an underflow
    -- error. OFFSET 0 keeps each subquery whole when it is inlined: each coordinate is read
    -- from its array, and each sine and cosine computed, once per row.
    SELECT t.n,
           t.cd1 * t.cr1 AS x1, t.cd1 * t.sr1 AS y1, t.sd1 AS z1,
           t.cd2 * t.cr2 AS x2, t.cd2 * t.sr2 AS y2, t.sd2 AS z2,
           t.cd3 * t.cr3 AS x3, t.cd3 * t.sr3 AS y3, t.sd3 AS z3,
           t.cd4 * t.cr4 AS x4, t.cd4 * t.sr4 AS y4, t.sd4 AS z4
    FROM (SELECT a.n,
                 cosd(a.d1) AS cd1, sind(a.d1 + 1e-60) AS sd1,
                 cosd(a.r1) AS cr1, sind(a.r1 + 1e-60) AS sr1,
                 cosd(a.d2) AS cd2, sind(a.d2 + 1e-60) AS sd2,
                 cosd(a.r2) AS cr2, sind(a.r2 + 1e-60) AS sr2,
                 cosd(a.d3) AS cd3, sind(a.d3 + 1e-60) AS sd3,
                 cosd(a.r3) AS cr3, sind(a.r3 + 1e-60) AS sr3,
                 cosd(a.d4) AS cd4, sind(a.d4 + 1e-60) AS sd4,
                 cosd(a.r4) AS cr4, sind(a.r4 + 1e-60) AS sr4
          FROM (SELECT l.n,
                       ra_deg[1] AS r1, dec_deg[1] AS d1,
                       ra_deg[2] AS r2, dec_deg[2] AS d2,
                       ra_deg[3] AS r3, dec_deg[3] AS d3,
                       ra_deg[least(4, l.n)] AS r4, dec_deg[least(4, l.n)] AS d4
                FROM (SELECT array_length(ra_deg, 1) AS n) AS l
                OFFSET 0) AS a
          OFFSET 0) AS t
    OFFSET 0
$$;
COMMENT ON FUNCTION skyreg_corner_vectors(float8[], float8[]) IS
    'Unit vectors of the first four vertices of a stored footprint''s ra/dec arrays (in '
    'stored order), for the search prefilters.';

CREATE FUNCTION skyreg_cap_verdict(ra_deg float8[], dec_deg float8[], cx float8, cy float8,
                                   cz float8, t_in float8, t_out float8, sin_o float8)
RETURNS TABLE (verdict boolean)
LANGUAGE sql IMMUTABLE PARALLEL SAFE ROWS 1 AS $$
    -- A stored footprint against a spherical cap of centre c = (cx, cy, cz), from the vectors
    -- of skyreg_corner_vectors and built-in float arithmetic only: true when a vertex is
    -- inside by a margin (c . v > t_in), false when the footprint provably misses the cap
    -- enlarged to the angle whose cosine is t_out and sine is sin_o, NULL otherwise (the exact
    -- test decides). Disjointness is proven, for footprints of at most four vertices, by an
    -- edge whose great circle has the whole cap on its outer side (c . (a x b), signed by
    -- the footprint's orientation, below -sin_o |a x b|; |a x b| from its components, which
    -- are accurate to ~1e-16 even for short edges, and 1e-100 added to each so that their
    -- squares cannot underflow), or by a vertex v that is the
    -- closest point (c . v > 0, and c has a negative component along both edges leaving v)
    -- and lies outside (c . v < t_out). Every comparison keeps a margin of 1e-13, about a
    -- hundred times the rounding error of these sums of products of unit vectors.
    SELECT CASE WHEN d.d1 > t_in OR d.d2 > t_in OR d.d3 > t_in OR d.d4 > t_in THEN true
                WHEN d.n <= 4 AND abs(d.det) > 1e-13 AND (
                sign(d.det) * (cx * (d.y1 * d.z2 - d.z1 * d.y2) + cy * (d.z1 * d.x2 - d.x1 * d.z2)
                + cz * (d.x1 * d.y2 - d.y1 * d.x2))
               < -(sin_o * sqrt(power(d.y1 * d.z2 - d.z1 * d.y2 + 1e-100, 2)
                                + power(d.z1 * d.x2 - d.x1 * d.z2 + 1e-100, 2)
                                + power(d.x1 * d.y2 - d.y1 * d.x2 + 1e-100, 2)) + 1e-13)
             OR sign(d.det) * (cx * (d.y2 * d.z3 - d.z2 * d.y3) + cy * (d.z2 * d.x3 - d.x2 * d.z3)
                + cz * (d.x2 * d.y3 - d.y2 * d.x3))
               < -(sin_o * sqrt(power(d.y2 * d.z3 - d.z2 * d.y3 + 1e-100, 2)
                                + power(d.z2 * d.x3 - d.x2 * d.z3 + 1e-100, 2)
                                + power(d.x2 * d.y3 - d.y2 * d.x3 + 1e-100, 2)) + 1e-13)
             OR sign(d.det) * (cx * (d.y3 * d.z4 - d.z3 * d.y4) + cy * (d.z3 * d.x4 - d.x3 * d.z4)
                + cz * (d.x3 * d.y4 - d.y3 * d.x4))
               < -(sin_o * sqrt(power(d.y3 * d.z4 - d.z3 * d.y4 + 1e-100, 2)
                                + power(d.z3 * d.x4 - d.x3 * d.z4 + 1e-100, 2)
                                + power(d.x3 * d.y4 - d.y3 * d.x4 + 1e-100, 2)) + 1e-13)
             OR sign(d.det) * (cx * (d.y4 * d.z1 - d.z4 * d.y1) + cy * (d.z4 * d.x1 - d.x4 * d.z1)
                + cz * (d.x4 * d.y1 - d.y4 * d.x1))
               < -(sin_o * sqrt(power(d.y4 * d.z1 - d.z4 * d.y1 + 1e-100, 2)
                                + power(d.z4 * d.x1 - d.x4 * d.z1 + 1e-100, 2)
                                + power(d.x4 * d.y1 - d.y4 * d.x1 + 1e-100, 2)) + 1e-13)
             OR CASE WHEN d.d1 > 1e-6 AND d.d1 < t_out
                  THEN d.d4 - (d.x4 * d.x1 + d.y4 * d.y1 + d.z4 * d.z1) * d.d1 < -1e-13
                       AND d.d2 - (d.x1 * d.x2 + d.y1 * d.y2 + d.z1 * d.z2) * d.d1 < -1e-13
                  ELSE false END
             OR CASE WHEN d.d2 > 1e-6 AND d.d2 < t_out
                  THEN d.d1 - (d.x1 * d.x2 + d.y1 * d.y2 + d.z1 * d.z2) * d.d2 < -1e-13
                       AND d.d3 - (d.x2 * d.x3 + d.y2 * d.y3 + d.z2 * d.z3) * d.d2 < -1e-13
                  ELSE false END
             OR CASE WHEN d.d3 > 1e-6 AND d.d3 < t_out
                  THEN d.d2 - (d.x2 * d.x3 + d.y2 * d.y3 + d.z2 * d.z3) * d.d3 < -1e-13
                       AND d.d4 - (d.x3 * d.x4 + d.y3 * d.y4 + d.z3 * d.z4) * d.d3 < -1e-13
                  ELSE false END
             OR CASE WHEN d.d4 > 1e-6 AND d.d4 < t_out
                  THEN d.d3 - (d.x3 * d.x4 + d.y3 * d.y4 + d.z3 * d.z4) * d.d4 < -1e-13
                       AND d.d1 - (d.x4 * d.x1 + d.y4 * d.y1 + d.z4 * d.z1) * d.d4 < -1e-13
                  ELSE false END) THEN false END
    FROM (SELECT v.n, v.x1, v.y1, v.z1, v.x2, v.y2, v.z2, v.x3, v.y3, v.z3, v.x4, v.y4, v.z4,
                 v.x1 * cx + v.y1 * cy + v.z1 * cz AS d1,
                 v.x2 * cx + v.y2 * cy + v.z2 * cz AS d2,
                 v.x3 * cx + v.y3 * cy + v.z3 * cz AS d3,
                 v.x4 * cx + v.y4 * cy + v.z4 * cz AS d4,
                 o.det
          FROM skyreg_corner_vectors(ra_deg, dec_deg) AS v
          CROSS JOIN LATERAL (SELECT v.x3 * (v.y1 * v.z2 - v.z1 * v.y2)
                                     + v.y3 * (v.z1 * v.x2 - v.x1 * v.z2)
                                     + v.z3 * (v.x1 * v.y2 - v.y1 * v.x2) AS det) AS o
          OFFSET 0) AS d
$$;
COMMENT ON FUNCTION skyreg_cap_verdict(float8[], float8[], float8, float8, float8, float8,
                                       float8, float8) IS
    'Prefilter of the cone and polygon searches: true (overlaps), false (disjoint) or NULL '
    '(undecided) for a stored footprint against a cap; see the function body.';

CREATE FUNCTION skyreg_point_verdict(ra_deg float8[], dec_deg float8[], px float8, py float8,
                                     pz float8)
RETURNS TABLE (verdict boolean)
LANGUAGE sql IMMUTABLE PARALLEL SAFE ROWS 1 AS $$
    -- Prefilter of the point search, for footprints of at most four vertices: true when the
    -- unit vector p is inside every edge's great circle, false when it is outside one, by a
    -- margin of 1e-13 (the determinants p . (a x b), signed by the footprint's orientation,
    -- are computed from skyreg_corner_vectors within ~1e-15 of their value on the exact
    -- vertices); NULL otherwise, for the exact test. (For a triangle, edge 3-4 joins the
    -- third vertex to itself and its determinant is exactly 0.)
    SELECT CASE WHEN d.n > 4 OR abs(d.det) <= 1e-13 THEN NULL
                WHEN d.s12 > 1e-13 AND d.s23 > 1e-13 AND (d.s34 > 1e-13 OR d.n = 3)
                     AND d.s41 > 1e-13
                    THEN true
                WHEN d.s12 < -1e-13 OR d.s23 < -1e-13 OR d.s34 < -1e-13 OR d.s41 < -1e-13
                    THEN false END
    FROM (SELECT v.n, o.det,
                 sign(o.det) * (px * (v.y1 * v.z2 - v.z1 * v.y2) + py * (v.z1 * v.x2 - v.x1 * v.z2)
                     + pz * (v.x1 * v.y2 - v.y1 * v.x2)) AS s12,
                 sign(o.det) * (px * (v.y2 * v.z3 - v.z2 * v.y3) + py * (v.z2 * v.x3 - v.x2 * v.z3)
                     + pz * (v.x2 * v.y3 - v.y2 * v.x3)) AS s23,
                 sign(o.det) * (px * (v.y3 * v.z4 - v.z3 * v.y4) + py * (v.z3 * v.x4 - v.x3 * v.z4)
                     + pz * (v.x3 * v.y4 - v.y3 * v.x4)) AS s34,
                 sign(o.det) * (px * (v.y4 * v.z1 - v.z4 * v.y1) + py * (v.z4 * v.x1 - v.x4 * v.z1)
                     + pz * (v.x4 * v.y1 - v.y4 * v.x1)) AS s41
          FROM skyreg_corner_vectors(ra_deg, dec_deg) AS v
          CROSS JOIN LATERAL (SELECT v.x3 * (v.y1 * v.z2 - v.z1 * v.y2)
                                     + v.y3 * (v.z1 * v.x2 - v.x1 * v.z2)
                                     + v.z3 * (v.x1 * v.y2 - v.y1 * v.x2) AS det) AS o
          OFFSET 0) AS d
$$;
COMMENT ON FUNCTION skyreg_point_verdict(float8[], float8[], float8, float8, float8) IS
    'Prefilter of the point search: true (contains), false (does not) or NULL (undecided) '
    'for a stored footprint and a unit vector; see the function body.';

CREATE FUNCTION skyreg_bounds_verdict(px float8, py float8, pz float8, inner_cos float8,
                                      inner_sin float8, outer_cos float8, outer_sin float8,
                                      cx float8, cy float8, cz float8, t float8, s float8)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- First prefilter of the cone and point searches, from the two caps stored with each
    -- CCD (ccd.cap_*, skyreg.geometry.bounding_caps): centre p, an inner cap of radius rho
    -- inside the footprint and an outer one of radius R holding it, given as cosine and
    -- sine. Against the cone of centre c = (cx, cy, cz) and radius r (t = cos r, s = sin r):
    -- true when the cone reaches into the inner cap (p . c > cos(r + rho)), false when it
    -- misses the outer one (p . c < cos(r + R), which means an angle above r + R only while
    -- r + R < 180 degrees: outer_cos > -t), NULL otherwise and wherever a cap is NULL (a
    -- CCD written without them). A dozen float operations instead of the ~150 and 16
    -- sines and cosines of skyreg_cap_verdict, and they decide ~85% of a 0.2 degree cone's
    -- candidates. Each value is within ~1e-15 of its exact one, the radii are rounded the
    -- safe way by 1e-12 rad, and every comparison keeps a margin of 1e-13 (in cosine: an
    -- angle of at least 1e-13 rad, and 40 times sphgeom's tolerance of 2.5e-15 in squared
    -- chord). Stored values are 0 or above 1e-30 in magnitude and the query's 0 or above
    -- 1e-100 (or ~1e-162 for s), so no product underflows. Written as one expression so
    -- that it is inlined: the full prefilter runs only where this gives NULL.
    SELECT CASE WHEN px * cx + py * cy + pz * cz > t * inner_cos - s * inner_sin + 1e-13
                    THEN true
                WHEN px * cx + py * cy + pz * cz < t * outer_cos - s * outer_sin - 1e-13
                     AND outer_cos > 1e-13 - t
                    THEN false END
$$;
COMMENT ON FUNCTION skyreg_bounds_verdict(float8, float8, float8, float8, float8, float8,
                                          float8, float8, float8, float8, float8, float8) IS
    'First prefilter of the cone and point searches, from the caps stored with each CCD: '
    'true (overlaps), false (disjoint) or NULL (undecided); see the function body.';

CREATE FUNCTION skyreg_sides_verdict(ra_deg float8[], dec_deg float8[], s float8[])
RETURNS TABLE (verdict boolean)
LANGUAGE sql IMMUTABLE PARALLEL SAFE ROWS 1 AS $$
    -- Prefilter of the polygon search for a query polygon of at most four vertices, given as
    -- s = skyreg_polygon_sides(...) (its vertices, then its edge normals): true when a vertex
    -- of the footprint is strictly inside the polygon or a vertex of the polygon strictly
    -- inside the footprint, false when an edge of either has every vertex of the other
    -- strictly outside, each by a margin of 1e-13 (the footprint's vectors come from
    -- skyreg_corner_vectors); NULL otherwise (s NULL, footprints of more than four vertices
    -- but for the first test, tangencies), for the exact test.
    SELECT CASE WHEN s IS NULL OR abs(d.det) <= 1e-13 THEN NULL
                -- a vertex of the footprint inside the polygon (any footprint)
                WHEN (s[13] * d.x1 + s[14] * d.y1 + s[15] * d.z1 > 1e-13
                   AND s[16] * d.x1 + s[17] * d.y1 + s[18] * d.z1 > 1e-13
                   AND s[19] * d.x1 + s[20] * d.y1 + s[21] * d.z1 > 1e-13
                   AND s[22] * d.x1 + s[23] * d.y1 + s[24] * d.z1 > 1e-13)
              OR (s[13] * d.x2 + s[14] * d.y2 + s[15] * d.z2 > 1e-13
                   AND s[16] * d.x2 + s[17] * d.y2 + s[18] * d.z2 > 1e-13
                   AND s[19] * d.x2 + s[20] * d.y2 + s[21] * d.z2 > 1e-13
                   AND s[22] * d.x2 + s[23] * d.y2 + s[24] * d.z2 > 1e-13)
              OR (s[13] * d.x3 + s[14] * d.y3 + s[15] * d.z3 > 1e-13
                   AND s[16] * d.x3 + s[17] * d.y3 + s[18] * d.z3 > 1e-13
                   AND s[19] * d.x3 + s[20] * d.y3 + s[21] * d.z3 > 1e-13
                   AND s[22] * d.x3 + s[23] * d.y3 + s[24] * d.z3 > 1e-13)
              OR (s[13] * d.x4 + s[14] * d.y4 + s[15] * d.z4 > 1e-13
                   AND s[16] * d.x4 + s[17] * d.y4 + s[18] * d.z4 > 1e-13
                   AND s[19] * d.x4 + s[20] * d.y4 + s[21] * d.z4 > 1e-13
                   AND s[22] * d.x4 + s[23] * d.y4 + s[24] * d.z4 > 1e-13)
                    THEN true
                WHEN d.n > 4 THEN NULL
                -- a vertex of the polygon inside the footprint
                WHEN (sign(d.det) * (d.nx1 * s[1] + d.ny1 * s[2] + d.nz1 * s[3]) > 1e-13
                   AND sign(d.det) * (d.nx2 * s[1] + d.ny2 * s[2] + d.nz2 * s[3]) > 1e-13
                   AND sign(d.det) * (d.nx3 * s[1] + d.ny3 * s[2] + d.nz3 * s[3]) > 1e-13
                   AND sign(d.det) * (d.nx4 * s[1] + d.ny4 * s[2] + d.nz4 * s[3]) > 1e-13)
              OR (sign(d.det) * (d.nx1 * s[4] + d.ny1 * s[5] + d.nz1 * s[6]) > 1e-13
                   AND sign(d.det) * (d.nx2 * s[4] + d.ny2 * s[5] + d.nz2 * s[6]) > 1e-13
                   AND sign(d.det) * (d.nx3 * s[4] + d.ny3 * s[5] + d.nz3 * s[6]) > 1e-13
                   AND sign(d.det) * (d.nx4 * s[4] + d.ny4 * s[5] + d.nz4 * s[6]) > 1e-13)
              OR (sign(d.det) * (d.nx1 * s[7] + d.ny1 * s[8] + d.nz1 * s[9]) > 1e-13
                   AND sign(d.det) * (d.nx2 * s[7] + d.ny2 * s[8] + d.nz2 * s[9]) > 1e-13
                   AND sign(d.det) * (d.nx3 * s[7] + d.ny3 * s[8] + d.nz3 * s[9]) > 1e-13
                   AND sign(d.det) * (d.nx4 * s[7] + d.ny4 * s[8] + d.nz4 * s[9]) > 1e-13)
              OR (sign(d.det) * (d.nx1 * s[10] + d.ny1 * s[11] + d.nz1 * s[12]) > 1e-13
                   AND sign(d.det) * (d.nx2 * s[10] + d.ny2 * s[11] + d.nz2 * s[12]) > 1e-13
                   AND sign(d.det) * (d.nx3 * s[10] + d.ny3 * s[11] + d.nz3 * s[12]) > 1e-13
                   AND sign(d.det) * (d.nx4 * s[10] + d.ny4 * s[11] + d.nz4 * s[12]) > 1e-13)
                    THEN true
                -- an edge of the polygon, or of the footprint, separating them
                WHEN (s[13] * d.x1 + s[14] * d.y1 + s[15] * d.z1 < -1e-13
                   AND s[13] * d.x2 + s[14] * d.y2 + s[15] * d.z2 < -1e-13
                   AND s[13] * d.x3 + s[14] * d.y3 + s[15] * d.z3 < -1e-13
                   AND s[13] * d.x4 + s[14] * d.y4 + s[15] * d.z4 < -1e-13)
              OR (s[16] * d.x1 + s[17] * d.y1 + s[18] * d.z1 < -1e-13
                   AND s[16] * d.x2 + s[17] * d.y2 + s[18] * d.z2 < -1e-13
                   AND s[16] * d.x3 + s[17] * d.y3 + s[18] * d.z3 < -1e-13
                   AND s[16] * d.x4 + s[17] * d.y4 + s[18] * d.z4 < -1e-13)
              OR (s[19] * d.x1 + s[20] * d.y1 + s[21] * d.z1 < -1e-13
                   AND s[19] * d.x2 + s[20] * d.y2 + s[21] * d.z2 < -1e-13
                   AND s[19] * d.x3 + s[20] * d.y3 + s[21] * d.z3 < -1e-13
                   AND s[19] * d.x4 + s[20] * d.y4 + s[21] * d.z4 < -1e-13)
              OR (s[22] * d.x1 + s[23] * d.y1 + s[24] * d.z1 < -1e-13
                   AND s[22] * d.x2 + s[23] * d.y2 + s[24] * d.z2 < -1e-13
                   AND s[22] * d.x3 + s[23] * d.y3 + s[24] * d.z3 < -1e-13
                   AND s[22] * d.x4 + s[23] * d.y4 + s[24] * d.z4 < -1e-13)
              OR (sign(d.det) * (d.nx1 * s[1] + d.ny1 * s[2] + d.nz1 * s[3]) < -1e-13
                   AND sign(d.det) * (d.nx1 * s[4] + d.ny1 * s[5] + d.nz1 * s[6]) < -1e-13
                   AND sign(d.det) * (d.nx1 * s[7] + d.ny1 * s[8] + d.nz1 * s[9]) < -1e-13
                   AND sign(d.det) * (d.nx1 * s[10] + d.ny1 * s[11] + d.nz1 * s[12]) < -1e-13)
              OR (sign(d.det) * (d.nx2 * s[1] + d.ny2 * s[2] + d.nz2 * s[3]) < -1e-13
                   AND sign(d.det) * (d.nx2 * s[4] + d.ny2 * s[5] + d.nz2 * s[6]) < -1e-13
                   AND sign(d.det) * (d.nx2 * s[7] + d.ny2 * s[8] + d.nz2 * s[9]) < -1e-13
                   AND sign(d.det) * (d.nx2 * s[10] + d.ny2 * s[11] + d.nz2 * s[12]) < -1e-13)
              OR (sign(d.det) * (d.nx3 * s[1] + d.ny3 * s[2] + d.nz3 * s[3]) < -1e-13
                   AND sign(d.det) * (d.nx3 * s[4] + d.ny3 * s[5] + d.nz3 * s[6]) < -1e-13
                   AND sign(d.det) * (d.nx3 * s[7] + d.ny3 * s[8] + d.nz3 * s[9]) < -1e-13
                   AND sign(d.det) * (d.nx3 * s[10] + d.ny3 * s[11] + d.nz3 * s[12]) < -1e-13)
              OR (sign(d.det) * (d.nx4 * s[1] + d.ny4 * s[2] + d.nz4 * s[3]) < -1e-13
                   AND sign(d.det) * (d.nx4 * s[4] + d.ny4 * s[5] + d.nz4 * s[6]) < -1e-13
                   AND sign(d.det) * (d.nx4 * s[7] + d.ny4 * s[8] + d.nz4 * s[9]) < -1e-13
                   AND sign(d.det) * (d.nx4 * s[10] + d.ny4 * s[11] + d.nz4 * s[12]) < -1e-13)
                    THEN false END
    FROM (SELECT v.n, v.x1, v.y1, v.z1, v.x2, v.y2, v.z2, v.x3, v.y3, v.z3, v.x4, v.y4, v.z4,
                 v.y1 * v.z2 - v.z1 * v.y2 AS nx1, v.z1 * v.x2 - v.x1 * v.z2 AS ny1,
                 v.x1 * v.y2 - v.y1 * v.x2 AS nz1,
                 v.y2 * v.z3 - v.z2 * v.y3 AS nx2, v.z2 * v.x3 - v.x2 * v.z3 AS ny2,
                 v.x2 * v.y3 - v.y2 * v.x3 AS nz2,
                 v.y3 * v.z4 - v.z3 * v.y4 AS nx3, v.z3 * v.x4 - v.x3 * v.z4 AS ny3,
                 v.x3 * v.y4 - v.y3 * v.x4 AS nz3,
                 v.y4 * v.z1 - v.z4 * v.y1 AS nx4, v.z4 * v.x1 - v.x4 * v.z1 AS ny4,
                 v.x4 * v.y1 - v.y4 * v.x1 AS nz4,
                 o.det
          FROM skyreg_corner_vectors(ra_deg, dec_deg) AS v
          CROSS JOIN LATERAL (SELECT v.x3 * (v.y1 * v.z2 - v.z1 * v.y2)
                                     + v.y3 * (v.z1 * v.x2 - v.x1 * v.z2)
                                     + v.z3 * (v.x1 * v.y2 - v.y1 * v.x2) AS det) AS o
          OFFSET 0) AS d
$$;
COMMENT ON FUNCTION skyreg_sides_verdict(float8[], float8[], float8[]) IS
    'Prefilter of the polygon search: true (overlaps), false (disjoint) or NULL (undecided) '
    'for a stored footprint and a query polygon of at most four vertices; see the body.';
