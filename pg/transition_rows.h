// A statement trigger's transition table read once, straight from its tuplestore into typed
// columns: no SPI, no executor, no text conversion. The pipelines' dispatchers read each
// batch this way and hand the same columns to every pipeline of the table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pg/error_boundary.h"

extern "C" {
#include "commands/trigger.h"
}

namespace streamrec {

// How a column is taken out of the rows. text: text, varchar or bpchar; int32: int2 or int4;
// int64: int8; timestamptz: timestamptz (microseconds since 2000-01-01 UTC); float8: float4 or
// float8; boolean: bool; output_text: any type, as its output function renders it.
enum class ColumnKind { text, int32, int64, timestamptz, float8, boolean, output_text };

struct ColumnRequest {
  const char* name;
  ColumnKind kind;
};

// One column of the batch, row by row. Only the vector of its kind is filled.
struct BatchColumn {
  ColumnKind kind = ColumnKind::text;
  std::vector<bool> null;
  std::vector<int64_t> ints;      // int32, int64, timestamptz, boolean (0/1)
  std::vector<double> floats;     // float8
  std::vector<uint32_t> offsets;  // text, output_text: row i is chars[offsets[i], offsets[i + 1])
  std::string chars;

  bool is_null(std::size_t row) const { return null[row]; }
  int64_t integer(std::size_t row) const { return ints[row]; }
  double real(std::size_t row) const { return floats[row]; }
  std::string_view text(std::size_t row) const {
    return {chars.data() + offsets[row], static_cast<std::size_t>(offsets[row + 1] - offsets[row])};
  }
};

// The rows of `trigger`'s new transition table, the requested columns in request order. A
// column missing from the table (42703) or of a type its kind cannot take (42804) is an ERROR
// naming the table and the column.
class TransitionRows {
 public:
  TransitionRows(TriggerData* trigger, const std::vector<ColumnRequest>& columns);
  std::size_t size() const { return rows_; }
  const BatchColumn& column(std::size_t i) const { return columns_[i]; }

 private:
  std::size_t rows_ = 0;
  std::vector<BatchColumn> columns_;
};

}  // namespace streamrec
