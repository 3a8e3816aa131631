"""bench/pipelines: what each pipeline costs PostgreSQL's loading speed, as a ratio, beside the
goals of the pipeline engine issue.

For each pipeline, in a cluster of its own with only that pipeline enabled:
  plain      COPY into a plain table of the domain table's shape: CREATE TABLE ... (LIKE
             streamrec.X INCLUDING ALL), made after the pipeline is enabled, so it has the domain
             table's columns, defaults, constraints and indexes (checkouts' primary key) and none
             of its triggers (LIKE copies no trigger)                -> PostgreSQL's loading rate
  pipelined  COPY into the domain table, which fires the pipeline   -> the pipeline's rate
  ratio      pipelined rows/s / plain rows/s (the medians of the rounds)
Each COPY is a server-side COPY FROM a file of --batch (10,000) lines, in its own transaction (as a
source worker commits its batches), all of them in one connection. Two rounds' worth of events is
generated as one stream and cut in halves: round 1 loads the first half (plain, then pipelined),
round 2 the second half (plain, then pipelined), so the pipelined round 2 continues the stream
with the state round 1 left, and machine drift shows as a difference between the rounds.

  similar_products   clicks into streamrec.clicks; per-click emit with output_topic set, so every
                     list goes through the outbox; world: 100k products (1,000 categories),
                     200k users, 1M purchases (user_purchases built when the pipeline is enabled)
  attribution        checkouts into streamrec.checkouts; 1M clicks of lookback state (all inside
                     the lookback hour, loaded before enabling, which builds the lookback index),
                     200k users; checkout j follows click group j (2 clicks per checkout, 10%
                     unattributed)
  ratings            ratings into streamrec.ratings (enrichment, test traffic, unhappy-platinum
                     alerts, status and customer windows, product ratings); 100k customers, 100k
                     products in the inventory
  item_transactions  transactions into streamrec.item_transactions, 10% designed to fail, with
                     output_topic set (results through the outbox, as bench/transactions
                     measures it); 1M items in the inventory

The outboxes of the two pipelines with an output topic are drained by their sink workers into a
sandbox broker while the pipelined COPYs run (--sink running: the backlog left at the end of a
round is printed, and drained before the next plain round starts, so plain COPY never shares the
CPU with a sink), or fill with the sink workers paused (--sink paused).

After each pipelined round the result tables are checked (exact counts where the pipeline's
semantics make them exact), so a pipeline that did not run cannot pass for a fast one.

--scale multiplies the world and the events (0.01 to try it in seconds). The end-to-end rates, from
a topic through a source, the pipeline and a sink to the output topic, are measured by
bench/recommend (similar_products), bench/transactions (item_transactions), bench/ratings
(ratings, from the topic until every rating is processed) and bench/sink; the
pipelines' rates with larger state (10M clicks of lookback) by bench/attribution."""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from harness import BUILD, Cluster, wait_for  # noqa: E402
from sandbox import Sandbox  # noqa: E402

SEED = 11
PIPELINES = ["similar_products", "attribution", "ratings", "item_transactions"]
# The goals for the ratio (pipelined rows/s / plain rows/s) on this 2-core machine.
GOALS = {"similar_products": 0.15, "attribution": 0.25, "ratings": 0.15, "item_transactions": 0.15}
# Events per round at --scale 1.
EVENTS = {"similar_products": 200_000, "attribution": 200_000, "ratings": 500_000, "item_transactions": 500_000}
BYTES_PER_PARTITION = 4 * 1024 * 1024  # the sandbox keeps at most 5 MiB per partition
CLICKS_PER_CHECKOUT = 2


# The data generator, into a file the server can read.
def datagen(path, kind, *args):
    subprocess.run([os.path.join(BUILD, "streamrec-datagen"), kind, "--seed", str(SEED), "--quiet",
                    "--output", path, *map(str, args)], check=True)
    os.chmod(path, 0o644)


def split_halves(path, lines_per_chunk):
    """The file's two halves, each as chunk files of lines_per_chunk lines (one source batch each),
    and the lines of each half."""
    with open(path) as f:
        lines = f.readlines()
    half = len(lines) // 2
    halves = []
    for h, part in enumerate((lines[:half], lines[half:])):
        chunks = []
        for i in range(0, len(part), lines_per_chunk):
            chunk = f"{path}.{h}.{i // lines_per_chunk:05d}"
            with open(chunk, "w") as c:
                c.writelines(part[i:i + lines_per_chunk])
            os.chmod(chunk, 0o644)
            chunks.append(chunk)
        halves.append((chunks, part))
    return halves


