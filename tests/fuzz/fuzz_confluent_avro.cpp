// libFuzzer target: Confluent-framed Avro (magic byte, schema id, body) with a fixed in-memory
// registry: id 1 is event_v1.avsc, id 2 event_v2.avsc (another version of the subject: fields
// reordered, added, removed, promoted, made nullable), id 3 a schema that is not a record, id 4
// text that is no schema, id 5 a registry outage (transient_error), any other id unknown.
#include <memory>
#include <string>
#include <vector>

#include "fuzz_avro_cases.h"

namespace streamrec::fuzzing {
namespace {

std::string fetch(int32_t schema_id) {
  static const std::string v1 = read_schema("event_v1.avsc");
  static const std::string v2 = read_schema("event_v2.avsc");
  switch (schema_id) {
    case 1:
      return v1;
    case 2:
      return v2;
    case 3:
      return R"({"type": "array", "items": "int"})";
    case 4:
      return R"({"type": "record", "name": "broken", "fields": [{"name": "a"}]})";
    case 5:
      throw transient_error("the registry is down");
    default:
      throw format_error("schema id " + std::to_string(schema_id) + " is not known to the schema registry");
  }
}

struct confluent_case {
  std::vector<column_binding> columns;
  std::unique_ptr<decoder> d;
};

confluent_case make_case(std::vector<column_binding> columns, size_t max_decoded_bytes) {
  decoder_config config;
  config.format = wire_format::avro;
  config.columns = std::move(columns);
  config.max_decoded_bytes = max_decoded_bytes;
  confluent_case c{config.columns, make_decoder(config, fetch)};
  return c;
}

std::vector<confluent_case> make_cases() {
  std::vector<confluent_case> cases;
  cases.push_back(make_case(every_event_column(), size_t{1} << 20));
  cases.push_back(make_case(few_event_columns(), 64));
  return cases;
}

}  // namespace
}  // namespace streamrec::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace streamrec::fuzzing;
  static std::vector<confluent_case> cases = make_cases();
  const streamrec::message_view message = message_of(data, size);
  for (confluent_case& c : cases) decode_checked(*c.d, c.columns, message, /*transient_allowed=*/true);
  return 0;
}
