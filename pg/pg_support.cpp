#include "pg/pg_support.h"

#include <cstring>

extern "C" {
#include "access/xact.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
}

namespace streamrec {

int spi_exec(const char* sql, const std::vector<SpiArg>& args, bool read_only, long limit) {
  std::vector<Oid> types;
  std::vector<Datum> values;
  std::vector<char> nulls;
  for (const SpiArg& a : args) {
    types.push_back(a.type);
    values.push_back(a.value);
    nulls.push_back(a.null ? 'n' : ' ');
  }
  int nargs = static_cast<int>(args.size());
  Oid* t = types.data();
  Datum* v = values.data();
  const char* n = nulls.data();
  return pg_call([=] { return SPI_execute_with_args(sql, nargs, t, v, n, read_only, limit); });
}

Datum text_datum(const std::string& s) {
  const char* data = s.data();
  int len = static_cast<int>(s.size());
  return pg_call([data, len] { return PointerGetDatum(cstring_to_text_with_len(data, len)); });
}

Datum bytea_datum(std::string_view bytes) {
  const char* data = bytes.data();
  size_t len = bytes.size();
  return pg_call([data, len] {
    bytea* b = static_cast<bytea*>(palloc(VARHDRSZ + len));
    SET_VARSIZE(b, VARHDRSZ + len);
    memcpy(VARDATA(b), data, len);
    return PointerGetDatum(b);
  });
}

std::optional<std::string> spi_text(uint64 row, int column) {
  int r = static_cast<int>(row);
  char* v = pg_call([r, column] { return SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, column); });
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

void pin_search_path() {
  pg_call([] { SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION); });
}

void begin_transaction() {
  pg_call([] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
  });
  pin_search_path();
  pg_call([] { return SPI_connect(); });
}

void commit_transaction() {
  pg_call([] { return SPI_finish(); });
  pg_call([] {
    PopActiveSnapshot();
    CommitTransactionCommand();
  });
}

void abort_transaction() {
  pg_call([] { AbortCurrentTransaction(); });
}

std::string quote_ident(const std::string& identifier) {
  const char* in = identifier.c_str();
  return pg_call([in] { return quote_identifier(in); });
}

}  // namespace streamrec
