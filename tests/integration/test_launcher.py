"""The launcher background worker: waits for CREATE EXTENSION, survives DROP/CREATE,
reloads on SIGHUP, exits cleanly on shutdown, and comes back after kill -9."""

import time
import unittest

from harness import Cluster, launcher_activity, launcher_pid, wait_for

WAITING = "pg_streamrec: waiting for CREATE EXTENSION pg_streamrec"
WATCHING = "pg_streamrec: watching 0 sources and 0 sinks"


class LauncherTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster("launcher").init().start()

    def tearDown(self):
        try:
            self.cluster.assert_no_crash()
        finally:
            self.cluster.destroy()

    def wait_activity(self, expected, timeout=10):
        wait_for(lambda: launcher_activity(self.cluster) == expected, timeout, what=f"launcher activity {expected!r}")

    def test_waits_for_create_extension_then_watches_catalog(self):
        self.wait_activity(WAITING)
        pid = launcher_pid(self.cluster)
        self.cluster.sql("CREATE EXTENSION pg_streamrec")
        self.wait_activity(WATCHING)
        self.assertEqual(launcher_pid(self.cluster), pid, "launcher must not restart to notice the extension")
        # It reads the catalog, not a cached count.
        self.cluster.sql("INSERT INTO streamrec.sources(name, topic, target) VALUES ('s1', 't', 'streamrec.clicks')")
        self.wait_activity("pg_streamrec: watching 1 sources and 0 sinks")

    def test_survives_drop_and_create_extension(self):
        self.cluster.sql("CREATE EXTENSION pg_streamrec")
        self.wait_activity(WATCHING)
        pid = launcher_pid(self.cluster)
        for _ in range(3):
            self.cluster.sql("DROP EXTENSION pg_streamrec")
            self.wait_activity(WAITING)
            self.cluster.sql("CREATE EXTENSION pg_streamrec")
            self.wait_activity(WATCHING)
        self.assertEqual(launcher_pid(self.cluster), pid)
        self.assertNotIn("FATAL", self.cluster.log_text())

    def test_runs_only_in_configured_database(self):
        self.cluster.sql("CREATE DATABASE other")
        self.cluster.sql("CREATE EXTENSION pg_streamrec", dbname="other")
        self.assertEqual(self.cluster.value("SELECT datname FROM pg_stat_activity "
                                            "WHERE backend_type = 'pg_streamrec launcher'"), "postgres")
        time.sleep(1.5)
        self.assertEqual(launcher_activity(self.cluster), WAITING)

    def test_reloads_settings_on_sighup(self):
        self.wait_activity(WAITING)
        pid = launcher_pid(self.cluster)
        self.cluster.sql("ALTER SYSTEM SET streamrec.brokers = '127.0.0.1:19092'")
        self.cluster.sql("ALTER SYSTEM SET streamrec.max_workers = 5")
        self.cluster.reload()
        self.cluster.wait_for_log(r'pg_streamrec launcher: configuration reloaded: '
                                  r'streamrec.brokers="127.0.0.1:19092", streamrec.max_workers=5')
        self.assertEqual(launcher_pid(self.cluster), pid)
        self.assertEqual(self.cluster.value("SHOW streamrec.brokers"), "127.0.0.1:19092")

    def test_exits_cleanly_on_shutdown(self):
        self.cluster.sql("CREATE EXTENSION pg_streamrec")
        self.wait_activity(WATCHING)
        started = time.monotonic()
        self.cluster.stop(mode="fast")
        self.assertLess(time.monotonic() - started, 10)
        log = self.cluster.log_text()
        self.assertIn("pg_streamrec launcher: shutting down", log)
        self.assertRegex(log, r"database system is shut down")
        self.assertNotRegex(log, r'background worker "pg_streamrec launcher" \(PID \d+\) exited with exit code [^0]')
        # And it starts again with the server.
        self.cluster.start()
        self.wait_activity(WATCHING)

    def test_comes_back_after_kill_9(self):
        self.cluster.sql("CREATE EXTENSION pg_streamrec")
        self.wait_activity(WATCHING)
        # The harness runs with synchronous_commit = off: make sure CREATE EXTENSION's commit is
        # on disk, or the crash below may take it back (as it would in production).
        self.cluster.sql("CHECKPOINT")
        old_pid = launcher_pid(self.cluster)
        self.cluster.kill(old_pid)
        started = time.monotonic()
        # The postmaster reinitialises after a killed child, then restarts the launcher.
        new_pid = wait_for(lambda: (lambda p: p if p and p != old_pid else None)(launcher_pid(self.cluster)),
                           timeout=20, what="launcher restart")
        self.assertNotEqual(new_pid, old_pid)
        self.assertLess(time.monotonic() - started, 20)
        self.wait_activity(WATCHING)
        self.assertIn(f"(PID {old_pid}) was terminated by signal 9", self.cluster.log_text())


if __name__ == "__main__":
    unittest.main()
