-- pg_streamrec 0.1 -> 0.2. The pipelines are described once, in the registry table
-- streamrec.pipeline_kinds, and everything that handled each pipeline by name (the catalog's
-- check, the option defaults, enable_pipeline's checks, the triggers, the sinks and the periodic
-- tick) reads it instead; each pipeline's periodic work and trigger state get a function of
-- their own. Rows, offsets, triggers and sinks stay as they are. The result is the schema a fresh
-- 0.2 install creates (tests/integration/test_upgrade.py compares the two).
\echo Use "ALTER EXTENSION pg_streamrec UPDATE TO '0.2'" to load this file. \quit

-- The registry of pipeline kinds: one row per pipeline this version offers, written by the
-- pipeline's own file and read by everything that handles pipelines in general (the option
-- checks, enable_pipeline and disable_pipeline, the periodic tick, the hints that list them).
--   list_order  where hints list it
--   defaults    each of its own options with its default (the output_* options are everyone's)
--   triggers    its triggers in install order, each {"trigger", "table", "function"} and
--               optionally "state": a function (install boolean) keeping state that comes and
--               goes with the trigger, called with true before the trigger is created and with
--               false after it is dropped
--   outputs     its sinks in creation order, each {"topic_option", "sink", "table",
--               "sink_options"}: the sink exists while the option names a topic, and
--               output_options are laid over its sink_options
--   tick        its share of _pipeline_tick: a function (options jsonb), or NULL
CREATE TABLE streamrec.pipeline_kinds (
    name        text PRIMARY KEY,
    list_order  int NOT NULL UNIQUE,
    defaults    jsonb NOT NULL CHECK (jsonb_typeof(defaults) = 'object'),
    triggers    jsonb NOT NULL CHECK (jsonb_typeof(triggers) = 'array'),
    outputs     jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(outputs) = 'array'),
    tick        text
);
COMMENT ON TABLE streamrec.pipeline_kinds IS 'The pipelines this version offers: their options, triggers, sinks and periodic work';
GRANT SELECT ON streamrec.pipeline_kinds TO PUBLIC;

-- The pipelines, as hints list them.
CREATE FUNCTION streamrec._pipeline_names() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_agg(k.name, ', ' ORDER BY k.list_order) FROM streamrec.pipeline_kinds k
$$;

-- Each pipeline's share of the periodic tick and the state kept beside its triggers.
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

-- Its share of _pipeline_tick: drops the windows older than retention on the stream's clock
-- (the newest window).
CREATE FUNCTION streamrec._trending_tick(options jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM streamrec._delete_before('streamrec.trending_counts', 'window_start',
        ((SELECT max(window_start) FROM streamrec.trending_counts WHERE window_start <= streamrec._clock_limit())
         - (options ->> 'retention')::interval)::text);
END $$;
REVOKE ALL ON FUNCTION streamrec._trending_tick(jsonb) FROM PUBLIC;

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

-- (0.1's took the retention alone)
DROP FUNCTION streamrec._item_transactions_tick(interval);
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

-- The registry's rows, as each pipeline's install file writes them.
INSERT INTO streamrec.pipeline_kinds (name, list_order, defaults, triggers, outputs, tick) VALUES (
    'similar_products', 1,
    '{"top_k": 6, "min_rating": null, "repeats": "demote", "repeat_window": "10 minutes", "emit": "click",
      "watermark_delay": "1 second", "idle_timeout": "5 seconds", "retention": "1 day"}',
    '[{"trigger": "streamrec_similar_products", "table": "streamrec.clicks", "function": "streamrec._similar_products_trigger"},
      {"trigger": "streamrec_user_purchases", "table": "streamrec.purchases", "function": "streamrec._user_purchases_trigger",
       "state": "streamrec._rebuild_user_purchases"}]',
    '[{"topic_option": "output_topic", "sink": "pipeline_similar_products", "table": "streamrec.recommendation_log",
       "sink_options": {"key": "user_id", "columns": ["user_id", "product_ids", "window_end"]}}]',
    'streamrec._similar_products_tick');

