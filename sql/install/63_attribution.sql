-- ---------------------------------------------------------------------------------------------
-- attribution: each checkout with its first click in the lookback, and every emitted attribution
-- (a first one, or a correction by a click that arrived late) for the sink. A C++ trigger on
-- checkouts attributes, enriches and upserts in key order; one on clicks re-examines the checkouts
-- a click may now attribute, so the result does not depend on arrival order. The lookback state is
-- the clicks table itself, through clicks_attribution_idx (user_id, product_id, event_time,
-- click_id), which the clicks trigger's state function builds when the pipeline is enabled and
-- drops when it is disabled, so the click stream pays for it only while attribution runs.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.attributed_checkouts (
    checkout_id    text PRIMARY KEY,
    user_id        text NOT NULL,
    user_name      text,                  -- NULL: user unknown when the checkout was processed
    product_id     text NOT NULL,
    checkout_time  timestamptz NOT NULL,
    click_id       text,                  -- NULL (with click_time): no click qualifies
    click_time     timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- A click re-examines the checkouts of its user and product in [click time, + lookback].
CREATE INDEX attributed_checkouts_lookup_idx ON streamrec.attributed_checkouts (user_id, product_id, checkout_time);
CREATE INDEX attributed_checkouts_time_idx ON streamrec.attributed_checkouts (checkout_time);
CREATE TABLE streamrec.attribution_log (
    id             bigserial PRIMARY KEY,
    checkout_id    text NOT NULL,
    user_id        text NOT NULL,
    user_name      text,
    product_id     text NOT NULL,
    checkout_time  timestamptz NOT NULL,
    click_id       text,
    click_time     timestamptz,
    emitted_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attribution_log_emitted_idx ON streamrec.attribution_log USING brin (emitted_at) WITH (autosummarize = on);

-- Personal data (see the pipelines' header): read by streamrec_admin.
REVOKE ALL ON streamrec.attributed_checkouts, streamrec.attribution_log FROM PUBLIC;
GRANT SELECT ON streamrec.attributed_checkouts, streamrec.attribution_log TO streamrec_admin;

-- The clicks trigger's state: the lookback index on clicks, there while the trigger is.
CREATE FUNCTION streamrec._attribution_lookback_index(install boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF install THEN
        CREATE INDEX IF NOT EXISTS clicks_attribution_idx ON streamrec.clicks (user_id, product_id, event_time, click_id)
            WHERE product_id IS NOT NULL;
    ELSE
        DROP INDEX IF EXISTS streamrec.clicks_attribution_idx;
    END IF;
END $$;
REVOKE ALL ON FUNCTION streamrec._attribution_lookback_index(boolean) FROM PUBLIC;

-- Its share of _pipeline_tick. The log on the wall clock (its own); attributions on the
-- stream's clock (the newest checkout), so replayed history is not deleted at once.
CREATE FUNCTION streamrec._attribution_tick(options jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    retention constant interval := (options ->> 'retention')::interval;
BEGIN
    -- (BRIN ranges summarized first, or every tick reads the unsummarized ones whole.)
    PERFORM pg_catalog.brin_summarize_new_values('streamrec.attribution_log_emitted_idx'::regclass);
    PERFORM streamrec._delete_before('streamrec.attribution_log', 'emitted_at', (now() - retention)::text);
    PERFORM streamrec._delete_before('streamrec.attributed_checkouts', 'checkout_time',
        ((SELECT max(checkout_time) FROM streamrec.attributed_checkouts WHERE checkout_time <= streamrec._clock_limit())
         - retention)::text);
END $$;
REVOKE ALL ON FUNCTION streamrec._attribution_tick(jsonb) FROM PUBLIC;

INSERT INTO streamrec.pipeline_kinds (name, list_order, defaults, triggers, outputs, tick) VALUES (
    'attribution', 4,
    '{"lookback": "1 hour", "retention": "1 day"}',
    '[{"trigger": "streamrec_pipelines", "table": "streamrec.checkouts", "function": "streamrec._pipeline_dispatch"},
      {"trigger": "streamrec_pipelines", "table": "streamrec.clicks", "function": "streamrec._pipeline_dispatch",
       "state": "streamrec._attribution_lookback_index"}]',
    '[{"topic_option": "output_topic", "sink": "pipeline_attribution", "table": "streamrec.attribution_log",
       "sink_options": {"key": "checkout_id",
                        "columns": ["checkout_id", "user_id", "user_name", "product_id", "checkout_time", "click_id", "click_time"]}}]',
    'streamrec._attribution_tick');
