-- pg_streamrec 0.2 -> 0.3: the pipeline engine. Rows, offsets, triggers and sinks stay as they
-- are; the result is the schema a fresh 0.3 install creates (tests/integration/test_upgrade.py
-- compares the two, starting from 0.1).
\echo Use "ALTER EXTENSION pg_streamrec UPDATE TO '0.3'" to load this file. \quit

-- ---------------------------------------------------------------------------------------------
-- A binary outbox: the capture writes typed rows (column data) the sink worker produces without
-- parsing jsonb; jsonb chunks (payload) stay for the SQL capture, the rows kept with an error, and
-- the chunks written before this update, which the worker still delivers.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE streamrec.sink_outbox ALTER COLUMN payload DROP NOT NULL, ADD COLUMN data bytea,
    ADD CONSTRAINT sink_outbox_one_chunk CHECK ((payload IS NULL) <> (data IS NULL));
DO $$
BEGIN
    ALTER TABLE streamrec.sink_outbox ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;
COMMENT ON TABLE streamrec.sink_outbox IS 'Rows waiting for a sink''s broker acknowledgement (chunks of up to 1,000 rows; streamrec.outbox_rows() shows them), and rows no format could encode (error set, one per outbox row)';

CREATE FUNCTION streamrec.outbox_rows(chunk streamrec.sink_outbox) RETURNS TABLE (ordinal int, row_json jsonb)
    AS 'MODULE_PATHNAME', 'streamrec_outbox_rows' LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION streamrec.outbox_rows(streamrec.sink_outbox) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec.outbox_rows(streamrec.sink_outbox) TO streamrec_admin;
