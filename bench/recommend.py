"""bench/recommend: the similar_products pipeline at production scale.

  world        100k products in 1k categories, 1M users, 5M purchases (the data generator,
               loaded with COPY; enabling the pipeline builds user_purchases from them).
  ingest       N generated clicks (default 1M) on a topic, consumed by a source into an
               unlogged table without triggers: the limit this machine gives a source.
  throughput   the same clicks consumed into streamrec.clicks with similar_products enabled
               (per-click emit, output_topic set): page views/s turned into recommendations
               (committed in recommendations and recommendation_log), and until the sink has
               the last one acknowledged on the output topic. Goal >= 100,000 views/s.
  latency      clicks produced at a steady rate (default 20,000/s) with event_time = the
               moment they are produced; a consumer of the output topic notes arrival minus
               event_time for every recommendation: p50 and p99 (goal p99 <= 50 ms).
  lookup       category_affinity fed with the latency phase's clicks, then pgbench looking up
               streamrec.user_recommendations for random users: queries/s.
"""

import argparse
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from harness import BUILD, Cluster, wait_for  # noqa: E402
from sandbox import Sandbox  # noqa: E402

BYTES_PER_PARTITION = 4 * 1024 * 1024
CLICK_BYTES = 90 + 40
REC_BYTES = 80 + 40


def datagen(*args):
    subprocess.run([os.path.join(BUILD, "streamrec-datagen"), *args, "--quiet"], check=True)


def partitions_for(messages, size):
    return max(4, int(messages * size / BYTES_PER_PARTITION) + 1)


def consumed(cluster, source):
    return cluster.value("SELECT coalesce(sum(next_offset), 0) FROM streamrec.source_offsets WHERE source = %s",
                         (source,))


def time_source(cluster, name, topic, target, messages):
    started = time.monotonic()
    cluster.sql("SELECT streamrec.create_source(%s, %s, %s, 'csv', NULL, '{\"batch_size\": 20000}')",
                (name, topic, target))
    wait_for(lambda: consumed(cluster, name) >= messages, 1200, interval=0.05, what=f"{name} to consume {messages}")
    elapsed = time.monotonic() - started
    cluster.sql("SELECT streamrec.drop_source(%s)", (name,))
    return elapsed


def percentile(values, p):
    return values[min(len(values) - 1, int(len(values) * p))]


