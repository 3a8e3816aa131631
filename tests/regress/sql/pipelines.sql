-- The recommendation pipelines, driven by plain INSERTs: every rule of
-- similar_products, trending and category_affinity on hand-made cases, and the API's errors.
-- This database is not streamrec.database: no launcher tick, so idle windows are closed by
-- calling streamrec._close_idle_windows() as the launcher would.
CREATE EXTENSION pg_streamrec;
\set SHOW_CONTEXT never
SET timezone = 'UTC';

-- Category a: best first 2 (4.5), 5 (4.5), 1 (4.0), 9 (3.5), 4 (3.0), 8 (2.0), 7 (unrated);
-- 3 is out of stock. Category b holds one product; c holds two.
INSERT INTO streamrec.inventory (product_id, category, stock, rating) VALUES
    ('1', 'a', 5, 4.0), ('2', 'a', 5, 4.5), ('3', 'a', 0, 5.0), ('4', 'a', 5, 3.0), ('5', 'a', 5, 4.5),
    ('7', 'a', 5, NULL), ('8', 'a', 2, 2.0), ('9', 'a', 3, 3.5), ('6', 'b', 1, 1.0),
    ('c1', 'c', 1, 1.0), ('c2', 'c', 1, 2.0);

-- Bad arguments: ERROR with SQLSTATE and hint, nothing enabled.
SELECT streamrec.enable_pipeline('similar_product');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec.enable_pipeline('similar_products', '{"top_k": 0}');
SELECT streamrec.enable_pipeline('similar_products', '{"top_k": 2.5}');
SELECT streamrec.enable_pipeline('similar_products', '{"topk": 3}');
SELECT streamrec.enable_pipeline('similar_products', '{"repeats": "sometimes"}');
SELECT streamrec.enable_pipeline('similar_products', '{"emit": "often"}');
SELECT streamrec.enable_pipeline('similar_products', '{"emit": "-5 seconds"}');
SELECT streamrec.enable_pipeline('similar_products', '{"min_rating": "high"}');
SELECT streamrec.enable_pipeline('similar_products', '{"output_format": "xml"}');
SELECT streamrec.enable_pipeline('similar_products', '[1]');
SELECT streamrec.enable_pipeline('trending', '{"window": "0 seconds"}');
SELECT streamrec.disable_pipeline('trending');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec.recommend(NULL, '1');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec.recommend('u', '1', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM streamrec.pipeline_catalog;

-- A non-admin role may not enable pipelines.
CREATE ROLE pipelines_outsider;
SET ROLE pipelines_outsider;
SELECT streamrec.enable_pipeline('trending');
RESET ROLE;

SELECT streamrec.enable_pipeline('similar_products', '{"top_k": 4}');
SELECT name, enabled, options ->> 'top_k' AS top_k, options ->> 'repeats' AS repeats, sinks FROM streamrec.pipelines;

-- Per-click emit: bought-before first, then rating, then product_id; the viewed product and
-- out-of-stock products never appear; fewer candidates than k; unknown products skipped.
INSERT INTO streamrec.purchases (user_id, product_id, purchase_time) VALUES ('u1', '8', '2024-06-28 12:00:00');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES
    ('u1', '1', '2024-06-28 13:01:55'),       -- bought 8 first, then 2 5 9
    ('u2', '6', '2024-06-28 13:01:56'),       -- b has no other product: skipped
    ('u3', 'zz', '2024-06-28 13:01:57'),      -- unknown product: skipped
    ('u4', 'c1', '2024-06-28 13:01:58'),      -- fewer candidates than k
    ('u5', '2', '2024-06-28 13:01:59'),       -- tie 2/5 at 4.5 broken by product_id
    ('u6', '1', '2024-06-28 13:02:00');
INSERT INTO streamrec.clicks (user_id, product_id, event_type, event_time) VALUES
    ('u6', '1', 'add_to_cart', '2024-06-28 13:02:01');  -- not a page view
SELECT id, user_id, product_ids, window_end, viewed_product_id, category FROM streamrec.recommendation_log ORDER BY id;
SELECT user_id, product_ids, window_end FROM streamrec.recommendations ORDER BY user_id;
SELECT name, events, outputs, skipped, late FROM streamrec.pipelines WHERE name = 'similar_products';

-- Repeats: the lists shown within repeat_window go last (demote, the default) ...
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('u5', '9', '2024-06-28 13:03:00');
SELECT product_ids FROM streamrec.recommendation_log WHERE user_id = 'u5' ORDER BY id;
-- ... or are dropped (exclude), or count for nothing (allow); beyond the window they are fresh.
-- (at 13:04 with exclude every candidate was shown within 10 minutes: no list, one skipped)
SELECT streamrec.enable_pipeline('similar_products', '{"top_k": 4, "repeats": "exclude"}');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('u5', '9', '2024-06-28 13:04:00');
SELECT skipped FROM streamrec.pipelines WHERE name = 'similar_products';
SELECT streamrec.enable_pipeline('similar_products', '{"top_k": 4, "repeats": "allow"}');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('u5', '9', '2024-06-28 13:05:00');
SELECT streamrec.enable_pipeline('similar_products', '{"top_k": 4, "repeat_window": "1 minute"}');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('u5', '9', '2024-06-28 13:30:00');
SELECT window_end, product_ids FROM streamrec.recommendation_log WHERE user_id = 'u5' ORDER BY id;
-- Two views of one user in one statement: the second sees the first one's list as shown.
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES
    ('u7', '1', '2024-06-28 14:00:00'), ('u7', '1', '2024-06-28 14:00:01');
SELECT product_ids FROM streamrec.recommendation_log WHERE user_id = 'u7' ORDER BY id;

-- A purchase changes the order at the next view; an UPDATE of the inventory (stock, rating,
-- category) is honoured by the very next click.
INSERT INTO streamrec.purchases (user_id, product_id, quantity, purchase_time) VALUES
    ('u8', '7', 2, '2024-06-28 14:00:00'), ('u8', '7', 1, '2024-06-28 14:01:00');
SELECT user_id, product_id, quantity, purchases, last_purchase_time FROM streamrec.user_purchases ORDER BY 1, 2;
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('u8', '1', '2024-06-28 14:02:00');
UPDATE streamrec.inventory SET stock = 0 WHERE product_id = '2';
UPDATE streamrec.inventory SET rating = 5 WHERE product_id = '4';
UPDATE streamrec.inventory SET category = 'c' WHERE product_id = '5';
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('u9', '1', '2024-06-28 14:03:00');
SELECT user_id, product_ids FROM streamrec.recommendation_log WHERE user_id IN ('u8', 'u9') ORDER BY id;
UPDATE streamrec.inventory SET stock = 5 WHERE product_id = '2';
UPDATE streamrec.inventory SET rating = 3.0 WHERE product_id = '4';
UPDATE streamrec.inventory SET category = 'a' WHERE product_id = '5';

-- A large batch reads the whole inventory and keeps it between batches; a committed change of
-- the inventory (by anyone) is seen by the next batch, and a transaction's own change by its
-- own clicks.
INSERT INTO streamrec.inventory (product_id, category, stock, rating)
SELECT 'big' || g, 'big', 1, 1 + (g % 7) * 0.5 FROM generate_series(1, 1500) g;
INSERT INTO streamrec.clicks (user_id, product_id, event_time)
SELECT 'bulk' || g, 'big' || g, '2024-06-28 15:00:00' FROM generate_series(1, 1500) g;
SELECT product_ids FROM streamrec.recommendations WHERE user_id = 'bulk1';
UPDATE streamrec.inventory SET rating = 9 WHERE product_id = 'big1001';
INSERT INTO streamrec.clicks (user_id, product_id, event_time)
SELECT 'bulk' || g, 'big' || g, '2024-06-28 15:00:01' FROM generate_series(1, 1500) g;
SELECT product_ids FROM streamrec.recommendations WHERE user_id = 'bulk1';
SELECT count(*) AS lists_led_by_big1001 FROM streamrec.recommendation_log
WHERE window_end = '2024-06-28 15:00:01' AND product_ids[1] = 'big1001';
BEGIN;
UPDATE streamrec.inventory SET stock = 0 WHERE product_id = 'big1001';
INSERT INTO streamrec.clicks (user_id, product_id, event_time)
SELECT 'bulk' || g, 'big' || g, '2024-06-28 15:00:02' FROM generate_series(1, 1500) g;
COMMIT;
SELECT product_ids FROM streamrec.recommendations WHERE user_id = 'bulk1';
SELECT count(*) AS lists_with_big1001 FROM streamrec.recommendation_log
WHERE window_end = '2024-06-28 15:00:02' AND 'big1001' = ANY (product_ids);
-- The same when the stock changes through item_transactions, which writes the rows directly
-- rather than with an UPDATE statement: a batch fills the cache (big1001 is out of stock), a
-- committed restock is seen by the next batch, and a transaction's own sale by its own clicks.
-- (repeats allowed: big1001 led lists at 15:00:01, demoted it would not show.)
SELECT streamrec.enable_pipeline('similar_products', '{"top_k": 4, "repeats": "allow"}');
SELECT streamrec.enable_pipeline('item_transactions');
INSERT INTO streamrec.clicks (user_id, product_id, event_time)
SELECT 'bulk' || g, 'big' || g, '2024-06-28 15:00:03' FROM generate_series(1, 1500) g;
SELECT count(*) AS lists_with_big1001 FROM streamrec.recommendation_log
WHERE window_end = '2024-06-28 15:00:03' AND 'big1001' = ANY (product_ids);
INSERT INTO streamrec.item_transactions VALUES (1, 'big1001', 1, '2024-06-28 15:00:04');
INSERT INTO streamrec.clicks (user_id, product_id, event_time)
SELECT 'bulk' || g, 'big' || g, '2024-06-28 15:00:04' FROM generate_series(1, 1500) g;
SELECT count(*) AS lists_with_big1001 FROM streamrec.recommendation_log
WHERE window_end = '2024-06-28 15:00:04' AND 'big1001' = ANY (product_ids);
BEGIN;
INSERT INTO streamrec.item_transactions VALUES (2, 'big1001', -1, '2024-06-28 15:00:05');
INSERT INTO streamrec.clicks (user_id, product_id, event_time)
SELECT 'bulk' || g, 'big' || g, '2024-06-28 15:00:05' FROM generate_series(1, 1500) g;
COMMIT;
SELECT count(*) AS lists_with_big1001 FROM streamrec.recommendation_log
WHERE window_end = '2024-06-28 15:00:05' AND 'big1001' = ANY (product_ids);
SELECT transaction_id, success, stock_after FROM streamrec.transaction_results ORDER BY 1;
SELECT streamrec.disable_pipeline('item_transactions');
DELETE FROM streamrec.pipeline_clock WHERE pipeline = 'item_transactions';
DELETE FROM streamrec.inventory WHERE category = 'big';

-- min_rating drops unrated and low-rated candidates.
SELECT streamrec.enable_pipeline('similar_products', '{"top_k": 10, "min_rating": 3.5, "repeats": "allow"}');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('u10', '1', '2024-06-28 14:04:00');
SELECT product_ids FROM streamrec.recommendations WHERE user_id = 'u10';

-- recommend() ranks on demand with the same rules and writes nothing.
SELECT streamrec.recommend('u1', '1');
SELECT streamrec.recommend('u8', '9', 3);
SELECT streamrec.recommend('nobody', '9', 2);
SELECT streamrec.recommend('nobody', 'zz');
SELECT count(*) FROM streamrec.recommendation_log WHERE user_id = 'nobody';

-- Event-time windows: one list per user per window for the user's latest view, emitted when
-- the watermark (max event time - delay) passes the window's end; late events are counted.
SELECT streamrec.enable_pipeline('similar_products', '{"emit": "5 seconds", "watermark_delay": "1 second", "idle_timeout": "1 second", "repeats": "allow", "top_k": 3}');
TRUNCATE streamrec.recommendation_log;
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES
    ('w1', '1', '2024-07-01 10:00:01'), ('w1', '4', '2024-07-01 10:00:03'), ('w2', '9', '2024-07-01 10:00:04');
SELECT user_id, window_start, product_id, event_time FROM streamrec.pending_views ORDER BY 1, 2;
SELECT count(*) FROM streamrec.recommendation_log;
-- 10:00:05.5 - 1 s < 10:00:05: the window is still open.
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('w3', '1', '2024-07-01 10:00:05.5');
SELECT count(*) FROM streamrec.recommendation_log;
-- 10:00:06 - 1 s = 10:00:05: [10:00:00, 10:00:05) closes.
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('w3', '2', '2024-07-01 10:00:06');
SELECT user_id, product_ids, window_end, viewed_product_id FROM streamrec.recommendation_log ORDER BY id;
-- A view for the closed window is late: counted, not emitted.
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('w4', '1', '2024-07-01 10:00:02');
SELECT watermark, max_event_time FROM streamrec.pipeline_clock;
SELECT late FROM streamrec.pipelines WHERE name = 'similar_products';
-- No event for idle_timeout: the open window closes anyway.
SELECT pg_sleep(1.2);
SELECT streamrec._close_idle_windows();
SELECT user_id, product_ids, window_end, viewed_product_id FROM streamrec.recommendation_log ORDER BY id;
SELECT count(*) FROM streamrec.pending_views;

-- trending: views per product per window, top_n per window by views then product_id.
SELECT streamrec.enable_pipeline('trending', '{"window": "1 hour", "top_n": 2}');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES
    ('t1', 'p1', '2024-07-02 10:05:00'), ('t2', 'p1', '2024-07-02 10:06:00'), ('t3', 'p2', '2024-07-02 10:07:00'),
    ('t4', 'p3', '2024-07-02 10:08:00'), ('t5', 'p3', '2024-07-02 10:59:59'), ('t6', 'p2', '2024-07-02 11:00:00');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('t7', 'p3', '2024-07-02 10:30:00');
SELECT * FROM streamrec.trending WHERE window_start >= '2024-07-02' ORDER BY window_start, rank;

-- category_affinity: top categories by views in the lookback, unviewed in-stock products from
-- them, best rated first.
SELECT streamrec.enable_pipeline('category_affinity', '{"limit": 3, "top_categories": 1}');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES
    ('a1', '1', '2024-07-03 09:00:00'), ('a1', '2', '2024-07-03 09:10:00'), ('a1', 'c1', '2024-07-03 09:20:00'),
    ('a2', 'c1', '2024-07-03 09:30:00'), ('a2', 'zz', '2024-07-03 09:40:00');
SELECT * FROM streamrec.user_recommendations WHERE user_id IN ('a1', 'a2') ORDER BY user_id;
SELECT streamrec.enable_pipeline('category_affinity', '{"limit": 10, "top_categories": 2}');
SELECT * FROM streamrec.user_recommendations WHERE user_id = 'a1';
-- A day later the old views fall out of the lookback.
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('a2', '6', '2024-07-04 12:00:00');
SELECT * FROM streamrec.user_recommendations WHERE user_id IN ('a1', 'a2') ORDER BY user_id;
SELECT user_id, category, bucket_start, views FROM streamrec.category_views WHERE user_id IN ('a1', 'a2') ORDER BY 1, 3, 2;

-- Disabling removes the triggers: later clicks change nothing.
SELECT streamrec.disable_pipeline('trending');
INSERT INTO streamrec.clicks (user_id, product_id, event_time) VALUES ('t8', 'p9', '2024-07-02 10:30:00');
SELECT count(*) FROM streamrec.trending_counts WHERE product_id = 'p9';
SELECT name, enabled FROM streamrec.pipelines ORDER BY name;
SELECT tgname, tgrelid::regclass FROM pg_trigger WHERE tgname LIKE 'streamrec_%' ORDER BY 1, 2::text;
DROP ROLE pipelines_outsider;
SELECT streamrec.disable_pipeline('similar_products'), streamrec.disable_pipeline('category_affinity');

DROP EXTENSION pg_streamrec;
