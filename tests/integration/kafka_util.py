"""Producing and reading test messages with independent Kafka clients (kcat and Python's
confluent-kafka), so the extension is checked against code that is not its own."""

import subprocess

from confluent_kafka import Producer


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
