"""Errors crossing the C++/PostgreSQL boundary reach the client as clean ERRORs with a
SQLSTATE; the session stays usable; no backend dies; C++ destructors ran."""

import unittest

import psycopg2

from harness import ClusterTestCase


class ErrorBoundaryTest(ClusterTestCase):
    def setUp(self):
        self.conn = self.cluster.connect()
        self.pid = self.scalar("SELECT pg_backend_pid()")

    def tearDown(self):
        self.conn.close()

    def scalar(self, query, params=None):
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchone()[0]

    def expect_error(self, kind, sqlstate, message_part):
        with self.assertRaises(psycopg2.Error) as caught:
            self.scalar("SELECT streamrec._selftest(%s)", (kind,))
        self.assertEqual(caught.exception.pgcode, sqlstate)
        self.assertIn(message_part, caught.exception.pgerror)
        # Same backend, still usable, and every C++ object on the failed path was destroyed.
        self.assertEqual(self.scalar("SELECT pg_backend_pid()"), self.pid)
        self.assertEqual(self.scalar("SELECT streamrec._selftest('ok')"), "ok")
        self.assertEqual(self.scalar("SELECT streamrec._selftest_live_objects()"), 0)
        return caught.exception

    def test_postgres_error_under_cpp(self):
        self.expect_error("pg_error", "22P02", 'invalid input syntax for type integer: "not a number"')

    def test_cpp_error_with_sqlstate_detail_hint(self):
        e = self.expect_error("cpp_error", "22023", "selftest: C++ error with SQLSTATE")
        self.assertEqual(e.diag.message_detail, "Thrown as streamrec::Error inside a SQL function.")
        self.assertEqual(e.diag.message_hint, "This is expected in tests.")

    def test_std_exception_and_bad_alloc(self):
        self.expect_error("std_exception", "XX000", "selftest: plain std::exception")
        self.expect_error("bad_alloc", "53200", "out of memory in pg_streamrec")

    def test_nested_round_trip(self):
        self.expect_error("nested", "22023", "selftest: C++ error with SQLSTATE")

    def test_cancel_reaches_cpp_loop(self):
        other = self.cluster.connect()
        try:
            with other.cursor() as cur:
                cur.execute("SET statement_timeout = '300ms'")
                with self.assertRaises(psycopg2.Error) as caught:
                    cur.execute("SELECT streamrec._selftest('interrupt')")
                self.assertEqual(caught.exception.pgcode, "57014")  # query_canceled
                cur.execute("SELECT streamrec._selftest_live_objects()")
                self.assertEqual(cur.fetchone()[0], 0)
        finally:
            other.close()

    def test_inside_transaction_rolls_back_only_the_transaction(self):
        self.conn.autocommit = False
        with self.conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE t(x int)")
            cur.execute("INSERT INTO t VALUES (1)")
            with self.assertRaises(psycopg2.Error):
                cur.execute("SELECT streamrec._selftest('pg_error')")
        self.conn.rollback()
        self.conn.autocommit = True
        self.assertEqual(self.scalar("SELECT count(*) FROM pg_class WHERE relname = 't' AND relpersistence = 't'"), 0)

    def test_unknown_kind_has_hint(self):
        e = self.expect_error("nope", "22023", 'unknown selftest kind "nope"')
        self.assertIn("Use one of", e.diag.message_hint)

    def test_server_log_shows_errors_not_crashes(self):
        self.expect_error("cpp_error", "22023", "selftest")
        log = self.cluster.log_text()
        self.assertIn("ERROR:  selftest: C++ error with SQLSTATE", log)
        self.assertNotIn("terminated by signal", log)
        self.assertNotIn("PANIC", log)


if __name__ == "__main__":
    unittest.main()
