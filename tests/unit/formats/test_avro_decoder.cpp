// Avro decoder: plain and Confluent-framed messages, every type and logical type we map, the
// schema cache, a real registry over HTTP, and malformed bytes (format_error, never a crash).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>

#include "tests/unit/formats/decoder_test_support.h"
#include "core/formats/confluent_avro.h"
#include "core/formats/decoder.h"
#include "core/formats/json_writer.h"

namespace streamrec {
namespace {

using namespace testing_support;

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

// Avro binary encoding written by hand, so each test states its exact bytes.
class avro_bytes {
 public:
  avro_bytes& long_value(int64_t value) {
    uint64_t zigzag = (static_cast<uint64_t>(value) << 1) ^ static_cast<uint64_t>(value >> 63);
    while (zigzag >= 0x80) {
      out_.push_back(static_cast<char>(zigzag | 0x80));
      zigzag >>= 7;
    }
    out_.push_back(static_cast<char>(zigzag));
    return *this;
  }
  avro_bytes& string_value(std::string_view text) {
    long_value(static_cast<int64_t>(text.size()));
    out_.append(text);
    return *this;
  }
  avro_bytes& boolean(bool value) {
    out_.push_back(value ? 1 : 0);
    return *this;
  }
  avro_bytes& float_value(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>(bits >> (8 * i)));
    return *this;
  }
  avro_bytes& double_value(double value) {
    uint64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>(bits >> (8 * i)));
    return *this;
  }
  avro_bytes& raw(std::string_view bytes) {
    out_.append(bytes);
    return *this;
  }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

decoder_config avro_config(std::string schema, std::vector<column_binding> columns) {
  decoder_config config = config_for(wire_format::avro, std::move(columns));
  config.inline_schema = std::move(schema);
  return config;
}

std::unique_ptr<decoder> plain_avro(std::string schema, std::vector<column_binding> columns) {
  return make_decoder(avro_config(std::move(schema), std::move(columns)));
}

std::string record_schema(const std::string& fields) {
  return R"({"type": "record", "name": "r", "namespace": "test", "fields": [)" + fields + "]}";
}

const std::string click_schema = record_schema(R"(
  {"name": "click_id", "type": "string"},
  {"name": "user_id", "type": "string"},
  {"name": "product_id", "type": ["null", "string"], "default": null},
  {"name": "views", "type": "int"},
  {"name": "big", "type": "long"},
  {"name": "price", "type": "double"},
  {"name": "ratio", "type": "float"},
  {"name": "ok", "type": "boolean"},
  {"name": "kind", "type": {"type": "enum", "name": "kind", "symbols": ["page_view", "add_to_cart"]}},
  {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}})");

avro_bytes click_bytes(bool with_product) {
  avro_bytes bytes;
  bytes.string_value("c-1").string_value("user\t27");
  if (with_product) {
    bytes.long_value(1).string_value("p\\140");
  } else {
    bytes.long_value(0);
  }
  bytes.long_value(-42).long_value(9007199254740993).double_value(12.5).float_value(0.1f).boolean(true);
  bytes.long_value(1).long_value(1719579715123);
  return bytes;
}

std::vector<column_binding> click_columns() {
  return {column("click_id"),   column("user_id"),
          column("product_id"), column("views"),
          column("big"),        column("price"),
          column("ratio"),      column("ok", column_kind::boolean),
          column("kind"),       column("event_time", column_kind::timestamp)};
}

TEST(AvroDecoder, PlainRecordOfPrimitives) {
  auto d = plain_avro(click_schema, click_columns());
  const decoded out = decode_payload(*d, click_bytes(true).str());
  EXPECT_TRUE(out.produced);
  EXPECT_EQ(out.line,
            "c-1\tuser\\t27\tp\\\\140\t-42\t9007199254740993\t12.5\t0.1\tt\tadd_to_cart\t2024-06-28T13:01:55.123Z\n");
  EXPECT_EQ(out.present, column_mask(10, true));
}

TEST(AvroDecoder, NullUnionBranchIsNull) {
  auto d = plain_avro(click_schema, click_columns());
  const decoded out = decode_payload(*d, click_bytes(false).str());
  EXPECT_EQ(out.line.substr(0, 19), "c-1\tuser\\t27\t\\N\t-42");
  EXPECT_EQ(out.present, column_mask(10, true));
}

TEST(AvroDecoder, FieldsMissingFromTheSchemaAreAbsent) {
  auto d = plain_avro(click_schema, {column("user_id"), column("campaign"), column("kind"),
                                     column("city", column_kind::text, "user_id.city")});
  const decoded out = decode_payload(*d, click_bytes(true).str());
  EXPECT_EQ(out.line, "user\\t27\tadd_to_cart\n");
  EXPECT_EQ(out.present, mask({1, 0, 1, 0}));
}

TEST(AvroDecoder, FieldMapping) {
  auto d = plain_avro(click_schema, {column("uid", column_kind::text, "user_id"), column("click_id")});
  EXPECT_EQ(decode_payload(*d, click_bytes(true).str()).line, "user\\t27\tc-1\n");
}

TEST(AvroDecoder, NestedRecordsAndNullableRecords) {
  const std::string schema = record_schema(R"(
    {"name": "name", "type": "string"},
    {"name": "address", "type": {"type": "record", "name": "address", "fields": [
      {"name": "city", "type": "string"},
      {"name": "geo", "type": ["null", {"type": "record", "name": "geo", "fields": [
        {"name": "lat", "type": "double"}, {"name": "lon", "type": "double"}]}]}]}})");
  auto d = plain_avro(
      schema, {column("city", column_kind::text, "address.city"), column("lat", column_kind::text, "address.geo.lat"),
               column("name"), column("missing", column_kind::text, "address.geo.alt")});
  const std::string with_geo =
      avro_bytes().string_value("n").string_value("Paris").long_value(1).double_value(48.85).double_value(2.35).str();
  decoded out = decode_payload(*d, with_geo);
  EXPECT_EQ(out.line, "Paris\t48.85\tn\n");
  EXPECT_EQ(out.present, mask({1, 1, 1, 0}));
  // A null record on the path: the column is present (the schema has it) and NULL.
  out = decode_payload(*d, avro_bytes().string_value("n").string_value("Lyon").long_value(0).str());
  EXPECT_EQ(out.line, "Lyon\t\\N\tn\n");
  EXPECT_EQ(out.present, mask({1, 1, 1, 0}));
}

