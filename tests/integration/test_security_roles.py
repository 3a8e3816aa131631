"""Roles, ownership and other roles' data: owners compared as OIDs (mixed-case role names),
catalog rows that record and enforce their owner however they are written, dead letters and
outbox rows that go with their source or sink, internal functions safe for any caller, no
blocking locks on the shared internal tables, worker statistics shown to their owner only, and
result tables with personal data read like their inputs. No broker is needed: sources and sinks
point at a closed port."""

import hashlib
import json
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
        e = self.expect_role_error(role, sqlstate, query, hint=hint)
        if message is not None:
            self.assertIn(message, e.diag.message_primary)
        return e

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
        self.refused('"Adm1"', "UPDATE streamrec.pipeline_catalog SET options = '{\"top_n\": 0}' "
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

    def test_pipeline_row_lists_only_its_owners_sinks(self):
        self.as_role('"Adm1"', "SELECT streamrec.create_sink('victim_sink', 'shared_t', 't')")
        self.addCleanup(self.sql, "DELETE FROM streamrec.sinks WHERE name = 'victim_sink'")
        # The example: a disabled pipeline row written directly, listing another admin's sink,
        # made that admin drop its own sink when it next enabled the pipeline.
        self.refused("adm1", "INSERT INTO streamrec.pipeline_catalog(name, enabled, options, sinks) "
                             "VALUES ('category_affinity', false, '{}', ARRAY['victim_sink'])", "42501",
                     'pipeline "category_affinity" may list only sinks of its owner')
        self.as_role('"Adm1"', "SELECT streamrec.enable_pipeline('category_affinity')")
        self.assertEqual(self.as_role('"Adm1"', "SELECT name FROM streamrec.sinks"), [("victim_sink",)])
        # The class: an update by the owner, too.
        self.refused('"Adm1"', "UPDATE streamrec.pipeline_catalog SET sinks = ARRAY['nobodys_sink'] "
                               "WHERE name = 'category_affinity'", "42501")
        self.as_role('"Adm1"', "SELECT streamrec.disable_pipeline('category_affinity')")
        self.as_role('"Adm1"', "SELECT streamrec.drop_sink('victim_sink')")
        self.sql("DELETE FROM streamrec.pipeline_catalog WHERE name = 'category_affinity'")

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

    def test_capture_trigger_named_by_md5_is_its_sinks_only(self):
        # A sink name too long for a trigger name gets a trigger named by its md5, which another
        # sink's name may spell (every trigger name is public in pg_trigger).
        victim = next(n for n in (f"long_sink_name_of_adm1_{'x' * 30}{i}" for i in range(100))
                      if hashlib.md5(n.encode()).hexdigest()[0] in "abcdef")
        spelled = hashlib.md5(victim.encode()).hexdigest()
        self.sql("CREATE TABLE md5_t (id int)")
        self.sql("GRANT SELECT ON md5_t TO streamrec_admin")
        self.as_role("adm1", f"SELECT streamrec.create_sink('{victim}', 'md5_t', 't')")
        # The example: another admin names that md5, and the victim's trigger was dropped.
        self.as_role('"Adm1"', f"SELECT streamrec._sync_sink_trigger('{spelled}', 'md5_t')")
        # The class: a sink of that name shipped nothing and took the trigger when dropped.
        refusal = None
        try:
            self.as_role('"Adm1"', f"SELECT streamrec.create_sink('{spelled}', 'md5_t', 't')")
            self.as_role('"Adm1"', f"SELECT streamrec.drop_sink('{spelled}')")
        except psycopg2.Error as error:
            refusal = error
        self.sql("INSERT INTO md5_t VALUES (1)")
        self.assertEqual(self.as_role("adm1", "SELECT name, pending FROM streamrec.sink_stats"), [(victim, 1)])
        self.assertIsNotNone(refusal)
        self.assertEqual(refusal.pgcode, "42710", refusal.pgerror)
        self.assertEqual(refusal.diag.message_primary, f'trigger "streamrec_sink_{spelled}" on public.md5_t '
                                                       f'is not the capture trigger of sink "{spelled}"')
        self.assertEqual(self.as_role('"Adm1"', "SELECT count(*) FROM streamrec.sinks"), [(0,)])
        self.as_role("adm1", f"SELECT streamrec.drop_sink('{victim}')")

    def test_capture_stops_once_the_sink_owner_may_not_read(self):
        self.sql("CREATE TABLE rev_t (id int, secret text)")
        self.sql("GRANT SELECT ON rev_t TO adm1")
        self.as_role("adm1", "SELECT streamrec.create_sink('rev_sink', 'rev_t', 't')")
        self.sql("INSERT INTO rev_t VALUES (1, 'before')")
        # The example: SELECT revoked, and the owner read every later row in its outbox.
        self.sql("REVOKE SELECT ON rev_t FROM adm1")
        with self.assertRaises(psycopg2.Error) as caught:
            self.sql("INSERT INTO rev_t VALUES (2, 'after')")
        self.assertEqual(caught.exception.pgcode, "42501", caught.exception.pgerror)
        self.assertEqual(caught.exception.diag.message_primary,
                         'sink "rev_sink" cannot capture rows of rev_t: its owner may not read the table')
        self.assertTrue(caught.exception.diag.message_hint)
        self.assertEqual(self.as_role("adm1", "SELECT r.row_json ->> 'secret' FROM streamrec.sink_outbox o, "
                                              "streamrec.outbox_rows(o) r WHERE o.sink = 'rev_sink'"), [("before",)])
        # The class: a sink whose table has a type the SQL capture handles, and the owner's own
        # drop_sink afterwards (the inserts go through again).
        self.sql("CREATE TYPE rev_mood AS ENUM ('ok')")
        self.sql("CREATE TABLE rev_e (m rev_mood)")
        self.sql("GRANT SELECT ON rev_e TO adm1")
        self.as_role("adm1", "SELECT streamrec.create_sink('rev_e_sink', 'rev_e', 't')")
        self.sql("REVOKE SELECT ON rev_e FROM adm1")
        with self.assertRaises(psycopg2.Error) as caught:
            self.sql("INSERT INTO rev_e VALUES ('ok')")
        self.assertEqual(caught.exception.pgcode, "42501", caught.exception.pgerror)
        for name in ("rev_sink", "rev_e_sink"):
            self.as_role("adm1", f"SELECT streamrec.drop_sink('{name}')")
        self.sql("INSERT INTO rev_t VALUES (3, 'dropped')")
        self.sql("INSERT INTO rev_e VALUES ('ok')")

    def test_catalog_rows_on_tables_with_row_level_security_are_refused(self):
        self.sql("CREATE TABLE rls_ok (id int)")
        self.sql('GRANT SELECT, INSERT ON rls_ok TO "Adm1"')
        self.as_role('"Adm1"', "SELECT streamrec.create_sink('rls_victim', 'rls_ok', 't')")
        # The example: a sink row written directly on the outbox itself (create_sink refuses it);
        # _sync_sink_trigger then put a capture trigger on the outbox, and every capture of every
        # sink (so every insert into a sinked table) failed on its row-level security.
        for rel in ("streamrec.sink_outbox", "streamrec.sources", "streamrec.dead_letters"):
            with self.subTest(rel=rel):
                self.refused("adm1", "INSERT INTO streamrec.sinks(name, relation, topic) "
                                     f"VALUES ('loop', '{rel}', 't')", "0A000", f"{rel} has row-level security enabled")
        self.as_role("adm1", "SELECT streamrec._sync_sink_trigger('loop', 'streamrec.sink_outbox')")
        self.assertEqual(self.value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'streamrec.sink_outbox'::regclass "
                                    "AND NOT tgisinternal"), 0)
        self.sql("INSERT INTO rls_ok VALUES (1)")
        self.assertEqual(self.as_role('"Adm1"', "SELECT pending FROM streamrec.sink_stats"), [(1,)])
        # The class: a user table with row-level security, for sources too, and a sink row that
        # exists anyway (written by a superuser) gets no capture trigger.
        self.sql("CREATE TABLE rls_t (id int)")
        self.sql("ALTER TABLE rls_t ENABLE ROW LEVEL SECURITY")
        self.sql("CREATE POLICY mine ON rls_t USING (id > 0)")
        self.sql("GRANT SELECT, INSERT ON rls_t TO adm1")
        self.refused("adm1", "INSERT INTO streamrec.sinks(name, relation, topic) VALUES ('rls_s', 'rls_t', 't')",
                     "0A000", "rls_t has row-level security enabled")
        self.refused("adm1", "INSERT INTO streamrec.sources(name, topic, target) VALUES ('rls_src', 't', 'rls_t')",
                     "0A000", "rls_t has row-level security enabled")
        self.sql("INSERT INTO streamrec.sinks(name, relation, topic, owner) VALUES ('rls_forced', 'rls_t', 't', %s)",
                 (self.oid("adm1"),))
        self.refused("adm1", "SELECT streamrec._sync_sink_trigger('rls_forced', 'rls_t')", "0A000",
                     "rls_t has row-level security enabled")
        self.assertEqual(self.value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'rls_t'::regclass"), 0)
        self.sql("DELETE FROM streamrec.sinks WHERE name = 'rls_forced'")
        self.as_role('"Adm1"', "SELECT streamrec.drop_sink('rls_victim')")

    def test_retention_row_written_directly_is_checked(self):
        self.sql("CREATE TABLE ret_t (id int, at timestamptz, note text)")
        self.sql('GRANT SELECT, DELETE ON ret_t TO "Adm1"')
        self.sql("GRANT SELECT ON ret_t TO adm1")
        insert = "INSERT INTO streamrec.retention(relation, time_column, keep, owner) VALUES ('{}', '{}', '1 day', {})"
        # The example: a bound written directly on a table its writer may not delete from held
        # the table's only bound, and the admin who may was refused.
        self.refused("adm1", insert.format("ret_t", "at", self.oid("adm1")), "42501",
                     "permission denied to delete from public.ret_t")
        self.as_role('"Adm1"', "SELECT streamrec.set_retention('ret_t', 'at', '7 days')")
        self.assertEqual(self.value("SELECT owner FROM streamrec.retention WHERE relation = 'ret_t'::regclass"),
                         self.oid('"Adm1"'))
        # The class: no time column, and an update of the owner's own row.
        self.refused("adm1", insert.format("closed_t", "id", self.oid("adm1")), "22023",
                     'column "id" of public.closed_t is not a time column')
        self.refused('"Adm1"', "UPDATE streamrec.retention SET time_column = 'note' WHERE relation = 'ret_t'::regclass",
                     "22023", 'column "note" of public.ret_t is not a time column')
        self.as_role('"Adm1"', "UPDATE streamrec.retention SET keep = '1 day' WHERE relation = 'ret_t'::regclass")
        self.as_role('"Adm1"', "SELECT streamrec.set_retention('ret_t', 'at', NULL)")

    def test_retention_index_only_indexes_builtin_time_columns(self):
        self.sql("CREATE TABLE ri_t (id int, at text)")
        self.sql("INSERT INTO streamrec.retention VALUES ('ri_t', 'at', '1 day', %s)", (self.oid("adm1"),))
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

    # --- 7. pipeline options: credentials are their owner's ------------------------------------
    def test_pipeline_options_are_read_masked_only(self):
        options = {"output_topic": "attributions",
                   "output_options": {"kafka": {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                                                "sasl.username": "svc", "sasl.password": "hunter2"}}}
        self.as_role('"Adm1"', "SELECT streamrec.enable_pipeline('attribution', %s)", (json.dumps(options),))
        self.assertEqual(self.value("SELECT options #>> '{output_options,kafka,sasl.password}' "
                                    "FROM streamrec.pipeline_catalog WHERE name = 'attribution'"), "hunter2")
        # The example: another admin reads the catalog's options.
        for role in ("adm1", '"Adm1"'):
            for query in ("SELECT options FROM streamrec.pipeline_catalog",
                          "SELECT * FROM streamrec.pipeline_catalog",
                          "SELECT name FROM streamrec.pipeline_catalog WHERE options::text LIKE '%hunter2%'",
                          "UPDATE streamrec.pipeline_catalog SET enabled = enabled "
                          "WHERE name = 'attribution' AND options::text LIKE '%hunter2%'",
                          "UPDATE streamrec.pipeline_catalog SET sinks = sinks WHERE name = 'nope' RETURNING options"):
                with self.subTest(role=role, query=query):
                    self.refused(role, query, "42501", "permission denied for table pipeline_catalog", hint=False)
        # Nor through a sink on the catalog (its capture copies whole rows into the outbox).
        self.refused("adm1", "SELECT streamrec.create_sink('catalog_sink', 'streamrec.pipeline_catalog', 't')", "42501",
                     "permission denied to read streamrec.pipeline_catalog")
        # The class: what admins read is the masked view, and the catalog's other columns.
        self.assertEqual(self.as_role("adm1", "SELECT name, enabled, sinks, owner FROM streamrec.pipeline_catalog "
                                             "WHERE name = 'attribution'"),
                         [("attribution", True, ["pipeline_attribution"], self.oid('"Adm1"'))])
        shown = self.as_role("adm1", "SELECT options::text FROM streamrec.pipelines WHERE name = 'attribution'")[0][0]
        self.assertNotIn("hunter2", shown)
        self.assertEqual(json.loads(shown)["output_options"]["kafka"]["sasl.password"], "***")
        self.assertEqual(self.as_role("reader_nobody", "SELECT count(*) FROM streamrec.pipelines "
                                                       "WHERE options::text LIKE '%hunter2%'"), [(0,)])
        # enable_pipeline and disable_pipeline work as before for their owner, and refuse others.
        self.refused("adm1", "SELECT streamrec.disable_pipeline('attribution')", "42501",
                     'permission denied to change pipeline "attribution"')
        self.as_role('"Adm1"', "SELECT streamrec.enable_pipeline('attribution', %s)",
                     (json.dumps(dict(options, lookback="2 hours")),))
        self.assertEqual(self.value("SELECT options ->> 'lookback' FROM streamrec.pipeline_catalog "
                                    "WHERE name = 'attribution'"), "2 hours")
        self.as_role('"Adm1"', "SELECT streamrec.disable_pipeline('attribution')")
        self.as_role("adm1", "SELECT streamrec.enable_pipeline('attribution')")
        self.assertEqual(self.value("SELECT owner FROM streamrec.pipeline_catalog WHERE name = 'attribution'"),
                         self.oid("adm1"))
        self.as_role("adm1", "SELECT streamrec.disable_pipeline('attribution')")
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sinks"), 0)

    # --- 8. nobody stalls a pipeline with locks of its own ---------------------------------------
    def test_locks_of_other_roles_stall_no_pipeline(self):
        self.sql("SELECT streamrec.enable_pipeline('attribution')")
        holder = self.cluster.connect()
        try:
            with holder.cursor() as cur:
                cur.execute("SET ROLE reader_nobody")
                # The example: every user bucket of the attribution triggers, held by a role
                # without any privilege, stalled every insert into clicks and checkouts.
                cur.execute("SELECT count(pg_advisory_lock(hashtext('streamrec.attribution'), b)) "
                            "FROM generate_series(0, 255) b")
                # The class: the lock that serializes enable_pipeline and disable_pipeline.
                cur.execute("SELECT pg_advisory_lock(hashtext('streamrec.enable_pipeline'), hashtext(p)) "
                            "FROM unnest(ARRAY['attribution', 'trending']) p")
            self.sql("SET lock_timeout = '5s'; "
                     "INSERT INTO streamrec.clicks(click_id, user_id, product_id, event_time) "
                     "VALUES ('k1', 'u1', 'p1', now() - interval '1 minute')")
            self.sql("SET lock_timeout = '5s'; "
                     "INSERT INTO streamrec.checkouts VALUES ('c1', 'u1', 'p1', 'card', 10, now())")
            self.assertEqual(self.value("SELECT click_id FROM streamrec.attributed_checkouts WHERE checkout_id = 'c1'"),
                             "k1")
            self.as_role("adm1", "SET lock_timeout = '5s'; SELECT streamrec.enable_pipeline('trending')")
            self.as_role("adm1", "SET lock_timeout = '5s'; SELECT streamrec.disable_pipeline('trending')")
        finally:
            holder.close()
            self.sql("SELECT streamrec.disable_pipeline('attribution')")
        # The class: a transaction that read a table every role may read (the LOCK guard's
        # ACCESS SHARE, too) held enable_pipeline('ratings'), and it the ratings' writers.
        reader = self.cluster.connect(autocommit=False)
        try:
            with reader.cursor() as cur:
                cur.execute("SET ROLE reader_nobody")
                cur.execute("LOCK TABLE streamrec.product_ratings IN ACCESS SHARE MODE")
            self.as_role("adm1", "SET lock_timeout = '5s'; SELECT streamrec.enable_pipeline('ratings')")
            self.as_role("adm1", "SET lock_timeout = '5s'; SELECT streamrec.disable_pipeline('ratings')")
        finally:
            reader.close()
        # The extension's own locks are out of reach of SQL, for admins too.
        for role in ("reader_nobody", "adm1"):
            self.refused(role, "SELECT streamrec._xact_lock(1, 2)", "42501",
                         "permission denied for function _xact_lock", hint=False)
        self.sql("DELETE FROM streamrec.attribution_log")
        self.sql("DELETE FROM streamrec.attributed_checkouts")
        self.sql("DELETE FROM streamrec.checkouts")
        self.sql("DELETE FROM streamrec.clicks")

    def refused_read(self, role, query):
        with self.assertRaises(psycopg2.Error) as caught:
            self.as_role(role, query)
        self.assertEqual(caught.exception.pgcode, "42501", caught.exception.pgerror)
        self.assertIn("permission denied", caught.exception.diag.message_primary)


if __name__ == "__main__":
    unittest.main()
