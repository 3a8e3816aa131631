"""Schema evolution against the sandbox broker and its registry: a producer registers three
versions of one subject and writes with each, interleaved, while the source runs. Every value
lands by field name (reordered fields, promotions int -> long and float -> double, a union
widened with null, a field added with a default, fields removed); fields the table lacks are
ignored; columns a version lacks take their DEFAULT; a version that changed a field
incompatibly (a string where the column is an integer) dead-letters only the messages whose value
the column refuses, each with its offset. JSON follows field names the same way."""

import io
import json
import struct
import unittest

from harness import StreamTestCase, wait_for
from kafka_util import produce

SUBJECT = "evo.items-value"

# v1: the first schema.
ITEMS_V1 = {"type": "record", "name": "item", "namespace": "evo", "fields": [
    {"name": "id", "type": "int"},
    {"name": "name", "type": "string"},
    {"name": "price", "type": "float"},
    {"name": "qty", "type": "int"}]}
# v2: fields reordered, qty and id promoted to long, price to double, name widened with null,
# color added with a default.
ITEMS_V2 = {"type": "record", "name": "item", "namespace": "evo", "fields": [
    {"name": "qty", "type": "long"},
    {"name": "id", "type": "long"},
    {"name": "price", "type": "double"},
    {"name": "name", "type": ["null", "string"], "default": None},
    {"name": "color", "type": "string", "default": "red"}]}
# v3: name, price and color removed; note, which no column takes, added; qty made a string (an
# incompatible change for the integer column).
ITEMS_V3 = {"type": "record", "name": "item", "namespace": "evo", "fields": [
    {"name": "note", "type": "string", "default": ""},
    {"name": "id", "type": "long"},
    {"name": "qty", "type": "string"}]}

TABLE = ("(id bigint PRIMARY KEY, name text DEFAULT 'anon', price double precision, qty int, "
         "color text DEFAULT 'none', region text DEFAULT 'eu')")


def avro_body(schema, record):
    import avro.io
    import avro.schema
    buffer = io.BytesIO()
    avro.io.DatumWriter(avro.schema.parse(json.dumps(schema))).write(record, avro.io.BinaryEncoder(buffer))
    return buffer.getvalue()


def framed(schema_id, schema, record):
    return b"\x00" + struct.pack(">i", schema_id) + avro_body(schema, record)


