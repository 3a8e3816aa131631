"""bench/ratings: the ratings pipeline end to end, beside the delivery limit measured in the same
run.

A world of --customers (100k) customers and --products (100k) inventory products is loaded;
--ratings (500k) generated ratings (about 10% test traffic) go into a topic keyed by user. Then,
on the same machine:
  kcat         consumes the rating topic to a file             -> the delivery limit
  end to end   a csv source into streamrec.ratings (--batch-   -> what we deliver: from the
               size rows per batch), the ratings pipeline       source's start until every
               (test traffic, enrichment, unhappy alerts,       rating is stored and processed
               product ratings, status and customer windows)    (the pipeline's committed events)
Prints ratings/s, the ratio to kcat, the issue's goal, the results' counts and the source
worker's private memory."""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from harness import BUILD, Cluster, wait_for  # noqa: E402
from sandbox import Sandbox  # noqa: E402

from bench_util import rss_mb  # noqa: E402

BYTES_PER_PARTITION = 4 * 1024 * 1024  # stay under the sandbox's 5 MiB per partition
BYTES_PER_RATING = 90  # a generated csv rating with its key, rounded up
SEED = 5
GOAL = 50_000  # ratings/s end to end on this 2-core machine


def datagen(kind, *args, stdout=None):
    return subprocess.run([os.path.join(BUILD, "streamrec-datagen"), kind, "--seed", str(SEED), "--quiet",
                           *map(str, args)], check=True, stdout=stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--ratings", type=int, default=500_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    args = parser.parse_args()
    n = args.ratings
    parts = max(4, int(n * BYTES_PER_RATING / BYTES_PER_PARTITION) + 1)
    sandbox = Sandbox(BUILD, topics={"bench.ratings": parts}).start()
    cluster = Cluster("bench-ratings", settings={"streamrec.brokers": f"'{sandbox.bootstrap}'",
                                                 "shared_buffers": "'1GB'", "max_wal_size": "'4GB'"})
    cluster.init().start()
    try:
        cluster.sql("CREATE EXTENSION pg_streamrec")
        customers_file = os.path.join(cluster.dir, "customers.csv")
        inventory_file = os.path.join(cluster.dir, "inventory.csv")
        datagen("customers", "--users", args.customers, "--output", customers_file)
        datagen("inventory", "--products", args.products, "--output", inventory_file)
        for f in (customers_file, inventory_file):
            os.chmod(f, 0o644)
        cluster.sql(f"COPY streamrec.customers FROM '{customers_file}' CSV")
        cluster.sql(f"COPY streamrec.inventory (product_id, category, stock, rating) FROM '{inventory_file}' CSV")
        cluster.sql("VACUUM ANALYZE")
        datagen("ratings", "--count", n, "--users", args.customers, "--products", args.products,
                "--events-per-second", 1000, "--topic", "bench.ratings", "--brokers", sandbox.bootstrap)

        started = time.monotonic()
        with open(os.path.join(cluster.dir, "kcat.out"), "wb") as f:
            subprocess.run(["kcat", "-C", "-b", sandbox.bootstrap, "-t", "bench.ratings", "-o", "beginning", "-e",
                            "-q", "-f", "%k %s\n"], stdout=f, check=True)
        kcat_rate = n / (time.monotonic() - started)

        cluster.sql("SELECT streamrec.enable_pipeline('ratings')")
        started = time.monotonic()
        cluster.sql("SELECT streamrec.create_source('bench_ratings', 'bench.ratings', 'streamrec.ratings', 'csv', "
                    "NULL, %s)", (json.dumps({"batch_size": args.batch_size}),))
        memory = []
        stored_at = []

        def done():
            pid = cluster.value("SELECT pid FROM streamrec.source_stats WHERE name = 'bench_ratings'")
            if pid:
                memory.append(rss_mb(pid))
            if not stored_at and (cluster.value("SELECT rows FROM streamrec.source_stats "
                                                "WHERE name = 'bench_ratings'") or 0) >= n:
                stored_at.append(time.monotonic())
            return (cluster.value("SELECT events FROM streamrec.pipelines WHERE name = 'ratings'") or 0) >= n

        wait_for(done, 1800, interval=0.05, what="every rating processed")
        seconds = time.monotonic() - started
        if not stored_at:  # stored and processed between two polls (the pipeline runs as rows are stored)
            stored_at.append(time.monotonic())
        error = cluster.value("SELECT last_error FROM streamrec.pipelines WHERE name = 'ratings'")
        assert error is None, error
        stored = cluster.value("SELECT count(*) FROM streamrec.ratings")
        enriched = cluster.value("SELECT count(*) FROM streamrec.ratings_enriched")
        test = cluster.value("SELECT count(*) FROM streamrec.test_ratings")
        unhappy = cluster.value("SELECT count(*) FROM streamrec.unhappy_customers")
        windows = cluster.value("SELECT count(*) FROM streamrec.ratings_per_customer")
        assert stored == n, f"{stored} of {n} ratings stored"
        assert enriched > 0 and enriched + test == n, f"{enriched} enriched + {test} test of {n}"
        assert cluster.value("SELECT count(*) FROM streamrec.dead_letters") == 0
        cluster.assert_no_crash()
    finally:
        cluster.destroy()
        sandbox.stop()
        sandbox.cleanup()

    rate = n / seconds
    memory = [m for m in memory if m is not None] or [float("nan")]
    print(f"\nbench/ratings: {n:,} ratings of {args.customers:,} customers on {args.products:,} products, csv, "
          f"{parts} partitions, batches of {args.batch_size:,}, 2 cores")
    print(f"  kcat -C, the rating topic:                   {kcat_rate:>10,.0f} /s")
    print(f"  end to end, topic -> source -> pipeline:     {rate:>10,.0f} /s  (stored after "
          f"{stored_at[0] - started if stored_at else float('nan'):.1f} s, processed after {seconds:.1f} s)")
    print(f"      / kcat: {rate / kcat_rate:.2f}   goal: >= {GOAL:,} ratings/s end to end "
          f"({'met' if rate >= GOAL else 'not met'})")
    print(f"  results: {enriched:,} enriched, {test:,} test, {unhappy:,} unhappy, {windows:,} customer windows")
    print(f"  source worker private memory {memory[len(memory) // 10]:.0f} MB at 10%, {memory[-1]:.0f} MB at the "
          f"end, {max(memory):.0f} MB max")


if __name__ == "__main__":
    main()
