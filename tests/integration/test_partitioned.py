"""Partition-parallel servers: three databases share keyed topics by fixed partitions
(streamrec.assign_partitions), each with the keyed state of its own keys, and their results, put
together, are per key those of one database that consumes every partition of the same input:
similar_products (clicks and purchases keyed by user), attribution (clicks and checkouts keyed by
user) and item_transactions (transactions and stock queries keyed by item), result tables and
output topics byte for byte. Trending counts per product across users: each server holds a
partial count, and the sum over the servers is the single server's count. Also: the function's
refusals, the refusal of group_id on a source that feeds a pipeline (from both sides), and
tools/cluster up/status/down (with standbys)."""

import collections
import datetime
import io
import json
import os
import random
import subprocess
import tempfile
import time
import unittest

import psycopg2
from confluent_kafka import Consumer, Producer, TopicPartition

import harness
from harness import BUILD, Cluster, ClusterTestCase, wait_for
from sandbox import Sandbox

PARTITIONS = 6
SERVERS = 3
T0 = datetime.datetime(2024, 6, 28, 13, 0, 0, tzinfo=datetime.timezone.utc)
INPUTS = ("clicks", "purchases", "checkouts", "transactions", "queries")
OUTPUTS = ("recs", "attributed", "results", "answers")
# (topic suffix, target table), in the order the sources start: each input is consumed in full
# on every server before the next starts, so what a result depends on arrived before it on the
# single server and on the three alike (purchases before the views they rank, clicks before the
# checkouts they attribute, transactions before the stock queries).
PHASES = (("purchases", "streamrec.purchases"), ("clicks", "streamrec.clicks"), ("checkouts", "streamrec.checkouts"),
          ("transactions", "streamrec.item_transactions"), ("queries", "streamrec.stock_queries"))

USERS = 60
PRODUCTS = 40
CATEGORIES = 5
ITEMS = 30


def at(seconds):
    return (T0 + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S+00")


def dimensions():
    """inventory (product_id,name,category,stock,rating) and users, loaded alike on every server."""
    rng = random.Random(15)
    inventory = [f"p{i},product {i},cat{i % CATEGORIES},{rng.choice([0, 1, 3, 8])},{rng.randint(10, 50) / 10}"
                 for i in range(PRODUCTS)]
    return inventory, [f"user-{u},User {u}" for u in range(USERS)]


def generate(round_number):
    """One round of input, the same for every run: {suffix: [(key, csv value)]}. The second round
    comes later in event time: its checkouts may be attributed to the first round's clicks, and
    its transactions fall in windows of their own."""
    rng = random.Random(15 + round_number)
    r = round_number
    data = {name: [] for name in INPUTS}
    for i in range(300):
        user = f"user-{rng.randrange(USERS)}"
        data["purchases"].append((user, f"inv{r * 300 + i},{user},p{rng.randrange(PRODUCTS)},{rng.randint(1, 3)},"
                                        f"{rng.randint(100, 9999) / 100},{at(r * 1800 + i - 3600)}"))
    for i in range(1500):
        user = f"user-{rng.randrange(USERS)}"
        product = f"p{rng.randrange(PRODUCTS)}" if rng.random() < 0.97 else "p-unknown"
        kind = "page_view" if rng.random() < 0.9 else "add_to_cart"
        data["clicks"].append((user, f"c{r * 1500 + i},{user},{product},{kind},,{at(r * 1800 + i)}"))
    for j in range(300):
        user = f"user-{rng.randrange(USERS)}"
        data["checkouts"].append((user, f"k{r * 300 + j},{user},p{rng.randrange(PRODUCTS)},card,"
                                        f"{rng.randint(100, 9999) / 100},{at(r * 1200 + rng.randrange(1500 + r * 600))}"))
    for t in range(1500):
        item = f"item-{rng.randrange(ITEMS)}"
        data["transactions"].append((item, f"{r * 1500 + t},{item},{rng.randint(-9, 8)},{at(r * 1200 + t * 0.4)}"))
    for q in range(200):
        item = f"item-{rng.randrange(ITEMS + 5)}"  # some never created: NULL stock
        data["queries"].append((item, f"{r * 200 + q},{item}"))
    return data


def produce_keyed(bootstrap, topic, messages):
    """Keyed messages, each to the partition the Java clients' partitioner (murmur2) gives its
    key, as a keyed producer of a real deployment would; waits for every delivery."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                         "partitioner": "murmur2_random"})
    failures = []
    for key, value in messages:
        producer.produce(topic, key=key, value=value, on_delivery=lambda err, _m: err and failures.append(err))
    assert producer.flush(30) == 0 and not failures, failures[:3]


def read_topic(bootstrap, topic, count, timeout=60):
    """Every message of the topic: {key: [value, ...]} in offset order (a key has one partition)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        messages = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(10000, 0.2) if m.error() is None]
        messages += [m for m in consumer.consume(10000, 0.5) if m.error() is None]  # anything extra shows
        per_key = collections.defaultdict(list)
        for m in sorted(messages, key=lambda m: (m.partition(), m.offset())):
            per_key[m.key()].append(m.value())
        return dict(per_key)
    finally:
        consumer.close()


