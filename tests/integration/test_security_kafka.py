"""Kafka properties and secrets: the librdkafka allow-list on every entry point and in the
workers, masked credentials in the pipelines view, no property value in errors, and no body of
a foreign HTTP server in a schema-registry error."""

import http.server
import json
import os
import shutil
import tempfile
import threading
import time

from harness import StreamTestCase, wait_for
from kafka_util import produce


class _SecretBodyHandler(http.server.BaseHTTPRequestHandler):
    status = 500
    body = b"root:x:0:0:INTERNAL-SECRET-BODY"

    def _answer(self):
        self.send_response(self.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = _answer

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def log_message(self, *args):
        pass


class KafkaPropertySecurityTest(StreamTestCase):
    refusals_have_hints = True
    topics = {"secu.kinit": 1, "secu.super": 1, "secu.sink": 1, "secu.registry": 1, "secu.trending": 1,
              "secu.values": 1}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A directory the server's OS user may write to: a kinit command that ran would leave its file here.
        cls.proof_dir = tempfile.mkdtemp(prefix="streamrec-proof-")
        os.chmod(cls.proof_dir, 0o777)
        cls.proof = os.path.join(cls.proof_dir, "proof.txt")
        cls.kinit = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "GSSAPI",
                     "sasl.kerberos.kinit.cmd": f"id > {cls.proof}"}
        for statement in [
            "CREATE ROLE kadmin LOGIN", "GRANT streamrec_admin TO kadmin", "CREATE ROLE kreader LOGIN",
            "CREATE TABLE k_rows (id int, name text)", "GRANT INSERT, SELECT ON k_rows TO kadmin",
            "CREATE TABLE k_out (id int, name text)", "GRANT INSERT, SELECT ON k_out TO kadmin",
            "CREATE TABLE super_rows (id int, name text)",
        ]:
            cls.cluster.sql(statement)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.proof_dir, ignore_errors=True)

    def assert_not_in_log(self, *secrets):
        # The workers' lines (a client's failed statement is echoed by PostgreSQL's own
        # log_min_error_statement, which is the DBA's setting, not ours).
        log = "\n".join(line for line in self.cluster.log_text().splitlines() if "pg_streamrec" in line)
        self.assertIn("pg_streamrec", log)
        for secret in secrets:
            self.assertNotIn(secret, log)

    def test_kinit_example_is_refused_with_42501_on_every_entry_point(self):
        kinit = json.dumps({"kafka": self.kinit})
        e = self.expect_role_error("kadmin", "42501", "SELECT streamrec.create_source('k_kinit', 'secu.kinit', "
                                   "'k_rows', 'csv', NULL, %s)", (kinit,))
        self.assertEqual(e.diag.message_primary, 'only a superuser may set Kafka property "sasl.kerberos.kinit.cmd"')
        self.assertIn("shell command", e.diag.message_detail)
        self.assertNotIn("proof", e.pgerror + (e.diag.message_detail or "") + e.diag.message_hint)
        e = self.expect_role_error("kadmin", "42501", "SELECT streamrec.create_sink('k_kinit', 'k_out', 'secu.sink', "
                                   "'csv', NULL, %s)", (kinit,))
        self.assertIn("sasl.kerberos.kinit.cmd", e.diag.message_primary)
        for options in ({"output_topic": "secu.trending", "output_options": {"kafka": self.kinit}},
                        {"output_options": {"kafka": self.kinit}}):
            e = self.expect_role_error("kadmin", "42501", "SELECT streamrec.enable_pipeline('trending', %s)",
                                       (json.dumps(options),))
            self.assertIn("sasl.kerberos.kinit.cmd", e.diag.message_primary)
        # The class: code loading, file sending, and Kerberos as librdkafka's default mechanism.
        for kafka in ({"plugin.library.paths": "/tmp/evil.so"}, {"ssl.engine.location": "/tmp/evil.so"},
                      {"ssl.providers": "evil"}, {"sasl.oauthbearer.assertion.file": "/etc/passwd"},
                      {"sasl.kerberos.principal": "x; id"}, {"debug": "all"}, {"security.protocol": "SASL_SSL"}):
            with self.subTest(kafka=kafka):
                self.expect_role_error("kadmin", "42501", "SELECT streamrec.create_source('k_kinit', 'secu.kinit', "
                                       "'k_rows', 'csv', NULL, %s)", (json.dumps({"kafka": kafka}),))
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sources WHERE name = 'k_kinit'"), 0)
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sinks WHERE name = 'k_kinit'"), 0)
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.pipeline_catalog WHERE name = 'trending'"), 0)
        self.assertFalse(os.path.exists(self.proof))

    def test_unknown_and_reserved_properties_are_22023_for_everyone(self):
        e = self.expect_role_error("kadmin", "22023", "SELECT streamrec.create_source('k_unknown', 'secu.kinit', "
                                   "'k_rows', 'csv', NULL, %s)", (json.dumps({"kafka": {"no.such.thing": "1"}}),))
        self.assertEqual(e.diag.message_primary, 'option "kafka" may not set unknown property "no.such.thing"')
        for allowed in ("security.protocol", "sasl.mechanism", "sasl.username", "sasl.password", "ssl.ca.location",
                        "ssl.key.pem", "client.id", "linger.ms", "compression.type", "fetch.max.bytes"):
            self.assertIn(allowed, e.diag.message_hint)
        self.assertNotIn("sasl.kerberos.kinit.cmd", e.diag.message_hint)
        for role in ("kadmin", "postgres"):
            for kind, kafka in (("source", {"metadata.broker.list": "evil:9092"}), ("source", {"group.id": "g"}),
                                ("sink", {"acks": "0"}), ("sink", {"request.required.acks": "0"}),
                                ("sink", {"message.timeout.ms": "1"}), ("source", {"SASL.KERBEROS.KINIT.CMD": "id"})):
                with self.subTest(role=role, kafka=kafka):
                    query = ("SELECT streamrec.create_source('k_res', 'secu.kinit', 'k_rows', 'csv', NULL, %s)"
                             if kind == "source" else
                             "SELECT streamrec.create_sink('k_res', 'k_out', 'secu.sink', 'csv', NULL, %s)")
                    e = self.expect_role_error(role, "22023", query, (json.dumps({"kafka": kafka}),))
                    self.assertIn(next(iter(kafka)), e.diag.message_primary)

    def plant(self, table, check, query, params):
        """Runs query as a superuser with the catalog table's row check set aside."""
        conn = self.cluster.connect(autocommit=False)
        try:
            with conn.cursor() as cur:
                cur.execute(f"ALTER TABLE streamrec.{table} DISABLE TRIGGER {check}")
                cur.execute(query, params)
                cur.execute(f"ALTER TABLE streamrec.{table} ENABLE TRIGGER {check}")
            conn.commit()
        finally:
            conn.close()

    def test_worker_refuses_a_forbidden_property_written_into_its_own_row(self):
        produce(self.sandbox.bootstrap, "secu.kinit", ["1,one", "2,two"])
        self.as_role("kadmin", "SELECT streamrec.create_source('k_src', 'secu.kinit', 'k_rows', 'csv', NULL, %s)",
                     (json.dumps({"kafka": {"client.rack": "r1"}}),))
        wait_for(lambda: self.value("SELECT count(*) FROM k_rows") == 2, 30, what="2 rows in k_rows")
        # Bypassing create_source: the admin writes the property into its own catalog row (the
        # row check refuses that too), and a row that holds it anyway is planted past the check.
        update = "UPDATE streamrec.sources SET options = jsonb_set(options, '{kafka}', %s) WHERE name = 'k_src'"
        self.expect_role_error("kadmin", "42501", update, (json.dumps(self.kinit),))
        self.plant("sources", "check_source_row", update, (json.dumps(self.kinit),))
        stats = wait_for(lambda: (lambda s: s if "sasl.kerberos.kinit.cmd" in (s["last_error"] or "") else None)(
            self.source_stats("k_src")), 30, what="the worker's refusal in source_stats")
        self.assertIn('source "k_src" not started: only a superuser may set Kafka property "sasl.kerberos.kinit.cmd"',
                      stats["last_error"])
        produce(self.sandbox.bootstrap, "secu.kinit", ["3,three"])
        time.sleep(5)  # restarts with backoff: each must refuse again
        self.assertFalse(os.path.exists(self.proof))
        self.assertEqual(self.value("SELECT count(*) FROM k_rows"), 2)
        self.assertNotEqual(self.source_stats("k_src")["state"], "running")
        self.assert_not_in_log("id > ")
        # The sink worker checks its row the same way.
        self.as_role("kadmin", "SELECT streamrec.create_sink('k_sink', 'k_out', 'secu.sink')")
        update = "UPDATE streamrec.sinks SET options = jsonb_set(options, '{kafka}', %s) WHERE name = 'k_sink'"
        evil = json.dumps({"plugin.library.paths": "/nonexistent/evil"})
        self.expect_role_error("kadmin", "42501", update, (evil,))
        self.plant("sinks", "check_sink_row", update, (evil,))
        stats = wait_for(lambda: (lambda s: s if "plugin.library.paths" in (s["last_error"] or "") else None)(
            self.sink_stats("k_sink")), 30, what="the sink worker's refusal in sink_stats")
        self.assertIn('sink "k_sink" not started', stats["last_error"])
        self.assertNotIn("/nonexistent/evil", stats["last_error"])
        self.as_role("kadmin", "SELECT streamrec.drop_sink('k_sink')")
        self.as_role("kadmin", "SELECT streamrec.drop_source('k_src')")
        self.assertFalse(os.path.exists(self.proof))

    def test_a_superuser_may_set_a_superuser_only_property(self):
        produce(self.sandbox.bootstrap, "secu.super", ["1,one", "2,two", "3,three"])
        # plaintext: no SASL, so librdkafka never runs the command; the worker (a superuser) accepts it.
        self.sql("SELECT streamrec.create_source('super_src', 'secu.super', 'super_rows', 'csv', NULL, %s)",
                 (json.dumps({"kafka": {"security.protocol": "plaintext", "sasl.kerberos.kinit.cmd": "true",
                                        "sasl.kerberos.min.time.before.relogin": 0}}),))
        wait_for(lambda: self.value("SELECT count(*) FROM super_rows") == 3, 30, what="3 rows in super_rows")
        self.assertEqual(self.source_stats("super_src")["state"], "running")
        self.sql("SELECT streamrec.drop_source('super_src')")

    def test_pipelines_view_masks_secrets(self):
        options = {"output_topic": "secu.trending",
                   "output_options": {"schema_registry": "http://reg-user:reg-pass-XYZ@127.0.0.1:1",
                                      "kafka": {"security.protocol": "plaintext", "sasl.username": "app",
                                                "sasl.password": "hunter2-XYZ", "ssl.key.password": "kp-XYZ",
                                                "sasl.oauthbearer.client.secret": "cs-XYZ", "linger.ms": 5}}}
        self.as_role("kadmin", "SELECT streamrec.enable_pipeline('trending', %s)", (json.dumps(options),))
        try:
            row = self.as_role("kreader", "SELECT options::text FROM streamrec.pipelines WHERE name = 'trending'")
            shown = json.loads(row[0][0])
            self.assertNotIn("XYZ", row[0][0])
            self.assertEqual(shown["output_options"]["kafka"],
                             {"security.protocol": "plaintext", "sasl.username": "app", "sasl.password": "***",
                              "ssl.key.password": "***", "sasl.oauthbearer.client.secret": "***", "linger.ms": 5})
            self.assertEqual(shown["output_options"]["schema_registry"], "http://***@127.0.0.1:1")
            self.assertEqual(shown["output_topic"], "secu.trending")
        finally:
            self.sql("SELECT streamrec.disable_pipeline('trending')")

    def test_refused_property_values_never_reach_last_error_or_the_log(self):
        self.sql("CREATE TABLE values_out (id int, name text)")
        cases = {"v_codec": {"compression.type": "zip-VALUE-SECRET-1"},
                 "v_pem": {"security.protocol": "ssl",
                           "ssl.key.pem": "-----BEGIN PRIVATE KEY-----\nVALUE-SECRET-2\n-----END PRIVATE KEY-----"}}
        for name, kafka in cases.items():
            self.sql("SELECT streamrec.create_sink(%s, 'values_out', 'secu.values', 'csv', NULL, %s)",
                     (name, json.dumps({"kafka": kafka})))
        for name, property_name in (("v_codec", "compression.type"), ("v_pem", "ssl.key.pem")):
            stats = wait_for(lambda: (lambda s: s if property_name in (s["last_error"] or "") else None)(
                self.sink_stats(name)), 30, what=f"{name}'s error in sink_stats")
            self.assertNotIn("VALUE-SECRET", stats["last_error"])
        self.assertIn('invalid Kafka producer property "compression.type"', self.sink_stats("v_codec")["last_error"])
        time.sleep(1)
        self.assert_not_in_log("VALUE-SECRET")
        for name in cases:
            self.sql("SELECT streamrec.drop_sink(%s)", (name,))

    def test_registry_errors_show_the_status_not_the_body(self):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SecretBodyHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            # A source: a Confluent frame makes the worker ask the "registry" for schema 1.
            self.sql("CREATE TABLE reg_rows (id int)")
            produce(self.sandbox.bootstrap, "secu.registry", [b"\x00\x00\x00\x00\x01\x02"])
            self.sql("SELECT streamrec.create_source('reg_src', 'secu.registry', 'reg_rows', 'avro', NULL, %s)",
                     (json.dumps({"schema_registry": url}),))
            stats = wait_for(lambda: (lambda s: s if "HTTP 500" in (s["last_error"] or "") else None)(
                self.source_stats("reg_src")), 30, what="the registry status in source_stats")
            self.assertNotIn("SECRET", stats["last_error"])
            self.assertNotIn("root:x", stats["last_error"])
            # A sink registers its schema at start: 403 is permanent, the worker fails with the status.
            _SecretBodyHandler.status = 403
            self.sql("SELECT streamrec.create_sink('reg_sink', 'values_out_reg', 'secu.registry', 'avro', NULL, %s)",
                     (json.dumps({"schema_registry": url}),))
            stats = wait_for(lambda: (lambda s: s if "HTTP 403" in (s["last_error"] or "") else None)(
                self.sink_stats("reg_sink")), 30, what="the registry status in sink_stats")
            self.assertNotIn("SECRET", stats["last_error"])
            time.sleep(1)
            self.assert_not_in_log("INTERNAL-SECRET-BODY")
            self.sql("SELECT streamrec.drop_sink('reg_sink')")
            self.sql("SELECT streamrec.drop_source('reg_src')")
        finally:
            _SecretBodyHandler.status = 500
            server.shutdown()

    def setUp(self):
        self.sql("CREATE TABLE IF NOT EXISTS values_out_reg (id int, name text)")
