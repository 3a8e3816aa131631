-- ---------------------------------------------------------------------------------------------
-- item_transactions: validated stock changes applied to inventory.stock in input order per item,
-- stock queries, per-item 1-minute summaries and alerts. One result row per transaction; alerts
-- are written once, when a window closes (the watermark, max(ts) - watermark_delay, passes its
-- end, or no transaction arrived for idle_timeout), so an alert is final and never retracted.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.transaction_results (
    transaction_id  bigint,
    item_id         text NOT NULL,
    quantity        int NOT NULL,
    success         boolean NOT NULL,
    stock_after     int,                  -- NULL: the item is unknown (and stays so)
    processed_at    timestamptz NOT NULL DEFAULT now(),
    ts              timestamptz NOT NULL  -- the transaction's event time: its summary window
);
-- Results grow roughly in event-time order: a BRIN index serves the aggregate of a closing
-- window and retention almost free.
CREATE INDEX transaction_results_ts_idx ON streamrec.transaction_results USING brin (ts)
    WITH (autosummarize = on);
CREATE TABLE streamrec.query_results (
    query_id     bigint,
    item_id      text NOT NULL,
    stock        int,                     -- NULL: unknown item
    answered_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX query_results_answered_idx ON streamrec.query_results USING brin (answered_at)
    WITH (autosummarize = on);
CREATE TABLE streamrec.transaction_summaries (
    item_id       text NOT NULL,
    window_start  timestamptz NOT NULL,
    succeeded     bigint NOT NULL,
    failed        bigint NOT NULL,
    volume        bigint NOT NULL,        -- sum of |quantity| of the successful transactions
    PRIMARY KEY (window_start, item_id)   -- window first: closing and retention read by window
);
CREATE TABLE streamrec.transaction_alerts (
    item_id       text NOT NULL,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    succeeded     bigint NOT NULL,
    failed        bigint NOT NULL,
    volume        bigint NOT NULL,
    alerted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, item_id)
);
GRANT SELECT ON streamrec.transaction_results, streamrec.query_results, streamrec.transaction_summaries,
                streamrec.transaction_alerts TO PUBLIC;

-- work_mem: closing a window aggregates its results in memory (about 230 bytes per item with
-- transactions in the window); beyond it the aggregate spills to disk.
CREATE FUNCTION streamrec._item_transactions_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_item_transactions_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET work_mem = '128MB' SET jit = off;
CREATE FUNCTION streamrec._stock_queries_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_stock_queries_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
-- Closes the transaction windows that saw no transaction for idle_timeout (alerts included);
-- returns how many windows it closed.
CREATE FUNCTION streamrec._close_idle_transaction_windows() RETURNS bigint
    AS 'MODULE_PATHNAME', 'streamrec_close_idle_transaction_windows' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET work_mem = '128MB' SET jit = off;
REVOKE ALL ON FUNCTION streamrec._item_transactions_trigger(), streamrec._stock_queries_trigger(),
                       streamrec._close_idle_transaction_windows() FROM PUBLIC;

-- Its share of _pipeline_tick: retention first (summaries and alerts on the stream's clock, the
-- newest window; answers on the wall clock, their own), then idle windows. In that order the
-- tick never holds a row a batch waits for while it waits for the clock a batch holds.
CREATE FUNCTION streamrec._item_transactions_tick(options jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    retention constant interval := (options ->> 'retention')::interval;
BEGIN
    PERFORM streamrec._delete_before('streamrec.transaction_summaries', 'window_start',
        ((SELECT max(window_start) FROM streamrec.transaction_summaries WHERE window_start <= streamrec._clock_limit())
         - retention)::text);
    PERFORM streamrec._delete_before('streamrec.transaction_alerts', 'window_start',
        ((SELECT max(window_start) FROM streamrec.transaction_alerts WHERE window_start <= streamrec._clock_limit())
         - retention)::text);
    -- Results on the stream's clock too, and each kept until its window is closed whatever the
    -- retention (the window's summary is aggregated from its results when it closes). The BRIN
    -- index is brought up to date first: a page range it has not summarized yet is read whole
    -- by every scan, and autovacuum may take a minute to get to it.
    PERFORM pg_catalog.brin_summarize_new_values('streamrec.transaction_results_ts_idx'::regclass);
    PERFORM streamrec._delete_before('streamrec.transaction_results', 'ts',
        (SELECT (least(k.watermark, streamrec._clock_limit()) - greatest(retention, (options ->> 'window')::interval))::text
         FROM streamrec.pipeline_clock k WHERE k.pipeline = 'item_transactions'));
    PERFORM pg_catalog.brin_summarize_new_values('streamrec.query_results_answered_idx'::regclass);
    PERFORM streamrec._delete_before('streamrec.query_results', 'answered_at', (now() - retention)::text);
    PERFORM streamrec._close_idle_transaction_windows();
END $$;
REVOKE ALL ON FUNCTION streamrec._item_transactions_tick(jsonb) FROM PUBLIC;

INSERT INTO streamrec.pipeline_kinds (name, list_order, defaults, triggers, outputs, tick) VALUES (
    'item_transactions', 6,
    '{"window": "1 minute", "watermark_delay": "1 second", "idle_timeout": "5 seconds", "retention": "1 day",
      "alert_failure_ratio": 0.5, "alert_min_transactions": 10, "query_output_topic": null, "alert_output_topic": null}',
    '[{"trigger": "streamrec_item_transactions", "table": "streamrec.item_transactions",
       "function": "streamrec._item_transactions_trigger"},
      {"trigger": "streamrec_stock_queries", "table": "streamrec.stock_queries", "function": "streamrec._stock_queries_trigger"}]',
    '[{"topic_option": "output_topic", "sink": "pipeline_item_transactions", "table": "streamrec.transaction_results",
       "sink_options": {"key": "item_id", "columns": ["transaction_id", "item_id", "quantity", "success", "stock_after"]}},
      {"topic_option": "query_output_topic", "sink": "pipeline_item_transactions_queries", "table": "streamrec.query_results",
       "sink_options": {"key": "query_id", "columns": ["query_id", "item_id", "stock"]}},
      {"topic_option": "alert_output_topic", "sink": "pipeline_item_transactions_alerts", "table": "streamrec.transaction_alerts",
       "sink_options": {"key": "item_id", "columns": ["item_id", "window_start", "window_end", "succeeded", "failed", "volume"]}}]',
    'streamrec._item_transactions_tick');