def high_watermarks(bootstrap, topic):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hw-{time.monotonic_ns()}"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)]
    finally:
        consumer.close()


# Result tables compared per key, without the columns that hold the wall-clock time of writing.
RESULTS = {
    "recommendations": "SELECT user_id, product_ids, viewed_product_id, category, window_end FROM streamrec.recommendations",
    "recommendation_log": "SELECT user_id, product_ids, window_end, viewed_product_id, category "
                          "FROM streamrec.recommendation_log ORDER BY id",
    "user_purchases": "SELECT user_id, product_id, quantity, purchases, last_purchase_time FROM streamrec.user_purchases",
    "user_recommendations": "SELECT user_id, product_ids FROM streamrec.user_recommendations",
    "attributed_checkouts": "SELECT user_id, checkout_id, user_name, product_id, checkout_time, click_id, click_time "
                            "FROM streamrec.attributed_checkouts",
    "attribution_log": "SELECT user_id, checkout_id, user_name, product_id, checkout_time, click_id, click_time "
                       "FROM streamrec.attribution_log ORDER BY id",
    "transaction_results": "SELECT item_id, transaction_id, quantity, success, stock_after, ts "
                           "FROM streamrec.transaction_results ORDER BY transaction_id",
    "query_results": "SELECT item_id, query_id, stock FROM streamrec.query_results ORDER BY query_id",
    "transaction_summaries": "SELECT item_id, window_start, succeeded, failed, volume FROM streamrec.transaction_summaries",
    "transaction_alerts": "SELECT item_id, window_start, window_end, succeeded, failed, volume "
                          "FROM streamrec.transaction_alerts",
    "item_stock": "SELECT product_id, stock, category FROM streamrec.inventory WHERE product_id LIKE 'item-%%'",
}
# Logs are compared in their order per key; the other tables as sets of rows per key.
ORDERED = {"recommendation_log", "attribution_log", "transaction_results", "query_results"}


def per_key(rows, ordered):
    grouped = collections.defaultdict(list)
    for row in rows:
        grouped[row[0]].append(row)
    return {key: (group if ordered else sorted(group, key=repr)) for key, group in grouped.items()}


