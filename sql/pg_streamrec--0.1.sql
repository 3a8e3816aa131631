-- pg_streamrec 0.1: catalog, domain tables and entry points.
\echo Use "CREATE EXTENSION pg_streamrec" to load this file. \quit

-- The role the caller acts as, by OID: owners are compared as OIDs (a name cast such as
-- current_user::text::regrole folds "Adm1" into adm1).
CREATE FUNCTION streamrec._current_role() RETURNS oid
    AS 'MODULE_PATHNAME', 'streamrec_current_role' LANGUAGE C STABLE PARALLEL SAFE;

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
    owner       oid NOT NULL DEFAULT streamrec._current_role(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    generation  int NOT NULL DEFAULT 0,   -- bumped to make the launcher restart the worker
    last_error  text,                     -- set when on_error = stop stopped the source
    last_error_at timestamptz
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
    received_at timestamptz NOT NULL DEFAULT now(),
    owner       oid NOT NULL DEFAULT streamrec._current_role()  -- the source's owner (who wrote it)
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
    owner       oid NOT NULL DEFAULT streamrec._current_role(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    generation  int NOT NULL DEFAULT 0,
    last_error  text,
    last_error_at timestamptz
);
COMMENT ON TABLE streamrec.sinks IS 'Tables whose new rows are produced to Kafka topics, one worker each';

REVOKE ALL ON streamrec.sources, streamrec.source_offsets, streamrec.dead_letters, streamrec.sinks FROM PUBLIC;

-- Non-superusers administer sources and sinks through membership in streamrec_admin. Each
-- sees and changes only the rows it owns (row-level security), so one admin never reads
-- another's Kafka credentials; a worker runs as its owner and so passes the same policies.
DO $$
BEGIN
    CREATE ROLE streamrec_admin NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
GRANT USAGE ON SCHEMA streamrec TO streamrec_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON streamrec.sources, streamrec.source_offsets,
    streamrec.dead_letters, streamrec.sinks TO streamrec_admin;
GRANT USAGE ON SEQUENCE streamrec.dead_letters_id_seq TO streamrec_admin;
ALTER TABLE streamrec.sources ENABLE ROW LEVEL SECURITY;
ALTER TABLE streamrec.sinks ENABLE ROW LEVEL SECURITY;
ALTER TABLE streamrec.source_offsets ENABLE ROW LEVEL SECURITY;
ALTER TABLE streamrec.dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_sources ON streamrec.sources USING (owner = streamrec._current_role());
CREATE POLICY own_sinks ON streamrec.sinks USING (owner = streamrec._current_role());
-- Offsets go with their source (ON DELETE CASCADE) and source names are unique, so the
-- caller's visible sources are its own. Dead letters carry their writer (the source's owner):
-- they stay private to it even once the source is dropped and its name taken by another role
-- (drop_source deletes them anyway).
CREATE POLICY own_offsets ON streamrec.source_offsets USING (source IN (SELECT name FROM streamrec.sources));
CREATE POLICY own_dead_letters ON streamrec.dead_letters USING (owner = streamrec._current_role());

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

-- ---------------------------------------------------------------------------------------------
-- Sources API (DESIGN.md section 2). Invoker's rights: the caller's own privileges decide what
-- a source may write, and row-level security records the caller as the owner the worker runs as.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION streamrec._require_admin() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'streamrec_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied to manage pg_streamrec sources and sinks'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('A superuser can run: GRANT streamrec_admin TO %I;', current_user);
    END IF;
END $$;

