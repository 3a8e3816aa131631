"""Dimensions replicated from one place: three servers on one machine, and a hot standby of one
of them. The hub maintains users,
customers and the inventory rows of its products; an item owner runs item_transactions over its
items and so owns their stock; the recommender subscribes to both by logical replication and
runs similar_products, attribution and ratings. Every change made on the server that owns a row
is honoured by the recommender's next event once the row is replicated: a stock change, a
category and a rating change, a user's name, a customer's club status, and the stock and the
items that item_transactions changes and creates on the owner; and recommend() on a hot standby
of the recommender follows the replay. The clicks go through one backend that lives across all
of them, as a source worker does (the lookups through one backend of the standby), so what they
keep of the inventory is put to the test; a replicated row is waited for by polling it, never
by sleeping."""

import datetime
import unittest

import psycopg2

from harness import REPLICATION_SETTINGS, Cluster, make_standby, wait_for

T0 = datetime.datetime(2024, 6, 28, 13, 0, 0, tzinfo=datetime.timezone.utc)
LOGICAL = {"wal_level": "logical", "max_wal_senders": 10, "max_replication_slots": 10}
# What a subscriber needs: an apply worker per subscription plus table sync workers (and, for
# the recommender, what its hot standby needs).
SUBSCRIBER = dict(REPLICATION_SETTINGS, max_logical_replication_workers=8, max_sync_workers_per_subscription=2)

HUB_INVENTORY = [
    # similar_products and stock: category shoes
    ("p1", "shoes", 10, 4.9), ("p2", "shoes", 10, 4.8), ("p3", "shoes", 10, 4.5), ("p4", "shoes", 10, 4.0),
    ("p5", "shoes", 10, 3.5), ("p6", "shoes", 10, 3.0),
    # category and rating changes: bags and hats
    ("b1", "bags", 5, 4.0), ("b2", "bags", 5, 3.0), ("b3", "bags", 5, 2.0), ("b4", "bags", 5, 1.0),
    ("h1", "hats", 5, 5.0), ("h2", "hats", 5, 4.0),
]
OWNER_INVENTORY = [("i1", "tools", 5, 4.0), ("i2", "tools", 5, 3.0), ("i3", "tools", 5, 2.0), ("i4", "tools", 5, 1.0)]


