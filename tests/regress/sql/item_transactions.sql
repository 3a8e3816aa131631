-- item_transactions: validated stock changes in input order per item, unknown items,
-- one result per transaction, stock queries, 1-minute summaries and alerts at window close,
-- options with SQLSTATE and hint, output topics as sinks. No worker runs in this database:
-- plain INSERTs fire the triggers.
CREATE EXTENSION pg_streamrec;
\set SHOW_CONTEXT never
-- The pipeline counters live in shared memory per database and survive DROP EXTENSION: earlier
-- tests' batches (pipelines) count too, so this test shows what it added.
SELECT coalesce(sum(events), 0) AS events0, coalesce(sum(outputs), 0) AS outputs0, coalesce(sum(late), 0) AS late0
FROM streamrec._pipeline_stats() WHERE name = 'item_transactions' \gset

-- Options: defaults, validation, sinks per output topic.
SELECT streamrec.enable_pipeline('item_transactions', '{"alert_failure_ratio": 1.5}');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec.enable_pipeline('item_transactions', '{"alert_min_transactions": 0}');
SELECT streamrec.enable_pipeline('item_transactions', '{"window": "soon"}');
SELECT streamrec.enable_pipeline('item_transactions', '{"query_output_topic": ""}');
SELECT streamrec.enable_pipeline('item_transactions', '{"top_k": 3}');
SELECT streamrec.enable_pipeline('no_such_pipeline');
SELECT count(*) FROM streamrec.pipeline_catalog;

SELECT streamrec.enable_pipeline('item_transactions',
    '{"alert_min_transactions": 4, "output_brokers": "127.0.0.1:9", "output_topic": "transaction.results", "query_output_topic": "query.output",
      "alert_output_topic": "transaction.alerts"}');
SELECT name, enabled, options, sinks FROM streamrec.pipelines;
SELECT name, relation, topic, format, options FROM streamrec.sinks ORDER BY name;
SELECT tgname, tgrelid::regclass FROM pg_trigger WHERE tgname LIKE 'streamrec_%' AND NOT tgisinternal ORDER BY tgname, tgrelid::regclass::text;
-- Without the query topic, its sink goes; the others stay.
SELECT streamrec.enable_pipeline('item_transactions', '{"alert_min_transactions": 4, "output_brokers": "127.0.0.1:9", "output_topic": "transaction.results"}');
SELECT name, topic FROM streamrec.sinks ORDER BY name;
SELECT sinks FROM streamrec.pipelines;

INSERT INTO streamrec.inventory (product_id, category, stock) VALUES ('a', 'toys', 5), ('b', 'toys', 0);

-- Input order per item, within one statement: -3 ok (2), -3 fails (2), +10 (12), -12 (0).
-- An unknown item: a debit fails (NULL stock), a restock creates it, then it behaves as any.
INSERT INTO streamrec.item_transactions (transaction_id, item_id, quantity, ts) VALUES
    (1, 'a', -3, '2024-06-28 13:00:01+00'),
    (2, 'new', -1, '2024-06-28 13:00:02+00'),
    (3, 'a', -3, '2024-06-28 13:00:03+00'),
    (4, 'new', 7, '2024-06-28 13:00:04+00'),
    (5, 'a', 10, '2024-06-28 13:00:05+00'),
    (6, 'b', -1, '2024-06-28 13:00:06+00'),
    (7, 'a', -12, '2024-06-28 13:00:07+00'),
    (8, 'new', -8, '2024-06-28 13:00:08+00'),
    (9, 'ghost', 0, '2024-06-28 13:00:09+00');
SELECT transaction_id, item_id, quantity, success, stock_after FROM streamrec.transaction_results ORDER BY transaction_id;
SELECT product_id, category, stock FROM streamrec.inventory ORDER BY product_id;

-- Across statements: the next batch starts from the stock the last one left.
INSERT INTO streamrec.item_transactions VALUES (10, 'a', 1, '2024-06-28 13:00:30+00'), (11, 'a', -2, '2024-06-28 13:00:31+00');
SELECT transaction_id, success, stock_after FROM streamrec.transaction_results WHERE transaction_id >= 10 ORDER BY 1;

