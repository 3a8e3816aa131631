-- pg_streamrec 0.3 -> 0.4: several servers (standby failover, partition-parallel servers,
-- dimensions replicated by logical replication). Rows, offsets, triggers and sinks stay as they
-- are; the result is the schema a fresh 0.4 install creates (tests/integration/test_upgrade.py
-- compares the two, starting from 0.1).
\echo Use "ALTER EXTENSION pg_streamrec UPDATE TO '0.4'" to load this file. \quit

-- Partition-parallel servers: streamrec.assign_partitions, the refusal of group_id on a source
-- feeding a pipeline, kafka_partition and partition_keyed_tables (sql/install/55_partitions.sql).
-- ---------------------------------------------------------------------------------------------
-- Partition-parallel servers. Several databases share keyed topics by fixed, disjoint sets of
-- their partitions (the sources' `partitions` option), and each keeps the pipeline state of the
-- keys in its partitions. The rule: partition p of a topic belongs to server p % server_count.
-- It depends on neither the topic nor the server's name, so the same partition numbers of
-- co-keyed topics (keyed alike, the same partition count and partitioner) land on the same
-- server, together with the state their keys share. A consumer group (`group_id`) would move
-- partitions between databases at each rebalance, away from that state: a source with group_id
-- may not feed a table that an enabled pipeline reads.
-- ---------------------------------------------------------------------------------------------

-- The partitions of a `partitions`-partition topic that server `server_index` of `server_count`
-- owns. Sets them as the `partitions` option of every source on `topic` the caller manages (a
-- superuser: every one), whose workers then restart on them, and returns them, so that one
-- statement per topic and server assigns them, before or after the sources exist:
--   create_source(..., options => jsonb_build_object('partitions', assign_partitions(0, 3, 'clicks', 6)))
-- Offsets stored for partitions a source no longer reads stay (see "Partition-parallel servers"
-- in the README for moving a partition).
CREATE FUNCTION streamrec.assign_partitions(server_index int, server_count int, topic text, partitions int)
RETURNS int[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    owned int[];
BEGIN
    PERFORM streamrec._require_admin();
    IF server_count IS NULL OR server_count < 1 OR server_count > 100000 THEN
        PERFORM streamrec._bad_argument(format('server_count must be from 1 to 100000, not %s', coalesce(server_count::text, 'NULL')),
                                        'Pass the number of servers that share the topics.');
    END IF;
    IF server_index IS NULL OR server_index < 0 OR server_index >= server_count THEN
        PERFORM streamrec._bad_argument(format('server_index must be from 0 to %s, not %s', server_count - 1,
                                               coalesce(server_index::text, 'NULL')),
                                        'Number the servers 0, 1, ... server_count - 1, the same way for every topic.');
    END IF;
    IF topic IS NULL OR topic = '' THEN
        PERFORM streamrec._bad_argument('topic must not be empty', 'Name the Kafka topic whose partitions are shared.');
    END IF;
    IF partitions IS NULL OR partitions < 1 OR partitions > 100000 THEN
        PERFORM streamrec._bad_argument(format('partitions must be from 1 to 100000, not %s', coalesce(partitions::text, 'NULL')),
                                        'Pass the topic''s partition count (kcat -L -t <topic> shows it).');
    END IF;
    IF server_index >= partitions THEN
        RAISE EXCEPTION 'server % of % would own no partition of the %-partition topic "%"',
                        server_index, server_count, partitions, topic
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Partition p belongs to server p % server_count; a partition is the unit of parallelism.',
                  HINT = 'Run at most as many servers as the topics have partitions, or give the topics more partitions (a new topic layout).';
    END IF;
    owned := ARRAY(SELECT p FROM pg_catalog.generate_series(server_index, partitions - 1, server_count) p);
    -- Row-level security limits this to the caller's sources; the row check validates the result
    -- (a source with group_id is refused: the two options exclude each other).
    UPDATE streamrec.sources s
    SET options = s.options || jsonb_build_object('partitions', to_jsonb(owned)), generation = s.generation + 1
    WHERE s.topic = assign_partitions.topic AND s.options -> 'partitions' IS DISTINCT FROM to_jsonb(owned);
    RETURN owned;
END $$;

-- The enabled pipelines that read `target`, listed (NULL when none).
CREATE FUNCTION streamrec._pipelines_reading(target regclass) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_agg(i.pipeline, ', ' ORDER BY i.pipeline) FROM streamrec.pipeline_inputs i WHERE i.rel = target
$$;
REVOKE ALL ON FUNCTION streamrec._pipelines_reading(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._pipelines_reading(regclass) TO streamrec_admin;

-- The first of `pipeline`'s input tables that a source with group_id fills, if any.
-- SECURITY DEFINER: it sees every role's sources (row-level security hides other roles' from
-- the caller) and tells no more than the table.
CREATE FUNCTION streamrec._group_fed_input(pipeline text) RETURNS regclass
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.target
    FROM streamrec.sources s
    WHERE s.options ? 'group_id' AND s.target IN (SELECT t.rel FROM streamrec._pipeline_triggers(pipeline) t)
    ORDER BY s.target::oid
    LIMIT 1
$$;
REVOKE ALL ON FUNCTION streamrec._group_fed_input(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._group_fed_input(text) TO streamrec_admin;

-- A source with group_id may not feed an enabled pipeline's table, however the source is
-- written (create_source, or an INSERT or UPDATE of streamrec.sources). Pausing or resuming a
-- source that already does (made before this check existed) stays possible.
CREATE FUNCTION streamrec._source_group_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    readers text;
BEGIN
    IF NOT NEW.options ? 'group_id'
       OR (TG_OP = 'UPDATE' AND (NEW.target, NEW.options) IS NOT DISTINCT FROM (OLD.target, OLD.options)) THEN
        RETURN NEW;
    END IF;
    readers := streamrec._pipelines_reading(NEW.target);
    IF readers IS NOT NULL THEN
        RAISE EXCEPTION 'source "%" cannot use group_id: its target % feeds the pipeline %', NEW.name, NEW.target, readers
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A consumer group rebalance moves partitions to another database, away from the pipeline state of their keys.',
                  HINT = 'Use the partitions option instead; see streamrec.assign_partitions(server_index, server_count, topic, partitions).';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER check_source_stateful_target BEFORE INSERT OR UPDATE ON streamrec.sources
    FOR EACH ROW EXECUTE FUNCTION streamrec._source_group_check();

-- The same refusal from the pipeline's side: enabling a pipeline (enable_pipeline, or a write
-- to the catalog) whose input table a source with group_id fills.
CREATE FUNCTION streamrec._pipeline_group_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fed regclass;
    feeder text;
BEGIN
    IF NOT NEW.enabled THEN
        RETURN NEW;
    END IF;
    fed := streamrec._group_fed_input(NEW.name);
    IF fed IS NOT NULL THEN
        -- Named when the caller sees it (its own, or any for a superuser).
        feeder := coalesce((SELECT format('source "%s"', s.name) FROM streamrec.sources s
                            WHERE s.target = fed AND s.options ? 'group_id' ORDER BY s.name LIMIT 1),
                           'a source of another role');
        RAISE EXCEPTION 'pipeline "%" cannot read %: % fills it with group_id', NEW.name, fed, feeder
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A consumer group rebalance moves partitions to another database, away from the pipeline state of their keys.',
                  HINT = 'Give that source fixed partitions instead of group_id (use partitions; see streamrec.assign_partitions), or drop it.';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER check_pipeline_sources BEFORE INSERT OR UPDATE ON streamrec.pipeline_catalog
    FOR EACH ROW EXECUTE FUNCTION streamrec._pipeline_group_check();

-- The partition of `key` among `partitions` under the Java clients' default partitioner (murmur2
-- of the key's bytes), which keyed producers and pg_streamrec's sinks use: with the rule above,
-- server streamrec.kafka_partition(key, partitions) % server_count owns the key.
CREATE FUNCTION streamrec.kafka_partition(key text, partitions int) RETURNS int
    AS 'MODULE_PATHNAME', 'streamrec_kafka_partition' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The tables whose rows belong to one key of a partition-keyed topic, and the column holding the
-- key: the input tables (their history, and the clicks attribution looks back on) and the keyed
-- state and results of the pipelines that partition by key. Moving a partition to another
-- server moves these rows of its keys (see "Partition-parallel servers" in the README).
-- `dimension`: the table is also a dimension that every server keeps (inventory, whose stock of
-- an item is item_transactions' state on the server that owns the item): a moved key's rows
-- replace the new owner's and stay on the old owner; the other tables' rows leave the old owner.
CREATE FUNCTION streamrec.partition_keyed_tables()
RETURNS TABLE (rel regclass, key_column name, pipeline text, dimension boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT v.rel::regclass, v.key_column::name, v.pipeline, v.rel = 'streamrec.inventory'
    FROM (VALUES ('streamrec.clicks', 'user_id', NULL), ('streamrec.purchases', 'user_id', NULL),
                 ('streamrec.checkouts', 'user_id', NULL), ('streamrec.item_transactions', 'item_id', NULL),
                 ('streamrec.stock_queries', 'item_id', NULL),
                 ('streamrec.recommendations', 'user_id', 'similar_products'),
                 ('streamrec.recommendation_log', 'user_id', 'similar_products'),
                 ('streamrec.user_purchases', 'user_id', 'similar_products'),
                 ('streamrec.pending_views', 'user_id', 'similar_products'),
                 ('streamrec.category_views', 'user_id', 'category_affinity'),
                 ('streamrec.user_viewed_products', 'user_id', 'category_affinity'),
                 ('streamrec.attributed_checkouts', 'user_id', 'attribution'),
                 ('streamrec.attribution_log', 'user_id', 'attribution'),
                 ('streamrec.inventory', 'product_id', 'item_transactions'),
                 ('streamrec.transaction_results', 'item_id', 'item_transactions'),
                 ('streamrec.query_results', 'item_id', 'item_transactions'),
                 ('streamrec.transaction_summaries', 'item_id', 'item_transactions'),
                 ('streamrec.transaction_alerts', 'item_id', 'item_transactions')) AS v(rel, key_column, pipeline)
$$;

-- ---------------------------------------------------------------------------------------------
-- Dimensions replicated by logical replication: the change triggers fire under an apply worker.
-- ---------------------------------------------------------------------------------------------
-- The inventory may also be a logical replication subscriber, maintained on another server. An
-- apply worker runs with session_replication_role = replica: it fires only row triggers enabled
-- REPLICA or ALWAYS, and statement triggers only for a TRUNCATE it applies. So the statement
-- trigger fires in every session (ALWAYS: an applied TRUNCATE and a subscription's initial
-- COPY too), and while a subscription of this database replicates the inventory, a row trigger
-- (REPLICA) fires for each row an apply worker applies. Only while: a row trigger on UPDATE,
-- even one that does not fire, costs every local UPDATE a fetch of the old row (a fifth of
-- item_transactions' rate). The function runs no SQL and names nothing, whichever role fires it
-- (an apply worker runs as the subscription's owner); only the extension attaches it.
ALTER TABLE streamrec.inventory ENABLE ALWAYS TRIGGER streamrec_inventory_changed;
REVOKE ALL ON FUNCTION streamrec._inventory_changed() FROM PUBLIC;

-- Creates the row trigger while a subscription of this database replicates the inventory, and
-- drops it when none does. Run by the event trigger below after every command that changes
-- which tables a subscription replicates (the apply and table sync workers start only after
-- that command commits, so the trigger is there before the first row is applied).
CREATE FUNCTION streamrec._follow_inventory_subscriptions() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- (a subscription command never fails here: without the table there is nothing to do)
    inventory pg_catalog.regclass := pg_catalog.to_regclass('streamrec.inventory');
    subscribed boolean := EXISTS (SELECT FROM pg_catalog.pg_subscription_rel r WHERE r.srrelid = inventory);
    present boolean := EXISTS (SELECT FROM pg_catalog.pg_trigger t
                               WHERE t.tgrelid = inventory AND t.tgname = 'streamrec_inventory_replicated');
BEGIN
    IF subscribed AND NOT present THEN
        CREATE TRIGGER streamrec_inventory_replicated AFTER INSERT OR UPDATE OR DELETE ON streamrec.inventory
            FOR EACH ROW EXECUTE FUNCTION streamrec._inventory_changed();
        ALTER TABLE streamrec.inventory ENABLE REPLICA TRIGGER streamrec_inventory_replicated;
    ELSIF present AND NOT subscribed THEN
        DROP TRIGGER streamrec_inventory_replicated ON streamrec.inventory;
    END IF;
END $$;
REVOKE ALL ON FUNCTION streamrec._follow_inventory_subscriptions() FROM PUBLIC;

-- SECURITY DEFINER: the trigger belongs on the extension's table whichever role changed the
-- subscription; it takes nothing from the caller.
CREATE FUNCTION streamrec._subscriptions_changed() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM streamrec._follow_inventory_subscriptions();
END $$;
REVOKE ALL ON FUNCTION streamrec._subscriptions_changed() FROM PUBLIC;
CREATE EVENT TRIGGER streamrec_subscriptions_changed ON ddl_command_end
    WHEN TAG IN ('CREATE SUBSCRIPTION', 'ALTER SUBSCRIPTION', 'DROP SUBSCRIPTION')
    EXECUTE FUNCTION streamrec._subscriptions_changed();
-- (also in a session with session_replication_role = replica)
ALTER EVENT TRIGGER streamrec_subscriptions_changed ENABLE ALWAYS;
-- (an installation that already subscribes to the inventory gets its row trigger now)
SELECT streamrec._follow_inventory_subscriptions();

-- The catalog's change trigger fires in every session too (ALWAYS: also with
-- session_replication_role = replica). The catalog is each server's own, never replicated.
-- Only the extension attaches the function to a table.
ALTER TABLE streamrec.pipeline_catalog ENABLE ALWAYS TRIGGER streamrec_catalog_changed;
REVOKE ALL ON FUNCTION streamrec._catalog_changed() FROM PUBLIC;
-- Protobuf: sources and sinks of format protobuf (Confluent-framed through a schema registry, or
-- plain with an inline .proto named by the options proto_schema and proto_message).
-- ---------------------------------------------------------------------------------------------
ALTER TABLE streamrec.sources DROP CONSTRAINT sources_format_check,
    ADD CONSTRAINT sources_format_check CHECK (format IN ('csv', 'json', 'avro', 'protobuf'));
ALTER TABLE streamrec.sinks DROP CONSTRAINT sinks_format_check,
    ADD CONSTRAINT sinks_format_check CHECK (format IN ('csv', 'json', 'avro', 'protobuf'));

-- (streamrec._check_source_options is redefined with the key options in the last section)

CREATE OR REPLACE FUNCTION streamrec.create_source(name text, topic text, target regclass, format text DEFAULT 'csv',
                                        brokers text DEFAULT NULL, options jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM streamrec._require_admin();
    IF name IS NULL OR name !~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$' THEN
        PERFORM streamrec._bad_argument(format('invalid source name "%s"', name),
                                        'Use up to 63 letters, digits, _ . or -, starting with a letter or _.');
    END IF;
    IF topic IS NULL OR topic = '' THEN
        PERFORM streamrec._bad_argument('topic must not be empty', 'Name the Kafka topic to consume.');
    END IF;
    IF target IS NULL THEN
        PERFORM streamrec._bad_argument('target must not be NULL', 'Name the table to fill, e.g. ''streamrec.clicks''.');
    END IF;
    IF format IS NULL OR format NOT IN ('csv', 'json', 'avro', 'protobuf') THEN
        PERFORM streamrec._bad_argument(format('unknown format "%s"', format), 'Use csv, json, avro or protobuf.');
    END IF;
    IF coalesce(brokers, current_setting('streamrec.brokers')) = '' THEN
        PERFORM streamrec._bad_argument('no Kafka brokers for the source',
                                        'Pass brokers (host:port,...) or set streamrec.brokers in postgresql.conf.');
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = target) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', target
            USING ERRCODE = 'wrong_object_type', HINT = 'A source fills an ordinary or partitioned table.';
    END IF;
    IF NOT has_table_privilege(target, 'INSERT') THEN
        RAISE EXCEPTION 'permission denied to insert into %', target
            USING ERRCODE = 'insufficient_privilege', HINT = 'The source''s worker runs as you and needs INSERT on its target.';
    END IF;
    IF pg_catalog.row_security_active(target::oid) THEN
        RAISE EXCEPTION '% has row-level security enabled', target
            USING ERRCODE = 'feature_not_supported', HINT = 'COPY cannot fill a table with row-level security; use a staging table.';
    END IF;
    PERFORM streamrec._check_source_options(format, target, options);
    INSERT INTO streamrec.sources(name, topic, target, format, brokers, options)
    VALUES (create_source.name, create_source.topic, create_source.target, create_source.format,
            create_source.brokers, create_source.options);
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'source "%" already exists', create_source.name
        USING ERRCODE = 'duplicate_object', HINT = 'Choose another name, or drop it first with streamrec.drop_source().';
END $$;

CREATE OR REPLACE FUNCTION streamrec._check_sink_options(format text, rel regclass, options jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    allowed constant text[] := ARRAY['key', 'columns', 'schema_registry', 'subject', 'kafka', 'csv', 'batch_size'];
    table_columns text[];
    key text;
    value jsonb;
    col text;
    n int;
BEGIN
    IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
        PERFORM streamrec._bad_argument('options must be a JSON object', 'Pass options as jsonb, e.g. ''{"key": "user_id"}''.');
    END IF;
    FOR key IN SELECT jsonb_object_keys(options) LOOP
        IF key <> ALL (allowed) THEN
            PERFORM streamrec._bad_argument(format('unknown option "%s"', key),
                                            'Valid options: ' || array_to_string(allowed, ', ') || '.');
        END IF;
    END LOOP;
    SELECT array_agg(attname::text ORDER BY attnum) INTO table_columns
    FROM pg_attribute WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped;

    FOREACH key IN ARRAY ARRAY['key', 'columns'] LOOP
        value := options -> key;
        CONTINUE WHEN value IS NULL;
        IF key = 'key' AND jsonb_typeof(value) = 'string' THEN
            value := jsonb_build_array(value);
        END IF;
        IF jsonb_typeof(value) <> 'array' OR jsonb_array_length(value) = 0
           OR EXISTS (SELECT FROM jsonb_array_elements(value) e WHERE jsonb_typeof(e) <> 'string') THEN
            PERFORM streamrec._bad_argument(format('option "%s" must be a column name or a non-empty array of column names', key),
                                            format('Example: {"%s": ["user_id"]}.', key));
        END IF;
        FOR col IN SELECT jsonb_array_elements_text(value) LOOP
            IF col <> ALL (table_columns) THEN
                RAISE EXCEPTION 'column "%" of option "%" does not exist in %', col, key, rel
                    USING ERRCODE = 'undefined_column', HINT = 'Columns: ' || array_to_string(table_columns, ', ') || '.';
            END IF;
        END LOOP;
        SELECT count(*) - count(DISTINCT e) INTO n FROM jsonb_array_elements_text(value) e;
        IF n > 0 THEN
            PERFORM streamrec._bad_argument(format('option "%s" names a column twice', key), 'List each column once.');
        END IF;
    END LOOP;

    IF options ? 'schema_registry' OR options ? 'subject' THEN
        IF format NOT IN ('avro', 'protobuf') THEN
            PERFORM streamrec._bad_argument('options "schema_registry" and "subject" apply to avro and protobuf sinks only',
                                            'Remove them or use format avro or protobuf.');
        END IF;
    END IF;
    IF format IN ('avro', 'protobuf') AND coalesce(options ->> 'schema_registry', '') !~ '^https?://' THEN
        PERFORM streamrec._bad_argument(format('%s sink needs option "schema_registry", an http(s) URL',
                                               CASE format WHEN 'avro' THEN 'an avro' ELSE 'a protobuf' END),
                                        'The sink registers its schema there (Confluent wire format), e.g. {"schema_registry": "http://registry:8081"}.');
    END IF;
    IF options ? 'subject' AND (jsonb_typeof(options -> 'subject') <> 'string' OR options ->> 'subject' = '') THEN
        PERFORM streamrec._bad_argument('option "subject" must be a non-empty string', 'Default: <topic>-value.');
    END IF;
    IF options ? 'csv' THEN
        value := options -> 'csv';
        IF format <> 'csv' THEN
            PERFORM streamrec._bad_argument('option "csv" applies to csv sinks only', 'Remove it or use format csv.');
        END IF;
        IF jsonb_typeof(value) <> 'object'
           OR EXISTS (SELECT FROM jsonb_object_keys(value) k WHERE k NOT IN ('delimiter', 'quote', 'null'))
           OR (value ? 'delimiter' AND (jsonb_typeof(value -> 'delimiter') <> 'string' OR octet_length(value ->> 'delimiter') <> 1))
           OR (value ? 'quote' AND (jsonb_typeof(value -> 'quote') <> 'string' OR octet_length(value ->> 'quote') <> 1))
           OR (value ? 'null' AND jsonb_typeof(value -> 'null') <> 'string')
           OR coalesce(value ->> 'delimiter', ',') = coalesce(value ->> 'quote', '"') THEN
            PERFORM streamrec._bad_argument('invalid option "csv"',
                                            'Use {"delimiter": ",", "quote": "\"", "null": ""} with one-byte delimiter and quote that differ.');
        END IF;
    END IF;
    IF options ? 'kafka' THEN
        value := options -> 'kafka';
        IF jsonb_typeof(value) <> 'object'
           OR EXISTS (SELECT FROM jsonb_each(value) e WHERE jsonb_typeof(e.value) NOT IN ('string', 'number', 'boolean')) THEN
            PERFORM streamrec._bad_argument('option "kafka" must map librdkafka property names to values',
                                            'Example: {"kafka": {"security.protocol": "SASL_SSL", "compression.type": "lz4"}}.');
        END IF;
        PERFORM streamrec._check_kafka_properties(value);
    END IF;
    IF options ? 'batch_size' AND (jsonb_typeof(options -> 'batch_size') <> 'number' OR (options ->> 'batch_size') !~ '^[0-9]+$'
                                   OR (options ->> 'batch_size')::numeric NOT BETWEEN 1 AND 1000000) THEN
        PERFORM streamrec._bad_argument('option "batch_size" must be a whole number from 1 to 1000000',
                                        'Default: 10000 rows per batch.');
    END IF;
END $$;

CREATE OR REPLACE FUNCTION streamrec.create_sink(name text, relation regclass, topic text, format text DEFAULT 'csv',
                                      brokers text DEFAULT NULL, options jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM streamrec._require_admin();
    IF name IS NULL OR name !~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$' THEN
        PERFORM streamrec._bad_argument(format('invalid sink name "%s"', name),
                                        'Use up to 63 letters, digits, _ . or -, starting with a letter or _.');
    END IF;
    IF relation IS NULL THEN
        PERFORM streamrec._bad_argument('relation must not be NULL', 'Name the table whose new rows to produce, e.g. ''streamrec.recommendation_log''.');
    END IF;
    IF topic IS NULL OR topic = '' THEN
        PERFORM streamrec._bad_argument('topic must not be empty', 'Name the Kafka topic to produce to.');
    END IF;
    IF format IS NULL OR format NOT IN ('csv', 'json', 'avro', 'protobuf') THEN
        PERFORM streamrec._bad_argument(format('unknown format "%s"', format), 'Use csv, json, avro or protobuf.');
    END IF;
    IF coalesce(brokers, current_setting('streamrec.brokers')) = '' THEN
        PERFORM streamrec._bad_argument('no Kafka brokers for the sink',
                                        'Pass brokers (host:port,...) or set streamrec.brokers in postgresql.conf.');
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = relation) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', relation
            USING ERRCODE = 'wrong_object_type', HINT = 'A sink produces the rows inserted into an ordinary or partitioned table.';
    END IF;
    IF NOT has_table_privilege(relation, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied to read %', relation
            USING ERRCODE = 'insufficient_privilege', HINT = 'The sink''s worker runs as you and needs SELECT on the relation.';
    END IF;
    IF pg_catalog.row_security_active(relation::oid) THEN
        RAISE EXCEPTION '% has row-level security enabled', relation
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'A sink ships every inserted row, so its owner must see them all: disable row-level security, or own the table (without FORCE ROW LEVEL SECURITY), or have BYPASSRLS.';
    END IF;
    PERFORM streamrec._check_sink_options(format, relation, options);
    INSERT INTO streamrec.sinks(name, relation, topic, format, brokers, options)
    VALUES (create_sink.name, create_sink.relation, create_sink.topic, create_sink.format,
            create_sink.brokers, create_sink.options);
    PERFORM streamrec._sync_sink_trigger(create_sink.name, create_sink.relation);
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'sink "%" already exists', create_sink.name
        USING ERRCODE = 'duplicate_object', HINT = 'Choose another name, or drop it first with streamrec.drop_sink().';
END $$;

-- ---------------------------------------------------------------------------------------------
-- Keys, tombstones and Debezium change events: the options key_format, key_columns and envelope
-- (sql/install/20_sources.sql) and the tombstones counter of streamrec.source_stats
-- (sql/install/80_monitoring.sql).
-- Checks the options that take rows from the message key (key_format, key_columns) or from a
-- change event (envelope), against the format, the target's columns and its primary key.
CREATE FUNCTION streamrec._check_source_keys(format text, target regclass, options jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    table_columns text[];
    primary_key text[];
    key_format constant text := coalesce(options ->> 'key_format', 'text');
    key_columns text[] := '{}';
    value jsonb;
    col text;
    upsert constant boolean := options ->> 'mode' = 'upsert' OR options ? 'envelope';
BEGIN
    SELECT array_agg(attname::text ORDER BY attnum) INTO table_columns
    FROM pg_attribute WHERE attrelid = target AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
    SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO primary_key
    FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
    WHERE i.indrelid = target AND i.indisprimary;

    IF format = 'protobuf' AND (options ? 'key_format' OR options ? 'key_columns') THEN
        PERFORM streamrec._bad_argument('options "key_format" and "key_columns" apply to csv, json and avro sources',
                                        'A protobuf source takes every column from the message value; leave them out.');
    END IF;
    IF options ? 'key_format' THEN
        IF jsonb_typeof(options -> 'key_format') <> 'string' OR key_format NOT IN ('text', 'csv', 'json', 'avro') THEN
            PERFORM streamrec._bad_argument(format('unknown key_format "%s"', options ->> 'key_format'),
                                            'Use text (the whole key is one column), csv, json or avro.');
        END IF;
        IF NOT options ? 'key_columns' THEN
            PERFORM streamrec._bad_argument('option "key_format" needs "key_columns"',
                                            'Name the columns the key fills, e.g. {"key_columns": ["customer_id"]}.');
        END IF;
        IF key_format = 'avro' AND NOT options ? 'schema_registry' THEN
            PERFORM streamrec._bad_argument('key_format avro needs "schema_registry"',
                                            'Avro keys are read in the Confluent wire format: give the registry''s URL.');
        END IF;
    END IF;

    value := options -> 'key_columns';
    IF value IS NOT NULL THEN
        IF jsonb_typeof(value) = 'array' AND jsonb_array_length(value) > 0
           AND NOT EXISTS (SELECT FROM jsonb_array_elements(value) e WHERE jsonb_typeof(e) <> 'string') THEN
            key_columns := ARRAY(SELECT e FROM jsonb_array_elements_text(value) WITH ORDINALITY k(e, n) ORDER BY n);
        ELSIF jsonb_typeof(value) = 'object' AND key_format IN ('json', 'avro') AND value <> '{}'
              AND NOT EXISTS (SELECT FROM jsonb_each(value) e WHERE jsonb_typeof(e.value) <> 'string' OR e.value #>> '{}' = '') THEN
            key_columns := ARRAY(SELECT jsonb_object_keys(value));
        ELSE
            PERFORM streamrec._bad_argument('option "key_columns" must be a non-empty array of column names '
                                            '(with key_format json or avro also a map column -> key field path)',
                                            'Example: {"key_columns": ["customer_id"]}; json and avro key fields are matched by name.');
        END IF;
        IF cardinality(key_columns) <> (SELECT count(DISTINCT c) FROM unnest(key_columns) c) THEN
            PERFORM streamrec._bad_argument('option "key_columns" names a column twice', 'List each column once.');
        END IF;
        FOREACH col IN ARRAY key_columns LOOP
            IF col <> ALL (table_columns) THEN
                RAISE EXCEPTION 'column "%" of option "key_columns" does not exist in %', col, target
                    USING ERRCODE = 'undefined_column', HINT = 'Columns: ' || array_to_string(table_columns, ', ') || '.';
            END IF;
            IF (format = 'csv' AND options -> 'columns' ? col) OR (format <> 'csv' AND (options -> 'columns') ? col)
               OR (options -> 'metadata') ? col THEN
                PERFORM streamrec._bad_argument(format('column "%s" is both in "key_columns" and in "columns" or "metadata"', col),
                                                'Map each column from one place: the key, the value or the metadata.');
            END IF;
        END LOOP;
        IF key_format = 'text' AND cardinality(key_columns) <> 1 THEN
            PERFORM streamrec._bad_argument('key_format text fills exactly one column',
                                            'Use key_format csv, json or avro for a key of several columns.');
        END IF;
        IF options ->> 'mode' = 'upsert' AND NOT options ? 'envelope' AND NOT primary_key <@ key_columns THEN
            RAISE EXCEPTION 'option "key_columns" must cover the primary key (%) of % in mode upsert',
                            array_to_string(primary_key, ', '), target
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'A tombstone (a message with a null value) deletes the row whose primary key is in the message key: list every primary key column in key_columns.';
        END IF;
    END IF;

    IF options ? 'envelope' THEN
        IF jsonb_typeof(options -> 'envelope') <> 'string' OR options ->> 'envelope' <> 'debezium' THEN
            PERFORM streamrec._bad_argument(format('unknown envelope "%s"', options ->> 'envelope'),
                                            'Use debezium for Debezium change events, or leave "envelope" out for plain rows.');
        END IF;
        IF format NOT IN ('json', 'avro') THEN
            PERFORM streamrec._bad_argument('envelope debezium applies to json and avro sources',
                                            'Use format json (with or without the JSON converter''s schema) or avro.');
        END IF;
        IF options ? 'mode' AND options ->> 'mode' IS DISTINCT FROM 'upsert' THEN
            PERFORM streamrec._bad_argument('envelope debezium applies changes as upserts and deletes',
                                            'Leave "mode" out or set it to upsert.');
        END IF;
        IF primary_key IS NULL THEN
            RAISE EXCEPTION 'envelope debezium needs a primary key on %', target
                USING ERRCODE = 'invalid_table_definition', HINT = 'Add the primary key of the replicated table.';
        END IF;
        FOREACH col IN ARRAY primary_key LOOP
            IF NOT (col = ANY (key_columns) OR ((options -> 'columns') ? col)
                    OR (NOT options ? 'columns' AND NOT (options -> 'metadata') ? col)) THEN
                PERFORM streamrec._bad_argument(format('primary key column "%s" of %s is not mapped', col, target),
                                                'Map it in "columns" (or "key_columns"): deletes and key changes name rows by it.');
            END IF;
        END LOOP;
    END IF;

    IF upsert AND (options ? 'envelope' OR options ? 'key_columns') THEN
        IF NOT has_table_privilege(target, 'UPDATE') OR NOT has_table_privilege(target, 'DELETE') THEN
            RAISE EXCEPTION 'permission denied to update or delete in %', target
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Upserts with deletes (tombstones, change events) need INSERT, UPDATE and DELETE on the target.';
        END IF;
    END IF;
END $$;

-- Validates every option of a source against its format and target table.
CREATE OR REPLACE FUNCTION streamrec._check_source_options(format text, target regclass, options jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    allowed constant text[] := ARRAY['columns', 'metadata', 'start', 'group_id', 'partitions', 'mode',
                                     'schema_registry', 'schema', 'csv', 'kafka', 'batch_size', 'batch_ms', 'on_error',
                                     'batch_bytes', 'max_decoded_bytes', 'proto_schema', 'proto_message',
                                     'key_format', 'key_columns', 'envelope'];
    metadata_kinds constant text[] := ARRAY['timestamp', 'key', 'partition', 'offset', 'topic', 'ts_ms', 'source', 'op'];
    table_columns text[];
    key text;
    value jsonb;
    col text;
    n int;
BEGIN
    IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
        PERFORM streamrec._bad_argument('options must be a JSON object', 'Pass options as jsonb, e.g. ''{"batch_size": 5000}''.');
    END IF;
    FOR key IN SELECT jsonb_object_keys(options) LOOP
        IF key <> ALL (allowed) THEN
            PERFORM streamrec._bad_argument(format('unknown option "%s"', key),
                                            'Valid options: ' || array_to_string(allowed, ', ') || '.');
        END IF;
    END LOOP;

    SELECT array_agg(attname::text ORDER BY attnum) INTO table_columns
    FROM pg_attribute WHERE attrelid = target AND attnum > 0 AND NOT attisdropped AND attgenerated = '';

    -- columns: csv takes a list in field order, json/avro a map column -> field path.
    value := options -> 'columns';
    IF value IS NOT NULL THEN
        IF format = 'csv' THEN
            IF jsonb_typeof(value) <> 'array' OR jsonb_array_length(value) = 0
               OR EXISTS (SELECT FROM jsonb_array_elements(value) e WHERE jsonb_typeof(e) <> 'string') THEN
                PERFORM streamrec._bad_argument('option "columns" of a csv source must be a non-empty array of column names',
                                                'Example: {"columns": ["user_id", "product_id"]}.');
            END IF;
            FOR col IN SELECT jsonb_array_elements_text(value) LOOP
                IF col <> ALL (table_columns) THEN
                    RAISE EXCEPTION 'column "%" of option "columns" does not exist in %', col, target
                        USING ERRCODE = 'undefined_column', HINT = 'Columns: ' || array_to_string(table_columns, ', ') || '.';
                END IF;
            END LOOP;
            SELECT count(*) - count(DISTINCT e) INTO n FROM jsonb_array_elements_text(value) e;
            IF n > 0 THEN
                PERFORM streamrec._bad_argument('option "columns" names a column twice', 'List each column once.');
            END IF;
        ELSE
            IF jsonb_typeof(value) <> 'object'
               OR EXISTS (SELECT FROM jsonb_each(value) e WHERE jsonb_typeof(e.value) <> 'string' OR e.value #>> '{}' = '') THEN
                PERFORM streamrec._bad_argument(format('option "columns" of a %s source must map columns to field paths', format),
                                                'Example: {"columns": {"user_id": "user.id", "product_id": "product_id"}}.');
            END IF;
            FOR col IN SELECT jsonb_object_keys(value) LOOP
                IF col <> ALL (table_columns) THEN
                    RAISE EXCEPTION 'column "%" of option "columns" does not exist in %', col, target
                        USING ERRCODE = 'undefined_column', HINT = 'Columns: ' || array_to_string(table_columns, ', ') || '.';
                END IF;
            END LOOP;
        END IF;
    END IF;

    value := options -> 'metadata';
    IF value IS NOT NULL THEN
        IF jsonb_typeof(value) <> 'object'
           OR EXISTS (SELECT FROM jsonb_each(value) e WHERE jsonb_typeof(e.value) <> 'string' OR (e.value #>> '{}') <> ALL (metadata_kinds)) THEN
            PERFORM streamrec._bad_argument('option "metadata" must map columns to timestamp, key, partition, offset or topic',
                                            'Example: {"metadata": {"event_time": "timestamp"}}.');
        END IF;
        IF NOT options ? 'envelope'
           AND EXISTS (SELECT FROM jsonb_each_text(value) e WHERE e.value IN ('ts_ms', 'source', 'op')) THEN
            PERFORM streamrec._bad_argument('metadata ts_ms, source and op are fields of a Debezium change event',
                                            'Add {"envelope": "debezium"}, or map the column to timestamp, key, partition, offset or topic.');
        END IF;
        FOR col IN SELECT jsonb_object_keys(value) LOOP
            IF col <> ALL (table_columns) THEN
                RAISE EXCEPTION 'column "%" of option "metadata" does not exist in %', col, target
                    USING ERRCODE = 'undefined_column', HINT = 'Columns: ' || array_to_string(table_columns, ', ') || '.';
            END IF;
            IF (format = 'csv' AND options -> 'columns' ? col) OR (format <> 'csv' AND (options -> 'columns') ? col) THEN
                PERFORM streamrec._bad_argument(format('column "%s" is both in "columns" and in "metadata"', col),
                                                'Map each column from one place.');
            END IF;
        END LOOP;
    END IF;

    IF options ? 'start' THEN
        IF jsonb_typeof(options -> 'start') <> 'string' THEN
            PERFORM streamrec._bad_argument('option "start" must be a string', 'Use earliest, latest or an ISO timestamp.');
        END IF;
        PERFORM streamrec._check_start(options ->> 'start');
    END IF;
    IF options ? 'group_id' AND (jsonb_typeof(options -> 'group_id') <> 'string' OR options ->> 'group_id' = '') THEN
        PERFORM streamrec._bad_argument('option "group_id" must be a non-empty string', 'Example: {"group_id": "clicks-db1"}.');
    END IF;
    IF options ? 'partitions' THEN
        value := options -> 'partitions';
        IF jsonb_typeof(value) <> 'array' OR jsonb_array_length(value) = 0
           OR EXISTS (SELECT FROM jsonb_array_elements(value) e
                      WHERE jsonb_typeof(e) <> 'number' OR e::text !~ '^[0-9]{1,9}$')
           OR (SELECT count(DISTINCT e::text) FROM jsonb_array_elements(value) e) <> jsonb_array_length(value) THEN
            PERFORM streamrec._bad_argument('option "partitions" must be a non-empty array of distinct partition numbers',
                                            'Example: {"partitions": [0, 2, 4]} for the even partitions of a six-partition topic.');
        END IF;
        IF options ? 'group_id' THEN
            PERFORM streamrec._bad_argument('options "partitions" and "group_id" exclude each other',
                                            'A consumer group assigns partitions itself; choose partitions or group_id.');
        END IF;
    END IF;
    IF options ? 'mode' THEN
        IF coalesce(options ->> 'mode', '') NOT IN ('append', 'upsert') THEN
            PERFORM streamrec._bad_argument(format('unknown mode "%s"', options ->> 'mode'), 'Use append or upsert.');
        END IF;
        IF options ->> 'mode' = 'upsert' THEN
            IF NOT EXISTS (SELECT FROM pg_index WHERE indrelid = target AND indisprimary) THEN
                RAISE EXCEPTION 'mode upsert needs a primary key on %', target
                    USING ERRCODE = 'invalid_table_definition', HINT = 'Add a primary key or use mode append.';
            END IF;
            IF NOT has_table_privilege(target, 'UPDATE') THEN
                RAISE EXCEPTION 'permission denied to update %', target
                    USING ERRCODE = 'insufficient_privilege', HINT = 'mode upsert needs INSERT and UPDATE on the target.';
            END IF;
        END IF;
    END IF;
    IF options ? 'schema_registry' THEN
        IF format NOT IN ('avro', 'protobuf') AND options ->> 'key_format' IS DISTINCT FROM 'avro' THEN
            PERFORM streamrec._bad_argument('option "schema_registry" applies to avro and protobuf sources (or avro keys) only',
                                            'Remove it or use format avro or protobuf (or key_format avro).');
        END IF;
        IF coalesce(options ->> 'schema_registry', '') !~ '^https?://' THEN
            PERFORM streamrec._bad_argument('option "schema_registry" must be an http(s) URL',
                                            'Example: http://registry:8081 or http://apicurio:8080/apis/ccompat/v6.');
        END IF;
    END IF;
    IF options ? 'schema' THEN
        IF format <> 'avro' THEN
            PERFORM streamrec._bad_argument('option "schema" applies to avro sources only', 'Remove it or use format avro.');
        END IF;
        IF jsonb_typeof(options -> 'schema') NOT IN ('string', 'object') THEN
            PERFORM streamrec._bad_argument('option "schema" must be an Avro schema (JSON object or string)', 'Example: {"schema": {"type": "record", ...}}.');
        END IF;
    END IF;
    IF format = 'avro' AND (options ? 'schema_registry') = (options ? 'schema') THEN
        PERFORM streamrec._bad_argument('an avro source needs exactly one of "schema_registry" and "schema"',
                                        'Use schema_registry for Confluent-framed messages, schema for plain Avro.');
    END IF;
    -- protobuf: Confluent-framed through schema_registry, or plain with an inline .proto.
    FOREACH key IN ARRAY ARRAY['proto_schema', 'proto_message'] LOOP
        IF options ? key AND format <> 'protobuf' THEN
            PERFORM streamrec._bad_argument(format('option "%s" applies to protobuf sources only', key),
                                            'Remove it or use format protobuf.');
        END IF;
        IF options ? key AND (jsonb_typeof(options -> key) <> 'string' OR options ->> key = '') THEN
            PERFORM streamrec._bad_argument(format('option "%s" must be a non-empty string', key),
                                            CASE key WHEN 'proto_schema' THEN 'The text of a .proto file, e.g. "syntax = \"proto3\"; message Click { ... }".'
                                                     ELSE 'The message type to decode, e.g. "shop.Click" (default: the first message of proto_schema).' END);
        END IF;
    END LOOP;
    IF format = 'protobuf' AND (options ? 'schema_registry') = (options ? 'proto_schema') THEN
        PERFORM streamrec._bad_argument('a protobuf source needs exactly one of "schema_registry" and "proto_schema"',
                                        'Use schema_registry for Confluent-framed messages, proto_schema (with proto_message) for plain Protobuf.');
    END IF;
    IF options ? 'proto_message' AND NOT options ? 'proto_schema' THEN
        PERFORM streamrec._bad_argument('option "proto_message" needs option "proto_schema"',
                                        'With schema_registry, each message names its type in its Confluent header.');
    END IF;
    IF options ? 'csv' THEN
        value := options -> 'csv';
        IF format <> 'csv' THEN
            PERFORM streamrec._bad_argument('option "csv" applies to csv sources only', 'Remove it or use format csv.');
        END IF;
        IF jsonb_typeof(value) <> 'object'
           OR EXISTS (SELECT FROM jsonb_object_keys(value) k WHERE k NOT IN ('delimiter', 'quote', 'null', 'header'))
           OR (value ? 'delimiter' AND (jsonb_typeof(value -> 'delimiter') <> 'string' OR octet_length(value ->> 'delimiter') <> 1))
           OR (value ? 'quote' AND (jsonb_typeof(value -> 'quote') <> 'string' OR octet_length(value ->> 'quote') <> 1))
           OR (value ? 'null' AND jsonb_typeof(value -> 'null') <> 'string')
           OR (value ? 'header' AND jsonb_typeof(value -> 'header') <> 'boolean')
           OR (value ->> 'delimiter') = coalesce(value ->> 'quote', '"') THEN
            PERFORM streamrec._bad_argument('invalid option "csv"',
                                            'Use {"delimiter": ",", "quote": "\"", "null": "", "header": false} with one-byte delimiter and quote that differ.');
        END IF;
    END IF;
    IF options ? 'kafka' THEN
        value := options -> 'kafka';
        IF jsonb_typeof(value) <> 'object'
           OR EXISTS (SELECT FROM jsonb_each(value) e WHERE jsonb_typeof(e.value) NOT IN ('string', 'number', 'boolean')) THEN
            PERFORM streamrec._bad_argument('option "kafka" must map librdkafka property names to values',
                                            'Example: {"kafka": {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}}.');
        END IF;
        PERFORM streamrec._check_kafka_properties(value);
    END IF;
    FOREACH key IN ARRAY ARRAY['batch_size', 'batch_ms'] LOOP
        IF options ? key AND (jsonb_typeof(options -> key) <> 'number' OR (options ->> key) !~ '^[0-9]+$'
                              OR (options ->> key)::numeric < 1
                              OR (options ->> key)::numeric > CASE key WHEN 'batch_size' THEN 1000000 ELSE 600000 END) THEN
            PERFORM streamrec._bad_argument(format('option "%s" must be a whole number from 1 to %s', key,
                                                   CASE key WHEN 'batch_size' THEN 1000000 ELSE 600000 END),
                                            'Defaults: batch_size 10000 messages, batch_ms 100 milliseconds.');
        END IF;
    END LOOP;
    -- Bounds on decoded bytes: what one message may expand to, and where a batch ends early.
    FOREACH key IN ARRAY ARRAY['batch_bytes', 'max_decoded_bytes'] LOOP
        IF options ? key AND (jsonb_typeof(options -> key) <> 'number' OR (options ->> key) !~ '^[0-9]+$'
                              OR (options ->> key)::numeric < 1024 OR (options ->> key)::numeric > 1073741823) THEN
            PERFORM streamrec._bad_argument(format('option "%s" must be a whole number of bytes from 1024 to 1073741823', key),
                                            'Defaults: batch_bytes 67108864 (64 MB of decoded rows per batch), '
                                            'max_decoded_bytes 67108864 (64 MB per message; a message decoding to more is dead-lettered).');
        END IF;
    END LOOP;
    IF options ? 'on_error' AND coalesce(options ->> 'on_error', '') NOT IN ('dead_letter', 'stop') THEN
        PERFORM streamrec._bad_argument(format('unknown on_error "%s"', options ->> 'on_error'), 'Use dead_letter or stop.');
    END IF;
    PERFORM streamrec._check_source_keys(format, target, options);
END $$;

-- Tombstones (null-value messages) each source counted and skipped.
CREATE FUNCTION streamrec._source_tombstones(OUT name text, OUT tombstones bigint) RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'streamrec_source_tombstones' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION streamrec._source_tombstones() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._source_tombstones() TO streamrec_admin;

CREATE OR REPLACE VIEW streamrec.source_stats WITH (security_invoker = true) AS
SELECT s.name,
       CASE WHEN s.paused AND s.last_error IS NOT NULL THEN 'stopped'
            WHEN s.paused THEN 'paused'
            ELSE coalesce(nullif(w.state, ''), 'starting') END AS state,
       w.pid,
       coalesce(w.messages, 0) AS messages,
       coalesce(w.rows, 0) AS rows,
       coalesce(w.bytes, 0) AS bytes,
       coalesce(w.dead_letters, 0) AS dead_letters,
       coalesce(w.batches, 0) AS batches,
       w.lag,
       w.last_message_at,
       coalesce(s.last_error, w.last_error) AS last_error,
       CASE WHEN s.last_error IS NOT NULL THEN s.last_error_at ELSE w.last_error_at END AS last_error_at,
       coalesce(t.tombstones, 0) AS tombstones
FROM streamrec.sources s
LEFT JOIN streamrec._worker_stats('s') w ON w.name = s.name
LEFT JOIN streamrec._source_tombstones() t ON t.name = s.name;
