"""bench/attribution: the attribution and ratings pipelines in the database, beside PostgreSQL's
own loading limit measured in the same run.

attribution: --clicks (10M) generated clicks, all inside one lookback hour, are loaded and the
pipeline enabled (which builds the lookback index over them). Then --checkouts (200k) checkouts
that follow those clicks (checkout j comes a minute after click group j, at the clicks' event
rate, so it finds its click in the lookback) are loaded in batches of --batch (10k) rows, one COPY and one
transaction each (what a source worker does), twice:
  COPY       into a plain copy of the checkouts table (no trigger)   -> the loading limit
  COPY+pipe  into streamrec.checkouts with the pipeline              -> checkouts/s attributed
and --late-clicks (1M) more clicks, the same way, with and without the clicks trigger (each
click re-examines the attributed checkouts it may now win).
ratings: --customers (100k) customers; --ratings (1M) ratings (~10% test traffic) the same way,
into a plain table and into streamrec.ratings with the pipeline (enrichment, unhappy platinum,
windows, inventory.rating over --products).
Prints rows/s, the ratios, and the state sizes."""

import argparse
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from harness import BUILD, Cluster  # noqa: E402

SEED = 9
CLICKS_PER_CHECKOUT = 4


def datagen(path, kind, *args):
    with open(path, "w") as f:
        subprocess.run([os.path.join(BUILD, "streamrec-datagen"), kind, "--seed", str(SEED), "--quiet",
                        *map(str, args)], check=True, stdout=f)
    os.chmod(path, 0o644)


def split(path, lines_per_chunk):
    """The file in chunks of lines_per_chunk lines (one source batch each)."""
    out = []
    with open(path) as f:
        lines = f.readlines()
    for i in range(0, len(lines), lines_per_chunk):
        chunk = f"{path}.{i // lines_per_chunk:05d}"
        with open(chunk, "w") as c:
            c.writelines(lines[i:i + lines_per_chunk])
        os.chmod(chunk, 0o644)
        out.append(chunk)
    return out, len(lines)


def timed_copy(cluster, table, chunks):
    conn = cluster.connect()
    try:
        with conn.cursor() as cur:
            start = time.monotonic()
            for chunk in chunks:
                cur.execute(f"COPY {table} FROM '{chunk}' CSV")
            return time.monotonic() - start
    finally:
        conn.close()


