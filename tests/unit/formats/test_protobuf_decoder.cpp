// Protobuf decoder: plain messages with an inline .proto, Confluent framing with registry schemas
// (imports, nested types, message-index lists), every mapping (scalars, enums, repeated, nested,
// maps, Timestamp, wrappers, proto3 defaults and presence), and malformed bytes (format_error,
// never a crash or an abort).
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "tests/unit/formats/decoder_test_support.h"
#include "core/formats/decoder.h"
#include "core/formats/protobuf_sample.h"
#include "core/formats/sink_encoder.h"

namespace streamrec {
namespace {

using namespace testing_support;

// The Protobuf wire format written by hand, so each test states its exact bytes.
class pb_bytes {
 public:
  pb_bytes& varint(uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<char>(value | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<char>(value));
    return *this;
  }
  pb_bytes& tag(uint32_t field, int wire) { return varint(uint64_t{field} << 3 | static_cast<uint32_t>(wire)); }
  pb_bytes& int_field(uint32_t field, int64_t value) { return tag(field, 0).varint(static_cast<uint64_t>(value)); }
  pb_bytes& sint_field(uint32_t field, int64_t value) {
    return tag(field, 0).varint((static_cast<uint64_t>(value) << 1) ^ static_cast<uint64_t>(value >> 63));
  }
  pb_bytes& bytes_field(uint32_t field, std::string_view bytes) {
    tag(field, 2).varint(bytes.size());
    out_.append(bytes);
    return *this;
  }
  pb_bytes& double_field(uint32_t field, double value) {
    uint64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    tag(field, 1);
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>(bits >> (8 * i)));
    return *this;
  }
  pb_bytes& float_field(uint32_t field, float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    tag(field, 5);
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>(bits >> (8 * i)));
    return *this;
  }
  pb_bytes& raw(std::string_view bytes) {
    out_.append(bytes);
    return *this;
  }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

std::string framed(int32_t schema_id, std::string_view indexes, std::string_view payload) {
  std::string out(1, '\0');
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(schema_id >> shift));
  out.append(indexes);
  out.append(payload);
  return out;
}

constexpr const char* click_proto = R"(
syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Kind { KIND_UNKNOWN = 0; VIEW = 1; BUY = 2; }

message Click {
  int64 user_id = 1;
  string page = 2;
  Kind kind = 3;
  repeated int32 tags = 4;
  Device device = 5;
  google.protobuf.Timestamp at = 6;
  google.protobuf.Int64Value referrer = 7;
  optional double price = 8;
  bool mobile = 9;
  bytes token = 10;
  map<string, int32> counts = 11;
  repeated string labels = 12;
  sint64 delta = 13;
  message Device { string os = 1; int32 version = 2; Screen screen = 3; }
}
message Screen { int32 width = 1; int32 height = 2; }
)";

decoder_config inline_config(std::vector<column_binding> columns, std::string message = "shop.Click") {
  decoder_config config = config_for(wire_format::protobuf, std::move(columns));
  config.inline_schema = click_proto;
  config.proto_message = std::move(message);
  return config;
}

TEST(ProtobufDecoder, ScalarsEnumsRepeatedAndDefaults) {
  auto d = make_decoder(
      inline_config({column("user_id"), column("page"), column("kind"), column("tags", column_kind::array),
                     column("mobile", column_kind::boolean), column("delta"), column("labels", column_kind::array)}));
  pb_bytes packed;
  packed.varint(1).varint(300).varint(static_cast<uint64_t>(-2));
  const std::string payload = pb_bytes()
                                  .int_field(1, 42)
                                  .bytes_field(2, "/home\tx")
                                  .int_field(3, 2)
                                  .bytes_field(4, packed.str())
                                  .int_field(4, 7)  // unpacked after packed: appended
                                  .int_field(9, 1)
                                  .sint_field(13, -5)
                                  .bytes_field(12, "a b")
                                  .bytes_field(12, "")
                                  .str();
  const decoded out = decode_payload(*d, payload);
  EXPECT_EQ(out.line, "42\t/home\\tx\tBUY\t{1,300,-2,7}\tt\t-5\t{\"a b\",\"\"}\n");
  EXPECT_EQ(out.present, mask({1, 1, 1, 1, 1, 1, 1}));

  // proto3 plain fields absent: their defaults; a repeated field: an empty array.
  const decoded empty = decode_payload(*d, "");
  EXPECT_EQ(empty.line, "0\t\tKIND_UNKNOWN\t{}\tf\t0\t{}\n");
}

