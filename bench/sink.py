"""bench/sink: sink worker throughput and latency beside kcat in the same run.

  throughput  1M recommendation-shaped rows (user_id, product_ids text[], window_end) are inserted into a
              table whose sink is paused, then the sink is resumed: produced rows/s from resume
              until the broker acknowledged the last row (outbox empty).
  kcat        `kcat -P` produces the same 1M pre-encoded key/value lines from a file to a topic
              of the same shape: the producing limit of this machine and broker.
  latency     rows inserted at a steady rate (default 20,000 rows/s, 100 transactions/s) into a
              table with a running sink; an independent consumer notes when each row arrives.
              commit -> arrival at the consumer is an upper bound of commit -> broker ack.
Prints rows/s, the ratio sink/kcat (goal >= 0.8), the CPU time the capture and the sink worker
spend per million rows (less noisy than rates on a shared machine), and latency p50/p99 (goal
p99 <= 50 ms)."""

import argparse
import os
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from harness import BUILD, Cluster, wait_for  # noqa: E402
from sandbox import Sandbox  # noqa: E402

BYTES_PER_PARTITION = 4 * 1024 * 1024  # stay under the sandbox's 5 MiB per partition
LINE_BYTES = 70 + 40                    # a seed line plus the broker's record overhead


def produced(cluster, name):
    return cluster.value("SELECT messages FROM streamrec._worker_stats('k') WHERE name = %s", (name,)) or 0


def seed_line(i):
    user = f"user-{i % 100000}"
    return user, f'{user},"{i % 997},{i % 13},{i % 137},{i % 95},{i % 39},{i % 138}","2024-06-28 13:01:55"'


