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