TEST(AvroDecoder, RecordsAndMapsIntoJsonColumns) {
  const std::string schema = record_schema(R"(
    {"name": "address", "type": {"type": "record", "name": "address", "fields": [
      {"name": "city", "type": "string"}, {"name": "zip", "type": ["null", "int"]}]}},
    {"name": "attrs", "type": {"type": "map", "values": "long"}})");
  auto d = plain_avro(
      schema, {column("address", column_kind::json), column("attrs", column_kind::json),
               column("city", column_kind::text, "address.city"), column("attrs_text", column_kind::text, "attrs")});
  const std::string bytes = avro_bytes()
                                .string_value("Par\"is")
                                .long_value(0)
                                .long_value(2)
                                .string_value("size")
                                .long_value(42)
                                .string_value("tab\tkey")
                                .long_value(-1)
                                .long_value(0)
                                .str();
  EXPECT_EQ(decode_payload(*d, bytes).line,
            "{\"city\":\"Par\\\\\"is\",\"zip\":null}\t{\"size\":42,\"tab\\\\tkey\":-1}\tPar\"is\t{\"size\":42,"
            "\"tab\\\\tkey\":-1}\n");
}

TEST(AvroDecoder, ScalarsIntoJsonColumns) {
  const std::string schema = record_schema(R"(
    {"name": "s", "type": "string"}, {"name": "n", "type": "long"}, {"name": "b", "type": "boolean"},
    {"name": "e", "type": {"type": "enum", "name": "e", "symbols": ["A", "B"]}},
    {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "nan", "type": "double"}, {"name": "raw", "type": "bytes"})");
  auto d = plain_avro(schema,
                      {column("s", column_kind::json), column("n", column_kind::json), column("b", column_kind::json),
                       column("e", column_kind::json), column("t", column_kind::json), column("nan", column_kind::json),
                       column("raw", column_kind::json)});
  const std::string bytes = avro_bytes()
                                .string_value("x")
                                .long_value(7)
                                .boolean(false)
                                .long_value(1)
                                .long_value(0)
                                .double_value(std::numeric_limits<double>::quiet_NaN())
                                .string_value(std::string("\x01\xff", 2))
                                .str();
  EXPECT_EQ(decode_payload(*d, bytes).line,
            "\"x\"\t7\tfalse\t\"B\"\t\"1970-01-01T00:00:00.000Z\"\tnull\t\"\\\\\\\\x01ff\"\n");
}

TEST(AvroDecoder, ArraysBecomeArrayLiterals) {
  const std::string schema = record_schema(R"(
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "scores", "type": {"type": "array", "items": ["null", "int"]}},
    {"name": "grid", "type": {"type": "array", "items": {"type": "array", "items": "long"}}},
    {"name": "flags", "type": {"type": "array", "items": "boolean"}})");
  auto d = plain_avro(schema, {column("tags", column_kind::array), column("scores", column_kind::array),
                               column("grid", column_kind::array), column("flags", column_kind::array),
                               column("tags_json", column_kind::json, "tags")});
  avro_bytes bytes;
  bytes.long_value(6).string_value("a").string_value("b,c").string_value("").string_value("NULL");
  bytes.string_value("back\\slash").string_value("x y").long_value(0);
  // Two blocks, the second with a byte size (negative count).
  bytes.long_value(2).long_value(1).long_value(5).long_value(0);
  bytes.long_value(-1).long_value(2).long_value(1).long_value(-3).long_value(0);
  bytes.long_value(2).long_value(2).long_value(1).long_value(2).long_value(0).long_value(0).long_value(0);
  bytes.long_value(2).boolean(true).boolean(false).long_value(0);
  EXPECT_EQ(decode_payload(*d, bytes.str()).line, R"({a,"b,c","","NULL","back\\\\slash","x y"})"
                                                  "\t{5,NULL,-3}\t{{1,2},{}}\t{t,f}\t"
                                                  R"(["a","b,c","","NULL","back\\\\slash","x y"])"
                                                  "\n");
}

TEST(AvroDecoder, ArrayOfRecordsHoldsJsonElements) {
  const std::string schema = record_schema(R"(
    {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "item", "fields": [
      {"name": "id", "type": "string"}, {"name": "qty", "type": "int"}]}}})");
  auto d = plain_avro(schema, {column("items", column_kind::array)});
  avro_bytes bytes;
  bytes.long_value(1).string_value("p1").long_value(2).long_value(0);
  EXPECT_EQ(decode_payload(*d, bytes.str()).line, R"({"{\\"id\\":\\"p1\\",\\"qty\\":2}"})"
                                                  "\n");
}

