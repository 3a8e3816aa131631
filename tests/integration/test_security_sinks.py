"""Security of sinks and sources against code and policies their owners control: the sink
capture (SECURITY DEFINER) runs user-defined casts as the sink's owner, never as the extension
owner; row-level security that applies to an owner stops its sink or source (at creation, at
capture and in the worker) rather than shipping or storing rows past the policies; a row the
broker refuses for good is kept apart as failed while the rest of its window goes out once."""

import json

import psycopg2

from harness import StreamTestCase, wait_for
from kafka_util import consume, produce


class RoleTestCase(StreamTestCase):
    roles = ()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for role in cls.roles:
            cls.cluster.sql(f"CREATE ROLE {role} LOGIN")
            cls.cluster.sql(f"GRANT streamrec_admin TO {role}")
            cls.cluster.sql(f"CREATE SCHEMA {role} AUTHORIZATION {role}")

    def as_role(self, role, *queries):
        conn = self.cluster.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"SET ROLE {role}")
                result = []
                for query in queries:
                    query, params = query if isinstance(query, tuple) else (query, None)
                    cur.execute(query, params)
                    result = cur.fetchall() if cur.description else []
                return result
        finally:
            conn.close()

    def expect_error(self, sqlstate, role, *queries):
        with self.assertRaises(psycopg2.Error) as caught:
            if role is None:
                for q in queries:
                    self.sql(q)
            else:
                self.as_role(role, *queries)
        self.assertEqual(caught.exception.pgcode, sqlstate, caught.exception.pgerror)
        self.assertTrue(caught.exception.diag.message_hint, f"no hint for: {caught.exception.pgerror}")
        return caught.exception

    def is_superuser(self, role):
        return self.value("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,))


# A cast to json whose function tries to make its owner superuser and records who ran it.
EVIL_CAST = """
CREATE FUNCTION {s}.mood_json({s}.mood) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.seen VALUES (current_user::text,
                                 (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user));
    BEGIN
        EXECUTE 'ALTER ROLE {s} SUPERUSER';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    RETURN pg_catalog.to_json($1::text);
END $$
"""


class CaptureAsOwnerTest(RoleTestCase):
    topics = {"sec.cast": 1, "sec.cast_class": 1}
    roles = ("mallory", "trent")

    def plant_cast(self, role):
        self.as_role(role, f"CREATE TYPE {role}.mood AS ENUM ('ok', 'sad')",
                     f"CREATE TABLE {role}.seen (who text, superuser boolean)",
                     EVIL_CAST.format(s=role),
                     f"CREATE CAST ({role}.mood AS json) WITH FUNCTION {role}.mood_json({role}.mood)")

    def test_an_admins_cast_to_json_runs_as_the_admin_not_as_superuser(self):
        # The example: an admin's own type with a cast to json, a sink on the admin's table with
        # a column of that type, an insert by the admin. The capture's to_jsonb ran the cast as
        # the extension owner, and the cast made the admin superuser.
        self.plant_cast("mallory")
        self.as_role("mallory", "CREATE TABLE mallory.t (id int, m mallory.mood)",
                     "SELECT streamrec.create_sink('mallory_sink', 'mallory.t', 'sec.cast')",
                     "INSERT INTO mallory.t VALUES (1, 'sad')")
        self.assertFalse(self.is_superuser("mallory"))
        self.assertEqual(self.sql("SELECT who, superuser FROM mallory.seen"), [("mallory", False)])
        # The sink still ships the row (the cast's json is the enum's text).
        self.assertEqual([v for *_, v in consume(self.sandbox.bootstrap, "sec.cast", 1)], [b"1,sad"])
        self.as_role("mallory", "SELECT streamrec.drop_sink('mallory_sink')")

    def test_casts_reached_through_arrays_domains_and_composites_run_as_the_sink_owner(self):
        # Every way to_jsonb reaches a user's cast (array elements, a domain over the type, a
        # composite's field), whoever inserts (here a superuser): the cast runs as the sink's
        # owner, in a security-restricted operation.
        self.plant_cast("trent")
        self.as_role("trent", "CREATE DOMAIN trent.dmood AS trent.mood CHECK (VALUE IS NOT NULL)",
                     "CREATE TYPE trent.wrapped AS (m trent.mood)",
                     "CREATE TABLE trent.t (id int, ms trent.mood[], d trent.dmood, w trent.wrapped)",
                     "GRANT INSERT ON trent.t TO PUBLIC", "GRANT USAGE ON SCHEMA trent TO PUBLIC",
                     "SELECT streamrec.create_sink('trent_sink', 'trent.t', 'sec.cast_class')",
                     "SELECT streamrec.pause_sink('trent_sink')")
        self.sql("INSERT INTO trent.t VALUES (1, ARRAY['ok', 'sad']::trent.mood[], 'ok', ROW('sad')), "
                 "(2, NULL, 'sad', NULL)")
        self.assertFalse(self.is_superuser("trent"))
        seen = self.sql("SELECT who, superuser, count(*) FROM trent.seen GROUP BY 1, 2")
        self.assertEqual(seen, [("trent", False, 5)])
        self.assertEqual(self.value("SELECT payload::text FROM streamrec.sink_outbox WHERE sink = 'trent_sink'"),
                         '[{"d": "ok", "w": {"m": "sad"}, "id": 1, "ms": ["ok", "sad"]}, '
                         '{"d": "sad", "w": null, "id": 2, "ms": null}]')
        # A setting the cast changes does not outlive the capture.
        self.as_role("trent", "CREATE OR REPLACE FUNCTION trent.mood_json(trent.mood) RETURNS json LANGUAGE plpgsql "
                              "AS $$ BEGIN PERFORM pg_catalog.set_config('work_mem', '77kB', true); "
                              "RETURN pg_catalog.to_json($1::text); END $$")
        conn = self.cluster.connect(autocommit=False)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO trent.t (id, d) VALUES (3, 'ok')")
            cur.execute("SHOW work_mem")
            self.assertNotEqual(cur.fetchone()[0], "77kB")
        conn.commit()
        conn.close()
        self.as_role("trent", "SELECT streamrec.resume_sink('trent_sink')")
        self.assertEqual([v for *_, v in consume(self.sandbox.bootstrap, "sec.cast_class", 3)],
                         [b'1,"ok,sad",ok,(sad)', b"2,,sad,", b"3,,ok,"])
        self.as_role("trent", "SELECT streamrec.drop_sink('trent_sink')")


class RowLevelSecurityTest(RoleTestCase):
    topics = {"rls.sink": 1, "rls.sink_late": 1, "rls.src": 1, "rls.src_upsert": 1, "rls.src_own": 1}
    roles = ("rose",)

    def policy_table(self, table, columns="id int, secret text"):
        # Owned by the superuser; rose may read and write it, and sees only id < 100 under RLS.
        self.sql(f"CREATE TABLE {table} ({columns})")
        self.sql(f"GRANT SELECT, INSERT ON {table} TO rose")
        self.sql(f"CREATE POLICY visible ON {table} USING (id < 100) WITH CHECK (id < 100)")

    def test_create_sink_refuses_a_table_whose_policies_apply_to_its_owner(self):
        self.policy_table("rls_sink_t")
        self.sql("ALTER TABLE rls_sink_t ENABLE ROW LEVEL SECURITY")
        e = self.expect_error("0A000", "rose", "SELECT streamrec.create_sink('rls_s', 'rls_sink_t', 'rls.sink')")
        self.assertEqual(e.diag.message_primary, "public.rls_sink_t has row-level security enabled")
        self.assertIn("BYPASSRLS", e.diag.message_hint)
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sinks"), 0)
        self.assertEqual(self.value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'rls_sink_t'::regclass"), 0)
        # RLS that does not apply to the owner (its own table, no FORCE) is no reason to refuse;
        # FORCE ROW LEVEL SECURITY makes it apply again.
        self.as_role("rose", "CREATE TABLE rose.own (id int, secret text)",
                     "ALTER TABLE rose.own ENABLE ROW LEVEL SECURITY",
                     "SELECT streamrec.create_sink('rls_own', 'rose.own', 'rls.sink')",
                     "SELECT streamrec.drop_sink('rls_own')",
                     "ALTER TABLE rose.own FORCE ROW LEVEL SECURITY")
        self.expect_error("0A000", "rose", "SELECT streamrec.create_sink('rls_own', 'rose.own', 'rls.sink')")

    def test_rls_enabled_after_create_sink_captures_and_ships_nothing_more(self):
        self.policy_table("rls_late_t")
        self.as_role("rose", "SELECT streamrec.create_sink('rls_late', 'rls_late_t', 'rls.sink_late')")
        self.sql("INSERT INTO rls_late_t VALUES (1, 'public')")
        self.assertEqual([v for *_, v in consume(self.sandbox.bootstrap, "rls.sink_late", 1)], [b"1,public"])
        # A row captured while rose could see everything waits (paused); then RLS comes on.
        self.as_role("rose", "SELECT streamrec.pause_sink('rls_late')")
        wait_for(lambda: self.sink_stats("rls_late")["pid"] is None, 20, what="paused worker gone")
        self.sql("INSERT INTO rls_late_t VALUES (2, 'before')")
        self.sql("ALTER TABLE rls_late_t ENABLE ROW LEVEL SECURITY")
        # Capture: an insert is refused rather than copied past the policy into the outbox.
        e = self.expect_error("0A000", None, "INSERT INTO rls_late_t VALUES (500, 'hidden')")
        self.assertEqual(e.diag.message_primary,
                         'sink "rls_late" cannot capture rows of rls_late_t: row-level security applies to the '
                         "sink's owner")
        self.assertEqual(self.value("SELECT count(*) FROM rls_late_t"), 2)
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sink_outbox WHERE sink = 'rls_late'"), 1)
        # Worker: the waiting row is not shipped while the owner's view is restricted.
        self.as_role("rose", "SELECT streamrec.resume_sink('rls_late')")
        stats = wait_for(lambda: (lambda s: s if "row-level security" in (s["last_error"] or "") else None)(
            self.sink_stats("rls_late")), 30, what="row-level security error in sink_stats")
        self.assertEqual(stats["last_error"], "row-level security on the sink's relation applies to the sink's owner")
        self.assertEqual((stats["pending"], stats["produced"]), (1, 0))
        self.assertEqual(len(consume(self.sandbox.bootstrap, "rls.sink_late", 2, timeout=3)), 1)
        # With RLS off again the waiting row goes out, once.
        self.sql("ALTER TABLE rls_late_t DISABLE ROW LEVEL SECURITY")
        self.assertEqual([v for *_, v in consume(self.sandbox.bootstrap, "rls.sink_late", 2)],
                         [b"1,public", b"2,before"])
        self.as_role("rose", "SELECT streamrec.drop_sink('rls_late')")

    def wait_source_error(self, name, text):
        return wait_for(lambda: (lambda s: s if text in (s or {}).get("last_error") or "" else None)(
            self.source_stats(name)), 30, what=f"'{text}' in source_stats of {name} (now {self.source_stats(name)})")

    def check_source_refuses_rls(self, name, topic, table, options):
        self.as_role("rose", (f"SELECT streamrec.create_source('{name}', '{topic}', '{table}', 'csv', NULL, %s)",
                              (json.dumps(options),)))
        produce(self.sandbox.bootstrap, topic, ["1,first"])
        wait_for(lambda: self.value(f"SELECT count(*) FROM {table}") == 1, 30, what=f"first row in {table}")
        self.sql(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        # 500 is refused by the INSERT policy; 2 would pass it: the source stores neither.
        produce(self.sandbox.bootstrap, topic, ["500,hidden", "2,second"])
        stats = self.wait_source_error(name, "row-level security")
        self.assertEqual(stats["last_error"],
                         "row-level security on the source's target table applies to the source's owner")
        self.assertEqual(self.sql(f"SELECT id, secret FROM {table} ORDER BY id"), [(1, "first")])
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.dead_letters WHERE source = %s", (name,)), 0)
        self.sql(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        wait_for(lambda: self.value(f"SELECT count(*) FROM {table}") == 3, 30, what=f"3 rows in {table}")
        self.assertEqual(self.sql(f"SELECT id, secret FROM {table} ORDER BY id"),
                         [(1, "first"), (2, "second"), (500, "hidden")])
        self.as_role("rose", f"SELECT streamrec.drop_source('{name}')")

    def test_rls_enabled_after_create_source_stores_nothing(self):
        # The example: the COPY path skips RLS, so a row the policy refuses was stored.
        self.policy_table("rls_src_t")
        self.check_source_refuses_rls("rls_src", "rls.src", "rls_src_t", {"columns": ["id", "secret"]})

    def test_rls_enabled_after_create_source_stops_upsert_mode_too(self):
        self.policy_table("rls_up_t", "id int PRIMARY KEY, secret text")
        self.sql("GRANT UPDATE ON rls_up_t TO rose")
        self.check_source_refuses_rls("rls_up", "rls.src_upsert", "rls_up_t", {"mode": "upsert"})

    def test_a_source_applies_check_enable_rls_semantics(self):
        # The owner's own table without FORCE: RLS does not apply to it, so the source runs;
        # FORCE makes it apply: refused at creation and, when set later, at run time.
        self.as_role("rose", "CREATE TABLE rose.src (id int, secret text)",
                     "ALTER TABLE rose.src ENABLE ROW LEVEL SECURITY",
                     "CREATE POLICY visible ON rose.src USING (id < 100) WITH CHECK (id < 100)",
                     "SELECT streamrec.create_source('rls_own', 'rls.src_own', 'rose.src')")
        produce(self.sandbox.bootstrap, "rls.src_own", ["500,owner sees all"])
        wait_for(lambda: self.value("SELECT count(*) FROM rose.src") == 1, 30, what="row in rose.src")
        self.as_role("rose", "ALTER TABLE rose.src FORCE ROW LEVEL SECURITY")
        produce(self.sandbox.bootstrap, "rls.src_own", ["501,forced"])
        self.wait_source_error("rls_own", "row-level security")
        self.assertEqual(self.value("SELECT count(*) FROM rose.src"), 1)
        self.as_role("rose", "SELECT streamrec.drop_source('rls_own')")
        e = self.expect_error("0A000", "rose", "SELECT streamrec.create_source('rls_own', 'rls.src_own', 'rose.src')")
        self.assertEqual(e.diag.message_primary, "rose.src has row-level security enabled")


class UndeliverableRowTest(RoleTestCase):
    topics = {"big.sync": 1, "big.broker": 1, "big.invalid": 1}

    def check_broker_refusal(self, name, topic, error, reason):
        # The broker refuses the middle row for good (the sandbox answers its Produce request
        # with `error`, as a broker with a smaller message.max.bytes would): the row is kept as
        # failed and every other row reaches the topic exactly once, in order.
        table = name + "_rows"
        self.sql(f"CREATE TABLE {table} (id int, body text)")
        self.sql(f"SELECT streamrec.create_sink('{name}', '{table}', '{topic}')")
        self.sql(f"INSERT INTO {table} VALUES (1, 'before')")
        self.assertEqual([v for *_, v in consume(self.sandbox.bootstrap, topic, 1)], [b"1,before"])
        self.sandbox.fail_produce(error)
        self.sql(f"INSERT INTO {table} VALUES (2, repeat('x', 3000))")
        stats = wait_for(lambda: (lambda s: s if s["failed"] == 1 and s["pending"] == 0 else None)(
            self.sink_stats(name)), 30, what=f"refused row counted (now {self.sink_stats(name)})")
        self.assertIn(reason, stats["last_error"])
        self.sql(f"INSERT INTO {table} SELECT g, 'after' || g FROM generate_series(3, 5) g")
        messages = consume(self.sandbox.bootstrap, topic, 4)
        self.assertEqual([v for *_, v in messages], [b"1,before", b"3,after3", b"4,after4", b"5,after5"])
        self.assertEqual([o for _, o, *_ in messages], [0, 1, 2, 3])
        stats = wait_for(lambda: (lambda s: s if s["pending"] == 0 and s["produced"] == 4 else None)(
            self.sink_stats(name)), 30, what=f"sink {name} drained (now {self.sink_stats(name)})")
        self.assertEqual(stats["failed"], 1)
        kept = self.sql(f"SELECT payload ->> 'id', length(payload ->> 'body'), rows, error FROM streamrec.sink_outbox "
                        f"WHERE sink = '{name}'")
        self.assertEqual([k[:3] for k in kept], [("2", 3000, 1)])
        self.assertIn(reason, kept[0][3])
        self.sql(f"SELECT streamrec.drop_sink('{name}')")

    def test_a_row_the_broker_refuses_as_too_large_is_kept_apart_and_the_rest_sent_once(self):
        # The example: a row larger than the broker accepts was retried with its whole window
        # forever, re-sending the rest.
        self.check_broker_refusal("big_broker", "big.broker", 10, "too large")  # MESSAGE_TOO_LARGE

    def test_any_record_the_broker_refuses_for_good_is_kept_apart(self):
        self.check_broker_refusal("big_invalid", "big.invalid", 87, "failed to validate record")  # INVALID_RECORD

    def test_a_row_larger_than_the_producer_accepts_is_kept_apart(self):
        # message.max.bytes 1000: a 5,000-byte row can never be sent. It is kept as failed; the
        # rest of its window is produced once, in order.
        self.sql("CREATE TABLE big_rows (id int, body text)")
        self.sql("SELECT streamrec.create_sink('big_sync', 'big_rows', 'big.sync', 'csv', NULL, "
                 "'{\"kafka\": {\"message.max.bytes\": \"1000\"}}')")
        self.sql("INSERT INTO big_rows SELECT g, CASE WHEN g = 3 THEN repeat('x', 5000) ELSE 'r' || g END "
                 "FROM generate_series(1, 6) g")
        self.sql("INSERT INTO big_rows VALUES (7, 'after')")
        messages = consume(self.sandbox.bootstrap, "big.sync", 6)
        self.assertEqual([v for *_, v in messages], [b"1,r1", b"2,r2", b"4,r4", b"5,r5", b"6,r6", b"7,after"])
        stats = wait_for(lambda: (lambda s: s if s["failed"] == 1 and s["pending"] == 0 else None)(
            self.sink_stats("big_sync")), 20, what=f"failed row counted (now {self.sink_stats('big_sync')})")
        self.assertEqual(stats["produced"], 6)
        kept = self.sql("SELECT payload ->> 'id', length(payload ->> 'body'), rows, error FROM streamrec.sink_outbox "
                        "WHERE sink = 'big_sync'")
        self.assertEqual([k[:3] for k in kept], [("3", 5000, 1)])
        self.assertIn("too large", kept[0][3])