class PartitionParallelTest(unittest.TestCase):
    """Three servers over the partitions of every topic (the third joins mid-stream), and one
    that reads them all."""
    ends = {}  # each topic's end offsets once produced

    @classmethod
    def setUpClass(cls):
        topics = {f"{run}.{name}": PARTITIONS for run in ("p", "s") for name in INPUTS + OUTPUTS}
        cls.sandbox = Sandbox(BUILD, topics=topics).start()
        settings = {"streamrec.brokers": f"'{cls.sandbox.bootstrap}'", "streamrec.max_workers": 16}
        cls.servers = []
        cls.single = None
        try:
            cls.servers = [Cluster(f"server{i}", settings=settings).init().start() for i in range(SERVERS)]
            cls.single = Cluster("single", settings=settings).init().start()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for cluster in cls.servers + ([cls.single] if cls.single else []):
                cluster.assert_no_crash()
        finally:
            for cluster in cls.servers + ([cls.single] if cls.single else []):
                cluster.destroy()
            cls.sandbox.stop()
            cls.sandbox.cleanup()

    def prepare(self, cluster, run, inventory, users):
        """The extension, identical dimensions, and the pipelines with their output topics."""
        cluster.sql("CREATE EXTENSION pg_streamrec")
        conn = cluster.connect()
        try:
            with conn.cursor() as cur:
                cur.copy_expert("COPY streamrec.inventory (product_id, name, category, stock, rating) FROM STDIN CSV",
                                io.StringIO("\n".join(inventory) + "\n"))
                cur.copy_expert("COPY streamrec.users (user_id, name) FROM STDIN CSV", io.StringIO("\n".join(users) + "\n"))
                for name, options in (
                        ("similar_products", {"output_topic": f"{run}.recs"}),
                        ("attribution", {"output_topic": f"{run}.attributed"}),
                        # Windows close when the stream has been idle, not by a watermark that a
                        # partition read ahead of another could push past their events.
                        ("item_transactions", {"output_topic": f"{run}.results", "query_output_topic": f"{run}.answers",
                                               "watermark_delay": "1 day", "idle_timeout": "15 seconds",
                                               "alert_min_transactions": 3, "alert_failure_ratio": 0.3}),
                        ("trending", {"window": "10 minutes", "top_n": 5}),
                        ("category_affinity", {})):
                    cur.execute("SELECT streamrec.enable_pipeline(%s, %s)", (name, json.dumps(options)))
        finally:
            conn.close()

    def caught_up(self, cluster, source, topic):
        """Whether the source stored, for each partition it reads, the topic's end offset."""
        mine = cluster.value("SELECT options -> 'partitions' FROM streamrec.sources WHERE name = %s", (source,))
        stored = dict(cluster.sql("SELECT partition, next_offset FROM streamrec.source_offsets WHERE source = %s",
                                  (source,)))
        return all(stored.get(p, 0) == self.ends[topic][p] for p in mine)

    def create_sources(self, cluster, run, index, count, paused=False):
        """One statement per topic and server: a source over the partitions the rule gives it (in
        one transaction with its pause when it must not start yet)."""
        conn = cluster.connect(autocommit=False)
        try:
            with conn, conn.cursor() as cur:
                for suffix, table in PHASES:
                    cur.execute("SELECT streamrec.create_source(%s, %s, %s, 'csv', NULL, "
                                "jsonb_build_object('partitions', streamrec.assign_partitions(%s, %s, %s, %s)))",
                                (suffix, f"{run}.{suffix}", table, index, count, f"{run}.{suffix}", PARTITIONS))
                    if paused:
                        cur.execute("SELECT streamrec.pause_source(%s)", (suffix,))
        finally:
            conn.close()

    def play(self, data, runs):
        """Each input in turn, on every run's topics, until every server stored it (what a result
        depends on arrived before it on the single server and on the three alike: purchases
        before the views they rank, clicks before the checkouts they attribute, transactions
        before the stock queries); then every window closes (idle_timeout)."""
        for suffix, _ in PHASES:
            for run in ("p", "s"):
                produce_keyed(self.sandbox.bootstrap, f"{run}.{suffix}", data[suffix])
                self.ends[f"{run}.{suffix}"] = high_watermarks(self.sandbox.bootstrap, f"{run}.{suffix}")
            for cluster, run in runs:
                wait_for(lambda: self.caught_up(cluster, suffix, f"{run}.{suffix}"), 120,
                         what=f"{cluster.name} to consume its partitions of {run}.{suffix}")
        for cluster, _ in runs:
            wait_for(lambda: cluster.value("SELECT (SELECT coalesce(sum(succeeded + failed), 0) "
                                           "FROM streamrec.transaction_summaries) = "
                                           "(SELECT count(*) FROM streamrec.transaction_results)"), 90,
                     what=f"{cluster.name}'s windows summarized")

    def move_partition(self, old, new, partition):
        """Partition `partition` of every input topic, from the server `old` to `new`, both with
        their sources paused: the offsets the old owner stored, and the rows of the partition's
        keys in every keyed table (streamrec.partition_keyed_tables), copied without firing the
        pipelines or the sinks on the new owner (session_replication_role = replica) and deleted
        on the old one (a dimension's rows stay there)."""
        for source, next_offset in old.sql("SELECT source, next_offset FROM streamrec.source_offsets "
                                           "WHERE partition = %s", (partition,)):
            new.sql("INSERT INTO streamrec.source_offsets (source, partition, next_offset) VALUES (%s, %s, %s) "
                    "ON CONFLICT (source, partition) DO UPDATE SET next_offset = excluded.next_offset",
                    (source, partition, next_offset))
            old.sql("DELETE FROM streamrec.source_offsets WHERE source = %s AND partition = %s", (source, partition))
        tables = old.sql("SELECT rel::text, quote_ident(key_column), dimension FROM streamrec.partition_keyed_tables()")
        for rel, key, dimension in tables:
            # Every column but a serial id (the new owner numbers the rows after its own, in order).
            columns, serial = [], None
            for column, default in old.sql("SELECT quote_ident(attname), pg_get_expr(adbin, adrelid) FROM pg_attribute "
                                           "LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum "
                                           "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
                                           "ORDER BY attnum", (rel,)):
                if default and default.startswith("nextval("):
                    serial = column
                else:
                    columns.append(column)
            keys = f"streamrec.kafka_partition({key}, {PARTITIONS}) = {int(partition)}"
            rows = io.StringIO()
            source_conn = old.connect()
            try:
                with source_conn.cursor() as cur:
                    cur.copy_expert(f"COPY (SELECT {', '.join(columns)} FROM {rel} WHERE {keys}"
                                    f"{f' ORDER BY {serial}' if serial else ''}) TO STDOUT", rows)
            finally:
                source_conn.close()
            rows.seek(0)
            for cluster, copy_in in ((new, True), (old, False)):
                if not copy_in and dimension:
                    continue
                conn = cluster.connect(autocommit=False)
                try:
                    with conn, conn.cursor() as cur:
                        cur.execute("SET LOCAL session_replication_role = replica")
                        cur.execute(f"DELETE FROM {rel} WHERE {keys}")
                        if copy_in:
                            cur.copy_expert(f"COPY {rel} ({', '.join(columns)}) FROM STDIN", rows)
                finally:
                    conn.close()

    def add_server(self, old_count, new_count):
        """The documented procedure: from old_count servers to new_count (the new ones prepared
        and idle), moving each partition whose owner changes with its keyed state."""
        old_servers = self.servers[:old_count]
        # 1. Every source stops (paused: its worker ends before its next batch); the new
        #    servers' sources exist, paused, on their partitions of the new layout.
        for cluster in old_servers:
            for (name,) in cluster.sql("SELECT name FROM streamrec.sources"):
                cluster.sql("SELECT streamrec.pause_source(%s)", (name,))
            wait_for(lambda: cluster.value("SELECT count(*) = 0 FROM streamrec.source_stats WHERE pid IS NOT NULL"),
                     60, what=f"{cluster.name}'s source workers to stop")
        for index in range(old_count, new_count):
            self.create_sources(self.servers[index], "p", index, new_count, paused=True)
        # 2. The old owners' sinks ship what they hold, so that a key's results keep their order
        #    on the output topics once its new owner produces.
        for cluster in old_servers:
            wait_for(lambda: cluster.value("SELECT sum(pending) = 0 FROM streamrec.sink_stats"), 90,
                     what=f"{cluster.name}'s sinks to ship")
        # 3. Each partition that changes owner goes with its offsets and keyed state.
        moved = [p for p in range(PARTITIONS) if p % old_count != p % new_count]
        for partition in moved:
            self.move_partition(self.servers[partition % old_count], self.servers[partition % new_count], partition)
        # 4. Every server takes its partitions of the new layout and goes on.
        for index, cluster in enumerate(self.servers[:new_count]):
            for suffix, _ in PHASES:
                cluster.sql("SELECT streamrec.assign_partitions(%s, %s, %s, %s)",
                            (index, new_count, f"p.{suffix}", PARTITIONS))
            for (name,) in cluster.sql("SELECT name FROM streamrec.sources"):
                cluster.sql("SELECT streamrec.resume_source(%s)", (name,))
        return moved

    def test_three_servers_one_added_mid_stream_give_per_key_the_single_servers_results(self):
        inventory, users = dimensions()
        for cluster in self.servers:
            self.prepare(cluster, "p", inventory, users)
        self.prepare(self.single, "s", inventory, users)
        # Round 1: servers 0 and 1 share the partitions (partition p on server p % 2); server 2 waits.
        self.create_sources(self.servers[0], "p", 0, 2)
        self.create_sources(self.servers[1], "p", 1, 2)
        self.create_sources(self.single, "s", 0, 1)
        self.assertEqual(self.single.value("SELECT options -> 'partitions' FROM streamrec.sources WHERE name = 'clicks'"),
                         list(range(PARTITIONS)))
        self.play(generate(0), [(self.servers[0], "p"), (self.servers[1], "p"), (self.single, "s")])
        # Round 2 after server 2 joined: partition p on server p % 3; four partitions move.
        self.assertEqual(self.add_server(2, SERVERS), [2, 3, 4, 5])
        for i, cluster in enumerate(self.servers):
            self.assertEqual(cluster.sql("SELECT DISTINCT options -> 'partitions' FROM streamrec.sources"),
                             [([i, i + SERVERS],)])
        self.play(generate(1), [(cluster, "p") for cluster in self.servers] + [(self.single, "s")])
        total = 2 * 1500
        self.assertEqual(self.single.value("SELECT count(*) FROM streamrec.transaction_results"), total)
        for cluster in self.servers:  # every server took part in round 2
            self.assertGreater(cluster.value("SELECT count(*) FROM streamrec.transaction_results WHERE transaction_id >= 1500"), 0)

        # Result tables: the union of the three servers is, key by key, the single server's; no
        # key has results on two servers (items' stock compared on the server that owns them).
        for name, query in RESULTS.items():
            with self.subTest(table=name):
                expected = per_key(self.single.sql(query), name in ORDERED)
                union = {}
                for index, cluster in enumerate(self.servers):
                    mine = per_key(cluster.sql(query), name in ORDERED)
                    if name == "item_stock":
                        mine = {k: v for k, v in mine.items()
                                if cluster.value("SELECT streamrec.kafka_partition(%s, %s) %% %s", (k, PARTITIONS, SERVERS))
                                == index}
                    self.assertFalse(set(mine) & set(union), f"{name}: keys on two servers")
                    union.update(mine)
                self.assertTrue(expected, f"{name}: the test produced no result")
                self.assertEqual(union, expected)

        # Output topics: every sink shipped its rows; per key, the same messages in the same order.
        for cluster in self.servers + [self.single]:
            wait_for(lambda: cluster.value("SELECT count(*) = 4 AND sum(pending) = 0 AND sum(failed) = 0 "
                                           "FROM streamrec.sink_stats"), 90, what=f"{cluster.name}'s sinks to ship")
        produced = {cluster.name: dict(cluster.sql("SELECT name, produced FROM streamrec.sink_stats"))
                    for cluster in self.servers + [self.single]}
        for suffix, sink in (("recs", "pipeline_similar_products"), ("attributed", "pipeline_attribution"),
                             ("results", "pipeline_item_transactions"),
                             ("answers", "pipeline_item_transactions_queries")):
            with self.subTest(topic=suffix):
                count = produced[self.single.name][sink]
                self.assertEqual(sum(produced[c.name][sink] for c in self.servers), count)
                self.assertEqual(read_topic(self.sandbox.bootstrap, f"p.{suffix}", count),
                                 read_topic(self.sandbox.bootstrap, f"s.{suffix}", count))

        # Trending counts views per product across users: each server holds a partial count of
        # every product; their sum is the single server's count, and ranks like its view.
        merged = collections.Counter()
        for cluster in self.servers:
            for window, product, views in cluster.sql("SELECT window_start, product_id, views FROM streamrec.trending_counts"):
                merged[(window, product)] += views
        self.assertEqual(dict(merged), {(w, p): v for w, p, v in
                                        self.single.sql("SELECT window_start, product_id, views FROM streamrec.trending_counts")})
        ranked = collections.defaultdict(list)
        for (window, product), views in merged.items():
            ranked[window].append((-views, product))
        top = sorted((window, product, -negated, rank + 1) for window, entries in ranked.items()
                     for rank, (negated, product) in enumerate(sorted(entries)[:5]))
        self.assertEqual(top, sorted(self.single.sql("SELECT window_start, product_id, views, rank FROM streamrec.trending")))


