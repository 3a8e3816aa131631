-- ---------------------------------------------------------------------------------------------
-- Retention. Pipelines drop their own state older than their retention option (their share of the
-- periodic tick, run by the launcher about once a second in its own transaction), and the input
-- tables are bounded by set_retention. "Older" is measured on the stream's own clock (the newest
-- time in each table, not counting rows past streamrec._clock_limit()), so replayed history is not
-- deleted just because it is old by the wall clock, and one row dated far ahead does not delete
-- everything behind it.
-- ---------------------------------------------------------------------------------------------
-- Deletes the rows of rel whose time column col is before cutoff (nothing when cutoff is NULL),
-- at most max_rows of them (NULL: all), through the column's index (every table this runs on
-- has one): the tick runs every second, and a sequential scan of a large table each time (what
-- the planner picks for a cutoff it cannot see, or for a growing table not analyzed yet) would
-- cost far more than the few old rows. The cutoff goes in as a literal of its own type.
CREATE FUNCTION streamrec._delete_before(rel regclass, col name, cutoff text, cutoff_type regtype DEFAULT 'timestamptz',
                                         max_rows int DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
BEGIN
    IF cutoff IS NULL THEN
        RETURN;
    ELSIF max_rows IS NULL THEN
        EXECUTE format('DELETE FROM %s WHERE %I < %L::%s', rel, col, cutoff, cutoff_type);
    ELSE
        EXECUTE format('DELETE FROM %1$s WHERE ctid = ANY (ARRAY(SELECT ctid FROM %1$s WHERE %2$I < %3$L::%4$s LIMIT %5$s))',
                       rel, col, cutoff, cutoff_type, max_rows);
    END IF;
END $$;
REVOKE ALL ON FUNCTION streamrec._delete_before(regclass, name, text, regtype, int) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Retention of input tables: the tick deletes rows older than `keep` on the table's own clock (the
-- newest value of its time column not past the wall clock plus streamrec.max_clock_skew, one index
-- probe), at most 100,000 rows per table per tick, so a backlog drains over a few ticks without
-- long transactions. Each bound belongs to the role that set it, and the tick deletes as that role
-- (streamrec._retain_as).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE streamrec.retention (
    relation     regclass PRIMARY KEY,
    time_column  name NOT NULL,
    keep         interval NOT NULL CHECK (keep > interval '0'),
    owner        oid NOT NULL DEFAULT streamrec._current_role(),  -- who set it; the tick deletes as this role
    last_error   text,                  -- why the last tick could not apply it, NULL once it could
    last_error_at timestamptz
);
COMMENT ON TABLE streamrec.retention IS 'How long each bounded input table keeps its rows (streamrec.set_retention)';
REVOKE ALL ON streamrec.retention FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON streamrec.retention TO streamrec_admin;
-- Each admin sees and changes only its own bounds, and a bound it writes is always its own.
ALTER TABLE streamrec.retention ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_retention ON streamrec.retention
    USING (owner = streamrec._current_role()) WITH CHECK (owner = streamrec._current_role());
SELECT pg_catalog.pg_extension_config_dump('streamrec.retention', '');

-- A bound written directly passes set_retention's checks too: a time column, and a table its
-- owner may DELETE from (else one admin's row would hold the table's only bound for nothing).
CREATE FUNCTION streamrec._retention_row_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF streamrec._caller_is_superuser() OR (TG_OP = 'UPDATE' AND (NEW.relation, NEW.time_column, NEW.owner)
                                            IS NOT DISTINCT FROM (OLD.relation, OLD.time_column, OLD.owner)) THEN
        RETURN NEW;
    END IF;
    IF coalesce((SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = NEW.relation AND a.attname = NEW.time_column
                                                         AND a.attnum > 0 AND NOT a.attisdropped)
                NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype), true) THEN
        PERFORM streamrec._bad_argument(format('column "%s" of %s is not a time column', NEW.time_column, NEW.relation),
                                        'Retention needs a timestamptz, timestamp or date column.');
    END IF;
    IF NOT has_table_privilege(NEW.owner, NEW.relation, 'SELECT') OR NOT has_table_privilege(NEW.owner, NEW.relation, 'DELETE') THEN
        RAISE EXCEPTION 'permission denied to delete from %', NEW.relation
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Retention deletes old rows as its owner: it needs SELECT and DELETE on the table.';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER check_retention_row BEFORE INSERT OR UPDATE ON streamrec.retention
    FOR EACH ROW EXECUTE FUNCTION streamrec._retention_row_check();