TEST(AvroDecoder, LogicalTimesAndDates) {
  const std::string schema = record_schema(R"(
    {"name": "ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "old", "type": {"type": "int", "logicalType": "date"}},
    {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
    {"name": "tu", "type": {"type": "long", "logicalType": "time-micros"}},
    {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
    {"name": "opt", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
    {"name": "plain_ms", "type": "long"},
    {"name": "plain_days", "type": "int"})");
  auto d =
      plain_avro(schema, {column("ms", column_kind::timestamp), column("us", column_kind::timestamp),
                          column("day", column_kind::date), column("old", column_kind::date), column("tm"),
                          column("tu"), column("local", column_kind::timestamp), column("opt", column_kind::timestamp),
                          column("plain_ms", column_kind::timestamp), column("plain_days", column_kind::date)});
  const std::string bytes = avro_bytes()
                                .long_value(1719579715123)
                                .long_value(1719579715123456)
                                .long_value(19902)
                                .long_value(-719528)
                                .long_value(45296789)
                                .long_value(45296789012)
                                .long_value(1719579715123)
                                .long_value(1)
                                .long_value(-1)
                                .long_value(1719579715000)
                                .long_value(0)
                                .str();
  EXPECT_EQ(decode_payload(*d, bytes).line,
            "2024-06-28T13:01:55.123Z\t2024-06-28T13:01:55.123456Z\t2024-06-28\t0001-01-01 BC\t12:34:56.789\t"
            "12:34:56.789012\t2024-06-28T13:01:55.123\t1969-12-31T23:59:59.999Z\t2024-06-28T13:01:55.000Z\t"
            "1970-01-01\n");
}

TEST(AvroDecoder, TimestampsAtTheEndsOfInt64DecodeWithoutOverflow) {
  // Found by fuzz_avro: a timestamp-micros of -2^63 overflowed while formatting its second
  // (UBSan). Every int64 now decodes to text, which PostgreSQL refuses as out of range (a dead
  // letter); millis past the microsecond range are a format_error here.
  const std::string schema = record_schema(R"(
    {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "local_us", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
    {"name": "ms", "type": {"type": "long", "logicalType": "timestamp-millis"}})");
  auto d = plain_avro(schema, {column("us", column_kind::timestamp), column("local_us", column_kind::timestamp),
                               column("ms", column_kind::timestamp)});
  const int64_t lowest = std::numeric_limits<int64_t>::min();
  const int64_t highest = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(
      decode_payload(*d, avro_bytes().long_value(lowest).long_value(highest).long_value(-(highest / 1000 - 1)).str())
          .line,
      "-290308-12-21T19:59:05.224192Z\t294247-01-10T04:00:54.775807\t-290308-12-21T19:59:05.226Z\n");
  EXPECT_THROW(decode_payload(*d, avro_bytes().long_value(0).long_value(0).long_value(lowest).str()), format_error);
}

TEST(AvroDecoder, Decimals) {
  const std::string schema = record_schema(R"(
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    {"name": "neg", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    {"name": "small", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 4}},
    {"name": "whole", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10}},
    {"name": "zero", "type": {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}},
    {"name": "huge", "type": {"type": "bytes", "logicalType": "decimal", "precision": 60, "scale": 10}},
    {"name": "huge_neg", "type": {"type": "bytes", "logicalType": "decimal", "precision": 60, "scale": 3}},
    {"name": "fx", "type": {"type": "fixed", "name": "money", "size": 4, "logicalType": "decimal",
                            "precision": 9, "scale": 3}},
    {"name": "fx2", "type": "money"},
    {"name": "min64", "type": {"type": "bytes", "logicalType": "decimal", "precision": 19}})");
  auto d = plain_avro(schema, {column("price"), column("neg"), column("small"), column("whole"), column("zero"),
                               column("huge"), column("huge_neg"), column("fx"), column("fx2"), column("min64")});
  // 2^160 = 1461501637330902918203684832716283019655932542976; minus that for huge_neg.
  std::string two_pow_160(21, '\0');
  two_pow_160[0] = '\x01';
  std::string minus_two_pow_160(21, '\0');
  minus_two_pow_160[0] = '\xff';
  const std::string bytes = avro_bytes()
                                .string_value("\x04\xd2")                          // 1234
                                .string_value("\xfb\x2e")                          // -1234
                                .string_value("\x05")                              // 5
                                .string_value(std::string("\x00\x00\x30\x39", 4))  // 12345, padded
                                .string_value("")                                  // no bytes: zero
                                .string_value(two_pow_160)
                                .string_value(minus_two_pow_160)
                                .raw(std::string("\xff\xff\xff\xfe", 4))  // -2
                                .raw(std::string("\x00\x01\xe2\x40", 4))  // 123456
                                .string_value(std::string("\x80\x00\x00\x00\x00\x00\x00\x00", 8))
                                .str();
  EXPECT_EQ(decode_payload(*d, bytes).line,
            "12.34\t-12.34\t0.0005\t12345\t0.00\t146150163733090291820368483271628301965.5932542976\t"
            "-1461501637330902918203684832716283019655932542.976\t-0.002\t123.456\t-9223372036854775808\n");
}

TEST(AvroDecoder, DecimalsOfAnyLength) {
  const std::string schema = record_schema(R"(
    {"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 5}})");
  auto d = plain_avro(schema, {column("d")});
  const auto decimal_of = [&](const std::string& unscaled) {
    return decode_payload(*d, avro_bytes().string_value(unscaled).str()).line;
  };
  EXPECT_EQ(decimal_of(std::string("\x80\x01\x02\x03\x04\x05\x06\x07\x08\x09", 10)), "-6044443180992082493.41943\n");
  EXPECT_EQ(decimal_of(std::string("\x00\xff\xff\xff\xff\xff\xff\xff\xff", 9)), "184467440737095.51615\n");
  EXPECT_EQ(decimal_of(std::string(12, '\xff')), "-0.00001\n");
  EXPECT_EQ(decimal_of(std::string(12, '\0')), "0.00000\n");
  EXPECT_EQ(decimal_of("\x7f"), "0.00127\n");
  EXPECT_EQ(decimal_of("\x80"), "-0.00128\n");
}

// The unscaled value 10^digits - 1 (all nines) in two's complement big-endian bytes.
std::string nines_unscaled(size_t digits, bool negative) {
  mpz_t value;
  mpz_init(value);
  mpz_ui_pow_ui(value, 10, digits);
  mpz_sub_ui(value, value, 1);
  if (negative) mpz_neg(value, value);
  // Room for the sign bit, then two's complement by hand: 2^(8 * size) + value.
  const size_t size = mpz_sizeinbase(value, 2) / 8 + 1;
  if (negative) {
    mpz_t power;
    mpz_init(power);
    mpz_setbit(power, size * 8);
    mpz_add(value, power, value);
    mpz_clear(power);
  }
  std::string bytes(size, '\0');
  size_t written = 0;
  mpz_export(bytes.data(), &written, 1, 1, 1, 0, value);
  mpz_clear(value);
  return std::string(size - written, '\0') + bytes.substr(0, written);
}

TEST(AvroDecoder, DecimalsOfHundredsOfKilobytesPrintInLinearishTime) {
  const std::string schema = record_schema(R"(
    {"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 3}})");
  auto d = plain_avro(schema, {column("d")});
  const size_t digits = 720000;  // about 300 kB of unscaled bytes
  for (const bool negative : {false, true}) {
    const std::string unscaled = nines_unscaled(digits, negative);
    ASSERT_GT(unscaled.size(), 290000U);
    const auto started = std::chrono::steady_clock::now();
    const std::string line = decode_payload(*d, avro_bytes().string_value(unscaled).str()).line;
    const auto took = std::chrono::steady_clock::now() - started;
    // Digit-by-digit long division took tens of seconds here; GMP takes milliseconds.
    EXPECT_LT(took, std::chrono::seconds(3));
    const std::string expected =
        std::string(negative ? "-" : "") + std::string(digits - 3, '9') + "." + std::string(3, '9') + "\n";
    EXPECT_EQ(line.size(), expected.size());
    EXPECT_TRUE(line == expected);
  }
}

TEST(AvroDecoder, MessagesPastMaxDecodedBytesAreFormatErrorsBeforeTheyGrow) {
  // The example: an array of empty decimals with scale 16383, each one 16 kB of text from one
  // byte. 70,000 of them once took 4.3 GB; now decoding stops at the limit.
  const std::string schema = record_schema(R"(
    {"name": "id", "type": "int"},
    {"name": "amounts", "type": {"type": "array", "items":
      {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 16383}}})");
  decoder_config config = avro_config(schema, {column("id"), column("amounts", column_kind::array)});
  config.max_decoded_bytes = 1 << 20;
  auto d = make_decoder(config);
  avro_bytes bomb;
  bomb.long_value(7).long_value(70000);
  for (int i = 0; i < 70000; ++i) bomb.string_value("");
  bomb.long_value(0);
  std::string line = "earlier\n";
  column_mask present;
  const auto started = std::chrono::steady_clock::now();
  const std::string error = error_of<format_error>([&] { (void)d->decode(message_with(bomb.str()), line, present); });
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
  EXPECT_TRUE(contains(error, "decodes to more than max_decoded_bytes (1048576 bytes")) << error;
  EXPECT_EQ(line, "earlier\n");
  // A few of them fit and decode exactly.
  avro_bytes few;
  few.long_value(8).long_value(2).string_value("").string_value("\x01").long_value(0);
  const std::string zero = "0." + std::string(16383, '0');
  const std::string tiny = "0." + std::string(16382, '0') + "1";
  EXPECT_EQ(decode_payload(*d, few.str()).line, "8\t{" + zero + "," + tiny + "}\n");

  // One decimal whose digits alone pass the limit is refused before it is printed.
  const std::string one_schema = record_schema(R"(
    {"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 0}})");
  decoder_config one_config = avro_config(one_schema, {column("d")});
  one_config.max_decoded_bytes = 100000;
  auto one = make_decoder(one_config);
  EXPECT_TRUE(contains(error_of<format_error>(
                           [&] { decode_payload(*one, avro_bytes().string_value(std::string(50000, '\x11')).str()); }),
                       "max_decoded_bytes (100000 bytes"));
  EXPECT_EQ(decode_payload(*one, avro_bytes().string_value(std::string(20000, '\x11')).str()).line.size(),
            48165U);  // 20,000 bytes of 0x11... print as 48,164 digits
  // Records and maps into JSON columns count too.
  const std::string map_schema = record_schema(R"(
    {"name": "m", "type": {"type": "map", "values": {"type": "bytes", "logicalType": "decimal", "precision": 9,
                                                      "scale": 16383}}})");
  decoder_config map_config = avro_config(map_schema, {column("m", column_kind::json)});
  map_config.max_decoded_bytes = 1 << 20;
  auto maps = make_decoder(map_config);
  avro_bytes map_bomb;
  map_bomb.long_value(1000);
  for (int i = 0; i < 1000; ++i) map_bomb.string_value(std::to_string(i)).string_value("");
  map_bomb.long_value(0);
  EXPECT_THROW(decode_payload(*maps, map_bomb.str()), format_error);
}

TEST(AvroDecoder, DefaultMaxDecodedBytesIs64MiB) {
  decoder_config config = avro_config(record_schema(R"({"name": "a", "type": "string"})"), {column("a")});
  EXPECT_EQ(config.max_decoded_bytes, size_t{64} << 20);
  EXPECT_EQ(make_decoder(config)->max_decoded_bytes(), size_t{64} << 20);
}

TEST(AvroDecoder, BytesAsByteaOrText) {
  const std::string schema = record_schema(R"(
    {"name": "blob", "type": "bytes"}, {"name": "text", "type": "bytes"},
    {"name": "fx", "type": {"type": "fixed", "name": "f2", "size": 2}}, {"name": "opt", "type": ["null", "bytes"]})");
  auto d = plain_avro(schema, {column("blob", column_kind::bytea), column("text"), column("fx", column_kind::bytea),
                               column("opt", column_kind::bytea)});
  const std::string bytes = avro_bytes()
                                .string_value(std::string("\x00\x10\xff", 3))
                                .string_value("a\tb")
                                .raw("\xab\xcd")
                                .long_value(1)
                                .string_value("")
                                .str();
  EXPECT_EQ(decode_payload(*d, bytes).line, "\\\\x0010ff\ta\\tb\t\\\\xabcd\t\\\\x\n");
}

TEST(AvroDecoder, FloatsKeepTheirShortestText) {
  const std::string schema = record_schema(R"(
    {"name": "f", "type": "float"}, {"name": "d", "type": "double"}, {"name": "inf", "type": "double"},
    {"name": "nan", "type": "float"})");
  auto d = plain_avro(schema, {column("f"), column("d"), column("inf"), column("nan")});
  const std::string bytes = avro_bytes()
                                .float_value(3.14f)
                                .double_value(1e-7)
                                .double_value(-std::numeric_limits<double>::infinity())
                                .float_value(std::numeric_limits<float>::quiet_NaN())
                                .str();
  EXPECT_EQ(decode_payload(*d, bytes).line, "3.14\t1e-07\t-Infinity\tNaN\n");
}

TEST(AvroDecoder, UnionsWithSeveralBranches) {
  const std::string schema = record_schema(R"({"name": "v", "type": ["null", "string", "long", "boolean"]})");
  auto d = plain_avro(schema, {column("v")});
  EXPECT_EQ(decode_payload(*d, avro_bytes().long_value(1).string_value("s").str()).line, "s\n");
  EXPECT_EQ(decode_payload(*d, avro_bytes().long_value(2).long_value(-5).str()).line, "-5\n");
  EXPECT_EQ(decode_payload(*d, avro_bytes().long_value(3).boolean(true).str()).line, "t\n");
  EXPECT_EQ(decode_payload(*d, avro_bytes().long_value(0).str()).line, "\\N\n");
}

TEST(AvroDecoder, SkipsUnboundFieldsOfEveryType) {
  const std::string schema = record_schema(R"(
    {"name": "a", "type": {"type": "map", "values": {"type": "array", "items": "string"}}},
    {"name": "b", "type": {"type": "fixed", "name": "f3", "size": 3}},
    {"name": "c", "type": ["null", {"type": "record", "name": "c", "fields": [{"name": "x", "type": "float"}]}]},
    {"name": "d", "type": {"type": "array", "items": "null"}},
    {"name": "e", "type": {"type": "enum", "name": "e", "symbols": ["X"]}},
    {"name": "last", "type": "string"})");
  auto d = plain_avro(schema, {column("last")});
  avro_bytes bytes;
  bytes.long_value(1).string_value("k").long_value(2).string_value("v1").string_value("v2").long_value(0).long_value(0);
  bytes.raw("abc").long_value(1).float_value(1.0f).long_value(3).long_value(0).long_value(0).string_value("end");
  EXPECT_EQ(decode_payload(*d, bytes.str()).line, "end\n");
  // The same map written with block byte sizes is skipped without looking inside.
  avro_bytes sized;
  avro_bytes block;
  block.string_value("k").long_value(1).string_value("v").long_value(0);
  sized.long_value(-1).long_value(static_cast<int64_t>(block.str().size())).raw(block.str()).long_value(0);
  sized.raw("abc").long_value(0).long_value(0).long_value(0).string_value("end2");
  EXPECT_EQ(decode_payload(*d, sized.str()).line, "end2\n");
}

TEST(AvroDecoder, RecursiveSchemas) {
  const std::string schema = R"({"type": "record", "name": "node", "fields": [
    {"name": "value", "type": "long"}, {"name": "next", "type": ["null", "node"]}]})";
  auto d = plain_avro(schema, {column("value"), column("second", column_kind::text, "next.value"),
                               column("rest", column_kind::json, "next")});
  const std::string bytes =
      avro_bytes().long_value(1).long_value(1).long_value(2).long_value(1).long_value(3).long_value(0).str();
  EXPECT_EQ(decode_payload(*d, bytes).line, "1\t2\t{\"value\":2,\"next\":{\"value\":3,\"next\":null}}\n");
}

TEST(AvroDecoder, SameFieldIntoSeveralColumns) {
  auto d =
      plain_avro(click_schema, {column("a", column_kind::timestamp, "event_time"),
                                column("b", column_kind::json, "event_time"), column("c", column_kind::text, "big")});
  EXPECT_EQ(decode_payload(*d, click_bytes(true).str()).line,
            "2024-06-28T13:01:55.123Z\t\"2024-06-28T13:01:55.123Z\"\t9007199254740993\n");
}

TEST(AvroDecoder, MalformedBytesAreFormatErrors) {
  auto d = plain_avro(click_schema, click_columns());
  const std::string good = click_bytes(true).str();
  // Every truncation fails cleanly.
  for (size_t length = 0; length < good.size(); ++length) {
    EXPECT_THROW(decode_payload(*d, good.substr(0, length)), format_error) << length;
  }
  const std::string trailing = error_of<format_error>([&] { decode_payload(*d, good + "x"); });
  EXPECT_TRUE(contains(trailing, "trailing bytes")) << trailing;
  // A string length far beyond the message.
  const std::string huge =
      error_of<format_error>([&] { decode_payload(*d, avro_bytes().long_value(int64_t{1} << 40).str()); });
  EXPECT_TRUE(contains(huge, "byte offset")) << huge;
  EXPECT_THROW(decode_payload(*d, avro_bytes().long_value(-3).str()), format_error);
  // Bad union branch and enum index.
  avro_bytes bad_branch;
  bad_branch.string_value("c").string_value("u").long_value(2);
  EXPECT_TRUE(contains(error_of<format_error>([&] { decode_payload(*d, bad_branch.str()); }), "union branch 2"));
  avro_bytes bad_enum;
  bad_enum.string_value("c").string_value("u").long_value(0).long_value(1).long_value(2).double_value(1).float_value(1);
  bad_enum.boolean(true).long_value(7).long_value(0);
  EXPECT_TRUE(contains(error_of<format_error>([&] { decode_payload(*d, bad_enum.str()); }), "enum index 7"));
  // Overlong varint, int out of 32-bit range, boolean byte 2.
  EXPECT_THROW(decode_payload(*d, std::string(11, '\xff')), format_error);
  avro_bytes wide_int;
  wide_int.string_value("c").string_value("u").long_value(0).long_value(int64_t{1} << 33);
  EXPECT_TRUE(contains(error_of<format_error>([&] { decode_payload(*d, wide_int.str()); }), "exceeds 32 bits"));
  avro_bytes bad_bool;
  bad_bool.string_value("c").string_value("u").long_value(0).long_value(1).long_value(2).double_value(1).float_value(1);
  bad_bool.raw("\x02");
  EXPECT_THROW(decode_payload(*d, bad_bool.str()), format_error);
}

TEST(AvroDecoder, HugeCountsAreBoundedByTheData) {
  const std::string schema = record_schema(R"(
    {"name": "nulls", "type": {"type": "array", "items": "null"}},
    {"name": "strings", "type": {"type": "array", "items": "string"}})");
  auto d = plain_avro(schema, {column("nulls", column_kind::array), column("strings", column_kind::array)});
  // A billion nulls would take no bytes at all: the per-message budget stops it.
  EXPECT_THROW(decode_payload(*d, avro_bytes().long_value(1000000000).long_value(0).long_value(0).str()), format_error);
  EXPECT_THROW(decode_payload(*d, avro_bytes().long_value(0).long_value(1000000).str()), format_error);
  // A handful of nulls is fine.
  EXPECT_EQ(decode_payload(*d, avro_bytes().long_value(3).long_value(0).long_value(0).str()).line,
            "{NULL,NULL,NULL}\t{}\n");
}

TEST(AvroDecoder, DeepRecursionIsRejected) {
  const std::string schema = R"({"type": "record", "name": "node", "fields": [
    {"name": "next", "type": ["null", "node"]}]})";
  auto d = plain_avro(schema, {column("next", column_kind::json)});
  avro_bytes bytes;
  for (int i = 0; i < 1000; ++i) bytes.long_value(1);
  bytes.long_value(0);
  EXPECT_THROW(decode_payload(*d, bytes.str()), format_error);
}

TEST(AvroDecoder, TombstoneIsAFormatError) {
  auto d = plain_avro(click_schema, click_columns());
  message_view tombstone = message_with("");
  tombstone.payload.reset();
  EXPECT_THROW(decode_one(*d, tombstone), format_error);
}

TEST(AvroDecoder, MetadataColumns) {
  auto d = plain_avro(
      click_schema, {column("user_id"), metadata_column("k", metadata_field::key),
                     metadata_column("off", metadata_field::offset), metadata_column("ts", metadata_field::timestamp)});
  message_view message = message_with(click_bytes(true).str());
  message.key = "user-27";
  const std::string payload = click_bytes(true).str();
  message.payload = payload;
  EXPECT_EQ(decode_one(*d, message).line, "user\\t27\tuser-27\t1234\t2024-06-28T13:01:55.123Z\n");
}

TEST(AvroDecoder, BadConfigurationsAreRejected) {
  EXPECT_THROW(plain_avro("{not json", {column("a")}), std::invalid_argument);
  EXPECT_THROW(plain_avro(R"("string")", {column("a")}), std::invalid_argument);
  decoder_config neither = config_for(wire_format::avro, {column("a")});
  EXPECT_THROW(make_decoder(neither), std::invalid_argument);
  decoder_config both = avro_config(click_schema, {column("a")});
  both.schema_registry_url = "http://127.0.0.1:1";
  EXPECT_THROW(make_decoder(both), std::invalid_argument);
}

// --- Confluent framing with a schema fetcher ---------------------------------------------------------

struct counting_fetcher {
  std::map<int32_t, std::string> schemas;
  std::map<int32_t, int> calls;
  bool down = false;

  schema_fetcher function() {
    return [this](int32_t id) -> std::string {
      ++calls[id];
      if (down) throw transient_error("registry down");
      const auto found = schemas.find(id);
      if (found == schemas.end()) throw transient_error("schema id " + std::to_string(id) + " not found");
      return found->second;
    };
  }
};

TEST(AvroDecoder, ConfluentFramingFetchesEachSchemaOnce) {
  counting_fetcher registry;
  registry.schemas[7] = click_schema;
  registry.schemas[8] =
      record_schema(R"({"name": "user_id", "type": "string"}, {"name": "campaign", "type": "string"})");
  auto d = make_decoder(config_for(wire_format::avro, {column("user_id"), column("campaign")}), registry.function());
  for (int i = 0; i < 3; ++i) {
    const decoded out = decode_payload(*d, confluent::frame(7, click_bytes(true).str()));
    EXPECT_EQ(out.line, "user\\t27\n");
    EXPECT_EQ(out.present, mask({1, 0}));
    const decoded newer =
        decode_payload(*d, confluent::frame(8, avro_bytes().string_value("u2").string_value("spring").str()));
    EXPECT_EQ(newer.line, "u2\tspring\n");
    EXPECT_EQ(newer.present, mask({1, 1}));
  }
  EXPECT_EQ(registry.calls[7], 1);
  EXPECT_EQ(registry.calls[8], 1);
}

TEST(AvroDecoder, BadFramingIsAFormatError) {
  counting_fetcher registry;
  registry.schemas[7] = click_schema;
  auto d = make_decoder(config_for(wire_format::avro, {column("user_id")}), registry.function());
  EXPECT_THROW(decode_payload(*d, "\x01\x00\x00\x00\x07rest"), format_error);
  EXPECT_THROW(decode_payload(*d, std::string("\x00\x00\x00", 3)), format_error);
  EXPECT_THROW(decode_payload(*d, R"({"user_id": "json on an avro topic"})"), format_error);
  EXPECT_TRUE(registry.calls.empty());
}

TEST(AvroDecoder, RegistryOutagesAreTransientAndRetried) {
  counting_fetcher registry;
  registry.down = true;
  auto d = make_decoder(config_for(wire_format::avro, {column("user_id")}), registry.function());
  const std::string message = confluent::frame(7, click_bytes(true).str());
  std::string line = "earlier\n";
  column_mask present;
  EXPECT_THROW((void)d->decode(message_with(message), line, present), transient_error);
  EXPECT_THROW((void)d->decode(message_with(message), line, present), transient_error);
  EXPECT_EQ(line, "earlier\n");
  // An id the registry does not know yet is transient too, and not cached as a failure.
  registry.down = false;
  EXPECT_THROW((void)d->decode(message_with(message), line, present), transient_error);
  registry.schemas[7] = click_schema;
  EXPECT_TRUE(d->decode(message_with(message), line, present));
  EXPECT_EQ(line, "earlier\nuser\\t27\n");
  EXPECT_EQ(registry.calls[7], 4);
}

TEST(AvroDecoder, UnusableRegistrySchemaIsAFormatErrorFetchedOnce) {
  counting_fetcher registry;
  registry.schemas[9] = R"({"type": "protobuf-ish"})";
  auto d = make_decoder(config_for(wire_format::avro, {column("user_id")}), registry.function());
  const std::string message = confluent::frame(9, "x");
  const std::string error = error_of<format_error>([&] { decode_payload(*d, message); });
  EXPECT_TRUE(contains(error, "schema id 9 is not a usable Avro schema")) << error;
  EXPECT_THROW(decode_payload(*d, message), format_error);
  EXPECT_EQ(registry.calls[9], 1);
}

// --- written by avro-c, read by us ---------------------------------------------------------------------

TEST(AvroDecoder, ReadsWhatAvroCWrites) {
  const std::string schema_json = record_schema(R"(
    {"name": "id", "type": "string"},
    {"name": "inner", "type": {"type": "record", "name": "inner", "fields": [
      {"name": "n", "type": "int"}, {"name": "tags", "type": {"type": "array", "items": "string"}}]}},
    {"name": "attrs", "type": {"type": "map", "values": "double"}},
    {"name": "maybe", "type": ["null", "long"]},
    {"name": "color", "type": {"type": "enum", "name": "color", "symbols": ["red", "green"]}},
    {"name": "blob", "type": "bytes"},
    {"name": "fx", "type": {"type": "fixed", "name": "fx", "size": 2}})");
  const avro_schema schema = avro_schema::from_json(schema_json);
  avro_generic_value value(schema);
  avro_value_t& root = value.get();
  avro_value_t field;
  avro_value_t element;
  ASSERT_EQ(avro_value_get_by_name(&root, "id", &field, nullptr), 0);
  set_avro_string(field, "id\t1");
  avro_value_t inner;
  ASSERT_EQ(avro_value_get_by_name(&root, "inner", &inner, nullptr), 0);
  ASSERT_EQ(avro_value_get_by_name(&inner, "n", &field, nullptr), 0);
  ASSERT_EQ(avro_value_set_int(&field, -7), 0);
  ASSERT_EQ(avro_value_get_by_name(&inner, "tags", &field, nullptr), 0);
  for (const char* tag : {"x", "y z"}) {
    ASSERT_EQ(avro_value_append(&field, &element, nullptr), 0);
    set_avro_string(element, tag);
  }
  ASSERT_EQ(avro_value_get_by_name(&root, "attrs", &field, nullptr), 0);
  ASSERT_EQ(avro_value_add(&field, "w", &element, nullptr, nullptr), 0);
  ASSERT_EQ(avro_value_set_double(&element, 0.5), 0);
  ASSERT_EQ(avro_value_get_by_name(&root, "maybe", &field, nullptr), 0);
  element = set_avro_branch(field, 1);
  ASSERT_EQ(avro_value_set_long(&element, 1LL << 40), 0);
  ASSERT_EQ(avro_value_get_by_name(&root, "color", &field, nullptr), 0);
  ASSERT_EQ(avro_value_set_enum(&field, 1), 0);
  ASSERT_EQ(avro_value_get_by_name(&root, "blob", &field, nullptr), 0);
  char blob[] = {'\x00', '\x7f'};
  ASSERT_EQ(avro_value_set_bytes(&field, blob, sizeof blob), 0);
  ASSERT_EQ(avro_value_get_by_name(&root, "fx", &field, nullptr), 0);
  char fixed[] = {'\x12', '\x34'};
  ASSERT_EQ(avro_value_set_fixed(&field, fixed, sizeof fixed), 0);
  avro_value_serializer serializer;
  const std::string framed = [&] {
    std::string out;
    serializer.append_framed(out, 3, root);
    return out;
  }();

  counting_fetcher registry;
  registry.schemas[3] = schema_json;
  auto d =
      make_decoder(config_for(wire_format::avro,
                              {column("id"), column("n", column_kind::text, "inner.n"),
                               column("tags", column_kind::array, "inner.tags"), column("attrs", column_kind::json),
                               column("maybe"), column("color"), column("blob", column_kind::bytea),
                               column("fx", column_kind::bytea), column("inner", column_kind::json)}),
                   registry.function());
  EXPECT_EQ(decode_payload(*d, framed).line,
            "id\\t1\t-7\t{x,\"y z\"}\t{\"w\":0.5}\t1099511627776\tgreen\t\\\\x007f\t\\\\x1234\t"
            "{\"n\":-7,\"tags\":[\"x\",\"y z\"]}\n");
}

// --- a real registry over HTTP (through make_decoder's schema_registry_client) -----------------------

// Serves GET /schemas/ids/<id> from a map on a loopback port, one request per connection.
class tiny_registry {
 public:
  explicit tiny_registry(std::map<int32_t, std::string> schemas, int status_for_unknown = 404,
                         std::string body_for_unknown = R"({"error_code": 40403, "message": "Schema not found"})")
      : schemas_(std::move(schemas)),
        status_for_unknown_(status_for_unknown),
        body_for_unknown_(std::move(body_for_unknown)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(fd_, 8) != 0) {
      throw std::runtime_error("cannot listen on loopback");
    }
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~tiny_registry() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_.load(); }

 private:
  void serve() {
    while (true) {
      const int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      std::string request;
      char buffer[1024];
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t got = ::recv(client, buffer, sizeof buffer, 0);
        if (got <= 0) break;
        request.append(buffer, static_cast<size_t>(got));
      }
      ++requests_;
      int status = status_for_unknown_;
      std::string body = body_for_unknown_;
      const std::string prefix = "GET /schemas/ids/";
      if (request.compare(0, prefix.size(), prefix) == 0) {
        const int32_t id = std::atoi(request.c_str() + prefix.size());
        const auto found = schemas_.find(id);
        if (found != schemas_.end()) {
          status = 200;
          body = "{\"schema\":";
          append_json_string(body, found->second);
          body += "}";
        }
      }
      const std::string response = "HTTP/1.1 " + std::to_string(status) +
                                   " X\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: " +
                                   std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      (void)::send(client, response.data(), response.size(), MSG_NOSIGNAL);
      ::close(client);
    }
  }

  std::map<int32_t, std::string> schemas_;
  int status_for_unknown_;
  std::string body_for_unknown_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

