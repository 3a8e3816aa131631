"""Protobuf sources and sinks against the sandbox broker and registry: Confluent-framed messages
whose schema imports another registered file and nests types, plain Protobuf with an inline
.proto, Timestamp, wrappers, enums, repeated and nested fields, proto3 defaults and presence, a
round trip through a protobuf sink, the data generator's clicks, and one dead letter (with its
offset) per kind of malformed message. Messages are encoded here by hand, independently of the
extension's code."""

import json
import struct
import urllib.parse

from harness import StreamTestCase, datagen, wait_for
from kafka_util import consume, produce


# --- the Protobuf wire format -------------------------------------------------------------------

def varint(value):
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def zigzag(value):
    return varint((value << 1) ^ (value >> 63))


def tag(field, wire):
    return varint(field << 3 | wire)


def int_field(field, value):
    return tag(field, 0) + varint(value)


def bytes_field(field, data):
    if isinstance(data, str):
        data = data.encode()
    return tag(field, 2) + varint(len(data)) + data


def double_field(field, value):
    return tag(field, 1) + struct.pack("<d", value)


def timestamp(seconds, nanos=0):
    return int_field(1, seconds) + (int_field(2, nanos) if nanos else b"")


def framed(schema_id, indexes, payload):
    """Confluent framing: magic byte, schema id, message-index list ([0] as the single byte 0)."""
    if indexes == [0]:
        index_bytes = b"\x00"
    else:
        index_bytes = zigzag(len(indexes)) + b"".join(zigzag(i) for i in indexes)
    return b"\x00" + struct.pack(">i", schema_id) + index_bytes + payload


MONEY_PROTO = """
syntax = "proto3";
package common;
message Money {
  string currency = 1;
  int64 units = 2;
}
"""

ORDER_PROTO = """
syntax = "proto3";
package shop;
import "common/money.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Status { STATUS_UNKNOWN = 0; PLACED = 1; SHIPPED = 2; }

message Header { string source = 1; }

message Order {
  int64 id = 1;
  Status status = 2;
  repeated int32 quantities = 3;
  common.Money total = 4;
  google.protobuf.Timestamp placed_at = 5;
  google.protobuf.StringValue coupon = 6;
  optional string note = 7;
  Line line = 8;
  repeated string tags = 9;
  google.protobuf.DoubleValue discount = 10;
  message Line {
    string sku = 1;
    Detail detail = 2;
    message Detail { int32 qty = 1; }
  }
}
"""

INLINE_PROTO = """
syntax = "proto3";
package inline;
import "google/protobuf/timestamp.proto";
message Reading {
  string sensor = 1;
  double value = 2;
  google.protobuf.Timestamp at = 3;
  bool ok = 4;
  bytes raw = 5;
}
"""


