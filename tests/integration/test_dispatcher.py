"""The dispatcher: every click pipeline enabled together over the same batches gives each
pipeline exactly the results it gives alone. One database runs similar_products, trending,
category_affinity and attribution together; one database per pipeline runs it alone; the same
random batches of clicks, purchases and checkouts (shuffled event times, other event types,
unknown products, repeats inside the repeat window) go into all of them as multi-row
statements, and every result table and counter is compared."""

import random
import threading
import time
from datetime import datetime, timedelta, timezone

from harness import ClusterTestCase

T0 = datetime(2024, 6, 28, 13, 0, 0, tzinfo=timezone.utc)
PIPELINES = ("similar_products", "trending", "category_affinity", "attribution")
ALONE = {p: f"alone_{p}" for p in PIPELINES}
USERS = 12
PRODUCTS = 30

# What each pipeline writes, with the columns that do not depend on the wall clock, in an order
# that does not depend on ids or physical order.
RESULTS = {
    "similar_products": [
        "SELECT user_id, product_ids, viewed_product_id, category, window_end, shown_products, shown_at, shown_since "
        "FROM streamrec.recommendations ORDER BY user_id",
        "SELECT user_id, product_ids, window_end, viewed_product_id, category FROM streamrec.recommendation_log "
        "ORDER BY id",
        "SELECT * FROM streamrec.user_purchases ORDER BY user_id, product_id",
    ],
    "trending": ["SELECT * FROM streamrec.trending_counts ORDER BY window_start, product_id"],
    "category_affinity": [
        "SELECT * FROM streamrec.category_views ORDER BY user_id, bucket_start, category",
        "SELECT * FROM streamrec.user_viewed_products ORDER BY user_id, product_id",
    ],
    "attribution": [
        "SELECT checkout_id, user_id, user_name, product_id, checkout_time, click_id, click_time "
        "FROM streamrec.attributed_checkouts ORDER BY checkout_id",
        "SELECT checkout_id, user_id, user_name, product_id, checkout_time, click_id, click_time "
        "FROM streamrec.attribution_log ORDER BY id",
    ],
}
COUNTERS = "SELECT events, outputs, skipped, late, future FROM streamrec.pipelines WHERE name = %s"


def ts(t):
    return t.strftime("%Y-%m-%d %H:%M:%S.%f+00")


class DispatcherTest(ClusterTestCase):
    create_extension = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for db in ("together", *ALONE.values()):
            cls.cluster.sql(f"CREATE DATABASE {db}")
            cls.cluster.sql("CREATE EXTENSION pg_streamrec", dbname=db)
            cls.cluster.sql("INSERT INTO streamrec.inventory (product_id, category, stock, rating) "
                            "SELECT 'p' || n, 'c' || mod(n, 3), CASE WHEN mod(n, 7) = 0 THEN 0 ELSE 5 END, "
                            "CASE WHEN mod(n, 5) = 0 THEN NULL ELSE mod(n, 4) END FROM generate_series(0, %s) n",
                            (PRODUCTS - 1,), dbname=db)
            cls.cluster.sql("INSERT INTO streamrec.users SELECT 'u' || n, 'name ' || n FROM generate_series(0, %s) n",
                            (USERS - 1,), dbname=db)
        for p in PIPELINES:
            options = '{"repeat_window": "3 minutes"}' if p == "similar_products" else "{}"
            cls.cluster.sql("SELECT streamrec.enable_pipeline(%s, %s)", (p, options), dbname="together")
            cls.cluster.sql("SELECT streamrec.enable_pipeline(%s, %s)", (p, options), dbname=ALONE[p])

    def insert_everywhere(self, statement, rows):
        for db in ("together", *ALONE.values()):
            conn = self.cluster.connect(dbname=db)
            try:
                with conn.cursor() as cur:
                    values = ",".join(cur.mogrify("(" + ",".join(["%s"] * len(r)) + ")", r).decode() for r in rows)
                    cur.execute(statement + " VALUES " + values)
            finally:
                conn.close()

    def test_each_pipeline_gives_together_what_it_gives_alone(self):
        seed = random.randrange(1 << 30)
        rng = random.Random(seed)
        click = checkout = 0
        for batch in range(40):
            kind = rng.random()
            if kind < 0.7:
                rows = []
                for _ in range(rng.randint(1, 60)):
                    t = T0 + timedelta(seconds=rng.randint(0, 1800))
                    product = f"p{rng.randrange(PRODUCTS + 3)}" if rng.random() < 0.95 else None
                    event = "page_view" if rng.random() < 0.85 else rng.choice(["search", "add_to_cart"])
                    # Click ids repeat now and then (ties in attribution).
                    rows.append((f"c{click if rng.random() < 0.9 else click // 2}", f"u{rng.randrange(USERS)}",
                                 product, event, None, ts(t)))
                    click += 1
                self.insert_everywhere("INSERT INTO streamrec.clicks (click_id, user_id, product_id, event_type, "
                                       "query, event_time)", rows)
            elif kind < 0.85:
                rows = [(f"i{batch}", f"u{rng.randrange(USERS)}", f"p{rng.randrange(PRODUCTS)}", rng.randint(1, 3), None,
                         ts(T0 + timedelta(seconds=rng.randint(0, 1800)))) for _ in range(rng.randint(1, 10))]
                self.insert_everywhere("INSERT INTO streamrec.purchases (invoice_id, user_id, product_id, quantity, "
                                       "unit_cost, purchase_time)", rows)
            else:
                rows = []
                for _ in range(rng.randint(1, 10)):
                    rows.append((f"k{checkout}", f"u{rng.randrange(USERS)}", f"p{rng.randrange(PRODUCTS)}", None, None,
                                 ts(T0 + timedelta(seconds=rng.randint(0, 1800)))))
                    checkout += 1
                self.insert_everywhere("INSERT INTO streamrec.checkouts (checkout_id, user_id, product_id, "
                                       "payment_method, total_amount, checkout_time)", rows)

        for p in PIPELINES:
            for query in RESULTS[p]:
                together = self.cluster.sql(query, dbname="together")
                self.assertEqual(together, self.cluster.sql(query, dbname=ALONE[p]), f"seed {seed}: {p}: {query}")
            self.assertEqual(self.cluster.sql(COUNTERS, (p,), dbname="together"),
                             self.cluster.sql(COUNTERS, (p,), dbname=ALONE[p]), f"seed {seed}: {p} counters")
        # The streams did exercise every pipeline.
        for query in ("SELECT count(*) FROM streamrec.recommendation_log", "SELECT count(*) FROM streamrec.trending_counts",
                      "SELECT count(*) FROM streamrec.category_views",
                      "SELECT count(click_id) FROM streamrec.attributed_checkouts"):
            self.assertGreater(self.cluster.value(query, dbname="together"), 0, f"seed {seed}: {query}")


