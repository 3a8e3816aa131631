-- ---------------------------------------------------------------------------------------------
-- trending: page views per product per tumbling window, and the top top_n of each window.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.trending_counts (
    window_start  timestamptz NOT NULL,
    product_id    text NOT NULL,
    views         bigint NOT NULL,
    PRIMARY KEY (window_start, product_id)
);
GRANT SELECT ON streamrec.trending_counts TO PUBLIC;

-- trending: the top top_n products of each window.
CREATE VIEW streamrec.trending AS
SELECT r.window_start, r.product_id, r.views, r.rank
FROM (SELECT t.window_start, t.product_id, t.views,
             row_number() OVER (PARTITION BY t.window_start ORDER BY t.views DESC, t.product_id) AS rank
      FROM streamrec.trending_counts t) r
WHERE r.rank <= coalesce((SELECT (c.options ->> 'top_n')::int FROM streamrec.pipeline_catalog c
                          WHERE c.name = 'trending'), 10);
GRANT SELECT ON streamrec.trending TO PUBLIC;

-- Its share of _pipeline_tick: drops the windows older than retention on the stream's clock
-- (the newest window).
CREATE FUNCTION streamrec._trending_tick(options jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM streamrec._delete_before('streamrec.trending_counts', 'window_start',
        ((SELECT max(window_start) FROM streamrec.trending_counts WHERE window_start <= streamrec._clock_limit())
         - (options ->> 'retention')::interval)::text);
END $$;
REVOKE ALL ON FUNCTION streamrec._trending_tick(jsonb) FROM PUBLIC;

INSERT INTO streamrec.pipeline_kinds (name, list_order, defaults, triggers, tick) VALUES (
    'trending', 2,
    '{"window": "1 hour", "top_n": 10, "retention": "2 days"}',
    '[{"trigger": "streamrec_pipelines", "table": "streamrec.clicks", "function": "streamrec._pipeline_dispatch"}]',
    'streamrec._trending_tick');