class ProtobufTestCase(StreamTestCase):
    topics = {"pb.orders": 1, "pb.inline": 1, "pb.bad": 1, "pb.out": 1, "pb.clicks": 1, "pb.clicks_json": 1}

    def wait_offset(self, source, offset, timeout=60):
        wait_for(lambda: self.value("SELECT max(next_offset) FROM streamrec.source_offsets WHERE source = %s",
                                    (source,)) == offset, timeout, what=f"{source} past offset {offset - 1}")

    def letters(self, source):
        return self.sql("SELECT \"offset\", payload, error FROM streamrec.dead_letters WHERE source = %s "
                        "ORDER BY \"offset\"", (source,))

    def register(self, subject, schema, references=None):
        body = {"schemaType": "PROTOBUF", "schema": schema}
        if references:
            body["references"] = references
        status, reply = self.sandbox.http("POST", f"/subjects/{urllib.parse.quote(subject, safe='')}/versions", body)
        self.assertEqual(status, 200, reply)
        return reply["id"]

    def register_orders(self):
        self.register("common/money.proto", MONEY_PROTO)
        return self.register("pb.orders-value", ORDER_PROTO,
                             [{"name": "common/money.proto", "subject": "common/money.proto", "version": 1}])

    def test_registry_framed_with_an_import_nested_types_timestamp_wrappers_enums_and_repeated(self):
        order_id = self.register_orders()
        self.assertEqual(self.sandbox.http("GET", f"/schemas/ids/{order_id}")[1]["schemaType"], "PROTOBUF")
        full = (int_field(1, 1001) + int_field(2, 2) + bytes_field(3, varint(3) + varint(1)) + int_field(3, 7)
                + bytes_field(4, bytes_field(1, "EUR") + int_field(2, 125))
                + bytes_field(5, timestamp(1719579715, 123456000))
                + bytes_field(6, bytes_field(1, "SUMMER")) + bytes_field(7, "gift")
                + bytes_field(8, bytes_field(1, "A-1") + bytes_field(2, int_field(1, 4)))
                + bytes_field(9, "red") + bytes_field(9, "big") + bytes_field(10, double_field(1, 0.25)))
        # Only an id: proto3 defaults, NULL wrappers and Timestamp, DEFAULT for optional and
        # message fields (and the paths below them).
        sparse = int_field(1, 1002)
        # An unknown enum number, a field this schema does not know (99), a wrapper without value.
        odd = int_field(1, 1003) + int_field(2, 9) + int_field(99, 5) + bytes_field(10, b"")
        # Message index [0]: a Header, whose fields the table lacks (every column defaults).
        header = bytes_field(1, "web")
        messages = [framed(order_id, [1], full), framed(order_id, [1], sparse), framed(order_id, [1], odd),
                    framed(order_id, [0], header)]
        produce(self.sandbox.bootstrap, "pb.orders", messages, partition=0)
        self.sql("CREATE TABLE pb_orders (id bigint DEFAULT -1, status text, quantities int[], currency text,"
                 " units bigint DEFAULT 0, placed_at timestamptz, coupon text, note text DEFAULT 'none',"
                 " sku text DEFAULT '?', qty int DEFAULT -1, line jsonb, tags text[], discount float8)")
        options = {"schema_registry": self.sandbox.registry_url,
                   "columns": {"id": "id", "status": "status", "quantities": "quantities",
                               "currency": "total.currency", "units": "total.units", "placed_at": "placed_at",
                               "coupon": "coupon", "note": "note", "sku": "line.sku", "qty": "line.detail.qty",
                               "line": "line", "tags": "tags", "discount": "discount"}}
        self.sql("SELECT streamrec.create_source('pb_orders', 'pb.orders', 'pb_orders', 'protobuf', NULL, %s)",
                 (json.dumps(options),))
        self.wait_offset("pb_orders", 4)
        rows = self.sql("SELECT id, status, quantities, currency, units, (placed_at AT TIME ZONE 'UTC')::text,"
                        " coupon, note, sku, qty, line::text, tags, discount FROM pb_orders ORDER BY id")
        self.assertEqual(rows, [
            (-1, None, None, None, 0, None, None, "none", "?", -1, None, None, None),
            (1001, "SHIPPED", [3, 1, 7], "EUR", 125, "2024-06-28 13:01:55.123456", "SUMMER", "gift", "A-1", 4,
             '{"sku": "A-1", "detail": {"qty": 4}}', ["red", "big"], 0.25),
            (1002, "STATUS_UNKNOWN", [], None, 0, None, None, "none", "?", -1, None, [], None),
            (1003, "9", [], None, 0, None, None, "none", "?", -1, None, [], 0.0),
        ])
        self.assertEqual(self.letters("pb_orders"), [])

    def test_inline_proto_with_a_message_name(self):
        readings = [bytes_field(1, "t-1") + double_field(2, 21.5) + bytes_field(3, timestamp(0, 1000))
                    + int_field(4, 1) + bytes_field(5, b"\x00\xff"),
                    bytes_field(1, "t-2")]
        produce(self.sandbox.bootstrap, "pb.inline", readings, partition=0)
        self.sql("CREATE TABLE pb_readings (sensor text, value float8, at timestamptz, ok boolean, raw bytea,"
                 " loaded_from text)")
        options = {"proto_schema": INLINE_PROTO, "proto_message": "inline.Reading",
                   "metadata": {"loaded_from": "topic"}}
        self.sql("SELECT streamrec.create_source('pb_inline', 'pb.inline', 'pb_readings', 'protobuf', NULL, %s)",
                 (json.dumps(options),))
        self.wait_offset("pb_inline", 2)
        self.assertEqual(self.sql("SELECT sensor, value, (at AT TIME ZONE 'UTC')::text, ok, encode(raw, 'hex'),"
                                  " loaded_from FROM pb_readings ORDER BY 1"),
                         [("t-1", 21.5, "1970-01-01 00:00:00.000001", True, "00ff", "pb.inline"),
                          ("t-2", 0.0, None, False, "", "pb.inline")])

    def test_malformed_messages_are_dead_lettered_with_their_offsets(self):
        order_id = self.register_orders()
        good = framed(order_id, [1], int_field(1, 1))
        cases = [
            ("truncated varint", framed(order_id, [1], b"\x08\xff\xff")),
            ("bad index list", b"\x00" + struct.pack(">i", order_id) + b"\x04\x02"),
            ("index out of range", framed(order_id, [7], int_field(1, 2))),
            ("unknown schema id", framed(order_id + 500, [1], int_field(1, 3))),
            ("wrong wire type", framed(order_id, [1], tag(1, 2) + varint(1) + b"x")),
            ("length past the end", framed(order_id, [1], tag(9, 2) + varint(50) + b"abc")),
            ("no Confluent header", int_field(1, 4)),
            ("invalid wire type", framed(order_id, [1], tag(1, 7))),
            ("an AVRO schema id", None),
        ]
        status, avro = self.sandbox.http("POST", "/subjects/pb.bad-avro/versions",
                                         {"schema": json.dumps({"type": "record", "name": "R", "fields": []})})
        self.assertEqual(status, 200, avro)
        cases[-1] = ("an AVRO schema id", framed(avro["id"], [0], b""))
        messages = [good] + [m for _, m in cases] + [framed(order_id, [1], int_field(1, 9))]
        produce(self.sandbox.bootstrap, "pb.bad", messages, partition=0)
        self.sql("CREATE TABLE pb_bad (id bigint, tags text[])")
        self.sql("SELECT streamrec.create_source('pb_bad', 'pb.bad', 'pb_bad', 'protobuf', NULL, %s)",
                 (json.dumps({"schema_registry": self.sandbox.registry_url}),))
        self.wait_offset("pb_bad", len(messages))
        self.assertEqual(self.sql("SELECT id FROM pb_bad ORDER BY id"), [(1,), (9,)])
        letters = self.letters("pb_bad")
        self.assertEqual([(o, bytes(p)) for o, p, _ in letters],
                         [(i + 1, m) for i, (_, m) in enumerate(cases)])
        errors = [e for _, _, e in letters]
        self.assertIn("data ended inside a varint", errors[0])
        self.assertIn("bad message-index list: 2 entries in the 1 bytes left", errors[1])
        self.assertIn("message index 7 at level 0 is out of range", errors[2])
        self.assertIn(f"schema id {order_id + 500} cannot be resolved", errors[3])
        self.assertIn("field 1 (id) has wire type 2, but its type takes wire type 0", errors[4])
        self.assertIn("length 50 exceeds the 3 bytes left", errors[5])
        self.assertIn("magic byte", errors[6])
        self.assertIn("wire type 7 does not exist", errors[7])
        self.assertIn("has schemaType AVRO, not PROTOBUF", errors[8])
        self.assertEqual(self.source_stats("pb_bad")["state"], "running")

    def test_round_trip_through_a_protobuf_sink(self):
        self.sql("CREATE TABLE pb_out (id bigint, name text, price float8, ok boolean, at timestamptz,"
                 " scores int[], words text[], amount numeric)")
        self.sql("SELECT streamrec.create_sink('pb_sink', 'pb_out', 'pb.out', 'protobuf', NULL, %s)",
                 (json.dumps({"schema_registry": self.sandbox.registry_url}),))
        self.sql("INSERT INTO pb_out VALUES (1, 'caf\u00e9\t\\x', 2.5, true, '2024-06-28 13:01:55.5+00',"
                 " '{1,-2}', '{a,\"b c\"}', 12.345),"
                 " (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL), (3, '', 0, false, '1969-12-31 23:59:59+00',"
                 " '{}', '{}', 0)")
        consume(self.sandbox.bootstrap, "pb.out", 3)
        status, latest = self.sandbox.http("GET", "/subjects/pb.out-value/versions/latest")
        self.assertEqual(status, 200, latest)
        self.assertEqual(latest["schemaType"], "PROTOBUF")
        self.assertIn("google.protobuf.Int64Value id = 1;", latest["schema"])
        self.sql("CREATE TABLE pb_back (LIKE pb_out)")
        self.sql("SELECT streamrec.create_source('pb_back', 'pb.out', 'pb_back', 'protobuf', NULL, %s)",
                 (json.dumps({"schema_registry": self.sandbox.registry_url}),))
        self.wait_offset("pb_back", 3)
        # Equal but for NULL arrays, which Protobuf writes as empty lists.
        self.assertEqual(
            self.sql("SELECT id, name, price, ok, at, coalesce(scores, '{}'), coalesce(words, '{}'), amount"
                     " FROM pb_out ORDER BY id"),
            self.sql("SELECT * FROM pb_back ORDER BY id"))

    def test_datagen_clicks_as_protobuf_load_like_their_json(self):
        args = ("--count", 200, "--seed", 5, "--users", 20, "--products", 50)
        datagen("clicks", *args, "--format", "protobuf", "--brokers", self.sandbox.bootstrap, "--topic", "pb.clicks",
                "--registry", self.sandbox.registry_url)
        datagen("clicks", *args, "--format", "json", "--brokers", self.sandbox.bootstrap, "--topic", "pb.clicks_json")
        self.sql("CREATE TABLE pb_clicks (LIKE streamrec.clicks)")
        self.sql("CREATE TABLE pb_clicks_json (LIKE streamrec.clicks)")
        self.sql("SELECT streamrec.create_source('pb_clicks', 'pb.clicks', 'pb_clicks', 'protobuf', NULL, %s)",
                 (json.dumps({"schema_registry": self.sandbox.registry_url}),))
        self.sql("SELECT streamrec.create_source('pb_clicks_json', 'pb.clicks_json', 'pb_clicks_json', 'json')")
        self.wait_offset("pb_clicks", 200)
        self.wait_offset("pb_clicks_json", 200)
        self.assertEqual(self.value("SELECT count(*) FROM pb_clicks"), 200)
        self.assertEqual(self.sql("SELECT * FROM pb_clicks EXCEPT SELECT * FROM pb_clicks_json"), [])
        self.assertEqual(self.sql("SELECT * FROM pb_clicks_json EXCEPT SELECT * FROM pb_clicks"), [])

    def test_option_refusals(self):
        self.sql("CREATE TABLE pb_args (id int)")
        registry = self.sandbox.registry_url
        refusals = [
            ("a protobuf source needs exactly one of", "protobuf", {}),
            ("a protobuf source needs exactly one of", "protobuf",
             {"schema_registry": registry, "proto_schema": "message A { int32 id = 1; }"}),
            ("option \"proto_message\" needs option \"proto_schema\"", "protobuf",
             {"schema_registry": registry, "proto_message": "A"}),
            ("option \"proto_schema\" applies to protobuf sources only", "json",
             {"proto_schema": "message A { int32 id = 1; }"}),
            ("option \"proto_message\" must be a non-empty string", "protobuf",
             {"proto_schema": "message A { int32 id = 1; }", "proto_message": 5}),
            ("option \"schema_registry\" applies to avro and protobuf sources (or avro keys) only", "csv",
             {"schema_registry": registry}),
            ("options \"key_format\" and \"key_columns\" apply to csv, json and avro sources", "protobuf",
             {"schema_registry": registry, "key_columns": ["id"]}),
            ("options \"key_format\" and \"key_columns\" apply to csv, json and avro sources", "protobuf",
             {"schema_registry": registry, "key_format": "json"}),
        ]
        for message, fmt, options in refusals:
            with self.subTest(message=message, options=options):
                with self.assertRaises(Exception) as caught:
                    self.sql("SELECT streamrec.create_source('pb_args', 't', 'pb_args', %s, NULL, %s)",
                             (fmt, json.dumps(options)))
                self.assertEqual(caught.exception.pgcode, "22023")
                self.assertIn(message, str(caught.exception))
        with self.assertRaises(Exception) as caught:
            self.sql("SELECT streamrec.create_sink('pb_args_sink', 'pb_args', 't', 'protobuf')")
        self.assertEqual(caught.exception.pgcode, "22023")
        self.assertIn("a protobuf sink needs option \"schema_registry\"", str(caught.exception))
