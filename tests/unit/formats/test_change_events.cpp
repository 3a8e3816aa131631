// Keys (key_format, key_columns), tombstones and Debezium change events: the rows each message
// asks for, and a format_error (a dead letter) for every malformed key or envelope.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/formats/change_events.h"
#include "core/formats/decoder.h"
#include "tests/unit/formats/decoder_test_support.h"

namespace streamrec {
namespace {

using namespace testing_support;

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

// Avro binary written by hand (zigzag varints, length-prefixed strings).
class avro_writer {
 public:
  avro_writer& number(int64_t value) {
    uint64_t zigzag = (static_cast<uint64_t>(value) << 1) ^ static_cast<uint64_t>(value >> 63);
    while (zigzag >= 0x80) {
      out_.push_back(static_cast<char>(zigzag | 0x80));
      zigzag >>= 7;
    }
    out_.push_back(static_cast<char>(zigzag));
    return *this;
  }
  avro_writer& text(std::string_view value) {
    number(static_cast<int64_t>(value.size()));
    out_.append(value);
    return *this;
  }
  // Confluent framing: magic byte 0 and the schema id, big-endian.
  avro_writer& framed(int32_t id) {
    out_.push_back('\0');
    for (int shift = 24; shift >= 0; shift -= 8) out_.push_back(static_cast<char>((id >> shift) & 0xff));
    return *this;
  }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

struct changes {
  std::string lines;
  std::vector<decoded_row> rows;
  // "+" or "-" and the line of each row, and the mask as 0/1 digits.
  std::string row(size_t i) const {
    std::string out = rows[i].change == row_change::upsert ? "+" : "-";
    out.append(lines, rows[i].begin, rows[i].end - rows[i].begin);
    return out;
  }
  std::string mask_of(size_t i) const {
    std::string out;
    for (const bool p : rows[i].present) out.push_back(p ? '1' : '0');
    return out;
  }
};

changes decode_changes(decoder& d, const message_view& message) {
  changes out;
  d.decode_changes(message, out.lines, out.rows);
  return out;
}

message_view keyed(std::optional<std::string_view> key, std::optional<std::string_view> payload) {
  message_view m = message_with("");
  m.key = key;
  m.payload = payload;
  return m;
}

column_binding key_column(std::string name, column_kind kind = column_kind::text, std::string field = {}) {
  column_binding b = column(std::move(name), kind, std::move(field));
  b.from_key = true;
  return b;
}

// --- keys ----------------------------------------------------------------------------------------

TEST(KeyColumns, TextKeyFillsOneColumnInBindingOrder) {
  decoder_config config = config_for(wire_format::json, {column("name"), key_column("id"), column("status")});
  auto d = make_decoder(config);
  ASSERT_TRUE(decodes_changes(config));
  changes c = decode_changes(*d, keyed("c-1\t", R"({"name": "Ann", "status": "gold", "id": "ignored"})"));
  ASSERT_EQ(c.rows.size(), 1u);
  EXPECT_EQ(c.row(0), "+Ann\tc-1\\t\tgold\n");
  EXPECT_EQ(c.mask_of(0), "111");
  // decode() gives the same line for a message with a value.
  decoded one = decode_one(*d, keyed("c-1", R"({"name": "Ann"})"));
  EXPECT_EQ(one.line, "Ann\tc-1\n");
  EXPECT_EQ(one.present, mask({1, 1, 0}));
}

TEST(KeyColumns, TextKeyIntoByteaIsHex) {
  auto d = make_decoder(config_for(wire_format::json, {key_column("id", column_kind::bytea), column("name")}));
  EXPECT_EQ(decode_changes(*d, keyed(std::string_view("\x01\xff", 2), R"({"name": "x"})")).row(0), "+\\\\x01ff\tx\n");
}

TEST(KeyColumns, CsvKeyTakesFieldsInOrder) {
  decoder_config config = config_for(wire_format::csv, {column("name"), key_column("region"), key_column("id")});
  config.key = key_format::csv;
  auto d = make_decoder(config);
  EXPECT_EQ(decode_changes(*d, keyed("eu,\"c,1\"", "Ann")).row(0), "+Ann\teu\tc,1\n");
  EXPECT_THROW(decode_changes(*d, keyed("eu", "Ann")), format_error);  // one field short
}

TEST(KeyColumns, JsonKeyByFieldNameWithOrWithoutSchemaWrapper) {
  decoder_config config = config_for(
      wire_format::json, {key_column("id"), key_column("region", column_kind::text, "where.region"), column("name")});
  config.key = key_format::json;
  auto d = make_decoder(config);
  EXPECT_EQ(decode_changes(*d, keyed(R"({"where": {"region": "eu"}, "id": 7})", R"({"name": "Ann"})")).row(0),
            "+7\teu\tAnn\n");
  EXPECT_EQ(
      decode_changes(*d, keyed(R"({"schema": {"type": "struct"}, "payload": {"id": 8, "where": {"region": "us"}}})",
                               R"({"name": "Bo"})"))
          .row(0),
      "+8\tus\tBo\n");
  const std::string missing =
      error_of<format_error>([&] { decode_changes(*d, keyed(R"({"id": 7})", R"({"name": "Ann"})")); });
  EXPECT_TRUE(contains(missing, "key: no field \"where.region\"")) << missing;
  const std::string bad = error_of<format_error>([&] { decode_changes(*d, keyed("{\"id\": ", R"({"name": "A"})")); });
  EXPECT_TRUE(contains(bad, "key: invalid JSON")) << bad;
}

TEST(KeyColumns, AvroKeyConfluentFramedThroughTheRegistry) {
  decoder_config config = config_for(wire_format::json, {key_column("id"), key_column("region"), column("name")});
  config.key = key_format::avro;
  int fetched = 0;
  auto d = make_decoder(config, [&](int32_t id) {
    ++fetched;
    EXPECT_EQ(id, 42);
    return std::string(
        R"({"type":"record","name":"K","fields":[{"name":"region","type":"string"},{"name":"id","type":"long"}]})");
  });
  const std::string key = avro_writer().framed(42).text("eu").number(-3).str();
  EXPECT_EQ(decode_changes(*d, keyed(key, R"({"name": "Ann"})")).row(0), "+-3\teu\tAnn\n");
  EXPECT_EQ(decode_changes(*d, keyed(key, R"({"name": "Bo"})")).row(0), "+-3\teu\tBo\n");
  EXPECT_EQ(fetched, 1);
  const std::string bad = error_of<format_error>([&] { decode_changes(*d, keyed("\x01xyz", R"({"name": "A"})")); });
  EXPECT_TRUE(contains(bad, "key: ")) << bad;
  EXPECT_THROW(decode_changes(*d, keyed(avro_writer().framed(42).text("eu").str(), "{}")), format_error);  // truncated
}

TEST(KeyColumns, MissingKeyIsAFormatError) {
  auto d = make_decoder(config_for(wire_format::json, {key_column("id"), column("name")}));
  const std::string error =
      error_of<format_error>([&] { decode_changes(*d, keyed(std::nullopt, R"({"name": "A"})")); });
  EXPECT_TRUE(contains(error, "no key")) << error;
}

TEST(KeyColumns, MalformedValueStaysAFormatErrorAndLeavesNothing) {
  auto d = make_decoder(config_for(wire_format::json, {key_column("id"), column("name")}));
  changes c;
  c.lines = "kept";
  EXPECT_THROW(d->decode_changes(keyed("k", "[1]"), c.lines, c.rows), format_error);
  EXPECT_EQ(c.lines, "kept");
  EXPECT_TRUE(c.rows.empty());
}

TEST(Tombstones, DeleteTheRowOfTheKey) {
  decoder_config config = config_for(wire_format::json, {key_column("id"), column("name"), column("status")});
  config.key = key_format::json;
  auto d = make_decoder(config);
  changes c = decode_changes(*d, keyed(R"({"id": 5})", std::nullopt));
  ASSERT_EQ(c.rows.size(), 1u);
  EXPECT_EQ(c.row(0), "-5\n");
  EXPECT_EQ(c.mask_of(0), "100");
  EXPECT_THROW(decode_changes(*d, keyed(std::nullopt, std::nullopt)), format_error);  // no key to delete
  // decode() of a tombstone stays the format_error it always was.
  EXPECT_THROW(decode_one(*d, keyed(R"({"id": 5})", std::nullopt)), format_error);
}

TEST(Tombstones, PlainDecodersStillRefuseThem) {
  auto d = make_decoder(text_columns(wire_format::json, {"id"}));
  changes c;
  EXPECT_THROW(d->decode_changes(keyed("k", std::nullopt), c.lines, c.rows), format_error);
}

// --- Debezium ------------------------------------------------------------------------------------

decoder_config customers(wire_format format) {
  decoder_config config =
      config_for(format, {column("customer_id"), column("first_name"), column("club_status"),
                          metadata_column("changed_at", metadata_field::change_ts_ms, column_kind::timestamp),
                          metadata_column("origin", metadata_field::change_source, column_kind::json),
                          metadata_column("op", metadata_field::change_op),
                          metadata_column("kafka_offset", metadata_field::offset)});
  config.envelope = envelope_kind::debezium;
  config.primary_key = {"customer_id"};
  return config;
}

TEST(DebeziumJson, CreateUpdateDeleteAndTombstone) {
  auto d = make_decoder(customers(wire_format::json));
  changes c = decode_changes(*d, message_with(R"({"before": null, "after": {"customer_id": "c1", "first_name": "Ann",
      "club_status": "gold"}, "source": {"db": "shop", "table": "customers"}, "op": "c", "ts_ms": 1719579715123})"));
  ASSERT_EQ(c.rows.size(), 1u);
  EXPECT_EQ(c.row(0),
            "+c1\tAnn\tgold\t2024-06-28T13:01:55.123Z\t{\"db\": \"shop\", \"table\": \"customers\"}\tc\t1234\n");

