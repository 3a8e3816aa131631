"""ALTER EXTENSION pg_streamrec UPDATE from the released 0.1: a running installation (csv and json
sources, a sink, pipelines with their state, offsets mid-stream) keeps every object, row and offset
across the update, and its workers go on exactly once; and the upgraded schema is the very schema
a fresh install of the current version creates (pg_dump of both, and the extension's members)."""

import datetime
import difflib
import json
import os
import re
import subprocess
import time
import unittest

import harness
from harness import wait_for
from kafka_util import consume, produce

T0 = datetime.datetime(2024, 6, 28, 13, 0, 0, tzinfo=datetime.timezone.utc)
CURRENT = "0.4"
USERS = 5
PRODUCTS = 10
ITEMS = 5


# The pipelines' own triggers that 0.3 replaced by one dispatcher trigger per table.
DISPATCHED = {"streamrec_similar_products", "streamrec_user_purchases", "streamrec_trending",
              "streamrec_category_affinity", "streamrec_attribution_checkouts", "streamrec_attribution_clicks"}
# The catalog's own triggers that later versions add (0.3: the catalog's change signal; 0.4: the
# refusal of group_id on a source that feeds a pipeline, from either side).
ADDED_CATALOG_TRIGGERS = {"streamrec_catalog_changed", "check_source_stateful_target", "check_pipeline_sources"}


def dispatched(triggers):
    """pg_trigger rows (table, name, function, args) as the update leaves them: the replaced
    triggers give way to streamrec_pipelines on each table they were on. (The catalog's own
    triggers, which the updates add, are left out.)"""
    rows = [(t, n, f, bytes(a)) for t, n, f, a in triggers if n not in DISPATCHED | ADDED_CATALOG_TRIGGERS]
    rows += [(t, "streamrec_pipelines", "streamrec._pipeline_dispatch()", b"")
             for t in sorted({t for t, n, f, a in triggers if n in DISPATCHED})]
    return sorted(rows)


