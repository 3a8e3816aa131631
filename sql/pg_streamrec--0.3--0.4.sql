-- pg_streamrec 0.3 -> 0.4: several servers (standby failover, partition-parallel servers,
-- dimensions replicated by logical replication). Rows, offsets, triggers and sinks stay as they
-- are; the result is the schema a fresh 0.4 install creates (tests/integration/test_upgrade.py
-- compares the two, starting from 0.1).
\echo Use "ALTER EXTENSION pg_streamrec UPDATE TO '0.4'" to load this file. \quit
