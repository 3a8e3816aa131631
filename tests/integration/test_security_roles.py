"""Roles, ownership and other roles' data: owners compared as OIDs (mixed-case role names),
catalog rows that record and enforce their owner however they are written, dead letters and
outbox rows that go with their source or sink, internal functions safe for any caller, no
blocking locks on the shared internal tables, worker statistics shown to their owner only, and
result tables with personal data read like their inputs. No broker is needed: sources and sinks
point at a closed port."""

import unittest

import psycopg2

from harness import ClusterTestCase, wait_for

ADMINS = ['"Adm1"', "adm1", '"Solo"']


class SecurityRolesTest(ClusterTestCase):
    settings = {"streamrec.brokers": "'127.0.0.1:1'"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for role in ADMINS:
            cls.cluster.sql(f"CREATE ROLE {role} IN ROLE streamrec_admin")
        cls.cluster.sql("CREATE ROLE reader_nobody")
        cls.cluster.sql("CREATE TABLE shared_t (id int, note text)")
        cls.cluster.sql("GRANT SELECT, INSERT ON shared_t TO streamrec_admin")
        cls.cluster.sql("CREATE TABLE closed_t (id int)")

    def refused(self, role, query, sqlstate, message=None, hint=True):
        with self.assertRaises(psycopg2.Error) as caught:
            self.as_role(role, query)
        self.assertEqual(caught.exception.pgcode, sqlstate, caught.exception.pgerror)
        if message is not None:
            self.assertIn(message, caught.exception.diag.message_primary)
        if hint:
            self.assertTrue(caught.exception.diag.message_hint, caught.exception.pgerror)
        return caught.exception

    def oid(self, role):
        return self.value(f"SELECT '{role}'::regrole::oid")

    # --- 1. owners are OIDs -------------------------------------------------------------------
    def test_mixed_case_roles_are_two_owners(self):
        self.as_role('"Adm1"', "SELECT streamrec.create_source('mc_upper', 't', 'shared_t')")
        self.as_role("adm1", "SELECT streamrec.create_source('mc_lower', 't', 'shared_t')")
        self.as_role('"Adm1"', "SELECT streamrec.create_sink('mc_upper_sink', 'shared_t', 't')")
        self.assertEqual(self.as_role('"Adm1"', "SELECT name FROM streamrec.sources WHERE name LIKE 'mc_%'"),
                         [("mc_upper",)])
        self.assertEqual(self.as_role("adm1", "SELECT name FROM streamrec.sources WHERE name LIKE 'mc_%'"),
                         [("mc_lower",)])
        self.assertEqual(self.as_role("adm1", "SELECT count(*) FROM streamrec.sinks WHERE name = 'mc_upper_sink'"),
                         [(0,)])
        self.assertEqual(self.value("SELECT owner FROM streamrec.sources WHERE name = 'mc_upper'"), self.oid('"Adm1"'))
        self.assertEqual(self.value("SELECT owner FROM streamrec.sources WHERE name = 'mc_lower'"), self.oid("adm1"))
        self.refused("adm1", "SELECT streamrec.drop_source('mc_upper')", "42704")
        self.refused("adm1", "SELECT streamrec.pause_sink('mc_upper_sink')", "42704")
        self.as_role('"Adm1"', "SELECT streamrec.drop_sink('mc_upper_sink')")
        for name, role in (("mc_upper", '"Adm1"'), ("mc_lower", "adm1")):
            self.as_role(role, f"SELECT streamrec.drop_source('{name}')")

    def test_role_with_only_a_mixed_case_name_uses_the_extension(self):
        self.as_role('"Solo"', "SELECT streamrec.create_source('solo_src', 't', 'shared_t')")
        self.as_role('"Solo"', "SELECT streamrec.pause_source('solo_src')")
        self.assertEqual(self.as_role('"Solo"', "SELECT name, paused FROM streamrec.sources"), [("solo_src", True)])
        self.as_role('"Solo"', "SELECT streamrec.create_sink('solo_sink', 'shared_t', 't')")
        self.assertEqual(self.as_role('"Solo"', "SELECT name FROM streamrec.sink_stats"), [("solo_sink",)])
        self.as_role('"Solo"', "SELECT streamrec.drop_sink('solo_sink')")
        self.as_role('"Solo"', "SELECT streamrec.drop_source('solo_src')")
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sources WHERE name = 'solo_src'"), 0)

    # --- 2. every catalog row records and enforces its owner ------------------------------------
    def test_direct_insert_gets_the_callers_owner_and_is_validated(self):
        upper = self.oid('"Adm1"')
        self.as_role("adm1", "INSERT INTO streamrec.sources(name, topic, target, owner) "
                             f"VALUES ('forged', 't', 'shared_t', {upper})")
        self.assertEqual(self.value("SELECT owner FROM streamrec.sources WHERE name = 'forged'"), self.oid("adm1"))
        self.refused("adm1", f"UPDATE streamrec.sources SET owner = {upper} WHERE name = 'forged'", "42501",
                     'permission denied to change the owner of source "forged"')
        self.refused("adm1", "UPDATE streamrec.sources SET options = '{\"nope\": 1}' WHERE name = 'forged'", "22023",
                     'unknown option "nope"')
        self.refused("adm1", "UPDATE streamrec.sources SET target = 'closed_t' WHERE name = 'forged'", "42501",
                     "permission denied to insert into public.closed_t")
        self.refused("adm1", "UPDATE streamrec.sources SET name = 'renamed' WHERE name = 'forged'", "0A000")
        self.as_role("adm1", "UPDATE streamrec.sources SET paused = true WHERE name = 'forged'")
        self.refused("adm1", "INSERT INTO streamrec.sources(name, topic, target) VALUES ('f2', 't', 'closed_t')",
                     "42501", "permission denied to insert into public.closed_t")
        self.refused("adm1", "INSERT INTO streamrec.sources(name, topic, target, options) "
                             "VALUES ('f2', 't', 'shared_t', '{\"batch_size\": 0}')", "22023")
        self.refused("adm1", "INSERT INTO streamrec.sources(name, topic, target, options) "
                             "VALUES ('f2', 't', 'shared_t', '{\"mode\": \"upsert\"}')", "42P16")
        # Sinks the same way.
        self.as_role("adm1", "INSERT INTO streamrec.sinks(name, relation, topic, owner) "
                             f"VALUES ('forged_sink', 'shared_t', 't', {upper})")
        self.assertEqual(self.value("SELECT owner FROM streamrec.sinks WHERE name = 'forged_sink'"), self.oid("adm1"))
        self.refused("adm1", f"UPDATE streamrec.sinks SET owner = {upper} WHERE name = 'forged_sink'", "42501")
        self.refused("adm1", "UPDATE streamrec.sinks SET relation = 'closed_t' WHERE name = 'forged_sink'", "0A000")
        self.refused("adm1", "UPDATE streamrec.sinks SET options = '{\"key\": \"missing\"}' WHERE name = 'forged_sink'",
                     "42703")
        self.refused("adm1", "INSERT INTO streamrec.sinks(name, relation, topic) VALUES ('fs2', 'closed_t', 't')",
                     "42501", "permission denied to read public.closed_t")
        self.as_role("adm1", "DELETE FROM streamrec.sinks WHERE name = 'forged_sink'")
        self.as_role("adm1", "DELETE FROM streamrec.sources WHERE name = 'forged'")
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sources WHERE name LIKE 'f%'"), 0)
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sinks WHERE name LIKE 'f%'"), 0)

    def test_dead_letters_go_with_their_source_and_stay_private(self):
        insert = ("INSERT INTO streamrec.dead_letters(source, topic, partition, \"offset\", payload, error) "
                  "VALUES ('{}', 't', 0, {}, 'x', 'bad')")
        # The example: one admin's dead letters, read by another admin's source of the same name.
        self.as_role('"Adm1"', "SELECT streamrec.create_source('dl_src', 't', 'shared_t')")
        self.as_role('"Adm1"', insert.format("dl_src", 1))
        self.as_role('"Adm1"', "SELECT streamrec.drop_source('dl_src')")
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.dead_letters WHERE source = 'dl_src'"), 0)
        self.as_role("adm1", "SELECT streamrec.create_source('dl_src', 't', 'shared_t')")
        self.assertEqual(self.as_role("adm1", "SELECT count(*) FROM streamrec.dead_letters"), [(0,)])
        self.as_role("adm1", "SELECT streamrec.drop_source('dl_src')")
        # The class: a dead letter is its writer's, whatever source name it carries and however
        # the source goes (a direct DELETE takes them too).
        self.as_role('"Adm1"', insert.format("dl_orphan", 2))
        self.as_role("adm1", "SELECT streamrec.create_source('dl_orphan', 't', 'shared_t')")
        self.assertEqual(self.as_role("adm1", "SELECT count(*) FROM streamrec.dead_letters"), [(0,)])
        self.assertEqual(self.as_role('"Adm1"', "SELECT \"offset\" FROM streamrec.dead_letters"), [(2,)])
        self.as_role("adm1", insert.format("dl_orphan", 3))
        self.as_role("adm1", "DELETE FROM streamrec.sources WHERE name = 'dl_orphan'")
        self.assertEqual(self.value("SELECT \"offset\" FROM streamrec.dead_letters WHERE source = 'dl_orphan'"), 2)
        self.refused('"Adm1"', "INSERT INTO streamrec.dead_letters(source, topic, partition, \"offset\", error, owner) "
                                f"VALUES ('x', 't', 0, 0, 'e', {self.oid('adm1')})", "42501",
                     'new row violates row-level security policy for table "dead_letters"', hint=False)
        self.sql("DELETE FROM streamrec.dead_letters")

    def test_pipeline_belongs_to_the_role_that_enabled_it(self):
        self.as_role('"Adm1"', "SELECT streamrec.enable_pipeline('trending', '{\"top_n\": 3}')")
        self.assertEqual(self.value("SELECT owner FROM streamrec.pipeline_catalog WHERE name = 'trending'"),
                         self.oid('"Adm1"'))
        self.refused("adm1", "SELECT streamrec.disable_pipeline('trending')", "42501",
                     'permission denied to change pipeline "trending"')
        self.refused("adm1", "SELECT streamrec.enable_pipeline('trending', '{\"top_n\": 5}')", "42501")
        self.refused("adm1", "UPDATE streamrec.pipeline_catalog SET enabled = false WHERE name = 'trending'", "42501")
        self.refused('"Adm1"', "UPDATE streamrec.pipeline_catalog SET options = options || '{\"top_n\": 0}' "
                               "WHERE name = 'trending'", "22023")
        self.refused("adm1", "INSERT INTO streamrec.pipeline_catalog(name, options) "
                             "VALUES ('ratings', '{\"status_window\": \"-1 minute\"}')", "22023")
        self.assertEqual(self.value("SELECT options ->> 'top_n' FROM streamrec.pipeline_catalog WHERE name = 'trending'"),
                         "3")
        self.as_role('"Adm1"', "SELECT streamrec.disable_pipeline('trending')")
        # A disabled pipeline goes to whoever enables it next.
        self.as_role("adm1", "SELECT streamrec.enable_pipeline('trending')")
        self.assertEqual(self.value("SELECT owner FROM streamrec.pipeline_catalog WHERE name = 'trending'"),
                         self.oid("adm1"))
        self.as_role("adm1", "SELECT streamrec.disable_pipeline('trending')")

    # --- 3. internal functions are safe for any caller -----------------------------------------
    def test_sync_sink_trigger_never_touches_another_admins_sink(self):
        self.sql("CREATE TABLE sync_b (id int)")
        self.sql("GRANT SELECT, INSERT ON sync_b TO adm1")
        self.as_role("adm1", "SELECT streamrec.create_sink('sync_b_sink', 'sync_b', 't')")
        self.sql("INSERT INTO sync_b SELECT generate_series(1, 5)")
        self.as_role("adm1", "SELECT streamrec.pause_sink('sync_b_sink')")
        pending = self.value("SELECT sum(rows) FROM streamrec.sink_outbox WHERE sink = 'sync_b_sink'")
        self.assertEqual(pending, 5)
        # Outbox rows are their sink owner's: "Adm1" is not adm1.
        self.assertEqual(self.as_role("adm1", "SELECT sum(rows) FROM streamrec.sink_outbox"), [(5,)])
        self.assertEqual(self.as_role('"Adm1"', "SELECT count(*) FROM streamrec.sink_outbox"), [(0,)])
        # The example: another admin names the sink with a relation it does not ship.
        self.as_role('"Adm1"', "SELECT streamrec._sync_sink_trigger('sync_b_sink', 'shared_t')")
        self.as_role('"Adm1"', "SELECT streamrec._sync_sink_trigger('sync_b_sink', 'sync_b')")
        self.assertEqual(self.value("SELECT sum(rows) FROM streamrec.sink_outbox WHERE sink = 'sync_b_sink'"), 5)
        self.assertEqual(self.value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'sync_b'::regclass"), 1)
        # The class: a trigger that merely has the capture trigger's name is not the extension's.
        self.sql("CREATE FUNCTION keep_me() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'")
        self.sql("CREATE TRIGGER streamrec_sink_lookalike AFTER INSERT ON closed_t "
                 "FOR EACH STATEMENT EXECUTE FUNCTION keep_me()")
        self.as_role('"Adm1"', "SELECT streamrec._sync_sink_trigger('lookalike', 'closed_t')")
        self.assertEqual(self.value("SELECT count(*) FROM pg_trigger WHERE tgname = 'streamrec_sink_lookalike'"), 1)
        # A sink deleted directly takes its trigger and outbox rows, so a new sink of the same
        # name (another admin's) starts empty.
        self.as_role("adm1", "DELETE FROM streamrec.sinks WHERE name = 'sync_b_sink'")
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sink_outbox WHERE sink = 'sync_b_sink'"), 0)
        self.assertEqual(self.value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'sync_b'::regclass"), 0)
        self.as_role('"Adm1"', "SELECT streamrec.create_sink('sync_b_sink', 'shared_t', 't')")
        self.assertEqual(self.as_role('"Adm1"', "SELECT pending FROM streamrec.sink_stats"), [(0,)])
        self.as_role('"Adm1"', "SELECT streamrec.drop_sink('sync_b_sink')")

    def test_retention_index_only_indexes_builtin_time_columns(self):
        self.sql("CREATE TABLE ri_t (id int, at text)")
        self.sql("INSERT INTO streamrec.retention (relation, time_column, keep, owner) "
                 "VALUES ('ri_t', 'at', '1 day', 'adm1'::regrole)")
        self.as_role("adm1", "SELECT streamrec._retention_index('ri_t')")
        self.assertEqual(self.value("SELECT count(*) FROM pg_index WHERE indrelid = 'ri_t'::regclass"), 0)
        self.sql("DELETE FROM streamrec.retention WHERE relation = 'ri_t'::regclass")

    # --- 4. no blocking locks on the shared tables ----------------------------------------------
    SHARED_TABLES = ["sources", "source_offsets", "dead_letters", "sinks", "sink_outbox", "pipeline_catalog",
                     "retention", "pipeline_clock", "pipeline_writers", "recommendations", "user_purchases"]

    def test_admin_cannot_lock_shared_tables(self):
        for table in self.SHARED_TABLES:
            with self.subTest(table=table):
                self.refused("adm1", f"BEGIN; LOCK TABLE streamrec.{table} IN ACCESS EXCLUSIVE MODE; COMMIT", "42501",
                             f"permission denied to lock streamrec.{table}")
        for mode in ("ROW EXCLUSIVE", "SHARE", "EXCLUSIVE"):
            self.refused('"Adm1"', f"BEGIN; LOCK TABLE streamrec.sink_outbox IN {mode} MODE; COMMIT", "42501")
        # Through plpgsql and through a view of the admin's own.
        self.refused("adm1", "DO $$ BEGIN LOCK TABLE streamrec.sources; END $$", "42501")
        self.sql("CREATE SCHEMA adm1_s AUTHORIZATION adm1")
        self.as_role("adm1", "CREATE VIEW adm1_s.outbox_v AS SELECT * FROM streamrec.sink_outbox")
        self.as_role("adm1", "CREATE VIEW adm1_s.outbox_vv AS SELECT * FROM adm1_s.outbox_v")
        self.refused("adm1", "BEGIN; LOCK TABLE adm1_s.outbox_vv IN ACCESS EXCLUSIVE MODE; COMMIT", "42501",
                     "permission denied to lock streamrec.sink_outbox")
        # What stays allowed: ACCESS SHARE (pg_dump's), the admin's own tables, superusers.
        self.as_role("adm1", "BEGIN; LOCK TABLE streamrec.sources IN ACCESS SHARE MODE; COMMIT")
        self.as_role("adm1", "CREATE TABLE adm1_s.own (id int)")
        self.as_role("adm1", "BEGIN; LOCK TABLE adm1_s.own IN ACCESS EXCLUSIVE MODE; COMMIT")
        self.sql("BEGIN; LOCK TABLE streamrec.sink_outbox IN ACCESS EXCLUSIVE MODE; COMMIT")

    # --- 5. worker statistics are their owner's ------------------------------------------------
    def test_worker_stats_show_only_own_workers(self):
        self.as_role('"Adm1"', "SELECT streamrec.create_source('ws_upper', 't', 'shared_t')")
        self.as_role("adm1", "SELECT streamrec.create_source('ws_lower', 't', 'shared_t')")
        self.as_role('"Adm1"', "SELECT streamrec.create_sink('ws_upper_sink', 'shared_t', 't')")
        self.as_role("adm1", "SELECT streamrec.create_sink('ws_lower_sink', 'shared_t', 't')")
        wait_for(lambda: self.value("SELECT count(*) FROM streamrec._worker_stats('s') WHERE name LIKE 'ws_%'") == 2
                 and self.value("SELECT count(*) FROM streamrec._worker_stats('k') WHERE name LIKE 'ws_%'") == 2,
                 timeout=60, what="four workers")
        self.assertEqual(self.as_role("adm1", "SELECT name FROM streamrec._worker_stats('s') WHERE name LIKE 'ws_%' ORDER BY name"),
                         [("ws_lower",)])
        self.assertEqual(self.as_role("adm1", "SELECT name FROM streamrec._worker_stats('k') WHERE name LIKE 'ws_%' ORDER BY name"),
                         [("ws_lower_sink",)])
        self.assertEqual(self.as_role('"Adm1"', "SELECT name FROM streamrec._worker_stats('s') WHERE name LIKE 'ws_%' ORDER BY name"),
                         [("ws_upper",)])
        self.assertEqual(self.as_role('"Adm1"', "SELECT name FROM streamrec.source_stats WHERE name LIKE 'ws_%'"),
                         [("ws_upper",)])
        self.assertEqual(self.as_role('"Solo"', "SELECT count(*) FROM streamrec._worker_stats('k')"), [(0,)])
        for name, role in (("ws_upper", '"Adm1"'), ("ws_lower", "adm1")):
            self.as_role(role, f"SELECT streamrec.drop_source('{name}'), streamrec.drop_sink('{name}_sink')")

    # --- 6. personal data is read like its inputs ----------------------------------------------
    PERSONAL = ["ratings_enriched", "unhappy_customers", "attributed_checkouts", "user_purchases", "attribution_log",
                "test_ratings", "ratings_per_customer", "recommendations", "recommendation_log", "pending_views",
                "category_views", "user_viewed_products", "user_recommendations"]

    def test_personal_result_tables_are_not_public(self):
        for table in self.PERSONAL + ["customers", "users"]:
            with self.subTest(table=table):
                self.refused_read("reader_nobody", f"SELECT count(*) FROM streamrec.{table}")
                if table in self.PERSONAL:
                    self.assertEqual(self.as_role("adm1", f"SELECT count(*) FROM streamrec.{table}"), [(0,)])
        self.refused_read("reader_nobody", "SELECT streamrec.recommend('u', 'p')")
        for table in ("trending_counts", "ratings_by_club_status", "product_ratings", "transaction_summaries"):
            self.assertEqual(self.as_role("reader_nobody", f"SELECT count(*) FROM streamrec.{table}"), [(0,)])
        # What the README tells a DBA: grant a reader role SELECT on what it may read.
        self.sql("CREATE ROLE reader_granted")
        self.sql("GRANT SELECT ON streamrec.ratings_enriched, streamrec.unhappy_customers TO reader_granted")
        self.assertEqual(self.as_role("reader_granted", "SELECT count(*) FROM streamrec.unhappy_customers"), [(0,)])

    def refused_read(self, role, query):
        with self.assertRaises(psycopg2.Error) as caught:
            self.as_role(role, query)
        self.assertEqual(caught.exception.pgcode, "42501", caught.exception.pgerror)
        self.assertIn("permission denied", caught.exception.diag.message_primary)


if __name__ == "__main__":
    unittest.main()
