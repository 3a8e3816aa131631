// The one SPI layer of the extension, the triggers and the workers: statements run through the
// error boundary (an ERROR arrives as PgError), prepared plans kept for the backend's life,
// typed parameters (array parameters built from C++ vectors), result rows read as cells or
// text, and the transactions of the background workers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "pg/error_boundary.h"

extern "C" {
#include "executor/spi.h"
}

namespace streamrec {

// How a kept plan is planned. generic: one generic plan for every execution (a batch's
// = ANY($1) arrays would otherwise be estimated element by element, each time, for the same
// index probe). planner: PostgreSQL's own choice between custom and generic plans.
enum class PlanChoice { generic, planner };

// A statement prepared on first use and kept (SPI_keepplan); PostgreSQL re-plans it by itself
// when a table it uses changes. SPI must be connected whenever it is used.
class KeptPlan {
 public:
  KeptPlan(std::string sql, std::vector<Oid> types, PlanChoice choice = PlanChoice::generic)
      : sql_(std::move(sql)), types_(std::move(types)), choice_(choice) {}
  // Runs the statement; returns SPI_processed (a failure of SPI itself throws).
  uint64 run(const std::vector<Datum>& args, bool read_only, const std::vector<bool>& nulls = {});
  // Runs the statement with SPI_execute_plan's arguments (nulls: 'n' marks a NULL, nullptr for
  // none); returns SPI's result code for the caller to check.
  int execute(const Datum* values, const char* nulls, bool read_only, long limit = 0);
  // The plan, prepared now if it was not yet. PostgreSQL C code only (it may ERROR): for code
  // that runs inside one pg_call, such as a trigger capturing rows.
  SPIPlanPtr prepared();
  const char* sql() const { return sql_.c_str(); }

 private:
  std::string sql_;
  std::vector<Oid> types_;
  PlanChoice choice_;
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

// The elements of a one-dimensional text[] (NULL elements read as empty strings) or of an
// int8[] / timestamptz[] (NULL elements read as 0).
std::vector<std::string> text_array_values(Datum array);
std::vector<int64> int64_array_values(Datum array);

// A text[] literal ('{"a","b"}') for a column cast from text in a set-based statement.
std::string array_literal(const std::vector<std::string_view>& values);

// A one-off statement's typed parameter.
struct SpiArg {
  Oid type;
  Datum value;
  bool null;
};

// Runs a one-off statement (SPI_execute_with_args); returns SPI's result code.
int spi_exec(const char* sql, const std::vector<SpiArg>& args, bool read_only, long limit = 0);
// Runs a one-off statement (e.g. one reading a transition table); returns SPI_processed (a
// failure of SPI itself throws).
uint64 run_sql(const char* sql, bool read_only);

// Column `column` (1-based) of result row `row` as text, nullopt for NULL.
std::optional<std::string> spi_text(uint64 row, int column);
Datum text_datum(const std::string& s);
Datum bytea_datum(std::string_view bytes);

// quote_identifier() for a C++ string.
std::string quote_ident(const std::string& identifier);

// SPI_connect and SPI_finish for C++ code. After an error nothing calls spi_finish: the
// (sub)transaction's abort that follows cleans SPI up.
void spi_connect();
void spi_finish();

// Sets this session's search_path to pg_catalog, pg_temp: objects a role planted in a writable
// schema (public, before PostgreSQL 15) are never found by the launcher's or a worker's SQL.
// Called right after connecting and again at the start of every transaction, so a setting that
// user code (a trigger) changed for the session never outlives the transaction it changed it in.
void pin_search_path();

// A background worker's transaction with a snapshot and SPI connected (search_path pinned),
// and its end.
void begin_transaction();
void commit_transaction();
void abort_transaction();

}  // namespace streamrec
