-- ---------------------------------------------------------------------------------------------
-- ratings: a C++ trigger on ratings keeps test traffic apart, enriches live ratings from customers
-- at trigger time, reports unhappy platinum customers, keeps per-product sums behind
-- inventory.rating, and counts ratings in event-time windows (a window is final once its
-- window_end <= the 'ratings' watermark in pipeline_clock).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.test_ratings (
    rating_id    text,
    user_id      text NOT NULL,
    product_id   text,
    stars        int NOT NULL,
    channel      text,
    message      text,
    rating_time  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX test_ratings_received_idx ON streamrec.test_ratings USING brin (received_at) WITH (autosummarize = on);
CREATE TABLE streamrec.ratings_enriched (
    rating_id    text,
    customer_id  text NOT NULL,
    product_id   text,
    stars        int NOT NULL,
    channel      text,
    message      text,
    rating_time  timestamptz NOT NULL,
    full_name    text,
    club_status  text,
    email        text,
    enriched_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ratings_enriched_customer_idx ON streamrec.ratings_enriched (customer_id, rating_time);
CREATE INDEX ratings_enriched_enriched_idx ON streamrec.ratings_enriched USING brin (enriched_at) WITH (autosummarize = on);
CREATE TABLE streamrec.unhappy_customers (
    rating_id    text,
    customer_id  text NOT NULL,
    full_name    text,
    club_status  text,
    email        text,
    stars        int NOT NULL,
    message      text,
    channel      text,
    rating_time  timestamptz NOT NULL,
    detected_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unhappy_customers_detected_idx ON streamrec.unhappy_customers USING brin (detected_at) WITH (autosummarize = on);
CREATE TABLE streamrec.ratings_by_club_status (
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    club_status   text NOT NULL,          -- 'none' for a customer without one
    ratings       bigint NOT NULL,
    PRIMARY KEY (window_start, club_status)
);
CREATE TABLE streamrec.ratings_per_customer (
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    customer_id   text NOT NULL,
    full_name     text,
    ratings       bigint NOT NULL,
    stars         int[] NOT NULL,         -- in arrival order
    PRIMARY KEY (window_start, customer_id)
);
CREATE TABLE streamrec.product_ratings (
    product_id  text PRIMARY KEY,
    ratings     bigint NOT NULL,
    stars       bigint NOT NULL           -- inventory.rating = stars / ratings
);

-- Personal data (see the pipelines' header): read by streamrec_admin. The aggregates without a
-- person in them are read by all.
REVOKE ALL ON streamrec.test_ratings, streamrec.ratings_enriched, streamrec.unhappy_customers,
              streamrec.ratings_per_customer FROM PUBLIC;
GRANT SELECT ON streamrec.test_ratings, streamrec.ratings_enriched, streamrec.unhappy_customers,
                streamrec.ratings_per_customer TO streamrec_admin;
GRANT SELECT ON streamrec.ratings_by_club_status, streamrec.product_ratings TO PUBLIC;

-- The C++ trigger (SECURITY DEFINER, as every pipeline trigger).
CREATE FUNCTION streamrec._ratings_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_ratings_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
-- Closes the ratings windows after idle_timeout without ratings; returns 1 when it moved the
-- watermark.
CREATE FUNCTION streamrec._close_idle_rating_windows() RETURNS bigint
    AS 'MODULE_PATHNAME', 'streamrec_close_idle_rating_windows' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION streamrec._ratings_trigger(), streamrec._close_idle_rating_windows() FROM PUBLIC;

-- The trigger's state: product_ratings rebuilt from the live ratings already stored when it is
-- installed, so inventory.rating is the average of all of them.
CREATE FUNCTION streamrec._rebuild_product_ratings(install boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF install THEN
        LOCK TABLE streamrec.ratings IN SHARE MODE;
        -- (DELETE: TRUNCATE would wait for every open transaction that read the table, which
        -- every role may read, holding the ratings' writers meanwhile)
        DELETE FROM streamrec.product_ratings;
        INSERT INTO streamrec.product_ratings
        SELECT r.product_id, count(*), sum(r.stars) FROM streamrec.ratings r
        WHERE r.product_id IS NOT NULL AND NOT coalesce(r.channel ILIKE '%test%', false)
        GROUP BY r.product_id;
    END IF;
END $$;
REVOKE ALL ON FUNCTION streamrec._rebuild_product_ratings(boolean) FROM PUBLIC;

-- Its share of _pipeline_tick. Results on the wall clock (their own); windows on the stream's
-- clock (the newest window), so replayed history is not deleted at once. Then idle windows.
CREATE FUNCTION streamrec._ratings_tick(options jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    retention constant interval := (options ->> 'retention')::interval;
BEGIN
    -- (BRIN ranges summarized first, or every tick reads the unsummarized ones whole.)
    PERFORM pg_catalog.brin_summarize_new_values(i::regclass)
    FROM unnest(ARRAY['streamrec.test_ratings_received_idx', 'streamrec.ratings_enriched_enriched_idx',
                      'streamrec.unhappy_customers_detected_idx']) i;
    PERFORM streamrec._delete_before('streamrec.test_ratings', 'received_at', (now() - retention)::text);
    PERFORM streamrec._delete_before('streamrec.ratings_enriched', 'enriched_at', (now() - retention)::text);
    PERFORM streamrec._delete_before('streamrec.unhappy_customers', 'detected_at', (now() - retention)::text);
    PERFORM streamrec._delete_before('streamrec.ratings_by_club_status', 'window_start',
        ((SELECT max(window_start) FROM streamrec.ratings_by_club_status WHERE window_start <= streamrec._clock_limit())
         - retention)::text);
    PERFORM streamrec._delete_before('streamrec.ratings_per_customer', 'window_start',
        ((SELECT max(window_start) FROM streamrec.ratings_per_customer WHERE window_start <= streamrec._clock_limit())
         - retention)::text);
    PERFORM streamrec._close_idle_rating_windows();
END $$;
REVOKE ALL ON FUNCTION streamrec._ratings_tick(jsonb) FROM PUBLIC;

INSERT INTO streamrec.pipeline_kinds (name, list_order, defaults, triggers, outputs, tick) VALUES (
    'ratings', 5,
    '{"status_window": "1 minute", "customer_window": "15 minutes", "watermark_delay": "1 second",
      "idle_timeout": "5 seconds", "retention": "1 day", "enriched_output_topic": null}',
    '[{"trigger": "streamrec_ratings", "table": "streamrec.ratings", "function": "streamrec._ratings_trigger",
       "state": "streamrec._rebuild_product_ratings"}]',
    '[{"topic_option": "output_topic", "sink": "pipeline_ratings_unhappy", "table": "streamrec.unhappy_customers",
       "sink_options": {"key": "full_name", "columns": ["full_name", "club_status", "email", "stars", "message"]}},
      {"topic_option": "enriched_output_topic", "sink": "pipeline_ratings_enriched", "table": "streamrec.ratings_enriched",
       "sink_options": {"key": "customer_id",
                        "columns": ["rating_id", "message", "stars", "channel", "customer_id", "full_name", "club_status", "email"]}}]',
    'streamrec._ratings_tick');
