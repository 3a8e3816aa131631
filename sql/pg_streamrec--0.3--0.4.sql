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
-- trigger fires in every session (ALWAYS: TRUNCATE and COPY applied too), and a row trigger
-- fires for the rows an apply worker applies (REPLICA: elsewhere the statement trigger tells).
-- The function runs no SQL and names nothing, whichever role fires it (an apply worker runs as
-- the subscription's owner); only the extension attaches it to a table.
ALTER TABLE streamrec.inventory ENABLE ALWAYS TRIGGER streamrec_inventory_changed;
CREATE TRIGGER streamrec_inventory_replicated AFTER INSERT OR UPDATE OR DELETE ON streamrec.inventory
    FOR EACH ROW EXECUTE FUNCTION streamrec._inventory_changed();
ALTER TABLE streamrec.inventory ENABLE REPLICA TRIGGER streamrec_inventory_replicated;
REVOKE ALL ON FUNCTION streamrec._inventory_changed() FROM PUBLIC;

-- The catalog's change trigger fires in every session too (ALWAYS: also with
-- session_replication_role = replica). The catalog is each server's own, never replicated.
-- Only the extension attaches the function to a table.
ALTER TABLE streamrec.pipeline_catalog ENABLE ALWAYS TRIGGER streamrec_catalog_changed;
REVOKE ALL ON FUNCTION streamrec._catalog_changed() FROM PUBLIC;
