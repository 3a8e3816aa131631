"""One bad message costs one dead letter: every error a single row can cause is isolated and
dead-lettered while server and conflict errors retry the batch; schema ids the registry does not
know are the message's fault; what one message may decode to, and a batch may hold, is bounded."""

import io
import json
import random
import string
import time
import unittest

import avro.io
import avro.schema
import psycopg2

from harness import StreamTestCase, wait_for
from kafka_util import kcat_produce, produce


class BadInputTestCase(StreamTestCase):
    def wait_offset(self, source, offset, timeout=60):
        wait_for(lambda: self.value("SELECT max(next_offset) FROM streamrec.source_offsets WHERE source = %s",
                                    (source,)) == offset, timeout, what=f"{source} past offset {offset - 1}")

    def letters(self, source):
        return self.sql("SELECT \"offset\", payload, error FROM streamrec.dead_letters WHERE source = %s "
                        "ORDER BY \"offset\"", (source,))


def encoder(schema):
    parsed = avro.schema.parse(json.dumps(schema))

    def encode(record):
        buffer = io.BytesIO()
        avro.io.DatumWriter(parsed).write(record, avro.io.BinaryEncoder(buffer))
        return buffer.getvalue()
    return encode


def avro_long(value):
    """Avro's zig-zag varint."""
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag >= 0x80:
        out.append((zigzag & 0x7f) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


class RowErrorTest(BadInputTestCase):
    topics = {"bad.index": 1, "bad.nested": 1, "bad.trigger": 1, "bad.retry": 1, "bad.upsert": 1}

    def test_key_too_long_for_its_index_is_dead_lettered(self):
        # 54000 program_limit_exceeded: an incompressible 9,000-byte key passes btree's limit.
        self.sql("CREATE TABLE index_rows (k text PRIMARY KEY, n int)")
        rng = random.Random(12)
        long_key = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(9000))
        # 3,000 bytes fit a page but not btree's third of one.
        messages = ["a,1", f"{long_key},2", "b,3", f"{long_key[:3000]},4"]
        kcat_produce(self.sandbox.bootstrap, "bad.index", messages, 0)
        self.sql("SELECT streamrec.create_source('index_src', 'bad.index', 'index_rows')")
        self.wait_offset("index_src", 4)
        self.assertEqual(self.sql("SELECT k, n FROM index_rows ORDER BY n"), [("a", 1), ("b", 3)])
        letters = self.letters("index_src")
        self.assertEqual([(o, bytes(p).decode()) for o, p, _ in letters], [(1, messages[1]), (3, messages[3])])
        self.assertIn("index row requires 9016 bytes, maximum size is 8191", letters[0][2])
        self.assertIn("index row size 3016 exceeds btree version 4 maximum 2704", letters[1][2])
        self.assertEqual(self.source_stats("index_src")["dead_letters"], 2)

    def test_json_array_nested_deeper_than_postgresql_arrays_is_dead_lettered(self):
        # 54000 again, from array_in: PostgreSQL arrays have at most 6 dimensions.
        self.sql("CREATE TABLE nested_rows (id int, v int[])")
        messages = ['{"id": 1, "v": [1, 2]}', '{"id": 2, "v": [[[[[[[1]]]]]]]}', '{"id": 3, "v": [[1, 2], [3, 4]]}']
        produce(self.sandbox.bootstrap, "bad.nested", messages, partition=0)
        self.sql("SELECT streamrec.create_source('nested_src', 'bad.nested', 'nested_rows', 'json')")
        self.wait_offset("nested_src", 3)
        self.assertEqual(self.sql("SELECT id, v FROM nested_rows ORDER BY id"), [(1, [1, 2]), (3, [[1, 2], [3, 4]])])
        letters = self.letters("nested_src")
        self.assertEqual([(o, bytes(p).decode()) for o, p, _ in letters], [(1, messages[1])])
        self.assertIn("number of array dimensions (7) exceeds the maximum allowed (6)", letters[0][2])

    def test_trigger_errors_of_any_other_class_are_dead_lettered(self):
        # A trigger's own SQLSTATE (U0001), a syntax-or-access class (42P01), a feature class
        # (0A000) and the plain RAISE (P0001): each follows its row.
        self.sql("CREATE TABLE trigger_rows (id int, name text)")
        self.sql("""CREATE FUNCTION trigger_rows_check() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                      IF NEW.name LIKE 'code:%' THEN
                        RAISE EXCEPTION 'refused %', NEW.name USING ERRCODE = substr(NEW.name, 6);
                      END IF;
                      RETURN NEW;
                    END $$""")
        self.sql("CREATE TRIGGER check_rows BEFORE INSERT ON trigger_rows FOR EACH ROW EXECUTE FUNCTION "
                 "trigger_rows_check()")
        messages = ["1,ok", "2,code:U0001", "3,code:42P01", "4,code:0A000", "5,code:P0001", "6,fine"]
        kcat_produce(self.sandbox.bootstrap, "bad.trigger", messages, 0)
        self.sql("SELECT streamrec.create_source('trigger_src', 'bad.trigger', 'trigger_rows')")
        self.wait_offset("trigger_src", 6)
        self.assertEqual(self.sql("SELECT id, name FROM trigger_rows ORDER BY id"), [(1, "ok"), (6, "fine")])
        letters = self.letters("trigger_src")
        self.assertEqual([(o, bytes(p).decode()) for o, p, _ in letters], [(i, messages[i]) for i in (1, 2, 3, 4)])
        for (_, _, error), code in zip(letters, ("U0001", "42P01", "0A000", "P0001")):
            self.assertIn(f"refused code:{code}", error)
        stats = self.source_stats("trigger_src")
        self.assertEqual((stats["messages"], stats["rows"], stats["dead_letters"]), (6, 2, 4))

    def test_upsert_isolates_a_bad_row_of_its_very_first_batch(self):
        # Mode upsert stages rows in a temporary table made for the first batch: a row error in
        # that batch rolls back the halving's subtransaction, which must not take the stage with it.
        self.sql("CREATE TABLE upsert_rows (k text PRIMARY KEY, n int)")
        messages = ["x,not a number", "a,1", "b,2", "a,3"]
        kcat_produce(self.sandbox.bootstrap, "bad.upsert", messages, 0)
        self.sql("SELECT streamrec.create_source('upsert_src', 'bad.upsert', 'upsert_rows', 'csv', NULL, "
                 "'{\"mode\": \"upsert\"}')")
        self.wait_offset("upsert_src", 4)
        self.assertEqual(self.sql("SELECT k, n FROM upsert_rows ORDER BY k"), [("a", 3), ("b", 2)])
        letters = self.letters("upsert_src")
        self.assertEqual([(o, bytes(p).decode()) for o, p, _ in letters], [(0, messages[0])])
        self.assertIn('invalid input syntax for type integer: "not a number"', letters[0][2])
        # Later batches use the same stage.
        kcat_produce(self.sandbox.bootstrap, "bad.upsert", ["b,5", "c,oops", "c,6"], 0)
        self.wait_offset("upsert_src", 7)
        self.assertEqual(self.sql("SELECT k, n FROM upsert_rows ORDER BY k"), [("a", 3), ("b", 5), ("c", 6)])
        self.assertEqual([o for o, _, _ in self.letters("upsert_src")], [0, 5])

    def test_server_and_conflict_errors_retry_the_batch_and_dead_letter_nothing(self):
        # Serialization (40001), lock not available (55P03), a cancel (57014), a server
        # resource limit (53400) and a system error (58030) are the moment's fault: the batch
        # waits and retries, whole, and goes through once the cause is gone.
        self.sql("CREATE TABLE retry_rows (id int, name text)")
        self.sql("CREATE TABLE retry_cause (code text)")
        self.sql("INSERT INTO retry_cause VALUES ('40001')")
        self.sql("""CREATE FUNCTION retry_rows_check() RETURNS trigger LANGUAGE plpgsql AS $$
                    DECLARE cause text := (SELECT code FROM public.retry_cause LIMIT 1);
                    BEGIN
                      IF cause IS NOT NULL THEN
                        RAISE EXCEPTION 'transient %', cause USING ERRCODE = cause;
                      END IF;
                      RETURN NEW;
                    END $$""")
        self.sql("CREATE TRIGGER check_rows BEFORE INSERT ON retry_rows FOR EACH ROW EXECUTE FUNCTION "
                 "retry_rows_check()")
        kcat_produce(self.sandbox.bootstrap, "bad.retry", ["1,a", "2,b", "3,c"], 0)
        self.sql("SELECT streamrec.create_source('retry_src', 'bad.retry', 'retry_rows')")
        for code in ("40001", "55P03", "57014", "53400", "58030"):
            self.sql("UPDATE retry_cause SET code = %s", (code,))
            wait_for(lambda: (lambda s: s["state"] == "retrying" and f"transient {code}" in (s["last_error"] or ""))(
                self.source_stats("retry_src")), 40, what=f"retrying on {code} (now {self.source_stats('retry_src')})")
            self.assertEqual(self.value("SELECT count(*) FROM streamrec.dead_letters WHERE source = 'retry_src'"), 0)
            self.assertEqual(self.value("SELECT count(*) FROM retry_rows"), 0)
            # The start offset may be stored before any batch commits (see store_started_offsets).
            self.assertEqual(self.value("SELECT coalesce(max(next_offset), 0) FROM streamrec.source_offsets "
                                        "WHERE source = 'retry_src'"), 0)
        self.sql("DELETE FROM retry_cause")
        self.wait_offset("retry_src", 3)
        self.assertEqual(self.sql("SELECT id, name FROM retry_rows ORDER BY id"), [(1, "a"), (2, "b"), (3, "c")])
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.dead_letters WHERE source = 'retry_src'"), 0)


