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

-- The clock never moves past the wall clock plus streamrec.max_clock_skew: one click dated
-- 9999-12-31 among 1,000 retained clicks deletes none of them (it is kept, but moves no clock).
SHOW streamrec.max_clock_skew;
DELETE FROM streamrec.clicks;
SELECT streamrec.set_retention('streamrec.clicks', 'event_time', '1 day');
INSERT INTO streamrec.clicks (user_id, event_time) SELECT 'u' || g, now() - g * interval '1 second' FROM generate_series(1, 1000) g;
INSERT INTO streamrec.clicks (user_id, event_time) VALUES ('wild', '9999-12-31');
SELECT streamrec._pipeline_tick();
SELECT count(*) FILTER (WHERE user_id <> 'wild') AS retained, count(*) FILTER (WHERE user_id = 'wild') AS wild FROM streamrec.clicks;
-- A time within the skew does move it; rows older than that clock minus keep still go.
INSERT INTO streamrec.clicks (user_id, event_time) VALUES ('soon', now() + interval '30 minutes'), ('old', now() - interval '2 days');
SELECT streamrec._pipeline_tick();
SELECT count(*) AS retained, count(*) FILTER (WHERE user_id = 'old') AS old FROM streamrec.clicks;
SELECT streamrec.set_retention('streamrec.clicks', 'event_time', NULL);
DELETE FROM streamrec.clicks;

-- Each bound belongs to the role that set it, and the tick deletes as that role: a row trigger
-- on an admin's own table runs as that admin, which cannot become superuser through it.
CREATE ROLE retention_admin;
CREATE ROLE retention_other;
GRANT streamrec_admin TO retention_admin, retention_other;
CREATE SCHEMA retention_space;
GRANT USAGE, CREATE ON SCHEMA retention_space TO retention_admin, retention_other;
CREATE TABLE retention_space.proof (who text, superuser_now boolean, refused text);
GRANT ALL ON retention_space.proof TO PUBLIC;
SET ROLE retention_admin;
CREATE TABLE retention_space.admin_events (at timestamptz);
CREATE FUNCTION retention_space.trap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO retention_space.proof
    SELECT current_user, rolsuper, NULL FROM pg_catalog.pg_roles WHERE rolname = 'retention_admin';
    BEGIN
        ALTER ROLE retention_admin SUPERUSER;
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO retention_space.proof VALUES (current_user, NULL, 'ALTER ROLE: ' || SQLSTATE);
    END;
    BEGIN
        RESET ROLE;
        INSERT INTO retention_space.proof VALUES (current_user, NULL, NULL);
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO retention_space.proof VALUES (current_user, NULL, 'RESET ROLE: ' || SQLSTATE);
    END;
    RETURN OLD;
END $$;
CREATE TRIGGER trap BEFORE DELETE ON retention_space.admin_events FOR EACH ROW EXECUTE FUNCTION retention_space.trap();
INSERT INTO retention_space.admin_events VALUES ('2024-06-28 10:00+00'), ('2024-06-28 12:00+00');
SELECT streamrec.set_retention('retention_space.admin_events', 'at', '1 hour');
SELECT relation, time_column, keep, owner = (SELECT oid FROM pg_roles WHERE rolname = 'retention_admin') AS own
FROM streamrec.retention;
RESET ROLE;
SELECT streamrec._pipeline_tick();
SELECT * FROM retention_space.proof ORDER BY refused NULLS FIRST;
SELECT rolsuper FROM pg_roles WHERE rolname = 'retention_admin';
SELECT at FROM retention_space.admin_events;

-- Another admin neither sees that bound nor changes it, cannot write a bound owned by someone
-- else, and cannot bound a table it may not both read and delete from.
SET ROLE retention_other;
SELECT count(*) FROM streamrec.retention;
SELECT streamrec.set_retention('retention_space.admin_events', 'at', '1 minute');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec.set_retention('retention_space.admin_events', 'at', NULL);
INSERT INTO streamrec.retention (relation, time_column, keep, owner)
VALUES ('retention_space.admin_events', 'at', '1 minute', (SELECT oid FROM pg_roles WHERE rolname = 'retention_admin'));
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE retention_space.other_events (at timestamptz);
RESET ROLE;
SELECT keep FROM streamrec.retention WHERE relation = 'retention_space.admin_events'::regclass;
GRANT DELETE ON retention_space.admin_events TO retention_other;
SET ROLE retention_other;
SELECT streamrec.set_retention('retention_space.admin_events', 'at', '1 minute');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT SELECT ON retention_space.admin_events TO retention_other;
SET ROLE retention_other;
SELECT streamrec.set_retention('retention_space.admin_events', 'at', '1 minute');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
REVOKE ALL ON retention_space.admin_events FROM retention_other;
SET ROLE retention_other;

-- One failing table (its owner lost DELETE) keeps its rows and its error, logged once; the
-- other tables' retention goes on. A dropped table's bound goes with it.
INSERT INTO retention_space.other_events VALUES ('2024-06-28 10:00+00'), ('2024-06-28 12:00+00');
SELECT streamrec.set_retention('retention_space.other_events', 'at', '1 hour');
CREATE TABLE retention_space.doomed (at timestamptz);
SELECT streamrec.set_retention('retention_space.doomed', 'at', '1 hour');
RESET ROLE;
INSERT INTO retention_space.admin_events VALUES ('2024-06-28 09:00+00');
ALTER TABLE retention_space.admin_events OWNER TO retention_other;
GRANT SELECT ON retention_space.admin_events TO retention_admin;
DROP TABLE retention_space.doomed;
SELECT count(*) FROM streamrec.retention;
SELECT streamrec._pipeline_tick();
SELECT streamrec._pipeline_tick();
SELECT relation, last_error FROM streamrec.retention ORDER BY relation::text;
SELECT count(*) FROM retention_space.admin_events;
SELECT at FROM retention_space.other_events;
-- A bound whose table went without the event trigger seeing it is dropped by the tick.
INSERT INTO streamrec.retention (relation, time_column, keep, owner) VALUES (4000000000, 'at', '1 hour', 10);
SELECT streamrec._pipeline_tick();
SELECT count(*) FROM streamrec.retention WHERE relation::oid = 4000000000;

ALTER TABLE retention_space.admin_events OWNER TO retention_admin;
DROP OWNED BY retention_other;
DROP ROLE retention_other;

-- The owner's role cannot be dropped while it owns a bound (its only dependency here); after
-- DROP OWNED BY it can, and the tick drops its bounds.
CREATE ROLE retention_super SUPERUSER;
CREATE TABLE retention_kept (at timestamptz);
SET ROLE retention_super;
SELECT streamrec.set_retention('retention_kept', 'at', '1 hour');
RESET ROLE;
DROP ROLE retention_super;
\echo :LAST_ERROR_SQLSTATE
DROP OWNED BY retention_super;
DROP ROLE retention_super;
SELECT relation FROM streamrec.retention ORDER BY relation::text;
SELECT streamrec._pipeline_tick();
SELECT relation FROM streamrec.retention ORDER BY relation::text;
DROP TABLE retention_kept;
DROP SCHEMA retention_space CASCADE;
DROP ROLE retention_admin;

DROP ROLE retention_outsider;
DROP EXTENSION pg_streamrec;
