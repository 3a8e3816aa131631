-- The change triggers of the inventory and the catalog under logical replication. An apply
-- worker runs with session_replication_role = replica: only triggers enabled REPLICA or ALWAYS
-- fire, and statement triggers only for a TRUNCATE it applies. Here a session with that role
-- stands in for it; tests/integration/test_dimensions.py runs real subscriptions.
CREATE EXTENSION pg_streamrec;
\set SHOW_CONTEXT never
\set VERBOSITY terse

-- The statement triggers fire in every session (A). The inventory's row trigger for applied
-- rows exists only while a subscription replicates the inventory (none here): an event trigger
-- follows the subscription commands.
SELECT tgrelid::regclass, tgname, tgenabled,
       CASE WHEN tgtype & 1 = 1 THEN 'row' ELSE 'statement' END AS level
FROM pg_trigger WHERE tgfoid IN ('streamrec._inventory_changed'::regproc, 'streamrec._catalog_changed'::regproc)
ORDER BY 1::text, 2;
SELECT evtname, evtevent, evtenabled, evttags, evtfoid::regproc FROM pg_event_trigger WHERE evtname LIKE 'streamrec%' ORDER BY 1;
-- Called otherwise, its functions do nothing here or refuse.
SELECT streamrec._follow_inventory_subscriptions();
SELECT count(*) FROM pg_trigger WHERE tgname = 'streamrec_inventory_replicated';
SELECT streamrec._subscriptions_changed();

-- One session clicks throughout, as a source worker does: it keeps the inventory between
-- batches (from its second batch on, the inventory being calm), and must see every change.
INSERT INTO streamrec.inventory (product_id, category, stock, rating) VALUES
    ('p1', 'c', 1, 5), ('p2', 'c', 1, 4), ('p3', 'c', 1, 3), ('p4', 'c', 1, 2);
SELECT streamrec.enable_pipeline('similar_products', '{"repeats": "allow"}');
INSERT INTO streamrec.clicks (click_id, user_id, product_id) VALUES ('v1', 'u1', 'p1');
INSERT INTO streamrec.clicks (click_id, user_id, product_id) VALUES ('v2', 'u2', 'p1');

-- A change in a replica session (as an apply worker makes it), by a role that may update the
-- inventory: the triggers' function is not PUBLIC's, and they fire all the same.
CREATE ROLE replication_role_writer;
GRANT USAGE ON SCHEMA streamrec TO replication_role_writer;
GRANT SELECT, UPDATE ON streamrec.inventory TO replication_role_writer;
SET session_replication_role = replica;
SET ROLE replication_role_writer;
UPDATE streamrec.inventory SET stock = 0 WHERE product_id = 'p2';
RESET ROLE;
RESET session_replication_role;
INSERT INTO streamrec.clicks (click_id, user_id, product_id) VALUES ('v3', 'u3', 'p1');
INSERT INTO streamrec.clicks (click_id, user_id, product_id) VALUES ('v4', 'u4', 'p1');
-- The options too: a catalog change in a replica session.
SET session_replication_role = replica;
UPDATE streamrec.pipeline_catalog SET options = options || '{"top_k": 1}' WHERE name = 'similar_products';
RESET session_replication_role;
INSERT INTO streamrec.clicks (click_id, user_id, product_id) VALUES ('v5', 'u5', 'p1');
SELECT streamrec.enable_pipeline('similar_products', '{"repeats": "allow"}');
-- And a TRUNCATE there: p1 is no longer known, so no list.
SET session_replication_role = replica;
TRUNCATE streamrec.inventory;
RESET session_replication_role;
INSERT INTO streamrec.clicks (click_id, user_id, product_id) VALUES ('v6', 'u6', 'p1');
SELECT user_id, product_ids FROM streamrec.recommendations ORDER BY user_id;

-- Only the extension attaches the change functions to a table.
CREATE ROLE replication_role_outsider;
SET ROLE replication_role_outsider;
CREATE TEMP TABLE outsider_t (x int);
CREATE TRIGGER t AFTER INSERT ON outsider_t FOR EACH STATEMENT EXECUTE FUNCTION streamrec._inventory_changed();
CREATE TRIGGER t AFTER INSERT ON outsider_t FOR EACH STATEMENT EXECUTE FUNCTION streamrec._catalog_changed();
SELECT streamrec._follow_inventory_subscriptions();
RESET ROLE;
DROP TABLE outsider_t;

SELECT streamrec.disable_pipeline('similar_products');
REVOKE ALL ON streamrec.inventory FROM replication_role_writer;
REVOKE ALL ON SCHEMA streamrec FROM replication_role_writer;
DROP EXTENSION pg_streamrec;
DROP ROLE replication_role_writer, replication_role_outsider;