class RegistryNotFoundTest(BadInputTestCase):
    topics = {"reg.unknown": 1}

    def test_unknown_and_negative_schema_ids_are_dead_lettered_and_the_stream_goes_on(self):
        schema = {"type": "record", "name": "Item", "fields": [{"name": "id", "type": "int"},
                                                              {"name": "name", "type": "string"}]}
        status, body = self.sandbox.http("POST", "/subjects/reg.unknown-value/versions",
                                         {"schema": json.dumps(schema)})
        self.assertEqual(status, 200, body)
        schema_id = body["id"]
        encode = encoder(schema)

        def framed(sid, record):
            return b"\x00" + sid.to_bytes(4, "big", signed=True) + encode(record)

        messages = [framed(schema_id, {"id": 1, "name": "first"}),
                    framed(schema_id + 1000, {"id": 2, "name": "unknown id"}),
                    framed(-1, {"id": 3, "name": "negative id"}),
                    framed(schema_id, {"id": 4, "name": "last"})]
        produce(self.sandbox.bootstrap, "reg.unknown", messages, partition=0)
        self.sql("CREATE TABLE reg_items (id int, name text)")
        self.sql("SELECT streamrec.create_source('reg_unknown', 'reg.unknown', 'reg_items', 'avro', NULL, %s)",
                 (json.dumps({"schema_registry": self.sandbox.registry_url}),))
        self.wait_offset("reg_unknown", 4)
        self.assertEqual(self.sql("SELECT id, name FROM reg_items ORDER BY id"), [(1, "first"), (4, "last")])
        letters = self.letters("reg_unknown")
        self.assertEqual([(o, bytes(p)) for o, p, _ in letters], [(1, messages[1]), (2, messages[2])])
        self.assertEqual(letters[0][2], f"schema id {schema_id + 1000} is not known to the schema registry "
                                        "(HTTP 404, error_code 40403)")
        self.assertEqual(letters[1][2], "schema id -1 is negative: no schema registry assigns such an id")
        self.assertEqual(self.source_stats("reg_unknown")["state"], "running")


