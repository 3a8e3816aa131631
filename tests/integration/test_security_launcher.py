"""What the launcher and its workers do on behalf of other roles: their SQL never finds objects a
role planted in a writable schema, a source's owner role cannot vanish under it, one role's
sources take at most streamrec.max_workers_per_role workers, and retention of a dropped table
stops nothing."""

import time
import unittest

import psycopg2

from harness import Cluster, ClusterTestCase, wait_for

# Nothing listens here: workers start, load their configuration and wait for the broker.
NO_BROKER = "127.0.0.1:1"


class LauncherSecurityTest(ClusterTestCase):
    def as_role(self, role, query, params=None):
        return self.cluster.sql(query, params, role=f'"{role}"')  # role names here are plain text

    def admin(self, role):
        self.sql(f'CREATE ROLE "{role}" LOGIN')
        self.sql(f'GRANT streamrec_admin TO "{role}"')
        self.sql(f'CREATE SCHEMA "{role}" AUTHORIZATION "{role}"')

    def source_of(self, role, name):
        self.as_role(role, f'CREATE TABLE "{role}"."{name}" (id int, body text)')
        self.as_role(role, "SELECT streamrec.create_source(%s, 't', %s, 'csv', %s)",
                     (name, f'"{role}"."{name}"', NO_BROKER))

    def stats(self, name):
        return self.sql("SELECT state, pid, last_error FROM streamrec.source_stats WHERE name = %s", (name,))[0]

    def wait_worker_started(self, name, timeout=60):
        # Past "starting", the worker has loaded its configuration (and met any planted object).
        return wait_for(lambda: self.stats(name)[1] is not None and self.stats(name)[0] not in ("starting", ""),
                        timeout, what=f"worker of {name} running")

    # --- unqualified names ------------------------------------------------------------------

    def test_planted_overloads_are_never_called_by_launcher_or_workers(self):
        # public writable by everyone, as in every database created before PostgreSQL 15.
        self.sql("GRANT CREATE ON SCHEMA public TO PUBLIC")
        self.sql("CREATE ROLE planter LOGIN")
        self.admin("victim")
        self.sql("CREATE TABLE public.proof (who text, what text)")
        self.sql("GRANT INSERT ON public.proof TO PUBLIC")
        body = """LANGUAGE plpgsql AS $f$
            BEGIN
                INSERT INTO public.proof VALUES (current_user, '{what}');
                BEGIN
                    ALTER ROLE planter SUPERUSER;
                EXCEPTION WHEN OTHERS THEN NULL;
                END;
                RETURN {result};
            END $f$"""
        for statement in [
            # A better match than pg_catalog.concat_ws(text, VARIADIC "any") for the launcher's
            # catalog query, over sources and over sinks.
            "CREATE FUNCTION public.concat_ws(text, oid, text, oid, text, text, jsonb, integer) RETURNS text "
            + body.format(what="concat_ws", result="'x'"),
            # oid = regtype: better than oid = oid for the workers' column queries.
            "CREATE FUNCTION public.planted_eq(oid, regtype) RETURNS boolean "
            + body.format(what="=", result="$1 OPERATOR(pg_catalog.=) $2::oid"),
            "CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regtype, FUNCTION = public.planted_eq)",
            # quote_ident(name): better than quote_ident(text) for attribute names.
            "CREATE FUNCTION public.quote_ident(name) RETURNS text "
            + body.format(what="quote_ident", result="pg_catalog.quote_ident($1::text)"),
        ]:
            self.as_role("planter", statement)
        # The trap works: a session with the default search_path falls into it.
        self.as_role("planter", "SELECT 'int4'::regtype::oid = 'int4'::regtype")
        self.assertEqual(self.sql("SELECT who, what FROM public.proof"), [("planter", "=")])
        self.sql("TRUNCATE public.proof")

        self.source_of("victim", "victim_source")
        self.as_role("victim", "CREATE TABLE victim.outgoing (id int, body text)")
        self.as_role("victim", "SELECT streamrec.create_sink('victim_sink', 'victim.outgoing', 't', 'csv', %s)",
                     (NO_BROKER,))
        self.wait_worker_started("victim_source")
        wait_for(lambda: self.value("SELECT pid FROM streamrec.sink_stats WHERE name = 'victim_sink'"), 60,
                 what="sink worker running")
        time.sleep(3)  # several launcher passes
        self.assertEqual(self.sql("SELECT who, what FROM public.proof"), [])
        self.assertFalse(self.value("SELECT rolsuper FROM pg_roles WHERE rolname = 'planter'"))
        self.as_role("victim", "SELECT streamrec.drop_sink('victim_sink')")
        self.as_role("victim", "SELECT streamrec.drop_source('victim_source')")
        self.sql("DROP OPERATOR public.= (oid, regtype)")
        self.sql("DROP FUNCTION public.concat_ws(text, oid, text, oid, text, text, jsonb, integer), "
                 "public.planted_eq(oid, regtype), public.quote_ident(name)")
        self.sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")

    # --- the owner's role -------------------------------------------------------------------

    def test_owner_role_cannot_be_dropped_and_a_dropped_owner_starts_no_worker(self):
        self.admin("owner_gone")
        self.source_of("owner_gone", "owned_source")
        self.wait_worker_started("owned_source")
        with self.assertRaises(psycopg2.Error) as caught:
            self.sql('DROP ROLE "owner_gone"')
        self.assertEqual(caught.exception.pgcode, "2BP01")
        self.assertIn("privileges for function streamrec._owns_sources_sinks_or_retention()",
                      caught.exception.diag.message_detail)

        # DROP OWNED BY revokes the marker (and drops the table): the role can go. Its source
        # stays for a superuser to drop; the launcher stops its worker and starts none.
        log_start = len(self.cluster.log_text())
        self.sql('DROP OWNED BY "owner_gone"')
        self.sql('DROP ROLE "owner_gone"')
        wait_for(lambda: self.stats("owned_source")[0] == "waiting for its owner", 30, what="source waits for its owner")
        state, pid, last_error = self.stats("owned_source")
        self.assertIsNone(pid)
        self.assertRegex(last_error, r"^the owner role \(OID \d+\) no longer exists; a superuser can drop it "
                                     r"with streamrec.drop_source\(\)$")
        time.sleep(4)
        self.assertIsNone(self.stats("owned_source")[1])
        self.assertNotIn("role with OID", self.cluster.log_text()[log_start:])
        self.sql("SELECT streamrec.drop_source('owned_source')")
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.source_stats WHERE name = 'owned_source'"), 0)

    def test_owner_that_cannot_log_in_starts_no_worker(self):
        self.admin("nologin_owner")
        self.source_of("nologin_owner", "nologin_source")
        self.wait_worker_started("nologin_source")
        self.sql("ALTER ROLE nologin_owner NOLOGIN")
        wait_for(lambda: self.stats("nologin_source")[0] == "waiting for its owner", 30, what="source waits")
        self.assertIsNone(self.stats("nologin_source")[1])
        self.assertIn('the owner role "nologin_owner" cannot log in', self.stats("nologin_source")[2])
        self.sql("ALTER ROLE nologin_owner LOGIN")
        self.wait_worker_started("nologin_source")
        self.assertIsNone(self.stats("nologin_source")[2])
        self.as_role("nologin_owner", "SELECT streamrec.drop_source('nologin_source')")

    # --- quota ------------------------------------------------------------------------------

    def test_sources_waiting_for_their_quota_leave_worker_slots_to_other_roles(self):
        # A waiting source holds a worker slot only to show why it waits: with fewer slots than
        # waiting sources, another role's source must still get one and start.
        slots = Cluster("launcher_slots", settings={"max_worker_processes": 4, "streamrec.max_workers_per_role": 1,
                                                    "streamrec.brokers": f"'{NO_BROKER}'"}).init().start()
        self.cluster = slots  # the helpers below use this test's own cluster
        try:
            self.sql("CREATE EXTENSION pg_streamrec")
            self.admin("slots_a")
            self.admin("slots_b")
            for name in ("slots_a1", "slots_a2", "slots_a3", "slots_a4"):
                self.source_of("slots_a", name)
            self.source_of("slots_b", "slots_b1")
            self.wait_worker_started("slots_a1")
            self.wait_worker_started("slots_b1")
            waiting = [self.stats(name)[0] for name in ("slots_a2", "slots_a3", "slots_a4")]
            self.assertNotIn("running", waiting)
            self.assertIn("waiting for its role's worker quota", waiting)
            slots.assert_no_crash()
        finally:
            del self.cluster
            slots.destroy()

    def test_max_workers_per_role(self):
        self.sql("ALTER SYSTEM SET streamrec.max_workers_per_role = 1")
        self.cluster.reload()
        try:
            self.admin("quota_a")
            self.admin("quota_b")
            self.source_of("quota_a", "quota_a1")
            self.source_of("quota_a", "quota_a2")
            self.source_of("quota_b", "quota_b1")
            self.wait_worker_started("quota_a1")
            self.wait_worker_started("quota_b1")
            wait_for(lambda: self.stats("quota_a2")[0] == "waiting for its role's worker quota", 30,
                     what="second source of quota_a waits")
            time.sleep(3)
            state, pid, last_error = self.stats("quota_a2")
            self.assertEqual(state, "waiting for its role's worker quota")
            self.assertIsNone(pid)
            self.assertEqual(last_error, 'streamrec.max_workers_per_role (1) workers of role "quota_a" are running')
            # One worker of quota_a stops: the other starts, and its stale reason goes.
            self.as_role("quota_a", "SELECT streamrec.pause_source('quota_a1')")
            self.wait_worker_started("quota_a2")
            self.assertIsNone(self.stats("quota_a2")[2])
            self.assertEqual(self.stats("quota_a1")[0], "paused")
            self.assertIsNotNone(self.stats("quota_b1")[1])
        finally:
            self.sql("ALTER SYSTEM RESET streamrec.max_workers_per_role")
            self.cluster.reload()
        for role, name in [("quota_a", "quota_a1"), ("quota_a", "quota_a2"), ("quota_b", "quota_b1")]:
            self.as_role(role, "SELECT streamrec.drop_source(%s)", (name,))

    # --- retention in the running launcher --------------------------------------------------

    def test_dropped_retained_table_stops_nothing(self):
        self.sql("CREATE TABLE kept_events (at timestamptz)")
        self.sql("CREATE TABLE doomed_events (at timestamptz)")
        for table in ("kept_events", "doomed_events"):
            self.sql(f"SELECT streamrec.set_retention('{table}', 'at', '1 hour')")
        # Without the event trigger, as if the table went some other way: the tick drops the bound.
        self.sql("ALTER EVENT TRIGGER streamrec_retention_dropped DISABLE")
        try:
            self.sql("DROP TABLE doomed_events")
        finally:
            self.sql("ALTER EVENT TRIGGER streamrec_retention_dropped ENABLE")
        log_start = len(self.cluster.log_text())
        self.sql("INSERT INTO kept_events VALUES (now() - interval '3 hours'), (now())")
        wait_for(lambda: self.value("SELECT count(*) FROM kept_events") == 1, 30, what="retention of kept_events")
        self.assertEqual(self.sql("SELECT relation::text FROM streamrec.retention"), [("kept_events",)])
        time.sleep(2)
        log = self.cluster.log_text()[log_start:]
        self.assertNotIn("ERROR", log)
        self.assertNotIn("WARNING", log)
        self.sql("DROP TABLE kept_events")
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.retention"), 0)


if __name__ == "__main__":
    unittest.main()
