"""Keys, tombstones and Debezium change events: rows that take their primary key from the message
key (text, csv, json, Confluent Avro), deletes by tombstone in mode upsert (counted and skipped in
mode append), and Debezium change events in json and Avro applied exactly once, in partition
order, with a dead letter (bytes and offset) for every malformed key or envelope."""

import io
import json
import os
import subprocess

import psycopg2

from harness import BUILD, StreamTestCase, wait_for
from kafka_util import consume, produce

CUSTOMER_COLUMNS = ["customer_id", "first_name", "last_name", "email", "club_status"]


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
    topics = {"keys.json": 1, "keys.append": 1, "keys.kcat": 1, "keys.avro": 1, "cdc.json": 1, "cdc.avro": 1,
              "cdc.bad": 1, "cdc.ratings": 1}

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

    # --- Debezium change events --------------------------------------------------------------------

    def datagen_changes(self, topic, fmt, count, *extra):
        args = [os.path.join(BUILD, "streamrec-datagen"), "customers", "--envelope", "debezium", "--format", fmt,
                "--count", str(count), "--users", "30", "--seed", "11", "--topic", topic,
                "--brokers", self.sandbox.bootstrap, "--quiet", *extra]
        subprocess.run(args, check=True, timeout=120)

    def end_offset(self, topic):
        from confluent_kafka import Consumer, TopicPartition
        consumer = Consumer({"bootstrap.servers": self.sandbox.bootstrap, "group.id": "end-offset"})
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
        finally:
            consumer.close()

    def replay(self, messages, decode):
        """The table a plain replay of the change events gives: {customer_id: row}, and the deletes."""
        table, deletes = {}, 0
        for _, _, _, value in messages:
            if value is None:
                continue
            event = decode(value)
            before, after, op = event["before"], event["after"], event["op"]
            if op in ("c", "r", "u"):
                if before is not None and before["customer_id"] != after["customer_id"]:
                    del table[before["customer_id"]]
                table[after["customer_id"]] = tuple(after[c] for c in CUSTOMER_COLUMNS)
            else:
                self.assertEqual(op, "d")
                del table[before["customer_id"]]
                deletes += 1
        return table, deletes

    def avro_decoder(self):
        import avro.io
        import avro.schema
        schemas = {}

        def decode(value):
            schema_id = int.from_bytes(value[1:5], "big")
            if schema_id not in schemas:
                status, body = self.sandbox.http("GET", f"/schemas/ids/{schema_id}")
                self.assertEqual(status, 200, body)
                schemas[schema_id] = avro.io.DatumReader(avro.schema.parse(body["schema"]))
            return schemas[schema_id].read(avro.io.BinaryDecoder(io.BytesIO(value[5:])))
        return decode

    def test_debezium_json_and_avro_give_the_table_a_plain_replay_gives(self):
        changes = 400
        self.datagen_changes("cdc.json", "json", changes, "--json-schemas")
        self.datagen_changes("cdc.avro", "avro", changes, "--registry", self.sandbox.registry_url)
        for encoding in ("json", "avro"):
            with self.subTest(encoding=encoding):
                topic = f"cdc.{encoding}"
                self.sql(f"CREATE TABLE cdc_{encoding} (LIKE streamrec.customers INCLUDING ALL, "
                         "changed_at timestamptz, origin jsonb, op text)")
                options = {"envelope": "debezium", "batch_size": 37,
                           "metadata": {"changed_at": "ts_ms", "origin": "source", "op": "op"}}
                if encoding == "avro":
                    options["schema_registry"] = self.sandbox.registry_url
                self.sql("SELECT streamrec.create_source(%s, %s, %s, %s, NULL, %s)",
                         (f"cdc_{encoding}", topic, f"cdc_{encoding}", encoding, json.dumps(options)))
                messages = consume(self.sandbox.bootstrap, topic, self.end_offset(topic))
                self.assertEqual([m[1] for m in messages], list(range(len(messages))))
                self.wait_consumed(f"cdc_{encoding}", len(messages), timeout=60)
                if encoding == "json":
                    expected, deletes = self.replay(messages, lambda v: json.loads(v)["payload"])
                else:
                    expected, deletes = self.replay(messages, self.avro_decoder())
                rows = self.sql(f"SELECT {', '.join(CUSTOMER_COLUMNS)} FROM cdc_{encoding}")
                self.assertEqual({r[0]: r for r in rows}, expected)
                self.assertGreater(deletes, 10)
                self.assertTrue(any("-" in k for k in expected), "a primary-key change survived")
                self.assertEqual(self.dead_letters(f"cdc_{encoding}"), [])
                # The envelope's ts_ms, source and op, as metadata.
                self.assertEqual(self.value(f"SELECT count(*) FROM cdc_{encoding} WHERE changed_at IS NULL "
                                            "OR origin ->> 'table' <> 'customers' OR op NOT IN ('c', 'r', 'u')"), 0)
                wait_for(lambda: self.source_stats(f"cdc_{encoding}")["tombstones"] == deletes, 10,
                         what="a tombstone counted after each delete")
                self.assertEqual(self.source_stats(f"cdc_{encoding}")["messages"], len(messages))

    def test_malformed_change_events_are_dead_lettered_with_their_offsets(self):
        def event(op, before=None, after=None):
            return json.dumps({"before": before, "after": after, "op": op, "ts_ms": 1719579715123,
                               "source": {"table": "customers"}}).encode()
        row = {"customer_id": "b1", "first_name": "Ann", "last_name": "Lee", "email": "a@x", "club_status": "silver"}
        messages = [
            (b'{"customer_id": "b1"}', event("c", after=row)),                                      # 0
            (b'{"customer_id": "b1"}', b"garbage"),                                                 # 1 bad envelope
            (b'{"customer_id": "b1"}', event("x", after=row)),                                      # 2 unknown op
            (b'{"customer_id": "b2"}', event("c")),                                                 # 3 no after
            (b'{"customer_id": "b2"}', event("d")),                                                 # 4 no before
            (b'{"customer_id": "b1"}', event("u", before=row, after=dict(row, club_status="gold"))),  # 5
            (b'{"customer_id": "b1"}', None),                                                       # 6 tombstone
            (b'{"customer_id": "b3"}', event("c", after=dict(row, customer_id=None))),              # 7 NULL key
            (b'{"customer_id": "b4"}', b'{"op": "c", "after": {"customer_id": "b4"}}'),             # 8 partial row
        ]
        produce(self.sandbox.bootstrap, "cdc.bad", messages, partition=0)
        self.sql("CREATE TABLE cdc_bad (LIKE streamrec.customers INCLUDING ALL)")
        self.sql("SELECT streamrec.create_source('cdc_bad', 'cdc.bad', 'cdc_bad', 'json', NULL, "
                 "'{\"envelope\": \"debezium\"}')")
        self.wait_consumed("cdc_bad", len(messages))
        self.assertEqual(self.sql("SELECT customer_id, first_name, last_name, email, club_status FROM cdc_bad "
                                  "ORDER BY 1"),
                         [("b1", "Ann", "Lee", "a@x", "gold"), ("b4", None, None, None, None)])
        letters = self.dead_letters("cdc_bad")
        self.assertEqual([(o, p) for o, _, p, _ in letters], [(i, messages[i][1]) for i in (1, 2, 3, 4, 7)])
        errors = [e for _, _, _, e in letters]
        self.assertIn("invalid JSON", errors[0])
        self.assertIn('unknown Debezium op "x"', errors[1])
        self.assertIn('op "c" has no after', errors[2])
        self.assertIn('op "d" has no before', errors[3])
        self.assertIn("null value", errors[4])
        self.assertEqual(self.source_stats("cdc_bad")["tombstones"], 1)

    def test_ratings_enrichment_follows_the_replicated_customers(self):
        """streamrec.customers replicated from Debezium events: each rating is enriched with the
        customer as the change events left it when the rating arrived."""
        self.sql("SELECT streamrec.enable_pipeline('ratings', %s)",
                 (json.dumps({"watermark_delay": "1 hour", "idle_timeout": "1 hour"}),))
        self.sql("SELECT streamrec.create_source('cdc_customers', 'cdc.ratings', 'streamrec.customers', 'json', NULL, "
                 "'{\"envelope\": \"debezium\", \"batch_ms\": 20}')")
        sent = [0]

        def change(op, before=None, after=None):
            key = json.dumps({"customer_id": (after or before)["customer_id"]}).encode()
            produce(self.sandbox.bootstrap, "cdc.ratings",
                    [(key, json.dumps({"op": op, "before": before, "after": after}).encode())]
                    + ([(key, None)] if op == "d" else []), partition=0)
            sent[0] += 2 if op == "d" else 1
            self.wait_consumed("cdc_customers", sent[0])

        def rate(rating_id, customer, stars):
            self.sql("INSERT INTO streamrec.ratings (rating_id, user_id, product_id, stars, channel, message, "
                     "rating_time) VALUES (%s, %s, NULL, %s, 'web', 'm', '2026-01-01 10:00:00+00')",
                     (rating_id, customer, stars))

        ann = {"customer_id": "c1", "first_name": "Ann", "last_name": "Lee", "email": "ann@x", "club_status": "gold"}
        change("c", after=ann)
        rate("r1", "c1", 1)
        change("u", before=ann, after=dict(ann, club_status="platinum"))
        rate("r2", "c1", 1)
        change("u", before=dict(ann, club_status="platinum"), after=dict(ann, customer_id="c1-2", club_status="platinum"))
        rate("r3", "c1", 5)
        rate("r4", "c1-2", 2)
        change("d", before=dict(ann, customer_id="c1-2"))
        rate("r5", "c1-2", 1)
        self.assertEqual(self.sql("SELECT rating_id, customer_id, club_status, full_name FROM streamrec.ratings_enriched "
                                  "ORDER BY rating_id"),
                         [("r1", "c1", "gold", "Ann Lee"), ("r2", "c1", "platinum", "Ann Lee"),
                          ("r4", "c1-2", "platinum", "Ann Lee")])
        self.assertEqual(self.sql("SELECT rating_id, customer_id FROM streamrec.unhappy_customers ORDER BY 1"),
                         [("r2", "c1"), ("r4", "c1-2")])
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.customers"), 0)