INSERT INTO streamrec.pipeline_kinds (name, list_order, defaults, triggers, tick) VALUES (
    'trending', 2,
    '{"window": "1 hour", "top_n": 10, "retention": "2 days"}',
    '[{"trigger": "streamrec_trending", "table": "streamrec.clicks", "function": "streamrec._trending_trigger"}]',
    'streamrec._trending_tick');

INSERT INTO streamrec.pipeline_kinds (name, list_order, defaults, triggers, tick) VALUES (
    'category_affinity', 3,
    '{"lookback": "24 hours", "limit": 10, "top_categories": 3}',
    '[{"trigger": "streamrec_category_affinity", "table": "streamrec.clicks", "function": "streamrec._category_affinity_trigger"}]',
    'streamrec._category_affinity_tick');

INSERT INTO streamrec.pipeline_kinds (name, list_order, defaults, triggers, outputs, tick) VALUES (
    'attribution', 4,
    '{"lookback": "1 hour", "retention": "1 day"}',
    '[{"trigger": "streamrec_attribution_checkouts", "table": "streamrec.checkouts",
       "function": "streamrec._attribution_checkouts_trigger"},
      {"trigger": "streamrec_attribution_clicks", "table": "streamrec.clicks", "function": "streamrec._attribution_clicks_trigger",
       "state": "streamrec._attribution_lookback_index"}]',
    '[{"topic_option": "output_topic", "sink": "pipeline_attribution", "table": "streamrec.attribution_log",
       "sink_options": {"key": "checkout_id",
                        "columns": ["checkout_id", "user_id", "user_name", "product_id", "checkout_time", "click_id", "click_time"]}}]',
    'streamrec._attribution_tick');

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

-- A catalog row names a registered pipeline (0.1 listed the names in a check).
ALTER TABLE streamrec.pipeline_catalog
    DROP CONSTRAINT pipeline_catalog_name_check,
    ADD CONSTRAINT pipeline_catalog_name_fkey FOREIGN KEY (name) REFERENCES streamrec.pipeline_kinds (name);

