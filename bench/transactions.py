"""bench/transactions: the item_transactions pipeline end to end, beside limits measured in the
same run.

An inventory of --items (1M) generated items is loaded; --transactions (1M) generated item
transactions (--fail-ratio 0.1 of them designed to overdraw and fail) go into a topic keyed by
item, and 1% as many stock queries into another. Then, on the same machine:
  kcat         consumes the transaction topic to a file       -> the delivery limit
  COPY         loads the same rows from a file into a plain    -> PostgreSQL's loading limit
               table without triggers
  COPY+pipe    loads them into streamrec.item_transactions     -> the pipeline's limit in the
               with the pipeline and its result sink            database (validation, results,
                                                                summaries, outbox)
  end to end   sources on both topics, the pipeline, a sink    -> what we deliver: from the
               per output topic (--members 1,2: once with one   source's start until the broker
               source worker, once with two splitting the       acknowledged the last result
               partitions)                                      (and until every window's
                                                                summary was written)
Prints transactions/s and the ratios, the failed share, and memory: the item state (inventory
rows and index) and window state per million items, and the source worker's private memory."""

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
SEED = 4


def datagen(kind, *args, stdout=None):
    return subprocess.run([os.path.join(BUILD, "streamrec-datagen"), kind, "--seed", str(SEED), "--quiet",
                           *map(str, args)], check=True, stdout=stdout)


def produced(cluster, name):
    return cluster.value("SELECT messages FROM streamrec._worker_stats('k') WHERE name = %s", (name,)) or 0


def load_inventory(cluster, inventory_file, steady_fillfactor):
    # TRUNCATE may meet a sink worker or the launcher's tick: a deadlock is retried.
    wait_for(lambda: cluster.sql("TRUNCATE streamrec.inventory, streamrec.item_transactions, streamrec.stock_queries, "
                "streamrec.transaction_results, streamrec.query_results, streamrec.transaction_summaries, "
                "streamrec.transaction_alerts, streamrec.pipeline_clock, streamrec.pipeline_writers, streamrec.sink_outbox") == [], 60,
             what="tables truncated")
    # Loaded with the extension's fillfactor (80: a fifth of each page free for HOT updates), then
    # raised as README's tuning note suggests, so pages are pruned once per several updates.
    cluster.sql("ALTER TABLE streamrec.inventory SET (fillfactor = 80)")
    cluster.sql(f"COPY streamrec.inventory (product_id, category, stock, rating) FROM '{inventory_file}' CSV")
    cluster.sql("VACUUM ANALYZE streamrec.inventory")
    cluster.sql(f"ALTER TABLE streamrec.inventory SET (fillfactor = {int(steady_fillfactor)})")


