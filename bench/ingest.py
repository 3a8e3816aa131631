"""bench/ingest: source worker throughput beside the limits measured in the same run.

For each format (csv, json, avro, protobuf) one million generated clicks go into a topic of the
sandbox broker (enough partitions for its ~5 MB per partition). Then, on the same machine:
  kcat       consumes the topic to a file          -> the delivery limit
  COPY       loads the same rows from a CSV file   -> PostgreSQL's own loading limit
  source     a pg_streamrec source fills a table   -> what we deliver
and prints rows/s and the ratios source/kcat (goal >= 0.9) and source/COPY (goal >= 0.6)."""

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


def datagen(*args, stdout=None):
    return subprocess.run([os.path.join(BUILD, "streamrec-datagen"), "clicks", "--seed", "3", "--products", "100000",
                           "--users", "1000000", "--quiet", *args], check=True, stdout=stdout)


def message_size(fmt):
    sample = subprocess.run([os.path.join(BUILD, "streamrec-datagen"), "clicks", "--seed", "3", "--count", "1000",
                             "--products", "100000", "--users", "1000000", "--format", "json" if fmt == "json" else "csv",
                             "--output", "-", "--quiet"], check=True, stdout=subprocess.PIPE).stdout
    return len(sample) / 1000 + 40  # record overhead in the broker's log


def timed(fn):
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", default="csv,json,avro,protobuf")
    args = parser.parse_args()
    rows = args.rows
    formats = args.formats.split(",")

    partitions = {f: max(4, int(rows * message_size(f) / BYTES_PER_PARTITION) + 1) for f in formats}
    sandbox = Sandbox(BUILD, topics={f"bench.{f}": partitions[f] for f in formats}).start()
    cluster = Cluster("bench-ingest", settings={"streamrec.brokers": f"'{sandbox.bootstrap}'",
                                                "shared_buffers": "'512MB'", "max_wal_size": "'4GB'"}).init().start()
    results = []
    try:
        cluster.sql("CREATE EXTENSION pg_streamrec")
        csv_file = os.path.join(cluster.dir, "clicks.csv")
        datagen("--format", "csv", "--count", str(rows), "--output", csv_file)
        os.chmod(csv_file, 0o644)

        cluster.sql("CREATE UNLOGGED TABLE copy_clicks (LIKE streamrec.clicks)")
        copy_seconds = timed(lambda: cluster.sql(f"COPY copy_clicks FROM '{csv_file}' CSV"))
        assert cluster.value("SELECT count(*) FROM copy_clicks") == rows

        for fmt in formats:
            topic = f"bench.{fmt}"
            extra = ["--registry", sandbox.registry_url] if fmt in ("avro", "protobuf") else []
            datagen("--format", fmt, "--count", str(rows), "--topic", topic, "--brokers", sandbox.bootstrap, *extra)

            out = os.path.join(cluster.dir, f"kcat.{fmt}")
            with open(out, "wb") as f:
                kcat_seconds = timed(lambda: subprocess.run(
                    ["kcat", "-C", "-b", sandbox.bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                     "-f", "%s\n"], stdout=f, check=True))

            table = f"src_{fmt}"
            cluster.sql(f"CREATE UNLOGGED TABLE {table} (LIKE streamrec.clicks)")
            options = {"schema_registry": sandbox.registry_url} if fmt in ("avro", "protobuf") else {}
            cluster.sql("SELECT streamrec.create_source(%s, %s, %s, %s, NULL, %s)",
                        (f"bench_{fmt}", topic, table, fmt, json.dumps(options)))
            wait_for(lambda: cluster.value(f"SELECT rows FROM streamrec.source_stats WHERE name = 'bench_{fmt}'") > 0,
                     30, interval=0.01, what="first batch")
            started = time.monotonic()
            first, pid = cluster.sql(f"SELECT rows, pid FROM streamrec.source_stats WHERE name = 'bench_{fmt}'")[0]
            memory = []

            def done():
                memory.append(rss_mb(pid))
                return cluster.value(f"SELECT rows FROM streamrec.source_stats WHERE name = 'bench_{fmt}'") >= rows

            wait_for(done, 600, interval=0.02, what="all rows")
            source_seconds = time.monotonic() - started
            memory = [m for m in memory if m is not None]
            assert cluster.value(f"SELECT count(*) FROM {table}") == rows
            assert cluster.value("SELECT dead_letters FROM streamrec.source_stats WHERE name = %s",
                                 (f"bench_{fmt}",)) == 0
            cluster.sql("SELECT streamrec.drop_source(%s)", (f"bench_{fmt}",))
            results.append((fmt, partitions[fmt], rows / kcat_seconds, rows / copy_seconds,
                            (rows - first) / source_seconds, memory[len(memory) // 10], memory[-1], max(memory)))
    finally:
        cluster.destroy()
        sandbox.stop()
        sandbox.cleanup()

    print(f"\nbench/ingest: {rows:,} clicks per format (unlogged target tables, 2 cores)")
    print(f"{'format':<8} {'parts':>5} {'kcat rows/s':>12} {'COPY rows/s':>12} {'source rows/s':>14} "
          f"{'src/kcat':>9} {'src/COPY':>9}  worker private MB (10% / end / max)")
    for fmt, parts, kcat_rate, copy_rate, source_rate, rss_early, rss_end, rss_max in results:
        print(f"{fmt:<8} {parts:>5} {kcat_rate:>12,.0f} {copy_rate:>12,.0f} {source_rate:>14,.0f} "
              f"{source_rate / kcat_rate:>9.2f} {source_rate / copy_rate:>9.2f}  "
              f"{rss_early:.0f} / {rss_end:.0f} / {rss_max:.0f}")
    print("goals: src/kcat >= 0.9, src/COPY >= 0.6")


if __name__ == "__main__":
    main()
