"""The sandbox broker speaks Kafka to kcat and librdkafka clients, serves a Confluent-compatible
registry, and its fault-injection endpoints have real effects.

Run with Debian's python (confluent_kafka is installed there):
    STREAMREC_BUILD=/path/to/build /usr/bin/python3 -m unittest tests/integration/test_sandbox_broker.py
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sandbox import Sandbox, SandboxError, build_dir_from_env, find_sandbox_binary  # noqa: E402

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402

KCAT = shutil.which("kcat") or "/usr/bin/kcat"

USER_SCHEMA = json.dumps({"type": "record", "name": "User", "namespace": "shop",
                          "fields": [{"name": "user_id", "type": "string"},
                                     {"name": "name", "type": ["null", "string"], "default": None}]})
CLICK_SCHEMA = json.dumps({"type": "record", "name": "Click",
                           "fields": [{"name": "product_id", "type": "string"}]})


def kcat(*args, stdin=None, timeout=15):
    result = subprocess.run([KCAT, *args], input=stdin, capture_output=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"kcat {' '.join(args)} failed: {result.stderr.decode()}")
    return result.stdout


def topic_partitions(bootstrap, topic=None):
    """{topic: partition count} from kcat's metadata listing."""
    args = ["-L", "-J", "-b", bootstrap] + (["-t", topic] if topic else [])
    metadata = json.loads(kcat(*args))
    return {t["topic"]: len(t["partitions"]) for t in metadata["topics"]}


def consume_all(consumer, expected, timeout=15.0):
    messages = []
    deadline = time.monotonic() + timeout
    while len(messages) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            continue
        if message.error():
            raise AssertionError(f"consumer error: {message.error()}")
        messages.append(message)
    return messages


