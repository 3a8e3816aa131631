-- ---------------------------------------------------------------------------------------------
-- similar_products: on each page view, the best-rated in-stock products of the viewed product's
-- category (the user's own purchases first), as a list per user and a log of every emitted list
-- (the sink's relation), with per-user state.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.recommendations (
    user_id            text PRIMARY KEY,
    product_ids        text[] NOT NULL,
    viewed_product_id  text,
    category           text,
    window_end         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- The pipeline's keyed state for the user, kept next to the latest list so that a batch reads
    -- and writes one row per user: the products shown within repeat_window of the newest list
    -- (shown_products[i] in the list emitted at shown_at[i]), complete from shown_since on
    -- (NULL: not known; the pipeline reads recommendation_log instead and fills them in).
    shown_products     text[],
    shown_at           timestamptz[],
    shown_since        timestamptz
) WITH (fillfactor = 70);  -- room on each page for the next list of its users (HOT updates)
CREATE TABLE streamrec.recommendation_log (
    id                 bigserial PRIMARY KEY,
    user_id            text NOT NULL,
    product_ids        text[] NOT NULL,
    window_end         timestamptz NOT NULL,
    viewed_product_id  text,
    category           text,
    emitted_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recommendation_log_user_idx ON streamrec.recommendation_log (user_id, window_end);
-- Retention deletes by window_end: a BRIN index (rows arrive roughly in event-time order) costs
-- the per-view insert next to nothing, where a btree would be a third index to maintain.
CREATE INDEX recommendation_log_window_end_idx ON streamrec.recommendation_log USING brin (window_end);
CREATE TABLE streamrec.user_purchases (
    user_id             text NOT NULL,
    product_id          text NOT NULL,
    quantity            bigint NOT NULL,
    purchases           bigint NOT NULL,
    last_purchase_time  timestamptz NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
-- Page views waiting for their event-time window to close (emit = an interval): the user's
-- latest view per window.
CREATE TABLE streamrec.pending_views (
    user_id       text NOT NULL,
    window_start  timestamptz NOT NULL,
    product_id    text NOT NULL,
    event_time    timestamptz NOT NULL,
    PRIMARY KEY (user_id, window_start)
);
CREATE INDEX pending_views_window_idx ON streamrec.pending_views (window_start);

-- Personal data (see the pipelines' header): read by streamrec_admin.
REVOKE ALL ON streamrec.recommendations, streamrec.recommendation_log, streamrec.user_purchases,
              streamrec.pending_views FROM PUBLIC;
GRANT SELECT ON streamrec.recommendations, streamrec.recommendation_log, streamrec.user_purchases,
                streamrec.pending_views TO streamrec_admin;

-- Closes the windows of similar_products (emit = an interval) that saw no event for
-- idle_timeout; returns how many lists that emitted.
CREATE FUNCTION streamrec._close_idle_windows() RETURNS bigint
    AS 'MODULE_PATHNAME', 'streamrec_close_idle_windows' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION streamrec._close_idle_windows() FROM PUBLIC;

-- similar_products on demand: the ranking a page view of product_id by user_id would get now.
CREATE FUNCTION streamrec.recommend(user_id text, product_id text, k int DEFAULT 6) RETURNS text[]
    AS 'MODULE_PATHNAME', 'streamrec_recommend' LANGUAGE C STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
-- It ranks from the user's own purchases and recent lists: read like user_purchases.
REVOKE ALL ON FUNCTION streamrec.recommend(text, text, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec.recommend(text, text, int) TO streamrec_admin;

-- The purchases trigger's state: installing it afresh rebuilds user_purchases from the purchases
-- table, so history before enabling counts.
CREATE FUNCTION streamrec._rebuild_user_purchases(install boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF install THEN
        LOCK TABLE streamrec.purchases IN SHARE MODE;
        -- (DELETE: TRUNCATE would wait for every open transaction that read the table,
        -- holding the purchases' writers meanwhile)
        DELETE FROM streamrec.user_purchases;
        INSERT INTO streamrec.user_purchases
        SELECT p.user_id, p.product_id, sum(p.quantity), count(*), max(p.purchase_time)
        FROM streamrec.purchases p GROUP BY p.user_id, p.product_id;
    END IF;
END $$;
REVOKE ALL ON FUNCTION streamrec._rebuild_user_purchases(boolean) FROM PUBLIC;

-- Its share of _pipeline_tick: closes idle windows (emit = an interval), then drops the lists
-- older than retention. The clock is the newest list's window end (by id: one probe of the
-- primary key). BRIN ranges not summarized yet would be read whole by every tick: summarize
-- them first.
CREATE FUNCTION streamrec._similar_products_tick(options jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF options ->> 'emit' <> 'click' THEN
        PERFORM streamrec._close_idle_windows();
    END IF;
    PERFORM pg_catalog.brin_summarize_new_values('streamrec.recommendation_log_window_end_idx'::regclass);
    PERFORM streamrec._delete_before('streamrec.recommendation_log', 'window_end',
        ((SELECT window_end FROM streamrec.recommendation_log WHERE window_end <= streamrec._clock_limit()
          ORDER BY id DESC LIMIT 1)
         - (options ->> 'retention')::interval)::text);
END $$;
REVOKE ALL ON FUNCTION streamrec._similar_products_tick(jsonb) FROM PUBLIC;

INSERT INTO streamrec.pipeline_kinds (name, list_order, defaults, triggers, outputs, tick) VALUES (
    'similar_products', 1,
    '{"top_k": 6, "min_rating": null, "repeats": "demote", "repeat_window": "10 minutes", "emit": "click",
      "watermark_delay": "1 second", "idle_timeout": "5 seconds", "retention": "1 day"}',
    '[{"trigger": "streamrec_pipelines", "table": "streamrec.clicks", "function": "streamrec._pipeline_dispatch"},
      {"trigger": "streamrec_pipelines", "table": "streamrec.purchases", "function": "streamrec._pipeline_dispatch",
       "state": "streamrec._rebuild_user_purchases"}]',
    '[{"topic_option": "output_topic", "sink": "pipeline_similar_products", "table": "streamrec.recommendation_log",
       "sink_options": {"key": "user_id", "columns": ["user_id", "product_ids", "window_end"]}}]',
    'streamrec._similar_products_tick');
