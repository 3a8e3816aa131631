-- pg_streamrec 0.3 -> 0.4: several servers (standby failover, partition-parallel servers,
-- dimensions replicated by logical replication). Rows, offsets, triggers and sinks stay as they
-- are; the result is the schema a fresh 0.4 install creates (tests/integration/test_upgrade.py
-- compares the two, starting from 0.1).
\echo Use "ALTER EXTENSION pg_streamrec UPDATE TO '0.4'" to load this file. \quit

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
