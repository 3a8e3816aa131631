-- pg_streamrec 0.2 -> 0.3: the pipeline engine. Rows, offsets, triggers and sinks stay as they
-- are; the result is the schema a fresh 0.3 install creates (tests/integration/test_upgrade.py
-- compares the two, starting from 0.1).
\echo Use "ALTER EXTENSION pg_streamrec UPDATE TO '0.3'" to load this file. \quit
