"""Producing and reading test messages with independent Kafka clients (kcat and Python's
confluent-kafka), so the extension is checked against code that is not its own."""

import subprocess
import time

from confluent_kafka import Consumer, Producer, TopicPartition

# The Flink recommender's output line: what a csv sink of (user_id, product_ids, window_end) writes.
SEED_VALUE = b'user-27,"140,13,137,95,39,138","2024-06-28 13:01:55"'


def produce(bootstrap, topic, messages, partition=None):
    """messages: iterable of value bytes/str or (key, value) pairs; waits for every delivery."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    failures = []

    def delivered(err, _msg):
        if err is not None:
            failures.append(err)

    count = 0
    for m in messages:
        key, value = m if isinstance(m, tuple) else (None, m)
        kwargs = {"key": key, "value": value, "on_delivery": delivered}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if count % 10000 == 0:
            producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0 and not failures, f"delivery failed: {remaining} pending, errors {failures[:3]}"
    return count


def kcat_produce(bootstrap, topic, lines, partition=None, key_delimiter=None):
    """Produces newline-separated messages with kcat -P (optionally keyed 'key<delim>value')."""
    cmd = ["kcat", "-P", "-b", bootstrap, "-t", topic]
    if partition is not None:
        cmd += ["-p", str(partition)]
    if key_delimiter:
        cmd += ["-K", key_delimiter]
    subprocess.run(cmd, input="\n".join(lines) + "\n", text=True, check=True, timeout=60)


def consume(bootstrap, topic, count, timeout=30, partitions=1):
    """Reads `count` messages from the start of every partition of `topic`: a list of
    (partition, offset, key, value) in partition/offset order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for m in consumer.consume(10000, 0.2):
                if m.error() is None:
                    out.append((m.partition(), m.offset(), m.key(), m.value()))
        time.sleep(0.3)  # a late duplicate or extra message would show now
        for m in consumer.consume(10000, 0.3):
            if m.error() is None:
                out.append((m.partition(), m.offset(), m.key(), m.value()))
        return sorted(out)
    finally:
        consumer.close()
