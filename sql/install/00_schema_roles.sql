-- pg_streamrec install script: catalog, domain tables, pipelines and entry points.
-- The script is built by concatenating the files of sql/install/ in the order of their names
-- (CMake and Makefile.pgxs both do it): edit these files, never the built pg_streamrec--X.Y.sql.
-- A change here needs the same change in the upgrade script from the previous version.
\echo Use "CREATE EXTENSION pg_streamrec" to load this file. \quit

-- ---------------------------------------------------------------------------------------------
-- Schema, roles and the helpers every area uses.
-- ---------------------------------------------------------------------------------------------
-- The role the caller acts as, by OID: owners are compared as OIDs (a name cast such as
-- current_user::text::regrole folds "Adm1" into adm1).
CREATE FUNCTION streamrec._current_role() RETURNS oid
    AS 'MODULE_PATHNAME', 'streamrec_current_role' LANGUAGE C STABLE PARALLEL SAFE;
-- Non-superusers administer sources, sinks, pipelines and retention bounds through membership
-- in streamrec_admin. Each sees and changes only the rows it owns (row-level security), so one
-- admin never reads another's Kafka credentials; a worker runs as its owner and so passes the
-- same policies. The role outlives the extension (roles belong to the whole cluster).
DO $$
BEGIN
    CREATE ROLE streamrec_admin NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
GRANT USAGE ON SCHEMA streamrec TO streamrec_admin;
-- Everyone may call the API (and so gets a clear "permission denied" with a hint from
-- _require_admin); only superusers and streamrec_admin members get past that check.
GRANT USAGE ON SCHEMA streamrec TO PUBLIC;

-- The caller must be a superuser or a member of streamrec_admin.
CREATE FUNCTION streamrec._require_admin() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'streamrec_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied to manage pg_streamrec sources and sinks'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('A superuser can run: GRANT streamrec_admin TO %I;', current_user);
    END IF;
END $$;

-- Raises invalid_parameter_value with a hint: the one way the API refuses an argument.
CREATE FUNCTION streamrec._bad_argument(message text, hint text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', message USING ERRCODE = 'invalid_parameter_value', HINT = hint;
END $$;

-- Whether the caller (by OID) is a superuser.
CREATE FUNCTION streamrec._caller_is_superuser() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = streamrec._current_role()), false)
$$;

-- The error-boundary self test (superuser only): shows that C++ and PostgreSQL errors cross cleanly.
CREATE FUNCTION streamrec._selftest(kind text) RETURNS text
    AS 'MODULE_PATHNAME', 'streamrec_selftest' LANGUAGE C VOLATILE;
CREATE FUNCTION streamrec._selftest_live_objects() RETURNS int
    AS 'MODULE_PATHNAME', 'streamrec_selftest_live_objects' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION streamrec._selftest(text), streamrec._selftest_live_objects() FROM PUBLIC;

-- The librdkafka property allow-list (core/kafka/property_policy.cpp): refuses a "kafka"
-- option the calling role may not set (42501 for superuser-only properties, 22023 for reserved
-- and unknown ones); the source and sink workers check their owner against it again at start.
CREATE FUNCTION streamrec._check_kafka_properties(properties jsonb) RETURNS void
    AS 'MODULE_PATHNAME', 'streamrec_check_kafka_properties' LANGUAGE C STABLE STRICT
    SET search_path = pg_catalog, pg_temp;
-- True for a property naming a credential (password, secret, private key, ...): views show ***.
CREATE FUNCTION streamrec._kafka_property_is_secret(name text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'streamrec_kafka_property_is_secret' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The extension's own transaction-level locks (extension/roles.cpp): like pg_advisory_xact_lock,
-- but in a lock space SQL's advisory lock functions cannot reach, so no role can hold them to
-- stall the pipelines. Only the extension's SECURITY DEFINER code calls it.
CREATE FUNCTION streamrec._xact_lock(space int, key int) RETURNS boolean
    AS 'MODULE_PATHNAME', 'streamrec_xact_lock' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION streamrec._xact_lock(int, int) FROM PUBLIC;

-- The latest time any clock may reach: the wall clock plus streamrec.max_clock_skew. Later
-- event times are stored and counted as future; no watermark and no retention clock (the newest
-- row of a pipeline's table) moves past this.
CREATE FUNCTION streamrec._clock_limit() RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'streamrec_clock_limit' LANGUAGE C STABLE;
