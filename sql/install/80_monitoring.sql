-- ---------------------------------------------------------------------------------------------
-- Monitoring: live statistics of the workers and pipelines, joined with the catalog.
-- ---------------------------------------------------------------------------------------------
-- Live statistics of source and sink workers from shared memory.
CREATE FUNCTION streamrec._worker_stats(kind "char",
    OUT name text, OUT pid int, OUT state text, OUT messages bigint, OUT rows bigint, OUT bytes bigint,
    OUT dead_letters bigint, OUT batches bigint, OUT lag bigint, OUT last_message_at timestamptz,
    OUT last_error text, OUT last_error_at timestamptz) RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'streamrec_worker_stats' LANGUAGE C STRICT VOLATILE;

-- Tombstones (null-value messages) each source counted and skipped.
CREATE FUNCTION streamrec._source_tombstones(OUT name text, OUT tombstones bigint) RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'streamrec_source_tombstones' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION streamrec._source_tombstones() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._source_tombstones() TO streamrec_admin;

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
       CASE WHEN s.last_error IS NOT NULL THEN s.last_error_at ELSE w.last_error_at END AS last_error_at,
       coalesce(t.tombstones, 0) AS tombstones
FROM streamrec.sources s
LEFT JOIN streamrec._worker_stats('s') w ON w.name = s.name
LEFT JOIN streamrec._source_tombstones() t ON t.name = s.name;

REVOKE ALL ON FUNCTION streamrec._worker_stats("char") FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._worker_stats("char") TO streamrec_admin;
GRANT SELECT ON streamrec.source_stats TO streamrec_admin;

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

GRANT SELECT ON streamrec.sink_stats TO streamrec_admin;

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
