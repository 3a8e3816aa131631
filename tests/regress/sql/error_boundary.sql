-- Errors cross the C++/PostgreSQL boundary as clean ERRORs with a SQLSTATE; the session
-- goes on, and C++ objects on the failed path were destroyed.
CREATE EXTENSION pg_streamrec;
\set SHOW_CONTEXT never

SELECT streamrec._selftest('ok');

-- A PostgreSQL ERROR raised under C++ frames.
SELECT streamrec._selftest('pg_error');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec._selftest_live_objects();

-- A C++ exception with SQLSTATE, detail and hint.
SELECT streamrec._selftest('cpp_error');
\echo :LAST_ERROR_SQLSTATE

-- Other C++ exceptions map to internal_error and out_of_memory.
SELECT streamrec._selftest('std_exception');
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec._selftest('bad_alloc');
\echo :LAST_ERROR_SQLSTATE

-- C++ -> SPI -> C++ (throws) -> ERROR -> C++ -> ERROR.
SELECT streamrec._selftest('nested');
\echo :LAST_ERROR_SQLSTATE

-- NULL and unknown arguments.
SELECT streamrec._selftest(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT streamrec._selftest('nope');
\echo :LAST_ERROR_SQLSTATE

-- Inside a transaction: a savepoint recovers, the session is fine.
BEGIN;
CREATE TEMP TABLE kept(x int);
INSERT INTO kept VALUES (1);
SAVEPOINT before_error;
SELECT streamrec._selftest('pg_error');
ROLLBACK TO SAVEPOINT before_error;
INSERT INTO kept VALUES (2);
COMMIT;
SELECT x FROM kept ORDER BY x;

-- A statement timeout cancels a C++ loop through the guard.
SET statement_timeout = '200ms';
SELECT streamrec._selftest('interrupt');
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;

SELECT streamrec._selftest_live_objects();
SELECT streamrec._selftest('ok');

-- Not for PUBLIC.
CREATE ROLE streamrec_regress_nobody;
GRANT USAGE ON SCHEMA streamrec TO streamrec_regress_nobody;
SET ROLE streamrec_regress_nobody;
SELECT streamrec._selftest('ok');
RESET ROLE;
DROP OWNED BY streamrec_regress_nobody;
DROP ROLE streamrec_regress_nobody;

DROP EXTENSION pg_streamrec;
