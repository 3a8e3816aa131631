"""bench/dimensions: what the inventory's row trigger for logical replication costs the
subscriber. A publisher (wal_level = logical) holds --items (100k) inventory rows; a subscriber
replicates them. With the subscription disabled, the publisher makes --updates (200k) stock
changes in transactions of --batch (1000) rows (as item_transactions writes them); then the
subscription is enabled and the time until the subscriber has applied the last one is measured,
--rounds (3) times per trigger state, alternating which goes first:
  trigger    streamrec_inventory_replicated, as the extension creates it on a subscriber
  no trigger the same trigger dropped (what the apply worker alone costs)
Prints updates applied per second and the apply worker's CPU time per update (steadier on a
loaded machine), and the ratios trigger / no trigger.

Then, on the publisher, why the row trigger exists only on subscribers: item_transactions over
the same items, --transactions (100k) per run in statements of 10,000, with the row trigger
present (ENABLE REPLICA: it never fires there) and absent."""

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from harness import Cluster, wait_for  # noqa: E402


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def origin_rates(pub, args):
    """item_transactions on the publisher with the row trigger present and absent: best rate of each."""
    pub.sql("SELECT streamrec.enable_pipeline('item_transactions')")
    rates = {"present": 0.0, "absent": 0.0}
    conn = pub.connect()
    first = 0
    with conn.cursor() as cur:
        for r in range(args.rounds):
            for state in ("present", "absent") if r % 2 == 0 else ("absent", "present"):
                cur.execute("DROP TRIGGER IF EXISTS streamrec_inventory_replicated ON streamrec.inventory")
                if state == "present":
                    cur.execute("CREATE TRIGGER streamrec_inventory_replicated AFTER INSERT OR UPDATE OR DELETE "
                                "ON streamrec.inventory FOR EACH ROW EXECUTE FUNCTION streamrec._inventory_changed()")
                    cur.execute("ALTER TABLE streamrec.inventory ENABLE REPLICA TRIGGER streamrec_inventory_replicated")
                start = time.monotonic()
                for done in range(0, args.transactions, 10_000):
                    cur.execute("INSERT INTO streamrec.item_transactions (transaction_id, item_id, quantity) "
                                "SELECT %s + g, 'i' || ((g * 7919 + %s) %% %s), -1 FROM generate_series(1, 10000) g",
                                (first, done, args.items))
                    first += 10_000
                rate = args.transactions / (time.monotonic() - start)
                rates[state] = max(rates[state], rate)
                print(f"publisher round {r + 1} row trigger {state:7}: {rate:,.0f} transactions/s", flush=True)
        cur.execute("DROP TRIGGER IF EXISTS streamrec_inventory_replicated ON streamrec.inventory")
    conn.close()
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--updates", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transactions", type=int, default=100_000)
    args = parser.parse_args()

    pub = Cluster("bench-dims-pub", settings={"wal_level": "logical", "shared_buffers": "'256MB'"}).init().start()
    sub = Cluster("bench-dims-sub", settings={"shared_buffers": "'256MB'"}).init().start()
    try:
        for c in (pub, sub):
            c.sql("CREATE EXTENSION pg_streamrec")
        pub.sql("INSERT INTO streamrec.inventory (product_id, category, stock, rating) "
                "SELECT 'i' || n, 'c' || n %% 1000, 1000000, n %% 50 / 10.0 FROM generate_series(0, %s) n",
                (args.items,))  # (item 'i<items>' is the marker)
        pub.sql("CREATE PUBLICATION bench FOR TABLE streamrec.inventory")
        sub.sql(f"CREATE SUBSCRIPTION bench CONNECTION '{pub.dsn()}' PUBLICATION bench")
        marker = f"i{args.items}"
        wait_for(lambda: sub.value("SELECT count(*) FROM streamrec.inventory") == args.items + 1, 300, 0.2,
                 what="the initial sync")
        results = {"trigger": [], "no trigger": []}
        conn = pub.connect()
        for r in range(args.rounds):
            # (alternating which goes first, so neither gains from its place)
            for state in ("trigger", "no trigger") if r % 2 == 0 else ("no trigger", "trigger"):
                # (dropped, not disabled: a disabled row trigger still costs each UPDATE a fetch of
                # the old row; the extension creates it again while the subscription exists)
                sub.sql("SELECT streamrec._follow_inventory_subscriptions()" if state == "trigger" else
                        "DROP TRIGGER streamrec_inventory_replicated ON streamrec.inventory")
                sub.sql("ALTER SUBSCRIPTION bench DISABLE")
                wait_for(lambda: sub.value("SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL") == 0,
                         60, what="the apply worker gone")
                with conn.cursor() as cur:
                    done = 0
                    while done < args.updates:
                        n = min(args.batch, args.updates - done)
                        # Distinct items per statement, spread over the inventory.
                        cur.execute("UPDATE streamrec.inventory SET stock = stock - 1 WHERE product_id IN "
                                    "(SELECT 'i' || ((g * 7919 + %s) %% %s) FROM generate_series(1, %s) g)",
                                    (done, args.items, n))
                        done += n
                    expected = r * 2 + (state == "trigger")  # the marker's value for this run
                    cur.execute("UPDATE streamrec.inventory SET stock = %s WHERE product_id = %s", (expected, marker))
                start = time.monotonic()
                sub.sql("ALTER SUBSCRIPTION bench ENABLE")
                wait_for(lambda: sub.value("SELECT stock FROM streamrec.inventory WHERE product_id = %s", (marker,))
                         == expected, 600, 0.01, what="the last update applied")
                elapsed = time.monotonic() - start
                rate = args.updates / elapsed
                # The apply worker started with ENABLE: its CPU time is what the catch-up cost,
                # steadier than the wall clock on a loaded machine.
                cpu = cpu_seconds(sub.value("SELECT pid FROM pg_stat_subscription WHERE subname = 'bench'"))
                results[state].append((rate, cpu * 1e6 / args.updates))
                print(f"round {r + 1} {state:10}: {args.updates} updates applied in {elapsed:.2f}s = {rate:,.0f}/s, "
                      f"apply worker CPU {cpu:.2f}s = {cpu * 1e6 / args.updates:.1f} us/update", flush=True)
        conn.close()
        sub.sql("ALTER SUBSCRIPTION bench DISABLE")  # (the publisher alone from here on)
        origin = origin_rates(pub, args)
        rate = {k: max(r for r, _ in v) for k, v in results.items()}
        cpu = {k: min(c for _, c in v) for k, v in results.items()}
        print(f"best rate: trigger {rate['trigger']:,.0f}/s, no trigger {rate['no trigger']:,.0f}/s, "
              f"ratio {rate['trigger'] / rate['no trigger']:.2f}")
        print(f"least apply CPU per update: trigger {cpu['trigger']:.1f} us, no trigger {cpu['no trigger']:.1f} us, "
              f"ratio {cpu['trigger'] / cpu['no trigger']:.2f}")
        print(f"publisher item_transactions, best: row trigger present {origin['present']:,.0f}/s, absent "
              f"{origin['absent']:,.0f}/s, ratio {origin['present'] / origin['absent']:.2f}")
    finally:
        sub.destroy()
        pub.destroy()


if __name__ == "__main__":
    main()
