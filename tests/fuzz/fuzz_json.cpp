// libFuzzer target: json message values, decoded into columns of every kind, nested paths, one
// field into several columns, and a small max_decoded_bytes.
#include <memory>
#include <vector>

#include "fuzz_support.h"

namespace streamrec::fuzzing {
namespace {

struct json_case {
  std::vector<column_binding> columns;
  std::unique_ptr<decoder> d;
};

json_case make_case(std::vector<column_binding> columns, size_t max_decoded_bytes) {
  decoder_config config;
  config.format = wire_format::json;
  config.columns = std::move(columns);
  config.max_decoded_bytes = max_decoded_bytes;
  json_case c{config.columns, make_decoder(config)};
  return c;
}

std::vector<json_case> make_cases() {
  const std::vector<column_binding> every_kind = {
      column("id"),
      column("ok", column_kind::boolean),
      column("at", column_kind::timestamp),
      column("day", column_kind::date),
      column("raw", column_kind::bytea),
      column("doc", column_kind::json),
      column("tags", column_kind::array),
      column("deep", column_kind::text, "a.b.c"),
      column("deep_json", column_kind::json, "a.b"),
      column("id_again", column_kind::text, "id"),
      column("at_text", column_kind::text, "at"),
      metadata_column("topic", metadata_field::topic),
      metadata_column("ts", metadata_field::timestamp),
  };
  std::vector<json_case> cases;
  cases.push_back(make_case(every_kind, size_t{1} << 20));
  cases.push_back(make_case(every_kind, 64));
  cases.push_back(make_case({column("v", column_kind::array), column("w", column_kind::json, "v")}, size_t{1} << 20));
  return cases;
}

}  // namespace
}  // namespace streamrec::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace streamrec::fuzzing;
  static std::vector<json_case> cases = make_cases();
  const streamrec::message_view message = message_of(data, size);
  for (json_case& c : cases) decode_checked(*c.d, c.columns, message);
  return 0;
}
