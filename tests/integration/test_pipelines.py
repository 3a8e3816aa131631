"""Recommendation pipelines end to end: clicks consumed from Kafka by a source worker, ranked by
the C++ triggers, and (for similar_products) produced back to Kafka by the pipeline's sink.
Randomized streams are compared with a plain-SQL formulation of the ranking rules and with a
sequential model of repeat demotion; two source workers feed clicks at once."""

import random
import subprocess
from datetime import datetime, timedelta, timezone

from harness import StreamTestCase, wait_for
from kafka_util import SEED_VALUE, consume, produce

PIPELINE_TABLES = ("streamrec.clicks, streamrec.purchases, streamrec.inventory, streamrec.recommendation_log, "
                   "streamrec.recommendations, streamrec.user_purchases, streamrec.pending_views, "
                   "streamrec.trending_counts, streamrec.category_views, streamrec.user_viewed_products, "
                   "streamrec.pipeline_clock, streamrec.pipeline_writers")
T0 = datetime(2024, 6, 28, 13, 0, 0, tzinfo=timezone.utc)


def ts(t):
    return t.strftime("%Y-%m-%d %H:%M:%S.%f+00")


def click_line(i, user, product, t, event_type="page_view"):
    return f"c{i},{user},{product},{event_type},,{ts(t)}"


