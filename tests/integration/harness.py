"""The one test harness: throwaway PostgreSQL clusters (run as the unprivileged `postgres`
user, because PostgreSQL refuses root) with pg_streamrec preloaded, plus helpers to wait for
things and to read the server log. Used by the integration tests, tools/check and tools/demo."""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import unittest

import psycopg2
import psycopg2.extensions

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("STREAMREC_BUILD", os.path.join(REPO, "build"))
PG_CONFIG = os.environ.get("PG_CONFIG", "/usr/lib/postgresql/15/bin/pg_config")
RUN_AS = "postgres"

# Every cluster a run created, so the runner can scan all their logs at the end.
ALL_CLUSTERS = []

_SIGNAL_LINE = re.compile(r"\(PID (\d+)\) was terminated by signal (\d+)")


def pg_bindir():
    return subprocess.check_output([PG_CONFIG, "--bindir"], text=True).strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def datagen(kind, *args):
    """Runs the data generator (tools/datagen) and returns what it wrote to stdout."""
    return subprocess.run([os.path.join(BUILD, "streamrec-datagen"), kind, "--quiet", *map(str, args)], check=True,
                          capture_output=True, text=True).stdout


def wait_for(predicate, timeout=10.0, interval=0.1, what="condition"):
    """Polls predicate until it returns a truthy value; returns that value or raises."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the thing we wait for may not exist yet
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" +
                         (f" (last error: {last_error})" if last_error else ""))


def _as_postgres(cmd):
    """Runs cmd as the postgres user when we are root (PostgreSQL will not run as root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", RUN_AS, "--"] + cmd
    return cmd


class Cluster:
    """A throwaway PostgreSQL 15 cluster in a temporary directory."""

    def __init__(self, name="test", preload=True, settings=None, database="postgres"):
        self.name = name
        self.preload = preload
        self.settings = dict(settings or {})
        self.database = database
        self.bindir = pg_bindir()
        self.dir = tempfile.mkdtemp(prefix=f"streamrec-{name}-")
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "server.log")
        self.port = free_port()
        self.expected_kills = set()  # PIDs a test killed on purpose
        self.running = False
        if os.geteuid() == 0:
            pw = pwd.getpwnam(RUN_AS)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)
        ALL_CLUSTERS.append(self)

    # --- lifecycle -------------------------------------------------------------------------
    def init(self):
        subprocess.run(_as_postgres([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres",
                                     "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL)
        conf = {
            "port": self.port,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_worker_processes": 32,
            "log_line_prefix": "'%m [%p] %b '",
            "streamrec.database": f"'{self.database}'",
        }
        if self.preload:
            conf["shared_preload_libraries"] = "'pg_streamrec'"
        conf.update(self.settings)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# pg_streamrec test harness\n")
            for key, value in conf.items():
                f.write(f"{key} = {value}\n")
        return self

    def start(self, timeout=30):
        subprocess.run(_as_postgres([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.logfile,
                                     "-w", "-t", str(timeout), "start"]),
                       check=True, stdout=subprocess.DEVNULL)
        self.running = True
        return self

    def stop(self, mode="fast", check=True):
        if not self.running:
            return None
        result = subprocess.run(_as_postgres([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode,
                                              "-w", "-t", "60", "stop"]),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.running = False
        if check and result.returncode != 0:
            raise AssertionError(f"pg_ctl stop failed: {result.stdout}")
        return result

    def restart(self):
        self.stop()
        return self.start()

    def reload(self):
        self.sql("SELECT pg_reload_conf()")

    def set_conf(self, key, value):
        """Appends a setting to postgresql.conf (last one wins); call reload() or restart()."""
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"{key} = {value}\n")

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def kill(self, pid, sig=signal.SIGKILL):
        """Kills a server process on purpose; the log check then tolerates that PID."""
        self.expected_kills.add(int(pid))
        os.kill(int(pid), sig)

    def destroy(self):
        if self.running:
            self.stop(mode="immediate", check=False)
        if os.environ.get("STREAMREC_KEEP_CLUSTERS"):
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.init().start()

    def __exit__(self, *exc):
        self.destroy()

    # --- SQL -------------------------------------------------------------------------------
    def dsn(self, dbname=None):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname or self.database}"

    def connect(self, dbname=None, autocommit=True):
        conn = psycopg2.connect(self.dsn(dbname), connect_timeout=10)
        conn.autocommit = autocommit
        return conn

    def sql(self, query, params=None, dbname=None, role=None):
        """Runs one statement in a fresh connection, after SET ROLE role when given (an SQL
        identifier: quote a mixed-case name); returns all rows (or [] for no result)."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                if role is not None:
                    cur.execute(f"SET ROLE {role}")
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def value(self, query, params=None, dbname=None):
        rows = self.sql(query, params, dbname)
        return rows[0][0] if rows else None

    def psql_env(self):
        return {"PGHOST": "127.0.0.1", "PGPORT": str(self.port), "PGUSER": "postgres",
                "PGDATABASE": self.database}

    # --- logs ------------------------------------------------------------------------------
    def log_text(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern, timeout=10.0, start=0):
        regex = re.compile(pattern)
        return wait_for(lambda: regex.search(self.log_text(), start), timeout, what=f"log line /{pattern}/")

    def unexpected_signal_deaths(self):
        """Log lines of server processes killed by a signal that no test killed on purpose."""
        lines = []
        for line in self.log_text().splitlines():
            m = _SIGNAL_LINE.search(line)
            if m and int(m.group(1)) not in self.expected_kills:
                lines.append(line)
        return lines

    def assert_no_crash(self):
        deaths = self.unexpected_signal_deaths()
        if deaths:
            raise AssertionError(f"server log of {self.name} shows a process terminated by a signal:\n" +
                                 "\n".join(deaths))


def launcher_pid(cluster):
    return cluster.value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_streamrec launcher'")


def launcher_activity(cluster):
    return cluster.value("SELECT query FROM pg_stat_activity WHERE backend_type = 'pg_streamrec launcher'")


class ClusterTestCase(unittest.TestCase):
    """One cluster (with the class's `settings`) with the extension created, shared by the tests
    of a class; after them, the server log must show no crashed backend."""
    settings = {}
    # The statement that creates the extension in the cluster's database (None: the class does).
    create_extension = "CREATE EXTENSION pg_streamrec"

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(cls.__name__.lower(), settings=cls.settings).init().start()
        if cls.create_extension:
            cls.cluster.sql(cls.create_extension)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.cluster.assert_no_crash()
        finally:
            cls.cluster.destroy()

    def sql(self, query, params=None):
        return self.cluster.sql(query, params)

    def value(self, query, params=None):
        return self.cluster.value(query, params)

    def as_role(self, role, query, params=None):
        """Runs query as role (SET ROLE in a fresh connection); returns the rows."""
        return self.cluster.sql(query, params, role=role)

    # Whether expect_role_error also demands a hint (a class whose refusals all carry one sets it).
    refusals_have_hints = False

    def expect_role_error(self, role, sqlstate, query, params=None, hint=None):
        """Runs query as role, asserts it fails with sqlstate (and a hint, see refusals_have_hints);
        returns the error."""
        with self.assertRaises(psycopg2.Error) as caught:
            self.as_role(role, query, params)
        e = caught.exception
        self.assertEqual(e.pgcode, sqlstate, e.pgerror)
        if self.refusals_have_hints if hint is None else hint:
            self.assertTrue(e.diag.message_hint, f"no hint for: {e.pgerror}")
        return e

    def source_stats(self, name):
        rows = self.sql("SELECT row_to_json(s) FROM streamrec.source_stats s WHERE name = %s", (name,))
        return rows[0][0] if rows else None

    def sink_stats(self, name):
        rows = self.sql("SELECT row_to_json(s) FROM streamrec.sink_stats s WHERE name = %s", (name,))
        return rows[0][0] if rows else None


class StreamTestCase(ClusterTestCase):
    """One sandbox broker (with the class's `topics`) and one cluster with the extension
    created, shared by the tests of a class; each test uses its own topics and tables."""
    topics = {}

    @classmethod
    def setUpClass(cls):
        from sandbox import Sandbox  # the sandbox module imports nothing of ours
        cls.sandbox = Sandbox(BUILD, topics=cls.topics).start()
        cls.settings = dict(cls.settings, **{"streamrec.brokers": f"'{cls.sandbox.bootstrap}'"})
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.sandbox.stop()
            cls.sandbox.cleanup()


# --- streaming replication: hot standbys of a Cluster --------------------------------------
# Settings a primary needs before make_standby(): WAL for a standby, senders, and hot standby
# (copied into the standby's postgresql.conf by the base backup).
REPLICATION_SETTINGS = {"wal_level": "replica", "max_wal_senders": 10, "max_replication_slots": 10,
                        "hot_standby": "on", "wal_receiver_status_interval": "'1s'"}


def cluster_pids(postmaster):
    """The postmaster and its children (every process of the server)."""
    pids = [postmaster]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            pids.append(int(entry))
    return pids


def make_standby(primary, name, synchronous=False, settings=None):
    """A running hot standby of the running `primary` (started with REPLICATION_SETTINGS):
    pg_basebackup -R as postgres, streaming through a physical replication slot of its own (the
    primary keeps every WAL segment the standby has not received), application_name = `name`.
    synchronous: the primary then names it in synchronous_standby_names (its commits wait for
    the standby as synchronous_commit says)."""
    standby = Cluster(name, settings=dict(primary.settings, **(settings or {})), database=primary.database)
    slot = re.sub(r"[^a-z0-9_]", "_", name.lower())
    primary.sql("SELECT pg_create_physical_replication_slot(%s)", (slot,))
    conninfo = f"host=127.0.0.1 port={primary.port} user=postgres application_name={name}"
    subprocess.run(_as_postgres([os.path.join(primary.bindir, "pg_basebackup"), "-D", standby.data, "-d", conninfo,
                                 "-R", "-S", slot, "-X", "stream", "-c", "fast", "--no-sync"]),
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(standby.data, "postgresql.conf"), "a") as f:
        f.write(f"\n# standby of {primary.name}\nport = {standby.port}\n"
                f"unix_socket_directories = '{standby.dir}'\n")
        for key, value in (settings or {}).items():
            f.write(f"{key} = {value}\n")
    standby.start()
    wait_for(lambda: primary.value("SELECT count(*) FROM pg_stat_replication WHERE application_name = %s "
                                   "AND state = 'streaming'", (name,)), 60, what=f"{name} streaming")
    if synchronous:
        primary.set_conf("synchronous_standby_names", f"'{name}'")
        primary.reload()
        wait_for(lambda: primary.value("SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
                                       (name,)) == "sync", 30, what=f"{name} synchronous")
    return standby


def wait_for_replay(primary, standby, timeout=60):
    """Waits until the standby replayed everything the primary has logged so far (the insert
    position: an asynchronous commit may not be written out yet)."""
    lsn = primary.value("SELECT pg_current_wal_insert_lsn()")
    wait_for(lambda: standby.value("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)), timeout,
             what=f"{standby.name} replaying up to {lsn}")


def promote(standby, timeout=60):
    """pg_ctl promote -w: returns once the standby accepts writes."""
    subprocess.run(_as_postgres([os.path.join(standby.bindir, "pg_ctl"), "-D", standby.data, "-w", "-t",
                                 str(timeout), "promote"]), check=True, stdout=subprocess.DEVNULL)


def lose_server(cluster):
    """The server lost at once, as with a machine failure: every process of it stopped (SIGSTOP,
    so none acts after another died), then kill -9, the postmaster first. Nothing of it acts
    afterwards; its data directory is abandoned."""
    pids = cluster_pids(cluster.postmaster_pid())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            cluster.kill(pid)
        except ProcessLookupError:
            pass
    cluster.running = False
