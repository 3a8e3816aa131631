-- attribution and ratings. No worker runs in this database: plain INSERTs fire the
-- triggers.
CREATE EXTENSION pg_streamrec;
\set SHOW_CONTEXT never

-- Options: defaults, validation with SQLSTATE and hint, sinks per output topic.
SELECT streamrec.enable_pipeline('attribution', '{"lookback": "0"}');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec.enable_pipeline('attribution', '{"top_k": 3}');
SELECT streamrec.enable_pipeline('ratings', '{"status_window": "soon"}');
SELECT streamrec.enable_pipeline('ratings', '{"enriched_output_topic": ""}');
SELECT streamrec.enable_pipeline('attribution', '{"output_brokers": "127.0.0.1:9", "output_topic": "attributed.checkouts"}');
SELECT streamrec.enable_pipeline('ratings', '{"output_brokers": "127.0.0.1:9", "output_topic": "UNHAPPY_PLATINUM_CUSTOMERS",
                                             "enriched_output_topic": "ratings-enriched", "watermark_delay": "0 seconds"}');
SELECT name, enabled, options, sinks FROM streamrec.pipelines ORDER BY name;
SELECT name, relation, topic, options FROM streamrec.sinks ORDER BY name;
SELECT tgname, tgrelid::regclass FROM pg_trigger WHERE tgname LIKE 'streamrec_%' AND NOT tgisinternal ORDER BY tgname, tgrelid::regclass::text;
SELECT indexdef FROM pg_indexes WHERE indexname = 'clicks_attribution_idx';

-- attribution: the earliest click of the user on the product in [checkout - 1 hour, checkout];
-- equal times: the smaller click_id; unknown user: NULL name; no click: NULL click.
INSERT INTO streamrec.users VALUES ('u1', 'Ann Lee'), ('u2', 'Bo Kim');
INSERT INTO streamrec.clicks (click_id, user_id, product_id, event_time) VALUES
    ('c10', 'u1', 'p1', '2024-06-28 11:59:59+00'),   -- 1 s too early for k1
    ('c12', 'u1', 'p1', '2024-06-28 12:30:00+00'),
    ('c11', 'u1', 'p1', '2024-06-28 12:30:00+00'),   -- same time, smaller id: wins
    ('c13', 'u1', 'p2', '2024-06-28 12:10:00+00'),   -- another product
    ('c14', 'u2', 'p1', '2024-06-28 12:10:00+00'),   -- another user
    ('c15', 'u1', 'p1', '2024-06-28 13:00:01+00');   -- after the checkout
INSERT INTO streamrec.checkouts VALUES
    ('k1', 'u1', 'p1', 'card', 10, '2024-06-28 13:00:00+00'),
    ('k2', 'u9', 'p1', 'card', 20, '2024-06-28 13:00:00+00'),
    ('k3', 'u2', 'p3', 'paypal', 30, '2024-06-28 13:00:00+00');
SELECT checkout_id, user_id, user_name, product_id, checkout_time, click_id, click_time
FROM streamrec.attributed_checkouts ORDER BY checkout_id;

-- Clicks arriving after their checkout correct it: an earlier one wins, a later one does not;
-- exactly lookback before the checkout still counts.
INSERT INTO streamrec.clicks (click_id, user_id, product_id, event_time) VALUES
    ('c20', 'u1', 'p1', '2024-06-28 12:00:00+00'),
    ('c21', 'u2', 'p3', '2024-06-28 12:59:00+00'),
    ('c22', 'u2', 'p3', '2024-06-28 12:40:00+00');
INSERT INTO streamrec.clicks (click_id, user_id, product_id, event_time) VALUES ('c23', 'u2', 'p3', '2024-06-28 12:50:00+00');
SELECT checkout_id, click_id, click_time FROM streamrec.attributed_checkouts ORDER BY checkout_id;
-- Every first attribution and every correction, for the sink.
SELECT checkout_id, click_id, user_name FROM streamrec.attribution_log ORDER BY id;
SELECT sum(rows) FROM streamrec.sink_outbox WHERE sink = 'pipeline_attribution';

