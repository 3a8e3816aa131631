// Set-based SPI for the pipeline triggers: prepared plans kept for the backend's life, array
// parameters built from C++ vectors, and result sets copied out in one guarded call.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "pg/error_boundary.h"

extern "C" {
#include "executor/spi.h"
}

namespace streamrec {

// A statement prepared on first use and kept (SPI_keepplan); PostgreSQL re-plans it by itself
// when a table it uses changes.
class KeptPlan {
 public:
  KeptPlan(const char* sql, std::vector<Oid> types) : sql_(sql), types_(std::move(types)) {}
  // Runs the statement (SPI must be connected); returns SPI_processed.
  uint64 run(const std::vector<Datum>& args, bool read_only, const std::vector<bool>& nulls = {});

 private:
  const char* sql_;
  std::vector<Oid> types_;
  SPIPlanPtr plan_ = nullptr;
};

// One cell of a result row, pointing into SPI's result memory (valid until the next statement).
struct Cell {
  Datum value = 0;
  bool null = true;
  const char* text = nullptr;  // text columns only
  int text_length = 0;
  std::string_view view() const { return {text, static_cast<std::size_t>(text_length)}; }
  std::string str() const { return std::string(view()); }
};

// SPI_tuptable as rows x columns cells; text_columns[i] says column i+1 is text (detoasted).
std::vector<Cell> fetch_result(const std::vector<bool>& text_columns);

// Array parameters.
Datum text_array(const std::vector<std::string>& values);
Datum text_array(const std::vector<std::string_view>& values);
// A one-dimensional array of a by-value type from its elements' Datums; nulls (empty: none)
// marks NULL elements.
Datum datum_array(const std::vector<Datum>& elements, const std::vector<bool>& nulls, Oid type);
Datum timestamptz_array(const std::vector<int64>& values);
Datum int8_array(const std::vector<int64>& values);

// An array of bool, int32 or int64 values (type: BOOLOID, INT4OID, INT8OID, ...), with NULLs.
template <typename T>
Datum nullable_array(const std::vector<T>& values, const std::vector<bool>& nulls, Oid type) {
  static_assert(std::is_same_v<T, bool> || std::is_same_v<T, int32> || std::is_same_v<T, int64>,
                "nullable_array takes bool, int32 or int64 elements");
  std::vector<Datum> elements;
  elements.reserve(values.size());
  for (const T& v : values) {
    // Int32GetDatum and Int64GetDatum expand alike on 64-bit builds: not a repeated branch.
    // NOLINTBEGIN(bugprone-branch-clone)
    if constexpr (std::is_same_v<T, bool>)
      elements.push_back(BoolGetDatum(v));
    else if constexpr (std::is_same_v<T, int32>)
      elements.push_back(Int32GetDatum(v));
    else
      elements.push_back(Int64GetDatum(v));
    // NOLINTEND(bugprone-branch-clone)
  }
  return datum_array(elements, nulls, type);
}

// A text[] literal ('{"a","b"}') for a column cast from text in a set-based statement.
std::string array_literal(const std::vector<std::string_view>& values);

// Runs a one-off statement (e.g. one reading a transition table); returns SPI_processed.
uint64 run_sql(const char* sql, bool read_only);

}  // namespace streamrec