TEST(AvroDecoder, RealRegistryClient) {
  tiny_registry registry({{21, click_schema}});
  decoder_config config = config_for(wire_format::avro, {column("user_id"), column("kind")});
  config.schema_registry_url = registry.url();
  auto d = make_decoder(config);
  const std::string message = confluent::frame(21, click_bytes(true).str());
  EXPECT_EQ(decode_payload(*d, message).line, "user\\t27\tadd_to_cart\n");
  EXPECT_EQ(decode_payload(*d, message).line, "user\\t27\tadd_to_cart\n");
  EXPECT_EQ(registry.requests(), 1);
}

TEST(AvroDecoder, SchemaIdsTheRegistryDoesNotKnowAreTheMessagesFault) {
  tiny_registry registry({{21, click_schema}});
  decoder_config config = config_for(wire_format::avro, {column("user_id"), column("kind")});
  config.schema_registry_url = registry.url();
  auto d = make_decoder(config);
  // The registry answers 404: the message names an id that does not exist there.
  std::string line = "earlier\n";
  column_mask present;
  const std::string error =
      error_of<format_error>([&] { (void)d->decode(message_with(confluent::frame(22, "x")), line, present); });
  EXPECT_EQ(error, "schema id 22 is not known to the schema registry (HTTP 404, error_code 40403)");
  EXPECT_EQ(line, "earlier\n");
  EXPECT_EQ(registry.requests(), 1);
  // A run of messages naming it costs no further request while it is remembered.
  EXPECT_EQ(error_of<format_error>([&] { decode_payload(*d, confluent::frame(22, "y")); }), error);
  EXPECT_EQ(registry.requests(), 1);
  // A negative id is refused without asking.
  EXPECT_EQ(error_of<format_error>([&] { decode_payload(*d, std::string("\x00\xff\xff\xff\xfe", 5) + "x"); }),
            "schema id -2 is negative: no schema registry assigns such an id");
  EXPECT_EQ(registry.requests(), 1);
  // Known ids still decode.
  EXPECT_EQ(decode_payload(*d, confluent::frame(21, click_bytes(true).str())).line, "user\\t27\tadd_to_cart\n");
}