class DecodeBoundTest(BadInputTestCase):
    topics = {"bound.bomb": 1, "bound.decimal": 1, "bound.batch": 1, "bound.limit": 1}

    decimals_schema = {"type": "record", "name": "Amounts", "fields": [
        {"name": "id", "type": "int"},
        {"name": "amounts", "type": {"type": "array", "items": {"type": "bytes", "logicalType": "decimal",
                                                                 "precision": 20, "scale": 16383}}}]}

    def peak_memory_kb(self, pid):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM")

    def test_array_of_empty_decimals_with_a_huge_scale_is_dead_lettered_with_bounded_memory(self):
        # 70,000 empty decimals of scale 16,383: a 70 kB message that once grew to 4.3 GB.
        bomb = avro_long(1) + avro_long(70000) + avro_long(0) * 70000 + avro_long(0)
        good = avro_long(2) + avro_long(2) + avro_long(0) + avro_long(1) + b"\x05" + avro_long(0)
        self.assertLess(len(bomb), 71000)
        self.sql("CREATE TABLE amounts (id int, amounts numeric[])")
        self.sql("SELECT streamrec.create_source('bomb_src', 'bound.bomb', 'amounts', 'avro', NULL, %s)",
                 (json.dumps({"schema": self.decimals_schema}),))
        pid = wait_for(lambda: self.source_stats("bomb_src")["pid"], 20, what="worker of bomb_src")
        wait_for(lambda: self.source_stats("bomb_src")["state"] == "running", 20, what="bomb_src running")
        started = time.monotonic()
        produce(self.sandbox.bootstrap, "bound.bomb", [bomb, good], partition=0)
        self.wait_offset("bomb_src", 2, timeout=60)
        took = time.monotonic() - started
        self.assertLess(took, 30)
        letters = self.letters("bomb_src")
        self.assertEqual([(o, bytes(p)) for o, p, _ in letters], [(0, bomb)])
        self.assertIn("decodes to more than max_decoded_bytes (67108864 bytes", letters[0][2])
        self.assertEqual(self.value("SELECT amounts[2]::text FROM amounts WHERE id = 2"),
                         "0." + "0" * 16382 + "5")
        self.assertEqual(self.value("SELECT amounts[1] = 0 FROM amounts WHERE id = 2"), True)
        self.assertEqual(self.source_stats("bomb_src")["pid"], pid)  # the same worker, still running
        self.assertLess(self.peak_memory_kb(pid), 1024 * 1024, "worker peak memory above 1 GB")

    def test_a_big_but_legal_decimal_decodes_in_bounded_time(self):
        # About 300 kB of unscaled bytes: 720,000 nines, printed into a text column.
        digits = 720000
        schema = {"type": "record", "name": "Big", "fields": [
            {"name": "id", "type": "int"},
            {"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 800000, "scale": 2}}]}
        unscaled = 10 ** digits - 1
        raw = unscaled.to_bytes(unscaled.bit_length() // 8 + 1, "big", signed=True)
        self.assertGreater(len(raw), 290000)
        message = avro_long(1) + avro_long(len(raw)) + raw
        self.sql("CREATE TABLE big_decimals (id int, d text)")
        produce(self.sandbox.bootstrap, "bound.decimal", [message, avro_long(2) + avro_long(1) + b"\x07"],
                partition=0)
        started = time.monotonic()
        self.sql("SELECT streamrec.create_source('decimal_src', 'bound.decimal', 'big_decimals', 'avro', NULL, %s)",
                 (json.dumps({"schema": schema}),))
        self.wait_offset("decimal_src", 2, timeout=60)
        self.assertLess(time.monotonic() - started, 20)
        self.assertEqual(self.sql("SELECT length(d), d = repeat('9', %s) || '.99' FROM big_decimals WHERE id = 1",
                                  (digits - 2,)), [(digits + 1, True)])
        self.assertEqual(self.value("SELECT d FROM big_decimals WHERE id = 2"), "0.07")
        # Pausing right after answers at once: no decode holds the worker.
        started = time.monotonic()
        self.sql("SELECT streamrec.pause_source('decimal_src')")
        wait_for(lambda: self.source_stats("decimal_src")["pid"] is None, 20, what="worker to exit")
        self.assertLess(time.monotonic() - started, 10)

    def test_max_decoded_bytes_dead_letters_what_decodes_to_more(self):
        self.sql("CREATE TABLE limited_rows (id int, body text)")
        messages = [json.dumps({"id": 1, "body": "x" * 500}), json.dumps({"id": 2, "body": "y" * 3000}),
                    json.dumps({"id": 3, "body": "z" * 1000})]
        produce(self.sandbox.bootstrap, "bound.limit", messages, partition=0)
        self.sql("SELECT streamrec.create_source('limit_src', 'bound.limit', 'limited_rows', 'json', NULL, "
                 "'{\"max_decoded_bytes\": 2048}')")
        self.wait_offset("limit_src", 3)
        self.assertEqual(self.sql("SELECT id, length(body) FROM limited_rows ORDER BY id"), [(1, 500), (3, 1000)])
        letters = self.letters("limit_src")
        self.assertEqual([(o, bytes(p).decode()) for o, p, _ in letters], [(1, messages[1])])
        self.assertEqual(letters[0][2], "the message decodes to more than max_decoded_bytes (2048 bytes; "
                                        "at least 3003 seen)")

    def test_batch_bytes_ends_batches_early_and_loses_nothing(self):
        self.sql("CREATE TABLE batched_rows (id int, body text)")
        kcat_produce(self.sandbox.bootstrap, "bound.batch", [f"{i},{'b' * 300}" for i in range(40)], 0)
        self.sql("SELECT streamrec.create_source('batch_src', 'bound.batch', 'batched_rows', 'csv', NULL, "
                 "'{\"batch_bytes\": 1024}')")
        self.wait_offset("batch_src", 40)
        time.sleep(0.5)
        self.assertEqual(self.sql("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM batched_rows"),
                         [(40, 40, 0, 39)])
        stats = self.source_stats("batch_src")
        self.assertEqual((stats["messages"], stats["rows"], stats["dead_letters"]), (40, 40, 0))
        # 305 bytes a row: a batch ends once it holds 1,024, so at most four rows each.
        self.assertGreaterEqual(stats["batches"], 10)

    def test_bad_byte_bounds_are_refused(self):
        self.sql("CREATE TABLE bounds_rows (id int)")
        for options in ({"batch_bytes": 10}, {"max_decoded_bytes": "big"}, {"max_decoded_bytes": 2000000000},
                        {"batch_bytes": 1.5}):
            with self.assertRaises(psycopg2.Error) as caught:
                self.sql("SELECT streamrec.create_source('bounds_src', 't', 'bounds_rows', 'csv', NULL, %s)",
                         (json.dumps(options),))
            key = next(iter(options))
            self.assertEqual(caught.exception.pgcode, "22023")
            self.assertEqual(caught.exception.diag.message_primary,
                             f'option "{key}" must be a whole number of bytes from 1024 to 1073741823')
            self.assertIn("max_decoded_bytes 67108864", caught.exception.diag.message_hint)
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.sources WHERE name = 'bounds_src'"), 0)
        self.sql("SELECT streamrec.create_source('bounds_src', 't', 'bounds_rows', 'csv', NULL, "
                 "'{\"batch_bytes\": 1024, \"max_decoded_bytes\": 1073741823}')")
        self.sql("SELECT streamrec.drop_source('bounds_src')")


class CatalogErrorTest(BadInputTestCase):
    topics = {"bad.catalog": 1}

    def test_a_catalog_row_postgresql_refuses_fails_the_worker_cleanly_and_it_resumes_once_fixed(self):
        # An option PostgreSQL itself refuses while the worker reads its configuration (inside the
        # worker's transaction) fails the worker with PostgreSQL's own error, in the stats view and
        # in the server log, without crashing it; once the row is fixed the stream goes on from
        # its offset.
        self.sql("CREATE TABLE catalog_rows (id int, label text)")
        produce(self.sandbox.bootstrap, "bad.catalog", ["1,one", "2,two"])
        self.sql("SELECT streamrec.create_source('catalog_src', 'bad.catalog', 'catalog_rows', 'csv')")
        wait_for(lambda: self.value("SELECT count(*) FROM catalog_rows") == 2, 30, what="2 rows")
        log_start = len(self.cluster.log_text())
        update = "UPDATE streamrec.sources SET options = jsonb_set(options, '{batch_size}', %s) WHERE name = 'catalog_src'"
        conn = self.cluster.connect(autocommit=False)
        try:
            with conn.cursor() as cur:
                # Past the row check, as only a superuser can: create_source refuses such a value.
                cur.execute("ALTER TABLE streamrec.sources DISABLE TRIGGER check_source_row")
                cur.execute(update, (json.dumps("x"),))
                cur.execute("ALTER TABLE streamrec.sources ENABLE TRIGGER check_source_row")
            conn.commit()
        finally:
            conn.close()
        message = 'invalid input syntax for type integer: "x"'
        wait_for(lambda: message in ((self.source_stats("catalog_src") or {}).get("last_error") or ""), 30,
                 what="the worker's error in source_stats")
        self.cluster.wait_for_log(r'(ERROR|FATAL):  ' + message.replace('"', '.'), 30, start=log_start)
        produce(self.sandbox.bootstrap, "bad.catalog", ["3,three"])
        self.sql(update, (json.dumps(500),))
        wait_for(lambda: self.value("SELECT count(*) FROM catalog_rows") == 3, 60, what="the third row")
        self.assertEqual(self.sql("SELECT id, label FROM catalog_rows ORDER BY id"),
                         [(1, "one"), (2, "two"), (3, "three")])
        self.assertEqual(self.value("SELECT count(*) FROM streamrec.dead_letters WHERE source = 'catalog_src'"), 0)
        self.assertEqual(self.cluster.unexpected_signal_deaths(), [])


class InsertOnceTest(BadInputTestCase):
    """Bad rows are found before the good ones are kept, and the good rows of a batch go in as one
    statement: the target's statement triggers run once per batch, whatever the bad rows are."""
    topics = {"once.mixed": 1, "once.typed": 1}

    def count_statements(self, table):
        self.sql(f"CREATE TABLE {table}_statements (id serial, rows bigint)")
        self.sql(f"""CREATE FUNCTION {table}_count() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN
                       INSERT INTO public.{table}_statements(rows) SELECT count(*) FROM new_rows;
                       RETURN NULL;
                     END $$""")
        self.sql(f"CREATE TRIGGER count_statements AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
                 f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_count()")

    def test_bad_rows_of_every_kind_leave_one_statement_per_batch(self):
        # A value the type refuses (found while converting), a CHECK and a NOT NULL violation and
        # a duplicate key (the insert names their row) and a foreign key violation (found only at
        # the statement's end, traced by probes that are rolled back), among 2,000 good rows.
        self.sql("CREATE TABLE once_refs (id int PRIMARY KEY)")
        self.sql("INSERT INTO once_refs SELECT generate_series(0, 9)")
        self.sql("CREATE TABLE once_rows (id int PRIMARY KEY, n int NOT NULL CHECK (n >= 0), "
                 "ref int REFERENCES once_refs, at timestamptz)")
        self.count_statements("once_rows")
        messages = [f"{i},{i},{i % 10},2024-06-28 13:00:{i % 60:02d}Z" for i in range(2000)]
        bad = {17: "17,x,1,", 300: "300,-1,1,", 301: "301,,1,", 1200: "5,5,5,", 1900: "1900,1,99,"}
        for offset, message in bad.items():
            messages[offset] = message
        kcat_produce(self.sandbox.bootstrap, "once.mixed", messages, 0)
        self.sql("SELECT streamrec.create_source('once_src', 'once.mixed', 'once_rows')")
        self.wait_offset("once_src", 2000)
        letters = self.letters("once_src")
        self.assertEqual(len(letters), 5, letters[:3])
        self.assertEqual([(o, bytes(p).decode()) for o, p, _ in letters], sorted(bad.items()))
        errors = [e for _, _, e in letters]
        self.assertIn('invalid input syntax for type integer: "x"', errors[0])
        self.assertIn('violates check constraint "once_rows_n_check"', errors[1])
        self.assertIn('null value in column "n" of relation "once_rows" violates not-null constraint', errors[2])
        self.assertIn('duplicate key value violates unique constraint "once_rows_pkey" (Key (id)=(5) already exists.)',
                      errors[3])
        self.assertIn('violates foreign key constraint "once_rows_ref_fkey" (Key (ref)=(99) is not present',
                      errors[4])
        self.assertEqual(self.value("SELECT count(*) FROM once_rows"), 1995)
        self.assertEqual(self.value("SELECT count(*) FROM once_rows WHERE at = '2024-06-28 13:00:00+00'::timestamptz "
                                    "+ (id % 60) * interval '1 second'"), 1995)
        stats = self.source_stats("once_src")
        self.assertEqual((stats["messages"], stats["rows"], stats["dead_letters"]), (2000, 1995, 5))
        # One statement per batch that stored rows, holding all of that batch's good rows.
        statements = self.sql("SELECT rows FROM once_rows_statements ORDER BY id")
        self.assertEqual(len(statements), stats["batches"])
        self.assertEqual(sum(r for r, in statements), 1995)

    def test_typed_values_are_what_the_input_functions_make_of_the_text(self):
        # The same csv messages into typed columns and, by a second source, into text columns:
        # every typed value equals the text cast by PostgreSQL, in a time zone with summer time
        # (wall clocks that do not exist or exist twice included).
        database = self.value("SELECT quote_ident(current_database())")
        self.sql(f"ALTER DATABASE {database} SET timezone = 'Europe/Paris'")
        self.addCleanup(self.sql, f"ALTER DATABASE {database} RESET timezone")
        columns = [("i2", "int2"), ("i4", "int4"), ("i8", "int8"), ("num", "numeric"), ("r", "real"),
                   ("d", "double precision"), ("b", "boolean"), ("day", "date"), ("tz", "timestamptz"),
                   ("ts", "timestamp"), ("j", "jsonb"), ("a", "int[]"), ("v", "varchar(5)"), ("t", "text")]
        self.sql("CREATE TABLE typed_rows (id int, " + ", ".join(f"{c} {t}" for c, t in columns) + ")")
        self.sql("CREATE TABLE text_rows (id int, " + ", ".join(f"{c} text" for c, _ in columns) + ")")
        times = ["2024-06-28 13:00:00", "2024-06-28T13:00:00.5Z", "2024-06-28 13:00:00.123456+02:30",
                 "2024-03-31 02:30:00", "2024-10-27 02:30:00", "2024-10-27 03:00:00", "1999-12-31 23:59:59-08",
                 "0999-01-01 00:00:00Z", "2024-06-28", "2024-06-28 24:00:00", "June 28 2024 13:00 UTC",
                 "2024-06-28 13:00:00.1234567Z", "epoch", "2024-06-28 13:00:00 Europe/Paris"]
        ints = ["0", "-32768", "32767", "007", " 12", "+5", "-0"]
        bools = ["t", "f", "true", "false", "yes", "OFF", "1"]
        days = ["2024-02-29", "0001-01-01", "June 28, 2024", "2024-06-28 BC", "20240628"]
        messages = []
        for i in range(len(times) * 2):
            messages.append(",".join([
                str(i), ints[i % len(ints)], ints[(i + 1) % len(ints)], str(-(10 ** 17) + i), f"{i}.50",
                f"{i}.25e-1", "1e300" if i % 5 == 0 else f"-{i}.125", bools[i % len(bools)], f'"{days[i % len(days)]}"',
                f'"{times[i % len(times)]}"', f'"{times[(i + 3) % len(times)]}"', '"{""k"": [1, 2.50]}"',
                '"{1,2,NULL}"', "abcde"[: i % 6], f'"tab\\there ""q"" é {i}"']))
        messages.append(str(len(messages)) + "," * len(columns))  # every column NULL
        kcat_produce(self.sandbox.bootstrap, "once.typed", messages, 0)
        self.sql("SELECT streamrec.create_source('typed_src', 'once.typed', 'typed_rows')")
        self.sql("SELECT streamrec.create_source('text_src', 'once.typed', 'text_rows')")
        self.wait_offset("typed_src", len(messages))
        self.wait_offset("text_src", len(messages))
        self.assertEqual(self.sql("SELECT source, \"offset\", error FROM streamrec.dead_letters "
                                  "WHERE source IN ('typed_src', 'text_src')"), [])
        self.assertEqual(self.value("SELECT count(*) FROM typed_rows"), len(messages))
        cast = ", ".join(f"x.{c}::{t}" for c, t in columns)
        typed = ", ".join(f"y.{c}" for c, _ in columns)
        differing = self.sql(f"SELECT x.id FROM text_rows x JOIN typed_rows y USING (id) "
                             f"WHERE ROW({typed}) IS DISTINCT FROM ROW({cast})")
        self.assertEqual(differing, [])


if __name__ == "__main__":
    unittest.main()
