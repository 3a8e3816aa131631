"""Kafka sinks: the Flink recommender's csv bytes, json, Confluent Avro read back with the registered schema,
the transactional outbox (rollback produces nothing), broker outage, kill -9 of the worker,
unencodable rows and bad arguments. Messages are read back with independent clients (kcat and
Python's confluent-kafka)."""

import io
import json
import struct
import subprocess
import threading
import time
import unittest

import avro.io
import avro.schema
import psycopg2

from harness import StreamTestCase, wait_for
from kafka_util import SEED_VALUE, consume

# What PostgreSQL prints for test_every_type_prints_as_postgresql_does's rows.
EXPECTED_TYPED_CSV = [
    (b'9007199254740993,2024-06-28 13:01:55.123456',
     b'-7,9007199254740993,true,"t,,f","1,2,3,-4","a""b,c","2024-06-28 13:01:55.500000",'
     b'"2024-06-28 13:01:55.123456",19.90,1e+300,2024-06-28,"{""x"": [1, ""y""]}",sku-1,"a,,c,d,",'
     b'"1899-12-31 23:40:28","-43-03-15 12:00:00","10000-01-01 00:00:00"'),
    (None, b',,,,,,,,,,,,,,,,')]
EXPECTED_TYPED_JSON = [
    (b'', b'{"i2":-7,"i8":9007199254740993,"b":true,"ba":[true,null,false],"ia":[1,2,3,-4],"v":"a\\"b,c",'
          b'"ts":"2024-06-28T13:01:55.500Z","tz":"2024-06-28T13:01:55.123456Z","n":19.90,"f":1e+300,'
          b'"d":"2024-06-28","j":{"x": [1, "y"]},"s":"sku-1","ta":["a",null,"c,d",""],'
          b'"tz_old":"1899-12-31T23:40:28.000Z","tz_bc":"-43-03-15T12:00:00.000Z",'
          b'"tz_far":"10000-01-01T00:00:00.000Z"}'),
    (None, b'{"i2":null,"i8":null,"b":null,"ba":null,"ia":null,"v":null,"ts":null,"tz":null,"n":null,"f":null,'
           b'"d":null,"j":null,"s":null,"ta":null,"tz_old":null,"tz_bc":null,"tz_far":null}')]

SEED_INSERT = ("INSERT INTO {} VALUES ('user-27', ARRAY['140','13','137','95','39','138'], "
               "'2024-06-28 13:01:55+00')")