  c = decode_changes(*d, message_with(R"({"before": {"customer_id": "c1", "club_status": "gold"},
      "after": {"customer_id": "c1", "first_name": "Ann", "club_status": "platinum"}, "op": "u", "ts_ms": 1})"));
  ASSERT_EQ(c.rows.size(), 1u);
  EXPECT_EQ(c.row(0), "+c1\tAnn\tplatinum\t1970-01-01T00:00:00.001Z\t\\N\tu\t1234\n");

  c = decode_changes(*d, message_with(R"({"before": {"customer_id": "c1"}, "after": {"customer_id": "c9",
      "first_name": "Ann", "club_status": "platinum"}, "op": "u"})"));
  ASSERT_EQ(c.rows.size(), 2u);
  EXPECT_EQ(c.row(0), "-c1\n");
  EXPECT_EQ(c.mask_of(0), "1000000");
  EXPECT_EQ(c.row(1), "+c9\tAnn\tplatinum\t\\N\t\\N\tu\t1234\n");

  c = decode_changes(
      *d, message_with(R"({"before": {"customer_id": "c9", "first_name": "Ann"}, "after": null, "op": "d"})"));
  ASSERT_EQ(c.rows.size(), 1u);
  EXPECT_EQ(c.row(0), "-c9\n");