TEST(ProtobufDecoder, PresenceTimestampWrappersAndNested) {
  auto d = make_decoder(
      inline_config({column("price"), column("at", column_kind::timestamp), column("referrer"),
                     column("os", column_kind::text, "device.os"),
                     column("width", column_kind::text, "device.screen.width"), column("device", column_kind::json),
                     column("counts", column_kind::json), column("token", column_kind::bytea), column("missing")}));
  const std::string device =
      pb_bytes().bytes_field(1, "linux").bytes_field(3, pb_bytes().int_field(1, 1920).str()).str();
  const std::string at = pb_bytes().int_field(1, 1719579715).int_field(2, 123456789).str();
  const std::string entry = pb_bytes().bytes_field(1, "x").int_field(2, 3).str();
  const std::string payload = pb_bytes()
                                  .double_field(8, 9.5)
                                  .bytes_field(6, at)
                                  .bytes_field(7, pb_bytes().int_field(1, 77).str())
                                  .bytes_field(5, device)
                                  .bytes_field(11, entry)
                                  .bytes_field(10, std::string("\x01\xff", 2))
                                  .str();
  const decoded out = decode_payload(*d, payload);
  EXPECT_EQ(out.line,
            "9.5\t2024-06-28T13:01:55.123456Z\t77\tlinux\t1920\t"
            "{\"os\":\"linux\",\"version\":0,\"screen\":{\"width\":1920,\"height\":0}}\t{\"x\":3}\t\\\\x01ff\n");
  // The column the schema lacks is left out (its DEFAULT applies).
  EXPECT_EQ(out.present, mask({1, 1, 1, 1, 1, 1, 1, 1, 0}));

  // Absent: optional and message fields default, Timestamp and wrapper are NULL.
  const decoded empty = decode_payload(*d, "");
  EXPECT_EQ(empty.line, "\\N\t\\N\t{}\t\\\\x\n");
  EXPECT_EQ(empty.present, mask({0, 1, 1, 0, 0, 0, 1, 1, 0}));

  // A wrapper present without its value field holds the default; merged message occurrences.
  const std::string merged = pb_bytes()
                                 .bytes_field(7, "")
                                 .bytes_field(5, pb_bytes().bytes_field(1, "a").str())
                                 .bytes_field(5, pb_bytes().int_field(2, 9).str())
                                 .str();
  const decoded m = decode_payload(*d, merged);
  EXPECT_EQ(m.line, "\\N\t0\ta\t{\"os\":\"a\",\"version\":9}\t{}\t\\\\x\n");
}

TEST(ProtobufDecoder, EnumNumbersAndLastValueWins) {
  auto d = make_decoder(inline_config({column("kind"), column("page")}));
  const decoded out = decode_payload(*d, pb_bytes().int_field(3, 9).bytes_field(2, "a").bytes_field(2, "b").str());
  EXPECT_EQ(out.line, "9\tb\n");
}

TEST(ProtobufDecoder, UnknownFieldsAreSkipped) {
  auto d = make_decoder(inline_config({column("user_id")}));
  const std::string payload = pb_bytes()
                                  .int_field(100, 5)
                                  .bytes_field(5000, "zzz")
                                  .double_field(101, 1.0)
                                  .float_field(102, 1.0f)
                                  .tag(103, 3)
                                  .int_field(1, 8)
                                  .tag(103, 4)
                                  .int_field(1, 9)
                                  .str();
  EXPECT_EQ(decode_payload(*d, payload).line, "9\n");
}

