-- The extension's internal C functions called the wrong way (bad arguments, a trigger of the
-- wrong kind) fail with a specific SQLSTATE, never internal_error (XX000), and the session goes on.
CREATE EXTENSION pg_streamrec;
\set SHOW_CONTEXT never
\set VERBOSITY terse
SET client_min_messages = warning;

CREATE TEMP TABLE wrong_kind(x int);
CREATE FUNCTION pg_temp.sqlstate_of(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE statement;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;

-- Every trigger function of the extension, as a BEFORE ROW trigger (each wants a statement or
-- AFTER trigger): one row per function, none with XX000.
SELECT p.proname,
       pg_temp.sqlstate_of(format('DROP TRIGGER IF EXISTS t ON wrong_kind; CREATE TRIGGER t BEFORE INSERT ON wrong_kind FOR EACH ROW EXECUTE FUNCTION streamrec.%I(); '
                                  'INSERT INTO wrong_kind VALUES (1)', p.proname)) AS sqlstate
FROM pg_proc p
WHERE p.pronamespace = 'streamrec'::regnamespace AND p.prorettype = 'trigger'::regtype
  AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
ORDER BY p.proname;

-- Bad arguments.
SELECT pg_temp.sqlstate_of($$SELECT streamrec._check_kafka_properties('"not an object"')$$) AS not_an_object;
SELECT pg_temp.sqlstate_of($$SELECT streamrec._check_kafka_properties('{"bootstrap.servers": 1}')$$) AS not_a_string;
SELECT pg_temp.sqlstate_of($$SELECT streamrec._check_kafka_properties('{"no.such.property": "x"}')$$) AS unknown_property;
SELECT pg_temp.sqlstate_of($$SELECT * FROM streamrec._worker_stats('x')$$) AS bad_worker_kind;
SELECT pg_temp.sqlstate_of($$SELECT streamrec._retain_as(0, 'wrong_kind', 'x', '1 day')$$) AS dropped_owner;
SELECT pg_temp.sqlstate_of($$SELECT streamrec._retain_as(10, 'wrong_kind', 'no_such_column', '1 day')$$) AS no_column;
SELECT pg_temp.sqlstate_of($$SELECT streamrec._selftest(NULL)$$) AS null_kind;

-- The exceptions of the PostgreSQL-free core that users, brokers and data cause, through the
-- error boundary; only an unclassified C++ exception (a bug) is XX000.
SELECT kind, pg_temp.sqlstate_of(format('SELECT streamrec._selftest(%L)', kind)) AS sqlstate
FROM unnest(ARRAY['kafka_setting', 'kafka_broker', 'registry_down', 'registry_refused', 'bad_data', 'bad_option',
                  'std_exception']) AS kind;

SELECT 'the session goes on' AS after;

DROP TABLE wrong_kind;
DROP EXTENSION pg_streamrec;