def end_to_end(cluster, inventory_file, args, n, queries, members, tx_parts):
    """Sources on both topics, the pipeline and its sinks, from the sources' start until the
    broker acknowledged the last result and until every window was summarized."""
    load_inventory(cluster, inventory_file, args.steady_fillfactor)
    cluster.sql("VACUUM streamrec.sink_outbox")
    cluster.sql("SELECT streamrec.enable_pipeline('item_transactions', %s)",
                (json.dumps({"output_topic": "bench.results", "query_output_topic": "bench.answers",
                             "idle_timeout": "1 second"}),))
    wait_for(lambda: cluster.value("SELECT count(*) FROM streamrec.sink_stats WHERE state = 'running'") == 2, 30,
             what="sinks running")
    results_before = produced(cluster, "pipeline_item_transactions")
    answers_before = produced(cluster, "pipeline_item_transactions_queries")
    names = [f"bench_tx_{members}_{i}" for i in range(members)]
    started = time.monotonic()
    for i, name in enumerate(names):
        options = {"batch_size": args.batch_size}
        if members > 1:
            options["partitions"] = list(range(i, tx_parts, members))
        cluster.sql("SELECT streamrec.create_source(%s, 'bench.tx', 'streamrec.item_transactions', 'csv', NULL, %s)",
                    (name, json.dumps(options)))
    cluster.sql("SELECT streamrec.create_source(%s, 'bench.q', 'streamrec.stock_queries', 'csv', NULL, %s)",
                (f"bench_q_{members}", json.dumps({"batch_size": args.batch_size})))
    memory = []
    stored_at = []

    def done():
        pid = cluster.value("SELECT pid FROM streamrec.source_stats WHERE name = %s", (names[0],))
        if pid:
            memory.append(rss_mb(pid))
        if not stored_at and cluster.value("SELECT sum(rows) FROM streamrec.source_stats WHERE name = ANY(%s)",
                                           (names,)) >= n:
            stored_at.append(time.monotonic())
        return produced(cluster, "pipeline_item_transactions") - results_before >= n

    wait_for(done, 1800, interval=0.05, what="every result acknowledged")
    e2e_seconds = time.monotonic() - started
    # The last window closes once the stream is idle for idle_timeout (1 s here).
    wait_for(lambda: cluster.value("SELECT sum(succeeded + failed) FROM streamrec.transaction_summaries") == n,
             120, interval=0.05, what="every window summarized")
    summarized_seconds = time.monotonic() - started
    late = cluster.value("SELECT late FROM streamrec.pipelines WHERE name = 'item_transactions'")
    wait_for(lambda: produced(cluster, "pipeline_item_transactions_queries") - answers_before >= queries, 120,
             what="every query answer acknowledged")
    assert cluster.value("SELECT count(*) FROM streamrec.transaction_results") == n
    assert cluster.value("SELECT count(DISTINCT transaction_id) FROM streamrec.transaction_results") == n
    assert cluster.value("SELECT count(*) FROM streamrec.query_results") == queries
    assert cluster.value("SELECT count(*) FROM streamrec.dead_letters") == 0
    for name in names + [f"bench_q_{members}"]:
        cluster.sql("SELECT streamrec.drop_source(%s)", (name,))
    cluster.sql("SELECT streamrec.disable_pipeline('item_transactions')")
    return {"seconds": e2e_seconds, "stored": stored_at[0] - started if stored_at else float("nan"),
            "summarized": summarized_seconds, "late": late, "memory": [m for m in memory if m is not None]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--fail-ratio", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=10000)
    parser.add_argument("--steady-fillfactor", type=int, default=100,
                        help="inventory fillfactor after loading (80: leave the extension's setting)")
    parser.add_argument("--members", type=lambda v: [int(m) for m in v.split(",")], default=[1],
                        help="end-to-end runs with this many source workers each, e.g. 1,2 (default 1)")
    args = parser.parse_args()
    n, items = args.transactions, args.items
    queries = max(1, n // 100)
    tx_args = ["--count", n, "--products", items, "--fail-ratio", args.fail_ratio, "--events-per-second", 50000]

    tx_parts = max(4, int(n * (32 + 40) / BYTES_PER_PARTITION) + 1)
    out_parts = max(4, int(2 * n * (40 + 40) / BYTES_PER_PARTITION) + 1)  # two end-to-end runs
    sandbox = Sandbox(BUILD, topics={"bench.tx": tx_parts, "bench.q": 4, "bench.results": out_parts,
                                     "bench.answers": 4}).start()
    cluster = Cluster("bench-transactions", settings={"streamrec.brokers": f"'{sandbox.bootstrap}'",
                                                      "shared_buffers": "'512MB'", "max_wal_size": "'4GB'"})
    cluster.init().start()
    try:
        cluster.sql("CREATE EXTENSION pg_streamrec")
        inventory_file = os.path.join(cluster.dir, "inventory.csv")
        tx_file = os.path.join(cluster.dir, "transactions.csv")
        datagen("inventory", "--products", items, "--output", inventory_file)
        datagen("item_transactions", *tx_args, "--output", tx_file)
        for f in (inventory_file, tx_file):
            os.chmod(f, 0o644)
        datagen("item_transactions", *tx_args, "--topic", "bench.tx", "--brokers", sandbox.bootstrap)
        datagen("stock_queries", "--count", queries, "--products", items, "--topic", "bench.q",
                "--brokers", sandbox.bootstrap)

        started = time.monotonic()
        with open(os.path.join(cluster.dir, "kcat.out"), "wb") as f:
            subprocess.run(["kcat", "-C", "-b", sandbox.bootstrap, "-t", "bench.tx", "-o", "beginning", "-e", "-q",
                            "-f", "%k %s\n"], stdout=f, check=True)
        kcat_rate = n / (time.monotonic() - started)

        cluster.sql("CREATE TABLE copy_tx (LIKE streamrec.item_transactions)")
        started = time.monotonic()
        cluster.sql(f"COPY copy_tx FROM '{tx_file}' CSV")
        copy_rate = n / (time.monotonic() - started)
        cluster.sql("DROP TABLE copy_tx")

        # The pipeline inside the database: COPY into the domain table fires it in one statement
        # per 10,000 rows, as a source's batches would.
        load_inventory(cluster, inventory_file, args.steady_fillfactor)
        cluster.sql("SELECT streamrec.enable_pipeline('item_transactions', %s)",
                    (json.dumps({"output_topic": "bench.results", "query_output_topic": "bench.answers"}),))
        cluster.sql("SELECT streamrec.pause_sink('pipeline_item_transactions')")
        cluster.sql("SELECT streamrec.pause_sink('pipeline_item_transactions_queries')")
        with open(tx_file) as f:
            lines = f.read().splitlines(keepends=True)
        conn = cluster.connect()
        started = time.monotonic()
        with conn.cursor() as cur:
            import io
            for i in range(0, n, args.batch_size):
                cur.copy_expert("COPY streamrec.item_transactions FROM STDIN CSV",
                                io.StringIO("".join(lines[i:i + args.batch_size])))
        pipe_rate = n / (time.monotonic() - started)
        conn.close()
        failed_share = cluster.value("SELECT avg((NOT success)::int)::float8 FROM streamrec.transaction_results")
        assert cluster.value("SELECT count(*) FROM streamrec.transaction_results") == n
        cluster.sql("SELECT streamrec.disable_pipeline('item_transactions')")

        # End to end, with --members source workers splitting the partitions (the topic is keyed
        # by item, so each worker owns its items).
        runs = {}
        for members in args.members:
            runs[members] = end_to_end(cluster, inventory_file, args, n, queries, members, tx_parts)
        inventory_bytes = cluster.value("SELECT pg_total_relation_size('streamrec.inventory')")
        summaries, summary_bytes = cluster.sql(
            "SELECT count(*), pg_total_relation_size('streamrec.transaction_summaries') "
            "FROM streamrec.transaction_summaries")[0]
    finally:
        cluster.destroy()
        sandbox.stop()
        sandbox.cleanup()

    per_million = 1_000_000 / items
    print(f"\nbench/transactions: {n:,} transactions over {items:,} items ({failed_share:.1%} failed), "
          f"{queries:,} queries, csv, {tx_parts} partitions, 2 cores, inventory fillfactor 80 for the load "
          f"then {args.steady_fillfactor}")
    print(f"  kcat -C, the transaction topic:                    {kcat_rate:>10,.0f} /s")
    print(f"  COPY into a plain table (no pipeline):             {copy_rate:>10,.0f} /s")
    print(f"  COPY into item_transactions, pipeline + outbox:    {pipe_rate:>10,.0f} /s")
    for members, run in runs.items():
        rate = n / run["seconds"]
        print(f"  end to end, {members} source worker{'s' if members > 1 else ' '}, topic -> acknowledged result: "
              f"{rate:>10,.0f} /s (stored after {run['stored']:.1f} s, all results acknowledged after "
              f"{run['seconds']:.1f} s, every window summarized after {run['summarized']:.1f} s; {run['late']:,} late)")
        print(f"      / kcat: {rate / kcat_rate:.2f}   / COPY+pipeline: {rate / pipe_rate:.2f}")
    print(f"  COPY+pipeline / plain COPY: {pipe_rate / copy_rate:.2f}   goal: >= 300,000 transactions/s end to end")
    memory = runs[args.members[0]]["memory"]
    print(f"  memory per million items: item state (inventory rows + index) {inventory_bytes * per_million / 2**20:.0f} MB "
          f"on disk/in shared buffers; window state {summary_bytes / max(summaries, 1):.0f} B per item-window "
          f"({summaries:,} windows); source worker private memory {memory[len(memory) // 10]:.0f} MB at 10%, "
          f"{memory[-1]:.0f} MB at the end, {max(memory):.0f} MB max")

if __name__ == "__main__":
    main()
