"""Keys, tombstones and Debezium change events: rows that take their primary key from the message
key (text, csv, json, Confluent Avro), deletes by tombstone in mode upsert (counted and skipped in
mode append), and Debezium change events in json and Avro applied exactly once, in partition
order, with a dead letter (bytes and offset) for every malformed key or envelope."""

import io
import json
import subprocess

import psycopg2

from harness import StreamTestCase, wait_for
from kafka_util import produce


def avro_encoder(schema):
    import avro.io
    import avro.schema
    parsed = avro.schema.parse(json.dumps(schema))

    def encode(record):
        buffer = io.BytesIO()
        avro.io.DatumWriter(parsed).write(record, avro.io.BinaryEncoder(buffer))
        return buffer.getvalue()
    return encode


def framed(schema_id, body):
    """Confluent wire format: magic byte 0, the schema id (big-endian), the Avro body."""
    return b"\x00" + schema_id.to_bytes(4, "big") + body


class ChangeEventsTestCase(StreamTestCase):
    topics = {"keys.json": 1, "keys.append": 1, "keys.kcat": 1, "keys.avro": 1}

    def wait_consumed(self, source, next_offset, partition=0, timeout=30):
        wait_for(lambda: self.value("SELECT next_offset FROM streamrec.source_offsets WHERE source = %s "
                                    "AND partition = %s", (source, partition)) == next_offset,
                 timeout, what=f"{source} consumed up to offset {next_offset}")

    def dead_letters(self, source):
        return [(o, None if k is None else bytes(k), None if p is None else bytes(p), e)
                for o, k, p, e in self.sql("SELECT \"offset\", key, payload, error FROM streamrec.dead_letters "
                                           "WHERE source = %s ORDER BY \"offset\"", (source,))]

    def register(self, subject, schema):
        status, body = self.sandbox.http("POST", f"/subjects/{subject}/versions", {"schema": json.dumps(schema)})
        self.assertEqual(status, 200, body)
        return body["id"]

    # --- keys and tombstones ---------------------------------------------------------------------------

    def test_json_keys_upsert_and_tombstones_delete_in_partition_order(self):
        def key(i, region="eu"):
            return json.dumps({"id": i, "region": region}).encode()
        messages = [
            (key(1), b'{"name": "a"}'),          # 0
            (key(2), b'{"name": "b"}'),          # 1
            (key(1), None),                      # 2 deletes 1 after its upsert in the same batch
            (key(2), None),                      # 3
            (key(2), b'{"name": "b2"}'),         # 4 comes back after its delete
            (key(3), None),                      # 5 a delete of nothing
            (b"not json", b'{"name": "x"}'),     # 6 bad key
            (None, b'{"name": "y"}'),            # 7 no key
            (json.dumps({"id": "abc", "region": "eu"}).encode(), None),  # 8 key of the wrong type
            (key(4, "us"), b'{"name": "d", "id": 99}'),  # 9 the key, not the value, fills id
            (json.dumps({"region": "eu"}).encode(), b'{"name": "e"}'),  # 10 key lacks a field
        ]
        produce(self.sandbox.bootstrap, "keys.json", messages, partition=0)
        self.sql("CREATE TABLE keyed (id int, region text, name text, PRIMARY KEY (id, region))")
        self.sql("INSERT INTO keyed VALUES (5, 'eu', 'untouched')")
        self.sql("SELECT streamrec.create_source('keyed_json', 'keys.json', 'keyed', 'json', NULL, %s)",
                 (json.dumps({"mode": "upsert", "key_format": "json", "key_columns": ["id", "region"]}),))
        self.wait_consumed("keyed_json", len(messages))
        self.assertEqual(self.sql("SELECT id, region, name FROM keyed ORDER BY id"),
                         [(2, "eu", "b2"), (4, "us", "d"), (5, "eu", "untouched")])
        letters = self.dead_letters("keyed_json")
        self.assertEqual([(o, k, p) for o, k, p, _ in letters],
                         [(6, b"not json", b'{"name": "x"}'), (7, None, b'{"name": "y"}'),
                          (8, messages[8][0], None), (10, messages[10][0], b'{"name": "e"}')])
        self.assertTrue(letters[0][3].startswith("key: json message"), letters[0][3])
        self.assertIn("no key", letters[1][3])
        self.assertIn("integer", letters[2][3])
        self.assertIn('key: no field "id"', letters[3][3])
        stats = self.source_stats("keyed_json")
        self.assertEqual((stats["messages"], stats["dead_letters"], stats["tombstones"]), (len(messages), 4, 0))

    def test_append_mode_counts_and_skips_tombstones(self):
        produce(self.sandbox.bootstrap, "keys.append",
                [(b"c1", b"Ann,gold"), (b"c1", None), (b"c2", b"Bo,silver"), (b"c9", None), (b"c1", b"Ann,platinum")],
                partition=0)
        self.sql("CREATE TABLE appended (seq bigint, customer_id text, first_name text, club_status text)")
        self.sql("SELECT streamrec.create_source('keyed_append', 'keys.append', 'appended', 'csv', NULL, %s)",
                 (json.dumps({"columns": ["first_name", "club_status"], "key_columns": ["customer_id"],
                              "metadata": {"seq": "offset"}}),))
        self.wait_consumed("keyed_append", 5)
        self.assertEqual(self.sql("SELECT seq, customer_id, first_name, club_status FROM appended ORDER BY seq"),
                         [(0, "c1", "Ann", "gold"), (2, "c2", "Bo", "silver"), (4, "c1", "Ann", "platinum")])
        self.assertEqual(self.dead_letters("keyed_append"), [])
        wait_for(lambda: self.source_stats("keyed_append")["tombstones"] == 2, 10, what="two tombstones counted")
        self.assertEqual(self.source_stats("keyed_append")["messages"], 5)

    def test_kcat_keyed_csv_messages_and_tombstones(self):
        # An independent producer: kcat -K splits key and value, -Z sends an empty value as NULL.
        lines = ["eu,1|Ann,gold", "us,2|Bo,silver", "eu,1|Ann,platinum", "us,2|", "eu,3|Cy,gold",
                 "eu|Dee,gold", "eu,3|"]
        subprocess.run(["kcat", "-P", "-b", self.sandbox.bootstrap, "-t", "keys.kcat", "-p", "0", "-K", "|", "-Z"],
                       input="\n".join(lines) + "\n", text=True, check=True, timeout=60)
        self.sql("CREATE TABLE kcat_customers (region text, customer_id int, first_name text, club_status text, "
                 "PRIMARY KEY (customer_id, region))")
        self.sql("SELECT streamrec.create_source('keyed_kcat', 'keys.kcat', 'kcat_customers', 'csv', NULL, %s)",
                 (json.dumps({"mode": "upsert", "key_format": "csv", "key_columns": ["region", "customer_id"],
                              "columns": ["first_name", "club_status"]}),))
        self.wait_consumed("keyed_kcat", len(lines))
        self.assertEqual(self.sql("SELECT region, customer_id, first_name, club_status FROM kcat_customers"),
                         [("eu", 1, "Ann", "platinum")])
        self.assertEqual([(o, k, p) for o, k, p, _ in self.dead_letters("keyed_kcat")], [(5, b"eu", b"Dee,gold")])

    def test_avro_keys_through_the_registry(self):
        key_schema = {"type": "record", "name": "CustomerKey", "namespace": "shop",
                      "fields": [{"name": "customer_id", "type": "string"}]}
        key_id = self.register("keys.avro-key", key_schema)
        encode = avro_encoder(key_schema)

        def key(customer):
            return framed(key_id, encode({"customer_id": customer}))
        messages = [(key("c1"), b'{"first_name": "Ann", "club_status": "gold"}'),
                    (key("c2"), b'{"first_name": "Bo", "club_status": "silver"}'),
                    (key("c1"), None),
                    (b"\x00\x00\x00\x00\x63garbage", b'{"first_name": "Eve"}'),  # unknown schema id 99
                    (b"\x07", b'{"first_name": "Eve"}'),                         # not Confluent-framed
                    (key("c2"), b'{"club_status": "platinum"}')]
        produce(self.sandbox.bootstrap, "keys.avro", messages, partition=0)
        self.sql("CREATE TABLE avro_keyed (LIKE streamrec.customers INCLUDING ALL)")
        self.sql("SELECT streamrec.create_source('keyed_avro', 'keys.avro', 'avro_keyed', 'json', NULL, %s)",
                 (json.dumps({"mode": "upsert", "key_format": "avro", "key_columns": ["customer_id"],
                              "schema_registry": self.sandbox.registry_url}),))
        self.wait_consumed("keyed_avro", len(messages))
        self.assertEqual(self.sql("SELECT customer_id, first_name, club_status FROM avro_keyed"),
                         [("c2", "Bo", "platinum")])
        letters = self.dead_letters("keyed_avro")
        self.assertEqual([(o, k) for o, k, _, _ in letters], [(3, messages[3][0]), (4, messages[4][0])])
        self.assertTrue(all(e.startswith("key: ") for _, _, _, e in letters), letters)

    def test_option_refusals(self):
        self.sql("CREATE TABLE opt_t (id int, region text, name text, PRIMARY KEY (id, region))")
        self.sql("CREATE TABLE opt_nokey (id int, name text)")
        self.sql("CREATE ROLE keys_inserter IN ROLE streamrec_admin")
        self.sql("GRANT INSERT, UPDATE ON opt_t TO keys_inserter")
        refusals = [
            ("22023", "json", "opt_t", {"key_format": "protobuf", "key_columns": ["id"]}),
            ("22023", "json", "opt_t", {"key_format": "json"}),                      # no key_columns
            ("22023", "json", "opt_t", {"key_columns": []}),
            ("22023", "json", "opt_t", {"key_columns": ["id", "id"], "key_format": "csv"}),
            ("42703", "json", "opt_t", {"key_columns": ["nope"]}),
            ("22023", "json", "opt_t", {"key_columns": ["id", "region"]}),           # text: one column
            ("22023", "csv", "opt_t", {"key_format": "csv", "key_columns": {"id": "id"}}),  # a map needs json/avro
            ("22023", "json", "opt_t", {"key_format": "avro", "key_columns": ["id"]}),      # no registry
            ("22023", "json", "opt_t", {"key_columns": ["id"], "columns": {"id": "id"}}),   # mapped twice
            ("22023", "json", "opt_t", {"key_columns": ["id"], "metadata": {"id": "offset"}}),
            ("22023", "json", "opt_t", {"mode": "upsert", "key_columns": ["id"]}),   # region of the key missing
            ("22023", "json", "opt_t", {"envelope": "maxwell"}),
            ("22023", "csv", "opt_t", {"envelope": "debezium"}),
            ("22023", "json", "opt_t", {"envelope": "debezium", "mode": "append"}),
            ("42P16", "json", "opt_nokey", {"envelope": "debezium"}),
            ("22023", "json", "opt_t", {"envelope": "debezium", "columns": {"name": "name"}}),  # key unmapped
            ("22023", "json", "opt_t", {"metadata": {"name": "ts_ms"}}),                # no envelope
            ("22023", "csv", "opt_t", {"schema_registry": "http://r:1"}),
        ]
        for sqlstate, fmt, target, options in refusals:
            with self.subTest(options=options):
                with self.assertRaises(psycopg2.Error) as caught:
                    self.sql("SELECT streamrec.create_source('refused', 't', %s, %s, NULL, %s)",
                             (target, fmt, json.dumps(options)))
                self.assertEqual(caught.exception.pgcode, sqlstate, caught.exception.pgerror)
                self.assertTrue(caught.exception.diag.message_hint, caught.exception.pgerror)
        # Deletes need DELETE on the target.
        self.expect_role_error("keys_inserter", "42501",
                               "SELECT streamrec.create_source('refused', 't', 'opt_t', 'json', NULL, "
                               "'{\"mode\": \"upsert\", \"key_format\": \"json\", \"key_columns\": [\"id\", \"region\"]}')",
                               hint=True)
        self.expect_role_error("keys_inserter", "42501",
                               "SELECT streamrec.create_source('refused', 't', 'opt_t', 'json', NULL, "
                               "'{\"envelope\": \"debezium\"}')", hint=True)
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sources WHERE name = 'refused'"), 0)