def timed_copy(cluster, table, chunks):
    """Seconds to COPY every chunk into table, one autocommitted statement each, one connection."""
    cluster.sql("CHECKPOINT")
    conn = cluster.connect()
    try:
        with conn.cursor() as cur:
            start = time.monotonic()
            for chunk in chunks:
                cur.execute(f"COPY {table} FROM '{chunk}' CSV")
            return time.monotonic() - start
    finally:
        conn.close()


# A count that reads 0 for an empty aggregate.
def count(cluster, query):
    return cluster.value(query) or 0


def outbox_note(cluster, sink_mode):
    """The outbox backlog a pipelined round left; with running sinks, waits (untimed) until they
    drained it, so the next plain round does not share the CPU with them."""
    pending = count(cluster, "SELECT sum(pending) FROM streamrec.sink_stats")
    if sink_mode == "paused":
        return f"outbox {pending:,} rows (sinks paused)"
    started = time.monotonic()
    wait_for(lambda: count(cluster, "SELECT sum(pending) FROM streamrec.sink_stats") == 0, 1800, interval=0.1,
             what="the sinks to drain the outbox")
    failed = count(cluster, "SELECT sum(failed) FROM streamrec.sink_stats")
    assert failed == 0, f"{failed} outbox rows failed"
    produced = count(cluster, "SELECT sum(produced) FROM streamrec.sink_stats")
    return (f"outbox backlog at the end {pending:,} rows, drained {time.monotonic() - started:.1f} s later "
            f"({produced:,} messages produced in all)")


# --- the worlds and the checks, one pair per pipeline -----------------------------------------------
# A world function loads the state, enables the pipeline and returns (domain table, file of both
# rounds' events, description). A check function runs after each pipelined round with the lines
# loaded so far, asserts the results match them and returns a note.

def world_similar_products(cluster, work, scale, options):
    products, users = int(100_000 * scale), int(200_000 * scale)
    universe = ("--products", products, "--categories", max(8, int(1_000 * scale)), "--users", users)
    inventory, purchases = os.path.join(work, "inventory.csv"), os.path.join(work, "purchases.csv")
    datagen(inventory, "inventory", *universe)
    datagen(purchases, "purchases", "--count", int(1_000_000 * scale), *universe)
    cluster.sql(f"COPY streamrec.inventory (product_id, category, stock, rating) FROM '{inventory}' CSV")
    cluster.sql(f"COPY streamrec.purchases FROM '{purchases}' CSV")
    cluster.sql("SELECT streamrec.enable_pipeline('similar_products', %s)",
                (json.dumps({"output_topic": options.topics["similar_products"]}),))
    clicks = os.path.join(work, "clicks.csv")
    datagen(clicks, "clicks", "--count", 2 * options.events["similar_products"], *universe)
    return "streamrec.clicks", clicks, f"{products:,} products, {users:,} users, " \
        f"{count(cluster, 'SELECT count(*) FROM streamrec.purchases'):,} purchases"


def check_similar_products(cluster, lines):
    # Every page view of a product gets a list (one recommendation_log row).
    views = sum(1 for line in lines if line.split(",")[3] == "page_view" and line.split(",")[2])
    lists = count(cluster, "SELECT count(*) FROM streamrec.recommendation_log")
    assert 0 < lists == views, f"similar_products: {lists} lists for {views} page views"
    return f"{lists:,} lists for {views:,} page views"


def world_attribution(cluster, work, scale, options):
    n_clicks, users, products = int(1_000_000 * scale), int(200_000 * scale), int(100_000 * scale)
    n_checkouts = 2 * options.events["attribution"]
    # Checkout j follows click group j: the clicks must cover every checkout of both rounds.
    assert n_checkouts * CLICKS_PER_CHECKOUT <= n_clicks, "more checkouts than click groups"
    # All clicks inside one lookback hour: every one of them is live state.
    rate = max(n_clicks / 3300.0, 1.0)
    universe = ("--users", users, "--products", products, "--events-per-second", rate,
                "--clicks-per-checkout", CLICKS_PER_CHECKOUT)
    users_file, clicks = os.path.join(work, "users.csv"), os.path.join(work, "clicks.csv")
    datagen(users_file, "users", "--users", users)
    datagen(clicks, "clicks", "--count", n_clicks, *universe)
    cluster.sql(f"COPY streamrec.users FROM '{users_file}' CSV")
    cluster.sql(f"COPY streamrec.clicks FROM '{clicks}' CSV")
    cluster.sql("SELECT streamrec.enable_pipeline('attribution')")
    checkouts = os.path.join(work, "checkouts.csv")
    datagen(checkouts, "checkouts", "--count", n_checkouts, *universe)
    return "streamrec.checkouts", checkouts, f"{n_clicks:,} clicks of lookback state, {users:,} users"


