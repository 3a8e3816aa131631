-- pg_streamrec 0.2 -> 0.3: the pipeline engine. Rows, offsets, triggers and sinks stay as they
-- are; the result is the schema a fresh 0.3 install creates (tests/integration/test_upgrade.py
-- compares the two, starting from 0.1).
\echo Use "ALTER EXTENSION pg_streamrec UPDATE TO '0.3'" to load this file. \quit

-- ---------------------------------------------------------------------------------------------
-- The dispatcher: one trigger per input table for the click, purchase and checkout pipelines
-- (similar_products, trending, category_affinity, attribution), and the table saying which
-- pipeline is wired to which table.
-- ---------------------------------------------------------------------------------------------
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
CREATE OR REPLACE FUNCTION streamrec._sync_pipeline_triggers(pipeline text) RETURNS void
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
SELECT pg_catalog.pg_extension_config_dump('streamrec.pipeline_inputs', '');

-- Every pipeline wired today: each registry entry whose trigger is in place.
INSERT INTO streamrec.pipeline_inputs (pipeline, rel)
SELECT DISTINCT k.name, (t ->> 'table')::regclass
FROM streamrec.pipeline_kinds k, jsonb_array_elements(k.triggers) t
WHERE EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = (t ->> 'table')::regclass AND g.tgname = t ->> 'trigger');

-- The four pipelines' own triggers give way to the dispatcher's.
DROP TRIGGER IF EXISTS streamrec_similar_products ON streamrec.clicks;
DROP TRIGGER IF EXISTS streamrec_user_purchases ON streamrec.purchases;
DROP TRIGGER IF EXISTS streamrec_trending ON streamrec.clicks;
DROP TRIGGER IF EXISTS streamrec_category_affinity ON streamrec.clicks;
DROP TRIGGER IF EXISTS streamrec_attribution_checkouts ON streamrec.checkouts;
DROP TRIGGER IF EXISTS streamrec_attribution_clicks ON streamrec.clicks;
DROP FUNCTION streamrec._similar_products_trigger(), streamrec._user_purchases_trigger(), streamrec._trending_trigger(),
              streamrec._category_affinity_trigger(), streamrec._attribution_checkouts_trigger(),
              streamrec._attribution_clicks_trigger();
UPDATE streamrec.pipeline_kinds SET triggers = '[{"trigger": "streamrec_pipelines", "table": "streamrec.clicks", "function": "streamrec._pipeline_dispatch"},
      {"trigger": "streamrec_pipelines", "table": "streamrec.purchases", "function": "streamrec._pipeline_dispatch",
       "state": "streamrec._rebuild_user_purchases"}]'
WHERE name = 'similar_products';
UPDATE streamrec.pipeline_kinds SET triggers = '[{"trigger": "streamrec_pipelines", "table": "streamrec.clicks", "function": "streamrec._pipeline_dispatch"}]'
WHERE name IN ('trending', 'category_affinity');
UPDATE streamrec.pipeline_kinds SET triggers = '[{"trigger": "streamrec_pipelines", "table": "streamrec.checkouts", "function": "streamrec._pipeline_dispatch"},
      {"trigger": "streamrec_pipelines", "table": "streamrec.clicks", "function": "streamrec._pipeline_dispatch",
       "state": "streamrec._attribution_lookback_index"}]'
WHERE name = 'attribution';
DO $$
DECLARE
    r regclass;
BEGIN
    FOR r IN SELECT DISTINCT i.rel FROM streamrec.pipeline_inputs i
             WHERE i.pipeline IN ('similar_products', 'trending', 'category_affinity', 'attribution') LOOP
        EXECUTE format('CREATE TRIGGER streamrec_pipelines AFTER INSERT ON %s REFERENCING NEW TABLE AS streamrec_new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION streamrec._pipeline_dispatch()', r);
    END LOOP;
END $$;

-- The pipelines keep their options between batches until the catalog changes.
-- The pipelines keep their options between batches until a transaction that changed the catalog
-- commits: this statement trigger tells them (one call per statement, any role).
CREATE FUNCTION streamrec._catalog_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_catalog_changed' LANGUAGE C;
CREATE TRIGGER streamrec_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON streamrec.pipeline_catalog
    FOR EACH STATEMENT EXECUTE FUNCTION streamrec._catalog_changed();

-- similar_products keeps each user's recently shown products next to the user's latest list
-- (filled in from recommendation_log by the first batch that needs them).
ALTER TABLE streamrec.recommendations ADD COLUMN shown_products text[], ADD COLUMN shown_at timestamptz[],
    ADD COLUMN shown_since timestamptz;
-- A binary outbox: the capture writes typed rows (column data) the sink worker produces without
-- parsing jsonb; jsonb chunks (payload) stay for the SQL capture, the rows kept with an error, and
-- the chunks written before this update, which the worker still delivers.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE streamrec.sink_outbox ALTER COLUMN payload DROP NOT NULL, ADD COLUMN data bytea,
    ADD CONSTRAINT sink_outbox_one_chunk CHECK ((payload IS NULL) <> (data IS NULL));
DO $$
BEGIN
    ALTER TABLE streamrec.sink_outbox ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;
COMMENT ON TABLE streamrec.sink_outbox IS 'Rows waiting for a sink''s broker acknowledgement (chunks of up to 1,000 rows; streamrec.outbox_rows() shows them), and rows no format could encode (error set, one per outbox row)';

CREATE FUNCTION streamrec.outbox_rows(chunk streamrec.sink_outbox) RETURNS TABLE (ordinal int, row_json jsonb)
    AS 'MODULE_PATHNAME', 'streamrec_outbox_rows' LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION streamrec.outbox_rows(streamrec.sink_outbox) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec.outbox_rows(streamrec.sink_outbox) TO streamrec_admin;