-- Arrival order does not matter: the same 300 events in 5 shuffled orders, one event per
-- statement, give the same table each time.
CREATE TEMP TABLE events AS
SELECT g, CASE WHEN g % 3 = 0 THEN 'checkout' ELSE 'click' END AS kind,
       'u' || (g % 7) AS user_id, 'p' || (g % 5) AS product_id,
       '2024-06-28 13:00:00+00'::timestamptz + ((g * 7919) % 7200) * interval '1 second' AS t
FROM generate_series(1, 300) g;
CREATE TEMP TABLE digests (run int, digest text);
DO $$
DECLARE
    e record;
BEGIN
    FOR run IN 1..5 LOOP
        DELETE FROM streamrec.attributed_checkouts;
        DELETE FROM streamrec.checkouts;
        DELETE FROM streamrec.clicks;
        PERFORM setseed(run / 10.0);
        FOR e IN SELECT * FROM events ORDER BY random() LOOP
            IF e.kind = 'checkout' THEN
                INSERT INTO streamrec.checkouts VALUES ('k' || e.g, e.user_id, e.product_id, 'card', 1, e.t);
            ELSE
                INSERT INTO streamrec.clicks (click_id, user_id, product_id, event_time)
                VALUES ('c' || e.g, e.user_id, e.product_id, e.t);
            END IF;
        END LOOP;
        INSERT INTO digests
        SELECT run, md5(string_agg(format('%s,%s,%s', checkout_id, click_id, click_time), ';' ORDER BY checkout_id))
        FROM streamrec.attributed_checkouts;
    END LOOP;
END $$;
SELECT count(DISTINCT digest) AS distinct_results, count(*) AS runs FROM digests;
-- ... and it is the table the plain query over all events gives.
SELECT count(*) AS attributed, count(click_id) AS with_click,
       bool_and(a.click_id IS NOT DISTINCT FROM (
           SELECT c.click_id FROM streamrec.clicks c
           WHERE c.user_id = a.user_id AND c.product_id = a.product_id
             AND c.event_time BETWEEN a.checkout_time - interval '1 hour' AND a.checkout_time
           ORDER BY c.event_time, c.click_id LIMIT 1)) AS as_the_query
FROM streamrec.attributed_checkouts a;

-- ratings: test traffic apart; live ratings of known customers enriched; unhappy platinum;
-- product averages into inventory.rating; windows per club status (1 min) and per customer
-- (15 min) with the stars.
INSERT INTO streamrec.inventory (product_id, category, stock, rating) VALUES ('p1', 'toys', 3, 4.9), ('p2', 'toys', 3, 1.0);
INSERT INTO streamrec.customers VALUES
    ('1', 'Ann', 'Lee', 'ann@example.com', 'platinum'),
    ('2', 'Bo', 'Kim', 'bo@example.com', 'gold'),
    ('3', 'Cy', NULL, NULL, NULL);
INSERT INTO streamrec.ratings VALUES
    ('r1', '1', 'p1', 1, 'iOS', 'awful', '2024-06-28 13:00:05+00'),
    ('r2', '1', 'p1', 4, 'web-TEST', 'test', '2024-06-28 13:00:06+00'),
    ('r3', '2', 'p1', 5, 'android', 'great', '2024-06-28 13:00:07+00'),
    ('r4', '9', 'p2', 2, 'web', 'who am i', '2024-06-28 13:00:08+00'),
    ('r5', '1', NULL, 2, NULL, 'meh', '2024-06-28 13:01:08+00'),
    ('r6', '3', 'p2', 4, 'ios-test', 'test', '2024-06-28 13:01:09+00'),
    ('r7', '3', 'p2', 3, 'web', 'ok', '2024-06-28 13:01:10+00');
