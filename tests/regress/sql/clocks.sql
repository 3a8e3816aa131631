-- Event-time clocks: no watermark and no retention clock moves past the wall clock plus
-- streamrec.max_clock_skew. A later ("future") event is stored and counted but moves no clock;
-- what each pipeline makes of it is shown per pipeline. Window options are checked by their
-- width in microseconds, and a zero width that still reaches the C++ code is a clean ERROR.
CREATE EXTENSION pg_streamrec;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
-- The counters live in shared memory per database and survive DROP EXTENSION: this test shows
-- what it added.
SELECT coalesce(jsonb_object_agg(name, future), '{}') AS f0, coalesce(jsonb_object_agg(name, late), '{}') AS l0
FROM streamrec._pipeline_stats() \gset
CREATE VIEW pg_temp.added AS
SELECT name, future - coalesce((:'f0'::jsonb ->> name)::int8, 0) AS future,
       late - coalesce((:'l0'::jsonb ->> name)::int8, 0) AS late
FROM streamrec.pipelines;
SHOW streamrec.max_clock_skew;
SELECT streamrec._clock_limit() BETWEEN now() + interval '59 minutes' AND clock_timestamp() + interval '1 hour';

INSERT INTO streamrec.inventory (product_id, category, stock, rating) VALUES
    ('1', 'a', 5, 4.0), ('2', 'a', 5, 4.5), ('3', 'a', 5, 3.0), ('6', 'b', 5, 1.0);

