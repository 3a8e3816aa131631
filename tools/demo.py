"""The demo behind tools/demo: a throwaway cluster with pg_streamrec preloaded, the sandbox
Kafka broker and schema registry, and the similar-products recommender played end to end: a generated inventory,
Avro purchases and clicks on the Flink job's topic names, the similar_products, trending and
category_affinity pipelines, and recommendations in the Flink job's format read back from
flink.recommended.products with kcat. With --keep it leaves everything running and prints how
to connect."""

import argparse
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from harness import BUILD, Cluster, launcher_activity, wait_for  # noqa: E402
from sandbox import Sandbox  # noqa: E402

TOPICS = {"flink.click.streams": 4, "flink.sales.records": 4, "flink.recommended.products": 4,
          "transaction.log.1": 1, "query.input.log.1": 1, "transaction.results": 1, "query.output.log.1": 1,
          "clicks": 1, "checkouts": 1, "attributed.checkouts": 1, "ratings": 1, "UNHAPPY_PLATINUM_CUSTOMERS": 1}


def banner(text):
    print(f"\n--- {text}", flush=True)


def psql(cluster, *args, stop_on_error=True):
    """Runs psql as a user would and shows its output."""
    env = dict(os.environ, **cluster.psql_env())
    subprocess.run([os.path.join(cluster.bindir, "psql"), "-X", "-v", f"ON_ERROR_STOP={int(stop_on_error)}", *args],
                   env=env, check=stop_on_error)