class OptionsCacheTest(ClusterTestCase):
    """Each backend keeps a pipeline's options until streamrec.pipeline_catalog changes: an
    UPDATE of the catalog (through enable_pipeline or by hand, by a superuser) made in one
    session is what the next batch of every other session uses, however long that session has
    been running its own batches."""

    def test_a_catalog_update_reaches_a_backend_that_kept_the_options(self):
        self.sql("INSERT INTO streamrec.inventory (product_id, category, stock, rating) "
                 "SELECT 'p' || n, 'c', 5, n FROM generate_series(0, 9) n")
        self.sql("SELECT streamrec.enable_pipeline('similar_products', '{\"top_k\": 3}')")
        worker = self.cluster.connect()  # one long-lived backend, as a source worker is
        try:
            def view(n):
                with worker.cursor() as cur:
                    cur.execute("INSERT INTO streamrec.clicks (click_id, user_id, product_id, event_type, event_time) "
                                "VALUES (%s, %s, 'p0', 'page_view', %s)", (f"c{n}", f"u{n}", ts(T0 + timedelta(seconds=n))))
                return self.value("SELECT cardinality(product_ids) FROM streamrec.recommendations WHERE user_id = %s",
                                  (f"u{n}",))

            self.assertEqual(view(1), 3)
            self.assertEqual(view(2), 3)  # options now kept by the worker's backend
            self.sql("UPDATE streamrec.pipeline_catalog SET options = options || '{\"top_k\": 5}' "
                     "WHERE name = 'similar_products'")
            self.assertEqual(view(3), 5)
            self.sql("SELECT streamrec.enable_pipeline('similar_products', '{\"top_k\": 2}')")
            self.assertEqual(view(4), 2)
            # A rolled-back change is not seen; the kept options stay valid.
            conn = self.cluster.connect(autocommit=False)
            with conn.cursor() as cur:
                cur.execute("UPDATE streamrec.pipeline_catalog SET options = options || '{\"top_k\": 7}' "
                            "WHERE name = 'similar_products'")
            conn.rollback()
            conn.close()
            self.assertEqual(view(5), 2)
            self.sql("UPDATE streamrec.pipeline_catalog SET enabled = false WHERE name = 'similar_products'")
            self.assertIsNone(view(6))
        finally:
            worker.close()


class InventoryCacheTest(ClusterTestCase):
    """A change of the inventory that commits while a batch's statement runs (after its snapshot
    was taken, before its trigger reads the inventory) is honoured by the next batch: what the
    recommenders keep is read with a snapshot taken after the change generation was."""

    def test_a_change_committed_during_a_batch_is_not_kept_stale(self):
        self.sql("INSERT INTO streamrec.inventory (product_id, category, stock, rating) "
                 "SELECT 'p' || n, 'c', 5, n FROM generate_series(0, 1199) n")
        self.sql("SELECT streamrec.enable_pipeline('similar_products', '{\"top_k\": 3, \"repeats\": \"allow\"}')")
        best = "p1199"
        worker = self.cluster.connect()
        try:
            def update_during_the_statement():
                time.sleep(1.0)
                self.sql("UPDATE streamrec.inventory SET stock = 0 WHERE product_id = %s", (best,))

            changer = threading.Thread(target=update_during_the_statement)
            changer.start()
            with worker.cursor() as cur:
                # 1,200 distinct products: the batch reads (and keeps) the whole inventory. The
                # statement's snapshot is taken before the UPDATE commits; its trigger runs after.
                cur.execute("INSERT INTO streamrec.clicks (click_id, user_id, product_id, event_type, event_time) "
                            "SELECT 'c' || n, 'u' || n, 'p' || n, 'page_view', %s::timestamptz + n * interval '1 ms' "
                            "FROM generate_series(0, 1199) n, LATERAL (SELECT pg_catalog.pg_sleep(CASE WHEN n = 0 "
                            "THEN 3 ELSE 0 END)) s", (ts(T0),))
            changer.join()
            with worker.cursor() as cur:
                cur.execute("INSERT INTO streamrec.clicks (click_id, user_id, product_id, event_type, event_time) "
                            "VALUES ('next', 'v', 'p0', 'page_view', %s)", (ts(T0 + timedelta(minutes=1)),))
            self.assertEqual(self.value("SELECT product_ids FROM streamrec.recommendations WHERE user_id = 'v'"),
                             ["p1198", "p1197", "p1196"])
        finally:
            worker.close()
