#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets, corpus/<target>/<name>: a handful of small valid
messages and edge cases per decoder. Deterministic (no randomness, no clock): running it again
rewrites the same files, so the committed seeds are reproducible. Avro seeds are encoded with
python3-avro from the schemas of tests/fuzz/schemas, the same files the targets read.

    /usr/bin/python3 tests/fuzz/make_corpus.py          # rewrite every corpus
"""

import datetime
import decimal
import io
import json
import os
import shutil
import struct
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))


def write_corpus(target, seeds):
    folder = os.path.join(HERE, "corpus", target)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, data in seeds.items():
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


def csv_seeds():
    return {
        "plain": "user-1,2024-06-28T13:01:55Z,\"{a,b}\"",
        "every_kind_tabs": "text\tt\t1719579715123\t2024-06-28\tbytes\t\"{\"\"a\"\": 1}\"\t{1,2,3}",
        "every_kind_commas": "x,false,2024-06-28 13:01:55,19000,\\x00ff,[1],\"{\"\"q\"\"}\"",
        "semicolons": "'it''s; here';NULL;'{x}'",
        "header_semicolons": "user_id;at;tags",
        "header_tabs": "t\tb\tts\td\traw\tdoc\ta",
        "quoted_line_break": "\"a\nb\",c",
        "trailing_line_break": "a,b\n",
        "crlf": "a,b\r\n",
        "two_records": "a,b\nc,d",
        "unclosed_quote": "\"abc,d",
        "quote_in_field": "ab\"c,d",
        "backslashes_and_tabs": "a\\b\\\\c\t\t,\"\t\"",
        "empty": "",
        "only_delimiters": ",,,,,,",
        "utf8": "h\u00e9llo w\u00f6rld \U0001F600",
        "nul": b"a\x00b",
    }


def json_seeds():
    every = {
        "id": "e-1", "ok": True, "at": 1719579715123, "day": "2024-06-28", "raw": "\\x00ff",
        "doc": {"a": [1, 2.5, None, "s"]}, "tags": ["a", "b,c", None, "NULL", "", "q\"uote"],
        "a": {"b": {"c": "deep"}},
    }
    return {
        "every_kind": json.dumps(every),
        "nested_arrays": json.dumps({"tags": [[1, 2], [3, None]], "v": [{"x": 1}, [], [[[]]]]}),
        "numbers": '{"id": 123456789012345678901234567890, "at": 1.7e12, "day": -0.0e-5, "ok": false}',
        "timestamps_as_text": json.dumps({"at": "2024-06-28T13:01:55.123+02:00", "day": 19000}),
        "escapes": r'{"id": "tab\there \\ \"q\" \u00e9 \ud83d\ude00 \n", "k\u0065y": 1}',
        "duplicate_keys": '{"id": 1, "id": 2, "a": {"b": 1}, "a": {"b": {"c": 3}}}',
        "nulls": '{"id": null, "ok": null, "tags": null, "doc": null, "a": null}',
        "path_through_scalar": '{"a": 5, "deep": 1}',
        "not_an_object": "[1, 2, 3]",
        "truncated": '{"id": "e-1", "tags": [1, 2',
        "trailing_garbage": '{"id": 1} x',
        "deep": "[" * 200 + "]" * 200,
        "deep_object": '{"a":' * 130 + "1" + "}" * 130,
        "empty": "",
        "bad_utf8": b'{"id": "\xff\xfe"}',
        "nul": b'{"id": "a\x00b"}',
        "whitespace": ' \n\t{ "id" : "x" }\r\n ',
    }


def avro_schema(name):
    import avro.schema
    with open(os.path.join(HERE, "schemas", name)) as f:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # python3-avro does not know local-timestamp-millis: a long
            return avro.schema.parse(f.read())


def avro_encode(schema, record):
    import avro.io
    buffer = io.BytesIO()
    avro.io.DatumWriter(schema).write(record, avro.io.BinaryEncoder(buffer))
    return buffer.getvalue()


def event_v1(i):
    return {
        "id": f"e-{i}", "n": -i * 1000, "big": 1719579715123 + i, "ratio": 0.5 * i, "score": 1719579715123.25 + i,
        "ok": i % 2 == 0, "raw": bytes(range(i + 1, i + 6)), "kind": "ABC"[i % 3], "hash": b"\x00\x01\xfe\xff",
        "price": decimal.Decimal("-12345678.90") if i % 2 else decimal.Decimal("0.05"),
        "amount": decimal.Decimal("922337203685.4775"),
        "day": datetime.date(2022, 1, 8) + datetime.timedelta(days=i),
        "at_ms": datetime.datetime(2024, 6, 28, 13, 1, 55, 123000, tzinfo=datetime.timezone.utc),
        "at_us": datetime.datetime(1915, 7, 6, 10, 58, 4, 876544, tzinfo=datetime.timezone.utc),
        "local_ms": 0, "t_ms": datetime.time(23, 59, 59, 999000), "t_us": datetime.time(0, 0, 0, 1),
        "maybe": None if i % 2 else "m\tx",
        "multi": [None, 7, "s", {"left": 1, "right": {"left": 2, "right": None}}][i % 4],
        "tags": ["a", "b,c", "", "NULL", "{}"][:i + 1], "matrix": [[1, None], [], [3]],
        "attrs": {"x": 1, "y\"": -2}, "nothing": None,
        "nested": {"name": "root", "child": {"name": "kid", "child": {"name": "grandkid", "child": None}}},
        "items": [{"sku": "s-1", "qty": 2}, {"sku": "", "qty": -1}],
    }


def event_v2(i):
    return {
        "score": 2.5, "id": None if i % 2 else f"v2-{i}", "n": 2 ** 40, "added": "new", "ok": None,
        "nested": {"name": None, "child": {"name": "kid", "child": None}}, "tags": ["x", None], "day": "2024-06-28",
    }


def avro_seeds():
    v1 = avro_schema("event_v1.avsc")
    seeds = {f"event_{i}": avro_encode(v1, event_v1(i)) for i in range(4)}
    whole = seeds["event_1"]
    odd = dict(event_v1(1), score=-1e300, raw=b"\x00", tags=[], attrs={}, items=[])
    seeds["event_odd"] = avro_encode(v1, odd)
    seeds.update({
        "truncated": whole[: len(whole) // 2],
        "trailing_byte": whole + b"\x00",
        "empty": b"",
        "long_varint": b"\xff" * 11,
        # A one-byte string, then the longest varint there is.
        "ten_byte_varint": b"\x02a" + b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    })
    return seeds


def frame(schema_id, body):
    return b"\x00" + struct.pack(">i", schema_id) + body


def confluent_seeds():
    v1 = avro_schema("event_v1.avsc")
    v2 = avro_schema("event_v2.avsc")
    seeds = {f"v1_event_{i}": frame(1, avro_encode(v1, event_v1(i))) for i in range(2)}
    seeds.update({f"v2_event_{i}": frame(2, avro_encode(v2, event_v2(i))) for i in range(2)})
    seeds.update({
        "not_a_record_schema": frame(3, b"\x02\x02"),
        "broken_schema": frame(4, b""),
        "registry_down": frame(5, b"\x00"),
        "unknown_id": frame(99, b"\x00"),
        "negative_id": frame(-1, b"\x00"),
        "bad_magic": b"\x01\x00\x00\x00\x01\x00",
        "short": b"\x00\x00\x01",
        "plain_json": b'{"id": 1}',
    })
    return seeds


def sink_seeds():
    # FuzzedDataProvider reads its integers from the end of the input and strings from the
    # start: any bytes make a row; these only vary the column count, kinds and lengths.
    return {
        "zeros": bytes(64),
        "ones": b"\x01" * 64,
        "ascending": bytes(range(256)),
        "descending": bytes(range(255, -1, -1)),
        "text": b"hello, \"world\"\n\ttab\\ NULL \xc3\xa9" * 3,
    }


def key_seeds():
    record = {"type": "record", "name": "Key", "fields": [{"name": "id", "type": "string"},
                                                          {"name": "region", "type": ["null", "string"]}]}
    import avro.schema
    schema = avro.schema.parse(json.dumps(record))
    return {
        "text": "user-27",
        "csv": "user-27,eu",
        "csv_quoted": '"user,27",""',
        "json": '{"id": "user-27", "region": "eu"}',
        "json_wrapped": '{"schema": {"type": "struct", "fields": []}, "payload": {"id": "u1", "region": null}}',
        "avro": frame(1, avro_encode(schema, {"id": "user-27", "region": "eu"})),
        "avro_null": frame(1, avro_encode(schema, {"id": "", "region": None})),
    }


def debezium_seeds():
    row = {"id": 17, "name": "Ann", "status": "gold"}
    source = {"connector": "mysql", "db": "shop", "table": "customers"}
    def event(op, before, after):
        return json.dumps({"before": before, "after": after, "source": source, "op": op, "ts_ms": 1719579715123})
    return {
        "create": event("c", None, row),
        "read": event("r", None, row),
        "update": event("u", row, dict(row, status="platinum")),
        "key_change": event("u", row, dict(row, id=18)),
        "delete": event("d", row, None),
        "wrapped": json.dumps({"schema": {"type": "struct"}, "payload": json.loads(event("c", None, row))}),
        "unknown_op": event("x", None, row),
    }


def varint(n):
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def protobuf_seeds():
    text = b"\x0a" + varint(7) + b"user-27"
    number = b"\x10" + varint(300)
    fixed = b"\x19" + struct.pack("<d", 2.5)
    nested = b"\x22" + varint(len(text)) + text
    body = text + number + fixed + nested
    return {
        "plain": body,
        "framed": frame(1, b"\x00" + body),
        "framed_indexes": frame(1, b"\x02\x00" + body),
        "empty": b"",
        "truncated": body[:-3],
    }


def main():
    write_corpus("fuzz_csv", csv_seeds())
    write_corpus("fuzz_json", json_seeds())
    write_corpus("fuzz_avro", avro_seeds())
    write_corpus("fuzz_confluent_avro", confluent_seeds())
    write_corpus("fuzz_sink_encoders", sink_seeds())
    write_corpus("fuzz_keys", key_seeds())
    write_corpus("fuzz_debezium", debezium_seeds())
    write_corpus("fuzz_protobuf", protobuf_seeds())
    return 0


if __name__ == "__main__":
    sys.exit(main())
