"""Monitoring: postgres_exporter with monitoring/queries.yaml against a test
cluster with a source, a sink and two pipelines; its /metrics endpoint must show their exact
counters. The Grafana dashboard must only plot metrics the queries file defines."""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request

from harness import REPO, RUN_AS, StreamTestCase, _as_postgres, free_port, wait_for
from kafka_util import kcat_produce

EXPORTER = shutil.which("prometheus-postgres-exporter") or "/usr/bin/prometheus-postgres-exporter"
QUERIES = os.path.join(REPO, "monitoring", "queries.yaml")
DASHBOARD = os.path.join(REPO, "monitoring", "grafana-dashboard.json")


def parse_metrics(text):
    """{(name, frozenset(labels)): value} from the Prometheus text format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$', line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def series(metrics, metric, **labels):
    """The one value of `metric` whose labels include `labels` (the exporter adds its own,
    such as server)."""
    found = [v for (n, ls), v in metrics.items() if n == metric and set(labels.items()) <= ls]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} series {metric}{labels} in " +
                             str(sorted((n, sorted(ls)) for n, ls in metrics if n.startswith("streamrec_"))))
    return found[0]


class MonitoringTest(StreamTestCase):
    topics = {"mon.ratings": 1, "mon.unhappy": 1}

    def start_exporter(self):
        port = free_port()
        env = dict(os.environ, DATA_SOURCE_NAME=f"postgresql://postgres@127.0.0.1:{self.cluster.port}/postgres"
                                                "?sslmode=disable")
        # The exporter runs as postgres too: the queries file must be readable by that user.
        self.exporter = subprocess.Popen(
            _as_postgres([EXPORTER, f"--web.listen-address=127.0.0.1:{port}", f"--extend.query-path={QUERIES}",
                          "--disable-settings-metrics", "--log.level=warn"]),
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(self.stop_exporter)
        return f"http://127.0.0.1:{port}/metrics"

    def stop_exporter(self):
        self.exporter.terminate()
        try:
            self.exporter.wait(10)
        except subprocess.TimeoutExpired:
            self.exporter.kill()
            self.exporter.wait()

    def scrape(self, url):
        with urllib.request.urlopen(url, timeout=10) as response:
            return parse_metrics(response.read().decode())

    def test_exporter_serves_source_sink_and_pipeline_metrics(self):
        self.assertTrue(os.path.exists(EXPORTER), "apt-get install prometheus-postgres-exporter")
        self.sql("INSERT INTO streamrec.customers VALUES ('1', 'Ann', 'Lee', 'ann@example.com', 'platinum'), "
                 "('2', 'Bo', 'Kim', 'bo@example.com', 'gold')")
        self.sql("SELECT streamrec.enable_pipeline('ratings', '{\"output_topic\": \"mon.unhappy\"}')")
        self.sql("SELECT streamrec.enable_pipeline('attribution')")
        lines = ["r1,1,p1,1,web,awful,2024-06-28 13:00:00", "r2,2,p1,5,web,great,2024-06-28 13:00:01",
                 "r3,9,p1,4,web,who,2024-06-28 13:00:02", "r4,1,p1,5,web-test,t,2024-06-28 13:00:03",
                 "r5,1,p2,not-a-number,web,bad,2024-06-28 13:00:04"]
        kcat_produce(self.sandbox.bootstrap, "mon.ratings", lines)
        self.sql("SELECT streamrec.create_source('mon_ratings', 'mon.ratings', 'streamrec.ratings')")
        wait_for(lambda: self.value("SELECT rows FROM streamrec.source_stats WHERE name = 'mon_ratings'") == 4
                 and self.value("SELECT produced FROM streamrec.sink_stats") == 1, 60, what="source and sink done")

        url = self.start_exporter()
        metrics = wait_for(lambda: self.try_scrape(url), 30, what="exporter answering with streamrec metrics")
        self.assertEqual(series(metrics, "streamrec_source_messages", name="mon_ratings", state="running"), 5)
        self.assertEqual(series(metrics, "streamrec_source_rows", name="mon_ratings", state="running"), 4)
        self.assertEqual(series(metrics, "streamrec_source_dead_letters", name="mon_ratings", state="running"), 1)
        self.assertEqual(series(metrics, "streamrec_source_lag", name="mon_ratings", state="running"), 0)
        self.assertGreaterEqual(series(metrics, "streamrec_source_seconds_since_last_message", name="mon_ratings",
                                       state="running"), 0)
        self.assertEqual(series(metrics, "streamrec_sink_produced", name="pipeline_ratings_unhappy", state="running"), 1)
        self.assertEqual(series(metrics, "streamrec_sink_pending", name="pipeline_ratings_unhappy", state="running"), 0)
        self.assertEqual(series(metrics, "streamrec_sink_failed", name="pipeline_ratings_unhappy", state="running"), 0)
        # 4 ratings read; 2 enriched + 1 unhappy written; the unknown customer skipped.
        self.assertEqual(series(metrics, "streamrec_pipeline_events", name="ratings"), 4)
        self.assertEqual(series(metrics, "streamrec_pipeline_outputs", name="ratings"), 3)
        self.assertEqual(series(metrics, "streamrec_pipeline_skipped", name="ratings"), 1)
        self.assertEqual(series(metrics, "streamrec_pipeline_late", name="ratings"), 0)
        self.assertEqual(series(metrics, "streamrec_pipeline_future", name="ratings"), 0)
        self.assertEqual(series(metrics, "streamrec_pipeline_enabled", name="ratings"), 1)
        self.assertEqual(series(metrics, "streamrec_pipeline_has_error", name="ratings"), 0)
        self.assertEqual(series(metrics, "streamrec_pipeline_enabled", name="attribution"), 1)
        watermark = series(metrics, "streamrec_pipeline_watermark_watermark_seconds", pipeline="ratings")
        self.assertEqual(watermark, 1719579600)  # 13:00:01 (the newest enriched rating) minus 1 s
        self.assertEqual(series(metrics, "pg_up"), 1)

        # A later scrape follows the views: the pipeline disabled, more rows in.
        self.sql("SELECT streamrec.disable_pipeline('attribution')")
        kcat_produce(self.sandbox.bootstrap, "mon.ratings", ["r6,2,p1,2,ios,meh,2024-06-28 13:00:05"])
        wait_for(lambda: self.value("SELECT rows FROM streamrec.source_stats WHERE name = 'mon_ratings'") == 5, 30,
                 what="one more row")
        later = self.scrape(url)
        self.assertEqual(series(later, "streamrec_source_rows", name="mon_ratings", state="running"), 5)
        self.assertEqual(series(later, "streamrec_pipeline_events", name="ratings"), 5)
        self.assertEqual(series(later, "streamrec_pipeline_enabled", name="attribution"), 0)

        # The dashboard plots only what the exporter serves.
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        self.assertGreaterEqual(len(exprs), 8)
        served = {name for name, _ in metrics}
        for expr in exprs:
            for name in re.findall(r"\b(streamrec_[a-z_]+)\b", expr):
                self.assertIn(name, served, expr)

    def try_scrape(self, url):
        if self.exporter.poll() is not None:
            raise AssertionError("exporter exited: " + self.exporter.stderr.read().decode())
        try:
            metrics = self.scrape(url)
        except OSError:
            return None
        return metrics if any(name.startswith("streamrec_pipeline_") for name, _ in metrics) else None
