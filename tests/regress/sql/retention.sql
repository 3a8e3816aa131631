-- Retention of input tables: set_retention validates its arguments, indexes the time column,
-- and the launcher's tick (called here by hand) deletes rows older than `keep` on the table's
-- own clock, whatever the wall clock says.
CREATE EXTENSION pg_streamrec;
\set SHOW_CONTEXT never
SET timezone = 'UTC';

SELECT streamrec.set_retention('streamrec.clicks', 'no_such_column', '1 hour');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec.set_retention('streamrec.clicks', 'user_id', '1 hour');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec.set_retention('streamrec.clicks', 'event_time', '-1 hour');
SELECT streamrec.set_retention(NULL, 'event_time', '1 hour');
CREATE ROLE retention_outsider;
SET ROLE retention_outsider;
SELECT streamrec.set_retention('streamrec.clicks', 'event_time', '1 hour');
RESET ROLE;
SELECT count(*) FROM streamrec.retention;

SELECT streamrec.set_retention('streamrec.clicks', 'event_time', '1 hour');
SELECT relation, time_column, keep FROM streamrec.retention;
SELECT indexname FROM pg_indexes WHERE tablename = 'clicks' AND indexname LIKE '%retention%';

INSERT INTO streamrec.clicks (user_id, product_id, event_time)
SELECT 'u' || g, 'p', timestamptz '2024-06-28 10:00:00' + g * interval '1 minute' FROM generate_series(0, 180) g;
SELECT streamrec._pipeline_tick();
-- The newest click is at 13:00; everything before 12:00 is gone, 12:00 itself stays.
SELECT count(*), min(event_time), max(event_time) FROM streamrec.clicks;

-- Changing keep applies at the next tick; NULL lifts the bound.
SELECT streamrec.set_retention('streamrec.clicks', 'event_time', '10 minutes');
SELECT streamrec._pipeline_tick();
SELECT count(*), min(event_time) FROM streamrec.clicks;
SELECT streamrec.set_retention('streamrec.clicks', 'event_time', NULL);
SELECT count(*) FROM streamrec.retention;

-- A date column: the cutoff keeps its type (max(day) - keep is a timestamp: the day before the
-- newest at midnight stays).
CREATE TABLE daily (day date, n int);
SELECT streamrec.set_retention('daily', 'day', '1 day');
INSERT INTO daily VALUES ('2024-06-26', 1), ('2024-06-27', 2), ('2024-06-28', 3);
SELECT streamrec._pipeline_tick();
SELECT day, n FROM daily ORDER BY day;
SELECT streamrec.set_retention('daily', 'day', NULL);
DROP TABLE daily;

DROP ROLE retention_outsider;
DROP EXTENSION pg_streamrec;
