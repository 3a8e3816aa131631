// The Avro schemas and column sets of fuzz_avro and fuzz_confluent_avro. The schemas are the
// files of tests/fuzz/schemas (make_corpus.py writes the seeds with them), read at start-up
// from the folder CMake compiles in.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_support.h"

#ifndef STREAMREC_FUZZ_SCHEMAS
#error "STREAMREC_FUZZ_SCHEMAS must name tests/fuzz/schemas"
#endif

namespace streamrec::fuzzing {

inline std::string read_schema(const std::string& name) {
  std::ifstream in(std::string(STREAMREC_FUZZ_SCHEMAS) + "/" + name);
  require(in.good(), "cannot read a schema of tests/fuzz/schemas", name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every field of event_v1.avsc into a column of a fitting kind, paths through the recursive
// record, plain numbers into timestamp and date columns, one field twice, and metadata.
inline std::vector<column_binding> every_event_column() {
  return {
      column("id"),
      column("n"),
      column("n_day", column_kind::date, "n"),
      column("big", column_kind::timestamp),
      column("ratio"),
      column("score", column_kind::timestamp),
      column("score_text", column_kind::text, "score"),
      column("ok", column_kind::boolean),
      column("raw", column_kind::bytea),
      column("raw_text", column_kind::text, "raw"),
      column("kind"),
      column("hash", column_kind::bytea),
      column("price"),
      column("amount", column_kind::json),
      column("day", column_kind::date),
      column("at_ms", column_kind::timestamp),
      column("at_us", column_kind::timestamp),
      column("local_ms", column_kind::timestamp),
      column("t_ms"),
      column("t_us"),
      column("maybe"),
      column("multi", column_kind::json),
      column("multi_left", column_kind::text, "multi.left"),
      column("multi_right_left", column_kind::text, "multi.right.left"),
      column("tags", column_kind::array),
      column("matrix", column_kind::array),
      column("attrs", column_kind::json),
      column("attrs_text", column_kind::text, "attrs"),
      column("nested", column_kind::json),
      column("nested_name", column_kind::text, "nested.name"),
      column("grandchild", column_kind::text, "nested.child.child.name"),
      column("nothing"),
      column("items", column_kind::array),
      column("items_json", column_kind::json, "items"),
      column("added"),  // only event_v2 has it
      metadata_column("key", metadata_field::key),
      metadata_column("partition", metadata_field::partition),
  };
}

// Few columns: the decoder skips every other field.
inline std::vector<column_binding> few_event_columns() {
  return {column("id"), column("grandchild", column_kind::text, "nested.child.name"), column("missing")};
}

}  // namespace streamrec::fuzzing