-- The functions that handled each pipeline by name read the registry now.
-- The effective options of a pipeline: the defaults overlaid with the caller's options, each
-- checked. Raises invalid_parameter_value with a hint for anything it cannot use.
CREATE OR REPLACE FUNCTION streamrec._pipeline_options(pipeline text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    defaults jsonb;
    merged jsonb;
    key text;
    value jsonb;
    choices text[];
    width_us int8;
BEGIN
    defaults := (SELECT k.defaults FROM streamrec.pipeline_kinds k WHERE k.name = pipeline);
    IF defaults IS NULL THEN
        RAISE EXCEPTION 'pipeline "%" is not available in this version', pipeline
            USING ERRCODE = 'feature_not_supported',
                  HINT = format('Available pipelines: %s.', streamrec._pipeline_names());
    END IF;
    defaults := defaults || '{"output_topic": null, "output_format": "csv", "output_brokers": null, "output_options": {}}';
    IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
        PERFORM streamrec._bad_argument('pipeline options must be a JSON object', 'Pass e.g. ''{"top_k": 6}''::jsonb.');
    END IF;
    FOR key IN SELECT jsonb_object_keys(options) LOOP
        IF NOT defaults ? key THEN
            PERFORM streamrec._bad_argument(format('unknown option "%s" for pipeline %s', key, pipeline),
                format('Options of %s: %s.', pipeline, (SELECT string_agg(k, ', ' ORDER BY k) FROM jsonb_object_keys(defaults) k)));
        END IF;
    END LOOP;
    merged := defaults || options;
    FOR key, value IN SELECT * FROM jsonb_each(merged) LOOP
        CONTINUE WHEN jsonb_typeof(value) = 'null' AND key IN ('min_rating', 'output_topic', 'output_brokers',
                                                               'query_output_topic', 'alert_output_topic',
                                                               'enriched_output_topic');
        IF key IN ('top_k', 'top_n', 'limit', 'top_categories') THEN
            IF jsonb_typeof(value) <> 'number' OR value::numeric <> trunc(value::numeric)
               OR value::numeric < 1 OR value::numeric > 1000 THEN
                PERFORM streamrec._bad_argument(format('option "%s" must be an integer from 1 to 1000, not %s', key, value),
                                                format('e.g. ''{"%s": 6}''', key));
            END IF;
        ELSIF key = 'alert_min_transactions' THEN
            IF jsonb_typeof(value) <> 'number' OR value::numeric <> trunc(value::numeric) OR value::numeric < 1
               OR value::numeric > 2147483647 THEN
                PERFORM streamrec._bad_argument(format('option "alert_min_transactions" must be a positive integer, not %s', value),
                                                'e.g. ''{"alert_min_transactions": 10}''');
            END IF;
        ELSIF key = 'alert_failure_ratio' THEN
            IF jsonb_typeof(value) <> 'number' OR value::numeric < 0 OR value::numeric >= 1 THEN
                PERFORM streamrec._bad_argument(format('option "alert_failure_ratio" must be a number from 0 up to 1 (excluded), not %s', value),
                                                'A window alerts when failed / all transactions is above it, e.g. ''{"alert_failure_ratio": 0.5}''.');
            END IF;
        ELSIF key = 'min_rating' THEN
            IF jsonb_typeof(value) <> 'number' THEN
                PERFORM streamrec._bad_argument(format('option "min_rating" must be a number, not %s', value),
                                                'e.g. ''{"min_rating": 3.5}''; null keeps unrated products too.');
            END IF;
        ELSIF key IN ('repeats', 'output_format') THEN
            choices := CASE key WHEN 'repeats' THEN ARRAY['demote', 'exclude', 'allow'] ELSE ARRAY['csv', 'json', 'avro'] END;
            IF jsonb_typeof(value) <> 'string' OR NOT (value #>> '{}') = ANY (choices) THEN
                PERFORM streamrec._bad_argument(
                    format('option "%s" must be %s, not %s', key, array_to_string(choices, ', '), value),
                    CASE key WHEN 'repeats' THEN 'demote puts recently shown products last, exclude drops them, allow ignores them.'
                             ELSE 'csv matches the seed''s output byte for byte.' END);
            END IF;
        ELSIF key IN ('repeat_window', 'watermark_delay', 'idle_timeout', 'retention', 'window', 'lookback', 'emit',
                     'status_window', 'customer_window') THEN
            CONTINUE WHEN key = 'emit' AND value = '"click"';
            -- Checked by its width in microseconds, as the pipelines use it (a year counts as
            -- 365.25 days there, so '-1 year 365 days 6 hours' compares positive but is 0 wide),
            -- from 1 microsecond (0 for a delay or repeat window) up to 1000 years.
            BEGIN
                IF jsonb_typeof(value) <> 'string' THEN
                    RAISE invalid_parameter_value;
                END IF;
                width_us := (extract(epoch FROM (value #>> '{}')::interval) * 1000000)::int8;
                IF width_us < (CASE WHEN key IN ('watermark_delay', 'repeat_window') THEN 0 ELSE 1 END)
                   OR width_us > 31557600000000000 THEN
                    RAISE invalid_parameter_value;
                END IF;
            EXCEPTION WHEN invalid_parameter_value OR invalid_datetime_format OR datetime_field_overflow
                           OR interval_field_overflow OR numeric_value_out_of_range THEN
                PERFORM streamrec._bad_argument(
                    format('option "%s" must be a positive interval%s, not %s', key,
                           CASE WHEN key = 'emit' THEN ' or "click"' ELSE '' END, value),
                    format('e.g. ''{"%s": "%s"}''; its width counts a year as 365.25 days and a month as 30 days, and must be %s up to 1000 years.',
                           key, CASE WHEN key = 'emit' THEN '5 seconds' ELSE defaults ->> key END,
                           CASE WHEN key IN ('watermark_delay', 'repeat_window') THEN 'from 0' ELSE 'from 1 microsecond' END));
            END;
        ELSIF key IN ('output_topic', 'output_brokers', 'query_output_topic', 'alert_output_topic', 'enriched_output_topic') THEN
            IF jsonb_typeof(value) <> 'string' OR value #>> '{}' = '' THEN
                PERFORM streamrec._bad_argument(format('option "%s" must be a non-empty string, not %s', key, value),
                                                'e.g. ''{"output_topic": "flink.recommended.products"}''');
            END IF;
        ELSIF key = 'output_options' THEN
            IF jsonb_typeof(value) <> 'object' THEN
                PERFORM streamrec._bad_argument('option "output_options" must be a JSON object of sink options',
                                                'e.g. ''{"output_options": {"kafka": {"compression.type": "lz4"}}}''');
            END IF;
            IF value ? 'kafka' THEN
                PERFORM streamrec._check_kafka_properties(value -> 'kafka');
            END IF;
        END IF;
    END LOOP;
    RETURN merged;
END $$;

-- (its result gains the state function: a new row type)
DROP FUNCTION streamrec._pipeline_triggers(text);
-- What a pipeline's triggers are: (trigger name, table, function, state function), in the
-- order they are installed.
CREATE FUNCTION streamrec._pipeline_triggers(pipeline text)
RETURNS TABLE (trigger_name name, rel regclass, function_name text, state_function text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (t ->> 'trigger')::name, (t ->> 'table')::regclass, t ->> 'function', t ->> 'state'
    FROM streamrec.pipeline_kinds k, jsonb_array_elements(k.triggers) WITH ORDINALITY AS e(t, n)
    WHERE k.name = pipeline
    ORDER BY e.n
$$;

-- What a pipeline's sinks are: the option naming the topic, the sink's name, the relation it
-- ships and the sink options (output_options are laid over them), in creation order.
CREATE OR REPLACE FUNCTION streamrec._pipeline_outputs(pipeline text)
RETURNS TABLE (topic_option text, sink_name text, rel regclass, sink_options jsonb)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT o ->> 'topic_option', o ->> 'sink', (o ->> 'table')::regclass, o -> 'sink_options'
    FROM streamrec.pipeline_kinds k, jsonb_array_elements(k.outputs) WITH ORDINALITY AS e(o, n)
    WHERE k.name = pipeline
    ORDER BY e.n
$$;

-- Makes a pipeline's triggers match the catalog: installed while it is enabled, gone when not,
-- each with the state its registry entry keeps beside it. SECURITY DEFINER: creating triggers
-- on the domain tables needs their owner; safe for any admin to call, since it only follows
-- the catalog and the registry (which only the extension writes).
CREATE OR REPLACE FUNCTION streamrec._sync_pipeline_triggers(pipeline text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    enabled boolean := coalesce((SELECT c.enabled FROM streamrec.pipeline_catalog c WHERE c.name = pipeline), false);
BEGIN
    FOR t IN SELECT * FROM streamrec._pipeline_triggers(pipeline) LOOP
        IF enabled AND NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = t.rel AND tgname = t.trigger_name) THEN
            IF t.state_function IS NOT NULL THEN
                EXECUTE format('SELECT %s(true)', t.state_function);
            END IF;
            EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS streamrec_new_rows '
                           'FOR EACH STATEMENT EXECUTE FUNCTION %s()', t.trigger_name, t.rel, t.function_name);
        ELSIF NOT enabled THEN
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', t.trigger_name, t.rel);
            IF t.state_function IS NOT NULL THEN
                EXECUTE format('SELECT %s(false)', t.state_function);
            END IF;
        END IF;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION streamrec._sync_pipeline_triggers(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._sync_pipeline_triggers(text) TO streamrec_admin;

-- Turns a pipeline on (or changes its options): installs its triggers and, with output_topic,
-- its sink. A trigger installed afresh builds its state first (see the registry).
CREATE OR REPLACE FUNCTION streamrec.enable_pipeline(name text, options jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    effective jsonb;
    previous streamrec.pipeline_catalog;
    t record;
    sink_names text[];
BEGIN
    PERFORM streamrec._require_admin();
    IF name IS NULL THEN
        PERFORM streamrec._bad_argument('pipeline name must not be NULL',
                                        format('Pipelines: %s.', streamrec._pipeline_names()));
    END IF;
    IF NOT EXISTS (SELECT FROM streamrec.pipeline_kinds k WHERE k.name = enable_pipeline.name) THEN
        PERFORM streamrec._bad_argument(format('unknown pipeline "%s"', name),
                                        format('Pipelines: %s.', streamrec._pipeline_names()));
    END IF;
    effective := streamrec._pipeline_options(name, options);
    -- One enable at a time per pipeline; a running batch finishes with the old options first.
    PERFORM streamrec._lock_pipeline(name);
    -- (options are not readable by admins: another role's may hold credentials)
    SELECT c.name, c.enabled, NULL, c.sinks, c.enabled_at, c.owner INTO previous
    FROM streamrec.pipeline_catalog c WHERE c.name = enable_pipeline.name FOR UPDATE;
    IF FOUND THEN
        PERFORM streamrec._check_pipeline_owner(previous);
    END IF;
    -- (a disabled pipeline's sinks, if its owner left any, are that role's to drop)
    PERFORM streamrec.drop_sink(s) FROM unnest(previous.sinks) s
    WHERE previous.enabled OR previous.owner = streamrec._current_role();
    FOR t IN SELECT * FROM streamrec._pipeline_outputs(name) o WHERE effective ->> o.topic_option IS NOT NULL LOOP
        PERFORM streamrec.create_sink(t.sink_name, t.rel, effective ->> t.topic_option, effective ->> 'output_format',
                                      effective ->> 'output_brokers', t.sink_options || (effective -> 'output_options'));
        sink_names := sink_names || t.sink_name;
    END LOOP;
    INSERT INTO streamrec.pipeline_catalog AS c (name, enabled, options, sinks)
    VALUES (enable_pipeline.name, true, effective, sink_names)
    ON CONFLICT ON CONSTRAINT pipeline_catalog_pkey
    DO UPDATE SET enabled = true, options = effective, sinks = sink_names,  -- (excluded.options needs SELECT on it)
                  enabled_at = CASE WHEN c.enabled THEN c.enabled_at ELSE now() END;
    PERFORM streamrec._sync_pipeline_triggers(name);
END $$;

-- Periodic work, run by the launcher about once a second in its own transaction. Each enabled
-- pipeline's tick function (from the registry), the writers' clean-up and the retention of
-- input tables run in subtransactions of their own: one that fails (logged as a WARNING) stops
-- none of the others.
CREATE OR REPLACE FUNCTION streamrec._pipeline_tick() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT c.name, c.options, k.tick
             FROM streamrec.pipeline_catalog c JOIN streamrec.pipeline_kinds k ON k.name = c.name
             WHERE c.enabled AND k.tick IS NOT NULL ORDER BY c.name LOOP
      BEGIN
        EXECUTE format('SELECT %s($1)', p.tick) USING p.options;
      EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pg_streamrec: periodic work of pipeline % failed: %', p.name, SQLERRM;
      END;
    END LOOP;
    -- Writers whose source was dropped (skipping rows a batch holds: the tick may hold rows a
    -- batch waits for).
    BEGIN
    DELETE FROM streamrec.pipeline_writers
    WHERE ctid IN (SELECT w.ctid FROM streamrec.pipeline_writers w
                   WHERE w.writer <> '' AND NOT EXISTS (SELECT FROM streamrec.sources s WHERE s.name = w.writer)
                   FOR UPDATE SKIP LOCKED);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pg_streamrec: clean-up of pipeline writers failed: %', SQLERRM;
    END;
    PERFORM streamrec._retention_tick();
END $$;
REVOKE ALL ON FUNCTION streamrec._pipeline_tick() FROM PUBLIC;

-- Replaced by the per-pipeline functions above.
DROP FUNCTION streamrec._attribution_ratings_install(name, boolean);
DROP FUNCTION streamrec._attribution_ratings_tick(text, interval);
