-- ---------------------------------------------------------------------------------------------
-- Sinks: tables whose new rows are produced to Kafka topics, one worker each. Every row inserted
-- into a sink's relation is copied, by a statement-level AFTER INSERT trigger in the inserting
-- transaction, into the outbox; the sink's worker produces outbox rows in order with an idempotent
-- producer and deletes them once the broker acknowledged them. A rolled-back insert leaves nothing
-- in the outbox; a committed one stays there until delivered (or, when no format can hold it, is
-- kept with its error). One outbox row holds a chunk of up to 1,000 rows (or about 8 MB) of one
-- statement (binary typed rows in data, or a jsonb array in payload): the outbox pays its per-row
-- costs (heap tuple, index entry, WAL record, the delete after delivery) once per chunk, not once
-- per row; streamrec.outbox_rows() shows a chunk's rows. As for sources: the catalog is private, each admin sees its own sinks, and everyone
-- may call the API and gets _require_admin's hinted error.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.sinks (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
    relation    regclass NOT NULL,
    topic       text NOT NULL CHECK (topic <> ''),
    format      text NOT NULL DEFAULT 'csv' CHECK (format IN ('csv', 'json', 'avro', 'protobuf')),
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
REVOKE ALL ON streamrec.sinks FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON streamrec.sinks TO streamrec_admin;
ALTER TABLE streamrec.sinks ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_sinks ON streamrec.sinks USING (owner = streamrec._current_role());
SELECT pg_catalog.pg_extension_config_dump('streamrec.sinks', '');

CREATE TABLE streamrec.sink_outbox (
    sink        text NOT NULL,
    id          bigserial,
    -- A jsonb chunk (the SQL capture's, and every row kept with its error): the row as
    -- to_jsonb(), or an array of them in insertion order.
    payload     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    error       text,                 -- set when the row cannot be encoded: kept for inspection
    rows        int NOT NULL DEFAULT 1 CHECK (rows > 0),  -- rows in the chunk
    -- A binary chunk (the C++ capture's): typed rows, column names and types once.
    data        bytea,
    PRIMARY KEY (sink, id),
    CONSTRAINT sink_outbox_one_chunk CHECK ((payload IS NULL) <> (data IS NULL))
);
-- A chunk (some 100 kB) is toasted: lz4 compresses it several times faster than pglz, on the
-- inserting transaction's time (where the server is built without lz4, pglz it is).
DO $$
BEGIN
    ALTER TABLE streamrec.sink_outbox ALTER COLUMN payload SET COMPRESSION lz4, ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;
COMMENT ON TABLE streamrec.sink_outbox IS 'Rows waiting for a sink''s broker acknowledgement (chunks of up to 1,000 rows; streamrec.outbox_rows() shows them), and rows no format could encode (error set, one per outbox row)';
REVOKE ALL ON streamrec.sink_outbox FROM PUBLIC;
-- INSERT: the worker splits a row no format can hold out of its chunk, into an outbox row of its own.
GRANT SELECT, INSERT, UPDATE, DELETE ON streamrec.sink_outbox TO streamrec_admin;
GRANT USAGE ON SEQUENCE streamrec.sink_outbox_id_seq TO streamrec_admin;
ALTER TABLE streamrec.sink_outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_outbox ON streamrec.sink_outbox USING (sink IN (SELECT name FROM streamrec.sinks));

-- An outbox row's chunk as its rows (ordinal from 1, each row as to_jsonb(row)), whichever kind
-- the chunk is: SELECT o.id, r.* FROM streamrec.sink_outbox o, streamrec.outbox_rows(o) r.
-- Granted as the outbox's SELECT is (it renders only the row it is handed).
CREATE FUNCTION streamrec.outbox_rows(chunk streamrec.sink_outbox) RETURNS TABLE (ordinal int, row_json jsonb)
    AS 'MODULE_PATHNAME', 'streamrec_outbox_rows' LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION streamrec.outbox_rows(streamrec.sink_outbox) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec.outbox_rows(streamrec.sink_outbox) TO streamrec_admin;

-- The outbox trigger (extension/sink_capture.cpp). SECURITY DEFINER: whoever inserts into the
-- relation (not only admins) must be able to append to the outbox, which nobody but the sink's
-- owner may read. The rows of the statement go in insertion order in chunks of 1,000 (ids
-- ascending with the chunks), each row as streamrec.outbox_rows() renders it to_jsonb(row).
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

SELECT pg_catalog.pg_extension_config_dump('streamrec.sink_outbox', '');
SELECT pg_catalog.pg_extension_config_dump('streamrec.sink_outbox_id_seq', '');