class SandboxBrokerTest(unittest.TestCase):
    """One sandbox shared by the tests that do not stop it."""

    @classmethod
    def setUpClass(cls):
        cls.sandbox = Sandbox(build_dir_from_env(),
                              topics={"orders": 3, "clicks": 1, "kcat-trip": 1, "py-trip": 2,
                                      "grouped": 2, "faults": 1, "retention": 1})
        cls.sandbox.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.sandbox.stop()
        finally:
            cls.sandbox.cleanup()

    def test_kcat_lists_topics_with_their_partition_counts(self):
        partitions = topic_partitions(self.sandbox.bootstrap)
        for topic, count in {"orders": 3, "clicks": 1, "py-trip": 2, "grouped": 2}.items():
            self.assertEqual(partitions.get(topic), count, partitions)

    def test_kcat_round_trip_keeps_exact_bytes_and_keys(self):
        records = [("user-27", 'user-27,"140,13,137,95,39,138","2024-06-28 13:01:55"'),
                   ("caf\u00e9", "unicode \u2713 \u00e9\u00e8 and  two  spaces "),
                   ("k3", '{"json": "value", "escaped": "\\"quoted\\""}')]
        lines = "".join(f"{key}\t{value}\n" for key, value in records).encode()
        kcat("-P", "-b", self.sandbox.bootstrap, "-t", "kcat-trip", "-K", "\t", stdin=lines)

        out = kcat("-C", "-b", self.sandbox.bootstrap, "-t", "kcat-trip", "-o", "beginning",
                   "-e", "-J", "-q")
        consumed = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        self.assertEqual([(m["key"], m["payload"]) for m in consumed], records)
        self.assertEqual([m["offset"] for m in consumed], [0, 1, 2])

    def test_python_producer_and_consumer_round_trip_binary_bytes(self):
        producer = Producer({"bootstrap.servers": self.sandbox.bootstrap,
                             "enable.idempotence": True, "linger.ms": 5})
        sent = [(b"\x00\xffkey-%d" % i, bytes(range(256)) + b"#%d" % i, i % 2) for i in range(6)]
        failures = []
        for key, value, partition in sent:
            producer.produce("py-trip", value=value, key=key, partition=partition,
                             on_delivery=lambda err, msg: err and failures.append(err))
        self.assertEqual(producer.flush(10), 0)
        self.assertEqual(failures, [])

        consumer = Consumer({"bootstrap.servers": self.sandbox.bootstrap,
                             "group.id": "py-trip-reader", "enable.auto.commit": False})
        try:
            consumer.assign([TopicPartition("py-trip", p, 0) for p in (0, 1)])
            received = consume_all(consumer, len(sent))
        finally:
            consumer.close()
        got = sorted((m.key(), m.value(), m.partition()) for m in received)
        self.assertEqual(got, sorted(sent))
        for partition in (0, 1):
            offsets = sorted(m.offset() for m in received if m.partition() == partition)
            self.assertEqual(offsets, [0, 1, 2])

    def test_consumer_group_subscribe_and_commit(self):
        producer = Producer({"bootstrap.servers": self.sandbox.bootstrap})
        for i in range(10):
            producer.produce("grouped", value=b"event-%d" % i, key=b"%d" % i, partition=i % 2)
        self.assertEqual(producer.flush(10), 0)

        config = {"bootstrap.servers": self.sandbox.bootstrap, "group.id": "sandbox-group",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False}
        consumer = Consumer(config)
        try:
            consumer.subscribe(["grouped"])
            received = consume_all(consumer, 10)
            self.assertEqual(sorted(m.value() for m in received),
                             sorted(b"event-%d" % i for i in range(10)))
            self.assertEqual(sorted(tp.partition for tp in consumer.assignment()), [0, 1])
            consumer.commit(asynchronous=False)
        finally:
            consumer.close()

        # A new member of the group reads the committed offsets back (OffsetFetch).
        reader = Consumer(config)
        try:
            committed = reader.committed([TopicPartition("grouped", 0),
                                          TopicPartition("grouped", 1)], timeout=10)
        finally:
            reader.close()
        self.assertEqual(sorted((tp.partition, tp.offset) for tp in committed), [(0, 5), (1, 5)])

    def test_partition_keeps_about_5_mib_and_drops_the_oldest_batches(self):
        producer = Producer({"bootstrap.servers": self.sandbox.bootstrap, "linger.ms": 0,
                             "batch.num.messages": 1, "compression.type": "none"})
        for _ in range(700):  # one 10 kB message per batch, 7 MB in all
            producer.produce("retention", b"r" * 10000, partition=0)
            producer.poll(0)
        self.assertEqual(producer.flush(15), 0)
        consumer = Consumer({"bootstrap.servers": self.sandbox.bootstrap, "group.id": "wm"})
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition("retention", 0), timeout=5)
        finally:
            consumer.close()
        self.assertEqual(high, 700)
        kept = high - low
        # 5 MiB of batches of 10 kB plus a few dozen bytes of batch framing each.
        self.assertTrue(5 * 1024 * 1024 // 10200 <= kept <= 5 * 1024 * 1024 // 10000, kept)

    def test_producer_metadata_auto_creates_unknown_topics_with_4_partitions(self):
        producer = Producer({"bootstrap.servers": self.sandbox.bootstrap})
        producer.produce("never-declared", b"x")
        self.assertEqual(producer.flush(10), 0)
        self.assertEqual(topic_partitions(self.sandbox.bootstrap, "never-declared"),
                         {"never-declared": 4})

    def test_registry_register_and_get(self):
        status, body = self.sandbox.http("POST", "/subjects/users-value/versions",
                                         {"schema": USER_SCHEMA})
        self.assertEqual((status, list(body)), (200, ["id"]))
        schema_id = body["id"]
        # Registering again returns the same id.
        self.assertEqual(self.sandbox.http("POST", "/subjects/users-value/versions",
                                           {"schema": USER_SCHEMA, "schemaType": "AVRO"}),
                         (200, {"id": schema_id}))
        self.assertEqual(self.sandbox.http("GET", f"/schemas/ids/{schema_id}"),
                         (200, {"schema": USER_SCHEMA}))
        self.assertEqual(self.sandbox.http("GET", "/subjects/users-value/versions/latest"),
                         (200, {"subject": "users-value", "version": 1, "id": schema_id,
                                "schema": USER_SCHEMA}))
        self.assertEqual(self.sandbox.http("GET", "/schemas/ids/999999"),
                         (404, {"error_code": 40403, "message": "Schema not found"}))
        self.assertEqual(self.sandbox.http("POST", "/subjects/users-value/versions", b"{nope"),
                         (400, {"error_code": 400,
                                "message": "The request body is not valid JSON"}))

        with urllib.request.urlopen(self.sandbox.registry_url + "/subjects", timeout=5) as reply:
            self.assertEqual(reply.headers["Content-Type"], "application/vnd.schemaregistry.v1+json")
            self.assertIn("users-value", json.loads(reply.read()))

    def test_registry_under_the_apicurio_ccompat_prefix(self):
        prefix = "/apis/ccompat/v6"
        status, body = self.sandbox.http("POST", prefix + "/subjects/team%2Fclicks-value/versions",
                                         {"schema": CLICK_SCHEMA})
        self.assertEqual(status, 200)
        schema_id = body["id"]
        self.assertEqual(self.sandbox.http("GET", f"{prefix}/schemas/ids/{schema_id}"),
                         (200, {"schema": CLICK_SCHEMA}))
        expected = {"subject": "team/clicks-value", "version": 1, "id": schema_id,
                    "schema": CLICK_SCHEMA}
        self.assertEqual(
            self.sandbox.http("GET", prefix + "/subjects/team%2Fclicks-value/versions/latest"),
            (200, expected))
        # One store behind both base URLs.
        self.assertEqual(self.sandbox.http("GET", "/subjects/team%2Fclicks-value/versions/1"),
                         (200, expected))

    def test_registry_down_answers_503_until_it_is_back(self):
        self.sandbox.registry_down(30)
        try:
            status, body = self.sandbox.http("GET", "/subjects")
            self.assertEqual((status, body["error_code"]), (503, 50301))
            self.assertEqual(self.sandbox.http("GET", "/apis/ccompat/v6/subjects")[0], 503)
            self.assertEqual(self.sandbox.http("GET", "/admin/health"), (200, {"ok": True}))
        finally:
            self.sandbox.registry_down(0)
        self.assertEqual(self.sandbox.http("GET", "/subjects")[0], 200)

        self.sandbox.registry_down(0.3)
        self.assertEqual(self.sandbox.http("GET", "/subjects")[0], 503)
        time.sleep(0.5)
        self.assertEqual(self.sandbox.http("GET", "/subjects")[0], 200)

    def test_admin_creates_topics(self):
        self.assertEqual(self.sandbox.create_topic("made.by-admin", 4),
                         {"ok": True, "topic": "made.by-admin", "partitions": 4})
        self.assertEqual(topic_partitions(self.sandbox.bootstrap, "made.by-admin"),
                         {"made.by-admin": 4})
        with self.assertRaisesRegex(SandboxError, "409"):
            self.sandbox.create_topic("made.by-admin", 2)
        with self.assertRaisesRegex(SandboxError, "400"):
            self.sandbox.create_topic("no spaces", 1)

    def test_topic_missing_until_present(self):
        # Metadata only, no group: an established mock group takes session.timeout.ms - 1 s to
        # rebalance when the topic appears, which would make this test slow or flaky.
        self.assertEqual(self.sandbox.topic_missing("late-topic", 2),
                         {"ok": True, "topic": "late-topic", "state": "missing"})
        consumer = Consumer({"bootstrap.servers": self.sandbox.bootstrap, "group.id": "late"})
        try:
            # Asking about it does not create it, unlike any other unknown topic.
            for _ in range(2):
                topic = consumer.list_topics("late-topic", timeout=5).topics["late-topic"]
                self.assertEqual(topic.error.code(), KafkaError.UNKNOWN_TOPIC_OR_PART)
                self.assertEqual(len(topic.partitions), 0)

            self.assertEqual(self.sandbox.topic_present("late-topic"),
                             {"ok": True, "topic": "late-topic", "state": "present"})
            topic = consumer.list_topics("late-topic", timeout=5).topics["late-topic"]
            self.assertIsNone(topic.error)
            self.assertEqual(len(topic.partitions), 2)

            producer = Producer({"bootstrap.servers": self.sandbox.bootstrap})
            producer.produce("late-topic", b"arrived", partition=1)
            self.assertEqual(producer.flush(10), 0)
            consumer.assign([TopicPartition("late-topic", 1, 0)])
            received = consume_all(consumer, 1)
            self.assertEqual([(m.partition(), m.offset(), m.value()) for m in received],
                             [(1, 0, b"arrived")])
        finally:
            consumer.close()

    def test_broker_down_fails_produce_until_broker_up(self):
        producer = Producer({"bootstrap.servers": self.sandbox.bootstrap,
                             "message.timeout.ms": 1500, "reconnect.backoff.ms": 50,
                             "reconnect.backoff.max.ms": 200,
                             "log_level": 2})  # refused connections are the point here
        outcomes = []

        def record(err, msg):
            outcomes.append((err.code() if err else None, None if err else msg.offset()))

        producer.produce("faults", b"before", on_delivery=record)
        self.assertEqual(producer.flush(10), 0)
        self.assertEqual(outcomes, [(None, 0)])

        self.assertEqual(self.sandbox.broker_down(1), {"ok": True, "broker": 1, "state": "down"})
        try:
            producer.produce("faults", b"while down", on_delivery=record)
            producer.flush(10)
            self.assertEqual(len(outcomes), 2)
            self.assertEqual(outcomes[1], (KafkaError._MSG_TIMED_OUT, None))
        finally:
            self.sandbox.broker_up(1)

        producer.produce("faults", b"after", on_delivery=record)
        self.assertEqual(producer.flush(10), 0)
        # Offset 1: the message produced while the broker was down never reached the log.
        self.assertEqual(outcomes[2], (None, 1))


class SandboxLifecycleTest(unittest.TestCase):

    def test_several_brokers_fixed_registry_port_and_prompt_sigterm(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        sandbox = Sandbox(build_dir_from_env(), topics={"spread": 6}, brokers=3,
                          registry_port=port)
        try:
            sandbox.start()
            self.assertEqual(sandbox.registry_url, f"http://127.0.0.1:{port}")
            self.assertEqual(len(sandbox.bootstrap.split(",")), 3)
            metadata = json.loads(kcat("-L", "-J", "-b", sandbox.bootstrap))
            self.assertEqual(sorted(b["id"] for b in metadata["brokers"]), [1, 2, 3])
            self.assertEqual(topic_partitions(sandbox.bootstrap, "spread"), {"spread": 6})
            with open(sandbox.pid_file) as f:
                self.assertEqual(int(f.read()), sandbox.process.pid)

            # An open client connection must not hold up shutdown.
            consumer = Consumer({"bootstrap.servers": sandbox.bootstrap, "group.id": "idle",
                                 "log_level": 2})  # its disconnect notices are expected
            consumer.list_topics(timeout=5)
            started = time.monotonic()
            sandbox.stop()
            self.assertLess(time.monotonic() - started, 3.0)
            consumer.close()
            for announced in (sandbox.bootstrap_file, sandbox.registry_url_file, sandbox.pid_file):
                self.assertFalse(os.path.exists(announced), announced)
        finally:
            sandbox.cleanup()

    def test_bad_arguments_exit_2_with_a_message(self):
        binary = find_sandbox_binary(build_dir_from_env())
        result = subprocess.run([binary, "--bootstrap-file", "/tmp/unused", "--topic", "t:0"],
                                capture_output=True, text=True, timeout=10)
        self.assertEqual(result.returncode, 2)
        self.assertIn("--topic expects NAME[:PARTITIONS]", result.stderr)
        self.assertFalse(os.path.exists("/tmp/unused"))

    def test_help_documents_the_mock_limits(self):
        binary = find_sandbox_binary(build_dir_from_env())
        result = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(result.returncode, 0)
        self.assertIn("5 MiB (5242880 bytes)", result.stdout)
        self.assertIn("100000 record batches", result.stdout)


if __name__ == "__main__":
    unittest.main()
