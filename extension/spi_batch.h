// Set-based SPI for the pipeline triggers: prepared plans kept for the backend's life, array
// parameters built from C++ vectors, and result sets copied out in one guarded call.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "extension/error_boundary.h"

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
Datum timestamptz_array(const std::vector<int64>& values);
Datum int8_array(const std::vector<int64>& values);

// A text[] literal ('{"a","b"}') for a column cast from text in a set-based statement.
std::string array_literal(const std::vector<std::string_view>& values);

// Runs a one-off statement (e.g. one reading a transition table); returns SPI_processed.
uint64 run_sql(const char* sql, bool read_only);

}  // namespace streamrec