-- Queries answer with the stock after every transaction stored before them; unknown: NULL.
INSERT INTO streamrec.stock_queries VALUES (100, 'a'), (101, 'new'), (102, 'ghost'), (103, 'b');
SELECT query_id, item_id, stock FROM streamrec.query_results ORDER BY query_id;
-- In one transaction, a query sees the transactions inserted before it.
BEGIN;
INSERT INTO streamrec.item_transactions VALUES (12, 'b', 4, '2024-06-28 13:00:40+00');
INSERT INTO streamrec.stock_queries VALUES (104, 'b');
COMMIT;
SELECT query_id, stock FROM streamrec.query_results WHERE query_id = 104;

-- A manual UPDATE of the stock is what the next transaction sees.
UPDATE streamrec.inventory SET stock = 3 WHERE product_id = 'b';
INSERT INTO streamrec.item_transactions VALUES (13, 'b', -3, '2024-06-28 13:00:50+00'), (14, 'b', -1, '2024-06-28 13:00:51+00');
SELECT transaction_id, success, stock_after FROM streamrec.transaction_results WHERE transaction_id >= 13 ORDER BY 1;

-- The window of 13:00 is still open (watermark 13:00:50): no summary and no alert yet. A
-- window's summaries are written when it closes.
SELECT count(*) FROM streamrec.transaction_summaries;
SELECT watermark FROM streamrec.pipeline_clock WHERE pipeline = 'item_transactions';
SELECT count(*) FROM streamrec.transaction_alerts;

-- A transaction at 13:01:05 moves the watermark to 13:01:04: the 13:00 window closes. 'new'
-- (1 ok, 2 failed: 3 transactions) is under alert_min_transactions = 4; 'b' (2 ok of 4, not
-- above 0.5) does not alert; 'a' has 1 failure in 7. Add failures to 'b' in a new window.
INSERT INTO streamrec.item_transactions VALUES (15, 'z', 5, '2024-06-28 13:01:05+00');
SELECT watermark FROM streamrec.pipeline_clock WHERE pipeline = 'item_transactions';
SELECT count(*) FROM streamrec.transaction_alerts;
-- Summaries per item of the closed window (volume: |quantity| of the successful ones); 'z' is
-- in the open window of 13:01.
SELECT item_id, window_start, succeeded, failed, volume FROM streamrec.transaction_summaries ORDER BY 1, 2;
INSERT INTO streamrec.item_transactions
SELECT 20 + g, 'b', -100, '2024-06-28 13:01:10+00'::timestamptz + g * interval '1 second' FROM generate_series(1, 3) g;
INSERT INTO streamrec.item_transactions VALUES (30, 'b', 1, '2024-06-28 13:01:20+00');
-- Late: 13:00:59 is behind the closed window; it still counts in the summary.
INSERT INTO streamrec.item_transactions VALUES (31, 'a', 1, '2024-06-28 13:00:59+00');
INSERT INTO streamrec.item_transactions VALUES (32, 'z', 1, '2024-06-28 13:02:30+00');
SELECT item_id, window_start, window_end, succeeded, failed, volume FROM streamrec.transaction_alerts ORDER BY 1, 2;
SELECT item_id, window_start, succeeded, failed, volume FROM streamrec.transaction_summaries
WHERE item_id IN ('a', 'b') ORDER BY 1, 2;
SELECT name, events - :events0 AS events, outputs - :outputs0 AS outputs, late - :late0 AS late, skipped, last_error
FROM streamrec.pipelines;

-- Every transaction has exactly one result; the sinks captured them for the topics.
SELECT (SELECT count(*) FROM streamrec.item_transactions) AS transactions,
       (SELECT count(*) FROM streamrec.transaction_results) AS results,
       (SELECT coalesce(sum(rows), 0) FROM streamrec.sink_outbox WHERE sink = 'pipeline_item_transactions') AS outbox_results,
       (SELECT coalesce(sum(rows), 0) FROM streamrec.sink_outbox WHERE sink = 'pipeline_item_transactions_alerts') AS outbox_alerts;
-- (An outbox row holds a chunk of a statement's rows, which streamrec.outbox_rows shows; only
-- the columns the sink reads: its key and value columns.)
SELECT x.row_json AS payload FROM streamrec.sink_outbox o, streamrec.outbox_rows(o) x
WHERE sink = 'pipeline_item_transactions' ORDER BY o.id, x.ordinal LIMIT 2;