TEST(AvroDecoder, NotFoundFromSomethingElseThanARegistryIsTransient) {
  // A URL with a wrong path or host answers 404 for every id: only the registry's own "schema
  // not found" (error_code 40403) is the message's fault; anything else would dead-letter
  // every message of the topic.
  decoder_config config = config_for(wire_format::avro, {column("user_id")});
  tiny_registry web_server({}, 404, "<html><body>Not Found</body></html>");
  config.schema_registry_url = web_server.url();
  auto d = make_decoder(config);
  EXPECT_THROW(decode_payload(*d, confluent::frame(1, "x")), transient_error);
  EXPECT_THROW(decode_payload(*d, confluent::frame(1, "x")), transient_error);
  EXPECT_EQ(web_server.requests(), 2);  // not remembered as unknown: asked again each time
  // A registry-shaped answer for an unknown path (not the id lookup's "schema not found").
  tiny_registry wrong_path({}, 404, R"({"error_code": 404, "message": "HTTP 404 Not Found"})");
  config.schema_registry_url = wrong_path.url();
  auto d2 = make_decoder(config);
  EXPECT_THROW(decode_payload(*d2, confluent::frame(1, "x")), transient_error);
}

TEST(AvroDecoder, RegistryServerErrorsAndRefusedConnectionsAreTransient) {
  tiny_registry failing({}, 503);
  decoder_config config = config_for(wire_format::avro, {column("user_id")});
  config.schema_registry_url = failing.url();
  auto d = make_decoder(config);
  EXPECT_THROW(decode_payload(*d, confluent::frame(1, "x")), transient_error);
  EXPECT_THROW(decode_payload(*d, confluent::frame(1, "x")), transient_error);
  EXPECT_EQ(failing.requests(), 2);  // a failing registry is asked again each time
  // A registry that refuses our credentials is not the message's fault either.
  tiny_registry refusing({}, 401);
  config.schema_registry_url = refusing.url();
  auto unauthorized = make_decoder(config);
  EXPECT_THROW(decode_payload(*unauthorized, confluent::frame(1, "x")), transient_error);

  // A port nobody listens on.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  config.schema_registry_url = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  auto refused = make_decoder(config);
  EXPECT_THROW(decode_payload(*refused, confluent::frame(1, "x")), transient_error);
}

}  // namespace
}  // namespace streamrec
