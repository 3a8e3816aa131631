// libFuzzer target: csv message values, decoded with several dialects and column sets.
#include <memory>
#include <vector>

#include "fuzz_support.h"

namespace streamrec::fuzzing {
namespace {

struct csv_case {
  std::vector<column_binding> columns;
  std::unique_ptr<decoder> d;
};

csv_case make_case(std::vector<column_binding> columns, csv_options csv, size_t max_decoded_bytes) {
  decoder_config config;
  config.format = wire_format::csv;
  config.columns = std::move(columns);
  config.csv = std::move(csv);
  config.max_decoded_bytes = max_decoded_bytes;
  csv_case c{config.columns, make_decoder(config)};
  return c;
}

std::vector<csv_case> make_cases() {
  std::vector<csv_case> cases;
  // One text column, the default dialect.
  cases.push_back(make_case({column("line")}, csv_options{}, size_t{1} << 20));
  // Three columns between metadata, ';' and '\'' with NULL spelled out and header records.
  csv_options semicolons;
  semicolons.delimiter = ';';
  semicolons.quote = '\'';
  semicolons.null_string = "NULL";
  semicolons.header = true;
  cases.push_back(
      make_case({metadata_column("k", metadata_field::key), column("user_id"), column("at", column_kind::timestamp),
                 metadata_column("o", metadata_field::offset), column("tags", column_kind::array)},
                semicolons, size_t{1} << 20));
  // One column of every kind, tab-separated.
  std::vector<column_binding> every_kind = {column("t"),
                                            column("b", column_kind::boolean),
                                            column("ts", column_kind::timestamp),
                                            column("d", column_kind::date),
                                            column("raw", column_kind::bytea),
                                            column("doc", column_kind::json),
                                            column("a", column_kind::array)};
  csv_options tabs;
  tabs.delimiter = '\t';
  tabs.header = true;
  cases.push_back(make_case(every_kind, tabs, size_t{1} << 20));
  // The same columns comma-separated, with a limit small enough to be hit.
  cases.push_back(make_case(every_kind, csv_options{}, 64));
  return cases;
}

}  // namespace
}  // namespace streamrec::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace streamrec::fuzzing;
  static std::vector<csv_case> cases = make_cases();
  const streamrec::message_view message = message_of(data, size);
  for (csv_case& c : cases) decode_checked(*c.d, c.columns, message);
  return 0;
}