-- Idle windows close from the tick (here: idle_timeout passed since the last arrival).
UPDATE streamrec.pipeline_clock SET last_arrival = last_arrival - interval '1 hour' WHERE pipeline = 'item_transactions';
SELECT streamrec._close_idle_transaction_windows();
SELECT watermark FROM streamrec.pipeline_clock WHERE pipeline = 'item_transactions';

-- Retention drops old windows (and results) on the stream's own clock.
SELECT streamrec.enable_pipeline('item_transactions', '{"retention": "30 seconds"}');
SELECT streamrec._pipeline_tick();
SELECT item_id, window_start FROM streamrec.transaction_summaries ORDER BY 1, 2;
SELECT count(*) FROM streamrec.transaction_alerts;
-- Results too: older than the watermark (13:03) by the retention, or by the window (1 minute)
-- when that is longer, so only results of closed windows go.
SELECT transaction_id, ts FROM streamrec.transaction_results ORDER BY 1;

-- The stock is written by TID through the executor, as an UPDATE statement would write it. With
-- an index on stock the updates are not HOT: every index gets the new versions. User triggers
-- run (BEFORE ROW changes the row, AFTER STATEMENT sees the transition tables; both with the
-- pipeline's search_path, hence public.stock_log); CHECK
-- constraints hold (the failing batch rolls back whole).
INSERT INTO streamrec.inventory (product_id, stock) VALUES ('h1', 1000), ('h2', 2000);
CREATE INDEX inventory_stock_idx ON streamrec.inventory (stock);
CREATE TABLE stock_log (product_id text, old_stock int, new_stock int, seen_by text);
CREATE FUNCTION log_stock_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.stock_log VALUES (NEW.product_id, OLD.stock, NEW.stock, TG_NAME);
    NEW.name := 'touched';
    RETURN NEW;
END $$;
CREATE FUNCTION log_stock_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.stock_log SELECT n.product_id, o.stock, n.stock, TG_NAME FROM old_rows o JOIN new_rows n USING (product_id);
    RETURN NULL;
END $$;
CREATE TRIGGER log_stock_row BEFORE UPDATE OF stock ON streamrec.inventory
    FOR EACH ROW EXECUTE FUNCTION log_stock_row();
CREATE TRIGGER log_stock_statement AFTER UPDATE ON streamrec.inventory
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION log_stock_statement();
INSERT INTO streamrec.item_transactions VALUES
    (50, 'h1', -3, '2024-06-28 13:03:01+00'), (51, 'h2', 5, '2024-06-28 13:03:02+00'),
    (52, 'h1', -1, '2024-06-28 13:03:03+00'), (53, 'h9', 2, '2024-06-28 13:03:04+00'),
    (54, 'h2', -9999, '2024-06-28 13:03:05+00');
SELECT transaction_id, success, stock_after FROM streamrec.transaction_results WHERE transaction_id >= 50 ORDER BY 1;
SELECT product_id, old_stock, new_stock, seen_by FROM stock_log ORDER BY seen_by, product_id;
SELECT product_id, name, stock FROM streamrec.inventory WHERE product_id LIKE 'h%' ORDER BY 1;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT product_id FROM streamrec.inventory WHERE stock IN (996, 2005);
SELECT product_id FROM streamrec.inventory WHERE stock IN (996, 2005) ORDER BY 1;
SELECT product_id FROM streamrec.inventory WHERE stock IN (1000, 2000);
SELECT product_id, stock FROM streamrec.inventory WHERE product_id IN ('h1', 'h2') ORDER BY 1;
RESET enable_seqscan;
CREATE EXTENSION amcheck;
SELECT bt_index_check('streamrec.inventory_stock_idx', true), bt_index_check('streamrec.inventory_pkey', true);
ALTER TABLE streamrec.inventory ADD CONSTRAINT stock_below_5000 CHECK (stock < 5000);
INSERT INTO streamrec.item_transactions VALUES (55, 'h1', 1, '2024-06-28 13:03:06+00'), (56, 'h2', 3000, '2024-06-28 13:03:07+00');
SELECT count(*) FROM streamrec.transaction_results WHERE transaction_id >= 55;
SELECT product_id, stock FROM streamrec.inventory WHERE product_id IN ('h1', 'h2') ORDER BY 1;
ALTER TABLE streamrec.inventory DROP CONSTRAINT stock_below_5000;
DROP TRIGGER log_stock_row ON streamrec.inventory;
DROP TRIGGER log_stock_statement ON streamrec.inventory;
DROP FUNCTION log_stock_row(), log_stock_statement();
DROP TABLE stock_log;
DROP INDEX streamrec.inventory_stock_idx;
DROP EXTENSION amcheck;

-- The results go in as COPY inserts rows (a page at a time into the heap), firing what an INSERT
-- fires: a user's AFTER ROW trigger and AFTER STATEMENT trigger with a transition table see every
-- row, in input order, and so does the sink's capture; with a BEFORE ROW trigger the rows go one
-- at a time (each sees the rows before it) and the trigger may change them; a failing CHECK
-- constraint rolls back the whole batch.
SELECT streamrec.enable_pipeline('item_transactions', '{"retention": "30 seconds", "output_brokers": "127.0.0.1:9", "output_topic": "transaction.results"}');
CREATE TABLE result_log (transaction_id bigint, quantity int, stock_after int, seen_by text, n bigint);
CREATE FUNCTION log_result_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_WHEN = 'BEFORE' THEN NEW.quantity := NEW.quantity * 10; END IF;
    INSERT INTO public.result_log VALUES (NEW.transaction_id, NEW.quantity, NEW.stock_after, TG_NAME,
        (SELECT count(*) FROM streamrec.transaction_results WHERE transaction_id >= 60));
    RETURN NEW;
END $$;
CREATE FUNCTION log_result_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.result_log SELECT transaction_id, quantity, stock_after, TG_NAME, row_number() OVER () FROM new_results;
    RETURN NULL;
END $$;
CREATE TRIGGER log_result_after_row AFTER INSERT ON streamrec.transaction_results
    FOR EACH ROW EXECUTE FUNCTION log_result_row();
CREATE TRIGGER log_result_statement AFTER INSERT ON streamrec.transaction_results
    REFERENCING NEW TABLE AS new_results FOR EACH STATEMENT EXECUTE FUNCTION log_result_statement();
INSERT INTO streamrec.item_transactions VALUES
    (60, 'h1', -1, '2024-06-28 13:03:10+00'), (61, 'h9', 1, '2024-06-28 13:03:11+00'),
    (62, 'nothing', -1, '2024-06-28 13:03:12+00'), (63, 'h1', -2, '2024-06-28 13:03:13+00');
SELECT transaction_id, quantity, stock_after, seen_by, n FROM result_log ORDER BY seen_by, n, transaction_id;
CREATE TRIGGER log_result_before_row BEFORE INSERT ON streamrec.transaction_results
    FOR EACH ROW EXECUTE FUNCTION log_result_row();
TRUNCATE result_log;
-- (processed_at is its default, now(): the time of the inserting transaction.)
BEGIN;
INSERT INTO streamrec.item_transactions VALUES
    (64, 'h1', -1, '2024-06-28 13:03:14+00'), (65, 'h1', 2, '2024-06-28 13:03:15+00'), (66, 'h1', -3, '2024-06-28 13:03:16+00');
SELECT transaction_id, quantity, stock_after, seen_by, n FROM result_log ORDER BY seen_by, n, transaction_id;
SELECT transaction_id, quantity, success, stock_after, processed_at = now() AS this_transaction
FROM streamrec.transaction_results WHERE transaction_id >= 60 ORDER BY 1;
COMMIT;
SELECT x.row_json AS payload FROM streamrec.sink_outbox o, streamrec.outbox_rows(o) x
WHERE sink = 'pipeline_item_transactions' AND (x.row_json ->> 'transaction_id')::int >= 60 ORDER BY o.id, x.ordinal;
DROP TRIGGER log_result_before_row ON streamrec.transaction_results;
DROP TRIGGER log_result_after_row ON streamrec.transaction_results;
DROP TRIGGER log_result_statement ON streamrec.transaction_results;
DROP FUNCTION log_result_row(), log_result_statement();
DROP TABLE result_log;
ALTER TABLE streamrec.transaction_results ADD CONSTRAINT no_777 CHECK (quantity <> 777);
\set VERBOSITY terse
INSERT INTO streamrec.item_transactions VALUES (67, 'h1', 1, '2024-06-28 13:03:17+00'), (68, 'h1', 777, '2024-06-28 13:03:18+00');
\set VERBOSITY default
SELECT count(*) FROM streamrec.transaction_results WHERE transaction_id >= 67;
SELECT count(*) FROM streamrec.item_transactions WHERE transaction_id >= 67;
SELECT product_id, stock FROM streamrec.inventory WHERE product_id = 'h1';
ALTER TABLE streamrec.transaction_results DROP CONSTRAINT no_777;

-- Disabled: triggers and sinks go, results stay, inserts apply nothing.
SELECT streamrec.disable_pipeline('item_transactions');
SELECT name, enabled, sinks FROM streamrec.pipelines;
SELECT count(*) FROM streamrec.sinks;
INSERT INTO streamrec.item_transactions VALUES (40, 'a', 1, '2024-06-28 13:03:00+00');
SELECT count(*) FROM streamrec.transaction_results WHERE transaction_id = 40;
SELECT streamrec.disable_pipeline('item_transactions');

-- Windows of any width start at whole multiples of the width since 2000-01-01, before it too:
-- the late count (in C++) and the closing aggregate (in SQL) agree on every window.
TRUNCATE streamrec.transaction_summaries, streamrec.transaction_alerts, streamrec.pipeline_clock, streamrec.pipeline_writers;
SELECT streamrec.enable_pipeline('item_transactions', '{"window": "7 seconds", "watermark_delay": "0 seconds"}');
INSERT INTO streamrec.item_transactions
SELECT 200 + g, 'w', 1, '1999-12-31 23:59:30+00'::timestamptz + g * interval '3 seconds' FROM generate_series(0, 20) g;
INSERT INTO streamrec.item_transactions VALUES (300, 'w', 1, '1999-12-31 23:59:31+00');  -- late
INSERT INTO streamrec.item_transactions VALUES (301, 'w', 1, '2000-01-01 00:10:00+00');  -- closes the rest
SELECT window_start AT TIME ZONE 'UTC' AS window_start, succeeded FROM streamrec.transaction_summaries ORDER BY 1;
SELECT count(*) = 0 AS same FROM (
    (SELECT window_start, succeeded FROM streamrec.transaction_summaries
     EXCEPT ALL
     SELECT timestamptz '2000-01-01 00:00:00+00'
                + floor(extract(epoch FROM ts - timestamptz '2000-01-01 00:00:00+00') / 7) * interval '7 seconds',
            count(*)
     FROM streamrec.item_transactions WHERE transaction_id >= 200 AND ts < '2000-01-01 00:10:00+00' GROUP BY 1)
    UNION ALL
    (SELECT timestamptz '2000-01-01 00:00:00+00'
                + floor(extract(epoch FROM ts - timestamptz '2000-01-01 00:00:00+00') / 7) * interval '7 seconds',
            count(*)
     FROM streamrec.item_transactions WHERE transaction_id >= 200 AND ts < '2000-01-01 00:10:00+00' GROUP BY 1
     EXCEPT ALL
     SELECT window_start, succeeded FROM streamrec.transaction_summaries)) d;
SELECT late FROM streamrec.pipelines WHERE name = 'item_transactions';
-- The clock reset by hand: a window that has summaries counts as closed (302 is not added to
-- it); the window of 301, never closed, is summarized now.
TRUNCATE streamrec.pipeline_clock, streamrec.pipeline_writers;
INSERT INTO streamrec.item_transactions VALUES (302, 'w', 1, '1999-12-31 23:59:26+00'), (303, 'w', 1, '2000-01-01 00:20:00+00');
SELECT window_start AT TIME ZONE 'UTC' AS window_start, succeeded FROM streamrec.transaction_summaries
WHERE window_start < '1999-12-31 23:59:32+00' OR window_start > '2000-01-01 00:01:00+00' ORDER BY 1;
SELECT streamrec.disable_pipeline('item_transactions');

DROP EXTENSION pg_streamrec;
