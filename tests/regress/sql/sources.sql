-- The sources API: validation with SQLSTATE and hint, catalog effects, stats view, security.
-- This database is not streamrec.database, so no worker starts: only the API is exercised.
CREATE EXTENSION pg_streamrec;
\set SHOW_CONTEXT never

CREATE TABLE src_target (id int PRIMARY KEY, name text, at timestamptz DEFAULT now());

-- Bad arguments: each is an ERROR with a SQLSTATE and a hint; nothing reaches the catalog.
SELECT streamrec.create_source('s1', 't', 'src_target', 'xml', 'b:9092');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec.create_source('s1', 't', 'src_target', 'csv', 'b:9092', '{"batch_sise": 5}');
SELECT streamrec.create_source('bad name', 't', 'src_target', 'csv', 'b:9092');
SELECT streamrec.create_source('s1', 't', 'src_target', 'csv', 'b:9092', '{"columns": ["id", "nope"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec.create_source('s1', 't', 'src_target', 'json', 'b:9092', '{"columns": ["id"]}');
SELECT streamrec.create_source('s1', 't', 'src_target', 'avro', 'b:9092');
SELECT streamrec.create_source('s1', 't', 'src_target', 'avro', 'b:9092', '{"schema_registry": "ftp://x"}');
SELECT streamrec.create_source('s1', 't', 'src_target', 'csv', 'b:9092', '{"metadata": {"at": "headers"}}');
SELECT streamrec.create_source('s1', 't', 'src_target', 'csv', 'b:9092', '{"start": "soonish"}');
SELECT streamrec.create_source('s1', 't', 'src_target', 'csv', 'b:9092', '{"batch_ms": 0}');
SELECT streamrec.create_source('s1', 't', 'src_target', 'csv', 'b:9092', '{"on_error": "ignore"}');
SELECT streamrec.create_source('s1', 't', 'src_target', 'csv', 'b:9092', '{"kafka": {"group.id": "x"}}');
-- The kafka option is an allow-list: unknown properties are refused with the list as the hint;
-- properties that run programs or load code are for superusers only (this session is one).
SELECT streamrec.create_source('s1', 't', 'src_target', 'csv', 'b:9092', '{"kafka": {"no.such.property": 1}}');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec._check_kafka_properties('{"sasl.kerberos.kinit.cmd": "true", "debug": "broker"}');
CREATE ROLE sources_regress_admin;
GRANT streamrec_admin TO sources_regress_admin;
SET ROLE sources_regress_admin;
SELECT streamrec._check_kafka_properties('{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "GSSAPI", "sasl.kerberos.kinit.cmd": "id > proof.txt"}');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec._check_kafka_properties('{"security.protocol": "SASL_SSL"}');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec._check_kafka_properties('{"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u", "sasl.password": "p", "linger.ms": 5}');
RESET ROLE;
DROP ROLE sources_regress_admin;
SELECT streamrec.create_source('s1', 't', 'src_target', 'csv', 'b:9092', '{"csv": {"delimiter": "\""}}');
SELECT streamrec.create_source('s1', 't', 'streamrec.clicks', 'csv', 'b:9092', '{"mode": "upsert"}');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec.create_source('s1', 't', 'streamrec.source_stats', 'csv', 'b:9092');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec.create_source('s1', 't', 'no_such_table', 'csv', 'b:9092');
SELECT count(*) FROM streamrec.sources;

-- A valid source, and what the catalog and the stats view show for it.
SELECT streamrec.create_source('clicks_in', 'flink.click.streams', 'src_target', 'json', 'b:9092',
       '{"columns": {"id": "click.id", "name": "user.name"}, "metadata": {"at": "timestamp"}, "mode": "upsert",
         "batch_size": 500, "kafka": {"security.protocol": "SASL_SSL"}}');
SELECT name, topic, target, format, brokers, options, paused, owner::regrole, generation FROM streamrec.sources;
SELECT streamrec.create_source('clicks_in', 'other', 'src_target', 'csv', 'b:9092');
\echo :LAST_ERROR_SQLSTATE
SELECT name, state, pid, messages, rows, dead_letters, lag, last_error FROM streamrec.source_stats;

-- pause, resume, reset bump the generation the worker checks before every batch.
SELECT streamrec.pause_source('clicks_in');
SELECT name, state FROM streamrec.source_stats;
SELECT streamrec.resume_source('clicks_in');
INSERT INTO streamrec.source_offsets VALUES ('clicks_in', 0, 42);
SELECT streamrec.reset_source('clicks_in', 'latest');
SELECT generation, paused, options->>'start' AS start FROM streamrec.sources;
SELECT count(*) FROM streamrec.source_offsets;
SELECT streamrec.reset_source('clicks_in', 'whenever');
SELECT streamrec.pause_source('ghost');
\echo :LAST_ERROR_SQLSTATE

-- Only superusers and streamrec_admin members manage sources, each seeing only their own.
CREATE ROLE regress_src_plain;
CREATE ROLE regress_src_admin IN ROLE streamrec_admin;
GRANT ALL ON src_target TO regress_src_admin;
SET ROLE regress_src_plain;
SELECT streamrec.create_source('p1', 't', 'src_target', 'csv', 'b:9092');
SELECT * FROM streamrec.sources;
RESET ROLE;
SET ROLE regress_src_admin;
SELECT count(*) FROM streamrec.sources;
SELECT streamrec.create_source('a1', 't', 'src_target', 'csv', 'b:9092');
SELECT name, owner::regrole FROM streamrec.sources;
SELECT streamrec.drop_source('clicks_in');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT name, owner::regrole FROM streamrec.sources ORDER BY name;

SELECT streamrec.drop_source('a1');
SELECT streamrec.drop_source('clicks_in');
SELECT count(*) FROM streamrec.sources;
DROP TABLE src_target;
DROP ROLE regress_src_plain;
DROP ROLE regress_src_admin;
DROP EXTENSION pg_streamrec;