TEST(ProtobufDecoder, SimpleMessageNameAndFirstMessage) {
  auto by_simple = make_decoder(inline_config({column("width")}, "Screen"));
  EXPECT_EQ(decode_payload(*by_simple, pb_bytes().int_field(1, 5).str()).line, "5\n");
  auto first = make_decoder(inline_config({column("user_id")}, ""));
  EXPECT_EQ(decode_payload(*first, pb_bytes().int_field(1, 5).str()).line, "5\n");
  EXPECT_THROW(make_decoder(inline_config({column("x")}, "shop.Nope")), std::invalid_argument);
  decoder_config bad = inline_config({column("x")});
  bad.inline_schema = "message { oops";
  EXPECT_THROW(make_decoder(bad), std::invalid_argument);
  bad.inline_schema = "syntax = \"proto3\"; import \"other.proto\"; message A { int32 x = 1; }";
  EXPECT_THROW(make_decoder(bad), std::invalid_argument);
}

TEST(ProtobufDecoder, RepeatedMessagesTimestampsAndWrappersAsArrays) {
  decoder_config config = config_for(
      wire_format::protobuf, {column("points", column_kind::array), column("times", column_kind::array),
                              column("ids", column_kind::array), column("points_json", column_kind::json, "points")});
  config.inline_schema = R"(
    syntax = "proto3";
    import "google/protobuf/timestamp.proto";
    import "google/protobuf/wrappers.proto";
    message P { int32 x = 1; }
    message M { repeated P points = 1; repeated google.protobuf.Timestamp times = 2; repeated google.protobuf.StringValue ids = 3; }
  )";
  config.proto_message = "M";
  auto d = make_decoder(config);
  const std::string payload = pb_bytes()
                                  .bytes_field(1, pb_bytes().int_field(1, 1).str())
                                  .bytes_field(1, "")
                                  .bytes_field(2, pb_bytes().int_field(1, 0).str())
                                  .bytes_field(3, pb_bytes().bytes_field(1, "a,b").str())
                                  .str();
  EXPECT_EQ(decode_payload(*d, payload).line,
            "{\"{\\\\\"x\\\\\":1}\",\"{\\\\\"x\\\\\":0}\"}\t{1970-01-01T00:00:00.000Z}\t{\"a,b\"}\t"
            "[{\"x\":1},{\"x\":0}]\n");
}

// --- Confluent framing through a fake registry ----------------------------------------------------

constexpr const char* common_proto = R"(
syntax = "proto3";
package common;
message Money { string currency = 1; int64 units = 2; }
)";
constexpr const char* order_proto = R"(
syntax = "proto3";
package shop;
import "common/money.proto";
message Header { string source = 1; }
message Order {
  int64 id = 1;
  common.Money total = 2;
  Line line = 3;
  message Line { string sku = 1; message Detail { int32 qty = 1; } Detail detail = 2; }
}
)";

protobuf_schema_fetcher fake_registry(int* fetches = nullptr) {
  return [fetches](int32_t id) -> protobuf_schema_files {
    if (fetches != nullptr) ++*fetches;
    if (id == 7) return protobuf_schema_files{order_proto, {{"common/money.proto", common_proto}}};
    if (id == 8) return protobuf_schema_files{"syntax = \"proto3\"; message X { int32 x = 1 }", {}};  // no ';'
    throw format_error("schema id " + std::to_string(id) + " is not known to the schema registry");
  };
}

decoder_config registry_config(std::vector<column_binding> columns) {
  return config_for(wire_format::protobuf, std::move(columns));
}