class SchemaEvolutionTest(StreamTestCase):
    topics = {"evo.items": 1, "evo.json": 1}

    def register(self, schema):
        status, body = self.sandbox.http("POST", f"/subjects/{SUBJECT}/versions", {"schema": json.dumps(schema)})
        self.assertEqual(status, 200, body)
        return body["id"]

    def wait_consumed(self, source, offset):
        wait_for(lambda: self.value("SELECT next_offset FROM streamrec.source_offsets WHERE source = %s",
                                    (source,)) == offset, 60, what=f"{source} consumed up to offset {offset}")

    def dead_letters(self, source):
        return self.sql("SELECT \"offset\", error FROM streamrec.dead_letters WHERE source = %s ORDER BY \"offset\"",
                        (source,))

    def test_avro_versions_interleaved_mid_stream(self):
        v1 = self.register(ITEMS_V1)
        self.sql(f"CREATE TABLE evo_items {TABLE}")
        self.sql("SELECT streamrec.create_source('evo_avro', 'evo.items', 'evo_items', 'avro', NULL, %s)",
                 (json.dumps({"schema_registry": self.sandbox.registry_url}),))
        produce(self.sandbox.bootstrap, "evo.items", [
            framed(v1, ITEMS_V1, {"id": 1, "name": "one", "price": 1.5, "qty": 10}),
            framed(v1, ITEMS_V1, {"id": 2, "name": "two", "price": 0.25, "qty": 20}),
        ], partition=0)
        self.wait_consumed("evo_avro", 2)

        # The producer evolves its schema while the source runs.
        v2 = self.register(ITEMS_V2)
        v3 = self.register(ITEMS_V3)
        self.assertEqual(len({v1, v2, v3}), 3)
        self.assertEqual(self.sandbox.http("GET", f"/subjects/{SUBJECT}/versions"), (200, [1, 2, 3]))
        produce(self.sandbox.bootstrap, "evo.items", [
            framed(v2, ITEMS_V2, {"qty": 30, "id": 3, "price": 0.1, "name": "three", "color": "blue"}),   # 2
            framed(v3, ITEMS_V3, {"note": "n", "id": 4, "qty": "seven"}),                                # 3: dead
            framed(v1, ITEMS_V1, {"id": 5, "name": "five", "price": 5.5, "qty": 50}),                   # 4
            framed(v2, ITEMS_V2, {"qty": 3000000000, "id": 6, "price": 6.0, "name": "six",              # 5: dead
                                  "color": "red"}),
            framed(v3, ITEMS_V3, {"note": "kept?", "id": 7, "qty": "70"}),                              # 6
            framed(v2, ITEMS_V2, {"qty": 80, "id": 8, "price": -8.75, "name": None, "color": "green"}),  # 7
            framed(v1, ITEMS_V1, {"id": 9, "name": "nine", "price": 9.0, "qty": 90}),                   # 8
            framed(v3, ITEMS_V3, {"note": "", "id": 10, "qty": ""}),                                    # 9: dead
            framed(v2, ITEMS_V2, {"qty": 110, "id": 1099511627776, "price": 1e300, "name": "big",      # 10
                                  "color": ""}),
        ], partition=0)
        self.wait_consumed("evo_avro", 11)

        self.assertEqual(self.sql("SELECT id, name, price, qty, color, region FROM evo_items ORDER BY id"), [
            (1, "one", 1.5, 10, "none", "eu"),
            (2, "two", 0.25, 20, "none", "eu"),
            (3, "three", 0.1, 30, "blue", "eu"),          # v2: reordered, promoted, added field
            (5, "five", 5.5, 50, "none", "eu"),           # v1 again, after v3
            (7, "anon", None, 70, "none", "eu"),          # v3: "70" is an integer's text; note ignored
            (8, None, -8.75, 80, "green", "eu"),          # v2: the widened union's null is NULL
            (9, "nine", 9.0, 90, "none", "eu"),
            (1099511627776, "big", 1e300, 110, "", "eu"),  # a long past 32 bits, a double past float
        ])
        letters = self.dead_letters("evo_avro")
        self.assertEqual([o for o, _ in letters], [3, 5, 9])
        self.assertIn('invalid input syntax for type integer: "seven"', letters[0][1])
        self.assertIn('value "3000000000" is out of range for type integer', letters[1][1])
        self.assertIn('invalid input syntax for type integer: ""', letters[2][1])
        self.assertEqual(self.value("SELECT state FROM streamrec.source_stats WHERE name = 'evo_avro'"), "running")

    def test_json_fields_by_name(self):
        self.sql(f"CREATE TABLE evo_json {TABLE}")
        self.sql("SELECT streamrec.create_source('evo_json', 'evo.json', 'evo_json', 'json')")
        produce(self.sandbox.bootstrap, "evo.json", [json.dumps(m) for m in [
            {"id": 1, "name": "one", "price": 1.5, "qty": 10},
            {"qty": 20, "color": "blue", "id": 2, "price": 0.1, "name": None, "extra": {"x": [1]}},
            {"note": "n", "id": 3, "qty": "seven"},                                              # dead
            {"id": 4, "qty": "40"},
            {"id": 5, "qty": 3000000000},                                                        # dead
            {"id": 6, "qty": {"n": 6}},                                                          # dead
            {"price": 7.25, "id": 7},
        ]], partition=0)
        self.wait_consumed("evo_json", 7)
        self.assertEqual(self.sql("SELECT id, name, price, qty, color, region FROM evo_json ORDER BY id"), [
            (1, "one", 1.5, 10, "none", "eu"),
            (2, None, 0.1, 20, "blue", "eu"),
            (4, "anon", None, 40, "none", "eu"),
            (7, "anon", 7.25, None, "none", "eu"),
        ])
        letters = self.dead_letters("evo_json")
        self.assertEqual([o for o, _ in letters], [2, 4, 5])
        self.assertIn('invalid input syntax for type integer: "seven"', letters[0][1])
        self.assertIn("out of range for type integer", letters[1][1])
        self.assertIn("invalid input syntax for type integer", letters[2][1])


if __name__ == "__main__":
    unittest.main()