-- A window zero microseconds wide that compares positive (a year is 365.25 days wide but
-- compares as 360): refused, like every interval option of every pipeline.
SELECT streamrec.enable_pipeline('trending', '{"window": "-1 year 365 days 6 hours"}');
\echo :LAST_ERROR_SQLSTATE
CREATE FUNCTION pg_temp.try_enable(p text, o jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM streamrec.enable_pipeline(p, o);
    PERFORM streamrec.disable_pipeline(p);
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
SELECT p, k, pg_temp.try_enable(p, jsonb_build_object(k, '-1 year 365 days 6 hours')) AS zero_wide,
       pg_temp.try_enable(p, jsonb_build_object(k, '-1 year 365 days 5 hours')) AS negative,
       pg_temp.try_enable(p, jsonb_build_object(k, '1001 years')) AS too_wide,
       pg_temp.try_enable(p, jsonb_build_object(k, '100000000 years')) AS overflowing,
       pg_temp.try_enable(p, jsonb_build_object(k, '1 microsecond')) AS narrowest
FROM (VALUES ('similar_products', 'emit'), ('similar_products', 'repeat_window'),
             ('similar_products', 'watermark_delay'), ('similar_products', 'idle_timeout'),
             ('similar_products', 'retention'), ('trending', 'window'), ('trending', 'retention'),
             ('category_affinity', 'lookback'), ('attribution', 'lookback'), ('attribution', 'retention'),
             ('ratings', 'status_window'), ('ratings', 'customer_window'), ('ratings', 'watermark_delay'),
             ('ratings', 'idle_timeout'), ('ratings', 'retention'), ('item_transactions', 'window'),
             ('item_transactions', 'watermark_delay'), ('item_transactions', 'idle_timeout'),
             ('item_transactions', 'retention')) v(p, k)
ORDER BY 1, 2;
-- A delay or repeat window may be zero.
SELECT pg_temp.try_enable('ratings', '{"watermark_delay": "0"}'), pg_temp.try_enable('similar_products', '{"repeat_window": "0"}');
SELECT count(*) FROM streamrec.pipeline_catalog WHERE enabled;

-- The catalog's row check refuses a zero width written by hand. One written past it (its
-- triggers off, as a restore may do) still reaches the pipeline triggers: a clean ERROR with
-- SQLSTATE and hint, no floating-point exception, the server up.
SELECT streamrec.enable_pipeline('trending');
UPDATE streamrec.pipeline_catalog SET options = options || '{"window": "-1 year 365 days 6 hours"}' WHERE name = 'trending';
SET session_replication_role = replica;
UPDATE streamrec.pipeline_catalog SET options = options || '{"window": "-1 year 365 days 6 hours"}' WHERE name = 'trending';
RESET session_replication_role;
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('z', '1', '2024-07-02 10:00:00');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec.disable_pipeline('trending');
SELECT streamrec.enable_pipeline('similar_products', '{"emit": "5 seconds"}');
SET session_replication_role = replica;
UPDATE streamrec.pipeline_catalog SET options = options || '{"emit": "-1 year 365 days 6 hours"}' WHERE name = 'similar_products';
RESET session_replication_role;
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('z', '1', '2024-07-02 10:00:00');
SELECT streamrec.disable_pipeline('similar_products');
SELECT streamrec.enable_pipeline('item_transactions');
SET session_replication_role = replica;
UPDATE streamrec.pipeline_catalog SET options = options || '{"window": "-1 year 365 days 6 hours"}' WHERE name = 'item_transactions';
RESET session_replication_role;
INSERT INTO streamrec.item_transactions VALUES (1, '1', 1, '2024-07-02 10:00:00');
SET session_replication_role = replica;
UPDATE streamrec.pipeline_catalog SET options = options || '{"window": "1 minute", "idle_timeout": "0"}' WHERE name = 'item_transactions';
RESET session_replication_role;
SELECT streamrec._close_idle_transaction_windows();
SELECT streamrec.disable_pipeline('item_transactions');
SELECT streamrec.enable_pipeline('ratings');
SET session_replication_role = replica;
UPDATE streamrec.pipeline_catalog SET options = options || '{"status_window": "-1 year 365 days 6 hours"}' WHERE name = 'ratings';
RESET session_replication_role;
INSERT INTO streamrec.ratings VALUES ('r', 'c', '1', 5, 'web', 'ok', '2024-07-02 10:00:00');
SELECT streamrec.disable_pipeline('ratings');
-- An event time at the end of the range: its window cannot be computed (22008), not a crash.
SELECT streamrec.enable_pipeline('trending');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('z', '1', '-infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM streamrec.clicks;

-- trending: one click dated 9999-12-31 among the clicks of three windows. It is stored and
-- counted as future but makes no window, and retention (2 days on the newest window) keeps
-- every window.
SELECT streamrec.enable_pipeline('trending', '{"window": "1 hour", "retention": "2 days"}');
INSERT INTO streamrec.clicks (user_id, product_id, event_time)
SELECT 'u' || g, (g % 3 + 1)::text, '2024-07-02 10:00:00'::timestamptz + g * interval '1 minute'
FROM generate_series(0, 179) g;
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('wild', '1', '9999-12-31 00:00:00');
SELECT streamrec._pipeline_tick();
SELECT count(*) AS counts, sum(views) AS views FROM streamrec.trending_counts;
SELECT window_start, product_id, views, rank FROM streamrec.trending ORDER BY window_start, rank;
SELECT count(*) AS wild_click_stored FROM streamrec.clicks WHERE event_time = '9999-12-31';
SELECT name, future, late FROM pg_temp.added WHERE name = 'trending';
-- A row far ahead already in the table (written by hand, or by an older version) moves no
-- retention clock either.
INSERT INTO streamrec.trending_counts VALUES ('9999-12-31', '1', 1);
SELECT streamrec._pipeline_tick();
SELECT count(*) AS counts FROM streamrec.trending_counts WHERE window_start < '9999-01-01';
SELECT streamrec.disable_pipeline('trending');

-- category_affinity: a future click makes no bucket; the lookup's clock and retention's (the
-- newest bucket) ignore rows past the limit, so the users' lists stay.
SELECT streamrec.enable_pipeline('category_affinity', '{"lookback": "24 hours"}');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES
    ('a1', '1', '2024-07-03 09:00:00'), ('a1', '6', '2024-07-03 09:10:00'), ('a1', '1', '9999-12-31 00:00:00');
SELECT user_id, category, bucket_start, views FROM streamrec.category_views ORDER BY 1, 3, 2;
SELECT * FROM streamrec.user_recommendations;
INSERT INTO streamrec.category_views VALUES ('a9', 'a', '9999-12-31', 1);
SELECT streamrec._pipeline_tick();
SELECT count(*) FROM streamrec.category_views WHERE bucket_start < '9999-01-01';
SELECT count(*) FROM streamrec.user_viewed_products;
SELECT * FROM streamrec.user_recommendations WHERE user_id = 'a1';
SELECT name, future FROM pg_temp.added WHERE name = 'category_affinity';
SELECT streamrec.disable_pipeline('category_affinity');
DELETE FROM streamrec.category_views WHERE user_id = 'a9';

-- similar_products, windowed emit: a future view is counted and left out (no pending view, no
-- clock move); the windows close as they would without it.
SELECT streamrec.enable_pipeline('similar_products', '{"emit": "5 seconds", "watermark_delay": "1 second", "repeats": "allow", "top_k": 2}');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES
    ('w1', '1', '2024-07-01 10:00:01'), ('w2', '2', '9999-12-31 00:00:00');
SELECT user_id, window_start FROM streamrec.pending_views ORDER BY 1;
SELECT watermark, max_event_time FROM streamrec.pipeline_clock WHERE pipeline = 'similar_products';
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('w3', '2', '2024-07-01 10:00:06');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('w4', '3', '2024-07-01 10:00:07');
SELECT user_id, product_ids, window_end FROM streamrec.recommendation_log ORDER BY id;
SELECT watermark, max_event_time FROM streamrec.pipeline_clock WHERE pipeline = 'similar_products';
SELECT name, future, late FROM pg_temp.added WHERE name = 'similar_products';
-- Per-click emit: no list for a future view (it would hold the user's latest list forever).
SELECT streamrec.enable_pipeline('similar_products', '{"repeats": "allow", "top_k": 2}');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('w5', '1', '9999-12-31 00:00:00');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('w5', '2', '2024-07-01 10:00:08');
SELECT user_id, product_ids, window_end FROM streamrec.recommendations WHERE user_id = 'w5';
-- The log's retention clock (its newest list) skips lists past the limit.
INSERT INTO streamrec.recommendation_log (user_id, product_ids, window_end) VALUES ('w9', '{1}', '9999-12-31');
SELECT streamrec._pipeline_tick();
SELECT count(*) FROM streamrec.recommendation_log WHERE window_end < '9999-01-01';
SELECT name, future FROM pg_temp.added WHERE name = 'similar_products';
SELECT streamrec.disable_pipeline('similar_products');

-- item_transactions: a far-future transaction, then normal ones. It is applied to the stock and
-- has its result, but moves no clock: none of the later ones is late, and the summaries are
-- what they are without it.
SELECT streamrec.enable_pipeline('item_transactions', '{"alert_min_transactions": 1}');
DELETE FROM streamrec.pipeline_clock;
INSERT INTO streamrec.item_transactions VALUES (10, 'i1', 5, '9999-12-31 00:00:00');
SELECT watermark, max_event_time FROM streamrec.pipeline_clock WHERE pipeline = 'item_transactions';
INSERT INTO streamrec.item_transactions VALUES
    (11, 'i1', -1, '2024-06-28 13:00:01'), (12, 'i1', -1, '2024-06-28 13:00:30'), (13, 'i2', 2, '2024-06-28 13:00:40');
INSERT INTO streamrec.item_transactions VALUES (14, 'i1', -10, '2024-06-28 13:01:05'), (15, 'i1', 1, '2024-06-28 13:02:05');
SELECT transaction_id, success, stock_after FROM streamrec.transaction_results ORDER BY 1;
SELECT item_id, window_start, succeeded, failed, volume FROM streamrec.transaction_summaries ORDER BY 2, 1;
SELECT watermark, max_event_time FROM streamrec.pipeline_clock WHERE pipeline = 'item_transactions';
SELECT name, future, late FROM pg_temp.added WHERE name = 'item_transactions';
-- Idle: the windows close up to the newest on-time one, not to year 9999; retention keeps them.
UPDATE streamrec.pipeline_clock SET last_arrival = now() - interval '1 hour' WHERE pipeline = 'item_transactions';
SELECT streamrec._close_idle_transaction_windows();
SELECT watermark FROM streamrec.pipeline_clock WHERE pipeline = 'item_transactions';
INSERT INTO streamrec.transaction_summaries VALUES ('i9', '9999-12-31', 1, 0, 1);
INSERT INTO streamrec.transaction_alerts VALUES ('i9', '9999-12-31', '9999-12-31 00:01', 0, 1, 0);
SELECT streamrec._pipeline_tick();
SELECT item_id, window_start FROM streamrec.transaction_summaries WHERE window_start < '9999-01-01' ORDER BY 2, 1;
SELECT count(*) FROM streamrec.transaction_alerts WHERE window_start < '9999-01-01';
SELECT count(*) FROM streamrec.transaction_results;
SELECT streamrec.disable_pipeline('item_transactions');

-- ratings: a future rating is enriched and averaged like any, but left out of the windows and
-- moving no clock; retention of the windows ignores rows past the limit.
INSERT INTO streamrec.customers VALUES ('c1', 'Ann', 'Lee', 'ann@example.com', 'platinum');
SELECT streamrec.enable_pipeline('ratings');
INSERT INTO streamrec.ratings VALUES
    ('r1', 'c1', '1', 4, 'web', 'ok', '2024-06-28 13:00:05'), ('r2', 'c1', '1', 1, 'web', 'bad', '9999-12-31 00:00:00');
SELECT rating_id, stars FROM streamrec.ratings_enriched ORDER BY 1;
SELECT rating_id FROM streamrec.unhappy_customers ORDER BY 1;
SELECT window_start, club_status, ratings FROM streamrec.ratings_by_club_status ORDER BY 1;
SELECT window_start, customer_id, stars FROM streamrec.ratings_per_customer ORDER BY 1;
SELECT watermark, max_event_time FROM streamrec.pipeline_clock WHERE pipeline = 'ratings';
INSERT INTO streamrec.ratings VALUES ('r3', 'c1', '1', 5, 'web', 'good', '2024-06-28 13:00:06');
SELECT name, future, late FROM pg_temp.added WHERE name = 'ratings';
INSERT INTO streamrec.ratings_by_club_status VALUES ('9999-12-31', '9999-12-31 00:01', 'x', 1);
INSERT INTO streamrec.ratings_per_customer VALUES ('9999-12-31', '9999-12-31 00:15', 'x', NULL, 1, '{1}');
SELECT streamrec._pipeline_tick();
SELECT count(*) FROM streamrec.ratings_by_club_status WHERE window_start < '9999-01-01';
SELECT count(*) FROM streamrec.ratings_per_customer WHERE window_start < '9999-01-01';
SELECT streamrec.disable_pipeline('ratings');

-- attribution: a future checkout is attributed like any and counted; retention's clock (the
-- newest checkout) ignores it.
SELECT streamrec.enable_pipeline('attribution', '{"retention": "1 day"}');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('b1', '1', '2024-06-28 12:59:00');
INSERT INTO streamrec.checkouts VALUES
    ('k1', 'b1', '1', 'card', 1, '2024-06-28 13:00:00'), ('k2', 'b1', '1', 'card', 1, '9999-12-31 00:00:00');
SELECT streamrec._pipeline_tick();
SELECT checkout_id, click_time FROM streamrec.attributed_checkouts ORDER BY 1;
SELECT name, future FROM pg_temp.added WHERE name = 'attribution';
SELECT streamrec.disable_pipeline('attribution');

-- No clock anywhere ended up past the limit.
SELECT pipeline FROM streamrec.pipeline_clock WHERE watermark > streamrec._clock_limit() OR max_event_time > streamrec._clock_limit();
SELECT pipeline FROM streamrec.pipeline_writers WHERE max_event_time > streamrec._clock_limit();
DROP VIEW pg_temp.added;
DROP EXTENSION pg_streamrec;
