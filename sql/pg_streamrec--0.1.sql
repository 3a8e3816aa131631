-- pg_streamrec 0.1: catalog, domain tables and entry points.
\echo Use "CREATE EXTENSION pg_streamrec" to load this file. \quit

-- ---------------------------------------------------------------------------------------------
-- Catalog: what the launcher runs. Only superusers (and, later, streamrec_admin) touch these;
-- options may hold Kafka credentials, so nothing here is readable by PUBLIC.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.sources (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
    topic       text NOT NULL CHECK (topic <> ''),
    target      regclass NOT NULL,
    format      text NOT NULL DEFAULT 'csv' CHECK (format IN ('csv', 'json', 'avro')),
    brokers     text,
    options     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    paused      boolean NOT NULL DEFAULT false,
    owner       oid NOT NULL DEFAULT ((current_user)::regrole)::oid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE streamrec.sources IS 'Kafka topics consumed into tables, one worker each';

CREATE TABLE streamrec.source_offsets (
    source      text NOT NULL REFERENCES streamrec.sources(name) ON DELETE CASCADE,
    partition   int NOT NULL CHECK (partition >= 0),
    next_offset bigint NOT NULL CHECK (next_offset >= 0),
    PRIMARY KEY (source, partition)
);
COMMENT ON TABLE streamrec.source_offsets IS 'Next offset to read per partition, committed with the rows it produced';

CREATE TABLE streamrec.dead_letters (
    id          bigserial PRIMARY KEY,
    source      text NOT NULL,
    topic       text NOT NULL,
    partition   int NOT NULL,
    "offset"    bigint NOT NULL,
    key         bytea,
    payload     bytea,
    error       text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_source_idx ON streamrec.dead_letters (source, received_at);
COMMENT ON TABLE streamrec.dead_letters IS 'Messages a source could not decode or store, with their raw bytes and the reason';

CREATE TABLE streamrec.sinks (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
    relation    regclass NOT NULL,
    topic       text NOT NULL CHECK (topic <> ''),
    format      text NOT NULL DEFAULT 'csv' CHECK (format IN ('csv', 'json', 'avro')),
    brokers     text,
    options     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    paused      boolean NOT NULL DEFAULT false,
    owner       oid NOT NULL DEFAULT ((current_user)::regrole)::oid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE streamrec.sinks IS 'Tables whose new rows are produced to Kafka topics, one worker each';

REVOKE ALL ON streamrec.sources, streamrec.source_offsets, streamrec.dead_letters, streamrec.sinks FROM PUBLIC;

-- pg_dump keeps the catalog's rows (offsets included) with the extension.
SELECT pg_catalog.pg_extension_config_dump('streamrec.sources', '');
SELECT pg_catalog.pg_extension_config_dump('streamrec.source_offsets', '');
SELECT pg_catalog.pg_extension_config_dump('streamrec.sinks', '');
SELECT pg_catalog.pg_extension_config_dump('streamrec.dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('streamrec.dead_letters_id_seq', '');

-- ---------------------------------------------------------------------------------------------
-- Domain tables (DESIGN.md section 3): ordinary tables that sources fill and pipelines read.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.inventory (
    product_id  text PRIMARY KEY,
    name        text,
    category    text,
    stock       int NOT NULL DEFAULT 0,
    rating      real
);

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

-- ---------------------------------------------------------------------------------------------
-- Error-boundary self test (superuser only): proves C++ and PostgreSQL errors cross cleanly.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION streamrec._selftest(kind text) RETURNS text
    AS 'MODULE_PATHNAME', 'streamrec_selftest' LANGUAGE C VOLATILE;
CREATE FUNCTION streamrec._selftest_live_objects() RETURNS int
    AS 'MODULE_PATHNAME', 'streamrec_selftest_live_objects' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION streamrec._selftest(text), streamrec._selftest_live_objects() FROM PUBLIC;
