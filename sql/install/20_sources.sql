-- ---------------------------------------------------------------------------------------------
-- Sources: Kafka topics consumed into tables, one worker each. Only superusers and streamrec_admin
-- members touch the catalog; options may hold Kafka credentials, so nothing here is readable by
-- PUBLIC. The API runs with the invoker's rights: the caller's own privileges decide what a source
-- may write, and row-level security records the caller as the owner the worker runs as.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.sources (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
    topic       text NOT NULL CHECK (topic <> ''),
    target      regclass NOT NULL,
    format      text NOT NULL DEFAULT 'csv' CHECK (format IN ('csv', 'json', 'avro', 'protobuf')),
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

REVOKE ALL ON streamrec.sources, streamrec.source_offsets, streamrec.dead_letters FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON streamrec.sources, streamrec.source_offsets, streamrec.dead_letters
    TO streamrec_admin;
GRANT USAGE ON SEQUENCE streamrec.dead_letters_id_seq TO streamrec_admin;
ALTER TABLE streamrec.sources ENABLE ROW LEVEL SECURITY;
ALTER TABLE streamrec.source_offsets ENABLE ROW LEVEL SECURITY;
ALTER TABLE streamrec.dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_sources ON streamrec.sources USING (owner = streamrec._current_role());
-- Offsets go with their source (ON DELETE CASCADE) and source names are unique, so the
-- caller's visible sources are its own. Dead letters carry their writer (the source's owner):
-- they stay private to it even once the source is dropped and its name taken by another role
-- (drop_source deletes them anyway).
CREATE POLICY own_offsets ON streamrec.source_offsets USING (source IN (SELECT name FROM streamrec.sources));
CREATE POLICY own_dead_letters ON streamrec.dead_letters USING (owner = streamrec._current_role());

-- pg_dump keeps the catalog's rows (offsets included) with the extension.
SELECT pg_catalog.pg_extension_config_dump('streamrec.sources', '');
SELECT pg_catalog.pg_extension_config_dump('streamrec.source_offsets', '');
SELECT pg_catalog.pg_extension_config_dump('streamrec.dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('streamrec.dead_letters_id_seq', '');

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
CREATE FUNCTION streamrec._check_source_options(format text, target regclass, options jsonb) RETURNS void
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
