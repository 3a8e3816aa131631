-- ---------------------------------------------------------------------------------------------
-- Pipelines. Each pipeline is a set of C++ statement-level AFTER INSERT triggers on domain tables,
-- installed by enable_pipeline and removed by disable_pipeline. The triggers read their options
-- from pipeline_catalog once per statement, so a change of options applies from the next batch on.
-- Pipeline state and results are written by the triggers (SECURITY DEFINER). Those that name a
-- user or customer (ids, names, e-mail, what each viewed, bought or rated) are personal data, read
-- like the input tables they come from: by streamrec_admin (and superusers), and by any reader
-- role the DBA grants SELECT. Aggregates without a person in them are read by all.
--
-- This file holds what all pipelines share; each pipeline's own file (the ones that follow)
-- creates its tables and functions and registers itself in streamrec.pipeline_kinds.
-- ---------------------------------------------------------------------------------------------
-- The registry of pipeline kinds: one row per pipeline this version offers, written by the
-- pipeline's own file and read by everything that handles pipelines in general (the option
-- checks, enable_pipeline and disable_pipeline, the periodic tick, the hints that list them).
--   list_order  where hints list it
--   defaults    each of its own options with its default (the output_* options are everyone's)
--   triggers    the tables it reads, in install order, each {"trigger", "table", "function"}
--               and optionally "state": a function (install boolean) keeping state that comes
--               and goes with the pipeline's hold on the table, called with true before the
--               pipeline is wired to the table and with false after it is unwired. Pipelines
--               that share a trigger on a table (the dispatcher, streamrec_pipelines) share one
--               trigger: it exists while any of them is wired to the table.
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

CREATE TABLE streamrec.pipeline_catalog (
    name        text PRIMARY KEY REFERENCES streamrec.pipeline_kinds (name),
    enabled     boolean NOT NULL DEFAULT true,
    options     jsonb NOT NULL,       -- every option, defaults filled in
    sinks       text[],               -- the sinks created for its output topics, if any
    enabled_at  timestamptz NOT NULL DEFAULT now(),
    owner       oid NOT NULL DEFAULT streamrec._current_role()  -- who enabled it (its sinks are that role's)
);
COMMENT ON TABLE streamrec.pipeline_catalog IS 'Enabled pipelines and their effective options (see the streamrec.pipelines view)';
REVOKE ALL ON streamrec.pipeline_catalog FROM PUBLIC;
-- Every column but options: another admin's output_options may hold credentials (the
-- streamrec.pipelines view shows every pipeline's options with secrets masked).
GRANT SELECT (name, enabled, sinks, enabled_at, owner), INSERT, UPDATE ON streamrec.pipeline_catalog TO streamrec_admin;
-- The pipelines keep their options between batches until a transaction that changed the catalog
-- commits: this statement trigger tells them (one call per statement, any role).
CREATE FUNCTION streamrec._catalog_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_catalog_changed' LANGUAGE C;
CREATE TRIGGER streamrec_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON streamrec.pipeline_catalog
    FOR EACH STATEMENT EXECUTE FUNCTION streamrec._catalog_changed();

-- An enabled pipeline belongs to the role that enabled it: only that role (or a superuser)
-- changes or disables it; a disabled one goes to whoever enables it next. Options written
-- directly are checked as enable_pipeline checks them.
CREATE FUNCTION streamrec._check_pipeline_owner(pipeline streamrec.pipeline_catalog) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pipeline.enabled AND pipeline.owner <> streamrec._current_role() AND NOT streamrec._caller_is_superuser() THEN
        RAISE EXCEPTION 'permission denied to change pipeline "%"', pipeline.name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('It was enabled by role %s.', coalesce((SELECT quote_ident(r.rolname) FROM pg_catalog.pg_roles r
                                                                          WHERE r.oid = pipeline.owner), pipeline.owner::text)),
                  HINT = 'That role or a superuser can change or disable it.';
    END IF;
END $$;

CREATE FUNCTION streamrec._pipeline_row_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kept_owner oid;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM streamrec._check_pipeline_owner(OLD);
        IF NEW.name IS DISTINCT FROM OLD.name THEN
            RAISE EXCEPTION 'pipeline "%" cannot be renamed', OLD.name
                USING ERRCODE = 'feature_not_supported', HINT = 'Use enable_pipeline and disable_pipeline.';
        END IF;
    END IF;
    IF NOT streamrec._caller_is_superuser() THEN
        kept_owner := CASE WHEN TG_OP = 'UPDATE' AND OLD.enabled THEN OLD.owner ELSE streamrec._current_role() END;
        IF TG_OP = 'UPDATE' AND NEW.owner IS DISTINCT FROM OLD.owner AND NEW.owner IS DISTINCT FROM kept_owner THEN
            RAISE EXCEPTION 'permission denied to change the owner of pipeline "%"', OLD.name
                USING ERRCODE = 'insufficient_privilege', HINT = 'Only a superuser can give a pipeline to another role.';
        END IF;
        NEW.owner := kept_owner;
        -- The sinks it lists are dropped by whoever next enables or disables it: its owner's only.
        IF NEW.sinks IS DISTINCT FROM (CASE WHEN TG_OP = 'UPDATE' THEN OLD.sinks END)
           AND EXISTS (SELECT FROM pg_catalog.unnest(NEW.sinks) s
                       WHERE NOT EXISTS (SELECT FROM streamrec.sinks k WHERE k.name = s AND k.owner = NEW.owner)) THEN
            RAISE EXCEPTION 'pipeline "%" may list only sinks of its owner', NEW.name
                USING ERRCODE = 'insufficient_privilege', HINT = 'streamrec.enable_pipeline creates a pipeline''s sinks and lists them.';
        END IF;
    END IF;
    IF TG_OP = 'INSERT' OR NEW.options IS DISTINCT FROM OLD.options THEN
        PERFORM streamrec._pipeline_options(NEW.name, NEW.options);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER check_pipeline_row BEFORE INSERT OR UPDATE ON streamrec.pipeline_catalog
    FOR EACH ROW EXECUTE FUNCTION streamrec._pipeline_row_check();

-- Event-time clocks of windowed pipelines: the watermark (max event time minus the delay),
-- and the wall-clock time of the last event, for the idle timeout.
CREATE TABLE streamrec.pipeline_clock (
    pipeline        text PRIMARY KEY,
    watermark       timestamptz,
    max_event_time  timestamptz,
    last_arrival    timestamptz
);
-- Each writer's newest event time: the watermark follows the slowest writer heard from within
-- idle_timeout. A writer is a source (its name) or '' for every other session.
CREATE TABLE streamrec.pipeline_writers (
    pipeline        text NOT NULL,
    writer          text NOT NULL,
    max_event_time  timestamptz NOT NULL,
    last_arrival    timestamptz NOT NULL,
    PRIMARY KEY (pipeline, writer)
);
GRANT SELECT ON streamrec.pipeline_clock, streamrec.pipeline_writers TO PUBLIC;

-- The effective options of a pipeline: the defaults overlaid with the caller's options, each
-- checked. Raises invalid_parameter_value with a hint for anything it cannot use.
CREATE FUNCTION streamrec._pipeline_options(pipeline text, options jsonb) RETURNS jsonb
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
CREATE FUNCTION streamrec._pipeline_outputs(pipeline text)
RETURNS TABLE (topic_option text, sink_name text, rel regclass, sink_options jsonb)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT o ->> 'topic_option', o ->> 'sink', (o ->> 'table')::regclass, o -> 'sink_options'
    FROM streamrec.pipeline_kinds k, jsonb_array_elements(k.outputs) WITH ORDINALITY AS e(o, n)
    WHERE k.name = pipeline
    ORDER BY e.n
$$;

-- Which pipeline is wired to which table: a row from the moment its state for the table is
-- built until it is torn down. The dispatcher (streamrec._pipeline_dispatch) runs the pipelines
-- wired to the table it fires on.
CREATE TABLE streamrec.pipeline_inputs (
    pipeline  text NOT NULL REFERENCES streamrec.pipeline_kinds (name),
    rel       regclass NOT NULL,
    PRIMARY KEY (rel, pipeline)
);
COMMENT ON TABLE streamrec.pipeline_inputs IS 'Which enabled pipeline reads which table (kept by enable_pipeline and disable_pipeline)';
GRANT SELECT ON streamrec.pipeline_inputs TO streamrec_admin;

-- The pipelines' dispatcher: one statement trigger per input table reads the statement's rows
-- once and hands them to every pipeline wired to the table. SECURITY DEFINER: a source's role
-- needs INSERT on the domain table only; the pipeline state belongs to the extension's owner.
CREATE FUNCTION streamrec._pipeline_dispatch() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_pipeline_dispatch' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION streamrec._pipeline_dispatch() FROM PUBLIC;

-- Makes a pipeline's wiring match the catalog: wired to each of its tables (state built, the
-- table's trigger there) while it is enabled, unwired (the trigger gone when no other pipeline
-- shares it, then the state torn down) when not. SECURITY DEFINER: creating triggers on the
-- domain tables needs their owner; safe for any admin to call, since it only follows the
-- catalog and the registry (which only the extension writes).
CREATE FUNCTION streamrec._sync_pipeline_triggers(pipeline text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    enabled boolean := coalesce((SELECT c.enabled FROM streamrec.pipeline_catalog c WHERE c.name = pipeline), false);
    wired boolean;
BEGIN
    FOR t IN SELECT * FROM streamrec._pipeline_triggers(pipeline) LOOP
        wired := EXISTS (SELECT FROM streamrec.pipeline_inputs i WHERE i.pipeline = $1 AND i.rel = t.rel);
        IF enabled THEN
            IF NOT wired THEN
                IF t.state_function IS NOT NULL THEN
                    EXECUTE format('SELECT %s(true)', t.state_function);
                END IF;
                INSERT INTO streamrec.pipeline_inputs (pipeline, rel) VALUES ($1, t.rel);
            END IF;
            IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = t.rel AND tgname = t.trigger_name) THEN
                EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS streamrec_new_rows '
                               'FOR EACH STATEMENT EXECUTE FUNCTION %s()', t.trigger_name, t.rel, t.function_name);
            END IF;
        ELSIF wired THEN
            DELETE FROM streamrec.pipeline_inputs i WHERE i.pipeline = $1 AND i.rel = t.rel;
            IF NOT EXISTS (SELECT FROM streamrec.pipeline_inputs i, streamrec._pipeline_triggers(i.pipeline) o
                           WHERE i.rel = t.rel AND o.rel = t.rel AND o.trigger_name = t.trigger_name) THEN
                EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', t.trigger_name, t.rel);
            END IF;
            IF t.state_function IS NOT NULL THEN
                EXECUTE format('SELECT %s(false)', t.state_function);
            END IF;
        END IF;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION streamrec._sync_pipeline_triggers(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._sync_pipeline_triggers(text) TO streamrec_admin;

-- One enable or disable at a time per pipeline. SECURITY DEFINER: it takes that one lock only.
CREATE FUNCTION streamrec._lock_pipeline(pipeline text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT FROM streamrec._xact_lock(pg_catalog.hashtext('streamrec.enable_pipeline'), pg_catalog.hashtext(pipeline))
$$;
REVOKE ALL ON FUNCTION streamrec._lock_pipeline(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._lock_pipeline(text) TO streamrec_admin;

-- Turns a pipeline on (or changes its options): installs its triggers and, with output_topic,
-- its sink. A trigger installed afresh builds its state first (see the registry).
CREATE FUNCTION streamrec.enable_pipeline(name text, options jsonb DEFAULT '{}') RETURNS void
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

-- Turns a pipeline off: its triggers and sink go; its results and state tables stay.
CREATE FUNCTION streamrec.disable_pipeline(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    previous streamrec.pipeline_catalog;
    t record;
BEGIN
    PERFORM streamrec._require_admin();
    PERFORM streamrec._lock_pipeline(name);
    SELECT c.name, c.enabled, NULL, c.sinks, c.enabled_at, c.owner INTO previous
    FROM streamrec.pipeline_catalog c WHERE c.name = disable_pipeline.name AND c.enabled FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pipeline "%" is not enabled', name
            USING ERRCODE = 'undefined_object', HINT = 'SELECT name FROM streamrec.pipelines WHERE enabled lists them.';
    END IF;
    PERFORM streamrec._check_pipeline_owner(previous);
    PERFORM streamrec.drop_sink(s) FROM unnest(previous.sinks) s;
    UPDATE streamrec.pipeline_catalog c SET enabled = false, sinks = NULL WHERE c.name = disable_pipeline.name;
    PERFORM streamrec._sync_pipeline_triggers(name);
END $$;

-- Periodic work, run by the launcher about once a second in its own transaction. Each enabled
-- pipeline's tick function (from the registry), the writers' clean-up and the retention of
-- input tables run in subtransactions of their own: one that fails (logged as a WARNING) stops
-- none of the others.
CREATE FUNCTION streamrec._pipeline_tick() RETURNS void
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

SELECT pg_catalog.pg_extension_config_dump('streamrec.pipeline_catalog', '');
SELECT pg_catalog.pg_extension_config_dump('streamrec.pipeline_inputs', '');