def check_attribution(cluster, lines):
    attributed = count(cluster, "SELECT count(*) FROM streamrec.attributed_checkouts")
    with_click = count(cluster, "SELECT count(click_id) FROM streamrec.attributed_checkouts")
    assert attributed == len(lines), f"attribution: {attributed} attributed of {len(lines)} checkouts"
    # 10% of the checkouts are generated without a click to find.
    assert with_click >= 0.8 * len(lines), f"attribution: only {with_click} of {len(lines)} with a click"
    return f"{attributed:,} checkouts attributed, {with_click:,} with a click"


def world_ratings(cluster, work, scale, options):
    customers, products = int(100_000 * scale), int(100_000 * scale)
    customers_file, inventory = os.path.join(work, "customers.csv"), os.path.join(work, "inventory.csv")
    datagen(customers_file, "customers", "--users", customers)
    datagen(inventory, "inventory", "--products", products)
    cluster.sql(f"COPY streamrec.customers FROM '{customers_file}' CSV")
    cluster.sql(f"COPY streamrec.inventory (product_id, category, stock, rating) FROM '{inventory}' CSV")
    cluster.sql("SELECT streamrec.enable_pipeline('ratings')")
    ratings = os.path.join(work, "ratings.csv")
    datagen(ratings, "ratings", "--count", 2 * options.events["ratings"], "--users", customers,
            "--products", products, "--events-per-second", 1000)
    return "streamrec.ratings", ratings, f"{customers:,} customers, {products:,} products"


def check_ratings(cluster, lines):
    enriched = count(cluster, "SELECT count(*) FROM streamrec.ratings_enriched")
    test = count(cluster, "SELECT count(*) FROM streamrec.test_ratings")
    windows = count(cluster, "SELECT count(*) FROM streamrec.ratings_per_customer")
    assert enriched > 0 and enriched + test == len(lines), \
        f"ratings: {enriched} enriched + {test} test of {len(lines)} ratings"
    assert windows > 0, "ratings: no customer window"
    return f"{enriched:,} enriched + {test:,} test ratings, {windows:,} customer windows"


def world_item_transactions(cluster, work, scale, options):
    items = int(1_000_000 * scale)
    inventory = os.path.join(work, "inventory.csv")
    datagen(inventory, "inventory", "--products", items)
    cluster.sql(f"COPY streamrec.inventory (product_id, category, stock, rating) FROM '{inventory}' CSV")
    cluster.sql("SELECT streamrec.enable_pipeline('item_transactions', %s)",
                (json.dumps({"output_topic": options.topics["item_transactions"]}),))
    transactions = os.path.join(work, "transactions.csv")
    datagen(transactions, "item_transactions", "--count", 2 * options.events["item_transactions"],
            "--products", items, "--fail-ratio", 0.1, "--events-per-second", 50000)
    return "streamrec.item_transactions", transactions, f"{items:,} items"


def check_item_transactions(cluster, lines):
    results = count(cluster, "SELECT count(*) FROM streamrec.transaction_results")
    failed = count(cluster, "SELECT count(*) FROM streamrec.transaction_results WHERE NOT success")
    assert results == len(lines), f"item_transactions: {results} results of {len(lines)} transactions"
    assert 0 < failed < results, f"item_transactions: {failed} of {results} failed"
    return f"{results:,} results, {failed / results:.1%} failed"


WORLDS = {"similar_products": (world_similar_products, check_similar_products),
          "attribution": (world_attribution, check_attribution),
          "ratings": (world_ratings, check_ratings),
          "item_transactions": (world_item_transactions, check_item_transactions)}