def ts(seconds):
    return (T0 + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S+00")


def clicks(first, count):
    """click_id, user, product, time: one page view per second, each on a product with candidates."""
    return [(f"c{i}", f"u{i % USERS}", f"p{(i * 7) % PRODUCTS}", i) for i in range(first, first + count)]


def checkouts(first, count):
    return [(f"k{j}", f"u{j % USERS}", f"p{(j * 3) % PRODUCTS}", j * 5 + 30) for j in range(first, first + count)]


def transactions(first, count):
    return [(k, f"i{k % ITEMS}", 3 if k % 3 else -2, k) for k in range(first, first + count)]


def attribution_model(all_clicks, all_checkouts):
    """checkout_id -> (user_name, click_id, click second): the earliest click of the user and
    product in the hour before the checkout."""
    out = {}
    for checkout_id, user, product, t in all_checkouts:
        candidates = [(ct, cid) for cid, cu, cp, ct in all_clicks if cu == user and cp == product and t - 3600 <= ct <= t]
        best = min(candidates) if candidates else (None, None)
        out[checkout_id] = (f"name of {user}", best[1], best[0])
    return out


def transactions_model(all_transactions):
    stock = {f"i{n}": 100 for n in range(ITEMS)}
    results = []
    for k, item, quantity, _t in all_transactions:
        stock[item] += quantity
        results.append((k, item, quantity, True, stock[item]))
    return results, stock


# --- schema comparison -----------------------------------------------------------------------------
_HEADER = re.compile(r"^-- (?:Data for )?Name: (.*); Type: (.*); Schema: (.*); Owner: (.*)$")


def normalized_dump(cluster, dbname):
    """pg_dump --schema-only --binary-upgrade (which spells out every member of an extension, where
    a plain dump writes CREATE EXTENSION), without what differs between two equal schemas (OIDs,
    transaction ids, session settings), as (object header, statements) chunks sorted by header;
    ACL statements are sorted within their chunk (their order is the order grants were made)."""
    out = subprocess.run([os.path.join(cluster.bindir, "pg_dump"), "--schema-only", "--binary-upgrade",
                          "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", dbname],
                         capture_output=True, text=True, check=True).stdout
    chunks, header, body, skip = [], "(preamble)", [], 0
    for line in out.splitlines():
        if skip:
            skip -= 1
            continue
        m = _HEADER.match(line)
        if m:
            chunks.append((header, body))
            header, body = line[3:], []
            continue
        if line == "UPDATE pg_catalog.pg_class":  # relfrozenxid/relminmxid of a table and its toast table
            skip = 2
            continue
        if (line.startswith("--") or line.startswith("SET ") or "set_config(" in line or "binary_upgrade_" in line
                or line.startswith("\\restrict") or line.startswith("\\unrestrict") or not line.strip()):
            continue
        body.append(line)
    chunks.append((header, body))
    merged = {}
    for header, body in chunks:
        if "Type: ACL" in header:
            body = sorted(body)
        merged.setdefault(header, []).extend(body)
    text = []
    for header in sorted(merged):
        text.append(f"-- {header}")
        text.extend(merged[header])
    return text


EXTENSION_MEMBERS = """
    SELECT pg_describe_object(d.classid, d.objid, d.objsubid)
    FROM pg_depend d JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
    WHERE e.extname = 'pg_streamrec' AND d.deptype = 'e' ORDER BY 1"""


class UpgradeSchemaTest(harness.ClusterTestCase):
    """A fresh install of the current version and 0.1 updated to it have the same schema. This is
    the check that the install fragments (sql/install/) and the upgrade script stay equal: an
    object added to, changed in or dropped from one and not the other shows in the diff."""

    create_extension = None  # one database of each kind, made below

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.sql("CREATE DATABASE fresh")
        cls.cluster.sql("CREATE DATABASE upgraded")
        cls.cluster.sql("CREATE EXTENSION pg_streamrec", dbname="fresh")
        cls.cluster.sql("CREATE EXTENSION pg_streamrec VERSION '0.1'", dbname="upgraded")
        cls.cluster.sql("ALTER EXTENSION pg_streamrec UPDATE", dbname="upgraded")

    def assertSameLines(self, fresh, upgraded, what):
        if fresh != upgraded:
            diff = "\n".join(difflib.unified_diff(fresh, upgraded, f"fresh {CURRENT}", f"0.1 updated to {CURRENT}",
                                                  lineterm="", n=2))
            self.fail(f"{what} differ:\n{diff[:20000]}")

    def test_both_are_the_current_version(self):
        for db in ("fresh", "upgraded"):
            self.assertEqual(self.cluster.value("SELECT extversion FROM pg_extension WHERE extname = 'pg_streamrec'",
                                                dbname=db), CURRENT)

    def test_pg_dump_of_both_is_the_same(self):
        fresh = normalized_dump(self.cluster, "fresh")
        self.assertGreater(sum(1 for line in fresh if "Type: FUNCTION; Schema: streamrec" in line), 50)
        self.assertSameLines(fresh, normalized_dump(self.cluster, "upgraded"), "pg_dump --schema-only outputs")

    def test_extension_members_are_the_same(self):
        fresh = [r[0] for r in self.cluster.sql(EXTENSION_MEMBERS, dbname="fresh")]
        self.assertIn("event trigger streamrec_retention_dropped", fresh)
        self.assertIn("table streamrec.pipeline_kinds", fresh)
        self.assertSameLines(fresh, [r[0] for r in self.cluster.sql(EXTENSION_MEMBERS, dbname="upgraded")],
                             "extension members")

    def test_configuration_tables_and_registry_rows_are_the_same(self):
        queries = [
            "SELECT array_agg(c::regclass::text ORDER BY c::regclass::text) FROM pg_extension e, unnest(e.extconfig) c "
            "WHERE e.extname = 'pg_streamrec'",
            "SELECT name, list_order, defaults, triggers, outputs, tick FROM streamrec.pipeline_kinds ORDER BY name",
            "SELECT objoid::regclass::text, objsubid, privtype, initprivs::text FROM pg_init_privs "
            "WHERE classoid = 'pg_class'::regclass AND objoid::regclass::text LIKE 'streamrec.%' ORDER BY 1, 2",
        ]
        for query in queries:
            self.assertEqual(self.cluster.sql(query, dbname="fresh"), self.cluster.sql(query, dbname="upgraded"), query)
        self.assertEqual(self.cluster.value("SELECT count(*) FROM streamrec.pipeline_kinds", dbname="upgraded"), 6)


class UpgradeRunningTest(harness.ClusterTestCase):
    """0.1 installed and running (sources mid-stream, a sink, three pipelines), then updated in
    place while its workers run."""
    topics = {"up.clicks": 1, "up.checkouts": 1, "up.tx": 1, "up.recs": 1, "up.pending": 1}

    create_extension = "CREATE EXTENSION pg_streamrec VERSION '0.1'"

    @classmethod
    def setUpClass(cls):
        from sandbox import Sandbox
        cls.sandbox = Sandbox(harness.BUILD, topics=cls.topics).start()
        cls.settings = {"streamrec.brokers": f"'{cls.sandbox.bootstrap}'"}
        try:
            super().setUpClass()
        except BaseException:
            cls.sandbox.stop()
            cls.sandbox.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.sandbox.stop()
            cls.sandbox.cleanup()

    def produce_batch(self, first_click, first_checkout, first_transaction, n_clicks, n_checkouts, n_transactions):
        batch = (clicks(first_click, n_clicks), checkouts(first_checkout, n_checkouts),
                 transactions(first_transaction, n_transactions))
        produce(self.sandbox.bootstrap, "up.clicks", [f"{c},{u},{p},page_view,,{ts(t)}" for c, u, p, t in batch[0]])
        produce(self.sandbox.bootstrap, "up.checkouts", [f"{k},{u},{p},card,10,{ts(t)}" for k, u, p, t in batch[1]])
        produce(self.sandbox.bootstrap, "up.tx",
                [json.dumps({"id": k, "item": i, "qty": q, "ts": ts(t).replace(" ", "T").replace("+00", "Z")})
                 for k, i, q, t in batch[2]])
        return batch

    def wait_consumed(self, expected, timeout=120):
        for source, count in expected.items():
            wait_for(lambda: self.value("SELECT coalesce(sum(next_offset), 0) FROM streamrec.source_offsets "
                                        "WHERE source = %s", (source,)) == count,
                     timeout, what=f"source {source} to reach offset {count}")

    def wait_delivered(self, count, timeout=120):
        wait_for(lambda: self.value("SELECT count(*) FROM streamrec.recommendation_log") == count, timeout,
                 what=f"{count} lists")
        wait_for(lambda: (self.sink_pending() or 0) == 0, timeout, what="the sink to deliver every list")

    def sink_pending(self):
        return self.value("SELECT pending + failed FROM streamrec.sink_stats WHERE name = 'pipeline_similar_products'")

    def snapshot(self):
        """Every catalog row, offset, pipeline result and trigger, as exact rows."""
        queries = {
            "sources": "SELECT * FROM streamrec.sources ORDER BY name",
            "offsets": "SELECT * FROM streamrec.source_offsets ORDER BY source, partition",
            "sinks": "SELECT * FROM streamrec.sinks ORDER BY name",
            # (the columns 0.1 has: the update adds one for binary chunks)
            "outbox": "SELECT sink, id, payload, created_at, error, rows FROM streamrec.sink_outbox ORDER BY sink, id",
            "pipelines": "SELECT name, enabled, options, sinks, enabled_at, owner FROM streamrec.pipeline_catalog ORDER BY name",
            "clocks": "SELECT * FROM streamrec.pipeline_clock ORDER BY pipeline",
            "writers": "SELECT * FROM streamrec.pipeline_writers ORDER BY pipeline, writer",
            "dead_letters": "SELECT * FROM streamrec.dead_letters ORDER BY id",
            "clicks": "SELECT * FROM streamrec.clicks ORDER BY click_id",
            "checkouts": "SELECT * FROM streamrec.checkouts ORDER BY checkout_id",
            "item_transactions": "SELECT * FROM streamrec.item_transactions ORDER BY transaction_id",
            "inventory": "SELECT * FROM streamrec.inventory ORDER BY product_id",
            "recommendation_log": "SELECT * FROM streamrec.recommendation_log ORDER BY id",
            # (the columns of 0.1: 0.3 adds the pipeline's state columns, filled by the next batch)
            "recommendations": "SELECT user_id, product_ids, viewed_product_id, category, window_end, updated_at "
                               "FROM streamrec.recommendations ORDER BY user_id",
            "attributed_checkouts": "SELECT * FROM streamrec.attributed_checkouts ORDER BY checkout_id",
            "attribution_log": "SELECT * FROM streamrec.attribution_log ORDER BY id",
            "transaction_results": "SELECT * FROM streamrec.transaction_results ORDER BY transaction_id",
            "triggers": "SELECT tgrelid::regclass::text, tgname, tgfoid::regprocedure::text, tgargs FROM pg_trigger "
                        "WHERE NOT tgisinternal ORDER BY 1, 2",  # (compared as dispatched() leaves them)
            # (but those of the registry and the wiring table, which the updates add)
            "indexes": "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i "
                       "JOIN pg_class c ON c.oid = i.indrelid AND c.relnamespace = 'streamrec'::regnamespace "
                       "WHERE c.relname NOT IN ('pipeline_kinds', 'pipeline_inputs') ORDER BY 1",
        }
        return {name: self.sql(query) for name, query in queries.items()}

    def test_update_keeps_everything_and_workers_go_on_exactly_once(self):
        self.sql("INSERT INTO streamrec.inventory (product_id, category, stock, rating) "
                 "SELECT 'p' || n, 'c', 5, 1 + n / 2.0 FROM generate_series(0, %s) n", (PRODUCTS - 1,))
        self.sql("INSERT INTO streamrec.inventory (product_id, category, stock) "
                 "SELECT 'i' || n, 'items', 100 FROM generate_series(0, %s) n", (ITEMS - 1,))
        self.sql("INSERT INTO streamrec.users SELECT 'u' || n, 'name of u' || n FROM generate_series(0, %s) n",
                 (USERS - 1,))
        self.sql("SELECT streamrec.enable_pipeline('similar_products', '{\"output_topic\": \"up.recs\"}')")
        self.sql("SELECT streamrec.enable_pipeline('attribution')")
        self.sql("SELECT streamrec.enable_pipeline('item_transactions', '{\"idle_timeout\": \"1 hour\"}')")
        fast = {"batch_ms": 20}
        self.sql("SELECT streamrec.create_source('clicks', 'up.clicks', 'streamrec.clicks', 'csv', NULL, %s)",
                 (json.dumps(fast),))
        self.sql("SELECT streamrec.create_source('checkouts', 'up.checkouts', 'streamrec.checkouts', 'csv', NULL, %s)",
                 (json.dumps(fast),))
        self.sql("SELECT streamrec.create_source('transactions', 'up.tx', 'streamrec.item_transactions', 'json', NULL, %s)",
                 (json.dumps(dict(fast, columns={"transaction_id": "id", "item_id": "item", "quantity": "qty",
                                                 "ts": "ts"})),))

        # A paused sink whose rows wait in the outbox across the update, in 0.1's jsonb chunks.
        self.sql("CREATE TABLE up_pending (seq int, k text, at timestamptz)")
        self.sql("SELECT streamrec.create_sink('up_pending', 'up_pending', 'up.pending', 'csv', NULL, '{\"key\": \"k\"}')")
        self.sql("SELECT streamrec.pause_sink('up_pending')")
        self.sql("INSERT INTO up_pending SELECT g, 'k' || g % 3, '2024-06-28 13:00:00+00'::timestamptz + g * interval '1 s' "
                 "FROM generate_series(1, 1500) g")
        self.sql("INSERT INTO up_pending VALUES (1501, 'k1', NULL)")
        self.assertEqual(self.sql("SELECT rows, payload IS NOT NULL FROM streamrec.sink_outbox WHERE sink = 'up_pending' "
                                  "ORDER BY id"), [(1000, True), (500, True), (1, True)])

        first = self.produce_batch(0, 0, 0, 200, 40, 100)
        self.wait_consumed({"clicks": 200, "checkouts": 40, "transactions": 100})
        self.wait_delivered(200)
        time.sleep(1.5)  # a duplicate or a late tick would show now
        before = self.snapshot()
        self.assertEqual(len(before["recommendation_log"]), 200)
        self.assertEqual(len(before["attributed_checkouts"]), 40)
        self.assertEqual(len(before["transaction_results"]), 100)
        self.assertIn(("streamrec.clicks", "streamrec_attribution_clicks", "streamrec._attribution_clicks_trigger()",
                       b""), [(a, b, c, bytes(d)) for a, b, c, d in before["triggers"]])
        log_mark = len(self.cluster.log_text())

        self.sql("ALTER EXTENSION pg_streamrec UPDATE")
        self.assertEqual(self.value("SELECT extversion FROM pg_extension WHERE extname = 'pg_streamrec'"), CURRENT)
        after = self.snapshot()
        for name in before:
            if name == "triggers":
                self.assertIn(("streamrec.pipeline_catalog", "streamrec_catalog_changed"), [r[:2] for r in after[name]])
                self.assertEqual(dispatched(after[name]), dispatched(before[name]), "triggers changed across the update")
            else:
                self.assertEqual(after[name], before[name], f"{name} changed across the update")

        # The paused sink's jsonb chunks are delivered after the update, then a binary chunk, in order.
        self.sql("INSERT INTO up_pending VALUES (1502, NULL, '2024-06-28 14:00:00+00')")
        self.assertEqual(self.value("SELECT data IS NOT NULL FROM streamrec.sink_outbox WHERE sink = 'up_pending' "
                                    "ORDER BY id DESC LIMIT 1"), True)
        self.sql("SELECT streamrec.resume_sink('up_pending')")
        pending = consume(self.sandbox.bootstrap, "up.pending", 1502, timeout=60)
        expected = [(f"k{g % 3}".encode(), f'{g},k{g % 3},"{ts(g)[:-3]}"'.encode()) for g in range(1, 1501)]
        expected += [(b"k1", b"1501,k1,"), (None, b'1502,,"2024-06-28 14:00:00"')]
        self.assertEqual([(k, v) for *_, k, v in pending], expected)
        wait_for(lambda: self.value("SELECT count(*) FROM streamrec.sink_outbox WHERE sink = 'up_pending'") == 0, 30,
                 what="the pending sink's outbox empty")

        # The workers go on: the second batch, exactly once, on top of the first.
        second = self.produce_batch(200, 40, 100, 200, 40, 100)
        self.wait_consumed({"clicks": 400, "checkouts": 80, "transactions": 200})
        self.wait_delivered(400)
        time.sleep(1.5)
        self.assertEqual(self.sql("SELECT source, partition, next_offset FROM streamrec.source_offsets ORDER BY 1"),
                         [("checkouts", 0, 80), ("clicks", 0, 400), ("transactions", 0, 200)])
        all_clicks, all_checkouts, all_transactions = (first[n] + second[n] for n in range(3))
        self.assertEqual(self.sql("SELECT click_id, count(*) FROM streamrec.clicks GROUP BY 1 ORDER BY 1"),
                         sorted((c[0], 1) for c in all_clicks))
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.checkouts"), 80)
        self.assertEqual(self.value("SELECT count(DISTINCT transaction_id) FROM streamrec.item_transactions"), 200)

        # similar_products: one list per page view, and the topic holds exactly those, in order.
        lists = self.sql("SELECT user_id FROM streamrec.recommendation_log ORDER BY id")
        self.assertEqual(len(lists), 400)
        messages = consume(self.sandbox.bootstrap, "up.recs", 400, timeout=60)
        self.assertEqual(len(messages), 400)
        self.assertEqual([m[2].decode() for m in messages], [u for (u,) in lists])
        self.assertEqual(len({m[3] for m in messages}), 400)

        # attribution: the model's table, with checkouts of either batch attributed to clicks of either.
        model = attribution_model(all_clicks, all_checkouts)
        stored = {r[0]: (r[1], r[2], r[3]) for r in self.sql(
            "SELECT checkout_id, user_name, click_id, extract(epoch FROM click_time - %s)::int "
            "FROM streamrec.attributed_checkouts", (T0,))}
        self.assertEqual(stored, model)
        self.assertTrue(any(v[1] is not None for v in model.values()))

        # item_transactions: every result once, in order, and the stock the sequential model gives.
        results, stock = transactions_model(all_transactions)
        self.assertEqual(self.sql("SELECT transaction_id, item_id, quantity, success, stock_after "
                                  "FROM streamrec.transaction_results ORDER BY transaction_id"), results)
        self.assertEqual(dict(self.sql("SELECT product_id, stock FROM streamrec.inventory WHERE category = 'items'")),
                         stock)

        # The periodic tick (since 0.2) ran for every pipeline without a failure, and a pipeline's
        # trigger state still comes and goes with it.
        time.sleep(2)
        self.assertNotIn("periodic work of pipeline", self.cluster.log_text()[log_mark:])
        self.sql("SELECT streamrec.disable_pipeline('attribution')")
        self.assertIsNone(self.value("SELECT to_regclass('streamrec.clicks_attribution_idx')"))
        self.sql("SELECT streamrec.enable_pipeline('attribution')")
        self.assertIsNotNone(self.value("SELECT to_regclass('streamrec.clicks_attribution_idx')"))


if __name__ == "__main__":
    unittest.main()
