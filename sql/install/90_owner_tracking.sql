-- ---------------------------------------------------------------------------------------------
-- Owners' dependencies. sources.owner, sinks.owner and retention.owner are role OIDs, which
-- PostgreSQL does not track; a grant is tracked (pg_shdepend). Each role that owns a source, sink
-- or retention bound holds EXECUTE on this function, so DROP ROLE refuses to drop it ("privileges
-- for function streamrec._owns_sources_sinks_or_retention()") until they are dropped. DROP OWNED
-- BY revokes it: the role can then be dropped, its sources and sinks stay (only a superuser sees
-- them), the launcher starts no worker for them and says why, and the tick drops its bounds.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION streamrec._owns_sources_sinks_or_retention() RETURNS void
LANGUAGE plpgsql AS $$ BEGIN END $$;
REVOKE ALL ON FUNCTION streamrec._owns_sources_sinks_or_retention() FROM PUBLIC;

-- SECURITY DEFINER: only the function's owner may grant on it. It grants to the row's owner and
-- revokes once that role owns no row in any of the three tables; it runs no code of theirs.
CREATE FUNCTION streamrec._track_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND (TG_OP = 'DELETE' OR OLD.owner IS DISTINCT FROM NEW.owner)
       AND EXISTS (SELECT FROM pg_roles r WHERE r.oid = OLD.owner)
       AND NOT EXISTS (SELECT FROM streamrec.sources s WHERE s.owner = OLD.owner)
       AND NOT EXISTS (SELECT FROM streamrec.sinks k WHERE k.owner = OLD.owner)
       AND NOT EXISTS (SELECT FROM streamrec.retention t WHERE t.owner = OLD.owner) THEN
        EXECUTE format('REVOKE EXECUTE ON FUNCTION streamrec._owns_sources_sinks_or_retention() FROM %I',
                       pg_get_userbyid(OLD.owner));
    END IF;
    IF TG_OP <> 'DELETE' AND EXISTS (SELECT FROM pg_roles r WHERE r.oid = NEW.owner) THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION streamrec._owns_sources_sinks_or_retention() TO %I',
                       pg_get_userbyid(NEW.owner));
    END IF;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION streamrec._track_owner() FROM PUBLIC;
CREATE TRIGGER track_owner AFTER INSERT OR DELETE OR UPDATE OF owner ON streamrec.sources
    FOR EACH ROW EXECUTE FUNCTION streamrec._track_owner();
CREATE TRIGGER track_owner AFTER INSERT OR DELETE OR UPDATE OF owner ON streamrec.sinks
    FOR EACH ROW EXECUTE FUNCTION streamrec._track_owner();
CREATE TRIGGER track_owner AFTER INSERT OR DELETE OR UPDATE OF owner ON streamrec.retention
    FOR EACH ROW EXECUTE FUNCTION streamrec._track_owner();
