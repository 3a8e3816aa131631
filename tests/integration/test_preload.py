"""pg_streamrec refuses to load outside shared_preload_libraries, with a hint."""

import unittest

import psycopg2

from harness import Cluster


class PreloadTest(unittest.TestCase):
    def test_refuses_without_shared_preload_libraries(self):
        with Cluster("nopreload", preload=False) as cluster:
            for statement in ("LOAD 'pg_streamrec'", "CREATE EXTENSION pg_streamrec"):
                with self.subTest(statement=statement):
                    with self.assertRaises(psycopg2.Error) as caught:
                        cluster.sql(statement)
                    self.assertEqual(caught.exception.pgcode, "55000")
                    self.assertIn("must be loaded via shared_preload_libraries", caught.exception.pgerror)
                    self.assertIn("Add pg_streamrec to shared_preload_libraries", caught.exception.diag.message_hint)
            self.assertEqual(cluster.value("SELECT count(*) FROM pg_extension WHERE extname = 'pg_streamrec'"), 0)
            cluster.assert_no_crash()

    def test_settings_and_reserved_prefix(self):
        with Cluster("settings", settings={"streamrec.max_workers": 3}) as cluster:
            self.assertEqual(cluster.value("SHOW streamrec.database"), "postgres")
            self.assertEqual(cluster.value("SHOW streamrec.max_workers"), "3")
            self.assertEqual(cluster.value("SELECT context FROM pg_settings WHERE name = 'streamrec.database'"),
                             "postmaster")
            with self.assertRaises(psycopg2.Error) as caught:
                cluster.sql("SET streamrec.no_such_setting = 1")
            self.assertEqual(caught.exception.pgcode, "42602")
            self.assertIn('"streamrec" is a reserved prefix', caught.exception.pgerror)


if __name__ == "__main__":
    unittest.main()
