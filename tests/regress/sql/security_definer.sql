-- Every SECURITY DEFINER function of the extension pins search_path to pg_catalog, pg_temp:
-- otherwise an object planted in a schema on the caller's path (public, when it is writable)
-- would run with the extension owner's rights. The list must stay empty.
CREATE EXTENSION pg_streamrec;
SELECT p.oid::regprocedure AS unpinned
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND d.refclassid = 'pg_extension'::regclass
WHERE e.extname = 'pg_streamrec' AND p.prosecdef
  AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
ORDER BY 1;
-- The check itself sees SECURITY DEFINER functions (it would list one without the setting).
SELECT count(*) > 10 AS has_security_definer_functions
FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_streamrec'
WHERE p.prosecdef AND 'search_path=pg_catalog, pg_temp' = ANY (p.proconfig);
DROP EXTENSION pg_streamrec;