CREATE FUNCTION streamrec._bad_argument(message text, hint text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', message USING ERRCODE = 'invalid_parameter_value', HINT = hint;
END $$;

-- Checks a `start` position: earliest, latest or a timestamp.
CREATE FUNCTION streamrec._check_start(start text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF start IN ('earliest', 'latest') THEN
        RETURN;
    END IF;
    PERFORM start::timestamptz;
EXCEPTION WHEN others THEN
    PERFORM streamrec._bad_argument(format('invalid start position "%s"', start),
                                    'Use earliest, latest or an ISO timestamp such as 2024-06-28T13:00:00Z.');
END $$;

-- The librdkafka property allow-list (worker/kafka/property_policy.cpp): refuses a "kafka"
-- option the calling role may not set (42501 for superuser-only properties, 22023 for reserved
-- and unknown ones); the source and sink workers check their owner against it again at start.
CREATE FUNCTION streamrec._check_kafka_properties(properties jsonb) RETURNS void
    AS 'MODULE_PATHNAME', 'streamrec_check_kafka_properties' LANGUAGE C STABLE STRICT
    SET search_path = pg_catalog, pg_temp;
-- True for a property naming a credential (password, secret, private key, ...): views show ***.
CREATE FUNCTION streamrec._kafka_property_is_secret(name text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'streamrec_kafka_property_is_secret' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Validates every option of a source against its format and target table.
CREATE FUNCTION streamrec._check_source_options(format text, target regclass, options jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    allowed constant text[] := ARRAY['columns', 'metadata', 'start', 'group_id', 'partitions', 'mode',
                                     'schema_registry', 'schema', 'csv', 'kafka', 'batch_size', 'batch_ms', 'on_error',
                                     'batch_bytes', 'max_decoded_bytes'];
    metadata_kinds constant text[] := ARRAY['timestamp', 'key', 'partition', 'offset', 'topic'];
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
        IF format <> 'avro' THEN
            PERFORM streamrec._bad_argument('option "schema_registry" applies to avro sources only', 'Remove it or use format avro.');
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
END $$;

CREATE FUNCTION streamrec.create_source(name text, topic text, target regclass, format text DEFAULT 'csv',
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
    IF format IS NULL OR format NOT IN ('csv', 'json', 'avro') THEN
        PERFORM streamrec._bad_argument(format('unknown format "%s"', format), 'Use csv, json or avro.');
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

-- Finds a source the caller may manage, locking its row against the worker's next batch.
CREATE FUNCTION streamrec._lock_source(source_name text) RETURNS streamrec.sources
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found_row streamrec.sources;
BEGIN
    PERFORM streamrec._require_admin();
    SELECT * INTO found_row FROM streamrec.sources WHERE name = source_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source "%" does not exist', source_name
            USING ERRCODE = 'undefined_object', HINT = 'SELECT name FROM streamrec.sources lists your sources.';
    END IF;
    RETURN found_row;
END $$;

CREATE FUNCTION streamrec.drop_source(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM streamrec._lock_source(name);
    DELETE FROM streamrec.sources s WHERE s.name = drop_source.name;
END $$;

CREATE FUNCTION streamrec.pause_source(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM streamrec._lock_source(name);
    UPDATE streamrec.sources s SET paused = true, generation = generation + 1 WHERE s.name = pause_source.name;
END $$;

CREATE FUNCTION streamrec.resume_source(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM streamrec._lock_source(name);
    UPDATE streamrec.sources s SET paused = false, last_error = NULL, last_error_at = NULL, generation = generation + 1
    WHERE s.name = resume_source.name;
END $$;

-- Forgets the stored offsets: the source starts again from `start` (earliest, latest or a time).
CREATE FUNCTION streamrec.reset_source(name text, start text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM streamrec._lock_source(name);
    IF start IS NULL THEN
        PERFORM streamrec._bad_argument('start must not be NULL', 'Use earliest, latest or an ISO timestamp.');
    END IF;
    PERFORM streamrec._check_start(start);
    DELETE FROM streamrec.source_offsets o WHERE o.source = reset_source.name;
    UPDATE streamrec.sources s
    SET options = s.options || jsonb_build_object('start', reset_source.start), generation = generation + 1,
        last_error = NULL, last_error_at = NULL
    WHERE s.name = reset_source.name;
END $$;

-- Whether the caller (by OID) is a superuser.
CREATE FUNCTION streamrec._caller_is_superuser() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = streamrec._current_role()), false)
$$;

-- Every row of streamrec.sources passes the same checks however it is written (create_source,
-- or its owner's own INSERT or UPDATE): a non-superuser's row is owned by the role that inserts
-- it and keeps that owner; the target and options are checked as create_source checks them.
-- Invoker's rights: the privileges checked are the caller's and the owner's.
CREATE FUNCTION streamrec._source_row_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    caller_is_superuser constant boolean := streamrec._caller_is_superuser();
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NOT caller_is_superuser THEN
            NEW.owner := streamrec._current_role();
        END IF;
    ELSE
        IF NEW.name IS DISTINCT FROM OLD.name THEN
            RAISE EXCEPTION 'source "%" cannot be renamed', OLD.name
                USING ERRCODE = 'feature_not_supported', HINT = 'Create a source of the new name and drop the old one.';
        END IF;
        IF NEW.owner IS DISTINCT FROM OLD.owner AND NOT caller_is_superuser THEN
            RAISE EXCEPTION 'permission denied to change the owner of source "%"', OLD.name
                USING ERRCODE = 'insufficient_privilege', HINT = 'Only a superuser can give a source to another role.';
        END IF;
        IF (NEW.target, NEW.format, NEW.options, NEW.topic, NEW.brokers, NEW.owner)
           IS NOT DISTINCT FROM (OLD.target, OLD.format, OLD.options, OLD.topic, OLD.brokers, OLD.owner) THEN
            RETURN NEW;  -- paused, generation, last_error: nothing to check
        END IF;
    END IF;
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = NEW.target) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', NEW.target
            USING ERRCODE = 'wrong_object_type', HINT = 'A source fills an ordinary or partitioned table.';
    END IF;
    IF NOT caller_is_superuser AND NOT pg_catalog.has_table_privilege(NEW.owner, NEW.target, 'INSERT') THEN
        RAISE EXCEPTION 'permission denied to insert into %', NEW.target
            USING ERRCODE = 'insufficient_privilege', HINT = 'The source''s worker runs as its owner and needs INSERT on its target.';
    END IF;
    IF NOT caller_is_superuser AND pg_catalog.row_security_active(NEW.target::oid) THEN
        RAISE EXCEPTION '% has row-level security enabled', NEW.target
            USING ERRCODE = 'feature_not_supported', HINT = 'COPY cannot fill a table with row-level security; use a staging table.';
    END IF;
    PERFORM streamrec._check_source_options(NEW.format, NEW.target, NEW.options);
    RETURN NEW;
END $$;
CREATE TRIGGER check_source_row BEFORE INSERT OR UPDATE ON streamrec.sources
    FOR EACH ROW EXECUTE FUNCTION streamrec._source_row_check();

-- A source's dead letters go with it, however it is deleted.
CREATE FUNCTION streamrec._source_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM streamrec.dead_letters d WHERE d.source = OLD.name AND d.owner = OLD.owner;
    RETURN NULL;
END $$;
CREATE TRIGGER drop_source_dead_letters AFTER DELETE ON streamrec.sources
    FOR EACH ROW EXECUTE FUNCTION streamrec._source_deleted();

-- Live statistics of source and sink workers from shared memory.
CREATE FUNCTION streamrec._worker_stats(kind "char",
    OUT name text, OUT pid int, OUT state text, OUT messages bigint, OUT rows bigint, OUT bytes bigint,
    OUT dead_letters bigint, OUT batches bigint, OUT lag bigint, OUT last_message_at timestamptz,
    OUT last_error text, OUT last_error_at timestamptz) RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'streamrec_worker_stats' LANGUAGE C STRICT VOLATILE;

CREATE VIEW streamrec.source_stats WITH (security_invoker = true) AS
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
       CASE WHEN s.last_error IS NOT NULL THEN s.last_error_at ELSE w.last_error_at END AS last_error_at
FROM streamrec.sources s
LEFT JOIN streamrec._worker_stats('s') w ON w.name = s.name;

-- Everyone may call the API (and so gets a clear "permission denied" with a hint from
-- _require_admin); only superusers and streamrec_admin members get past that check.
GRANT USAGE ON SCHEMA streamrec TO PUBLIC;
REVOKE ALL ON FUNCTION streamrec._worker_stats("char") FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._worker_stats("char") TO streamrec_admin;
GRANT SELECT ON streamrec.source_stats TO streamrec_admin;

-- ---------------------------------------------------------------------------------------------
-- Sinks API (DESIGN.md section 2, issue 4). Every row inserted into a sink's relation is copied,
-- by a statement-level AFTER INSERT trigger in the inserting transaction, into the outbox; the
-- sink's worker produces outbox rows in order with an idempotent producer and deletes them once
-- the broker acknowledged them. A rolled-back insert leaves nothing in the outbox; a committed
-- one stays there until delivered (or, when no format can hold it, is kept with its error).
-- One outbox row holds a chunk of up to 1,000 rows (or about 8 MB) of one statement (a jsonb
-- array, or the row itself for a chunk of one): the outbox pays its per-row costs (heap tuple,
-- index entry, WAL record, the delete after delivery) once per chunk, not once per row.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.sink_outbox (
    sink        text NOT NULL,
    id          bigserial,
    payload     jsonb NOT NULL,       -- the row as to_jsonb(), or an array of them in insertion order
    created_at  timestamptz NOT NULL DEFAULT now(),
    error       text,                 -- set when the row cannot be encoded: kept for inspection
    rows        int NOT NULL DEFAULT 1 CHECK (rows > 0),  -- rows in payload
    PRIMARY KEY (sink, id)
);
-- A chunk's payload (some 100 kB) is toasted: lz4 compresses it several times faster than pglz,
-- on the inserting transaction's time (where the server is built without lz4, pglz it is).
DO $$
BEGIN
    ALTER TABLE streamrec.sink_outbox ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;
COMMENT ON TABLE streamrec.sink_outbox IS 'Rows waiting for a sink''s broker acknowledgement (chunks of up to 1,000 rows), and rows no format could encode (error set, one per outbox row)';
REVOKE ALL ON streamrec.sink_outbox FROM PUBLIC;
-- INSERT: the worker splits a row no format can hold out of its chunk, into an outbox row of its own.
GRANT SELECT, INSERT, UPDATE, DELETE ON streamrec.sink_outbox TO streamrec_admin;
GRANT USAGE ON SEQUENCE streamrec.sink_outbox_id_seq TO streamrec_admin;
ALTER TABLE streamrec.sink_outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_outbox ON streamrec.sink_outbox USING (sink IN (SELECT name FROM streamrec.sinks));

-- The outbox trigger (extension/sink_capture.cpp). SECURITY DEFINER: whoever inserts into the
-- relation (not only admins) must be able to append to the outbox, which nobody but the sink's
-- owner may read. The rows of the statement, each as to_jsonb(row), go in insertion order in
-- chunks of 1,000 (ids ascending with the chunks).
CREATE FUNCTION streamrec._sink_capture() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_sink_capture' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION streamrec._sink_capture() FROM PUBLIC;

CREATE FUNCTION streamrec._sink_trigger_name(sink_name text) RETURNS name
LANGUAGE sql IMMUTABLE AS $$
    SELECT (CASE WHEN octet_length('streamrec_sink_' || sink_name) <= 63 THEN 'streamrec_sink_' || sink_name
                 ELSE 'streamrec_sink_' || md5(sink_name) END)::name
$$;

-- Makes the relation's outbox trigger match the catalog: installs it while the sink exists,
-- drops it once no sink of that name ships the relation, and drops the outbox rows of a name
-- only once no sink of that name exists at all. SECURITY DEFINER so that SELECT on the
-- relation is enough to sink it (the trigger only copies rows its owner may read anyway); safe
-- for any admin to call with any arguments, since it only ever follows the catalog (it cannot
-- see its caller) and drops nothing but the extension's own capture triggers.
CREATE FUNCTION streamrec._sync_sink_trigger(sink_name text, rel regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sink_owner oid;
    sink_options jsonb;
    read_columns text := '';
    trigger_name constant name := streamrec._sink_trigger_name(sink_name);
BEGIN
    SELECT owner, options INTO sink_owner, sink_options FROM streamrec.sinks WHERE name = sink_name AND relation = rel;
    IF FOUND THEN
        -- A sink that names its value columns reads only those and its key: the capture keeps
        -- only them (trigger arguments after the sink's name).
        IF sink_options ? 'columns' THEN
            SELECT string_agg(format(', %L', c), '' ORDER BY c) INTO read_columns FROM (
                SELECT jsonb_array_elements_text(sink_options -> 'columns') AS c
                UNION
                SELECT jsonb_array_elements_text(CASE jsonb_typeof(sink_options -> 'key') WHEN 'array' THEN sink_options -> 'key'
                                                      ELSE jsonb_build_array(sink_options -> 'key') END)
            ) x WHERE c IS NOT NULL;
        END IF;
        IF NOT has_table_privilege(sink_owner, rel, 'SELECT') THEN
            RAISE EXCEPTION 'permission denied to read %', rel
                USING ERRCODE = 'insufficient_privilege', HINT = 'A sink ships the rows of a table its owner may SELECT.';
        END IF;
        -- Row-level security that applies to the owner (as check_enable_rls decides): such a
        -- table's every insert would fail in the capture (the internal tables among them).
        IF (SELECT c.relrowsecurity AND (c.relforcerowsecurity OR NOT pg_has_role(sink_owner, c.relowner, 'USAGE'))
            FROM pg_class c WHERE c.oid = rel)
           AND NOT (SELECT r.rolsuper OR r.rolbypassrls FROM pg_roles r WHERE r.oid = sink_owner) THEN
            RAISE EXCEPTION '% has row-level security enabled', rel
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'A sink ships every inserted row, so its owner must see them all: disable row-level security, or own the table (without FORCE ROW LEVEL SECURITY), or have BYPASSRLS.';
        END IF;
        IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = rel AND tgname = trigger_name) THEN
            EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS streamrec_new_rows '
                           'FOR EACH STATEMENT EXECUTE FUNCTION streamrec._sink_capture(%L%s)', trigger_name, rel, sink_name,
                           coalesce(read_columns, ''));
        ELSIF NOT EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = rel AND t.tgname = trigger_name
                                                   AND position(convert_to(sink_name, 'UTF8') || decode('00', 'hex') IN t.tgargs) = 1) THEN
            -- A long name's trigger is named by its md5, which another sink's name may spell.
            RAISE EXCEPTION 'trigger "%" on % is not the capture trigger of sink "%"', trigger_name, rel, sink_name
                USING ERRCODE = 'duplicate_object', HINT = 'Choose another name for the sink.';
        END IF;
    ELSE
        -- Only this sink's own capture trigger (its first argument is the sink's name).
        IF EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = rel AND t.tgname = trigger_name
                                            AND t.tgfoid = 'streamrec._sink_capture()'::regprocedure
                                            AND position(convert_to(sink_name, 'UTF8') || decode('00', 'hex') IN t.tgargs) = 1) THEN
            EXECUTE format('DROP TRIGGER %I ON %s', trigger_name, rel);
        END IF;
        IF NOT EXISTS (SELECT FROM streamrec.sinks k WHERE k.name = sink_name) THEN
            DELETE FROM streamrec.sink_outbox WHERE sink = sink_name;
        END IF;
    END IF;
END $$;
REVOKE ALL ON FUNCTION streamrec._sync_sink_trigger(text, regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._sync_sink_trigger(text, regclass) TO streamrec_admin;

-- Validates every option of a sink against its format and relation.
CREATE FUNCTION streamrec._check_sink_options(format text, rel regclass, options jsonb) RETURNS void
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
        IF format <> 'avro' THEN
            PERFORM streamrec._bad_argument('options "schema_registry" and "subject" apply to avro sinks only',
                                            'Remove them or use format avro.');
        END IF;
    END IF;
    IF format = 'avro' AND coalesce(options ->> 'schema_registry', '') !~ '^https?://' THEN
        PERFORM streamrec._bad_argument('an avro sink needs option "schema_registry", an http(s) URL',
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

CREATE FUNCTION streamrec.create_sink(name text, relation regclass, topic text, format text DEFAULT 'csv',
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
    IF format IS NULL OR format NOT IN ('csv', 'json', 'avro') THEN
        PERFORM streamrec._bad_argument(format('unknown format "%s"', format), 'Use csv, json or avro.');
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

-- Finds a sink the caller may manage, locking its row against the worker's next batch.
CREATE FUNCTION streamrec._lock_sink(sink_name text) RETURNS streamrec.sinks
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found_row streamrec.sinks;
BEGIN
    PERFORM streamrec._require_admin();
    SELECT * INTO found_row FROM streamrec.sinks WHERE name = sink_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sink "%" does not exist', sink_name
            USING ERRCODE = 'undefined_object', HINT = 'SELECT name FROM streamrec.sinks lists your sinks.';
    END IF;
    RETURN found_row;
END $$;

-- Removes the sink, its trigger and its outbox rows (undelivered rows are discarded).
CREATE FUNCTION streamrec.drop_sink(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sink streamrec.sinks;
BEGIN
    sink := streamrec._lock_sink(name);
    DELETE FROM streamrec.sinks s WHERE s.name = drop_sink.name;
    PERFORM streamrec._sync_sink_trigger(sink.name, sink.relation);
END $$;

-- A paused sink keeps capturing rows into the outbox; resume produces them in order.
CREATE FUNCTION streamrec.pause_sink(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM streamrec._lock_sink(name);
    UPDATE streamrec.sinks s SET paused = true, generation = generation + 1 WHERE s.name = pause_sink.name;
END $$;

CREATE FUNCTION streamrec.resume_sink(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM streamrec._lock_sink(name);
    UPDATE streamrec.sinks s SET paused = false, last_error = NULL, last_error_at = NULL, generation = generation + 1
    WHERE s.name = resume_sink.name;
END $$;

-- As for sources: a non-superuser's sink is owned by the role that inserts it and keeps that
-- owner, its name and relation never change (the outbox trigger is named after it), and the
-- relation and options are checked as create_sink checks them.
CREATE FUNCTION streamrec._sink_row_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    caller_is_superuser constant boolean := streamrec._caller_is_superuser();
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NOT caller_is_superuser THEN
            NEW.owner := streamrec._current_role();
        END IF;
    ELSE
        IF NEW.name IS DISTINCT FROM OLD.name OR NEW.relation IS DISTINCT FROM OLD.relation THEN
            RAISE EXCEPTION 'sink "%" cannot be renamed or moved to another relation', OLD.name
                USING ERRCODE = 'feature_not_supported', HINT = 'Create a new sink and drop the old one.';
        END IF;
        IF NEW.owner IS DISTINCT FROM OLD.owner AND NOT caller_is_superuser THEN
            RAISE EXCEPTION 'permission denied to change the owner of sink "%"', OLD.name
                USING ERRCODE = 'insufficient_privilege', HINT = 'Only a superuser can give a sink to another role.';
        END IF;
        IF (NEW.format, NEW.options, NEW.topic, NEW.brokers, NEW.owner)
           IS NOT DISTINCT FROM (OLD.format, OLD.options, OLD.topic, OLD.brokers, OLD.owner) THEN
            RETURN NEW;  -- paused, generation, last_error: nothing to check
        END IF;
    END IF;
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = NEW.relation) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', NEW.relation
            USING ERRCODE = 'wrong_object_type', HINT = 'A sink produces the rows inserted into an ordinary or partitioned table.';
    END IF;
    IF NOT caller_is_superuser AND NOT pg_catalog.has_table_privilege(NEW.owner, NEW.relation, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied to read %', NEW.relation
            USING ERRCODE = 'insufficient_privilege', HINT = 'The sink''s worker runs as its owner and needs SELECT on the relation.';
    END IF;
    IF NOT caller_is_superuser AND pg_catalog.row_security_active(NEW.relation::oid) THEN
        RAISE EXCEPTION '% has row-level security enabled', NEW.relation
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'A sink ships every inserted row, so its owner must see them all: disable row-level security, or own the table (without FORCE ROW LEVEL SECURITY), or have BYPASSRLS.';
    END IF;
    PERFORM streamrec._check_sink_options(NEW.format, NEW.relation, NEW.options);
    RETURN NEW;
END $$;
CREATE TRIGGER check_sink_row BEFORE INSERT OR UPDATE ON streamrec.sinks
    FOR EACH ROW EXECUTE FUNCTION streamrec._sink_row_check();

-- A sink's outbox trigger and undelivered rows go with it, however it is deleted.
CREATE FUNCTION streamrec._sink_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM streamrec._sync_sink_trigger(OLD.name, OLD.relation);
    RETURN NULL;
END $$;
CREATE TRIGGER drop_sink_capture AFTER DELETE ON streamrec.sinks
    FOR EACH ROW EXECUTE FUNCTION streamrec._sink_deleted();

-- produced: acknowledged by the broker since the worker started; pending and failed: rows (not
-- outbox rows: a chunk counts its rows) waiting for delivery, and kept because no format could
-- encode them.
CREATE VIEW streamrec.sink_stats WITH (security_invoker = true) AS
SELECT k.name,
       CASE WHEN k.paused THEN 'paused' ELSE coalesce(nullif(w.state, ''), 'starting') END AS state,
       coalesce(w.messages, 0) AS produced,
       coalesce(o.pending, 0) AS pending,
       coalesce(o.failed, 0) AS failed,
       now() - o.oldest_pending AS oldest_pending_age,
       coalesce(k.last_error, w.last_error) AS last_error,
       w.pid,
       CASE WHEN k.last_error IS NOT NULL THEN k.last_error_at ELSE w.last_error_at END AS last_error_at
FROM streamrec.sinks k
LEFT JOIN streamrec._worker_stats('k') w ON w.name = k.name
LEFT JOIN LATERAL (SELECT sum(x.rows) FILTER (WHERE x.error IS NULL) AS pending,
                          sum(x.rows) FILTER (WHERE x.error IS NOT NULL) AS failed,
                          min(x.created_at) FILTER (WHERE x.error IS NULL) AS oldest_pending
                   FROM streamrec.sink_outbox x WHERE x.sink = k.name) o ON true;

SELECT pg_catalog.pg_extension_config_dump('streamrec.sink_outbox', '');
SELECT pg_catalog.pg_extension_config_dump('streamrec.sink_outbox_id_seq', '');

-- As for sources: everyone may call the API and gets _require_admin's hinted error.
GRANT SELECT ON streamrec.sink_stats TO streamrec_admin;

-- ---------------------------------------------------------------------------------------------
-- Pipelines (DESIGN.md section 4). Each pipeline is a set of C++ statement-level AFTER INSERT
-- triggers on domain tables, installed by enable_pipeline and removed by disable_pipeline. The
-- triggers read their options from pipeline_catalog once per statement, so a change of options
-- applies from the next batch on.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.pipeline_catalog (
    name        text PRIMARY KEY
                CHECK (name IN ('similar_products', 'trending', 'category_affinity', 'attribution',
                                'ratings', 'item_transactions')),
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
-- The latest time any clock may reach: the wall clock plus streamrec.max_clock_skew. Later
-- event times are stored and counted as future; no watermark and no retention clock (the newest
-- row of a pipeline's table) moves past this.
CREATE FUNCTION streamrec._clock_limit() RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'streamrec_clock_limit' LANGUAGE C STABLE;

-- similar_products: results, every emitted list (the sink's relation), and per-user state.
CREATE TABLE streamrec.recommendations (
    user_id            text PRIMARY KEY,
    product_ids        text[] NOT NULL,
    viewed_product_id  text,
    category           text,
    window_end         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);  -- room on each page for the next list of its users (HOT updates)
CREATE TABLE streamrec.recommendation_log (
    id                 bigserial PRIMARY KEY,
    user_id            text NOT NULL,
    product_ids        text[] NOT NULL,
    window_end         timestamptz NOT NULL,
    viewed_product_id  text,
    category           text,
    emitted_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recommendation_log_user_idx ON streamrec.recommendation_log (user_id, window_end);
-- Retention deletes by window_end: a BRIN index (rows arrive roughly in event-time order) costs
-- the per-view insert next to nothing, where a btree would be a third index to maintain.
CREATE INDEX recommendation_log_window_end_idx ON streamrec.recommendation_log USING brin (window_end);
CREATE TABLE streamrec.user_purchases (
    user_id             text NOT NULL,
    product_id          text NOT NULL,
    quantity            bigint NOT NULL,
    purchases           bigint NOT NULL,
    last_purchase_time  timestamptz NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
-- Page views waiting for their event-time window to close (emit = an interval): the user's
-- latest view per window.
CREATE TABLE streamrec.pending_views (
    user_id       text NOT NULL,
    window_start  timestamptz NOT NULL,
    product_id    text NOT NULL,
    event_time    timestamptz NOT NULL,
    PRIMARY KEY (user_id, window_start)
);
CREATE INDEX pending_views_window_idx ON streamrec.pending_views (window_start);
-- Pipelines keep what they read of the inventory between batches until a transaction that
-- changed it commits: this statement trigger tells them (one call per statement, any role).
CREATE FUNCTION streamrec._inventory_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_inventory_changed' LANGUAGE C;
CREATE TRIGGER streamrec_inventory_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON streamrec.inventory
    FOR EACH STATEMENT EXECUTE FUNCTION streamrec._inventory_changed();
-- Candidates are read per category, best first.
CREATE INDEX inventory_category_idx ON streamrec.inventory (category, rating DESC NULLS LAST, product_id);

-- trending: views per product per tumbling window.
CREATE TABLE streamrec.trending_counts (
    window_start  timestamptz NOT NULL,
    product_id    text NOT NULL,
    views         bigint NOT NULL,
    PRIMARY KEY (window_start, product_id)
);

-- category_affinity: page views per user, category and hour, and the products each user viewed.
CREATE TABLE streamrec.category_views (
    user_id       text NOT NULL,
    category      text NOT NULL,
    bucket_start  timestamptz NOT NULL,
    views         bigint NOT NULL,
    PRIMARY KEY (user_id, bucket_start, category)
);
CREATE INDEX category_views_bucket_idx ON streamrec.category_views (bucket_start);
CREATE TABLE streamrec.user_viewed_products (
    user_id      text NOT NULL,
    product_id   text NOT NULL,
    last_viewed  timestamptz NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
CREATE INDEX user_viewed_products_time_idx ON streamrec.user_viewed_products (last_viewed);

-- attribution (seed 002): each checkout with its first click in the lookback, and every emitted
-- attribution (a first one, or a correction by a click that arrived late) for the sink. The
-- lookback state is the clicks table itself, through clicks_attribution_idx (user_id,
-- product_id, event_time, click_id), which enable_pipeline('attribution') builds and
-- disable_pipeline drops, so the click stream pays for it only while attribution runs.
CREATE TABLE streamrec.attributed_checkouts (
    checkout_id    text PRIMARY KEY,
    user_id        text NOT NULL,
    user_name      text,                  -- NULL: user unknown when the checkout was processed
    product_id     text NOT NULL,
    checkout_time  timestamptz NOT NULL,
    click_id       text,                  -- NULL (with click_time): no click qualifies
    click_time     timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- A click re-examines the checkouts of its user and product in [click time, + lookback].
CREATE INDEX attributed_checkouts_lookup_idx ON streamrec.attributed_checkouts (user_id, product_id, checkout_time);
CREATE INDEX attributed_checkouts_time_idx ON streamrec.attributed_checkouts (checkout_time);
CREATE TABLE streamrec.attribution_log (
    id             bigserial PRIMARY KEY,
    checkout_id    text NOT NULL,
    user_id        text NOT NULL,
    user_name      text,
    product_id     text NOT NULL,
    checkout_time  timestamptz NOT NULL,
    click_id       text,
    click_time     timestamptz,
    emitted_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attribution_log_emitted_idx ON streamrec.attribution_log USING brin (emitted_at) WITH (autosummarize = on);

-- ratings (seed 003): test traffic apart, enriched live ratings, unhappy platinum customers,
-- windowed counts (a window is final once its window_end <= the 'ratings' watermark in
-- pipeline_clock), and per-product sums behind inventory.rating.
CREATE TABLE streamrec.test_ratings (
    rating_id    text,
    user_id      text NOT NULL,
    product_id   text,
    stars        int NOT NULL,
    channel      text,
    message      text,
    rating_time  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX test_ratings_received_idx ON streamrec.test_ratings USING brin (received_at) WITH (autosummarize = on);
CREATE TABLE streamrec.ratings_enriched (
    rating_id    text,
    customer_id  text NOT NULL,
    product_id   text,
    stars        int NOT NULL,
    channel      text,
    message      text,
    rating_time  timestamptz NOT NULL,
    full_name    text,
    club_status  text,
    email        text,
    enriched_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ratings_enriched_customer_idx ON streamrec.ratings_enriched (customer_id, rating_time);
CREATE INDEX ratings_enriched_enriched_idx ON streamrec.ratings_enriched USING brin (enriched_at) WITH (autosummarize = on);
CREATE TABLE streamrec.unhappy_customers (
    rating_id    text,
    customer_id  text NOT NULL,
    full_name    text,
    club_status  text,
    email        text,
    stars        int NOT NULL,
    message      text,
    channel      text,
    rating_time  timestamptz NOT NULL,
    detected_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unhappy_customers_detected_idx ON streamrec.unhappy_customers USING brin (detected_at) WITH (autosummarize = on);
CREATE TABLE streamrec.ratings_by_club_status (
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    club_status   text NOT NULL,          -- 'none' for a customer without one
    ratings       bigint NOT NULL,
    PRIMARY KEY (window_start, club_status)
);
CREATE TABLE streamrec.ratings_per_customer (
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    customer_id   text NOT NULL,
    full_name     text,
    ratings       bigint NOT NULL,
    stars         int[] NOT NULL,         -- in arrival order
    PRIMARY KEY (window_start, customer_id)
);
CREATE TABLE streamrec.product_ratings (
    product_id  text PRIMARY KEY,
    ratings     bigint NOT NULL,
    stars       bigint NOT NULL           -- inventory.rating = stars / ratings
);
-- Pipeline state and results are written by the triggers (SECURITY DEFINER). Those that name a
-- user or customer (ids, names, e-mail, what each viewed, bought or rated) are personal data,
-- read like the input tables they come from: by streamrec_admin (and superusers), and by any
-- reader role the DBA grants SELECT. Aggregates without a person in them are read by all.
REVOKE ALL ON streamrec.attributed_checkouts, streamrec.attribution_log, streamrec.test_ratings,
              streamrec.ratings_enriched, streamrec.unhappy_customers, streamrec.ratings_per_customer,
              streamrec.recommendations, streamrec.recommendation_log, streamrec.user_purchases,
              streamrec.pending_views, streamrec.category_views, streamrec.user_viewed_products FROM PUBLIC;
GRANT SELECT ON streamrec.attributed_checkouts, streamrec.attribution_log, streamrec.test_ratings,
                streamrec.ratings_enriched, streamrec.unhappy_customers, streamrec.ratings_per_customer,
                streamrec.recommendations, streamrec.recommendation_log, streamrec.user_purchases,
                streamrec.pending_views, streamrec.category_views, streamrec.user_viewed_products TO streamrec_admin;
GRANT SELECT ON streamrec.ratings_by_club_status, streamrec.product_ratings, streamrec.trending_counts,
                streamrec.pipeline_clock, streamrec.pipeline_writers TO PUBLIC;

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
    defaults := CASE pipeline
        WHEN 'similar_products' THEN jsonb_build_object(
            'top_k', 6, 'min_rating', NULL, 'repeats', 'demote', 'repeat_window', '10 minutes',
            'emit', 'click', 'watermark_delay', '1 second', 'idle_timeout', '5 seconds', 'retention', '1 day')
        WHEN 'trending' THEN jsonb_build_object('window', '1 hour', 'top_n', 10, 'retention', '2 days')
        WHEN 'category_affinity' THEN jsonb_build_object('lookback', '24 hours', 'limit', 10, 'top_categories', 3)
        WHEN 'attribution' THEN jsonb_build_object('lookback', '1 hour', 'retention', '1 day')
        WHEN 'ratings' THEN jsonb_build_object(
            'status_window', '1 minute', 'customer_window', '15 minutes', 'watermark_delay', '1 second',
            'idle_timeout', '5 seconds', 'retention', '1 day', 'enriched_output_topic', NULL)
        WHEN 'item_transactions' THEN jsonb_build_object(
            'window', '1 minute', 'watermark_delay', '1 second', 'idle_timeout', '5 seconds', 'retention', '1 day',
            'alert_failure_ratio', 0.5, 'alert_min_transactions', 10,
            'query_output_topic', NULL, 'alert_output_topic', NULL)
        ELSE NULL END;
    IF defaults IS NULL THEN
        RAISE EXCEPTION 'pipeline "%" is not available in this version', pipeline
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Available pipelines: similar_products, trending, category_affinity, attribution, ratings, item_transactions.';
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

-- What each pipeline's triggers are: (trigger name, table, function).
CREATE FUNCTION streamrec._pipeline_triggers(pipeline text)
RETURNS TABLE (trigger_name name, rel regclass, function_name text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.trigger_name, t.rel, t.function_name FROM (VALUES
        ('similar_products', 'streamrec_similar_products'::name, 'streamrec.clicks'::regclass, 'streamrec._similar_products_trigger'),
        ('similar_products', 'streamrec_user_purchases'::name, 'streamrec.purchases'::regclass, 'streamrec._user_purchases_trigger'),
        ('trending', 'streamrec_trending'::name, 'streamrec.clicks'::regclass, 'streamrec._trending_trigger'),
        ('category_affinity', 'streamrec_category_affinity'::name, 'streamrec.clicks'::regclass, 'streamrec._category_affinity_trigger'),
        ('attribution', 'streamrec_attribution_checkouts'::name, 'streamrec.checkouts'::regclass, 'streamrec._attribution_checkouts_trigger'),
        ('attribution', 'streamrec_attribution_clicks'::name, 'streamrec.clicks'::regclass, 'streamrec._attribution_clicks_trigger'),
        ('ratings', 'streamrec_ratings'::name, 'streamrec.ratings'::regclass, 'streamrec._ratings_trigger'),
        ('item_transactions', 'streamrec_item_transactions'::name, 'streamrec.item_transactions'::regclass, 'streamrec._item_transactions_trigger'),
        ('item_transactions', 'streamrec_stock_queries'::name, 'streamrec.stock_queries'::regclass, 'streamrec._stock_queries_trigger')
    ) AS t(p, trigger_name, rel, function_name) WHERE t.p = pipeline
$$;

-- Makes a pipeline's triggers match the catalog: installed while it is enabled, gone when not.
-- SECURITY DEFINER: creating triggers on the domain tables needs their owner; safe for any
-- admin to call, since it only follows the catalog. Installing the purchases trigger afresh
-- rebuilds user_purchases from the purchases table, so history before enabling counts.
CREATE FUNCTION streamrec._sync_pipeline_triggers(pipeline text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    enabled boolean := coalesce((SELECT c.enabled FROM streamrec.pipeline_catalog c WHERE c.name = pipeline), false);
BEGIN
    FOR t IN SELECT * FROM streamrec._pipeline_triggers(pipeline) LOOP
        IF enabled AND NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = t.rel AND tgname = t.trigger_name) THEN
            IF t.trigger_name = 'streamrec_user_purchases' THEN
                LOCK TABLE streamrec.purchases IN SHARE MODE;
                -- (DELETE: TRUNCATE would wait for every open transaction that read the table,
                -- holding the purchases' writers meanwhile)
                DELETE FROM streamrec.user_purchases;
                INSERT INTO streamrec.user_purchases
                SELECT p.user_id, p.product_id, sum(p.quantity), count(*), max(p.purchase_time)
                FROM streamrec.purchases p GROUP BY p.user_id, p.product_id;
            END IF;
            PERFORM streamrec._attribution_ratings_install(t.trigger_name, true);
            EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS streamrec_new_rows '
                           'FOR EACH STATEMENT EXECUTE FUNCTION %s()', t.trigger_name, t.rel, t.function_name);
        ELSIF NOT enabled THEN
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', t.trigger_name, t.rel);
            PERFORM streamrec._attribution_ratings_install(t.trigger_name, false);
        END IF;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION streamrec._sync_pipeline_triggers(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._sync_pipeline_triggers(text) TO streamrec_admin;

-- The extension's own transaction-level locks (extension/roles.cpp): like pg_advisory_xact_lock,
-- but in a lock space SQL's advisory lock functions cannot reach, so no role can hold them to
-- stall the pipelines. Only the SECURITY DEFINER code below calls it.
CREATE FUNCTION streamrec._xact_lock(space int, key int) RETURNS boolean
    AS 'MODULE_PATHNAME', 'streamrec_xact_lock' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION streamrec._xact_lock(int, int) FROM PUBLIC;

-- One enable or disable at a time per pipeline. SECURITY DEFINER: it takes that one lock only.
CREATE FUNCTION streamrec._lock_pipeline(pipeline text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT FROM streamrec._xact_lock(pg_catalog.hashtext('streamrec.enable_pipeline'), pg_catalog.hashtext(pipeline))
$$;
REVOKE ALL ON FUNCTION streamrec._lock_pipeline(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._lock_pipeline(text) TO streamrec_admin;

-- Turns a pipeline on (or changes its options): installs its triggers and, with output_topic,
-- its sink. Enabling similar_products rebuilds user_purchases from the purchases table.
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
                                        'Pipelines: similar_products, trending, category_affinity, attribution, ratings, item_transactions.');
    END IF;
    IF name NOT IN ('similar_products', 'trending', 'category_affinity', 'attribution', 'ratings', 'item_transactions') THEN
        PERFORM streamrec._bad_argument(format('unknown pipeline "%s"', name),
                                        'Pipelines: similar_products, trending, category_affinity, attribution, ratings, item_transactions.');
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

-- The C++ triggers. SECURITY DEFINER: a source's role needs INSERT on the domain table only;
-- the pipeline state belongs to the extension's owner.
CREATE FUNCTION streamrec._similar_products_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_similar_products_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION streamrec._user_purchases_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_user_purchases_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION streamrec._trending_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_trending_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION streamrec._category_affinity_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_category_affinity_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION streamrec._similar_products_trigger(), streamrec._user_purchases_trigger(),
                       streamrec._trending_trigger(), streamrec._category_affinity_trigger() FROM PUBLIC;

-- Closes the windows of similar_products (emit = an interval) that saw no event for
-- idle_timeout; returns how many lists that emitted.
CREATE FUNCTION streamrec._close_idle_windows() RETURNS bigint
    AS 'MODULE_PATHNAME', 'streamrec_close_idle_windows' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION streamrec._close_idle_windows() FROM PUBLIC;

-- Periodic work, run by the launcher about once a second in its own transaction: closes idle
-- windows and drops pipeline state older than its retention. "Older" is measured on the
-- stream's own clock (the newest event time in each table, not counting rows past
-- streamrec._clock_limit()), so replayed history is not deleted just because it is old by the
-- wall clock, and one row dated far ahead does not delete everything behind it.
-- Deletes the rows of rel whose time column col is before cutoff (nothing when cutoff is NULL),
-- at most max_rows of them (NULL: all), through the column's index (every table this runs on
-- has one): the tick runs every second, and a sequential scan of a large table each time (what
-- the planner picks for a cutoff it cannot see, or for a growing table not analyzed yet) would
-- cost far more than the few old rows. The cutoff goes in as a literal of its own type.
CREATE FUNCTION streamrec._delete_before(rel regclass, col name, cutoff text, cutoff_type regtype DEFAULT 'timestamptz',
                                         max_rows int DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
BEGIN
    IF cutoff IS NULL THEN
        RETURN;
    ELSIF max_rows IS NULL THEN
        EXECUTE format('DELETE FROM %s WHERE %I < %L::%s', rel, col, cutoff, cutoff_type);
    ELSE
        EXECUTE format('DELETE FROM %1$s WHERE ctid = ANY (ARRAY(SELECT ctid FROM %1$s WHERE %2$I < %3$L::%4$s LIMIT %5$s))',
                       rel, col, cutoff, cutoff_type, max_rows);
    END IF;
END $$;
REVOKE ALL ON FUNCTION streamrec._delete_before(regclass, name, text, regtype, int) FROM PUBLIC;

-- Each pipeline's part, the writers' clean-up and the retention of input tables run in
-- subtransactions of their own: one that fails (logged as a WARNING) stops none of the others.
CREATE FUNCTION streamrec._pipeline_tick() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c streamrec.pipeline_catalog;
BEGIN
    FOR c IN SELECT * FROM streamrec.pipeline_catalog WHERE enabled ORDER BY name LOOP
      BEGIN
        IF c.name = 'similar_products' THEN
            IF c.options ->> 'emit' <> 'click' THEN
                PERFORM streamrec._close_idle_windows();
            END IF;
            -- The clock: the newest list's window end (by id: one probe of the primary key). BRIN
            -- ranges not summarized yet would be read whole by every tick: summarize them first.
            PERFORM pg_catalog.brin_summarize_new_values('streamrec.recommendation_log_window_end_idx'::regclass);
            PERFORM streamrec._delete_before('streamrec.recommendation_log', 'window_end',
                ((SELECT window_end FROM streamrec.recommendation_log WHERE window_end <= streamrec._clock_limit()
                  ORDER BY id DESC LIMIT 1)
                 - (c.options ->> 'retention')::interval)::text);
        ELSIF c.name = 'trending' THEN
            PERFORM streamrec._delete_before('streamrec.trending_counts', 'window_start',
                ((SELECT max(window_start) FROM streamrec.trending_counts WHERE window_start <= streamrec._clock_limit())
                 - (c.options ->> 'retention')::interval)::text);
        ELSIF c.name = 'category_affinity' THEN
            PERFORM streamrec._delete_before('streamrec.category_views', 'bucket_start',
                ((SELECT max(bucket_start) FROM streamrec.category_views WHERE bucket_start <= streamrec._clock_limit())
                 + interval '1 hour' - (c.options ->> 'lookback')::interval)::text);
            PERFORM streamrec._delete_before('streamrec.user_viewed_products', 'last_viewed',
                ((SELECT max(bucket_start) FROM streamrec.category_views WHERE bucket_start <= streamrec._clock_limit())
                 + interval '1 hour' - (c.options ->> 'lookback')::interval)::text);
        ELSIF c.name = 'item_transactions' THEN
            PERFORM streamrec._item_transactions_tick((c.options ->> 'retention')::interval);
        ELSIF c.name IN ('attribution', 'ratings') THEN
            PERFORM streamrec._attribution_ratings_tick(c.name, (c.options ->> 'retention')::interval);
        END IF;
      EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pg_streamrec: periodic work of pipeline % failed: %', c.name, SQLERRM;
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

-- similar_products on demand: the ranking a page view of product_id by user_id would get now.
CREATE FUNCTION streamrec.recommend(user_id text, product_id text, k int DEFAULT 6) RETURNS text[]
    AS 'MODULE_PATHNAME', 'streamrec_recommend' LANGUAGE C STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
-- It ranks from the user's own purchases and recent lists: read like user_purchases.
REVOKE ALL ON FUNCTION streamrec.recommend(text, text, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec.recommend(text, text, int) TO streamrec_admin;

-- Counters since server start, counted when the pipeline's transaction commits.
CREATE FUNCTION streamrec._pipeline_stats(OUT name text, OUT events bigint, OUT outputs bigint,
                                          OUT skipped bigint, OUT late bigint, OUT last_error text,
                                          OUT last_error_at timestamptz, OUT future bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'streamrec_pipeline_stats' LANGUAGE C VOLATILE;

-- A pipeline's options as the pipelines view shows them: the values of credential properties
-- in output_options.kafka, and a user:password in its schema_registry URL, as ***.
CREATE FUNCTION streamrec._mask_pipeline_options(options jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN jsonb_typeof(masked #> '{output_options,schema_registry}') = 'string'
                THEN jsonb_set(masked, '{output_options,schema_registry}',
                               to_jsonb(regexp_replace(masked #>> '{output_options,schema_registry}',
                                                       '^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@', '\1***@')))
                ELSE masked END
    FROM (SELECT CASE WHEN jsonb_typeof(options #> '{output_options,kafka}') = 'object'
                      THEN jsonb_set(options, '{output_options,kafka}',
                                     coalesce((SELECT jsonb_object_agg(p.key, CASE WHEN streamrec._kafka_property_is_secret(p.key)
                                                                                   THEN '"***"'::jsonb ELSE p.value END)
                                               FROM jsonb_each(options #> '{output_options,kafka}') p), '{}'))
                      ELSE options END AS masked) m
$$;

-- events: input rows the pipeline read; outputs: result rows it wrote; skipped: events that
-- yield nothing (a click on a product not in the inventory, an empty candidate list); late:
-- events behind a closed window, counted and dropped; future: events later than the clock limit
-- (wall clock + streamrec.max_clock_skew), stored and counted but moving no clock.
CREATE VIEW streamrec.pipelines AS
SELECT c.name, c.enabled, streamrec._mask_pipeline_options(c.options) AS options,
       coalesce(s.events, 0) AS events, coalesce(s.outputs, 0) AS outputs,
       s.last_error, coalesce(s.skipped, 0) AS skipped, coalesce(s.late, 0) AS late,
       c.sinks, s.last_error_at, c.enabled_at, coalesce(s.future, 0) AS future
FROM streamrec.pipeline_catalog c
LEFT JOIN streamrec._pipeline_stats() s ON s.name = c.name;
GRANT SELECT ON streamrec.pipelines TO PUBLIC;

-- trending: the top top_n products of each window.
CREATE VIEW streamrec.trending AS
SELECT r.window_start, r.product_id, r.views, r.rank
FROM (SELECT t.window_start, t.product_id, t.views,
             row_number() OVER (PARTITION BY t.window_start ORDER BY t.views DESC, t.product_id) AS rank
      FROM streamrec.trending_counts t) r
WHERE r.rank <= coalesce((SELECT (c.options ->> 'top_n')::int FROM streamrec.pipeline_catalog c
                          WHERE c.name = 'trending'), 10);
GRANT SELECT ON streamrec.trending TO PUBLIC;

-- category_affinity: computed at lookup from the hourly buckets, with index probes only: the
-- user's buckets in the lookback (the stream's clock is the newest bucket), the top categories,
-- and per category the best-rated in-stock products until `limit` unviewed ones are found.
-- One user's list is a plpgsql function with its own cached plan: inlined into the view, the
-- planner's estimate for all users (not the one asked for) set off JIT compilation, which
-- cost ~0.5 s per lookup instead of a few milliseconds.
CREATE FUNCTION streamrec._affinity_products(for_user text) RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    lookback interval;
    lim int;
    top_categories int;
    clock timestamptz;
    result text[];
BEGIN
    SELECT coalesce((c.options ->> 'lookback')::interval, interval '24 hours'),
           coalesce((c.options ->> 'limit')::int, 10),
           coalesce((c.options ->> 'top_categories')::int, 3)
    INTO lookback, lim, top_categories
    FROM (SELECT 1) one LEFT JOIN streamrec.pipeline_catalog c ON c.name = 'category_affinity';
    clock := (SELECT max(b.bucket_start) FROM streamrec.category_views b WHERE b.bucket_start <= streamrec._clock_limit())
             + interval '1 hour';
    SELECT ARRAY(SELECT pick.product_id
                 FROM (SELECT v.category, sum(v.views) AS views
                       FROM streamrec.category_views v
                       WHERE v.user_id = for_user AND v.bucket_start >= clock - lookback
                       GROUP BY v.category
                       ORDER BY sum(v.views) DESC, v.category
                       LIMIT top_categories) top
                 CROSS JOIN LATERAL (
                     SELECT i.product_id, i.rating
                     FROM streamrec.inventory i
                     WHERE i.category = top.category AND i.stock > 0
                       AND NOT EXISTS (SELECT FROM streamrec.user_viewed_products w
                                       WHERE w.user_id = for_user AND w.product_id = i.product_id
                                         AND w.last_viewed >= clock - lookback)
                     ORDER BY i.rating DESC NULLS LAST, i.product_id
                     LIMIT lim) pick
                 ORDER BY pick.rating DESC NULLS LAST, pick.product_id
                 LIMIT lim)
    INTO result;
    RETURN result;
END $$;

CREATE VIEW streamrec.user_recommendations AS
SELECT u.user_id, streamrec._affinity_products(u.user_id) AS product_ids
FROM (SELECT DISTINCT v.user_id FROM streamrec.category_views v) u;
-- Per user, from what each viewed: read like category_views (SECURITY DEFINER underneath).
REVOKE ALL ON streamrec.user_recommendations FROM PUBLIC;
GRANT SELECT ON streamrec.user_recommendations TO streamrec_admin;
REVOKE ALL ON FUNCTION streamrec._affinity_products(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._affinity_products(text) TO streamrec_admin;

SELECT pg_catalog.pg_extension_config_dump('streamrec.pipeline_catalog', '');

-- ---------------------------------------------------------------------------------------------
-- item_transactions (DESIGN.md section 4, seed 004, issue 6): validated stock changes applied to
-- inventory.stock in input order per item, stock queries, per-item 1-minute summaries and
-- alerts. One result row per transaction; alerts are written once, when a window closes (the
-- watermark, max(ts) - watermark_delay, passes its end, or no transaction arrived for
-- idle_timeout), so an alert is final and never retracted.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.transaction_results (
    transaction_id  bigint,
    item_id         text NOT NULL,
    quantity        int NOT NULL,
    success         boolean NOT NULL,
    stock_after     int,                  -- NULL: the item is unknown (and stays so)
    processed_at    timestamptz NOT NULL DEFAULT now(),
    ts              timestamptz NOT NULL  -- the transaction's event time: its summary window
);
-- Results grow roughly in event-time order: a BRIN index serves the aggregate of a closing
-- window and retention almost free.
CREATE INDEX transaction_results_ts_idx ON streamrec.transaction_results USING brin (ts)
    WITH (autosummarize = on);
CREATE TABLE streamrec.query_results (
    query_id     bigint,
    item_id      text NOT NULL,
    stock        int,                     -- NULL: unknown item
    answered_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX query_results_answered_idx ON streamrec.query_results USING brin (answered_at)
    WITH (autosummarize = on);
CREATE TABLE streamrec.transaction_summaries (
    item_id       text NOT NULL,
    window_start  timestamptz NOT NULL,
    succeeded     bigint NOT NULL,
    failed        bigint NOT NULL,
    volume        bigint NOT NULL,        -- sum of |quantity| of the successful transactions
    PRIMARY KEY (window_start, item_id)   -- window first: closing and retention read by window
);
CREATE TABLE streamrec.transaction_alerts (
    item_id       text NOT NULL,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    succeeded     bigint NOT NULL,
    failed        bigint NOT NULL,
    volume        bigint NOT NULL,
    alerted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, item_id)
);
-- Room on each page for the stock updates to be HOT (no index entries for a changed stock).
ALTER TABLE streamrec.inventory SET (fillfactor = 80);
GRANT SELECT ON streamrec.transaction_results, streamrec.query_results, streamrec.transaction_summaries,
                streamrec.transaction_alerts TO PUBLIC;

-- What each pipeline's sinks are: the option naming the topic, the sink's name, the relation it
-- ships and the sink options (output_options are laid over them).
CREATE FUNCTION streamrec._pipeline_outputs(pipeline text)
RETURNS TABLE (topic_option text, sink_name text, rel regclass, sink_options jsonb)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT o.topic_option, o.sink_name, o.rel, o.sink_options FROM (VALUES
        ('similar_products', 'output_topic', 'pipeline_similar_products', 'streamrec.recommendation_log'::regclass,
         '{"key": "user_id", "columns": ["user_id", "product_ids", "window_end"]}'::jsonb),
        ('attribution', 'output_topic', 'pipeline_attribution', 'streamrec.attribution_log'::regclass,
         '{"key": "checkout_id", "columns": ["checkout_id", "user_id", "user_name", "product_id", "checkout_time", "click_id", "click_time"]}'::jsonb),
        ('ratings', 'output_topic', 'pipeline_ratings_unhappy', 'streamrec.unhappy_customers'::regclass,
         '{"key": "full_name", "columns": ["full_name", "club_status", "email", "stars", "message"]}'::jsonb),
        ('ratings', 'enriched_output_topic', 'pipeline_ratings_enriched', 'streamrec.ratings_enriched'::regclass,
         '{"key": "customer_id", "columns": ["rating_id", "message", "stars", "channel", "customer_id", "full_name", "club_status", "email"]}'::jsonb),
        ('item_transactions', 'output_topic', 'pipeline_item_transactions', 'streamrec.transaction_results'::regclass,
         '{"key": "item_id", "columns": ["transaction_id", "item_id", "quantity", "success", "stock_after"]}'::jsonb),
        ('item_transactions', 'query_output_topic', 'pipeline_item_transactions_queries', 'streamrec.query_results'::regclass,
         '{"key": "query_id", "columns": ["query_id", "item_id", "stock"]}'::jsonb),
        ('item_transactions', 'alert_output_topic', 'pipeline_item_transactions_alerts', 'streamrec.transaction_alerts'::regclass,
         '{"key": "item_id", "columns": ["item_id", "window_start", "window_end", "succeeded", "failed", "volume"]}'::jsonb)
    ) AS o(p, topic_option, sink_name, rel, sink_options) WHERE o.p = pipeline
$$;

-- work_mem: closing a window aggregates its results in memory (about 230 bytes per item with
-- transactions in the window); beyond it the aggregate spills to disk.
CREATE FUNCTION streamrec._item_transactions_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_item_transactions_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET work_mem = '128MB' SET jit = off;
CREATE FUNCTION streamrec._stock_queries_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_stock_queries_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
-- Closes the transaction windows that saw no transaction for idle_timeout (alerts included);
-- returns how many windows it closed.
CREATE FUNCTION streamrec._close_idle_transaction_windows() RETURNS bigint
    AS 'MODULE_PATHNAME', 'streamrec_close_idle_transaction_windows' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET work_mem = '128MB' SET jit = off;
REVOKE ALL ON FUNCTION streamrec._item_transactions_trigger(), streamrec._stock_queries_trigger(),
                       streamrec._close_idle_transaction_windows() FROM PUBLIC;

-- The pipeline's share of _pipeline_tick: retention first (summaries and alerts on the stream's
-- clock, the newest window; results and answers on the wall clock, their own), then idle windows. In that
-- order the tick never holds a row a batch waits for while it waits for the clock a batch holds.
CREATE FUNCTION streamrec._item_transactions_tick(retention interval) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
        (SELECT (least(k.watermark, streamrec._clock_limit()) - greatest(retention, (c.options ->> 'window')::interval))::text
         FROM streamrec.pipeline_clock k, streamrec.pipeline_catalog c
         WHERE k.pipeline = 'item_transactions' AND c.name = 'item_transactions'));
    PERFORM pg_catalog.brin_summarize_new_values('streamrec.query_results_answered_idx'::regclass);
    PERFORM streamrec._delete_before('streamrec.query_results', 'answered_at', (now() - retention)::text);
    PERFORM streamrec._close_idle_transaction_windows();
END $$;
REVOKE ALL ON FUNCTION streamrec._item_transactions_tick(interval) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- attribution (seed 002, issue 7) and ratings (seed 003, issue 7). C++ statement-level triggers:
-- attribution on checkouts (attribute, enrich, upsert in key order) and on clicks (re-examine
-- the checkouts a click may now attribute: the result does not depend on arrival order);
-- ratings on ratings (test traffic apart, enrichment from customers at trigger time, unhappy
-- platinum customers, per-product averages into inventory.rating, event-time windows).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION streamrec._attribution_checkouts_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_attribution_checkouts_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION streamrec._attribution_clicks_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_attribution_clicks_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION streamrec._ratings_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamrec_ratings_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
-- Closes the ratings windows after idle_timeout without ratings; returns 1 when it moved the
-- watermark.
CREATE FUNCTION streamrec._close_idle_rating_windows() RETURNS bigint
    AS 'MODULE_PATHNAME', 'streamrec_close_idle_rating_windows' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION streamrec._attribution_checkouts_trigger(), streamrec._attribution_clicks_trigger(),
                       streamrec._ratings_trigger(), streamrec._close_idle_rating_windows() FROM PUBLIC;

-- State that comes and goes with a trigger (called by _sync_pipeline_triggers as it installs or
-- drops one). attribution: the lookback index on clicks. ratings: product_ratings rebuilt from
-- the live ratings already stored, so inventory.rating is the average of all of them.
CREATE FUNCTION streamrec._attribution_ratings_install(trigger_name name, install boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF trigger_name = 'streamrec_attribution_clicks' THEN
        IF install THEN
            CREATE INDEX IF NOT EXISTS clicks_attribution_idx ON streamrec.clicks (user_id, product_id, event_time, click_id)
                WHERE product_id IS NOT NULL;
        ELSE
            DROP INDEX IF EXISTS streamrec.clicks_attribution_idx;
        END IF;
    ELSIF trigger_name = 'streamrec_ratings' AND install THEN
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
REVOKE ALL ON FUNCTION streamrec._attribution_ratings_install(name, boolean) FROM PUBLIC;

-- The two pipelines' share of _pipeline_tick. Results and logs on the wall clock (their own);
-- windows and attributions on the stream's clock, so replayed history is not deleted at once.
CREATE FUNCTION streamrec._attribution_ratings_tick(pipeline text, retention interval) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pipeline = 'attribution' THEN
        -- (BRIN ranges summarized first, or every tick reads the unsummarized ones whole.)
        PERFORM pg_catalog.brin_summarize_new_values('streamrec.attribution_log_emitted_idx'::regclass);
        PERFORM streamrec._delete_before('streamrec.attribution_log', 'emitted_at', (now() - retention)::text);
        PERFORM streamrec._delete_before('streamrec.attributed_checkouts', 'checkout_time',
            ((SELECT max(checkout_time) FROM streamrec.attributed_checkouts WHERE checkout_time <= streamrec._clock_limit())
             - retention)::text);
    ELSE
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
    END IF;
END $$;
REVOKE ALL ON FUNCTION streamrec._attribution_ratings_tick(text, interval) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Retention of input tables (DESIGN.md section 3): the domain tables keep history for audit
-- until set_retention bounds them. The launcher's tick deletes rows older than `keep` on the
-- table's own clock (the newest value of its time column not past the wall clock plus
-- streamrec.max_clock_skew, one index probe), at most 100,000 rows per table per tick, so a
-- backlog drains over a few ticks without long transactions. Each bound belongs to the role
-- that set it, and the tick deletes as that role (streamrec._retain_as).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.retention (
    relation     regclass PRIMARY KEY,
    time_column  name NOT NULL,
    keep         interval NOT NULL CHECK (keep > interval '0'),
    owner        oid NOT NULL DEFAULT streamrec._current_role(),  -- who set it; the tick deletes as this role
    last_error   text,                  -- why the last tick could not apply it, NULL once it could
    last_error_at timestamptz
);
COMMENT ON TABLE streamrec.retention IS 'How long each bounded input table keeps its rows (streamrec.set_retention)';
REVOKE ALL ON streamrec.retention FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON streamrec.retention TO streamrec_admin;
-- Each admin sees and changes only its own bounds, and a bound it writes is always its own.
ALTER TABLE streamrec.retention ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_retention ON streamrec.retention
    USING (owner = streamrec._current_role()) WITH CHECK (owner = streamrec._current_role());
SELECT pg_catalog.pg_extension_config_dump('streamrec.retention', '');

-- A bound written directly passes set_retention's checks too: a time column, and a table its
-- owner may DELETE from (else one admin's row would hold the table's only bound for nothing).
CREATE FUNCTION streamrec._retention_row_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF streamrec._caller_is_superuser() OR (TG_OP = 'UPDATE' AND (NEW.relation, NEW.time_column, NEW.owner)
                                            IS NOT DISTINCT FROM (OLD.relation, OLD.time_column, OLD.owner)) THEN
        RETURN NEW;
    END IF;
    IF coalesce((SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = NEW.relation AND a.attname = NEW.time_column
                                                         AND a.attnum > 0 AND NOT a.attisdropped)
                NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype), true) THEN
        PERFORM streamrec._bad_argument(format('column "%s" of %s is not a time column', NEW.time_column, NEW.relation),
                                        'Retention needs a timestamptz, timestamp or date column.');
    END IF;
    IF NOT has_table_privilege(NEW.owner, NEW.relation, 'SELECT') OR NOT has_table_privilege(NEW.owner, NEW.relation, 'DELETE') THEN
        RAISE EXCEPTION 'permission denied to delete from %', NEW.relation
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Retention deletes old rows as its owner: it needs SELECT and DELETE on the table.';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER check_retention_row BEFORE INSERT OR UPDATE ON streamrec.retention
    FOR EACH ROW EXECUTE FUNCTION streamrec._retention_row_check();

-- Gives the retained time column an index (the clock probe and the range delete need one),
-- following the catalog only. SECURITY DEFINER: the domain tables belong to the extension.
-- Safe for any admin with any argument: it only indexes a table's built-in time column that
-- the retention catalog names, for a bound whose owner may delete from the table (the row's
-- owner is always the role that wrote it: the policy above; built-in types: no comparison code
-- of the caller's runs).
CREATE FUNCTION streamrec._retention_index(rel regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col name := (SELECT r.time_column FROM streamrec.retention r
                 WHERE r.relation = rel AND has_table_privilege(r.owner, rel, 'SELECT')
                   AND has_table_privilege(r.owner, rel, 'DELETE'));
BEGIN
    IF col IS NOT NULL
       AND (SELECT c.relkind FROM pg_class c WHERE c.oid = rel) IN ('r', 'p')
       AND (SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0
                                                    AND NOT a.attisdropped)
           IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
       AND NOT EXISTS (
        SELECT FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = rel AND a.attname = col) THEN
        EXECUTE format('CREATE INDEX %I ON %s (%I)',
                       left((SELECT relname FROM pg_class WHERE oid = rel) || '_' || col, 49) || '_retention_idx', rel, col);
    END IF;
END $$;
REVOKE ALL ON FUNCTION streamrec._retention_index(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._retention_index(regclass) TO streamrec_admin;

-- Bounds a table to the rows of the last `keep` of its time column; keep NULL lifts the bound.
CREATE FUNCTION streamrec.set_retention(relation regclass, time_column name, keep interval) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    column_type regtype;
BEGIN
    PERFORM streamrec._require_admin();
    IF relation IS NULL THEN
        PERFORM streamrec._bad_argument('relation must not be NULL',
                                        'e.g. streamrec.set_retention(''streamrec.clicks'', ''event_time'', ''7 days'')');
    END IF;
    IF keep IS NULL THEN
        DELETE FROM streamrec.retention r WHERE r.relation = set_retention.relation;
        RETURN;
    END IF;
    IF keep <= interval '0' THEN
        PERFORM streamrec._bad_argument(format('keep must be a positive interval, not %s', keep), 'e.g. ''7 days''');
    END IF;
    SELECT a.atttypid::regtype INTO column_type FROM pg_attribute a
    WHERE a.attrelid = relation AND a.attname = time_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF column_type IS NULL THEN
        RAISE EXCEPTION 'column "%" of % does not exist', time_column, relation
            USING ERRCODE = 'undefined_column', HINT = 'Name the column holding each row''s event time.';
    END IF;
    IF column_type NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
        PERFORM streamrec._bad_argument(format('column "%s" is %s, not a time', time_column, column_type),
                                        'Retention needs a timestamptz, timestamp or date column.');
    END IF;
    -- As the DELETE the tick runs as the caller would need: DELETE, and SELECT for its WHERE.
    IF NOT has_table_privilege(relation, 'SELECT') OR NOT has_table_privilege(relation, 'DELETE') THEN
        RAISE EXCEPTION 'permission denied to delete from %', relation
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Retention deletes old rows as you: it needs SELECT and DELETE on the table.';
    END IF;
    BEGIN
        INSERT INTO streamrec.retention AS r (relation, time_column, keep, owner)
        VALUES (set_retention.relation, set_retention.time_column, set_retention.keep,
                (SELECT o.oid FROM pg_roles o WHERE o.rolname = current_user))
        ON CONFLICT ON CONSTRAINT retention_pkey
        DO UPDATE SET time_column = excluded.time_column, keep = excluded.keep, last_error = NULL, last_error_at = NULL;
    EXCEPTION WHEN insufficient_privilege THEN
        -- Only the bound's owner passes the policy for its row.
        RAISE EXCEPTION 'the retention of % was set by another role', relation
            USING ERRCODE = 'insufficient_privilege', HINT = 'Only the role that set a bound may change or lift it.';
    END;
    PERFORM streamrec._retention_index(relation);
END $$;

-- One table's retention, as its owner (called through streamrec._retain_as, never as the
-- launcher's superuser). The clock is the newest time in the table that is not past the wall
-- clock plus streamrec.max_clock_skew (one probe of the column's index), so a row dated far in
-- the future is kept but moves no clock; rows older than that clock minus keep are deleted,
-- at most 100,000 per tick.
CREATE FUNCTION streamrec._retain(rel regclass, col name, keep interval) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cutoff text;
    cutoff_type regtype;
BEGIN
    EXECUTE format('SELECT (%1$I - $1)::text, pg_typeof(%1$I - $1) FROM %2$s WHERE %1$I <= $2 ORDER BY %1$I DESC LIMIT 1',
                   col, rel)
        INTO cutoff, cutoff_type
        USING keep, streamrec._clock_limit();
    PERFORM streamrec._delete_before(rel, col, cutoff, cutoff_type, 100000);
END $$;
REVOKE ALL ON FUNCTION streamrec._retain(regclass, name, interval) FROM PUBLIC;
-- Invoker's rights: an admin calling either deletes only what its own DELETE could.
GRANT EXECUTE ON FUNCTION streamrec._retain(regclass, name, interval) TO streamrec_admin;
GRANT EXECUTE ON FUNCTION streamrec._delete_before(regclass, name, text, regtype, int) TO streamrec_admin;

CREATE FUNCTION streamrec._retain_as(owner oid, rel regclass, col name, keep interval) RETURNS void
    AS 'MODULE_PATHNAME', 'streamrec_retain_as' LANGUAGE C SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION streamrec._retain_as(oid, regclass, name, interval) FROM PUBLIC;

-- Each table in a subtransaction of its own: one that fails (privilege revoked, a trigger's
-- error) keeps its rows and its error (in last_error, logged once when it changes) and stops
-- no other table. Bounds of dropped tables or dropped owners go away.
CREATE FUNCTION streamrec._retention_tick() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r streamrec.retention;
    failure text;
BEGIN
    DELETE FROM streamrec.retention t
    WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.relation)
       OR NOT EXISTS (SELECT FROM pg_roles o WHERE o.oid = t.owner);
    FOR r IN SELECT * FROM streamrec.retention ORDER BY relation::oid LOOP
        BEGIN
            PERFORM streamrec._retain_as(r.owner, r.relation, r.time_column, r.keep);
            IF r.last_error IS NOT NULL THEN
                UPDATE streamrec.retention t SET last_error = NULL, last_error_at = NULL WHERE t.relation = r.relation;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT;
            IF r.last_error IS DISTINCT FROM failure THEN
                RAISE WARNING 'pg_streamrec: retention of % failed: %', r.relation, failure;
                UPDATE streamrec.retention t SET last_error = failure, last_error_at = now() WHERE t.relation = r.relation;
            END IF;
        END;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION streamrec._retention_tick() FROM PUBLIC;

-- A dropped table's bound goes with it. SECURITY DEFINER: whoever drops the table may not see
-- the bound (another role's row); it only ever deletes the bounds of tables just dropped.
CREATE FUNCTION streamrec._retention_dropped() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM streamrec.retention t
    WHERE t.relation::oid IN (SELECT d.objid FROM pg_event_trigger_dropped_objects() d
                              WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0);
END $$;
REVOKE ALL ON FUNCTION streamrec._retention_dropped() FROM PUBLIC;
CREATE EVENT TRIGGER streamrec_retention_dropped ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION streamrec._retention_dropped();

-- ---------------------------------------------------------------------------------------------
-- Owners' dependencies. sources.owner, sinks.owner and retention.owner are role OIDs, which
-- PostgreSQL does not track; a grant is tracked (pg_shdepend). Each role that owns a source, sink
-- or retention bound holds EXECUTE on this function, so DROP ROLE refuses to drop it ("privileges
-- for function streamrec._owns_sources_sinks_or_retention()") until they are dropped. DROP OWNED
-- BY revokes it: the role can then be dropped, its sources and sinks stay (only a superuser sees
-- them), the launcher starts no worker for them and says why, and the tick drops its bounds.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION streamrec._owns_sources_sinks_or_retention() RETURNS void
LANGUAGE plpgsql AS $$ BEGIN END $$;
REVOKE ALL ON FUNCTION streamrec._owns_sources_sinks_or_retention() FROM PUBLIC;

-- SECURITY DEFINER: only the function's owner may grant on it. It grants to the row's owner and
-- revokes once that role owns no row in any of the three tables; it runs no code of theirs.
CREATE FUNCTION streamrec._track_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND (TG_OP = 'DELETE' OR OLD.owner IS DISTINCT FROM NEW.owner)
       AND EXISTS (SELECT FROM pg_roles r WHERE r.oid = OLD.owner)
       AND NOT EXISTS (SELECT FROM streamrec.sources s WHERE s.owner = OLD.owner)
       AND NOT EXISTS (SELECT FROM streamrec.sinks k WHERE k.owner = OLD.owner)
       AND NOT EXISTS (SELECT FROM streamrec.retention t WHERE t.owner = OLD.owner) THEN
        EXECUTE format('REVOKE EXECUTE ON FUNCTION streamrec._owns_sources_sinks_or_retention() FROM %I',
                       pg_get_userbyid(OLD.owner));
    END IF;
    IF TG_OP <> 'DELETE' AND EXISTS (SELECT FROM pg_roles r WHERE r.oid = NEW.owner) THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION streamrec._owns_sources_sinks_or_retention() TO %I',
                       pg_get_userbyid(NEW.owner));
    END IF;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION streamrec._track_owner() FROM PUBLIC;
CREATE TRIGGER track_owner AFTER INSERT OR DELETE OR UPDATE OF owner ON streamrec.sources
    FOR EACH ROW EXECUTE FUNCTION streamrec._track_owner();
CREATE TRIGGER track_owner AFTER INSERT OR DELETE OR UPDATE OF owner ON streamrec.sinks
    FOR EACH ROW EXECUTE FUNCTION streamrec._track_owner();
CREATE TRIGGER track_owner AFTER INSERT OR DELETE OR UPDATE OF owner ON streamrec.retention
    FOR EACH ROW EXECUTE FUNCTION streamrec._track_owner();