class AssignPartitionsTest(ClusterTestCase):
    """streamrec.assign_partitions and the refusal of group_id on a pipeline's input, without a
    broker (the catalog is what is checked; the workers wait for one)."""
    settings = {"streamrec.brokers": "'127.0.0.1:9'"}
    refusals_have_hints = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for statement in ("CREATE ROLE alice LOGIN", "CREATE ROLE bob LOGIN", "GRANT streamrec_admin TO alice",
                          "GRANT INSERT ON streamrec.clicks, streamrec.checkouts TO alice"):
            cls.cluster.sql(statement)

    def setUp(self):
        for (name,) in self.sql("SELECT name FROM streamrec.sources"):
            self.sql("SELECT streamrec.drop_source(%s)", (name,))
        for (name,) in self.sql("SELECT name FROM streamrec.pipeline_catalog WHERE enabled"):
            self.sql("SELECT streamrec.disable_pipeline(%s)", (name,))

    def test_the_rule_and_one_statement_per_topic_and_server(self):
        self.assertEqual(self.value("SELECT streamrec.assign_partitions(1, 3, 'clicks', 6)"), [1, 4])
        self.assertEqual(self.value("SELECT streamrec.assign_partitions(0, 4, 'clicks', 6)"), [0, 4])
        self.assertEqual(self.value("SELECT streamrec.assign_partitions(3, 4, 'clicks', 6)"), [3])
        self.assertEqual(self.value("SELECT streamrec.assign_partitions(0, 1, 'clicks', 3)"), [0, 1, 2])
        # Which partition, so which server, holds a key: Kafka's murmur2("21") is -973932308.
        self.assertEqual(self.value("SELECT streamrec.kafka_partition('21', 7)"), (-973932308 & 0x7fffffff) % 7)
        self.assertEqual(self.value("SELECT streamrec.kafka_partition('21', 1)"), 0)
        # Co-keyed topics: the same partition numbers, whatever the topic.
        self.assertEqual(self.value("SELECT streamrec.assign_partitions(2, 3, 'checkouts', 6)"),
                         self.value("SELECT streamrec.assign_partitions(2, 3, 'clicks', 6)"))
        # Existing sources on the topic take the assignment (their workers restart on it);
        # sources on other topics keep theirs.
        self.sql("SELECT streamrec.create_source('a_clicks', 'clicks', 'streamrec.clicks')")
        self.sql("SELECT streamrec.create_source('b_clicks', 'clicks', 'streamrec.clicks', 'csv', NULL, "
                 "'{\"partitions\": [5], \"batch_size\": 50}')")
        self.sql("SELECT streamrec.create_source('other', 'checkouts', 'streamrec.checkouts')")
        generation = self.value("SELECT generation FROM streamrec.sources WHERE name = 'a_clicks'")
        self.assertEqual(self.value("SELECT streamrec.assign_partitions(1, 2, 'clicks', 6)"), [1, 3, 5])
        self.assertEqual(self.sql("SELECT name, options FROM streamrec.sources ORDER BY name"),
                         [("a_clicks", {"partitions": [1, 3, 5]}),
                          ("b_clicks", {"partitions": [1, 3, 5], "batch_size": 50}), ("other", {})])
        self.assertEqual(self.value("SELECT generation FROM streamrec.sources WHERE name = 'a_clicks'"), generation + 1)
        # An admin assigns the partitions of its own sources only.
        self.as_role("alice", "SELECT streamrec.create_source('alice_clicks', 'clicks', 'streamrec.clicks')")
        self.as_role("alice", "SELECT streamrec.assign_partitions(0, 2, 'clicks', 6)")
        self.assertEqual(self.sql("SELECT name, options -> 'partitions' FROM streamrec.sources WHERE topic = 'clicks' "
                                  "ORDER BY name"),
                         [("a_clicks", [1, 3, 5]), ("alice_clicks", [0, 2, 4]), ("b_clicks", [1, 3, 5])])

    def test_refusals(self):
        for args in ("3, 3, 'clicks', 6", "-1, 3, 'clicks', 6", "NULL, 3, 'clicks', 6", "0, 0, 'clicks', 6",
                     "0, NULL, 'clicks', 6", "0, 3, '', 6", "0, 3, NULL, 6", "0, 3, 'clicks', 0",
                     "0, 3, 'clicks', NULL", "0, 3, 'clicks', 100001", "0, 100001, 'clicks', 6"):
            with self.subTest(args=args):
                self.expect_role_error("postgres", "22023", f"SELECT streamrec.assign_partitions({args})")
        self.expect_role_error("postgres", "22023", "SELECT streamrec.kafka_partition('user-27', 0)")
        self.assertIsNone(self.value("SELECT streamrec.kafka_partition(NULL, 6)"))
        # A server that would own no partition: more servers than partitions.
        e = self.expect_role_error("postgres", "22023", "SELECT streamrec.assign_partitions(4, 5, 'clicks', 4)")
        self.assertIn("unit of parallelism", e.diag.message_detail)
        # Only admins (like create_source).
        e = self.expect_role_error("bob", "42501", "SELECT streamrec.assign_partitions(0, 3, 'clicks', 6)")
        self.assertIn("GRANT streamrec_admin", e.diag.message_hint)
        # A source with group_id on the topic: the options exclude each other; nothing changes.
        self.sql("SELECT streamrec.create_source('grouped', 'clicks', 'streamrec.clicks', 'csv', NULL, "
                 "'{\"group_id\": \"g\"}')")
        self.sql("SELECT streamrec.create_source('plain', 'clicks', 'streamrec.clicks')")
        self.expect_role_error("postgres", "22023", "SELECT streamrec.assign_partitions(0, 3, 'clicks', 6)")
        self.assertEqual(self.value("SELECT options FROM streamrec.sources WHERE name = 'plain'"), {})

    def test_group_id_refused_on_a_pipeline_input_from_both_sides(self):
        self.sql("SELECT streamrec.enable_pipeline('attribution')")
        grouped = "'{\"group_id\": \"shared\"}'"
        # create_source, a direct INSERT, and an ALTER of an existing source (a direct UPDATE).
        e = self.expect_role_error("postgres", "55000", "SELECT streamrec.create_source('g', 'clicks', "
                                   f"'streamrec.clicks', 'csv', NULL, {grouped})")
        self.assertIn("assign_partitions", e.diag.message_hint)
        self.assertIn("attribution", e.pgerror)
        self.expect_role_error("alice", "55000", "INSERT INTO streamrec.sources (name, topic, target, options) "
                               f"VALUES ('g', 'checkouts', 'streamrec.checkouts', {grouped})")
        self.sql("SELECT streamrec.create_source('g', 'checkouts', 'streamrec.checkouts')")
        self.expect_role_error("postgres", "55000", f"UPDATE streamrec.sources SET options = {grouped} WHERE name = 'g'")
        # A table no pipeline reads, or a pipeline's dimension, may be filled by a group.
        self.sql(f"SELECT streamrec.create_source('users', 'users', 'streamrec.users', 'csv', NULL, {grouped})")
        self.sql("CREATE TABLE plain_rows (id int)")
        self.sql(f"SELECT streamrec.create_source('plain', 'plain', 'plain_rows', 'csv', NULL, {grouped})")
        self.sql("SELECT streamrec.drop_source('g')")

        # enable_pipeline when a group_id source fills one of its input tables; alice sees the
        # table but not the name of postgres' source.
        self.sql("SELECT streamrec.disable_pipeline('attribution')")
        self.sql(f"SELECT streamrec.create_source('grouped_clicks', 'clicks', 'streamrec.clicks', 'csv', NULL, {grouped})")
        e = self.expect_role_error("postgres", "55000", "SELECT streamrec.enable_pipeline('similar_products')")
        self.assertIn('source "grouped_clicks"', e.pgerror)
        self.assertIn("use partitions; see streamrec.assign_partitions", e.diag.message_hint)
        e = self.expect_role_error("alice", "55000", "SELECT streamrec.enable_pipeline('attribution')")
        self.assertIn("a source of another role", e.pgerror)
        self.expect_role_error("postgres", "55000", "INSERT INTO streamrec.pipeline_catalog (name, options) "
                               "VALUES ('trending', '{}')")
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.pipeline_catalog WHERE enabled"), 0)
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sinks"), 0)
        # With fixed partitions instead, the pipeline starts; pausing a source stays possible.
        self.sql("SELECT streamrec.drop_source('grouped_clicks')")
        self.sql("SELECT streamrec.create_source('clicks', 'clicks', 'streamrec.clicks', 'csv', NULL, "
                 "jsonb_build_object('partitions', streamrec.assign_partitions(0, 2, 'clicks', 4)))")
        self.sql("SELECT streamrec.enable_pipeline('similar_products')")
        self.sql("SELECT streamrec.pause_source('clicks')")
        self.sql("SELECT streamrec.disable_pipeline('similar_products')")