TEST(ProtobufDecoder, ConfluentFramingWithImportsAndNestedTypes) {
  int fetches = 0;
  auto d = make_protobuf_decoder(
      registry_config({column("id"), column("currency", column_kind::text, "total.currency"),
                       column("units", column_kind::text, "total.units"), column("sku", column_kind::text, "line.sku"),
                       column("qty"), column("source")}),
      fake_registry(&fetches));
  const std::string order = pb_bytes()
                                .int_field(1, 1001)
                                .bytes_field(2, pb_bytes().bytes_field(1, "EUR").int_field(2, 12).str())
                                .bytes_field(3, pb_bytes().bytes_field(1, "A-1").str())
                                .str();
  // Message index [1] (Order, the second top-level type): count 1, index 1, both zig-zag.
  const decoded out = decode_payload(*d, framed(7, std::string("\x02\x02", 2), order));
  EXPECT_EQ(out.line, "1001\tEUR\t12\tA-1\n");
  EXPECT_EQ(out.present, mask({1, 1, 1, 1, 0, 0}));

  // [0] as the single 0 byte: Header.
  EXPECT_EQ(decode_payload(*d, framed(7, std::string("\x00", 1), pb_bytes().bytes_field(1, "web").str())).line,
            "web\n");
  // [0] spelled out as count 1, index 0.
  EXPECT_EQ(decode_payload(*d, framed(7, std::string("\x02\x00", 2), pb_bytes().bytes_field(1, "app").str())).line,
            "app\n");
  // [1, 0, 0]: Order.Line.Detail.
  auto detail = make_protobuf_decoder(registry_config({column("qty")}), fake_registry());
  EXPECT_EQ(
      decode_payload(*detail, framed(7, std::string("\x06\x02\x00\x00", 4), pb_bytes().int_field(1, 4).str())).line,
      "4\n");
  EXPECT_EQ(fetches, 1);  // one fetch per id
}

TEST(ProtobufDecoder, RegistryFailuresAreFormatErrors) {
  auto d = make_protobuf_decoder(registry_config({column("id")}), fake_registry());
  const std::string body = pb_bytes().int_field(1, 1).str();
  EXPECT_NE(
      error_of<format_error>([&] { decode_payload(*d, framed(99, std::string(1, '\0'), body)); }).find("not known"),
      std::string::npos);
  EXPECT_NE(
      error_of<format_error>([&] { decode_payload(*d, framed(8, std::string(1, '\0'), body)); }).find("not a usable"),
      std::string::npos);
  EXPECT_NE(
      error_of<format_error>([&] { decode_payload(*d, framed(-1, std::string(1, '\0'), body)); }).find("negative"),
      std::string::npos);
}