def datagen(kind, *args):
    return subprocess.run([os.path.join(BUILD, "streamrec-datagen"), kind, "--quiet", *args], check=True,
                          stdout=subprocess.PIPE, text=True).stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the cluster and broker running")
    args = parser.parse_args()

    sandbox = Sandbox(BUILD, topics=TOPICS)
    cluster = None
    try:
        banner("starting the sandbox Kafka broker and schema registry")
        sandbox.start()
        print(f"bootstrap: {sandbox.bootstrap}\nregistry:  {sandbox.registry_url}")
        subprocess.run(["kcat", "-L", "-b", sandbox.bootstrap], check=True)

        banner("starting a PostgreSQL 15 cluster with shared_preload_libraries = 'pg_streamrec'")
        cluster = Cluster("demo", settings={"streamrec.brokers": f"'{sandbox.bootstrap}'",
                                            "streamrec.max_workers": 16}).init().start()
        print(f"launcher: {wait_for(lambda: launcher_activity(cluster), what='launcher')}")
        psql(cluster, "-c", "CREATE EXTENSION pg_streamrec")
        wait_for(lambda: "watching" in (launcher_activity(cluster) or ""), what="launcher to see the extension")
        print(f"launcher: {launcher_activity(cluster)}")
        psql(cluster, "-c", "\\dt streamrec.*")

        banner("loading a generated inventory (product_id,category,stock,rating CSV)")
        inventory = os.path.join(cluster.dir, "productInventory.csv")
        datagen("inventory", "--format", "csv", "--products", "200", "--categories", "8",
                "--seed", "42", "--output", inventory)
        with open(inventory) as f:
            print("".join(f.readlines()[:5]) + "...")
        psql(cluster, "-c", f"\\copy streamrec.inventory(product_id, category, stock, rating) FROM '{inventory}' CSV")
        psql(cluster, "-c", "SELECT category, count(*) AS products, count(*) FILTER (WHERE stock > 0) AS in_stock, "
                            "round(avg(rating)::numeric, 2) AS avg_rating "
                            "FROM streamrec.inventory GROUP BY category ORDER BY category")
        psql(cluster, "-c", "SELECT product_id, category, stock, rating FROM streamrec.inventory "
                            "WHERE category = (SELECT category FROM streamrec.inventory WHERE product_id = '140') "
                            "AND stock > 0 ORDER BY rating DESC, product_id LIMIT 6")

        banner("similar products: the similar-products recommender, computed by C++ triggers inside PostgreSQL")
        psql(cluster, "-c", "SELECT streamrec.enable_pipeline('similar_products', "
                            "'{\"output_topic\": \"flink.recommended.products\"}')",
             "-c", "SELECT streamrec.enable_pipeline('trending', '{\"window\": \"1 minute\", \"top_n\": 3}')",
             "-c", "SELECT streamrec.enable_pipeline('category_affinity')",
             "-c", "SELECT name, enabled, sinks FROM streamrec.pipelines ORDER BY name")

        registry = f'{{"schema_registry": "{sandbox.registry_url}"}}'
        banner("2000 Avro purchases on flink.sales.records (plus one message that is not Avro)")
        datagen("purchases", "--format", "avro", "--count", "2000", "--seed", "42", "--products", "200",
                "--topic", "flink.sales.records", "--brokers", sandbox.bootstrap, "--registry", sandbox.registry_url)
        subprocess.run(["kcat", "-P", "-b", sandbox.bootstrap, "-t", "flink.sales.records", "-p", "0"],
                       input="this is not an avro record\n", text=True, check=True)
        psql(cluster, "-c", "SELECT streamrec.create_source('purchases', 'flink.sales.records', 'streamrec.purchases', "
                            f"'avro', options => '{registry}')")
        wait_for(lambda: cluster.value("SELECT count(*) FROM streamrec.purchases") == 2000, 30, what="2000 purchases")
        wait_for(lambda: cluster.value("SELECT count(*) FROM streamrec.dead_letters") == 1, 30, what="a dead letter")
        psql(cluster, "-c", "SELECT source, partition, \"offset\", convert_from(payload, 'UTF8') AS payload, error "
                            "FROM streamrec.dead_letters",
             "-c", "SELECT count(*) AS purchases, count(DISTINCT user_id) AS users FROM streamrec.purchases",
             "-c", "SELECT user_id, product_id, quantity, purchases FROM streamrec.user_purchases "
                   "WHERE user_id = 'user-27' ORDER BY product_id")

        banner("1000 Avro clicks on flink.click.streams, consumed exactly once into streamrec.clicks")
        datagen("clicks", "--format", "avro", "--count", "1000", "--seed", "42", "--products", "200",
                "--events-per-second", "1",
                "--topic", "flink.click.streams", "--brokers", sandbox.bootstrap, "--registry", sandbox.registry_url)
        psql(cluster, "-c", "SELECT streamrec.create_source('clicks', 'flink.click.streams', 'streamrec.clicks', "
                            f"'avro', options => '{registry}')")
        wait_for(lambda: cluster.value("SELECT count(*) FROM streamrec.clicks") == 1000, 30, what="1000 clicks")
        wait_for(lambda: cluster.value("SELECT pending = 0 AND produced > 0 FROM streamrec.sink_stats"), 30,
                 what="the recommendations on the output topic")
        psql(cluster, "-c", "SELECT name, state, messages, rows, dead_letters, batches, lag FROM streamrec.source_stats",
             "-c", "SELECT name, events, outputs, skipped FROM streamrec.pipelines ORDER BY name",
             "-c", "SELECT name, state, produced, pending, failed FROM streamrec.sink_stats")

        banner("flink.recommended.products, read with kcat: the Flink job's key and csv value")
        subprocess.run(["kcat", "-C", "-b", sandbox.bootstrap, "-t", "flink.recommended.products", "-p", "0", "-e",
                        "-q", "-c", "5", "-f", "key %k: %s\n"], check=True)

        banner("the same results from psql")
        psql(cluster, "-c", "SELECT user_id, product_ids, viewed_product_id, category, window_end "
                            "FROM streamrec.recommendations ORDER BY window_end DESC LIMIT 5",
             "-c", "SELECT * FROM streamrec.trending ORDER BY window_start DESC, rank LIMIT 6",
             "-c", "SELECT * FROM streamrec.user_recommendations WHERE user_id = 'user-27'",
             "-c", "SELECT streamrec.recommend('user-27', '140') AS on_demand")

        banner("item_transactions: stock changes from transaction.log.1, results and query answers to topics")
        psql(cluster, "-c", "SELECT streamrec.enable_pipeline('item_transactions', '{\"output_topic\": "
                            "\"transaction.results\", \"query_output_topic\": \"query.output.log.1\"}')")
        stock = cluster.value("SELECT stock FROM streamrec.inventory WHERE product_id = '140'")
        transactions = [f"1,140,5,2024-06-28 13:00:01", f"2,140,-3,2024-06-28 13:00:02",
                        f"3,140,-{stock + 100},2024-06-28 13:00:03",  # more than is in stock: fails
                        "4,new-item,12,2024-06-28 13:00:04", "5,unknown,-1,2024-06-28 13:00:05"]
        subprocess.run(["kcat", "-P", "-b", sandbox.bootstrap, "-t", "transaction.log.1"],
                       input="\n".join(transactions) + "\n", text=True, check=True)
        psql(cluster, "-c", "SELECT streamrec.create_source('transactions', 'transaction.log.1', "
                            "'streamrec.item_transactions')")
        wait_for(lambda: cluster.value("SELECT count(*) FROM streamrec.transaction_results") == 5, 30,
                 what="5 transaction results")
        subprocess.run(["kcat", "-P", "-b", sandbox.bootstrap, "-t", "query.input.log.1"],
                       input="100,140\n101,new-item\n102,unknown\n", text=True, check=True)
        psql(cluster, "-c", "SELECT streamrec.create_source('queries', 'query.input.log.1', 'streamrec.stock_queries')")
        wait_for(lambda: cluster.value("SELECT count(*) FROM streamrec.query_results") == 3, 30, what="3 answers")
        wait_for(lambda: cluster.value("SELECT sum(pending) FROM streamrec.sink_stats") == 0 and
                 cluster.value("SELECT sum(produced) FROM streamrec.sink_stats WHERE name LIKE 'pipeline_item%'") == 8,
                 30, what="results and answers on their topics")
        psql(cluster, "-c", "SELECT transaction_id, item_id, quantity, success, stock_after "
                            "FROM streamrec.transaction_results ORDER BY transaction_id",
             "-c", "SELECT query_id, item_id, stock FROM streamrec.query_results ORDER BY query_id")
        print("The 13:00 window's summaries are written when it closes: here after idle_timeout (5 s) "
              "without new transactions.", flush=True)
        wait_for(lambda: cluster.value("SELECT sum(succeeded + failed) FROM streamrec.transaction_summaries") == 5,
                 30, what="the window summarized")
        psql(cluster, "-c", "SELECT item_id, window_start, succeeded, failed, volume FROM streamrec.transaction_summaries "
                            "ORDER BY item_id")
        for topic in ("transaction.results", "query.output.log.1"):
            print(f"{topic}:", flush=True)
            subprocess.run(["kcat", "-C", "-b", sandbox.bootstrap, "-t", topic, "-e", "-q", "-f", "  key %k: %s\n"],
                           check=True)

        banner("attribution: first-click attribution; the click arrives after its checkout and corrects it")
        psql(cluster, "-c", "INSERT INTO streamrec.users VALUES ('user-7', 'Ada Lovelace')",
             "-c", "SELECT streamrec.enable_pipeline('attribution', '{\"output_topic\": \"attributed.checkouts\"}')")
        subprocess.run(["kcat", "-P", "-b", sandbox.bootstrap, "-t", "checkouts"], check=True, text=True,
                       input="ck-1,user-7,140,card,59.90,2024-06-28 13:30:00\nck-2,user-8,13,paypal,12.50,2024-06-28 13:31:00\n")
        psql(cluster, "-c", "SELECT streamrec.create_source('checkouts', 'checkouts', 'streamrec.checkouts')")
        wait_for(lambda: cluster.value("SELECT count(*) FROM streamrec.attributed_checkouts") == 2, 30,
                 what="2 checkouts")
        psql(cluster, "-c", "SELECT checkout_id, user_name, product_id, click_id, click_time "
                            "FROM streamrec.attributed_checkouts ORDER BY checkout_id")
        subprocess.run(["kcat", "-P", "-b", sandbox.bootstrap, "-t", "clicks"], check=True, text=True,
                       input="cl-2,user-7,140,page_view,,2024-06-28 13:10:00\ncl-1,user-7,140,page_view,,2024-06-28 12:45:00\n"
                             "cl-0,user-7,140,page_view,,2024-06-28 12:00:00\n")  # cl-0: more than an hour before
        psql(cluster, "-c", "SELECT streamrec.create_source('clicks_csv', 'clicks', 'streamrec.clicks')")
        wait_for(lambda: cluster.value("SELECT click_id FROM streamrec.attributed_checkouts WHERE checkout_id = 'ck-1'")
                 == "cl-1", 30, what="the attribution corrected")
        psql(cluster, "-c", "SELECT checkout_id, user_id, user_name, product_id, checkout_time, click_id, click_time "
                            "FROM streamrec.attributed_checkouts ORDER BY checkout_id")
        wait_for(lambda: cluster.value("SELECT pending FROM streamrec.sink_stats WHERE name = 'pipeline_attribution'")
                 == 0, 30, what="attributions on their topic")
        print("attributed.checkouts (the first attribution, then the correction):", flush=True)
        subprocess.run(["kcat", "-C", "-b", sandbox.bootstrap, "-t", "attributed.checkouts", "-e", "-q",
                        "-f", "  key %k: %s\n"], check=True)

        banner("ratings: ratings enriched with customers; an unhappy platinum customer raises an alert")
        psql(cluster, "-c", "INSERT INTO streamrec.customers VALUES ('42', 'Rick', 'Astley', 'rick@example.com', 'bronze'), "
                            "('7', 'Uma', 'Moreau', 'uma@example.com', 'gold')",
             "-c", "SELECT streamrec.enable_pipeline('ratings', '{\"output_topic\": \"UNHAPPY_PLATINUM_CUSTOMERS\"}')",
             "-c", "SELECT streamrec.create_source('ratings', 'ratings', 'streamrec.ratings')")
        subprocess.run(["kcat", "-P", "-b", sandbox.bootstrap, "-t", "ratings"], check=True, text=True,
                       input="1,42,140,1,iOS,app keeps crashing,2024-06-28 13:00:01\n"
                             "2,7,140,5,web,love it,2024-06-28 13:00:02\n3,42,140,1,web-test,ignore me,2024-06-28 13:00:03\n")
        wait_for(lambda: cluster.value("SELECT count(*) FROM streamrec.ratings") == 3, 30, what="3 ratings")
        print("a customer change as CDC brings it: Rick becomes platinum, and his next bad rating is an alert", flush=True)
        psql(cluster, "-c", "UPDATE streamrec.customers SET club_status = 'platinum' WHERE customer_id = '42'")
        subprocess.run(["kcat", "-P", "-b", sandbox.bootstrap, "-t", "ratings"], check=True, text=True,
                       input="4,42,140,2,android,still crashing,2024-06-28 13:01:30\n")
        wait_for(lambda: cluster.value("SELECT count(*) FROM streamrec.unhappy_customers") == 1, 30, what="the alert")
        psql(cluster, "-c", "SELECT rating_id, full_name, club_status, stars, channel, message "
                            "FROM streamrec.ratings_enriched ORDER BY rating_id",
             "-c", "SELECT rating_id, channel FROM streamrec.test_ratings",
             "-c", "SELECT window_start, club_status, ratings FROM streamrec.ratings_by_club_status ORDER BY 1, 2",
             "-c", "SELECT window_start, full_name, ratings, stars FROM streamrec.ratings_per_customer ORDER BY 1, 2",
             "-c", "SELECT product_id, rating FROM streamrec.inventory WHERE product_id = '140'")
        wait_for(lambda: cluster.value("SELECT pending FROM streamrec.sink_stats WHERE name = 'pipeline_ratings_unhappy'")
                 == 0, 30, what="the alert on its topic")
        print("UNHAPPY_PLATINUM_CUSTOMERS:", flush=True)
        subprocess.run(["kcat", "-C", "-b", sandbox.bootstrap, "-t", "UNHAPPY_PLATINUM_CUSTOMERS", "-e", "-q",
                        "-f", "  key %k: %s\n"], check=True)

        banner("error boundary: a C++ exception inside SQL is a clean ERROR, the session goes on")
        psql(cluster, "-c", "SELECT streamrec._selftest('cpp_error')", "-c", "SELECT 'still connected' AS session",
             stop_on_error=False)
    finally:
        if args.keep and cluster is not None:
            banner("left running (--keep)")
            print(f"psql:      psql -h 127.0.0.1 -p {cluster.port} -U postgres postgres")
            print(f"bootstrap: {sandbox.bootstrap}   (kcat -L -b {sandbox.bootstrap})")
            print(f"registry:  {sandbox.registry_url}")
            print(f"stop with: runuser -u postgres -- {cluster.bindir}/pg_ctl -D {cluster.data} stop; "
                  f"kill {sandbox.pid}")
        else:
            if cluster is not None:
                cluster.assert_no_crash()
                cluster.destroy()
            sandbox.stop()
            print("\ndemo finished; cluster and broker stopped and removed")


if __name__ == "__main__":
    main()