class PipelineTest(StreamTestCase):
    topics = {"pipe.seed.clicks": 1, "flink.recommended.products": 1, "pipe.random.clicks": 1,
              "pipe.demote.clicks": 1, "pipe.concurrent.a": 2, "pipe.concurrent.b": 2, "pipe.idle.clicks": 1}

    def setUp(self):
        for name in self.sql("SELECT name FROM streamrec.pipeline_catalog WHERE enabled"):
            self.sql("SELECT streamrec.disable_pipeline(%s)", name)
        for (name,) in self.sql("SELECT name FROM streamrec.sources"):
            self.sql("SELECT streamrec.drop_source(%s)", (name,))
        self.sql(f"TRUNCATE {PIPELINE_TABLES}")

    def source(self, name, topic):
        self.sql("SELECT streamrec.create_source(%s, %s, 'streamrec.clicks', 'csv', NULL, "
                 "'{\"batch_ms\": 20}')", (name, topic))

    def wait_consumed(self, source, expected, timeout=60):
        wait_for(lambda: self.value("SELECT coalesce(sum(next_offset), 0) FROM streamrec.source_offsets "
                                    "WHERE source = %s", (source,)) == expected,
                 timeout, what=f"{source} to consume {expected} messages")

    def random_world(self, rng, products=300, categories=12, users=40):
        rows = []
        for p in range(products):
            stock = 0 if rng.random() < 0.2 else rng.randint(1, 9)
            rating = None if rng.random() < 0.1 else rng.choice([1.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0])
            rows.append((f"p{p}", f"cat{rng.randrange(categories)}", stock, rating))
        self.cluster.sql("INSERT INTO streamrec.inventory (product_id, category, stock, rating) "
                         "SELECT * FROM unnest(%s::text[], %s::text[], %s::int[], %s::real[])",
                         ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]))
        purchases = [(f"u{rng.randrange(users)}", f"p{rng.randrange(products)}") for _ in range(400)]
        self.cluster.sql("INSERT INTO streamrec.purchases (user_id, product_id, purchase_time) "
                         "SELECT u, p, %s FROM unnest(%s::text[], %s::text[]) AS x(u, p)",
                         (T0 - timedelta(days=1), [p[0] for p in purchases], [p[1] for p in purchases]))
        return rows, purchases

    def random_clicks(self, rng, n, products=300, users=40, step_ms=400):
        clicks, t = [], T0
        for i in range(n):
            t += timedelta(milliseconds=rng.randint(0, step_ms))
            product = f"p{rng.randrange(products)}" if rng.random() > 0.03 else f"unknown{i}"
            kind = "page_view" if rng.random() > 0.1 else "add_to_cart"
            clicks.append((i, f"u{rng.randrange(users)}", product, t, kind))
        return clicks

    def test_seed_line_reaches_the_output_topic(self):
        """A click consumed from Kafka comes out on flink.recommended.products exactly as the
        Flink job it replaces wrote it: key user-27, value user-27,"140,13,137,95,39,138",<time>."""
        ratings = {"140": 5.0, "13": 4.9, "137": 4.8, "95": 4.7, "39": 4.6, "138": 4.5, "7": 1.0, "200": 3.0}
        for pid, rating in ratings.items():
            self.sql("INSERT INTO streamrec.inventory (product_id, category, stock, rating) VALUES (%s, 'x', 3, %s)",
                     (pid, rating))
        self.sql("SELECT streamrec.enable_pipeline('similar_products', "
                 "'{\"output_topic\": \"flink.recommended.products\"}')")
        self.source("seed_clicks", "pipe.seed.clicks")
        produce(self.sandbox.bootstrap, "pipe.seed.clicks",
                [click_line(1, "user-27", "200", datetime(2024, 6, 28, 13, 1, 55, tzinfo=timezone.utc))])
        messages = consume(self.sandbox.bootstrap, "flink.recommended.products", 1)
        self.assertEqual([(k, v) for *_, k, v in messages], [(b"user-27", SEED_VALUE)])
        out = subprocess.run(["kcat", "-C", "-b", self.sandbox.bootstrap, "-t", "flink.recommended.products",
                              "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n"],
                             capture_output=True, check=True, timeout=30).stdout
        self.assertEqual(out, b"user-27\t" + SEED_VALUE + b"\n")
        self.assertEqual(self.sql("SELECT user_id, product_ids FROM streamrec.recommendations"),
                         [("user-27", ["140", "13", "137", "95", "39", "138"])])

    def test_random_stream_matches_plain_sql(self):
        """Thousands of generated clicks through a source: every list equals the one a plain SQL
        query of the rules (in stock, same category, not the viewed product, bought first,
        rating, product_id) gives."""
        rng = random.Random(5)
        self.random_world(rng)
        clicks = self.random_clicks(rng, 3000)
        self.sql("SELECT streamrec.enable_pipeline('similar_products', '{\"repeats\": \"allow\"}')")
        counters = "SELECT events, outputs, skipped FROM streamrec.pipelines WHERE name = 'similar_products'"
        before = self.sql(counters)[0]
        self.source("random_clicks", "pipe.random.clicks")
        produce(self.sandbox.bootstrap, "pipe.random.clicks", [click_line(*c) for c in clicks])
        self.wait_consumed("random_clicks", len(clicks))
        expected = self.sql("""
            SELECT c.user_id, c.event_time, c.product_id, l.products
            FROM streamrec.clicks c
            JOIN streamrec.inventory v ON v.product_id = c.product_id
            CROSS JOIN LATERAL (
                SELECT ARRAY(SELECT i.product_id FROM streamrec.inventory i
                             WHERE i.category = v.category AND i.stock > 0 AND i.product_id <> c.product_id
                             ORDER BY EXISTS (SELECT FROM streamrec.purchases p
                                              WHERE p.user_id = c.user_id AND p.product_id = i.product_id) DESC,
                                      i.rating DESC NULLS LAST, i.product_id COLLATE "C"
                             LIMIT 6) AS products) l
            WHERE c.event_type = 'page_view' AND cardinality(l.products) > 0
            ORDER BY 1, 2, 3""")
        actual = self.sql("SELECT user_id, window_end, viewed_product_id, product_ids FROM streamrec.recommendation_log "
                          "ORDER BY 1, 2, 3")
        self.assertGreater(len(expected), 2000)
        self.assertEqual(actual, expected)
        # Latest per user, and the counters.
        latest = self.sql("SELECT DISTINCT ON (user_id) user_id, product_ids FROM streamrec.recommendation_log "
                          "ORDER BY user_id, window_end DESC, id DESC")
        self.assertEqual(self.sql("SELECT user_id, product_ids FROM streamrec.recommendations ORDER BY 1"), latest)
        page_views = sum(1 for c in clicks if c[4] == "page_view")
        after = self.sql(counters)[0]
        self.assertEqual(tuple(a - b for a, b in zip(after, before)),
                         (len(clicks), len(expected), page_views - len(expected)))

    def test_random_stream_demotes_like_a_sequential_model(self):
        """With repeats = demote the lists depend on what was shown before: a Python model that
        replays the clicks one by one in offset order gives the same lists."""
        rng = random.Random(11)
        world, purchases = self.random_world(rng, products=120, categories=4, users=15)
        clicks = self.random_clicks(rng, 2000, products=120, users=15, step_ms=300)
        self.sql("SELECT streamrec.enable_pipeline('similar_products', "
                 "'{\"repeat_window\": \"20 seconds\", \"top_k\": 5}')")
        self.source("demote_clicks", "pipe.demote.clicks")
        produce(self.sandbox.bootstrap, "pipe.demote.clicks", [click_line(*c) for c in clicks])
        self.wait_consumed("demote_clicks", len(clicks))

        category = {p: c for p, c, _, _ in world}
        best_first = {}
        for p, c, stock, rating in world:
            if stock > 0:
                best_first.setdefault(c, []).append((rating is None, -(rating or 0), p.encode(), p))
        for c in best_first:
            best_first[c] = [entry[3] for entry in sorted(best_first[c])]
        bought = {}
        for u, p in purchases:
            bought.setdefault(u, set()).add(p)
        shown = {}  # user -> [(time, product)]
        expected = []
        window = timedelta(seconds=20)
        for _, user, product, t, kind in clicks:
            if kind != "page_view" or product not in category:
                continue
            recent = {p for when, p in shown.get(user, []) if t - window <= when <= t}
            mine = bought.get(user, set())
            candidates = [p for p in best_first.get(category[product], []) if p != product]
            ranked = ([p for p in candidates if p in mine and p not in recent] +
                      [p for p in candidates if p not in mine and p not in recent] +
                      [p for p in candidates if p in mine and p in recent] +
                      [p for p in candidates if p not in mine and p in recent])[:5]
            if not ranked:
                continue
            expected.append((user, t, product, ranked))
            shown.setdefault(user, []).extend((t, p) for p in ranked)
        actual = self.sql("SELECT user_id, window_end, viewed_product_id, product_ids FROM streamrec.recommendation_log "
                          "ORDER BY id")
        self.assertGreater(len(expected), 1500)
        self.assertEqual(actual, expected)

    def test_two_sources_feed_clicks_at_once_without_deadlock_or_lost_updates(self):
        """Two source workers insert clicks of the same users and products concurrently with all
        three pipelines enabled: every view is counted once in trending and category_views,
        every user has a latest list, and no transaction deadlocked."""
        rng = random.Random(3)
        self.random_world(rng, products=60, categories=3, users=30)
        self.sql("SELECT streamrec.enable_pipeline('similar_products')")
        self.sql("SELECT streamrec.enable_pipeline('trending', '{\"window\": \"1 minute\"}')")
        self.sql("SELECT streamrec.enable_pipeline('category_affinity')")
        log_start = len(self.cluster.log_text())
        streams = {}
        for topic in ("pipe.concurrent.a", "pipe.concurrent.b"):
            clicks = self.random_clicks(rng, 20000, products=60, users=30, step_ms=20)
            streams[topic] = [c for c in clicks if not c[2].startswith("unknown")]
        self.source("feed_a", "pipe.concurrent.a")
        self.source("feed_b", "pipe.concurrent.b")
        for topic, clicks in streams.items():
            produce(self.sandbox.bootstrap, topic, [click_line(*c) for c in clicks])
        self.wait_consumed("feed_a", len(streams["pipe.concurrent.a"]), timeout=120)
        self.wait_consumed("feed_b", len(streams["pipe.concurrent.b"]), timeout=120)
        views = [c for clicks in streams.values() for c in clicks if c[4] == "page_view"]
        self.assertEqual(self.value("SELECT sum(views) FROM streamrec.trending_counts"), len(views))
        per_window = {}
        for _, _, product, t, _ in views:
            key = (t.replace(second=0, microsecond=0), product)
            per_window[key] = per_window.get(key, 0) + 1
        self.assertEqual(dict(((w, p), n) for w, p, n in self.sql(
            "SELECT window_start, product_id, views FROM streamrec.trending_counts")), per_window)
        self.assertEqual(self.value("SELECT sum(views) FROM streamrec.category_views"), len(views))
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.recommendations"),
                         len({c[1] for c in views}))
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.dead_letters"), 0)
        self.assertNotIn("deadlock detected", self.cluster.log_text()[log_start:])

    def test_idle_window_is_closed_by_the_launcher(self):
        """emit = 5 seconds: the last window of a stream that stops closes after idle_timeout,
        by the launcher's periodic tick, with no further event."""
        self.sql("INSERT INTO streamrec.inventory (product_id, category, stock, rating) "
                 "VALUES ('a', 'x', 1, 4), ('b', 'x', 1, 5), ('c', 'x', 1, 3)")
        self.sql("SELECT streamrec.enable_pipeline('similar_products', "
                 "'{\"emit\": \"5 seconds\", \"idle_timeout\": \"1 second\"}')")
        self.source("idle_clicks", "pipe.idle.clicks")
        produce(self.sandbox.bootstrap, "pipe.idle.clicks",
                [click_line(1, "u1", "a", T0), click_line(2, "u1", "c", T0 + timedelta(seconds=2))])
        rows = wait_for(lambda: self.sql("SELECT user_id, product_ids, window_end, viewed_product_id "
                                         "FROM streamrec.recommendation_log"), 15, what="the idle window to close")
        self.assertEqual(rows, [("u1", ["b", "a"], T0 + timedelta(seconds=5), "c")])
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.pending_views"), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
