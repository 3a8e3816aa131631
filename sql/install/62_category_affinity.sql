-- ---------------------------------------------------------------------------------------------
-- category_affinity: page views per user, category and hour, and the products each user viewed;
-- a user's recommendations are computed at lookup.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.category_views (
    user_id       text NOT NULL,
    category      text NOT NULL,
    bucket_start  timestamptz NOT NULL,
    views         bigint NOT NULL,
    PRIMARY KEY (user_id, bucket_start, category)
);
CREATE INDEX category_views_bucket_idx ON streamrec.category_views (bucket_start);
CREATE TABLE streamrec.user_viewed_products (
    user_id      text NOT NULL,
    product_id   text NOT NULL,
    last_viewed  timestamptz NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
CREATE INDEX user_viewed_products_time_idx ON streamrec.user_viewed_products (last_viewed);

-- Personal data (see the pipelines' header): read by streamrec_admin.
REVOKE ALL ON streamrec.category_views, streamrec.user_viewed_products FROM PUBLIC;
GRANT SELECT ON streamrec.category_views, streamrec.user_viewed_products TO streamrec_admin;

-- category_affinity: computed at lookup from the hourly buckets, with index probes only: the
-- user's buckets in the lookback (the stream's clock is the newest bucket), the top categories,
-- and per category the best-rated in-stock products until `limit` unviewed ones are found.
-- One user's list is a plpgsql function with its own cached plan: inlined into the view, the
-- planner's estimate for all users (not the one asked for) set off JIT compilation, which
-- cost ~0.5 s per lookup instead of a few milliseconds.
CREATE FUNCTION streamrec._affinity_products(for_user text) RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    lookback interval;
    lim int;
    top_categories int;
    clock timestamptz;
    result text[];
BEGIN
    SELECT coalesce((c.options ->> 'lookback')::interval, interval '24 hours'),
           coalesce((c.options ->> 'limit')::int, 10),
           coalesce((c.options ->> 'top_categories')::int, 3)
    INTO lookback, lim, top_categories
    FROM (SELECT 1) one LEFT JOIN streamrec.pipeline_catalog c ON c.name = 'category_affinity';
    clock := (SELECT max(b.bucket_start) FROM streamrec.category_views b WHERE b.bucket_start <= streamrec._clock_limit())
             + interval '1 hour';
    SELECT ARRAY(SELECT pick.product_id
                 FROM (SELECT v.category, sum(v.views) AS views
                       FROM streamrec.category_views v
                       WHERE v.user_id = for_user AND v.bucket_start >= clock - lookback
                       GROUP BY v.category
                       ORDER BY sum(v.views) DESC, v.category
                       LIMIT top_categories) top
                 CROSS JOIN LATERAL (
                     SELECT i.product_id, i.rating
                     FROM streamrec.inventory i
                     WHERE i.category = top.category AND i.stock > 0
                       AND NOT EXISTS (SELECT FROM streamrec.user_viewed_products w
                                       WHERE w.user_id = for_user AND w.product_id = i.product_id
                                         AND w.last_viewed >= clock - lookback)
                     ORDER BY i.rating DESC NULLS LAST, i.product_id
                     LIMIT lim) pick
                 ORDER BY pick.rating DESC NULLS LAST, pick.product_id
                 LIMIT lim)
    INTO result;
    RETURN result;
END $$;

CREATE VIEW streamrec.user_recommendations AS
SELECT u.user_id, streamrec._affinity_products(u.user_id) AS product_ids
FROM (SELECT DISTINCT v.user_id FROM streamrec.category_views v) u;
-- Per user, from what each viewed: read like category_views (SECURITY DEFINER underneath).
REVOKE ALL ON streamrec.user_recommendations FROM PUBLIC;
GRANT SELECT ON streamrec.user_recommendations TO streamrec_admin;
REVOKE ALL ON FUNCTION streamrec._affinity_products(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._affinity_products(text) TO streamrec_admin;

-- Its share of _pipeline_tick: drops the buckets and viewed products that left the lookback on
-- the stream's clock (the end of the newest bucket).
CREATE FUNCTION streamrec._category_affinity_tick(options jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM streamrec._delete_before('streamrec.category_views', 'bucket_start',
        ((SELECT max(bucket_start) FROM streamrec.category_views WHERE bucket_start <= streamrec._clock_limit())
         + interval '1 hour' - (options ->> 'lookback')::interval)::text);
    PERFORM streamrec._delete_before('streamrec.user_viewed_products', 'last_viewed',
        ((SELECT max(bucket_start) FROM streamrec.category_views WHERE bucket_start <= streamrec._clock_limit())
         + interval '1 hour' - (options ->> 'lookback')::interval)::text);
END $$;
REVOKE ALL ON FUNCTION streamrec._category_affinity_tick(jsonb) FROM PUBLIC;

INSERT INTO streamrec.pipeline_kinds (name, list_order, defaults, triggers, tick) VALUES (
    'category_affinity', 3,
    '{"lookback": "24 hours", "limit": 10, "top_categories": 3}',
    '[{"trigger": "streamrec_pipelines", "table": "streamrec.clicks", "function": "streamrec._pipeline_dispatch"}]',
    'streamrec._category_affinity_tick');