  message_view tombstone = message_with("");
  tombstone.payload.reset();
  EXPECT_TRUE(decode_changes(*d, tombstone).rows.empty());
}

TEST(DebeziumJson, SchemaPayloadWrapperAndSnapshotReads) {
  auto d = make_decoder(customers(wire_format::json));
  changes c = decode_changes(*d, message_with(R"({"schema": {"type": "struct", "fields": []},
      "payload": {"before": null, "after": {"customer_id": "c2", "first_name": "Bo", "club_status": null},
                  "source": {"snapshot": "true"}, "op": "r", "ts_ms": 0}})"));
  ASSERT_EQ(c.rows.size(), 1u);
  EXPECT_EQ(c.row(0), "+c2\tBo\t\\N\t1970-01-01T00:00:00.000Z\t{\"snapshot\": \"true\"}\tr\t1234\n");
}

TEST(DebeziumJson, MalformedEventsAreFormatErrors) {
  auto d = make_decoder(customers(wire_format::json));
  auto error = [&](std::string_view payload) {
    return error_of<format_error>([&] { decode_changes(*d, message_with(payload)); });
  };
  EXPECT_TRUE(contains(error(R"({"after": {"customer_id": "c1"}})"), "no op")) << error(R"({"after": {}})");
  EXPECT_TRUE(contains(error(R"({"op": "x", "after": {"customer_id": "c1"}})"), "unknown Debezium op \"x\""));
  EXPECT_TRUE(contains(error(R"({"op": "c", "after": null})"), "has no after"));
  EXPECT_TRUE(contains(error(R"({"op": "c"})"), "has no after"));
  EXPECT_TRUE(contains(error(R"({"op": "d", "before": null})"), "has no before"));
  EXPECT_TRUE(contains(error(R"({"op": "c", "after": {"customer_id": "c1"})"), "invalid JSON"));
  EXPECT_TRUE(contains(error("[]"), "not an object"));
  // decode() refuses what is not one upsert rather than dropping a delete.
  EXPECT_THROW(decode_payload(*d, R"({"op": "d", "before": {"customer_id": "c1"}})"), format_error);
  EXPECT_EQ(decode_payload(*d, R"({"op": "c", "after": {"customer_id": "c1"}})").line, "c1\t\\N\t\\N\tc\t1234\n");
}

TEST(DebeziumJson, KeyColumnsComeFromTheKey) {
  decoder_config config = customers(wire_format::json);
  config.columns[0].from_key = true;
  config.key = key_format::json;
  auto d = make_decoder(config);
  message_view m = message_with(R"({"op": "d", "before": null})");
  m.key = R"({"schema": {}, "payload": {"customer_id": "k1"}})";
  changes c = decode_changes(*d, m);
  ASSERT_EQ(c.rows.size(), 1u);
  EXPECT_EQ(c.row(0), "-k1\n");
}

TEST(DebeziumAvro, EnvelopeThroughTheRegistry) {
  decoder_config config = customers(wire_format::avro);
  config.columns[0].kind = column_kind::text;
  // The fuzz schema's Value record: id long, name, status; map the customers' columns onto it.
  config.columns[0].field = "id";
  config.columns[1].field = "name";
  config.columns[2].field = "status";
  config.primary_key = {"customer_id"};
  auto d = make_decoder(config, [](int32_t) { return debezium_fuzz_avro_schema(); });
  auto value = [](avro_writer& w, int64_t id, std::string_view name, std::string_view status) {
    w.number(1).number(id).number(1).text(name).number(1).text(status);
  };
  auto source = [](avro_writer& w) { w.text("mysql").text("shop").number(1).text("customers"); };

  avro_writer create;
  create.framed(1).number(0);  // before: null
  value(create, 7, "Ann", "gold");
  source(create);
  create.text("c").number(1).number(1719579715123);
  changes c = decode_changes(*d, message_with(create.str()));
  ASSERT_EQ(c.rows.size(), 1u);
  EXPECT_EQ(c.row(0),
            "+7\tAnn\tgold\t2024-06-28T13:01:55.123Z\t{\"connector\":\"mysql\",\"db\":\"shop\",\"table\":\"customers\"}"
            "\tc\t1234\n");

  avro_writer rekey;
  rekey.framed(1);
  value(rekey, 7, "Ann", "gold");
  value(rekey, 8, "Ann", "platinum");
  source(rekey);
  rekey.text("u").number(0);
  c = decode_changes(*d, message_with(rekey.str()));
  ASSERT_EQ(c.rows.size(), 2u);
  EXPECT_EQ(c.row(0), "-7\n");
  EXPECT_EQ(c.row(1).substr(0, 18), "+8\tAnn\tplatinum\t\\N");

  avro_writer remove;
  remove.framed(1);
  value(remove, 8, "Ann", "platinum");
  remove.number(0);
  source(remove);
  remove.text("d").number(0);
  c = decode_changes(*d, message_with(remove.str()));
  ASSERT_EQ(c.rows.size(), 1u);
  EXPECT_EQ(c.row(0), "-8\n");

  avro_writer no_after;
  no_after.framed(1).number(0).number(0);
  source(no_after);
  no_after.text("c").number(0);
  EXPECT_TRUE(
      contains(error_of<format_error>([&] { decode_changes(*d, message_with(no_after.str())); }), "has no after"));
  EXPECT_THROW(decode_changes(*d, message_with(create.str().substr(0, 12))), format_error);  // truncated
}

TEST(ChangeEventFuzzEntryPoints, DecodeOrRefuseAnyBytes) {
  EXPECT_EQ(decode_key_for_fuzzing(key_format::text, "k"), "+k\tn\n");
  EXPECT_EQ(decode_key_for_fuzzing(key_format::csv, "a,b"), "+a\tb\tn\n");
  EXPECT_EQ(decode_key_for_fuzzing(key_format::json, R"({"id": "a", "region": null})"), "+a\t\\N\tn\n");
  EXPECT_EQ(decode_key_for_fuzzing(key_format::avro, avro_writer().framed(3).text("a").number(0).str()),
            "+a\t\\N\tn\n");
  EXPECT_THROW(decode_key_for_fuzzing(key_format::avro, "\x00\x00"), format_error);
  EXPECT_EQ(decode_debezium_json_for_fuzzing(R"({"op": "d", "before": {"id": 3}})"), "-3\n");
  EXPECT_THROW(decode_debezium_json_for_fuzzing("{\"op\": \"d\", \"before\": {\"id\": 3}"), format_error);
  EXPECT_THROW(decode_debezium_avro_for_fuzzing(std::string("\x02\x06", 2)), format_error);
}

// Every truncation and every single-byte change of valid inputs decodes or is a format_error
// (under the sanitizer build: and never reads out of bounds).
TEST(ChangeEventFuzzEntryPoints, TruncationsAndByteFlipsDecodeOrRefuse) {
  auto mutate = [](const std::string& seed, auto&& call) {
    for (size_t n = 0; n <= seed.size(); ++n) {
      try {
        call(seed.substr(0, n));
      } catch (const format_error&) {
      }
    }
    for (size_t i = 0; i < seed.size(); ++i) {
      for (const char flip : {'\x00', '\x01', '\x80', '\xff', '"', '{', '\\'}) {
        std::string changed = seed;
        changed[i] = flip;
        try {
          call(changed);
        } catch (const format_error&) {
        }
      }
    }
  };
  const std::string json_event =
      R"({"schema": {}, "payload": {"before": {"id": 1, "name": "a"}, "after": )"
      R"({"id": 2, "name": "b", "status": "gold"}, "source": {"db": "x"}, "op": "u", "ts_ms": 5}})";
  mutate(json_event, [](const std::string& bytes) { decode_debezium_json_for_fuzzing(bytes); });
  avro_writer avro;
  avro.number(1).number(1).number(1).text("a").number(0);  // before {id 1, name a, status null}
  avro.number(1).number(2).number(1).text("b").number(1).text("gold");
  avro.text("mysql").text("shop").number(1).text("customers").text("u").number(1).number(5);
  mutate(avro.str(), [](const std::string& bytes) { decode_debezium_avro_for_fuzzing(bytes); });
  EXPECT_EQ(decode_debezium_avro_for_fuzzing(avro.str()).substr(0, 4), "-1\n+");
  mutate(R"({"schema": {}, "payload": {"id": "k", "region": "eu"}})",
         [](const std::string& bytes) { decode_key_for_fuzzing(key_format::json, bytes); });
  mutate("k1,\"e,u\"", [](const std::string& bytes) { decode_key_for_fuzzing(key_format::csv, bytes); });
  mutate(avro_writer().framed(3).text("abc").number(1).text("eu").str(),
         [](const std::string& bytes) { decode_key_for_fuzzing(key_format::avro, bytes); });
}

}  // namespace
}  // namespace streamrec
