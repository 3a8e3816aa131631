"""item_transactions end to end: transactions and stock queries from topics through
source workers, results, query answers and alerts on output topics, checked against a plain
sequential Python model; unknown items, a kill -9 of the source worker mid-stream, bad input
dead-lettered, two feeding workers plus a concurrent psql updater, a batch waiting on rows
that another transaction deletes, renames or updates, and two batches creating the same item at
once."""

import json
import os
import subprocess
import threading
import time

import psycopg2

from harness import StreamTestCase, datagen, wait_for
from kafka_util import consume, kcat_produce, produce



def csv_bool(value):
    return "true" if value else "false"


class Model:
    """The straightforward sequential model: one transaction at a time, per item."""

    def __init__(self, stock):
        self.stock = dict(stock)

    def apply(self, item, quantity):
        if item not in self.stock:
            if quantity > 0:
                self.stock[item] = quantity
                return True, quantity
            return False, None
        after = self.stock[item] + quantity
        if 0 <= after <= 2**31 - 1:
            self.stock[item] = after
            return True, after
        return False, self.stock[item]


class ItemTransactionsTest(StreamTestCase):
    topics = {"it.order": 1, "it.order.q": 1, "it.order.out": 1, "it.order.qout": 1, "it.order.alerts": 1,
              "it.gen": 4, "it.gen.out": 4, "it.kill": 8, "it.bad": 1, "it.conc.a": 2, "it.conc.b": 2,
              "it.ahead": 1, "it.behind": 1}

    def setUp(self):
        wait_for(lambda: self.value("SELECT 1"), 60, what="server accepting connections")
        for (name,) in self.sql("SELECT name FROM streamrec.sources"):
            self.sql("SELECT streamrec.drop_source(%s)", (name,))
        if self.value("SELECT count(*) FROM streamrec.pipeline_catalog WHERE enabled"):
            self.sql("SELECT streamrec.disable_pipeline('item_transactions')")
        self.sql("TRUNCATE streamrec.item_transactions, streamrec.stock_queries, streamrec.transaction_results, "
                 "streamrec.query_results, streamrec.transaction_summaries, streamrec.transaction_alerts, "
                 "streamrec.inventory, streamrec.pipeline_clock, streamrec.pipeline_writers, streamrec.dead_letters")

    def enable(self, **options):
        self.sql("SELECT streamrec.enable_pipeline('item_transactions', %s)", (json.dumps(options),))

    def source(self, name, topic, table="streamrec.item_transactions", options=None):
        self.sql("SELECT streamrec.create_source(%s, %s, %s, 'csv', NULL, %s)",
                 (name, topic, table, json.dumps(options or {})))

    def wait_count(self, table, count, timeout=60):
        wait_for(lambda: self.value(f"SELECT count(*) FROM {table}") >= count, timeout,
                 what=f"{count} rows in {table}")
        time.sleep(0.3)  # a duplicate would show now
        self.assertEqual(self.value(f"SELECT count(*) FROM {table}"), count)

    def load_inventory(self, products, seed):
        lines = datagen("inventory", "--products", products, "--seed", seed).splitlines()
        conn = self.cluster.connect()
        try:
            with conn.cursor() as cur:
                import io
                cur.copy_expert("COPY streamrec.inventory (product_id, category, stock, rating) FROM STDIN CSV",
                                io.StringIO("\n".join(lines) + "\n"))
        finally:
            conn.close()
        return {line.split(",")[0]: int(line.split(",")[-2]) for line in lines}

    def test_order_unknown_items_queries_and_alerts_on_topics(self):
        self.sql("INSERT INTO streamrec.inventory (product_id, stock) VALUES ('a', 5), ('b', 0)")
        counters = "SELECT events, outputs FROM streamrec._pipeline_stats() WHERE name = 'item_transactions'"
        before = (self.sql(counters) or [(0, 0)])[0]  # counted since server start
        self.enable(output_topic="it.order.out", query_output_topic="it.order.qout",
                    alert_output_topic="it.order.alerts", alert_min_transactions=3, watermark_delay="0 seconds")
        transactions = [(1, "a", -3), (2, "new", -1), (3, "a", -3), (4, "new", 7), (5, "a", 10), (6, "b", -1),
                        (7, "a", -12), (8, "new", -8), (9, "ghost", 5), (10, "b", -2), (11, "b", -2)]
        kcat_produce(self.sandbox.bootstrap, "it.order",
                     [f"{t},{item},{q},2024-06-28 13:00:{t:02d}" for t, item, q in transactions])
        self.source("it_order", "it.order")
        self.wait_count("streamrec.transaction_results", len(transactions))
        model = Model({"a": 5, "b": 0})
        expected = []
        for t, item, q in transactions:
            ok, after = model.apply(item, q)
            expected.append((item.encode(), f"{t},{item},{q},{csv_bool(ok)},{'' if after is None else after}".encode()))
        messages = consume(self.sandbox.bootstrap, "it.order.out", len(expected))
        self.assertEqual([(k, v) for *_, k, v in messages], expected)
        self.assertEqual(dict(self.sql("SELECT product_id, stock FROM streamrec.inventory")), model.stock)
        self.assertEqual(model.stock, {"a": 0, "b": 0, "new": 7, "ghost": 5})

        # Queries stored after the transactions see all of them; an unknown item answers NULL.
        kcat_produce(self.sandbox.bootstrap, "it.order.q", ["100,a", "101,new", "102,nobody", "103,ghost"])
        self.source("it_order_q", "it.order.q", "streamrec.stock_queries")
        answers = consume(self.sandbox.bootstrap, "it.order.qout", 4)
        self.assertEqual([(k, v) for *_, k, v in answers],
                         [(b"100", b"100,a,0"), (b"101", b"101,new,7"), (b"102", b"102,nobody,"),
                          (b"103", b"103,ghost,5")])

        # In 13:00 'b' failed 3 of 3 and 'new' 2 of 3 ('a' 1 of 4): a transaction in 13:01 closes
        # that window, and two alerts go out, in key order.
        kcat_produce(self.sandbox.bootstrap, "it.order", ["12,z,1,2024-06-28 13:01:30"])
        alerts = consume(self.sandbox.bootstrap, "it.order.alerts", 2)
        self.assertEqual([(k, v) for *_, k, v in alerts],
                         [(b"b", b'b,"2024-06-28 13:00:00","2024-06-28 13:01:00",0,3,0'),
                          (b"new", b'new,"2024-06-28 13:00:00","2024-06-28 13:01:00",1,2,7')])
        after = self.sql(counters)[0]
        self.assertEqual((after[0] - before[0], after[1] - before[1]), (12 + 4, 12 + 4 + 2))
        self.assertIsNone(self.value("SELECT last_error FROM streamrec.pipelines"))

    def test_generated_stream_matches_the_sequential_model_exactly(self):
        products, count, seed = 500, 20000, 7
        stock = self.load_inventory(products, seed)
        self.enable(output_topic="it.gen.out")
        datagen("item_transactions", "--count", count, "--products", products, "--seed", seed, "--fail-ratio", 0.1,
                "--events-per-second", 1000, "--topic", "it.gen", "--brokers", self.sandbox.bootstrap)
        self.source("it_gen", "it.gen", options={"batch_size": 1000})
        self.wait_count("streamrec.transaction_results", count, timeout=120)
        lines = datagen("item_transactions", "--count", count, "--products", products, "--seed", seed,
                        "--fail-ratio", 0.1, "--events-per-second", 1000).splitlines()
        model = Model(stock)
        expected = {}
        for line in lines:  # keyed by item: per item, the topic keeps this order
            t, item, q, _ = line.split(",")
            expected[int(t)] = (item, int(q), *model.apply(item, int(q)))
        stored = {r[0]: r[1:] for r in self.sql("SELECT transaction_id, item_id, quantity, success, stock_after "
                                                "FROM streamrec.transaction_results")}
        self.assertEqual(stored, expected)
        failed = sum(1 for v in expected.values() if not v[2])
        self.assertTrue(0.08 * count < failed < 0.12 * count, failed)
        self.assertEqual(dict(self.sql("SELECT product_id, stock FROM streamrec.inventory")), model.stock)
        # On the topic: every result once, per item in input order.
        messages = consume(self.sandbox.bootstrap, "it.gen.out", count, partitions=4, timeout=60)
        self.assertEqual(len(messages), count)
        per_item = {}
        for *_, key, value in messages:
            per_item.setdefault(key.decode(), []).append(int(value.split(b",")[0]))
        for item, ids in per_item.items():
            self.assertEqual(ids, sorted(ids), item)
        for *_, key, value in messages[:50]:
            t = int(value.split(b",")[0])
            item, q, ok, after = expected[t]
            self.assertEqual(value, f"{t},{item},{q},{csv_bool(ok)},{'' if after is None else after}".encode())
        # Summaries add up to the results once the last window closed (idle_timeout, from the
        # launcher's tick); before, the windows the watermark passed are there.
        wait_for(lambda: self.sql("SELECT sum(succeeded)::int, sum(failed)::int FROM streamrec.transaction_summaries")
                 == [(count - failed, failed)], 30, what="every window summarized")
        windows = {}
        for line in lines:
            t, _, _, ts = line.split(",")
            item, q, ok, _ = expected[int(t)]
            w = windows.setdefault((item, ts[:16]), [0, 0, 0])
            w[0 if ok else 1] += 1
            w[2] += abs(q) if ok else 0
        self.assertEqual({(r[0], r[1]): list(r[2:]) for r in self.sql(
            "SELECT item_id, to_char(window_start, 'YYYY-MM-DD HH24:MI'), succeeded, failed, volume "
            "FROM streamrec.transaction_summaries")}, windows)

    def test_kill_9_of_the_source_worker_applies_nothing_twice(self):
        products, count, seed = 2000, 150_000, 5
        stock = self.load_inventory(products, seed)
        self.enable()
        datagen("item_transactions", "--count", count, "--products", products, "--seed", seed,
                "--events-per-second", 10000, "--topic", "it.kill", "--brokers", self.sandbox.bootstrap)
        self.source("it_kill", "it.kill", options={"batch_size": 2000})
        pid = wait_for(lambda: self.value("SELECT pid FROM streamrec.source_stats WHERE name = 'it_kill'"), 20,
                       what="source worker")
        wait_for(lambda: self.value("SELECT count(*) FROM streamrec.transaction_results") >= 10_000, 60,
                 interval=0.02, what="stream under way")
        self.assertLess(self.value("SELECT count(*) FROM streamrec.transaction_results"), count,
                        "stream finished before the kill; nothing was tested")
        self.cluster.kill(pid)
        self.wait_count("streamrec.transaction_results", count, timeout=240)
        self.assertEqual(self.value("SELECT count(DISTINCT transaction_id) FROM streamrec.transaction_results"), count)
        lines = datagen("item_transactions", "--count", count, "--products", products, "--seed", seed,
                        "--events-per-second", 10000).splitlines()
        model = Model(stock)
        expected = {}
        for line in lines:
            t, item, q, _ = line.split(",")
            expected[int(t)] = (item, int(q), *model.apply(item, int(q)))
        stored = {r[0]: r[1:] for r in self.sql("SELECT transaction_id, item_id, quantity, success, stock_after "
                                                "FROM streamrec.transaction_results")}
        self.assertEqual(stored, expected)
        self.assertEqual(dict(self.sql("SELECT product_id, stock FROM streamrec.inventory")), model.stock)
        wait_for(lambda: self.value("SELECT sum(succeeded + failed) FROM streamrec.transaction_summaries") == count, 30,
                 what="every window summarized")

    def test_two_sources_a_minute_apart_close_windows_on_the_slower_one(self):
        # Two source workers feed the table, each in event-time order, 'ahead' always a minute of
        # event time ahead of 'behind'. The watermark follows the slower writer, so none of the
        # 'behind' transactions is late (on the faster writer's clock a third of them would be),
        # and every window is summarized exactly once the stream goes idle.
        self.enable(idle_timeout="10 seconds")
        per_topic, chunk, step_ms = 6000, 600, 50  # 600 transactions = 30 s of event time
        base = 1719579600  # 2024-06-28 13:00:00 UTC

        def lines(prefix, offset):
            out = []
            for i in range(per_topic):
                t = base + i * step_ms / 1000
                ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}+00"
                out.append(f"{offset + i},{prefix}-{i % 40},{1 + i % 7},{ts}")
            return out

        ahead, behind = lines("a", 0), lines("b", 100_000)
        self.source("it_ahead", "it.ahead")
        self.source("it_behind", "it.behind")
        wait_for(lambda: self.value("SELECT count(*) FROM streamrec.source_stats WHERE state = 'running'") == 2, 30,
                 what="both sources running")
        # Both writers deliver a first chunk; then 'ahead' runs two chunks (a minute) ahead. A
        # writer counts while it delivered within idle_timeout (10 s here).
        chunks = per_topic // chunk
        rounds = [(0, 0)] + [(a, None) for a in (1, 2)] + [(a, a - 2) for a in range(3, chunks)] + \
                 [(None, b) for b in range(chunks - 2, chunks)]
        stored = 0
        for a, b in rounds:
            for topic, rows, index in (("it.ahead", ahead, a), ("it.behind", behind, b)):
                if index is not None:
                    produce(self.sandbox.bootstrap, topic, rows[index * chunk:(index + 1) * chunk])
                    stored += chunk
            wait_for(lambda: self.value("SELECT count(*) FROM streamrec.transaction_results") == stored, 60,
                     what=f"{stored} results")
        self.assertEqual(self.value("SELECT late FROM streamrec.pipelines WHERE name = 'item_transactions'"), 0)
        last = base + (per_topic - 1) * step_ms / 1000
        self.assertEqual(dict(self.sql("SELECT writer, extract(epoch FROM max_event_time)::float8 "
                                       "FROM streamrec.pipeline_writers WHERE pipeline = 'item_transactions'")),
                         {"it_ahead": last, "it_behind": last})
        # Restocks only: every transaction succeeds; per item per minute, count and volume.
        windows = {}
        for line in ahead + behind:
            _, item, q, ts = line.split(",")
            w = windows.setdefault((item, ts[:16]), [0, 0, 0])
            w[0] += 1
            w[2] += int(q)
        wait_for(lambda: self.value("SELECT sum(succeeded) FROM streamrec.transaction_summaries") == 2 * per_topic, 40,
                 what="every window summarized")
        self.assertEqual({(r[0], r[1]): list(r[2:]) for r in self.sql(
            "SELECT item_id, to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), succeeded, failed, volume "
            "FROM streamrec.transaction_summaries")}, windows)
        # A dropped source's writer row goes with the launcher's next tick.
        self.sql("SELECT streamrec.drop_source('it_behind')")
        wait_for(lambda: self.sql("SELECT writer FROM streamrec.pipeline_writers") == [("it_ahead",)], 20,
                 what="the dropped source's writer row deleted")

    def test_bad_input_is_dead_lettered_and_the_rest_applies(self):
        self.sql("INSERT INTO streamrec.inventory (product_id, stock) VALUES ('a', 1)")
        self.enable()
        messages = [
            "1,a,2,2024-06-28 13:00:00",
            "2,a,lots,2024-06-28 13:00:01",         # quantity not an integer
            "3,,1,2024-06-28 13:00:02",             # item_id NULL
            "4,a,99999999999,2024-06-28 13:00:03",  # out of range for int
            "5,a,-1,yesterday-ish",                 # bad timestamp
            "6,a,-3,2024-06-28 13:00:05",
        ]
        kcat_produce(self.sandbox.bootstrap, "it.bad", messages)
        self.source("it_bad", "it.bad")
        wait_for(lambda: self.value("SELECT next_offset FROM streamrec.source_offsets WHERE source = 'it_bad'") == 6,
                 30, what="offsets past every message")
        self.assertEqual(self.sql("SELECT transaction_id, success, stock_after FROM streamrec.transaction_results "
                                  "ORDER BY transaction_id"), [(1, True, 3), (6, True, 0)])
        self.assertEqual(self.sql("SELECT \"offset\" FROM streamrec.dead_letters WHERE source = 'it_bad' "
                                  "ORDER BY 1"), [(1,), (2,), (3,), (4,)])
        self.assertEqual(self.value("SELECT stock FROM streamrec.inventory WHERE product_id = 'a'"), 0)

    def test_two_sources_and_a_psql_updater_never_go_negative_or_lose_an_update(self):
        items = [f"c{i}" for i in range(20)]
        self.sql("INSERT INTO streamrec.inventory (product_id, stock) SELECT 'c' || g, 50 FROM generate_series(0, 19) g")
        self.enable()
        per_topic = 30_000
        streams = {}
        for topic, offset in (("it.conc.a", 0), ("it.conc.b", per_topic)):
            lines = []
            for n in range(per_topic):
                t = offset + n
                item = items[(t * 7 + n // 3) % len(items)]
                q = (-1 - (t % 9)) if t % 3 else 1 + (t % 13)  # mostly debits: stock runs dry often
                lines.append((item, f"{t},{item},{q},2024-06-28 13:00:{(n // 1000) % 60:02d}"))
            produce(self.sandbox.bootstrap, topic, lines)
            streams[topic] = lines
        # The psql updater: restocks by hand while both workers debit the same rows.
        script = "".join(f"UPDATE streamrec.inventory SET stock = stock + 5 WHERE product_id = '{items[i % 20]}';\n"
                         f"SELECT pg_sleep(0.002);\n" for i in range(1500))
        env = dict(os.environ, **self.cluster.psql_env())
        psql = subprocess.Popen([os.path.join(self.cluster.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                                 "-c", "SET application_name = 'updater'", "-f", "-"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True)
        self.source("conc_a", "it.conc.a", options={"batch_size": 500})
        self.source("conc_b", "it.conc.b", options={"batch_size": 500})
        psql.communicate(script, timeout=300)
        self.assertEqual(psql.returncode, 0)
        self.wait_count("streamrec.transaction_results", 2 * per_topic, timeout=240)
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.dead_letters"), 0)
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.transaction_results WHERE stock_after < 0"), 0)
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.inventory WHERE stock < 0"), 0)
        # No lost update: the final stock is the start, plus every successful change, plus psql's.
        applied = dict(self.sql("SELECT item_id, sum(quantity) FILTER (WHERE success) FROM "
                                "streamrec.transaction_results GROUP BY item_id"))
        final = dict(self.sql("SELECT product_id, stock FROM streamrec.inventory"))
        for i, item in enumerate(items):
            by_hand = 5 * len(range(i, 1500, 20))
            self.assertEqual(final[item], 50 + (applied.get(item) or 0) + by_hand, item)
        failed = self.value("SELECT count(*) FROM streamrec.transaction_results WHERE NOT success")
        self.assertGreater(failed, 1000)  # the stock really ran dry while both wrote

    def run_blocked_batch(self, values):
        """Starts `INSERT INTO item_transactions VALUES <values>` in a thread and returns once it
        waits for a row lock; join() the returned thread for its outcome."""
        conn = self.cluster.connect()
        pid = conn.get_backend_pid()
        outcome = {}

        def run():
            try:
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO streamrec.item_transactions VALUES {values}")
            except Exception as e:  # reported by the test thread
                outcome["error"] = e
            finally:
                conn.close()
        thread = threading.Thread(target=run)
        thread.start()
        wait_for(lambda: self.value("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)),
                 30, what="the batch waiting for a row lock")
        return thread, outcome

    def test_two_batches_creating_the_same_item_at_once_both_succeed(self):
        """The inventory is keyed state (pg/keyed_table): a batch takes the table's writer lock
        before it probes, so a second batch that finds the same new item waits for the first and
        then sees its row, instead of inserting the item a second time."""
        self.enable()
        ts = "'2024-06-28 13:00:00+00'"
        first = self.cluster.connect(autocommit=False)
        try:
            with first.cursor() as cur:
                cur.execute(f"INSERT INTO streamrec.item_transactions VALUES (1, 'n', 5, {ts}), (2, 'm', 1, {ts})")
            # The second batch waits on the writer lock (an advisory lock keyed by the table).
            batch, outcome = self.run_blocked_batch(f"(3, 'n', 3, {ts}), (4, 'o', 2, {ts}), (5, 'n', -9, {ts})")
            self.assertEqual(self.value(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND objid = 'streamrec.inventory'::regclass::oid AND objsubid = 2"), 1)
            first.commit()
            batch.join(30)
            self.assertFalse(batch.is_alive())
            self.assertNotIn("error", outcome)
        finally:
            first.close()
        self.assertEqual(self.sql("SELECT transaction_id, success, stock_after FROM streamrec.transaction_results "
                                  "ORDER BY 1"),
                         [(1, True, 5), (2, True, 1), (3, True, 8), (4, True, 2), (5, False, 8)])
        self.assertEqual(self.sql("SELECT product_id, stock FROM streamrec.inventory ORDER BY 1"),
                         [("m", 1), ("n", 8), ("o", 2)])

        # Under REPEATABLE READ, an item created after the transaction's snapshot cannot be
        # created again: a serialization failure, as INSERT ... ON CONFLICT gives.
        late = self.cluster.connect(autocommit=False)
        try:
            with late.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute("SELECT count(*) FROM streamrec.inventory")  # takes the snapshot
                self.sql(f"INSERT INTO streamrec.item_transactions VALUES (6, 'p', 4, {ts})")
                with self.assertRaises(psycopg2.Error) as caught:
                    cur.execute(f"INSERT INTO streamrec.item_transactions VALUES (7, 'p', 1, {ts})")
                self.assertEqual(caught.exception.pgcode, "40001")
            late.rollback()
        finally:
            late.close()
        self.assertEqual(self.value("SELECT stock FROM streamrec.inventory WHERE product_id = 'p'"), 4)

    def test_a_batch_waits_for_rows_deleted_renamed_or_updated_meanwhile(self):
        self.sql("INSERT INTO streamrec.inventory (product_id, stock) VALUES ('d', 10), ('k', 10), ('r', 10), ('u', 10)")
        self.enable()
        ts = "'2024-06-28 13:00:00+00'"
        holder = self.cluster.connect(autocommit=False)
        try:
            with holder.cursor() as cur:
                cur.execute("DELETE FROM streamrec.inventory WHERE product_id = 'd'")
                cur.execute("UPDATE streamrec.inventory SET product_id = 'k2' WHERE product_id = 'k'")
                cur.execute("UPDATE streamrec.inventory SET stock = 20 WHERE product_id = 'u'")
            # Items lock in byte order d, k, r, u: the batch waits on 'd' first.
            batch, outcome = self.run_blocked_batch(
                f"(1, 'd', -1, {ts}), (2, 'k', -1, {ts}), (3, 'u', -15, {ts}), (4, 'r', -1, {ts}), (5, 'd', 4, {ts})")
            holder.commit()
            batch.join(30)
            self.assertFalse(batch.is_alive())
            self.assertNotIn("error", outcome)
            # Deleted: unknown (the debit fails, the restock creates it anew); renamed: unknown
            # ('k' is gone, its row is 'k2's now); updated: the committed 20.
            self.assertEqual(self.sql("SELECT transaction_id, success, stock_after FROM streamrec.transaction_results "
                                      "ORDER BY 1"),
                             [(1, False, None), (2, False, None), (3, True, 5), (4, True, 9), (5, True, 4)])
            self.assertEqual(self.sql("SELECT product_id, stock FROM streamrec.inventory ORDER BY 1"),
                             [("d", 4), ("k2", 10), ("r", 9), ("u", 5)])

            # A delete that rolls back: the row was there all along.
            with holder.cursor() as cur:
                cur.execute("DELETE FROM streamrec.inventory WHERE product_id = 'r'")
            batch, outcome = self.run_blocked_batch(f"(6, 'r', -2, {ts})")
            holder.rollback()
            batch.join(30)
            self.assertNotIn("error", outcome)
            self.assertEqual(self.sql("SELECT success, stock_after FROM streamrec.transaction_results "
                                      "WHERE transaction_id = 6"), [(True, 7)])
            self.assertEqual(self.value("SELECT stock FROM streamrec.inventory WHERE product_id = 'r'"), 7)

            # A lock wait cut short (lock_timeout) fails the batch cleanly: nothing applied, nothing
            # leaked, the session goes on.
            with holder.cursor() as cur:
                cur.execute("UPDATE streamrec.inventory SET stock = 1 WHERE product_id = 'u'")
            conn = self.cluster.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute("SET lock_timeout = '200ms'")
                    with self.assertRaises(psycopg2.Error) as caught:
                        cur.execute(f"INSERT INTO streamrec.item_transactions VALUES (7, 'r', -1, {ts}), (8, 'u', -1, {ts})")
                    self.assertEqual(caught.exception.pgcode, "55P03")
                    cur.execute("SELECT stock FROM streamrec.inventory WHERE product_id = 'r'")
                    self.assertEqual(cur.fetchone()[0], 7)
            finally:
                conn.close()
            holder.rollback()
            self.assertEqual(self.value("SELECT count(*) FROM streamrec.transaction_results WHERE transaction_id >= 7"), 0)
            self.assertEqual(self.sql("SELECT product_id, stock FROM streamrec.inventory ORDER BY 1"),
                             [("d", 4), ("k2", 10), ("r", 7), ("u", 5)])
            self.assertNotRegex(self.cluster.log_text(), r"leak|still (pinned|active)")
        finally:
            holder.close()
