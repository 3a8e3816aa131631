// libFuzzer target: plain Avro message values with an inline writer schema (event_v1.avsc),
// decoded into every column, into few columns (skipping), and under a small max_decoded_bytes.
#include <memory>
#include <vector>

#include "fuzz_avro_cases.h"

namespace streamrec::fuzzing {
namespace {

struct avro_case {
  std::vector<column_binding> columns;
  std::unique_ptr<decoder> d;
};

avro_case make_case(std::vector<column_binding> columns, size_t max_decoded_bytes) {
  decoder_config config;
  config.format = wire_format::avro;
  config.columns = std::move(columns);
  config.inline_schema = read_schema("event_v1.avsc");
  config.max_decoded_bytes = max_decoded_bytes;
  avro_case c{config.columns, make_decoder(config)};
  return c;
}

std::vector<avro_case> make_cases() {
  std::vector<avro_case> cases;
  cases.push_back(make_case(every_event_column(), size_t{1} << 20));
  cases.push_back(make_case(few_event_columns(), size_t{1} << 20));
  cases.push_back(make_case(every_event_column(), 64));
  return cases;
}

}  // namespace
}  // namespace streamrec::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace streamrec::fuzzing;
  static std::vector<avro_case> cases = make_cases();
  const streamrec::message_view message = message_of(data, size);
  for (avro_case& c : cases) decode_checked(*c.d, c.columns, message);
  return 0;
}