def cpu_seconds(pid):
    """User + system CPU time of a local process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def measure_latency(cluster, sandbox, topic, partitions, rate, seconds):
    cluster.sql("CREATE UNLOGGED TABLE lat_rows (user_id text, product_ids text[], window_end timestamptz, seq int)")
    cluster.sql("SELECT streamrec.create_sink('bench_latency', 'lat_rows', %s, 'csv', NULL, '{\"key\": \"user_id\"}')",
                (topic,))
    wait_for(lambda: cluster.value("SELECT state FROM streamrec.sink_stats WHERE name = 'bench_latency'") == "running",
             30, what="latency sink running")
    consumer = Consumer({"bootstrap.servers": sandbox.bootstrap, "group.id": "bench-sink", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 2, "fetch.error.backoff.ms": 5})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    arrivals = {}  # transaction -> arrival of its last row
    counts = {}
    stop = threading.Event()

    def consume():
        while not stop.is_set():
            m = consumer.poll(0.01)  # returns at the first message (consume() waits for a full batch)
            if m is not None and m.error() is None:
                if True:
                    tick = int(m.value().rsplit(b",", 1)[1])
                    counts[tick] = counts.get(tick, 0) + 1
                    arrivals[tick] = time.monotonic()

    reader = threading.Thread(target=consume)
    reader.start()
    time.sleep(1)  # the consumer has its assignment and first fetch in flight
    per_tick = rate // 100
    commits = {}
    conn = cluster.connect()
    try:
        with conn.cursor() as cur:
            started = time.monotonic()
            tick = 0
            while tick < seconds * 100:
                due = started + tick * 0.01
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                cur.execute("INSERT INTO lat_rows SELECT 'user-' || (g %% 100000), ARRAY['140','13','137','95','39','138'], "
                            "'2024-06-28 13:01:55+00', %s FROM generate_series(1, %s) g", (tick, per_tick))
                commits[tick] = time.monotonic()  # autocommit: the statement returned after commit
                tick += 1
            achieved = tick * per_tick / (time.monotonic() - started)
        try:
            wait_for(lambda: sum(counts.values()) >= len(commits) * per_tick, 60, interval=0.05,
                     what="every latency row consumed")
        except AssertionError:
            print(cluster.sql("SELECT * FROM streamrec.sink_stats"), sum(counts.values()), len(commits) * per_tick,
                  reader.is_alive())
            raise
    finally:
        stop.set()
        reader.join()
        consumer.close()
        conn.close()
    # A transaction's latency: from its commit until its last row reached the consumer.
    latencies = sorted((arrivals[t] - commits[t]) * 1000 for t in commits)
    return achieved, percentile(latencies, 0.5), percentile(latencies, 0.99), max(latencies)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=20_000, help="rows/s of the latency run")
    parser.add_argument("--seconds", type=int, default=15, help="length of the latency run")
    args = parser.parse_args()
    rows = args.rows
    partitions = max(4, int(rows * LINE_BYTES / BYTES_PER_PARTITION) + 1)
    latency_partitions = max(4, int(args.rate * args.seconds * LINE_BYTES / BYTES_PER_PARTITION) + 1)
    sandbox = Sandbox(BUILD, topics={"bench.sink": partitions, "bench.kcat": partitions,
                                     "bench.latency": latency_partitions}).start()
    cluster = Cluster("bench-sink", settings={"streamrec.brokers": f"'{sandbox.bootstrap}'",
                                              "shared_buffers": "'512MB'", "max_wal_size": "'4GB'"}).init().start()
    try:
        cluster.sql("CREATE EXTENSION pg_streamrec")

        # kcat: the same number of pre-encoded keyed lines, from a file.
        lines_file = os.path.join(cluster.dir, "lines.txt")
        with open(lines_file, "w") as f:
            for i in range(rows):
                key, value = seed_line(i)
                f.write(f"{key}\t{value}\n")
        started = time.monotonic()
        subprocess.run(["kcat", "-P", "-b", sandbox.bootstrap, "-t", "bench.kcat", "-K", "\t", "-l", lines_file],
                       check=True)
        kcat_rate = rows / (time.monotonic() - started)

        # Sink: the rows wait in the outbox while the sink is paused, then drain.
        cluster.sql("CREATE UNLOGGED TABLE bench_rows (user_id text, product_ids text[], window_end timestamptz)")
        cluster.sql("SELECT streamrec.create_sink('bench', 'bench_rows', 'bench.sink', 'csv', NULL, "
                    "'{\"key\": \"user_id\"}')")
        cluster.sql("SELECT streamrec.pause_sink('bench')")
        # The same INSERT into a table without a sink: what the capture adds, in the backend's CPU time.
        cluster.sql("CREATE UNLOGGED TABLE plain_rows (user_id text, product_ids text[], window_end timestamptz)")
        insert = ("INSERT INTO {} SELECT 'user-' || (g % 100000), "
                  "ARRAY[(g % 997)::text, (g % 13)::text, (g % 137)::text, (g % 95)::text, (g % 39)::text, "
                  "(g % 138)::text], '2024-06-28 13:01:55+00' FROM generate_series(0, {}) g")
        conn = cluster.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            backend = cur.fetchone()[0]
            cpu = cpu_seconds(backend)
            cur.execute(insert.format("plain_rows", rows - 1))
            plain_cpu = cpu_seconds(backend) - cpu
            cpu = cpu_seconds(backend)
            started = time.monotonic()
            cur.execute(insert.format("bench_rows", rows - 1))
            insert_seconds = time.monotonic() - started
            capture_cpu = cpu_seconds(backend) - cpu - plain_cpu
        conn.close()
        cluster.sql("VACUUM ANALYZE streamrec.sink_outbox")
        cluster.sql("SELECT streamrec.resume_sink('bench')")
        wait_for(lambda: produced(cluster, "bench") > 0, 60, interval=0.01, what="first sink batch")
        worker = cluster.value("SELECT pid FROM streamrec.sink_stats WHERE name = 'bench'")
        cpu = cpu_seconds(worker)
        started = time.monotonic()
        first = produced(cluster, "bench")
        wait_for(lambda: produced(cluster, "bench") >= rows, 900, interval=0.05, what="every row produced")
        sink_rate = (rows - first) / (time.monotonic() - started)
        worker_cpu = (cpu_seconds(worker) - cpu) / (rows - first) * 1e6
        assert cluster.value("SELECT pending + failed FROM streamrec.sink_stats WHERE name = 'bench'") == 0
        cluster.sql("SELECT streamrec.drop_sink('bench')")

        achieved, p50, p99, worst = measure_latency(cluster, sandbox, "bench.latency", latency_partitions,
                                                    args.rate, args.seconds)
    finally:
        cluster.destroy()
        sandbox.stop()
        sandbox.cleanup()

    print(f"\nbench/sink: {rows:,} recommendation-shaped rows, csv, keyed by user_id, {partitions} partitions (2 cores)")
    print(f"  INSERT into the table (outbox trigger included): {rows / insert_seconds:>10,.0f} rows/s")
    print(f"  kcat -P, pre-encoded lines:                      {kcat_rate:>10,.0f} rows/s")
    print(f"  sink worker, outbox -> acknowledged:             {sink_rate:>10,.0f} rows/s")
    print(f"  CPU per 1M rows: capture (INSERT minus plain INSERT) {capture_cpu / rows * 1e6:.2f} s, "
          f"sink worker with librdkafka {worker_cpu:.2f} s")
    print(f"  sink/kcat: {sink_rate / kcat_rate:.2f} (goal >= 0.8)")
    print(f"  latency at {achieved:,.0f} rows/s for {args.seconds} s, commit -> consumer: "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms (goal p99 <= 50 ms)")


if __name__ == "__main__":
    main()