def size(cluster, relation):
    return cluster.value("SELECT pg_size_pretty(pg_total_relation_size(%s::regclass))", (relation,))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=10_000_000)
    parser.add_argument("--checkouts", type=int, default=200_000)
    parser.add_argument("--late-clicks", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="streamrec-bench-attribution-")
    os.chmod(work, 0o755)
    cluster = Cluster("bench-attribution", settings={"shared_buffers": "'2GB'", "max_wal_size": "'8GB'",
                                                     "checkpoint_timeout": "'30min'"}).init().start()
    try:
        cluster.sql("CREATE EXTENSION pg_streamrec")
        # All clicks inside one lookback hour: every one of them is live state.
        rate = max(args.clicks / 3300.0, 1.0)
        # Checkout j follows click group j (a click by its user on its product, at most K - 1
        # clicks and a minute before it), so every attributable checkout has a click in the lookback.
        assert args.checkouts * CLICKS_PER_CHECKOUT <= args.clicks, "more checkouts than click groups"
        universe = ("--users", args.users, "--products", args.products,
                    "--clicks-per-checkout", CLICKS_PER_CHECKOUT)
        clicks = os.path.join(work, "clicks.csv")
        datagen(clicks, "clicks", "--count", args.clicks, "--events-per-second", rate, *universe)
        users = os.path.join(work, "users.csv")
        datagen(users, "users", "--users", args.users)
        cluster.sql(f"COPY streamrec.users FROM '{users}' CSV")
        start = time.monotonic()
        cluster.sql(f"COPY streamrec.clicks FROM '{clicks}' CSV")
        load_clicks = time.monotonic() - start
        start = time.monotonic()
        cluster.sql("SELECT streamrec.enable_pipeline('attribution')")
        build_index = time.monotonic() - start
        cluster.sql("VACUUM ANALYZE streamrec.clicks")
        cluster.sql("VACUUM ANALYZE streamrec.users")

        checkouts = os.path.join(work, "checkouts.csv")
        # The clicks' event rate: a checkout's time is counted in the clicks' index space.
        datagen(checkouts, "checkouts", "--count", args.checkouts, "--events-per-second", rate, *universe)
        chunks, n_checkouts = split(checkouts, args.batch)
        cluster.sql("CREATE TABLE plain_checkouts (LIKE streamrec.checkouts INCLUDING ALL)")
        plain = timed_copy(cluster, "plain_checkouts", chunks)
        piped = timed_copy(cluster, "streamrec.checkouts", chunks)
        with_click = cluster.value("SELECT count(click_id) FROM streamrec.attributed_checkouts")
        # 10% of the checkouts are generated without a click to find: the rest must find theirs.
        assert with_click >= 0.85 * n_checkouts, f"only {with_click} of {n_checkouts} checkouts with a click"

        late = os.path.join(work, "late_clicks.csv")
        # Clicks from the same hour again (new ids, --start-index 0 with another seed would
        # collide): the first late_clicks clicks re-sent as other ids, so they tie or lose.
        datagen(late, "clicks", "--count", args.late_clicks, "--events-per-second", rate, *universe)
        with open(late) as f:
            lines = ["late-" + line for line in f]
        with open(late, "w") as f:
            f.writelines(lines)
        late_chunks, n_late = split(late, args.batch)
        cluster.sql("CREATE TABLE plain_clicks (LIKE streamrec.clicks INCLUDING ALL)")
        late_plain = timed_copy(cluster, "plain_clicks", late_chunks)
        late_piped = timed_copy(cluster, "streamrec.clicks", late_chunks)
        corrections = cluster.value("SELECT count(*) FROM streamrec.attribution_log") - n_checkouts

        # ratings
        customers = os.path.join(work, "customers.csv")
        datagen(customers, "customers", "--users", args.customers)
        cluster.sql(f"COPY streamrec.customers FROM '{customers}' CSV")
        inventory = os.path.join(work, "inventory.csv")
        datagen(inventory, "inventory", "--products", args.products)
        cluster.sql(f"COPY streamrec.inventory (product_id, category, stock, rating) FROM '{inventory}' CSV")
        cluster.sql("VACUUM ANALYZE streamrec.customers")
        cluster.sql("VACUUM ANALYZE streamrec.inventory")
        cluster.sql("SELECT streamrec.enable_pipeline('ratings')")
        ratings = os.path.join(work, "ratings.csv")
        datagen(ratings, "ratings", "--count", args.ratings, "--users", args.customers, "--products", args.products,
                "--events-per-second", 1000)
        rating_chunks, n_ratings = split(ratings, args.batch)
        cluster.sql("CREATE TABLE plain_ratings (LIKE streamrec.ratings INCLUDING ALL)")
        ratings_plain = timed_copy(cluster, "plain_ratings", rating_chunks)
        ratings_piped = timed_copy(cluster, "streamrec.ratings", rating_chunks)
        enriched = cluster.value("SELECT count(*) FROM streamrec.ratings_enriched")
        stats = cluster.sql("SELECT name, events, outputs, skipped, late, last_error FROM streamrec.pipelines "
                            "ORDER BY name")

        print(f"attribution: {args.clicks:,} clicks in the lookback state (loaded in {load_clicks:.1f} s; "
              f"clicks_attribution_idx built in {build_index:.1f} s, {size(cluster, 'streamrec.clicks_attribution_idx')})")
        print(f"  checkouts, batches of {args.batch:,}: COPY {n_checkouts / plain:,.0f}/s, "
              f"COPY+pipeline {n_checkouts / piped:,.0f}/s attributed (pipeline/COPY {plain / piped:.2f}; "
              f"{with_click:,} of {n_checkouts:,} with a click)")
        print(f"  late clicks: COPY {n_late / late_plain:,.0f}/s, COPY+pipeline {n_late / late_piped:,.0f}/s "
              f"(pipeline/COPY {late_plain / late_piped:.2f}; {corrections:,} corrections)")
        print(f"  state: attributed_checkouts {size(cluster, 'streamrec.attributed_checkouts')}, "
              f"attribution_log {size(cluster, 'streamrec.attribution_log')}")
        print(f"ratings: {n_ratings:,} ratings, {args.customers:,} customers, {args.products:,} products, "
              f"batches of {args.batch:,}: COPY {n_ratings / ratings_plain:,.0f}/s, "
              f"COPY+pipeline {n_ratings / ratings_piped:,.0f}/s (pipeline/COPY {ratings_plain / ratings_piped:.2f}; "
              f"{enriched:,} enriched)")
        print(f"  state: product_ratings {size(cluster, 'streamrec.product_ratings')}, "
              f"ratings_per_customer {size(cluster, 'streamrec.ratings_per_customer')}, "
              f"ratings_by_club_status {size(cluster, 'streamrec.ratings_by_club_status')}")
        for row in stats:
            print("  pipeline", row)
    finally:
        cluster.destroy()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