SELECT rating_id, channel FROM streamrec.test_ratings ORDER BY rating_id;
SELECT rating_id, customer_id, product_id, stars, full_name, club_status, email FROM streamrec.ratings_enriched ORDER BY rating_id;
SELECT rating_id, full_name, club_status, email, stars, message FROM streamrec.unhappy_customers ORDER BY rating_id;
SELECT window_start, window_end, club_status, ratings FROM streamrec.ratings_by_club_status ORDER BY 1, 3;
SELECT window_start, window_end, customer_id, full_name, ratings, stars FROM streamrec.ratings_per_customer ORDER BY 1, 3;
SELECT product_id, ratings, stars FROM streamrec.product_ratings ORDER BY 1;
SELECT product_id, rating FROM streamrec.inventory ORDER BY 1;
SELECT watermark, max_event_time FROM streamrec.pipeline_clock WHERE pipeline = 'ratings';
-- The sinks' outbox got the unhappy and the enriched rows.
SELECT sink, sum(rows) FROM streamrec.sink_outbox WHERE sink LIKE 'pipeline_ratings%' GROUP BY 1 ORDER BY 1;

-- A customer UPDATE shows in the next enrichment (as a CDC source would bring it); old rows keep theirs.
UPDATE streamrec.customers SET club_status = 'bronze', email = 'ann@new.example.com' WHERE customer_id = '1';
INSERT INTO streamrec.ratings VALUES ('r8', '1', 'p1', 1, 'web', 'still bad', '2024-06-28 13:01:20+00');
SELECT rating_id, club_status, email FROM streamrec.ratings_enriched WHERE customer_id = '1' ORDER BY rating_id;
SELECT count(*) FROM streamrec.unhappy_customers WHERE rating_id = 'r8';

-- Late: 13:00:30 is behind the closed 13:00 minute (watermark 13:01:20): left out of it and
-- counted, still in the open 15-minute window, still enriched and averaged.
INSERT INTO streamrec.ratings VALUES ('r9', '2', 'p2', 5, 'web', 'late', '2024-06-28 13:00:30+00');
SELECT window_start, club_status, ratings FROM streamrec.ratings_by_club_status ORDER BY 1, 2;
SELECT customer_id, ratings, stars FROM streamrec.ratings_per_customer WHERE customer_id = '2';
SELECT product_id, rating FROM streamrec.inventory WHERE product_id = 'p2';
SELECT name, events, outputs, skipped, late, last_error FROM streamrec.pipelines ORDER BY name;

-- Idle timeout: the tick closes the newest minute once ratings stop.
UPDATE streamrec.pipeline_clock SET last_arrival = now() - interval '1 hour' WHERE pipeline = 'ratings';
SELECT streamrec._close_idle_rating_windows();
SELECT watermark FROM streamrec.pipeline_clock WHERE pipeline = 'ratings';
SELECT streamrec._close_idle_rating_windows();

-- Disabling removes triggers, sinks and the lookback index; results stay.
SELECT streamrec.disable_pipeline('attribution');
SELECT streamrec.disable_pipeline('ratings');
SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'streamrec_%' AND NOT tgisinternal;
SELECT count(*) FROM pg_indexes WHERE indexname = 'clicks_attribution_idx';
SELECT count(*) FROM streamrec.sinks;
INSERT INTO streamrec.checkouts VALUES ('after-disable', 'u1', 'p1', 'card', 1, '2024-06-28 14:00:00+00');
SELECT count(*) FROM streamrec.attributed_checkouts WHERE checkout_id = 'after-disable';
-- Re-enabling ratings rebuilds the per-product sums from the stored live ratings.
DELETE FROM streamrec.product_ratings;
SELECT streamrec.enable_pipeline('ratings');
SELECT product_id, ratings, stars FROM streamrec.product_ratings ORDER BY 1;
DROP EXTENSION pg_streamrec;