-- Gives the retained time column an index (the clock probe and the range delete need one),
-- following the catalog only. SECURITY DEFINER: the domain tables belong to the extension.
-- Safe for any admin with any argument: it only indexes a table's built-in time column that
-- the retention catalog names, for a bound whose owner may delete from the table (the row's
-- owner is always the role that wrote it: the policy above; built-in types: no comparison code
-- of the caller's runs).
CREATE FUNCTION streamrec._retention_index(rel regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col name := (SELECT r.time_column FROM streamrec.retention r
                 WHERE r.relation = rel AND has_table_privilege(r.owner, rel, 'SELECT')
                   AND has_table_privilege(r.owner, rel, 'DELETE'));
BEGIN
    IF col IS NOT NULL
       AND (SELECT c.relkind FROM pg_class c WHERE c.oid = rel) IN ('r', 'p')
       AND (SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0
                                                    AND NOT a.attisdropped)
           IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
       AND NOT EXISTS (
        SELECT FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = rel AND a.attname = col) THEN
        EXECUTE format('CREATE INDEX %I ON %s (%I)',
                       left((SELECT relname FROM pg_class WHERE oid = rel) || '_' || col, 49) || '_retention_idx', rel, col);
    END IF;
END $$;
REVOKE ALL ON FUNCTION streamrec._retention_index(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamrec._retention_index(regclass) TO streamrec_admin;

-- Bounds a table to the rows of the last `keep` of its time column; keep NULL lifts the bound.
CREATE FUNCTION streamrec.set_retention(relation regclass, time_column name, keep interval) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    column_type regtype;
BEGIN
    PERFORM streamrec._require_admin();
    IF relation IS NULL THEN
        PERFORM streamrec._bad_argument('relation must not be NULL',
                                        'e.g. streamrec.set_retention(''streamrec.clicks'', ''event_time'', ''7 days'')');
    END IF;
    IF keep IS NULL THEN
        DELETE FROM streamrec.retention r WHERE r.relation = set_retention.relation;
        RETURN;
    END IF;
    IF keep <= interval '0' THEN
        PERFORM streamrec._bad_argument(format('keep must be a positive interval, not %s', keep), 'e.g. ''7 days''');
    END IF;
    SELECT a.atttypid::regtype INTO column_type FROM pg_attribute a
    WHERE a.attrelid = relation AND a.attname = time_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF column_type IS NULL THEN
        RAISE EXCEPTION 'column "%" of % does not exist', time_column, relation
            USING ERRCODE = 'undefined_column', HINT = 'Name the column holding each row''s event time.';
    END IF;
    IF column_type NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
        PERFORM streamrec._bad_argument(format('column "%s" is %s, not a time', time_column, column_type),
                                        'Retention needs a timestamptz, timestamp or date column.');
    END IF;
    -- As the DELETE the tick runs as the caller would need: DELETE, and SELECT for its WHERE.
    IF NOT has_table_privilege(relation, 'SELECT') OR NOT has_table_privilege(relation, 'DELETE') THEN
        RAISE EXCEPTION 'permission denied to delete from %', relation
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Retention deletes old rows as you: it needs SELECT and DELETE on the table.';
    END IF;
    BEGIN
        INSERT INTO streamrec.retention AS r (relation, time_column, keep, owner)
        VALUES (set_retention.relation, set_retention.time_column, set_retention.keep,
                (SELECT o.oid FROM pg_roles o WHERE o.rolname = current_user))
        ON CONFLICT ON CONSTRAINT retention_pkey
        DO UPDATE SET time_column = excluded.time_column, keep = excluded.keep, last_error = NULL, last_error_at = NULL;
    EXCEPTION WHEN insufficient_privilege THEN
        -- Only the bound's owner passes the policy for its row.
        RAISE EXCEPTION 'the retention of % was set by another role', relation
            USING ERRCODE = 'insufficient_privilege', HINT = 'Only the role that set a bound may change or lift it.';
    END;
    PERFORM streamrec._retention_index(relation);
END $$;

-- One table's retention, as its owner (called through streamrec._retain_as, never as the
-- launcher's superuser). The clock is the newest time in the table that is not past the wall
-- clock plus streamrec.max_clock_skew (one probe of the column's index), so a row dated far in
-- the future is kept but moves no clock; rows older than that clock minus keep are deleted,
-- at most 100,000 per tick.
CREATE FUNCTION streamrec._retain(rel regclass, col name, keep interval) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cutoff text;
    cutoff_type regtype;
BEGIN
    EXECUTE format('SELECT (%1$I - $1)::text, pg_typeof(%1$I - $1) FROM %2$s WHERE %1$I <= $2 ORDER BY %1$I DESC LIMIT 1',
                   col, rel)
        INTO cutoff, cutoff_type
        USING keep, streamrec._clock_limit();
    PERFORM streamrec._delete_before(rel, col, cutoff, cutoff_type, 100000);
END $$;
REVOKE ALL ON FUNCTION streamrec._retain(regclass, name, interval) FROM PUBLIC;
-- Invoker's rights: an admin calling either deletes only what its own DELETE could.
GRANT EXECUTE ON FUNCTION streamrec._retain(regclass, name, interval) TO streamrec_admin;
GRANT EXECUTE ON FUNCTION streamrec._delete_before(regclass, name, text, regtype, int) TO streamrec_admin;

CREATE FUNCTION streamrec._retain_as(owner oid, rel regclass, col name, keep interval) RETURNS void
    AS 'MODULE_PATHNAME', 'streamrec_retain_as' LANGUAGE C SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION streamrec._retain_as(oid, regclass, name, interval) FROM PUBLIC;

-- Each table in a subtransaction of its own: one that fails (privilege revoked, a trigger's
-- error) keeps its rows and its error (in last_error, logged once when it changes) and stops
-- no other table. Bounds of dropped tables or dropped owners go away.
CREATE FUNCTION streamrec._retention_tick() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r streamrec.retention;
    failure text;
BEGIN
    DELETE FROM streamrec.retention t
    WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.relation)
       OR NOT EXISTS (SELECT FROM pg_roles o WHERE o.oid = t.owner);
    FOR r IN SELECT * FROM streamrec.retention ORDER BY relation::oid LOOP
        BEGIN
            PERFORM streamrec._retain_as(r.owner, r.relation, r.time_column, r.keep);
            IF r.last_error IS NOT NULL THEN
                UPDATE streamrec.retention t SET last_error = NULL, last_error_at = NULL WHERE t.relation = r.relation;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT;
            IF r.last_error IS DISTINCT FROM failure THEN
                RAISE WARNING 'pg_streamrec: retention of % failed: %', r.relation, failure;
                UPDATE streamrec.retention t SET last_error = failure, last_error_at = now() WHERE t.relation = r.relation;
            END IF;
        END;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION streamrec._retention_tick() FROM PUBLIC;

-- A dropped table's bound goes with it. SECURITY DEFINER: whoever drops the table may not see
-- the bound (another role's row); it only ever deletes the bounds of tables just dropped.
CREATE FUNCTION streamrec._retention_dropped() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM streamrec.retention t
    WHERE t.relation::oid IN (SELECT d.objid FROM pg_event_trigger_dropped_objects() d
                              WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0);
END $$;
REVOKE ALL ON FUNCTION streamrec._retention_dropped() FROM PUBLIC;
CREATE EVENT TRIGGER streamrec_retention_dropped ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION streamrec._retention_dropped();