TEST(ProtobufDecoder, MalformedBytesAreFormatErrors) {
  auto framed_decoder = make_protobuf_decoder(
      registry_config({column("id"), column("sku", column_kind::text, "line.sku")}), fake_registry());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"no header", "\x01"},
      {"wrong magic", std::string("\x05\x00\x00\x00\x07\x00", 6)},
      {"index list truncated", framed(7, "\x04\x02", "")},
      {"index out of range", framed(7, std::string("\x02\x08", 2), "")},
      {"negative index", framed(7, std::string("\x02\x01", 2), "")},
      {"negative count", framed(7, std::string("\x01", 1), "")},
      {"huge count", framed(7, std::string("\xfe\x7f", 2), "")},
      {"truncated varint", framed(7, std::string("\x02\x02", 2), std::string("\x08\xff", 2))},
      {"varint overflow",
       framed(7, std::string("\x02\x02", 2), std::string("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11))},
      {"length past end", framed(7, std::string("\x02\x02", 2), std::string("\x1a\x10\x0a", 3))},
      {"wrong wire type", framed(7, std::string("\x02\x02", 2), std::string("\x0d\x01\x02\x03\x04", 5))},
      {"wire type 7", framed(7, std::string("\x02\x02", 2), std::string("\x0f", 1))},
      {"field number 0", framed(7, std::string("\x02\x02", 2), std::string("\x00\x01", 2))},
      {"stray end group", framed(7, std::string("\x02\x02", 2), std::string("\x7c", 1))},
      {"unclosed group", framed(7, std::string("\x02\x02", 2), std::string("\x7b\x08\x01", 3))},
      {"bad nested", framed(7, std::string("\x02\x02", 2), std::string("\x1a\x02\x0a\x05", 4))},
  };
  for (const auto& [name, bytes] : cases) {
    std::string line = "kept";
    column_mask present;
    EXPECT_THROW((void)framed_decoder->decode(message_with(bytes), line, present), format_error) << name;
    EXPECT_EQ(line, "kept") << name;
  }
  message_view tombstone = message_with("");
  tombstone.payload.reset();
  std::string line;
  column_mask present;
  EXPECT_THROW((void)framed_decoder->decode(tombstone, line, present), format_error);
}

TEST(ProtobufDecoder, DepthAndSizeAreBounded) {
  decoder_config config = config_for(wire_format::protobuf, {column("next", column_kind::json)});
  config.inline_schema = "syntax = \"proto3\"; message R { R next = 1; repeated int32 v = 2; }";
  auto d = make_decoder(config);
  std::string nested;
  for (int i = 0; i < 200; ++i) nested = pb_bytes().bytes_field(1, nested).str();
  EXPECT_NE(error_of<format_error>([&] { decode_payload(*d, nested); }).find("nested deeper"), std::string::npos);

  decoder_config small = config_for(wire_format::protobuf, {column("v", column_kind::array)});
  small.inline_schema = config.inline_schema;
  small.max_decoded_bytes = 1000;
  auto bounded = make_decoder(small);
  std::string packed(5000, '\x01');
  EXPECT_NE(error_of<format_error>([&] {
              decode_payload(*bounded, pb_bytes().bytes_field(2, packed).str());
            }).find("max_decoded_bytes"),
            std::string::npos);
}

TEST(ProtobufDecoder, TimestampOutOfRangeAndIntegerTimestamps) {
  auto d =
      make_decoder(inline_config({column("at", column_kind::timestamp), column("user_id", column_kind::timestamp)}));
  EXPECT_EQ(decode_payload(*d, pb_bytes().int_field(1, 1719579715123).str()).line, "\\N\t2024-06-28T13:01:55.123Z\n");
  const std::string bad = pb_bytes().bytes_field(6, pb_bytes().int_field(1, int64_t{1} << 40).str()).str();
  EXPECT_THROW(decode_payload(*d, bad), format_error);
  const std::string bad_nanos = pb_bytes().bytes_field(6, pb_bytes().int_field(2, -1).str()).str();
  EXPECT_THROW(decode_payload(*d, bad_nanos), format_error);
}

// Every prefix and every single-byte corruption of a valid message: decodes or throws format_error.
TEST(ProtobufDecoder, CorruptionsNeverCrash) {
  auto d =
      make_decoder(inline_config({column("user_id"), column("page"), column("tags", column_kind::array),
                                  column("device", column_kind::json), column("at", column_kind::timestamp),
                                  column("counts", column_kind::json), column("os", column_kind::text, "device.os")}));
  const std::string valid =
      pb_bytes()
          .int_field(1, 42)
          .bytes_field(2, "p")
          .bytes_field(4, std::string("\x01\x02", 2))
          .bytes_field(5, pb_bytes().bytes_field(1, "os").bytes_field(3, pb_bytes().int_field(1, 2).str()).str())
          .bytes_field(6, pb_bytes().int_field(1, 5).str())
          .bytes_field(11, pb_bytes().bytes_field(1, "k").int_field(2, 1).str())
          .str();
  for (size_t cut = 0; cut <= valid.size(); ++cut) {
    try {
      decode_payload(*d, valid.substr(0, cut));
    } catch (const format_error&) {
    }
  }
  for (size_t at = 0; at < valid.size(); ++at) {
    for (int value : {0x00, 0x01, 0x07, 0x7f, 0x80, 0xff}) {
      std::string corrupt = valid;
      corrupt[at] = static_cast<char>(value);
      try {
        decode_payload(*d, corrupt);
      } catch (const format_error&) {
      }
    }
  }
}

// A sink's messages decode back to the row through the schema the sink registers.
TEST(ProtobufDecoder, SinkRoundTrip) {
  const std::vector<sink_column> columns = {{"id", sink_kind::integer, false},     {"name", sink_kind::text, false},
                                            {"price", sink_kind::floating, false}, {"ok", sink_kind::boolean, false},
                                            {"at", sink_kind::timestamp, false},   {"tags", sink_kind::integer, true},
                                            {"words", sink_kind::text, true},      {"note", sink_kind::json, false}};
  sink_encoder_config sink;
  sink.format = sink_format::protobuf;
  sink.columns = columns;
  sink.schema_id = 5;
  auto encoder = make_sink_encoder(sink);
  const std::string schema = protobuf_value_schema("orders.v1", columns);
  EXPECT_NE(schema.find("message orders_v1 {"), std::string::npos);

  auto d = make_protobuf_decoder(
      config_for(wire_format::protobuf,
                 {column("id"), column("name"), column("price"), column("ok", column_kind::boolean),
                  column("at", column_kind::timestamp), column("tags", column_kind::array),
                  column("words", column_kind::array), column("note")}),
      [&](int32_t id) -> protobuf_schema_files {
        EXPECT_EQ(id, 5);
        return {schema, {}};
      });
  std::vector<sink_value> row(columns.size());
  row[0] = sink_value{false, "-7"};
  row[1] = sink_value{false, "caf\xc3\xa9\t"};
  row[2] = sink_value{false, "2.5"};
  row[3] = sink_value{false, "t"};
  row[4].null = false;
  row[4].epoch_us = -1500000;  // 1969-12-31 23:59:58.5
  row[5].null = false;
  row[5].elements = {std::string("1"), std::string("-2")};
  row[6].null = false;
  row[6].elements = {std::string("a"), std::string("")};
  row[7] = sink_value{false, "{\"a\": 1}"};
  std::string message;
  encoder->encode(row, message);
  EXPECT_EQ(decode_payload(*d, message).line,
            "-7\tcaf\xc3\xa9\\t\t2.5\tt\t1969-12-31T23:59:58.500Z\t{1,-2}\t{a,\"\"}\t{\"a\": 1}\n");

  // NULLs: wrappers and Timestamp absent (NULL), arrays empty.
  std::vector<sink_value> nulls(columns.size());
  message.clear();
  encoder->encode(nulls, message);
  EXPECT_EQ(decode_payload(*d, message).line, "\\N\t\\N\t\\N\t\\N\t\\N\t{}\t{}\t\\N\n");

  std::vector<sink_value> bad = nulls;
  bad[5].null = false;
  bad[5].elements = {std::nullopt};
  message.clear();
  EXPECT_THROW(encoder->encode(bad, message), format_error);
  bad = nulls;
  bad[4].null = false;
  bad[4].infinite = true;
  EXPECT_THROW(encoder->encode(bad, message), format_error);
}

// The fuzzing entry point: valid messages decode, and any bytes are a line or a format_error.
TEST(ProtobufDecoder, SampleEntryPoint) {
  const std::string inner =
      pb_bytes()
          .bytes_field(1, "x")
          .bytes_field(2, pb_bytes().bytes_field(2, pb_bytes().bytes_field(1, "deep").str()).str())
          .str();
  const std::string event =
      pb_bytes()
          .int_field(1, 5)
          .bytes_field(5, inner)
          .bytes_field(11, pb_bytes().bytes_field(1, "k").bytes_field(2, pb_bytes().sint_field(2, -3).str()).str())
          .bytes_field(18, "t")
          .str();
  EXPECT_EQ(decode_protobuf_sample(framed(1, std::string(1, '\0'), event)), 1);  // framed only
  EXPECT_EQ(decode_protobuf_sample(pb_bytes().bytes_field(1, pb_bytes().bytes_field(1, "EUR").str()).str()),
            1);  // plain only
  std::string noise;
  for (int i = 0; i < 4096; ++i) {
    noise.push_back(static_cast<char>((i * 7919) ^ (i >> 3)));
    decode_protobuf_sample(noise.substr(noise.size() > 64 ? noise.size() - 64 : 0));
  }
}

}  // namespace
}  // namespace streamrec
