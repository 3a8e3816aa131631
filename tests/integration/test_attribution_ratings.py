"""attribution and ratings end to end: clicks, checkouts and ratings from topics
through source workers, checked against plain Python models. Attribution gets the same events in
different arrival orders (checkouts long before their clicks, and both sources at once with a
kill -9 of a worker mid-stream) and must give the model's table every time; ratings arrive as
Avro through the schema registry, with a customer UPDATE mid-stream and unhappy platinum
customers on an output topic."""

import csv
import datetime
import io
import json
import time

from harness import StreamTestCase, datagen, wait_for
from kafka_util import consume

LOOKBACK = datetime.timedelta(hours=1)


def rows(text):
    return list(csv.reader(io.StringIO(text)))


def ts(text):
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)


def attribution_model(clicks, checkouts, users):
    """checkout_id -> (user_name, click_id, click_time): the earliest click (then smallest id)."""
    by_pair = {}
    for click_id, user, product, _type, _query, t in clicks:
        if product:
            by_pair.setdefault((user, product), []).append((ts(t), click_id))
    out = {}
    for checkout_id, user, product, _pay, _amount, t in checkouts:
        t = ts(t)
        candidates = [c for c in by_pair.get((user, product), []) if t - LOOKBACK <= c[0] <= t]
        best = min(candidates) if candidates else (None, None)
        out[checkout_id] = (users.get(user), best[1], best[0])
    return out


