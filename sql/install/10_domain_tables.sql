-- ---------------------------------------------------------------------------------------------
-- Domain tables: ordinary tables that sources fill and pipelines read. They keep their history
-- (for audit) until set_retention bounds them.
-- ---------------------------------------------------------------------------------------------
-- The item state of the pipelines: similar_products and category_affinity read it,
-- item_transactions changes stock, ratings keeps rating the average of the live ratings.
-- fillfactor leaves room on each page for the stock updates to be HOT (no index entries for a
-- changed stock).
CREATE TABLE streamrec.inventory (
    product_id  text PRIMARY KEY,
    name        text,
    category    text,
    stock       int NOT NULL DEFAULT 0,
    rating      real
) WITH (fillfactor = 80);
-- Candidates are read per category, best first.
CREATE INDEX inventory_category_idx ON streamrec.inventory (category, rating DESC NULLS LAST, product_id);
-- Pipelines keep what they read of the inventory between batches until a transaction that
-- changed it commits: this statement trigger tells them (one call per statement, any role).
CREATE FUNCTION streamrec._inventory_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_inventory_changed' LANGUAGE C;
CREATE TRIGGER streamrec_inventory_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON streamrec.inventory
    FOR EACH STATEMENT EXECUTE FUNCTION streamrec._inventory_changed();
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

CREATE TABLE streamrec.clicks (
    click_id    text,
    user_id     text NOT NULL,
    product_id  text,
    event_type  text NOT NULL DEFAULT 'page_view',
    query       text,
    event_time  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE streamrec.purchases (
    invoice_id    text,
    user_id       text NOT NULL,
    product_id    text NOT NULL,
    quantity      int NOT NULL DEFAULT 1,
    unit_cost     numeric,
    purchase_time timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE streamrec.users (
    user_id     text PRIMARY KEY,
    name        text
);

CREATE TABLE streamrec.checkouts (
    checkout_id    text PRIMARY KEY,
    user_id        text NOT NULL,
    product_id     text NOT NULL,
    payment_method text,
    total_amount   numeric,
    checkout_time  timestamptz NOT NULL
);

CREATE TABLE streamrec.customers (
    customer_id text PRIMARY KEY,
    first_name  text,
    last_name   text,
    email       text,
    club_status text
);

CREATE TABLE streamrec.ratings (
    rating_id   text,
    user_id     text NOT NULL,
    product_id  text,
    stars       int NOT NULL,
    channel     text,
    message     text,
    rating_time timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE streamrec.item_transactions (
    transaction_id bigint,
    item_id        text NOT NULL,
    quantity       int NOT NULL,
    ts             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE streamrec.stock_queries (
    query_id bigint,
    item_id  text NOT NULL
);