class SinkTest(StreamTestCase):
    topics = {"sink.csv": 1, "sink.json": 1, "sink.avro": 1, "sink.rollback": 1, "sink.down": 1, "sink.kill": 4,
              "sink.bad": 1, "sink.drop": 1, "sink.types.csv": 1, "sink.types.json": 1, "sink.late": 1,
              "sink.altered": 1, "sink.long": 1, "sink.chunks": 1, "sink.chunk_bad": 1,
              "sink.capture": 1, "sink.odd": 1, "sink.kinds": 1}

    def stats(self, name):
        rows = self.sql("SELECT row_to_json(s) FROM streamrec.sink_stats s WHERE name = %s", (name,))
        return rows[0][0] if rows else None

    def wait_drained(self, name, timeout=30):
        return wait_for(lambda: (lambda s: s if s and s["pending"] == 0 and s["state"] == "running" else None)(
            self.stats(name)), timeout, what=f"sink {name} drained (now {self.stats(name)})")

    def recs_table(self, table):
        self.sql(f"CREATE TABLE {table} (user_id text, product_ids text[], window_end timestamptz)")

    def test_csv_matches_the_seed_byte_for_byte(self):
        self.recs_table("recs_csv")
        self.sql("SELECT streamrec.create_sink('recs_csv', 'recs_csv', 'sink.csv', 'csv', NULL, "
                 "'{\"key\": \"user_id\"}')")
        self.sql(SEED_INSERT.format("recs_csv"))
        messages = consume(self.sandbox.bootstrap, "sink.csv", 1)
        self.assertEqual([(k, v) for *_, k, v in messages], [(b"user-27", SEED_VALUE)])
        # kcat, another independent client, reads the same key and value.
        out = subprocess.run(["kcat", "-C", "-b", self.sandbox.bootstrap, "-t", "sink.csv", "-o", "beginning", "-e",
                              "-q", "-f", "%k\t%s\n"], capture_output=True, check=True, timeout=30).stdout
        self.assertEqual(out, b"user-27\t" + SEED_VALUE + b"\n")
        stats = self.wait_drained("recs_csv")
        self.assertEqual((stats["produced"], stats["failed"], stats["last_error"]), (1, 0, None))
        self.assertIsNone(stats["oldest_pending_age"])

    def test_json_objects(self):
        self.sql("CREATE TABLE recs_json (user_id text, product_ids text[], window_end timestamptz, n int, "
                 "price numeric, ok boolean, note text)")
        self.sql("SELECT streamrec.create_sink('recs_json', 'recs_json', 'sink.json', 'json', NULL, "
                 "'{\"key\": [\"user_id\"], \"columns\": [\"user_id\", \"product_ids\", \"window_end\", \"n\", "
                 "\"price\", \"ok\", \"note\"]}')")
        self.sql("INSERT INTO recs_json VALUES ('user-27', ARRAY['140','13'], '2024-06-28 13:01:55.25+00', 7, "
                 "19.90, true, NULL)")
        messages = consume(self.sandbox.bootstrap, "sink.json", 1)
        self.assertEqual([(k, v) for *_, k, v in messages], [(
            b"user-27",
            b'{"user_id":"user-27","product_ids":["140","13"],"window_end":"2024-06-28T13:01:55.250Z",'
            b'"n":7,"price":19.90,"ok":true,"note":null}')])

    def test_avro_in_confluent_wire_format(self):
        self.sql("CREATE TABLE recs_avro (user_id text, product_ids text[], window_end timestamptz, stock int, "
                 "rating real)")
        self.sql("SELECT streamrec.create_sink('recs_avro', 'recs_avro', 'sink.avro', 'avro', NULL, %s)",
                 (json.dumps({"key": "user_id", "schema_registry": self.sandbox.registry_url}),))
        self.sql(SEED_INSERT.format("recs_avro (user_id, product_ids, window_end)"))
        self.sql("INSERT INTO recs_avro VALUES ('user-28', '{}', '2024-06-28 13:01:56+00', 5, 4.5)")
        messages = consume(self.sandbox.bootstrap, "sink.avro", 2)
        self.assertEqual([k for *_, k, _ in messages], [b"user-27", b"user-28"])
        status, latest = self.sandbox.http("GET", "/subjects/sink.avro-value/versions/latest")
        self.assertEqual(status, 200, latest)
        schema = avro.schema.parse(latest["schema"])
        decoded = []
        for *_, value in messages:
            magic, schema_id = struct.unpack(">bI", value[:5])
            self.assertEqual((magic, schema_id), (0, latest["id"]))
            decoded.append(avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value[5:]))))
        self.assertEqual(decoded[0]["user_id"], "user-27")
        self.assertEqual(decoded[0]["product_ids"], ["140", "13", "137", "95", "39", "138"])
        window_end = decoded[0]["window_end"]
        self.assertEqual(int(window_end.timestamp()), 1719579715)
        self.assertIsNone(decoded[0]["stock"])
        self.assertEqual((decoded[1]["product_ids"], decoded[1]["stock"], decoded[1]["rating"]), ([], 5, 4.5))

    def test_every_type_prints_as_postgresql_does(self):
        # The worker reads common types straight from the outbox's jsonb and the rest through
        # jsonb_populate_record; both must print what PostgreSQL prints. Timestamps are captured
        # in another zone, and some (year 1900 with a seconds offset, BC, year 10000) take the
        # slow path.
        self.sql("CREATE DOMAIN sku AS text CHECK (VALUE <> '')")
        self.sql("CREATE TABLE typed (i2 smallint, i8 bigint, b boolean, ba boolean[], ia int[], v varchar(10), "
                 "ts timestamp, tz timestamptz, n numeric(6,2), f float8, d date, j jsonb, s sku, ta text[], "
                 "tz_old timestamptz, tz_bc timestamptz, tz_far timestamptz)")
        self.sql("SELECT streamrec.create_sink('typed_csv', 'typed', 'sink.types.csv', 'csv', NULL, "
                 "'{\"key\": [\"i8\", \"tz\"]}')")
        self.sql("SELECT streamrec.create_sink('typed_json', 'typed', 'sink.types.json', 'json', NULL, "
                 "'{\"key\": \"ia\"}')")
        conn = self.cluster.connect()
        with conn.cursor() as cur:
            cur.execute("SET TimeZone = 'Europe/Amsterdam'")
            cur.execute("INSERT INTO typed VALUES (-7, 9007199254740993, true, '{t,NULL,f}', '{{1,2},{3,-4}}', "
                        "'a\"b,c', '2024-06-28 13:01:55.5', '2024-06-28 15:01:55.123456', 19.90, 1e300, "
                        "'2024-06-28', '{\"x\": [1, \"y\"]}', 'sku-1', ARRAY['a', NULL, 'c,d', ''], "
                        "'1900-01-01 00:00:00', '0044-03-15 12:00:00+00 BC', '10000-01-01 00:00:00+00')")
            cur.execute("INSERT INTO typed (i2) VALUES (NULL)")
        conn.close()
        csv = [(k, v) for *_, k, v in consume(self.sandbox.bootstrap, "sink.types.csv", 2)]
        json_ = [(k, v) for *_, k, v in consume(self.sandbox.bootstrap, "sink.types.json", 2)]
        self.assertEqual(csv, EXPECTED_TYPED_CSV)
        self.assertEqual(json_, EXPECTED_TYPED_JSON)
        # Each live sink takes one of streamrec.max_workers (8): leave room for the other tests.
        self.sql("SELECT streamrec.drop_sink('typed_csv'), streamrec.drop_sink('typed_json')")

    def test_composite_enum_and_json_columns(self):
        # Types the capture leaves to SQL (to_jsonb) and the worker reads as PostgreSQL prints
        # them: a composite through jsonb_populate_record, a json string stays a JSON string.
        self.sql("CREATE TYPE pair AS (n int, s text)")
        self.sql("CREATE TYPE mood AS ENUM ('ok', 'sad')")
        self.sql("CREATE TABLE odd (p pair, m mood, j json)")
        self.sql("SELECT streamrec.create_sink('odd', 'odd', 'sink.odd')")
        self.sql("INSERT INTO odd VALUES (ROW(1, 'a b'), 'sad', '{\"a\": [1, 2]}'), (NULL, 'ok', '\"just text\"')")
        self.assertEqual([v for *_, v in consume(self.sandbox.bootstrap, "sink.odd", 2)],
                         [b'"(1,""a b"")",sad,"{""a"": [1, 2]}"', b',ok,"""just text"""'])
        self.sql("SELECT streamrec.drop_sink('odd')")

    def test_column_type_changed_while_rows_wait(self):
        # Rows captured before an ALTER TYPE print as the new type does, as jsonb_populate_record
        # would make them.
        self.sql("CREATE TABLE altered (n int, flag boolean)")
        self.sql("SELECT streamrec.create_sink('altered', 'altered', 'sink.altered')")
        self.sql("SELECT streamrec.pause_sink('altered')")
        wait_for(lambda: self.stats("altered")["pid"] is None, 10, what="paused worker gone")
        self.sql("INSERT INTO altered VALUES (7, true)")
        self.sql("ALTER TABLE altered ALTER COLUMN n TYPE text, ALTER COLUMN flag TYPE text")
        self.sql("SELECT streamrec.resume_sink('altered')")
        self.assertEqual([v for *_, v in consume(self.sandbox.bootstrap, "sink.altered", 1)], [b"7,true"])
        self.sql("SELECT streamrec.drop_sink('altered')")

    def test_every_chunk_kind_is_delivered_and_shown_by_outbox_rows(self):
        # Binary chunks (the C++ capture), jsonb ones (the SQL capture, and chunks written before
        # the update: an array of rows, or the row itself), and a damaged one, in one outbox:
        # streamrec.outbox_rows() renders each readable one as to_jsonb rows, the worker delivers
        # them in order and sets the damaged one aside with its error, and goes on.
        self.sql("CREATE TABLE kinds (seq int, k text, at timestamptz, ids int[])")
        self.sql("SELECT streamrec.create_sink('kinds', 'kinds', 'sink.kinds', 'csv', NULL, '{\"key\": \"k\"}')")
        self.sql("SELECT streamrec.pause_sink('kinds')")
        wait_for(lambda: self.stats("kinds")["pid"] is None, 10, what="paused worker gone")
        self.sql("INSERT INTO kinds VALUES (1, 'a', '2024-06-28 13:01:55+00', ARRAY[1, NULL]), (2, NULL, NULL, NULL)")
        self.sql("INSERT INTO streamrec.sink_outbox(sink, payload, rows) VALUES "
                 "('kinds', '[{\"seq\": 3, \"k\": \"b\", \"at\": \"2024-06-28T15:01:56+02:00\", \"ids\": []}, "
                 "{\"seq\": 4, \"k\": \"c\"}]', 2)")
        self.sql("INSERT INTO streamrec.sink_outbox(sink, data, rows) VALUES ('kinds', '\\x53524f3101016b', 1)")
        self.sql("INSERT INTO streamrec.sink_outbox(sink, payload) VALUES "
                 "('kinds', '{\"seq\": 5, \"k\": \"d\", \"ids\": [[7]]}')")
        self.sql("INSERT INTO kinds VALUES (6, 'e', 'infinity', '{}')")
        chunks = self.sql("SELECT id, data IS NOT NULL FROM streamrec.sink_outbox WHERE sink = 'kinds' ORDER BY id")
        self.assertEqual([binary for _, binary in chunks], [True, False, True, False, True])
        shown = "SELECT r.ordinal, r.row_json::text FROM streamrec.sink_outbox o, streamrec.outbox_rows(o) r WHERE o.id = %s"
        self.assertEqual(self.sql(shown, (chunks[0][0],)), [
            (1, '{"k": "a", "at": "2024-06-28T13:01:55+00:00", "ids": [1, null], "seq": 1}'),
            (2, '{"k": null, "at": null, "ids": null, "seq": 2}')])
        self.assertEqual(self.sql(shown, (chunks[1][0],)), [
            (1, '{"k": "b", "at": "2024-06-28T15:01:56+02:00", "ids": [], "seq": 3}'), (2, '{"k": "c", "seq": 4}')])
        self.assertEqual(self.sql(shown, (chunks[3][0],)), [(1, '{"k": "d", "ids": [[7]], "seq": 5}')])
        self.assertEqual(self.sql(shown, (chunks[4][0],)), [(1, '{"k": "e", "at": "infinity", "ids": [], "seq": 6}')])
        self.assertEqual(self.sql("SELECT r.row_json FROM streamrec.outbox_rows(NULL::streamrec.sink_outbox) r"), [])
        with self.assertRaises(psycopg2.Error) as caught:
            self.sql(shown, (chunks[2][0],))
        self.assertEqual(caught.exception.pgcode, "XX001", caught.exception.pgerror)
        self.assertIn("truncated", caught.exception.diag.message_primary)
        self.assertTrue(caught.exception.diag.message_hint)
        # Granted as the outbox's SELECT is: not to PUBLIC.
        self.sql("DROP ROLE IF EXISTS outbox_nobody")
        self.sql("CREATE ROLE outbox_nobody LOGIN")
        conn = psycopg2.connect(self.cluster.dsn().replace("user=postgres", "user=outbox_nobody"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur, self.assertRaises(psycopg2.Error) as caught:
                cur.execute("SELECT * FROM streamrec.outbox_rows(NULL::streamrec.sink_outbox)")
            self.assertEqual(caught.exception.pgcode, "42501", caught.exception.pgerror)
        finally:
            conn.close()
            self.sql("DROP ROLE outbox_nobody")

        self.sql("SELECT streamrec.resume_sink('kinds')")
        messages = consume(self.sandbox.bootstrap, "sink.kinds", 5)
        self.assertEqual([(k, v) for *_, k, v in messages], [
            (b"a", b'1,a,"2024-06-28 13:01:55","1,"'), (None, b"2,,,"), (b"b", b'3,b,"2024-06-28 13:01:56",""'),
            (b"c", b"4,c,,"), (b"d", b'5,d,,"7"')])
        stats = wait_for(lambda: (lambda s: s if s["failed"] == 2 and s["pending"] == 0 else None)(
            self.stats("kinds")), 20, what=f"damaged chunk and infinite row kept (now {self.stats('kinds')})")
        kept = self.sql("SELECT data IS NOT NULL, payload ->> 'seq', error FROM streamrec.sink_outbox "
                        "WHERE sink = 'kinds' ORDER BY id")
        self.assertEqual([k[:2] for k in kept], [(True, None), (False, "6")])
        self.assertIn("unreadable outbox chunk", kept[0][2])
        self.assertIn("infinity", kept[1][2])
        self.sql("INSERT INTO kinds VALUES (7, 'f', NULL, NULL)")
        self.assertEqual(consume(self.sandbox.bootstrap, "sink.kinds", 6)[-1][2:], (b"f", b"7,f,,"))
        self.sql("SELECT streamrec.drop_sink('kinds')")

    def test_rows_committed_out_of_id_order_are_produced(self):
        # Outbox ids are handed out at insert, rows appear at commit: a transaction that commits
        # after a later one has rows below ids the worker already went past.
        self.sql("CREATE TABLE late_rows (seq int)")
        self.sql("SELECT streamrec.create_sink('late', 'late_rows', 'sink.late')")
        wait_for(lambda: self.stats("late")["state"] == "running", 20, what="late sink running")
        slow = self.cluster.connect(autocommit=False)
        aborted = self.cluster.connect(autocommit=False)
        try:
            with slow.cursor() as cur:
                cur.execute("INSERT INTO late_rows SELECT g FROM generate_series(1, 3) g")
            with aborted.cursor() as cur:
                cur.execute("INSERT INTO late_rows VALUES (-1)")
            self.sql("INSERT INTO late_rows SELECT g FROM generate_series(4, 6) g")
            first = consume(self.sandbox.bootstrap, "sink.late", 3)
            self.assertEqual([v for *_, v in first], [b"4", b"5", b"6"])
            self.sql("INSERT INTO late_rows SELECT g FROM generate_series(7, 8) g")
            self.assertEqual(len(consume(self.sandbox.bootstrap, "sink.late", 5)), 5)
            aborted.rollback()
            slow.commit()
        finally:
            slow.close()
            aborted.close()
        self.sql("INSERT INTO late_rows VALUES (9)")
        messages = consume(self.sandbox.bootstrap, "sink.late", 9)
        self.assertEqual(sorted(int(v) for *_, v in messages), list(range(1, 10)))  # none lost, none twice
        self.assertEqual(self.wait_drained("late")["pending"], 0)
        self.sql("SELECT streamrec.drop_sink('late')")

    def test_a_transaction_open_across_many_reads_loses_nothing(self):
        # The worker remembers a bounded number of id ranges it may have to read again; a
        # transaction open across more reads than that merges them and still loses nothing.
        self.sql("CREATE TABLE long_rows (seq int)")
        self.sql("SELECT streamrec.create_sink('long', 'long_rows', 'sink.long')")
        wait_for(lambda: self.stats("long")["state"] == "running", 20, what="long sink running")
        open_txn = self.cluster.connect(autocommit=False)
        try:
            with open_txn.cursor() as cur:
                cur.execute("INSERT INTO long_rows VALUES (0)")
            conn = self.cluster.connect()
            with conn.cursor() as cur:
                for seq in range(1, 101):
                    cur.execute("INSERT INTO long_rows VALUES (%s)", (seq,))
                    time.sleep(0.012)  # one read each
            conn.close()
            self.assertEqual(len(consume(self.sandbox.bootstrap, "sink.long", 100)), 100)
            open_txn.commit()
        finally:
            open_txn.close()
        messages = consume(self.sandbox.bootstrap, "sink.long", 101)
        self.assertEqual(sorted(int(v) for *_, v in messages), list(range(101)))  # none lost, none twice
        self.sql("SELECT streamrec.drop_sink('long')")

    def test_rollback_produces_nothing(self):
        self.recs_table("recs_rb")
        self.sql("SELECT streamrec.create_sink('recs_rb', 'recs_rb', 'sink.rollback')")
        conn = self.cluster.connect(autocommit=False)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO recs_rb VALUES ('rolled-back', NULL, now())")
        conn.rollback()
        conn.close()
        # Any role that may insert into the relation feeds the sink (the outbox is not its to read).
        self.sql("CREATE ROLE sink_writer LOGIN")
        self.sql("GRANT INSERT ON recs_rb TO sink_writer")
        conn = psycopg2.connect(self.cluster.dsn().replace("user=postgres", "user=sink_writer"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("INSERT INTO recs_rb VALUES ('committed', NULL, '2024-06-28 13:01:55+00')")
            with self.assertRaises(psycopg2.Error):
                cur.execute("SELECT * FROM streamrec.sink_outbox")
        conn.close()
        messages = consume(self.sandbox.bootstrap, "sink.rollback", 1)
        self.assertEqual([v for *_, v in messages], [b'committed,,"2024-06-28 13:01:55"'])

    def test_chunks_keep_insertion_order_and_pending_counts_rows(self):
        # The outbox holds a statement's rows in chunks of 1,000: order survives the chunk
        # boundaries, pending counts rows (not outbox rows), and what rolls back (a whole
        # transaction, or a savepoint) leaves no chunk behind.
        self.sql("CREATE TABLE chunk_rows (seq int, k text)")
        self.sql("SELECT streamrec.create_sink('chunks', 'chunk_rows', 'sink.chunks', 'csv', NULL, '{\"key\": \"k\"}')")
        self.sql("SELECT streamrec.pause_sink('chunks')")
        wait_for(lambda: self.stats("chunks")["pid"] is None, 10, what="paused worker gone")
        self.sql("INSERT INTO chunk_rows SELECT g, 'same' FROM generate_series(1, 2500) g")
        self.sql("INSERT INTO chunk_rows VALUES (2501, 'same')")
        conn = self.cluster.connect(autocommit=False)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO chunk_rows SELECT -g, 'same' FROM generate_series(1, 1500) g")
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO chunk_rows SELECT g, 'same' FROM generate_series(2502, 2601) g")
            cur.execute("SAVEPOINT s")
            cur.execute("INSERT INTO chunk_rows SELECT -g, 'same' FROM generate_series(1, 1200) g")
            cur.execute("ROLLBACK TO SAVEPOINT s")
        conn.commit()
        conn.close()
        self.assertEqual([r for r, in self.sql("SELECT rows FROM streamrec.sink_outbox WHERE sink = 'chunks' ORDER BY id")],
                         [1000, 1000, 500, 1, 100])
        self.assertEqual(self.stats("chunks")["pending"], 2601)
        self.assertIsNotNone(self.stats("chunks")["oldest_pending_age"])
        self.sql("SELECT streamrec.resume_sink('chunks')")
        messages = consume(self.sandbox.bootstrap, "sink.chunks", 2601)
        self.assertEqual([int(v.split(b",")[0]) for *_, v in messages], list(range(1, 2602)))  # in order, once
        self.assertEqual(self.wait_drained("chunks")["failed"], 0)
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sink_outbox WHERE sink = 'chunks'"), 0)
        self.sql("SELECT streamrec.drop_sink('chunks')")

    def test_the_capture_trigger_writes_exactly_to_jsonb(self):
        # The C++ capture builds each row's jsonb itself (and falls back to SQL for a table with
        # a type it does not take on, here jsonb): the outbox must hold what to_jsonb(row) gives,
        # in the inserting session's time zone, chunk after chunk.
        # (Chunks are binary or, from the SQL capture, jsonb: streamrec.outbox_rows renders both.)
        flat = ("SELECT jsonb_agg(r.row_json ORDER BY o.id, r.ordinal) FROM streamrec.sink_outbox o, "
                "streamrec.outbox_rows(o) r WHERE o.sink = %s")
        self.sql("CREATE DOMAIN short_text AS text CHECK (length(VALUE) < 100)")
        self.sql("CREATE TABLE cap_rows (seq int, i2 smallint, i8 bigint, r real, f float8, n numeric, b boolean, "
                 "t text, v varchar(5), c char(3), d date, ts timestamp, tz timestamptz, iv interval, u uuid, "
                 "by bytea, s short_text, ta text[], ia int[], fa float8[], tza timestamptz[], dropped int)")
        self.sql("ALTER TABLE cap_rows DROP COLUMN dropped")
        self.sql("CREATE TABLE cap_json (seq int, j jsonb, t text)")
        for name in ("cap", "cap_json"):
            self.sql(f"SELECT streamrec.create_sink('{name}', '{name if name != 'cap' else 'cap_rows'}', 'sink.capture')")
            self.sql(f"SELECT streamrec.pause_sink('{name}')")
        conn = self.cluster.connect()
        with conn.cursor() as cur:
            cur.execute("SET TimeZone = 'Europe/Amsterdam'")
            cur.execute("SET work_mem = '64kB'")  # the transition table spills to disk
            cur.execute("INSERT INTO cap_rows SELECT g, (g % 300)::smallint, 9007199254740993 + g, g / 7.0, "
                        "CASE g % 4 WHEN 0 THEN 'NaN' WHEN 1 THEN '-Infinity' ELSE 1e300 / g END, "
                        "CASE WHEN g = 3 THEN 'NaN' ELSE g / 3.0 END, g % 2 = 0, 'a\"b\\c\u00e9' || g, 'v' || g % 10, "
                        "'x', '2024-06-28'::date + g, '2024-06-28 13:01:55.5'::timestamp + g * interval '1 s', "
                        "CASE WHEN g = 5 THEN 'infinity' ELSE '2024-06-28 13:01:55.123456+00'::timestamptz "
                        "+ g * interval '1 s' END, g * interval '1 minute', md5(g::text)::uuid, '\\x00ff', 's', "
                        "ARRAY['a', NULL, 'c,d', ''], ARRAY[[1, 2], [3, g]], ARRAY[0.1, 1e-7], "
                        "ARRAY['2024-06-28 13:01:55+00'::timestamptz] FROM generate_series(1, 1001) g")
            cur.execute("INSERT INTO cap_rows (seq, ia) VALUES (1002, '{}')")
            cur.execute("INSERT INTO cap_json SELECT g, jsonb_build_object('g', g, 's', 'x'), 't' FROM generate_series(1, 3) g")
            # Large rows end a chunk early (about 8 MB of values): 3 MB rows go 3 and 2.
            cur.execute("INSERT INTO cap_rows (seq, t) SELECT 1002 + g, repeat('x', 3000000) FROM generate_series(1, 5) g")
            self.assertEqual([r for r, in self.sql("SELECT rows FROM streamrec.sink_outbox WHERE sink = 'cap' ORDER BY id")],
                             [1000, 1, 1, 3, 2])
            for name, table in (("cap", "cap_rows"), ("cap_json", "cap_json")):
                cur.execute(f"SELECT ({flat})::text, (SELECT jsonb_agg(to_jsonb(row_) ORDER BY seq) FROM {table} row_)::text",
                            (name,))
                captured, expected = cur.fetchone()
                self.assertEqual(captured, expected, name)
        conn.close()
        self.sql("SELECT streamrec.drop_sink('cap'), streamrec.drop_sink('cap_json')")

    def test_a_bad_row_inside_a_chunk_is_kept_apart_and_the_rest_produced(self):
        self.recs_table("recs_chunk_bad")
        self.sql("SELECT streamrec.create_sink('chunk_bad', 'recs_chunk_bad', 'sink.chunk_bad')")
        self.sql("INSERT INTO recs_chunk_bad SELECT 'u' || g, NULL, CASE WHEN g = 1500 THEN 'infinity' "
                 "ELSE '2024-06-28 13:01:55+00' END::timestamptz FROM generate_series(1, 2500) g")
        messages = consume(self.sandbox.bootstrap, "sink.chunk_bad", 2499)
        expected = [f'u{g},,"2024-06-28 13:01:55"'.encode() for g in range(1, 2501) if g != 1500]
        self.assertEqual([v for *_, v in messages], expected)
        stats = wait_for(lambda: (lambda s: s if s["failed"] == 1 and s["pending"] == 0 else None)(
            self.stats("chunk_bad")), 10, what="failed row counted")
        self.assertEqual(stats["produced"], 2499)
        self.assertIsNone(stats["oldest_pending_age"])
        self.assertIn("infinity", stats["last_error"])
        kept = self.sql("SELECT payload ->> 'user_id', payload ->> 'window_end', rows, error FROM streamrec.sink_outbox "
                        "WHERE sink = 'chunk_bad'")
        self.assertEqual(len(kept), 1)
        self.assertEqual(kept[0][:3], ("u1500", "infinity", 1))
        self.assertIn("window_end", kept[0][3])
        self.sql("INSERT INTO recs_chunk_bad VALUES ('after', NULL, '2024-06-28 13:01:58+00')")
        self.assertEqual(consume(self.sandbox.bootstrap, "sink.chunk_bad", 2500)[-1][3],
                         b'after,,"2024-06-28 13:01:58"')
        self.sql("SELECT streamrec.drop_sink('chunk_bad')")

    def test_broker_down_rows_wait_and_drain_in_order(self):
        self.sql("CREATE TABLE down_rows (seq int, k text)")
        self.sql("SELECT streamrec.create_sink('down', 'down_rows', 'sink.down', 'csv', NULL, '{\"key\": \"k\"}')")
        self.sql("INSERT INTO down_rows VALUES (0, 'k')")
        self.assertEqual(len(consume(self.sandbox.bootstrap, "sink.down", 1)), 1)
        self.sandbox.broker_down(1)
        seq = 1
        try:
            started = time.monotonic()
            max_pending = 0
            while time.monotonic() - started < 30:
                self.sql("INSERT INTO down_rows SELECT g, 'k' FROM generate_series(%s, %s) g", (seq, seq + 19))
                seq += 20
                max_pending = max(max_pending, self.stats("down")["pending"])
                time.sleep(0.25)
            stats = self.stats("down")
            self.assertEqual(stats["state"], "waiting for broker", stats)
            self.assertGreater(max_pending, 1000)
            self.assertIsNotNone(stats["oldest_pending_age"])
        finally:
            self.sandbox.broker_up(1)
        self.wait_drained("down", 60)
        messages = consume(self.sandbox.bootstrap, "sink.down", seq)
        values = [int(v.split(b",")[0]) for *_, v in messages]
        self.assertEqual(values, list(range(seq)))  # none lost, no duplicate, in order

    def test_kill_9_of_the_worker_loses_nothing(self):
        self.sql("CREATE TABLE kill_rows (seq int PRIMARY KEY, k text)")
        self.sql("SELECT streamrec.create_sink('killed', 'kill_rows', 'sink.kill', 'csv', NULL, '{\"key\": \"k\"}')")
        pid = wait_for(lambda: (self.stats("killed") or {}).get("pid"), 20, what="sink worker pid")
        done = threading.Event()

        def insert():
            seq = 0
            while not done.is_set() and seq < 20000:
                try:
                    # Durable commits: the harness runs with synchronous_commit off, and the crash
                    # restart after the kill would lose a commit the worker may already have
                    # produced (seen as committed, not yet written to the WAL).
                    self.sql("SET synchronous_commit = on; "
                             "INSERT INTO kill_rows SELECT g, 'k' || (g %% 13) FROM generate_series(%s, %s) g",
                             (seq, seq + 199))
                    seq += 200
                except psycopg2.Error:
                    time.sleep(0.2)  # the server restarts after the kill
                except psycopg2.OperationalError:
                    time.sleep(0.2)
                time.sleep(0.005)

        writer = threading.Thread(target=insert)
        writer.start()
        try:
            wait_for(lambda: self.stats("killed")["produced"] > 2000, 30, what="sink mid-stream")
            self.cluster.kill(pid)
            time.sleep(1)
            wait_for(lambda: self.stats("killed")["pid"] not in (None, pid), 30, interval=0.3,
                     what="sink worker restarted")
        finally:
            time.sleep(1)
            done.set()
            writer.join()
        self.wait_drained("killed", 60)
        stored = {r[0] for r in self.sql("SELECT seq FROM kill_rows")}
        messages = consume(self.sandbox.bootstrap, "sink.kill", len(stored), partitions=4)
        on_topic = [int(v.split(b",")[0]) for *_, v in messages]
        self.assertEqual(set(on_topic), stored)  # every committed row at least once, none missing
        # Per key, the first delivery of each row keeps the insert order.
        by_key = {}
        for _, _, key, value in messages:
            by_key.setdefault(key, []).append(int(value.split(b",")[0]))
        for key, seqs in by_key.items():
            firsts = list(dict.fromkeys(seqs))
            self.assertEqual(firsts, sorted(firsts), key)

    def test_unencodable_row_is_kept_and_the_sink_goes_on(self):
        self.recs_table("recs_bad")
        self.sql("SELECT streamrec.create_sink('recs_bad', 'recs_bad', 'sink.bad')")
        self.sql("INSERT INTO recs_bad VALUES ('a', NULL, '2024-06-28 13:01:55+00'), ('b', NULL, 'infinity'), "
                 "('c', NULL, '2024-06-28 13:01:57+00')")
        messages = consume(self.sandbox.bootstrap, "sink.bad", 2)
        self.assertEqual([v for *_, v in messages], [b'a,,"2024-06-28 13:01:55"', b'c,,"2024-06-28 13:01:57"'])
        stats = wait_for(lambda: (lambda s: s if s["failed"] == 1 else None)(self.stats("recs_bad")), 10,
                         what="failed row counted")
        self.assertEqual((stats["produced"], stats["pending"]), (2, 0))
        self.assertIn("infinity", stats["last_error"])
        kept = self.sql("SELECT payload ->> 'user_id', error FROM streamrec.sink_outbox WHERE sink = 'recs_bad'")
        self.assertEqual(len(kept), 1)
        self.assertEqual(kept[0][0], "b")
        self.assertIn("window_end", kept[0][1])
        self.sql("INSERT INTO recs_bad VALUES ('d', NULL, '2024-06-28 13:01:58+00')")
        self.assertEqual(len(consume(self.sandbox.bootstrap, "sink.bad", 3)), 3)

    def test_pause_resume_drop(self):
        self.recs_table("recs_drop")
        self.sql("SELECT streamrec.create_sink('recs_drop', 'recs_drop', 'sink.drop')")
        self.assertEqual(self.value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'recs_drop'::regclass"), 1)
        self.sql("SELECT streamrec.pause_sink('recs_drop')")
        wait_for(lambda: self.stats("recs_drop")["pid"] is None, 10, what="paused worker gone")
        self.sql("INSERT INTO recs_drop VALUES ('p', NULL, NULL)")
        self.assertEqual(self.stats("recs_drop")["pending"], 1)
        self.assertEqual(self.stats("recs_drop")["state"], "paused")
        self.sql("SELECT streamrec.resume_sink('recs_drop')")
        self.assertEqual([v for *_, v in consume(self.sandbox.bootstrap, "sink.drop", 1)], [b"p,,"])
        self.sql("SELECT streamrec.pause_sink('recs_drop')")
        self.sql("INSERT INTO recs_drop VALUES ('q', NULL, NULL)")
        self.sql("SELECT streamrec.drop_sink('recs_drop')")
        self.assertEqual(self.value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'recs_drop'::regclass"), 0)
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sink_outbox WHERE sink = 'recs_drop'"), 0)
        self.sql("INSERT INTO recs_drop VALUES ('r', NULL, NULL)")
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sink_outbox"),
                         self.value("SELECT count(*) FROM streamrec.sink_outbox WHERE sink <> 'recs_drop'"))

    def test_bad_arguments_have_sqlstate_and_hint_and_change_nothing(self):
        self.recs_table("recs_args")
        self.sql("CREATE VIEW recs_view AS SELECT * FROM recs_args")
        self.sql("CREATE ROLE sink_nobody LOGIN")
        self.sql("SELECT streamrec.create_sink('taken', 'recs_args', 'sink.args')")
        before = self.value("SELECT count(*) FROM streamrec.sinks")
        cases = [
            ("22023", "SELECT streamrec.create_sink('bad name!', 'recs_args', 't')"),
            ("22023", "SELECT streamrec.create_sink('s1', 'recs_args', '')"),
            ("22023", "SELECT streamrec.create_sink('s1', 'recs_args', 't', 'xml')"),
            ("42809", "SELECT streamrec.create_sink('s1', 'recs_view', 't')"),
            ("22023", "SELECT streamrec.create_sink('s1', 'recs_args', 't', 'csv', NULL, '{\"nope\": 1}')"),
            ("42703", "SELECT streamrec.create_sink('s1', 'recs_args', 't', 'csv', NULL, '{\"key\": \"missing\"}')"),
            ("22023", "SELECT streamrec.create_sink('s1', 'recs_args', 't', 'csv', NULL, '{\"columns\": []}')"),
            ("22023", "SELECT streamrec.create_sink('s1', 'recs_args', 't', 'avro')"),
            ("22023", "SELECT streamrec.create_sink('s1', 'recs_args', 't', 'csv', NULL, "
                      "'{\"schema_registry\": \"http://x\"}')"),
            ("22023", "SELECT streamrec.create_sink('s1', 'recs_args', 't', 'csv', NULL, "
                      "'{\"kafka\": {\"enable.idempotence\": false}}')"),
            ("22023", "SELECT streamrec.create_sink('s1', 'recs_args', 't', 'csv', NULL, "
                      "'{\"csv\": {\"delimiter\": \"ab\"}}')"),
            ("42710", "SELECT streamrec.create_sink('taken', 'recs_args', 't')"),
            ("42704", "SELECT streamrec.drop_sink('ghost')"),
            ("42704", "SELECT streamrec.pause_sink('ghost')"),
        ]
        for sqlstate, query in cases:
            with self.subTest(query=query):
                with self.assertRaises(psycopg2.Error) as caught:
                    self.sql(query)
                self.assertEqual(caught.exception.pgcode, sqlstate, caught.exception.pgerror)
                self.assertTrue(caught.exception.diag.message_hint, caught.exception.pgerror)
        conn = psycopg2.connect(self.cluster.dsn().replace("user=postgres", "user=sink_nobody"))
        conn.autocommit = True
        with self.assertRaises(psycopg2.Error) as caught, conn.cursor() as cur:
            cur.execute("SELECT streamrec.create_sink('s2', 'recs_args', 't')")
        self.assertEqual(caught.exception.pgcode, "42501")
        self.assertIn("GRANT streamrec_admin", caught.exception.diag.message_hint)
        conn.close()
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sinks"), before)
        self.assertEqual(self.value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'recs_args'::regclass"), 1)
        self.sql("SELECT streamrec.drop_sink('taken')")


if __name__ == "__main__":
    unittest.main()