class AttributionRatingsTest(StreamTestCase):
    topics = {"ar.clicks.a": 4, "ar.checkouts.a": 2, "ar.clicks.b": 4, "ar.checkouts.b": 2, "ar.out": 2,
              "ar.ratings": 2, "ar.unhappy": 1}

    def setUp(self):
        wait_for(lambda: self.value("SELECT 1"), 60, what="server accepting connections")
        for (name,) in self.sql("SELECT name FROM streamrec.sources"):
            self.sql("SELECT streamrec.drop_source(%s)", (name,))
        for (name,) in self.sql("SELECT name FROM streamrec.pipeline_catalog WHERE enabled"):
            self.sql("SELECT streamrec.disable_pipeline(%s)", (name,))
        self.sql("TRUNCATE streamrec.clicks, streamrec.checkouts, streamrec.users, streamrec.attributed_checkouts, "
                 "streamrec.attribution_log, streamrec.ratings, streamrec.customers, streamrec.test_ratings, "
                 "streamrec.ratings_enriched, streamrec.unhappy_customers, streamrec.ratings_by_club_status, "
                 "streamrec.ratings_per_customer, streamrec.product_ratings, streamrec.inventory, "
                 "streamrec.pipeline_clock, streamrec.pipeline_writers, streamrec.dead_letters")

    def copy(self, table, text):
        conn = self.cluster.connect()
        try:
            with conn.cursor() as cur:
                cur.copy_expert(f"COPY {table} FROM STDIN CSV", io.StringIO(text))
        finally:
            conn.close()

    def source(self, name, topic, table, fmt="csv", options=None):
        self.sql("SELECT streamrec.create_source(%s, %s, %s, %s, NULL, %s)",
                 (name, topic, table, fmt, json.dumps(options or {"batch_size": 500})))

    def wait_count(self, table, count, timeout=120):
        wait_for(lambda: self.value(f"SELECT count(*) FROM {table}") >= count, timeout,
                 what=f"{count} rows in {table}")
        time.sleep(0.3)
        self.assertEqual(self.value(f"SELECT count(*) FROM {table}"), count)

    def stored_attribution(self):
        return {r[0]: (r[1], r[2], r[3]) for r in
                self.sql("SELECT checkout_id, user_name, click_id, click_time FROM streamrec.attributed_checkouts")}

    def generated(self, clicks, checkouts, users=150, products=60, seed=11):
        common = ("--users", users, "--products", products, "--seed", seed)
        click_rows = rows(datagen("clicks", "--count", clicks, *common))
        checkout_rows = rows(datagen("checkouts", "--count", checkouts, *common))
        user_text = datagen("users", "--users", users - 10, "--seed", seed)  # 10 users unknown
        users_by_id = {u: n for u, n in rows(user_text)}
        return click_rows, checkout_rows, user_text, attribution_model(click_rows, checkout_rows, users_by_id)

    def produce_rows(self, topic, kind, count, *args):
        datagen(kind, "--count", count, *args, "--topic", topic, "--brokers", self.sandbox.bootstrap)

    def test_checkouts_long_before_their_clicks_get_the_model_attribution(self):
        clicks, checkouts, users, model = self.generated(8000, 2000)
        self.copy("streamrec.users", users)
        self.sql("SELECT streamrec.enable_pipeline('attribution', '{\"output_topic\": \"ar.out\"}')")
        common = ("--users", 150, "--products", 60, "--seed", 11)
        self.produce_rows("ar.checkouts.a", "checkouts", 2000, *common)
        self.produce_rows("ar.clicks.a", "clicks", 8000, *common)
        # Every checkout first: none can be attributed yet.
        self.source("ar_checkouts_a", "ar.checkouts.a", "streamrec.checkouts")
        self.wait_count("streamrec.attributed_checkouts", 2000)
        self.assertEqual(self.value("SELECT count(click_id) FROM streamrec.attributed_checkouts"), 0)
        # Then the clicks: each correction is applied as they arrive.
        self.source("ar_clicks_a", "ar.clicks.a", "streamrec.clicks")
        self.wait_count("streamrec.clicks", 8000)
        self.assertEqual(self.stored_attribution(), model)
        attributed = sum(1 for v in model.values() if v[1] is not None)
        self.assertGreater(attributed, 1500)
        self.assertLess(sum(1 for v in model.values() if v[0] is None), 2000)  # some unknown users
        self.assertGreater(sum(1 for v in model.values() if v[0] is None), 0)
        # The output topic: first the unattributed checkouts, then one correction per attributed one
        # (at least; a click batch may improve one twice); the last message per key is the table.
        logged = self.value("SELECT count(*) FROM streamrec.attribution_log")
        self.assertGreaterEqual(logged, 2000 + attributed)
        messages = consume(self.sandbox.bootstrap, "ar.out", logged, partitions=2, timeout=60)
        self.assertEqual(len(messages), logged)
        last = {}
        for _p, _o, key, value in sorted(messages, key=lambda m: m[1]):  # per key: one partition, in order
            last[key.decode()] = value.decode()
        some = next(k for k, v in model.items() if v[1] is not None and v[0] is not None)
        checkout = next(c for c in checkouts if c[0] == some)
        name, click_id, click_time = model[some]
        self.assertEqual(last[some], f"{some},{checkout[1]},{name},{checkout[2]},\"{checkout[5]}\",{click_id},"
                                     f"\"{click_time:%Y-%m-%d %H:%M:%S}\"")
        self.assertIsNone(self.value("SELECT last_error FROM streamrec.pipelines WHERE name = 'attribution'"))

    def test_both_sources_at_once_with_a_kill_9_match_the_model(self):
        clicks, checkouts, users, model = self.generated(60000, 15000)
        self.copy("streamrec.users", users)
        self.sql("SELECT streamrec.enable_pipeline('attribution')")
        common = ("--users", 150, "--products", 60, "--seed", 11)
        self.produce_rows("ar.clicks.b", "clicks", 60000, *common)
        self.produce_rows("ar.checkouts.b", "checkouts", 15000, *common)
        # Both workers feed at once, in batches of different sizes: clicks and checkouts of one
        # user race each other through the triggers.
        self.source("ar_clicks_b", "ar.clicks.b", "streamrec.clicks", options={"batch_size": 700})
        self.source("ar_checkouts_b", "ar.checkouts.b", "streamrec.checkouts", options={"batch_size": 90})
        pid = wait_for(lambda: self.value("SELECT pid FROM streamrec.source_stats WHERE name = 'ar_clicks_b'"), 20,
                       what="clicks worker")
        wait_for(lambda: self.value("SELECT count(*) FROM streamrec.clicks") >= 5000, 60, interval=0.02,
                 what="clicks under way")
        self.assertLess(self.value("SELECT count(*) FROM streamrec.clicks"), 60000, "finished before the kill")
        self.cluster.kill(pid)
        self.wait_count("streamrec.clicks", 60000, timeout=240)
        self.wait_count("streamrec.attributed_checkouts", 15000, timeout=120)
        self.assertEqual(self.stored_attribution(), model)
        self.assertIsNone(self.value("SELECT last_error FROM streamrec.pipelines WHERE name = 'attribution'"))

    def test_a_checkout_sent_again_overwrites_its_attribution_and_is_logged(self):
        # A checkout deleted from streamrec.checkouts and sent again finds its id in
        # attributed_checkouts: the batch overwrites that row (the other rows of the batch are new).
        self.sql("INSERT INTO streamrec.users VALUES ('u1', 'Ann')")
        self.sql("SELECT streamrec.enable_pipeline('attribution')")
        self.sql("INSERT INTO streamrec.clicks (click_id, user_id, product_id, event_time) VALUES "
                 "('c1', 'u1', 'p1', '2024-06-28 12:30+00'), ('c2', 'u1', 'p2', '2024-06-28 12:40+00')")
        self.sql("INSERT INTO streamrec.checkouts VALUES ('k1', 'u1', 'p1', 'card', 1, '2024-06-28 13:00+00'), "
                 "('k2', 'u1', 'p9', 'card', 1, '2024-06-28 13:00+00')")
        self.sql("DELETE FROM streamrec.checkouts WHERE checkout_id = 'k1'")
        self.sql("INSERT INTO streamrec.checkouts VALUES ('k1', 'u1', 'p2', 'card', 1, '2024-06-28 13:00+00'), "
                 "('k3', 'u2', 'p2', 'card', 1, '2024-06-28 13:00+00')")
        self.assertEqual(self.sql("SELECT checkout_id, user_name, product_id, click_id "
                                  "FROM streamrec.attributed_checkouts ORDER BY 1"),
                         [("k1", "Ann", "p2", "c2"), ("k2", "Ann", "p9", None), ("k3", None, "p2", None)])
        self.assertEqual(self.sql("SELECT checkout_id, product_id, click_id FROM streamrec.attribution_log "
                                  "ORDER BY id"),
                         [("k1", "p1", "c1"), ("k2", "p9", None), ("k1", "p2", "c2"), ("k3", "p2", None)])
        # A click without an id corrects a checkout it wins, and is logged.
        self.sql("INSERT INTO streamrec.clicks (click_id, user_id, product_id, event_time) VALUES "
                 "(NULL, 'u1', 'p9', '2024-06-28 12:00+00')")
        self.assertEqual(self.sql("SELECT click_id, click_time::text FROM streamrec.attributed_checkouts "
                                  "WHERE checkout_id = 'k2'"), [(None, "2024-06-28 12:00:00+00")])
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.attribution_log"), 5)
        self.assertIsNone(self.value("SELECT last_error FROM streamrec.pipelines WHERE name = 'attribution'"))

    def test_avro_ratings_enriched_unhappy_windows_and_product_averages(self):
        users, count, seed = 60, 3000, 5
        customers_text = datagen("customers", "--users", users, "--seed", seed)
        customers = {r[0]: r for r in rows(customers_text)}
        known = {k: v for k, v in customers.items() if int(k) <= users - 5}  # 5 unknown customers
        self.copy("streamrec.customers", "".join(",".join(v) + "\n" for v in known.values()))
        inventory = datagen("inventory", "--products", 200, "--seed", seed)
        self.copy("streamrec.inventory (product_id, category, stock, rating)", inventory)
        self.sql("SELECT streamrec.enable_pipeline('ratings', %s)",
                 (json.dumps({"output_topic": "ar.unhappy", "watermark_delay": "1 hour"}),))
        first, second = count // 2, count - count // 2
        gen = ("--users", users, "--seed", seed, "--products", 200, "--format", "avro", "--topic", "ar.ratings",
               "--brokers", self.sandbox.bootstrap, "--registry", self.sandbox.registry_url)
        datagen("ratings", "--count", first, *gen)
        self.source("ar_ratings", "ar.ratings", "streamrec.ratings", "avro",
                    {"schema_registry": self.sandbox.registry_url, "batch_size": 250})
        self.wait_count("streamrec.ratings", first)
        # A customer change as CDC would bring it: a platinum customer becomes bronze, another one becomes platinum.
        plat = next(k for k, v in known.items() if v[4] == "platinum")
        gold = next(k for k, v in known.items() if v[4] == "gold")
        self.sql("UPDATE streamrec.customers SET club_status = 'bronze' WHERE customer_id = %s", (plat,))
        self.sql("UPDATE streamrec.customers SET club_status = 'platinum', email = 'vip@example.com' "
                 "WHERE customer_id = %s", (gold,))
        datagen("ratings", "--count", second, "--start-index", first, *gen)
        self.wait_count("streamrec.ratings", count)

        generated = rows(datagen("ratings", "--count", count, "--users", users, "--seed", seed, "--products", 200))
        status = {k: v[4] for k, v in known.items()}
        email = {k: v[3] for k, v in known.items()}
        enriched, unhappy, test, sums = [], [], 0, {}
        for i, (rid, user, product, stars, channel, _msg, _t) in enumerate(generated):
            if "test" in channel.lower():
                test += 1
                continue
            if product:
                s = sums.setdefault(product, [0, 0])
                s[0] += 1
                s[1] += int(stars)
            if user not in known:
                continue
            if i == first:
                status[plat], status[gold], email[gold] = "bronze", "platinum", "vip@example.com"
            enriched.append((rid, user, status[user], email[user]))
            if int(stars) < 3 and status[user] == "platinum":
                unhappy.append((rid, user))
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.test_ratings"), test)
        self.assertEqual(sorted(self.sql("SELECT rating_id, customer_id, club_status, email "
                                         "FROM streamrec.ratings_enriched")),
                         sorted(enriched))
        self.assertEqual(sorted(self.sql("SELECT rating_id, customer_id FROM streamrec.unhappy_customers")),
                         sorted(unhappy))
        self.assertTrue(0 < len(unhappy) < len(enriched))
        # On the topic: the enriched rating's columns, keyed by the full name.
        messages = consume(self.sandbox.bootstrap, "ar.unhappy", len(unhappy), timeout=60)
        self.assertEqual(len(messages), len(unhappy))
        rid, user = unhappy[0]
        _, first_name, last_name, _, _ = customers[user]
        stars, message = next((r[3], r[5]) for r in generated if r[0] == rid)
        quoted = f'"{message}"' if "," in message else message
        self.assertIn((f"{first_name} {last_name}".encode(),
                       f"{first_name} {last_name},platinum,{email[user] if user != gold else 'vip@example.com'},"
                       f"{stars},{quoted}".encode()),
                      [(k, v) for *_, k, v in messages])
        # inventory.rating is the average of the live ratings of each product.
        ratings = dict(self.sql("SELECT product_id, rating FROM streamrec.inventory WHERE product_id = ANY(%s)",
                                (list(sums),)))
        for product, (n, total) in sums.items():
            if product in ratings:
                self.assertAlmostEqual(ratings[product], total / n, places=4)
        # Windows: every enriched rating is counted once per window kind, or counted late.
        late = self.value("SELECT late FROM streamrec.pipelines WHERE name = 'ratings'")
        # The worker reads the two partitions batch by batch, so event time goes back and forth
        # by more than a few seconds; the 1-hour delay keeps every window open (5 minutes of data).
        self.assertEqual(late, 0)
        self.assertEqual(self.value("SELECT sum(ratings)::int FROM streamrec.ratings_by_club_status"), len(enriched))
        self.assertEqual(self.value("SELECT sum(cardinality(stars))::int FROM streamrec.ratings_per_customer"),
                         len(enriched))
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.ratings_per_customer "
                                    "WHERE window_end - window_start <> interval '15 minutes'"), 0)
        stats = self.sql("SELECT events, skipped, last_error FROM streamrec.pipelines WHERE name = 'ratings'")[0]
        self.assertEqual(stats[0], count)
        self.assertEqual(stats[1], count - test - len(enriched))
        self.assertIsNone(stats[2])

    def test_ratings_state_across_statements_is_what_the_upserts_wrote(self):
        """product_ratings and the two window tables are read and written a batch at a time: a row
        found (one written by hand included) gets the batch's sums added, the latest name and its
        stars appended in arrival order, and keeps its window_end; a key missing is inserted with
        start + width as its window_end; inventory.rating follows the sums."""
        self.sql("SELECT streamrec.enable_pipeline('ratings', %s)",
                 (json.dumps({"status_window": "1 minute", "customer_window": "15 minutes",
                              "watermark_delay": "1 hour", "idle_timeout": "1 hour"}),))
        self.sql("INSERT INTO streamrec.customers VALUES ('c1', 'Ann', 'Lee', 'a@x', 'platinum'), "
                 "('c2', 'Bo', NULL, 'b@x', 'gold'), ('c3', NULL, NULL, NULL, NULL)")
        self.sql("INSERT INTO streamrec.inventory (product_id, category, stock, rating) "
                 "VALUES ('p1', 'x', 1, NULL), ('p2', 'x', 1, 1.0)")
        # Rows already there: their window_end is not start + width, so it shows whether it is kept.
        self.sql("INSERT INTO streamrec.product_ratings VALUES ('p2', 3, 10)")
        self.sql("INSERT INTO streamrec.ratings_by_club_status "
                 "VALUES ('2026-01-01 10:00:00+00', '2026-01-01 10:00:30+00', 'gold', 5)")
        self.sql("INSERT INTO streamrec.ratings_per_customer "
                 "VALUES ('2026-01-01 10:00:00+00', '2026-01-01 10:05:00+00', 'c1', 'old name', 1, '{5}')")
        statements = [
            [("r1", "c1", "p1", 4, "10:00:05"), ("r2", "c2", "p2", 2, "10:00:10"), ("r3", "c1", "p3", 1, "10:00:20"),
             ("r4", "cX", "p1", 5, "10:00:25")],
            [("r5", "c3", "p1", 3, "10:00:40"), ("r6", "c1", "p2", 5, "10:01:10"), ("r7", "c2", None, 4, "10:01:15")],
            [("r8", "c1", "p1", 2, "10:01:20"), ("r9", "c3", "p2", 1, "10:16:00"), ("r10", "c1", "p1", 3, "10:16:05")],
        ]
        for batch in statements:
            self.sql("INSERT INTO streamrec.ratings (rating_id, user_id, product_id, stars, channel, message, "
                     "rating_time) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[], "
                     "%s::text[], %s::timestamptz[])",
                     ([r[0] for r in batch], [r[1] for r in batch], [r[2] for r in batch], [r[3] for r in batch],
                      ["web"] * len(batch), ["m"] * len(batch), [f"2026-01-01 {r[4]}+00" for r in batch]))
        self.assertEqual(self.value("SELECT late FROM streamrec.pipelines WHERE name = 'ratings'"), 0)
        t = lambda hms: ts(f"2026-01-01 {hms}")  # noqa: E731
        self.assertEqual(self.sql("SELECT product_id, ratings, stars FROM streamrec.product_ratings "
                                  "ORDER BY product_id COLLATE \"C\""),
                         [("p1", 5, 17), ("p2", 6, 18), ("p3", 1, 1)])
        self.assertEqual(self.sql("SELECT product_id, rating FROM streamrec.inventory ORDER BY product_id"),
                         [("p1", 3.4), ("p2", 3.0)])
        self.assertEqual(self.sql("SELECT window_start, window_end, club_status, ratings "
                                  "FROM streamrec.ratings_by_club_status ORDER BY window_start, 3"),
                         [(t("10:00:00"), t("10:00:30"), "gold", 6),
                          (t("10:00:00"), t("10:01:00"), "none", 1),
                          (t("10:00:00"), t("10:01:00"), "platinum", 2),
                          (t("10:01:00"), t("10:02:00"), "gold", 1),
                          (t("10:01:00"), t("10:02:00"), "platinum", 2),
                          (t("10:16:00"), t("10:17:00"), "none", 1),
                          (t("10:16:00"), t("10:17:00"), "platinum", 1)])
        self.assertEqual(self.sql("SELECT window_start, window_end, customer_id, full_name, ratings, stars "
                                  "FROM streamrec.ratings_per_customer ORDER BY window_start, 3"),
                         [(t("10:00:00"), t("10:05:00"), "c1", "Ann Lee", 5, [5, 4, 1, 5, 2]),
                          (t("10:00:00"), t("10:15:00"), "c2", "Bo", 2, [2, 4]),
                          (t("10:00:00"), t("10:15:00"), "c3", "", 1, [3]),
                          (t("10:15:00"), t("10:30:00"), "c1", "Ann Lee", 1, [3]),
                          (t("10:15:00"), t("10:30:00"), "c3", "", 1, [1])])