class DimensionsTest(unittest.TestCase):

    clusters = []

    @classmethod
    def setUpClass(cls):
        try:
            cls.set_up_servers()
        except BaseException:
            for cluster in cls.clusters:
                cluster.destroy()
            raise

    @classmethod
    def set_up_servers(cls):
        cls.hub = Cluster("dims-hub", settings=LOGICAL)
        cls.owner = Cluster("dims-owner", settings=LOGICAL)
        cls.rec = Cluster("dims-rec", settings=SUBSCRIBER)
        cls.clusters = [cls.rec, cls.owner, cls.hub]  # in the order they are stopped: subscribers first
        for cluster in cls.clusters:
            cluster.init().start()
        for cluster in (cls.hub, cls.owner, cls.rec):
            cluster.sql("CREATE EXTENSION pg_streamrec")

        cls.insert_inventory(cls.hub, HUB_INVENTORY)
        cls.hub.sql("INSERT INTO streamrec.users VALUES ('u1', 'Ann'), ('u2', 'Bob')")
        cls.hub.sql("INSERT INTO streamrec.customers VALUES ('c1', 'Cid', 'Moe', 'cid@example.com', 'gold'), "
                    "('c2', 'Dee', 'Lee', 'dee@example.com', 'silver')")
        cls.owner.sql("SELECT streamrec.enable_pipeline('item_transactions')")
        cls.insert_inventory(cls.owner, OWNER_INVENTORY)

        # Each owner publishes the inventory rows it writes: the hub its products, the owner its
        # items (no TRUNCATE: on the recommender the table holds the rows of both). The hub also
        # publishes users and customers.
        cls.hub.sql("CREATE PUBLICATION streamrec_dimensions FOR TABLE streamrec.users, streamrec.customers")
        for publisher in (cls.hub, cls.owner):
            publisher.sql("CREATE PUBLICATION streamrec_inventory FOR TABLE streamrec.inventory "
                          "WITH (publish = 'insert, update, delete')")
        cls.rec.sql(f"CREATE SUBSCRIPTION dimensions_hub CONNECTION '{cls.hub.dsn()}' "
                    "PUBLICATION streamrec_dimensions, streamrec_inventory")
        cls.rec.sql(f"CREATE SUBSCRIPTION inventory_owner CONNECTION '{cls.owner.dsn()}' "
                    "PUBLICATION streamrec_inventory")
        wait_for(lambda: cls.rec.value("SELECT count(*) FILTER (WHERE srsubstate = 'r') = 4 AND count(*) = 4 "
                                       "FROM pg_subscription_rel"), 90, 0.2, what="the initial table sync")
        inventory = sorted(HUB_INVENTORY + OWNER_INVENTORY)
        assert cls.inventory(cls.rec) == inventory, cls.inventory(cls.rec)
        # The row trigger for applied rows is on the subscriber's inventory only.
        assert [cls.replicated_trigger(c) for c in (cls.hub, cls.owner, cls.rec)] == [None, None, "R"]

        cls.rec.sql("SELECT streamrec.enable_pipeline('similar_products', '{\"repeats\": \"allow\"}')")
        cls.rec.sql("SELECT streamrec.enable_pipeline('attribution')")
        cls.rec.sql("SELECT streamrec.enable_pipeline('ratings')")
        # One backend for every click, as a source worker: what it keeps of the inventory
        # between batches must follow the replicated changes.
        cls.clicks = cls.rec.connect()
        cls.views = 0
        # A read replica of the recommender, and one backend there serving recommend().
        cls.standby = make_standby(cls.rec, "dims-standby")
        cls.clusters.insert(0, cls.standby)
        cls.lookups = cls.standby.connect()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.clicks.close()
            cls.lookups.close()
            # Nothing the recommender applied failed (a conflict, a trigger's error).
            stats = cls.rec.sql("SELECT subname, apply_error_count, sync_error_count FROM pg_stat_subscription_stats "
                                "ORDER BY subname")
            assert stats == [("dimensions_hub", 0, 0), ("inventory_owner", 0, 0)], stats
            for cluster in cls.clusters:
                cluster.assert_no_crash()
        finally:
            for cluster in cls.clusters:
                cluster.destroy()

    @staticmethod
    def insert_inventory(cluster, rows):
        conn = cluster.connect()
        try:
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO streamrec.inventory (product_id, category, stock, rating) "
                                "VALUES (%s, %s, %s, %s)", rows)
        finally:
            conn.close()

    @staticmethod
    def replicated_trigger(cluster):
        """tgenabled of the inventory's row trigger for applied rows (None: there is none)."""
        return cluster.value("SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'streamrec.inventory'::regclass "
                             "AND tgname = 'streamrec_inventory_replicated'")

    @staticmethod
    def inventory(cluster):
        return [(p, c, s, float(r) if r is not None else None) for p, c, s, r in
                cluster.sql("SELECT product_id, category, stock, rating::numeric(3, 1) FROM streamrec.inventory "
                            "ORDER BY product_id")]

    def replicated(self, query, expected, what):
        """Waits until query on the recommender returns expected (one value)."""
        wait_for(lambda: self.rec.value(query) == expected, 60, 0.05, what=what)

    def view(self, product):
        """A page view of product by a new user on the clicks backend; the list it got (None: none)."""
        type(self).views += 1
        user = f"viewer{self.views}"
        with self.clicks.cursor() as cur:
            cur.execute("INSERT INTO streamrec.clicks (click_id, user_id, product_id) VALUES (%s, %s, %s)",
                        (f"view{self.views}", user, product))
            cur.execute("SELECT product_ids FROM streamrec.recommendations WHERE user_id = %s", (user,))
            row = cur.fetchone()
        return row[0] if row else None

    def test_stock_change_on_the_owner_is_honoured_by_the_next_click(self):
        # Twice, so the clicks backend keeps the whole inventory from here on.
        self.assertEqual(self.view("p1"), ["p2", "p3", "p4", "p5", "p6"])
        self.assertEqual(self.view("p1"), ["p2", "p3", "p4", "p5", "p6"])
        self.hub.sql("UPDATE streamrec.inventory SET stock = 0 WHERE product_id = 'p2'")
        self.replicated("SELECT stock FROM streamrec.inventory WHERE product_id = 'p2'", 0, "p2 out of stock")
        self.assertEqual(self.view("p1"), ["p3", "p4", "p5", "p6"])
        self.assertEqual(self.view("p1"), ["p3", "p4", "p5", "p6"])
        # Back in stock, and another product gone, in one transaction of the hub.
        self.hub.sql("UPDATE streamrec.inventory SET stock = CASE product_id WHEN 'p2' THEN 3 ELSE 0 END "
                     "WHERE product_id IN ('p2', 'p5')")
        self.replicated("SELECT stock FROM streamrec.inventory WHERE product_id = 'p2'", 3, "p2 back in stock")
        self.assertEqual(self.view("p1"), ["p2", "p3", "p4", "p6"])
        self.assertEqual(self.view("p1"), ["p2", "p3", "p4", "p6"])
        # A product deleted and one added.
        self.hub.sql("DELETE FROM streamrec.inventory WHERE product_id = 'p3'")
        self.hub.sql("INSERT INTO streamrec.inventory (product_id, category, stock, rating) "
                     "VALUES ('p7', 'shoes', 1, 4.7)")
        self.replicated("SELECT string_agg(product_id, ',' ORDER BY product_id) FROM streamrec.inventory "
                        "WHERE product_id IN ('p3', 'p7')", "p7", "p3 deleted and p7 added")
        self.assertEqual(self.view("p1"), ["p2", "p7", "p4", "p6"])

    def recommend(self, product):
        """streamrec.recommend() on the recommender's hot standby, through one backend there."""
        with self.lookups.cursor() as cur:
            cur.execute("SELECT streamrec.recommend('reader', %s)", (product,))
            return cur.fetchone()[0]

    def test_lookups_on_a_standby_of_the_recommender_follow_the_replay(self):
        """On a hot standby no trigger fires: what recommend() keeps of the inventory follows the
        WAL replay there (hub -> recommender by logical replication -> its standby by streaming)."""
        self.hub.sql("INSERT INTO streamrec.inventory (product_id, category, stock, rating) "
                     "VALUES ('g1', 'gloves', 1, 3), ('g2', 'gloves', 1, 2), ('g3', 'gloves', 1, 1)")
        wait_for(lambda: self.standby.value("SELECT count(*) FROM streamrec.inventory WHERE category = 'gloves'") == 3,
                 60, 0.05, what="the gloves on the standby")
        self.assertEqual(self.standby.value("SELECT pg_is_in_recovery()"), True)
        self.assertEqual(self.recommend("g1"), ["g2", "g3"])
        self.assertEqual(self.recommend("g1"), ["g2", "g3"])
        self.hub.sql("UPDATE streamrec.inventory SET stock = 0 WHERE product_id = 'g2'")
        wait_for(lambda: self.standby.value("SELECT stock FROM streamrec.inventory WHERE product_id = 'g2'") == 0,
                 60, 0.05, what="g2 out of stock on the standby")
        self.assertEqual(self.recommend("g1"), ["g3"])
        self.assertEqual(self.recommend("g1"), ["g3"])

    def test_category_and_rating_changes_are_honoured(self):
        self.assertEqual(self.view("b1"), ["b2", "b3", "b4"])
        self.assertEqual(self.view("h1"), ["h2"])
        self.hub.sql("UPDATE streamrec.inventory SET category = CASE product_id WHEN 'b3' THEN 'hats' ELSE category END, "
                     "rating = CASE product_id WHEN 'b4' THEN 4.5 ELSE rating END WHERE product_id IN ('b3', 'b4')")
        self.replicated("SELECT rating = 4.5 FROM streamrec.inventory WHERE product_id = 'b4'", True,
                        "b4's rating and b3's category")
        self.assertEqual(self.view("b1"), ["b4", "b2"])
        self.assertEqual(self.view("h1"), ["h2", "b3"])
        self.assertEqual(self.view("b3"), ["h1", "h2"])

    def test_user_name_change_is_used_by_the_next_attribution(self):
        def checkout(checkout_id, click_id, at):
            self.rec.sql("INSERT INTO streamrec.clicks (click_id, user_id, product_id, event_time) "
                         "VALUES (%s, 'u1', 'p4', %s)", (click_id, at))
            self.rec.sql("INSERT INTO streamrec.checkouts (checkout_id, user_id, product_id, checkout_time) "
                         "VALUES (%s, 'u1', 'p4', %s)", (checkout_id, at + datetime.timedelta(minutes=1)))
            return self.rec.sql("SELECT checkout_id, user_id, user_name, product_id, click_id, click_time "
                                "FROM streamrec.attributed_checkouts WHERE checkout_id = %s", (checkout_id,))

        self.assertEqual(checkout("k1", "a1", T0), [("k1", "u1", "Ann", "p4", "a1", T0)])
        self.hub.sql("UPDATE streamrec.users SET name = 'Anna' WHERE user_id = 'u1'")
        self.replicated("SELECT name FROM streamrec.users WHERE user_id = 'u1'", "Anna", "u1's new name")
        later = T0 + datetime.timedelta(hours=2)
        self.assertEqual(checkout("k2", "a2", later), [("k2", "u1", "Anna", "p4", "a2", later)])

    def test_club_status_change_is_used_by_the_next_enrichment(self):
        def rate(rating_id, at):
            self.rec.sql("INSERT INTO streamrec.ratings (rating_id, user_id, stars, channel, message, rating_time) "
                         "VALUES (%s, 'c1', 2, 'web', 'meh', %s)", (rating_id, at))

        rate("r1", T0)
        self.hub.sql("UPDATE streamrec.customers SET club_status = 'platinum' WHERE customer_id = 'c1'")
        self.replicated("SELECT club_status FROM streamrec.customers WHERE customer_id = 'c1'", "platinum",
                        "c1's new club status")
        rate("r2", T0 + datetime.timedelta(seconds=10))
        self.assertEqual(self.rec.sql("SELECT rating_id, customer_id, full_name, club_status, email "
                                      "FROM streamrec.ratings_enriched ORDER BY rating_id"),
                         [("r1", "c1", "Cid Moe", "gold", "cid@example.com"),
                          ("r2", "c1", "Cid Moe", "platinum", "cid@example.com")])
        self.assertEqual(self.rec.sql("SELECT rating_id, customer_id, club_status, stars "
                                      "FROM streamrec.unhappy_customers"), [("r2", "c1", "platinum", 2)])

    def test_item_transactions_on_the_owner_reach_the_recommender(self):
        self.assertEqual(self.view("i1"), ["i2", "i3", "i4"])
        self.assertEqual(self.view("i1"), ["i2", "i3", "i4"])
        # i2 sold out, a sale of i3 refused, and i9 restocked: unknown until now, so created.
        self.owner.sql("INSERT INTO streamrec.item_transactions (transaction_id, item_id, quantity) "
                       "VALUES (1, 'i2', -5), (2, 'i3', -100), (3, 'i9', 7)")
        self.assertEqual(self.owner.sql("SELECT transaction_id, item_id, success, stock_after "
                                        "FROM streamrec.transaction_results ORDER BY transaction_id"),
                         [(1, "i2", True, 0), (2, "i3", False, 5), (3, "i9", True, 7)])
        self.replicated("SELECT stock FROM streamrec.inventory WHERE product_id = 'i9'", 7, "i9 created")
        self.assertEqual(self.rec.value("SELECT stock FROM streamrec.inventory WHERE product_id = 'i2'"), 0)
        self.assertEqual(self.view("i1"), ["i3", "i4"])
        # The owner puts its new item in the tools category, and it is a candidate at once.
        self.owner.sql("UPDATE streamrec.inventory SET category = 'tools', rating = 5 WHERE product_id = 'i9'")
        self.replicated("SELECT category FROM streamrec.inventory WHERE product_id = 'i9'", "tools",
                        "i9's category")
        self.assertEqual(self.view("i1"), ["i9", "i3", "i4"])
        self.assertEqual(self.view("i1"), ["i9", "i3", "i4"])
        # Restocked on the owner through a transaction: back as a candidate.
        self.owner.sql("INSERT INTO streamrec.item_transactions (transaction_id, item_id, quantity) VALUES (4, 'i2', 2)")
        self.replicated("SELECT stock FROM streamrec.inventory WHERE product_id = 'i2'", 2, "i2 restocked")
        self.assertEqual(self.view("i1"), ["i9", "i2", "i3", "i4"])
        # The owner's own view is its items only, as it wrote them.
        self.assertEqual(self.inventory(self.owner), [("i1", "tools", 5, 4.0), ("i2", "tools", 2, 3.0),
                                                      ("i3", "tools", 5, 2.0), ("i4", "tools", 5, 1.0),
                                                      ("i9", "tools", 7, 5.0)])

    def test_row_trigger_exists_while_a_subscription_replicates_the_inventory(self):
        """Created and dropped by the subscription commands (an event trigger), on the owner here
        with subscriptions that never apply anything (disabled, no initial copy)."""
        def subscribe(name, publication):
            self.owner.sql(f"CREATE SUBSCRIPTION {name} CONNECTION '{self.hub.dsn()}' PUBLICATION {publication} "
                           "WITH (enabled = false, copy_data = false)")

        subscribe("probe_people", "streamrec_dimensions")
        self.assertIsNone(self.replicated_trigger(self.owner))
        subscribe("probe_inventory", "streamrec_inventory")
        self.assertEqual(self.replicated_trigger(self.owner), "R")
        self.owner.sql("DROP SUBSCRIPTION probe_people")
        self.assertEqual(self.replicated_trigger(self.owner), "R")
        self.owner.sql("ALTER SUBSCRIPTION probe_inventory SET PUBLICATION streamrec_dimensions WITH (refresh = false)")
        self.assertEqual(self.replicated_trigger(self.owner), "R")  # (the tables change at the next refresh)
        self.owner.sql("DROP SUBSCRIPTION probe_inventory")
        self.assertIsNone(self.replicated_trigger(self.owner))
        # The owner's item_transactions go on, without the trigger.
        self.assertEqual(self.owner.value("SELECT count(*) FROM pg_subscription"), 0)

    def test_publishing_and_subscribing_need_a_superuser(self):
        """streamrec_admin may not publish the extension's tables (their owner may) nor subscribe
        (PostgreSQL 15: superusers only)."""
        for cluster in (self.hub, self.rec):
            cluster.sql("DO $$ BEGIN CREATE ROLE dims_admin IN ROLE streamrec_admin; "
                        "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
            cluster.sql("GRANT CREATE ON DATABASE postgres TO dims_admin")
        with self.assertRaises(psycopg2.Error) as caught:
            self.hub.sql("CREATE PUBLICATION p FOR TABLE streamrec.inventory", role="dims_admin")
        self.assertEqual(caught.exception.pgcode, "42501")
        self.assertIn("must be owner of table inventory", caught.exception.pgerror)
        with self.assertRaises(psycopg2.Error) as caught:
            self.rec.sql(f"CREATE SUBSCRIPTION s CONNECTION '{self.hub.dsn()}' PUBLICATION streamrec_inventory "
                         "WITH (connect = false)", role="dims_admin")
        self.assertEqual(caught.exception.pgcode, "42501")
        self.assertIn("must be superuser to create subscriptions", caught.exception.pgerror)


if __name__ == "__main__":
    unittest.main()
