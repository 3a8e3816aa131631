#include "core/formats/protobuf_sample.h"

#include <memory>
#include <string>
#include <vector>

#include "core/formats/decoder.h"

namespace streamrec {

namespace {

constexpr const char* sample_import = R"(
syntax = "proto3";
package common;
message Money { string currency = 1; sint64 units = 2; fixed32 cents = 3; }
)";

constexpr const char* sample_schema = R"(
syntax = "proto3";
package sample;
import "common/money.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Kind { KIND_UNKNOWN = 0; VIEW = 1; BUY = 2; }

message Event {
  int64 id = 1;
  string name = 2;
  Kind kind = 3;
  repeated int32 counts = 4;
  Inner inner = 5;
  google.protobuf.Timestamp at = 6;
  google.protobuf.Int64Value maybe = 7;
  optional double ratio = 8;
  bool flag = 9;
  bytes raw = 10;
  map<string, common.Money> prices = 11;
  repeated Inner inners = 12;
  repeated google.protobuf.Timestamp times = 13;
  common.Money total = 14;
  float f = 15;
  sfixed64 big = 16;
  uint64 unsigned_value = 17;
  oneof choice { string text = 18; int32 number = 19; }
  message Inner { string label = 1; Inner next = 2; repeated double values = 3; }
}
)";

std::vector<column_binding> sample_columns() {
  const auto bind = [](const char* column, column_kind kind, const char* field) {
    column_binding b;
    b.column = column;
    b.kind = kind;
    b.field = field;
    return b;
  };
  return {
      bind("id", column_kind::text, ""),
      bind("name", column_kind::text, ""),
      bind("kind", column_kind::text, ""),
      bind("counts", column_kind::array, ""),
      bind("label", column_kind::text, "inner.label"),
      bind("deep", column_kind::text, "inner.next.next.label"),
      bind("inner", column_kind::json, ""),
      bind("at", column_kind::timestamp, ""),
      bind("maybe", column_kind::text, ""),
      bind("ratio", column_kind::text, ""),
      bind("flag", column_kind::boolean, ""),
      bind("raw", column_kind::bytea, ""),
      bind("prices", column_kind::json, ""),
      bind("inners", column_kind::array, ""),
      bind("times", column_kind::array, ""),
      bind("currency", column_kind::text, "total.currency"),
      bind("total", column_kind::text, ""),
      bind("f", column_kind::text, ""),
      bind("big", column_kind::timestamp, ""),
      bind("unsigned_value", column_kind::text, ""),
      bind("text", column_kind::text, ""),
      bind("number", column_kind::date, ""),
      bind("values", column_kind::array, "inner.values"),
  };
}

struct sample_decoders {
  std::unique_ptr<decoder> plain;
  std::unique_ptr<decoder> framed;

  sample_decoders() {
    decoder_config config;
    config.format = wire_format::protobuf;
    config.columns = sample_columns();
    config.max_decoded_bytes = size_t{1} << 20;
    framed = make_protobuf_decoder(config, [](int32_t id) -> protobuf_schema_files {
      if (id != 1) throw format_error("schema id " + std::to_string(id) + " is not known to the sample registry");
      return protobuf_schema_files{sample_schema, {{"common/money.proto", sample_import}}};
    });
    // The plain decoder cannot import: the sample's root without the reference.
    config.inline_schema = std::string(sample_import) + "\nmessage Plain { Money m = 1; repeated Money ms = 2; }";
    config.proto_message = "common.Plain";
    config.columns = {};
    column_binding m;
    m.column = "m";
    m.kind = column_kind::json;
    config.columns.push_back(m);
    column_binding ms;
    ms.column = "ms";
    ms.kind = column_kind::array;
    config.columns.push_back(ms);
    column_binding units;
    units.column = "units";
    units.field = "m.units";
    config.columns.push_back(units);
    plain = make_decoder(config);
  }
};

}  // namespace

int decode_protobuf_sample(std::string_view bytes) {
  static sample_decoders decoders;
  message_view message;
  message.topic = "sample";
  message.payload = bytes;
  int decoded = 0;
  for (decoder* d : {decoders.plain.get(), decoders.framed.get()}) {
    std::string line;
    column_mask present;
    try {
      if (d->decode(message, line, present)) ++decoded;
    } catch (const format_error&) {
    }
  }
  return decoded;
}

}  // namespace streamrec