class ClusterToolTest(unittest.TestCase):
    """tools/cluster: up --servers 2 starts two clusters and the broker with partitions assigned,
    status reports them, down removes everything."""

    def test_up_status_down(self):
        tool = os.path.join(harness.REPO, "tools", "cluster")
        state = tempfile.mkdtemp(prefix="streamrec-cluster-test-")
        env = dict(os.environ, STREAMREC_CLUSTER_STATE=os.path.join(state, "cluster.json"))
        try:
            up = subprocess.run([tool, "up", "--servers", "2", "--partitions", "4", "--standby"], env=env,
                                capture_output=True, text=True, timeout=300)
            self.assertEqual(up.returncode, 0, up.stdout + up.stderr)
            with open(env["STREAMREC_CLUSTER_STATE"]) as f:
                topology = json.load(f)
            self.assertEqual(len(topology["servers"]), 2)
            for i, server in enumerate(topology["servers"]):
                self.assertIn(server["dsn"], up.stdout)
                conn = psycopg2.connect(server["dsn"], connect_timeout=10)
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT DISTINCT options -> 'partitions' FROM streamrec.sources")
                        self.assertEqual(cur.fetchall(), [([i, i + 2],)])
                finally:
                    conn.close()
                # Its hot standby replays the catalog, in recovery.
                conn = psycopg2.connect(server["standby"]["dsn"], connect_timeout=10)
                try:
                    with conn.cursor() as cur:
                        wait_for(lambda: cur.execute("SELECT pg_is_in_recovery(), count(*) FROM streamrec.sources")
                                 or cur.fetchone() == (True, 5), 30, what="the standby to replay the sources")
                finally:
                    conn.close()
            status = subprocess.run([tool, "status"], env=env, capture_output=True, text=True, timeout=120)
            self.assertEqual(status.returncode, 0, status.stdout + status.stderr)
            running = [line for line in status.stdout.splitlines()
                       if line.startswith(("broker", "server")) and " running " in line]
            self.assertEqual(len(running), 3, status.stdout)  # the broker and the two servers
        finally:
            down = subprocess.run([tool, "down"], env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(down.returncode, 0, down.stdout + down.stderr)
        self.assertFalse(os.path.exists(topology["directory"]))
        self.assertFalse(os.path.exists(env["STREAMREC_CLUSTER_STATE"]))
        for server in topology["servers"]:
            with self.assertRaises(psycopg2.OperationalError):
                psycopg2.connect(server["dsn"], connect_timeout=3).close()
        os.rmdir(state)


if __name__ == "__main__":
    unittest.main()
