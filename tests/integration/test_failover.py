"""High availability by a hot standby, and lookups served by it. A primary streams its WAL to a
hot standby (through a replication slot); item_transactions runs on the primary from a csv
source of 200,000 messages in 8 partitions, with its results on an output topic. Mid-stream the
primary is lost at once (kill -9 of every process, the postmaster first), the standby is
promoted, and its launcher starts the source and the sink: the tables end exactly as a
sequential model says (rows, stock, offsets, every window summarized) and the topic holds every
expected message at least once and nothing else. With synchronous replication the messages
produced twice are at most the sink's window of unacknowledged batches. While in recovery no
pg_streamrec worker runs on the standby, and the lookups answer there as on the primary."""

import json
import time
import unittest

from confluent_kafka import Consumer, TopicPartition

from harness import (BUILD, REPLICATION_SETTINGS, Cluster, datagen, lose_server, make_standby, promote,
                     wait_for, wait_for_replay)
from test_item_transactions import Model, csv_bool

MESSAGES = 200_000
PRODUCTS = 2000
SEED = 11
PARTITIONS = 8
OUT_PARTITIONS = 4
SOURCE_BATCH = 2000
SINK_BATCH = 1000
# worker/sink_worker.cpp: the sink keeps kWindowBatches batches in flight (batch_size rows each,
# the last read may pass batch_size by one outbox chunk less one row, kChunkRows of
# extension/sink_capture.cpp). A failover re-sends at most those.
SINK_WINDOW_BATCHES = 4
OUTBOX_CHUNK_ROWS = 1000
SINK_WINDOW = SINK_WINDOW_BATCHES * SINK_BATCH + OUTBOX_CHUNK_ROWS - 1


