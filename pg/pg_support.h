// Guarded SPI and transaction helpers shared by the source and sink workers. Every PostgreSQL
// call goes through pg_call, so an ERROR arrives as PgError.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pg/error_boundary.h"

extern "C" {
#include "executor/spi.h"
}

namespace streamrec {

struct SpiArg {
  Oid type;
  Datum value;
  bool null;
};

// SPI_execute_with_args; returns the SPI result code.
int spi_exec(const char* sql, const std::vector<SpiArg>& args, bool read_only, long limit = 0);
// Column `column` (1-based) of result row `row` as text, nullopt for NULL.
std::optional<std::string> spi_text(uint64 row, int column);
Datum text_datum(const std::string& s);
Datum bytea_datum(std::string_view bytes);

// quote_identifier() for a C++ string.
std::string quote_ident(const std::string& identifier);

// Sets this session's search_path to pg_catalog, pg_temp: objects a role planted in a writable
// schema (public, before PostgreSQL 15) are never found by the launcher's or a worker's SQL.
// Called right after connecting and again at the start of every transaction, so a setting that
// user code (a trigger) changed for the session never outlives the transaction it changed it in.
void pin_search_path();

// A transaction with a snapshot and SPI connected (search_path pinned), and its end.
void begin_transaction();
void commit_transaction();
void abort_transaction();

}  // namespace streamrec