def measure(name, options, sandbox):
    """Both rounds of one pipeline in a cluster of its own; returns the rates and notes."""
    settings = {"shared_buffers": "'2GB'", "max_wal_size": "'8GB'", "checkpoint_timeout": "'30min'"}
    if sandbox is not None:
        settings["streamrec.brokers"] = f"'{sandbox.bootstrap}'"
    cluster = Cluster(f"bench-pipelines-{name}", settings=settings).init().start()
    work = tempfile.mkdtemp(prefix=f"streamrec-bench-pipelines-{name}-")
    os.chmod(work, 0o755)
    world, check = WORLDS[name]
    result = {"plain": [], "pipelined": [], "notes": []}
    try:
        cluster.sql("CREATE EXTENSION pg_streamrec")
        started = time.monotonic()
        table, events_file, description = world(cluster, work, options.scale, options)
        cluster.sql("VACUUM ANALYZE")
        sinks = [r[0] for r in cluster.sql("SELECT name FROM streamrec.sinks ORDER BY name")]
        if sinks and options.sink == "paused":
            for sink in sinks:
                cluster.sql("SELECT streamrec.pause_sink(%s)", (sink,))
        elif sinks:
            wait_for(lambda: count(cluster, "SELECT count(*) FROM streamrec.sink_stats WHERE state = 'running'")
                     == len(sinks), 30, what="sinks running")
        result["world"] = f"{description} (ready in {time.monotonic() - started:.0f} s)"
        plain = "plain_" + table.split(".")[1]
        # After enable_pipeline: an index the pipeline puts on its domain table is copied too.
        cluster.sql(f"CREATE TABLE {plain} (LIKE {table} INCLUDING ALL)")
        halves = split_halves(events_file, options.batch)
        loaded = []
        for round_number, (chunks, lines) in enumerate(halves, 1):
            result["plain"].append(len(lines) / timed_copy(cluster, plain, chunks))
            events_before = count(cluster, f"SELECT events FROM streamrec.pipelines WHERE name = '{name}'")
            result["pipelined"].append(len(lines) / timed_copy(cluster, table, chunks))
            loaded += lines
            events, error = cluster.sql(f"SELECT events, last_error FROM streamrec.pipelines WHERE name = '{name}'")[0]
            assert error is None, f"{name}: {error}"
            assert events - events_before == len(lines), f"{name}: {events - events_before} events of {len(lines)}"
            note = check(cluster, loaded)
            if sinks:
                note += "; " + outbox_note(cluster, options.sink)
            result["notes"].append(f"round {round_number}: {note}")
        result["events"] = len(halves[0][1])
        cluster.assert_no_crash()
    finally:
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", default=",".join(PIPELINES),
                        help=f"comma-separated, of {', '.join(PIPELINES)} (default: all)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies the world and the events (default 1; 0.01 to try it)")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per COPY statement and transaction")
    parser.add_argument("--sink", choices=("running", "paused"), default="running",
                        help="the sink workers of the pipelines with an output topic (default running)")
    options = parser.parse_args()
    names = [p.strip() for p in options.pipelines.split(",") if p.strip()]
    unknown = set(names) - set(PIPELINES)
    if unknown:
        parser.error(f"unknown pipelines: {', '.join(sorted(unknown))}")
    options.events = {p: max(1, int(n * options.scale)) for p, n in EVENTS.items()}
    options.topics = {"similar_products": "bench.recommendations", "item_transactions": "bench.results"}

    started = time.monotonic()
    sandbox = None
    if {"similar_products", "item_transactions"} & set(names):
        # Both rounds' output on each topic (similar_products ~120 bytes a list, results ~80), twice
        # over for the keys' uneven spread over partitions.
        topics = {"bench.recommendations": 2 * 2 * options.events["similar_products"] * 120,
                  "bench.results": 2 * 2 * options.events["item_transactions"] * 80}
        sandbox = Sandbox(BUILD, topics={t: max(4, size // BYTES_PER_PARTITION + 1)
                                         for t, size in topics.items()}).start()
    results = {}
    try:
        for name in names:
            results[name] = measure(name, options, sandbox)
            print(f"{name}: {results[name]['world']}", flush=True)
            for note in results[name]["notes"]:
                print(f"  {note}", flush=True)
    finally:
        if sandbox is not None:
            sandbox.stop()
            sandbox.cleanup()

    print(f"\nbench/pipelines: COPY of {options.batch:,}-row files, one transaction each, one connection; "
          f"scale {options.scale:g}; rates of round 1 / round 2 (median)")
    header = f"{'pipeline':<18} {'events/round':>12}  {'plain rows/s':<29} {'pipelined rows/s':<27} {'ratio':>5}  goal"
    print(header)
    print("-" * (len(header) + 10))
    for name, r in results.items():
        plain, piped = statistics.median(r["plain"]), statistics.median(r["pipelined"])
        ratio = piped / plain
        goal = GOALS[name]
        print(f"{name:<18} {r['events']:>12,}  "
              f"{' / '.join(f'{v:,.0f}' for v in r['plain']) + f' ({plain:,.0f})':<29} "
              f"{' / '.join(f'{v:,.0f}' for v in r['pipelined']) + f' ({piped:,.0f})':<27} "
              f"{ratio:>5.3f}  >= {goal:.2f} {'met' if ratio >= goal else 'not met'}")
    print(f"({time.monotonic() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