def all_messages(bootstrap, topic, partitions, timeout=120):
    """Every message of the topic now (up to each partition's high watermark): (key, value)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"failover-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions) if ends[p] > 0])
        out, positions = [], {p: 0 for p in range(partitions)}
        deadline = time.monotonic() + timeout
        while any(positions[p] < ends[p] for p in range(partitions)):
            if time.monotonic() > deadline:
                raise AssertionError(f"read {len(out)} messages of {sum(ends.values())} from {topic}")
            for m in consumer.consume(10000, 0.2):
                if m.error() is None and m.offset() < ends[m.partition()]:
                    out.append((m.key(), m.value()))
                    positions[m.partition()] = m.offset() + 1
        return out
    finally:
        consumer.close()


def server_errors(cluster):
    """The server's ERROR, FATAL and PANIC log lines, but the WAL receiver's (it loses its
    primary on purpose here)."""
    return [line for line in cluster.log_text().splitlines()
            if any(level in line for level in (" ERROR: ", " FATAL: ", " PANIC: ")) and " walreceiver " not in line]


def streamrec_backends(cluster):
    return cluster.value("SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pg_streamrec%%'")


class FailoverTest(unittest.TestCase):
    topics = {"fo.async": PARTITIONS, "fo.async.out": OUT_PARTITIONS, "fo.sync": PARTITIONS,
              "fo.sync.out": OUT_PARTITIONS, "fo.drain": PARTITIONS, "fo.drain.out": OUT_PARTITIONS,
              "fo.lookups": 1}

    @classmethod
    def setUpClass(cls):
        from sandbox import Sandbox
        cls.sandbox = Sandbox(BUILD, topics=cls.topics).start()
        cls.expected, cls.stock, cls.windows = cls.model()
        cls.figures = {}

    @classmethod
    def tearDownClass(cls):
        for mode, figures in sorted(cls.figures.items()):
            print(f"\n  failover ({mode}): " + ", ".join(f"{k} {v}" for k, v in figures.items()), end="")
        cls.sandbox.stop()
        cls.sandbox.cleanup()

    @classmethod
    def model(cls):
        """The results of the generated stream applied in order per item: transaction id ->
        (item, quantity, success, stock_after), the final stock, and the summaries."""
        inventory = datagen("inventory", "--products", PRODUCTS, "--seed", SEED).splitlines()
        cls.inventory_csv = "\n".join(inventory) + "\n"
        model = Model({line.split(",")[0]: int(line.split(",")[-2]) for line in inventory})
        expected, windows = {}, {}
        for line in cls.transactions().splitlines():
            t, item, q, ts = line.split(",")
            expected[int(t)] = (item, int(q), *model.apply(item, int(q)))
            ok = expected[int(t)][2]
            w = windows.setdefault((item, ts[:16]), [0, 0, 0])
            w[0 if ok else 1] += 1
            w[2] += abs(int(q)) if ok else 0
        return expected, model.stock, windows

    @staticmethod
    def transactions(*extra):
        return datagen("item_transactions", "--count", MESSAGES, "--products", PRODUCTS, "--seed", SEED,
                       "--fail-ratio", 0.1, "--events-per-second", 5000, *extra)

    def tearDown(self):
        for cluster in getattr(self, "clusters", []):
            cluster.assert_no_crash()
            cluster.destroy()

    def primary_and_standby(self, mode, synchronous):
        settings = dict(REPLICATION_SETTINGS, **{"streamrec.brokers": f"'{self.sandbox.bootstrap}'"})
        if synchronous:
            # Every commit (the source's batch with its offsets and results, the sink's delete of
            # acknowledged rows) returns once the standby has it.
            settings["synchronous_commit"] = "on"
        primary = Cluster(f"fo_primary_{mode}", settings=settings).init().start()
        self.clusters = [primary]
        primary.sql("CREATE EXTENSION pg_streamrec")
        conn = primary.connect()
        try:
            import io
            with conn.cursor() as cur:
                cur.copy_expert("COPY streamrec.inventory (product_id, category, stock, rating) FROM STDIN CSV",
                                io.StringIO(self.inventory_csv))
        finally:
            conn.close()
        standby = make_standby(primary, f"fo_standby_{mode}", synchronous=synchronous)
        self.clusters.append(standby)
        return primary, standby

    def run_failover(self, mode, synchronous, sink_drains=False):
        """sink_drains: the server is lost while only the sink writes (it was paused until the
        source stored everything), not while the stream flows."""
        topic, out = f"fo.{mode}", f"fo.{mode}.out"
        primary, standby = self.primary_and_standby(mode, synchronous)
        primary.sql("SELECT streamrec.enable_pipeline('item_transactions', %s)",
                    (json.dumps({"output_topic": out, "output_options": {"batch_size": SINK_BATCH},
                                 "idle_timeout": "2 seconds"}),))
        if sink_drains:
            primary.sql("SELECT streamrec.pause_sink('pipeline_item_transactions')")
        self.transactions("--topic", topic, "--brokers", self.sandbox.bootstrap)
        primary.sql("SELECT streamrec.create_source('fo', %s, 'streamrec.item_transactions', 'csv', NULL, %s)",
                    (topic, json.dumps({"batch_size": SOURCE_BATCH})))

        if sink_drains:
            wait_for(lambda: primary.value("SELECT count(*) FROM streamrec.transaction_results") >= MESSAGES, 240,
                     interval=0.1, what="every transaction stored")
            primary.sql("SELECT streamrec.resume_sink('pipeline_item_transactions')")
            wait_for(lambda: (primary.value("SELECT produced FROM streamrec.sink_stats") or 0) >= MESSAGES // 4, 120,
                     interval=0.02, what="sink under way")
            self.assertGreater(primary.value("SELECT sum(rows) FROM streamrec.sink_outbox"), 0,
                               "the sink finished before the loss; nothing was tested")
        else:
            # Mid-stream: results stored and some of them produced, the standby replaying.
            wait_for(lambda: primary.value("SELECT count(*) FROM streamrec.transaction_results") >= MESSAGES // 4,
                     120, interval=0.05, what="stream under way")
            wait_for(lambda: primary.value("SELECT produced FROM streamrec.sink_stats") > 0, 60, interval=0.05,
                     what="sink under way")
        self.assertEqual(streamrec_backends(standby), 0, "a pg_streamrec worker runs on the standby")
        lost_at_results = primary.value("SELECT count(*) FROM streamrec.transaction_results")
        if not sink_drains:
            self.assertLess(lost_at_results, MESSAGES, "stream finished before the loss; nothing was tested")
        lose_server(primary)

        self.assertEqual(streamrec_backends(standby), 0, "a pg_streamrec worker runs on the standby")
        replicated = standby.value("SELECT count(*) FROM streamrec.transaction_results")
        offsets_before = standby.value("SELECT coalesce(sum(next_offset), 0) FROM streamrec.source_offsets")
        started = time.monotonic()
        promote(standby)
        promoted = time.monotonic()
        if not sink_drains:
            wait_for(lambda: standby.value("SELECT coalesce(sum(next_offset), 0) FROM streamrec.source_offsets")
                     > offsets_before, 60, interval=0.02, what="the source resuming on the new primary")
        resumed = time.monotonic()
        wait_for(lambda: (standby.value("SELECT produced FROM streamrec.sink_stats") or 0) > 0, 60, interval=0.02,
                 what="the sink resuming on the new primary")
        sink_resumed = time.monotonic()
        wait_for(lambda: standby.value("SELECT count(*) FROM streamrec.transaction_results") >= MESSAGES, 240,
                 interval=0.2, what="every transaction stored on the new primary")

        # Tables: exactly the sequential model, every window summarized, offsets at the end.
        time.sleep(0.3)  # a duplicate would show now
        stored = {r[0]: r[1:] for r in standby.sql(
            "SELECT transaction_id, item_id, quantity, success, stock_after FROM streamrec.transaction_results")}
        self.assertEqual(standby.value("SELECT count(*) FROM streamrec.transaction_results"), MESSAGES)
        self.assertEqual(stored, self.expected)
        self.assertEqual(dict(standby.sql("SELECT product_id, stock FROM streamrec.inventory")), self.stock)
        ends = self.partition_ends(topic)
        self.assertEqual(dict(standby.sql("SELECT partition, next_offset FROM streamrec.source_offsets")), ends)
        self.assertEqual(sum(ends.values()), MESSAGES)
        self.assertEqual(standby.value("SELECT count(*) FROM streamrec.dead_letters"), 0)
        wait_for(lambda: standby.value("SELECT sum(succeeded + failed) FROM streamrec.transaction_summaries")
                 == MESSAGES, 60, what="every window summarized")
        self.assertEqual({(r[0], r[1]): list(r[2:]) for r in standby.sql(
            "SELECT item_id, to_char(window_start, 'YYYY-MM-DD HH24:MI'), succeeded, failed, volume "
            "FROM streamrec.transaction_summaries")}, self.windows)

        # Topic: every expected message at least once, nothing else.
        wait_for(lambda: standby.value("SELECT count(*) FROM streamrec.sink_outbox") == 0, 120,
                 what="the outbox drained")
        messages = all_messages(self.sandbox.bootstrap, out, OUT_PARTITIONS)
        expected = {(item.encode(), f"{t},{item},{q},{csv_bool(ok)},{'' if after is None else after}".encode())
                    for t, (item, q, ok, after) in self.expected.items()}
        self.assertEqual(set(messages) - expected, set(), "unexpected messages on the topic")
        self.assertEqual(expected - set(messages), set(), "expected messages missing from the topic")
        resent = len(messages) - len(expected)
        self.assertEqual(server_errors(standby), [])
        self.figures[mode] = {
            "stored at the loss": lost_at_results, "replicated": replicated,
            "promote (s)": f"{promoted - started:.2f}",
            "source resumed (s)": "-" if sink_drains else f"{resumed - started:.2f}",
            "sink resumed (s)": f"{sink_resumed - started:.2f}", "re-sent": resent}
        return resent

    def partition_ends(self, topic):
        consumer = Consumer({"bootstrap.servers": self.sandbox.bootstrap, "group.id": "failover-ends"})
        try:
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in range(PARTITIONS)}
        finally:
            consumer.close()

    def test_asynchronous_standby_takes_over_exactly_once_into_tables(self):
        # Whatever the replication lag, the offsets replicate with the rows: the new primary goes
        # on from the last batch the standby received, and its sink sends the results the old
        # primary's sink had not seen acknowledged and deleted on the standby.
        self.run_failover("async", synchronous=False)

    def test_synchronous_standby_resends_at_most_the_sink_window(self):
        resent = self.run_failover("sync", synchronous=True)
        self.assertLessEqual(resent, SINK_WINDOW)

    def test_synchronous_standby_lost_while_the_sink_drains_resends_at_most_its_window(self):
        # Only the sink commits here: its deletes of acknowledged rows must themselves wait for
        # the standby, or the last of them are lost with the server and sent again.
        resent = self.run_failover("drain", synchronous=True, sink_drains=True)
        self.assertLessEqual(resent, SINK_WINDOW)

    def test_lookups_on_the_hot_standby_equal_the_primary(self):
        primary, standby = self.primary_and_standby("lookups", synchronous=False)
        for name in ("similar_products", "trending", "category_affinity"):
            primary.sql("SELECT streamrec.enable_pipeline(%s)", (name,))
        primary.sql("INSERT INTO streamrec.purchases (user_id, product_id) "
                    "SELECT 'user-' || i, (i * 7 %% %s)::text FROM generate_series(1, 300) i", (PRODUCTS,))
        primary.sql("COPY streamrec.clicks (click_id, user_id, product_id, event_type, query, event_time) "
                    "FROM PROGRAM %s CSV",
                    (f"{BUILD}/streamrec-datagen clicks --quiet --count 20000 --users 300 --products {PRODUCTS} "
                     f"--seed {SEED}",))
        wait_for_replay(primary, standby)
        users = [f"user-{i}" for i in range(1, 300, 7)]
        lookups = {
            "recommend": ("SELECT u, streamrec.recommend(u, (u_n * 13 %% %s)::text) FROM "
                          "(SELECT u, substr(u, 6)::int AS u_n FROM unnest(%s::text[]) u) x ORDER BY u",
                          (PRODUCTS, users)),
            "user_recommendations": ("SELECT * FROM streamrec.user_recommendations ORDER BY user_id", None),
            "recommendations": ("SELECT user_id, product_ids, viewed_product_id, category, window_end "
                                "FROM streamrec.recommendations ORDER BY user_id", None),
            "trending": ("SELECT * FROM streamrec.trending ORDER BY window_start, rank", None),
        }
        for name, (query, params) in lookups.items():
            on_primary = primary.sql(query, params)
            self.assertTrue(on_primary, name)
            self.assertEqual(standby.sql(query, params), on_primary, name)
        self.assertEqual(streamrec_backends(standby), 0)

        # In one standby session: a product taken out of stock on the primary leaves the next
        # lookup once replayed (what the session kept of the inventory is not used any longer).
        conn = standby.connect()
        try:
            with conn.cursor() as cur:
                for _ in range(3):  # the second lookup keeps the inventory, the third uses it
                    cur.execute("SELECT streamrec.recommend('user-8', '104')")
                    before = cur.fetchone()[0]
                self.assertTrue(before)
                primary.sql("UPDATE streamrec.inventory SET stock = 0 WHERE product_id = %s", (before[0],))
                wait_for_replay(primary, standby)
                cur.execute("SELECT streamrec.recommend('user-8', '104')")
                after = cur.fetchone()[0]
        finally:
            conn.close()
        self.assertNotIn(before[0], after)
        self.assertEqual(after, primary.value("SELECT streamrec.recommend('user-8', '104')"))
        self.assertEqual(server_errors(standby), [])


if __name__ == "__main__":
    unittest.main()
