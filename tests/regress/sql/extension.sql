-- The extension installs into schema streamrec with its catalog and domain tables.
CREATE EXTENSION pg_streamrec;

SELECT extname, extversion, extrelocatable, n.nspname AS schema
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE extname = 'pg_streamrec';

-- The catalog and domain tables and their columns, in order (later pipelines add more tables).
CREATE TEMP TABLE contract_tables(relname name);
INSERT INTO contract_tables VALUES ('sources'), ('source_offsets'), ('dead_letters'), ('sinks'), ('inventory'),
    ('clicks'), ('purchases'), ('users'), ('checkouts'), ('customers'), ('ratings'), ('item_transactions'),
    ('stock_queries');
SELECT c.relname, string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                             || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY a.attnum) AS columns
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'streamrec'
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind = 'r' AND c.relname IN (SELECT relname FROM contract_tables)
GROUP BY c.relname
ORDER BY c.relname;

-- Primary keys.
SELECT conrelid::regclass AS table_name, pg_get_constraintdef(oid) AS definition
FROM pg_constraint
WHERE connamespace = 'streamrec'::regnamespace AND contype = 'p'
  AND conrelid IN (SELECT ('streamrec.' || relname)::regclass FROM contract_tables)
ORDER BY conrelid::regclass::text;

-- Settings exist, with their defaults, and the prefix is reserved.
SELECT name, setting, context FROM pg_settings WHERE name LIKE 'streamrec.%' ORDER BY name;
SET streamrec.no_such_setting = 1;
SHOW streamrec.database;

-- The catalog is not readable by PUBLIC (options may carry credentials); streamrec_admin
-- members reach it, through row-level security.
SELECT relname, relacl, relrowsecurity FROM pg_class
WHERE relnamespace = 'streamrec'::regnamespace AND relname IN ('sources', 'sinks', 'source_offsets', 'dead_letters')
ORDER BY relname;
