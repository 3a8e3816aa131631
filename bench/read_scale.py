"""bench/read_scale: the lookups served by a primary alone, then by the primary and its hot
standby together, in the same run.

  world     N products in C categories, U users, purchases and page views of the data
            generator loaded with COPY into a primary with similar_products, trending and
            category_affinity enabled (the pipelines build their state as in production); a
            hot standby made from it by streaming replication, caught up.
  lookups   pgbench, one custom script per lookup, for a random user and product:
            streamrec.recommend(), streamrec.user_recommendations, streamrec.recommendations
            and the newest window of streamrec.trending.
  alone     pgbench against the primary only.
  together  two pgbench processes at once, one against the primary and one against the
            standby, with the same clients each: lookups/s of each, their sum, and the sum
            divided by the primary alone (alternated rounds).

Both servers run on this machine. With --pin (the default on 2 cores or more) each server and its
pgbench get a core of their own, as servers of their own would: the ratio is what the standby
adds. With --no-pin they share every core, and the ratio shows only how the lookups split them.
"""

import argparse
import os
import re
import subprocess
import sys
import threading

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from harness import BUILD, REPLICATION_SETTINGS, Cluster, cluster_pids, make_standby, wait_for_replay  # noqa: E402

# One pgbench script per lookup, for a random user (u) and product (p).
LOOKUPS = {
    "recommend()": "SELECT streamrec.recommend('user-' || :u, :p::text);",
    "user_recommendations": "SELECT product_ids FROM streamrec.user_recommendations WHERE user_id = 'user-' || :u;",
    "recommendations": "SELECT product_ids FROM streamrec.recommendations WHERE user_id = 'user-' || :u;",
    "trending (newest window)": "SELECT product_id, views FROM streamrec.trending WHERE window_start = "
                                "(SELECT max(window_start) FROM streamrec.trending_counts);",
}


def copy_generated(cluster, table, columns, kind, *args):
    cluster.sql(f"COPY {table} ({columns}) FROM PROGRAM %s CSV",
                (" ".join([os.path.join(BUILD, "streamrec-datagen"), kind, "--quiet", *map(str, args)]),))


def pin(cluster, core):
    """Puts every process of the server (and those it starts later) on one core."""
    for pid in cluster_pids(cluster.postmaster_pid()):
        try:
            os.sched_setaffinity(pid, {core})
        except ProcessLookupError:
            pass


def pgbench(cluster, script, clients, seconds, out, core=None):
    taskset = ["taskset", "-c", str(core)] if core is not None else []
    result = subprocess.run(taskset + ["runuser", "-u", "postgres", "--", os.path.join(cluster.bindir, "pgbench"), "-n",
                             "-M", "prepared", "-c", str(clients), "-j", str(clients), "-T", str(seconds),
                             "-f", script, "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", "postgres"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pgbench on {cluster.name} failed: {result.stderr}")
    out[cluster.name] = float(re.search(r"^tps = ([0-9.]+)", result.stdout, re.M).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=20000)
    parser.add_argument("--categories", type=int, default=200)
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--purchases", type=int, default=100000)
    parser.add_argument("--clicks", type=int, default=200000)
    parser.add_argument("--clients", type=int, default=2, help="pgbench clients per server")
    parser.add_argument("--seconds", type=int, default=5, help="each pgbench run")
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds of alone, then together")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=(os.cpu_count() or 1) >= 2,
                        help="each server and its pgbench on a core of its own, as on servers of their own "
                             "(default when there are 2 cores or more)")
    args = parser.parse_args()

    primary = Cluster("bench_read_primary", settings=dict(REPLICATION_SETTINGS, **{"shared_buffers": "'256MB'"}))
    primary.init().start()
    standby = None
    try:
        primary.sql("CREATE EXTENSION pg_streamrec")
        world = ["--products", args.products, "--categories", args.categories, "--users", args.users, "--seed", 3]
        copy_generated(primary, "streamrec.inventory", "product_id, category, stock, rating", "inventory", *world)
        for name in ("similar_products", "trending", "category_affinity"):
            primary.sql("SELECT streamrec.enable_pipeline(%s)", (name,))
        copy_generated(primary, "streamrec.purchases",
                       "invoice_id, user_id, product_id, quantity, unit_cost, purchase_time", "purchases",
                       "--count", args.purchases, *world)
        # In batches, as a source would store them (one batch's lists for the users it saw).
        batch = 10000
        for start in range(0, args.clicks, batch):
            copy_generated(primary, "streamrec.clicks", "click_id, user_id, product_id, event_type, query, event_time",
                           "clicks", "--count", min(batch, args.clicks - start), "--start-index", start,
                           "--events-per-second", 100, *world)
        primary.sql("VACUUM ANALYZE")
        standby = make_standby(primary, "bench_read_standby")
        wait_for_replay(primary, standby, timeout=600)
        check = ("SELECT streamrec.recommend('user-7', '42'), (SELECT product_ids FROM streamrec.user_recommendations "
                 "WHERE user_id = 'user-7')")
        assert standby.sql(check) == primary.sql(check), "the standby answers differently"
        print(f"world: {args.products:,} products in {args.categories} categories, {args.users:,} users, "
              f"{args.purchases:,} purchases, {args.clicks:,} clicks; "
              f"{primary.value('SELECT count(*) FROM streamrec.recommendations'):,} users with a list", flush=True)

        cores = (None, None)
        if args.pin:
            cores = (0, 1)
            pin(primary, 0)
            pin(standby, 1)
            print("pinned: the primary and its pgbench on core 0, the standby and its pgbench on core 1", flush=True)
        print(f"lookups/s, pgbench {args.clients} clients per server, {args.seconds} s per run, "
              f"{args.rounds} alternated rounds (alone, together) per lookup:", flush=True)
        print(f"  {'lookup':<26}{'primary alone':>14}{'primary + standby':>19}  (primary, standby){'ratio':>12}")
        for name, statement in LOOKUPS.items():
            script = os.path.join(primary.dir, "lookup.sql")
            with open(script, "w") as f:
                f.write(f"\\set u random(0, {args.users - 1})\n\\set p random(0, {args.products - 1})\n"
                        f"{statement}\n")
            os.chmod(script, 0o644)
            # Alternated: load from elsewhere on the machine falls on both sides alike.
            alone_sum, together_sum = 0.0, {primary.name: 0.0, standby.name: 0.0}
            for _ in range(args.rounds):
                alone = {}
                pgbench(primary, script, args.clients, args.seconds, alone, cores[0])
                alone_sum += alone[primary.name]
                together = {}
                runs = [threading.Thread(target=pgbench, args=(c, script, args.clients, args.seconds, together, core))
                        for c, core in ((primary, cores[0]), (standby, cores[1]))]
                for t in runs:
                    t.start()
                for t in runs:
                    t.join()
                if primary.name not in together or standby.name not in together:
                    raise RuntimeError("a pgbench run failed")
                for c in together:
                    together_sum[c] += together[c]
            a = alone_sum / args.rounds
            p, s = together_sum[primary.name] / args.rounds, together_sum[standby.name] / args.rounds
            print(f"  {name:<26}{a:14,.0f}{p + s:19,.0f}  ({p:,.0f}, {s:,.0f}){(p + s) / a:12.2f}", flush=True)
        print("  " + ("(one core per server)" if args.pin else
                      f"({os.cpu_count()} cores shared by both servers and pgbench)"), flush=True)
    finally:
        for cluster in (standby, primary):
            if cluster is not None:
                cluster.assert_no_crash()
                cluster.destroy()


if __name__ == "__main__":
    main()