def measure_latency(cluster, sandbox, topic_in, topic_out, partitions, rate, seconds, users, products):
    consumer = Consumer({"bootstrap.servers": sandbox.bootstrap, "group.id": "bench-recommend",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 2, "fetch.error.backoff.ms": 5})
    consumer.assign([TopicPartition(topic_out, p, 0) for p in range(partitions)])
    latencies = []
    stop = threading.Event()

    def consume():
        while not stop.is_set():
            m = consumer.poll(0.01)
            if m is not None and m.error() is None:
                arrival = time.time()
                stamp = m.value().rsplit(b",", 1)[1].strip(b'"').decode()
                when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f" if "." in stamp else "%Y-%m-%d %H:%M:%S")
                latencies.append(arrival - when.replace(tzinfo=timezone.utc).timestamp())

    reader = threading.Thread(target=consume)
    reader.start()
    time.sleep(1)
    producer = Producer({"bootstrap.servers": sandbox.bootstrap, "linger.ms": 1, "enable.idempotence": True})
    sent = 0
    started = time.monotonic()
    total = rate * seconds
    while sent < total:
        due = started + sent / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        user = f"user-{(sent * 7919) % users}"
        product = str((sent * 104729) % products)
        producer.produce(topic_in, key=user, value=f"live-{sent},{user},{product},page_view,,{stamp}+00")
        sent += 1
        if sent % 200 == 0:
            producer.poll(0)
    producer.flush(30)
    time.sleep(3)
    stop.set()
    reader.join()
    consumer.close()
    return sorted(latencies), sent


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--categories", type=int, default=1_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=5_000_000)
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()

    click_partitions = partitions_for(args.clicks, CLICK_BYTES)
    rec_partitions = partitions_for(args.clicks, REC_BYTES)
    live = args.rate * args.seconds
    sandbox = Sandbox(BUILD, topics={"bench.clicks": click_partitions, "bench.recs": rec_partitions,
                                     "bench.live.clicks": partitions_for(live, CLICK_BYTES),
                                     "bench.live.recs": partitions_for(live, REC_BYTES)}).start()
    cluster = Cluster("bench-recommend", settings={"streamrec.brokers": f"'{sandbox.bootstrap}'",
                                                   "shared_buffers": "'2GB'", "max_wal_size": "'8GB'"}).init().start()
    try:
        cluster.sql("CREATE EXTENSION pg_streamrec")
        universe = ["--seed", "7", "--products", str(args.products), "--categories", str(args.categories),
                    "--users", str(args.users)]
        t = time.monotonic()
        inventory = os.path.join(cluster.dir, "inventory.csv")
        purchases = os.path.join(cluster.dir, "purchases.csv")
        datagen("inventory", *universe, "--output", inventory)
        datagen("purchases", *universe, "--count", str(args.purchases), "--output", purchases)
        os.chmod(cluster.dir, 0o755)
        cluster.sql(f"COPY streamrec.inventory (product_id, category, stock, rating) FROM '{inventory}' CSV")
        cluster.sql(f"COPY streamrec.purchases FROM '{purchases}' CSV")
        cluster.sql("SELECT streamrec.enable_pipeline('similar_products', '{\"output_topic\": \"bench.recs\"}')")
        cluster.sql("VACUUM ANALYZE")
        print(f"world: {args.products} products, {args.categories} categories, {args.users} users, "
              f"{cluster.value('SELECT count(*) FROM streamrec.purchases')} purchases "
              f"({cluster.value('SELECT count(*) FROM streamrec.user_purchases')} user_purchases rows), "
              f"loaded in {time.monotonic() - t:.0f} s", flush=True)

        datagen("clicks", *universe, "--count", str(args.clicks), "--topic", "bench.clicks",
                "--brokers", sandbox.bootstrap, "--no-key")
        cluster.sql("CREATE UNLOGGED TABLE plain_clicks (LIKE streamrec.clicks INCLUDING DEFAULTS)")
        ingest_s = time_source(cluster, "bench_ingest", "bench.clicks", "plain_clicks", args.clicks)
        page_views = cluster.value("SELECT count(*) FROM plain_clicks WHERE event_type = 'page_view' "
                                   "AND product_id IS NOT NULL")
        print(f"ingest only (no pipeline):     {args.clicks / ingest_s:10,.0f} clicks/s "
              f"({args.clicks} clicks, {page_views} page views, {ingest_s:.1f} s)", flush=True)

        pipeline_s = time_source(cluster, "bench_clicks", "bench.clicks", "streamrec.clicks", args.clicks)
        lists = cluster.value("SELECT count(*) FROM streamrec.recommendation_log")
        print(f"similar_products (per click):  {page_views / pipeline_s:10,.0f} page views/s ranked and stored "
              f"({lists} lists, {pipeline_s:.1f} s; {ingest_s / pipeline_s:.2f} of ingest-only speed)", flush=True)
        t = time.monotonic()
        wait_for(lambda: cluster.value("SELECT pending FROM streamrec.sink_stats") == 0, 1200, interval=0.2,
                 what="the sink to drain")
        total_s = pipeline_s + time.monotonic() - t
        print(f"  ... and on the output topic: {page_views / total_s:10,.0f} page views/s "
              f"(last acknowledged after {total_s:.1f} s)", flush=True)

        cluster.sql("SELECT streamrec.enable_pipeline('similar_products', '{\"output_topic\": \"bench.live.recs\"}')")
        cluster.sql("SELECT streamrec.enable_pipeline('category_affinity')")
        cluster.sql("SELECT streamrec.create_source('bench_live', 'bench.live.clicks', 'streamrec.clicks', 'csv', "
                    "NULL, '{\"batch_ms\": 5}')")
        wait_for(lambda: cluster.value("SELECT state FROM streamrec.source_stats WHERE name = 'bench_live'")
                 == "running", 30, what="live source")
        wait_for(lambda: cluster.value("SELECT state FROM streamrec.sink_stats") == "running", 30, what="live sink")
        latencies, sent = measure_latency(cluster, sandbox, "bench.live.clicks", "bench.live.recs",
                                          partitions_for(live, REC_BYTES), args.rate, args.seconds,
                                          args.users, args.products)
        if latencies:
            print(f"latency at {args.rate:,} views/s (similar_products + category_affinity): "
                  f"{len(latencies)} of {sent} views, p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
                  f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms", flush=True)

        script = os.path.join(cluster.dir, "lookup.sql")
        with open(script, "w") as f:
            f.write(f"\\set u random(0, {args.users - 1})\n"
                    "SELECT product_ids FROM streamrec.user_recommendations WHERE user_id = 'user-' || :u;\n")
        os.chmod(script, 0o644)
        out = subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(cluster.bindir, "pgbench"), "-n",
                              "-M", "prepared", "-c", "2", "-j", "2", "-T", "10", "-f", script, "-h", "127.0.0.1",
                              "-p", str(cluster.port), "-U", "postgres", "postgres"],
                             capture_output=True, text=True, check=True).stdout
        tps = next(line for line in out.splitlines() if line.startswith("tps"))
        users_with_views = cluster.value("SELECT count(DISTINCT user_id) FROM streamrec.category_views")
        print(f"user_recommendations lookup (pgbench, 2 clients, {users_with_views} users with views): {tps}",
              flush=True)
    finally:
        cluster.assert_no_crash()
        cluster.destroy()
        sandbox.stop()
        sandbox.cleanup()


if __name__ == "__main__":
    main()
