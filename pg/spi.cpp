#include "pg/spi.h"

#include <cstring>

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
}

namespace streamrec {

SPIPlanPtr KeptPlan::prepared() {
  if (plan_ == nullptr) {
    const char* sql = sql_.c_str();
    int nargs = static_cast<int>(types_.size());
    int options = choice_ == PlanChoice::generic ? CURSOR_OPT_GENERIC_PLAN : 0;
    SPIPlanPtr p = SPI_prepare_cursor(sql, nargs, types_.data(), options);
    // SPI_prepare raises its own ERROR for a statement that does not parse; NULL, or a keepplan
    // failure, is misuse of SPI (a bug), so these stay internal.
    if (p == nullptr) elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
    if (SPI_keepplan(p) != 0) elog(ERROR, "SPI_keepplan failed");
    plan_ = p;
  }
  return plan_;
}

int KeptPlan::execute(const Datum* values, const char* nulls, bool read_only, long limit) {
  SPIPlanPtr plan = pg_call([this] { return prepared(); });
  Datum* v = const_cast<Datum*>(values);
  return pg_call([plan, v, nulls, read_only, limit] { return SPI_execute_plan(plan, v, nulls, read_only, limit); });
}

uint64 KeptPlan::run(const std::vector<Datum>& args, bool read_only, const std::vector<bool>& nulls) {
  std::vector<char> null_flags(args.size(), ' ');
  for (std::size_t i = 0; i < nulls.size() && i < args.size(); i++) null_flags[i] = nulls[i] ? 'n' : ' ';
  int rc = execute(args.data(), null_flags.data(), read_only);
  // A negative code is misuse of SPI (not connected, or a COPY or transaction command in our own
  // SQL): a bug, so internal.
  if (rc < 0)
    throw Error(ERRCODE_INTERNAL_ERROR, std::string("SPI failed for: ") + sql() + ": " + SPI_result_code_string(rc));
  return SPI_processed;
}

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

uint64 run_sql(const char* sql, bool read_only) {
  int rc = spi_exec(sql, {}, read_only);
  // A negative code is misuse of SPI (not connected, or a COPY or transaction command in our own
  // SQL): a bug, so internal.
  if (rc < 0)
    throw Error(ERRCODE_INTERNAL_ERROR, std::string("SPI failed for: ") + sql + ": " + SPI_result_code_string(rc));
  return SPI_processed;
}

std::optional<std::string> spi_text(uint64 row, int column) {
  int r = static_cast<int>(row);
  char* v = pg_call([r, column] { return SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, column); });
  if (v == nullptr) return std::nullopt;
  return std::string(v);
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

std::string quote_ident(const std::string& identifier) {
  const char* in = identifier.c_str();
  return pg_call([in] { return quote_identifier(in); });
}

void spi_connect() {
  pg_call([] { return SPI_connect(); });
}

void spi_finish() {
  pg_call([] { return SPI_finish(); });
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
  spi_connect();
}

void commit_transaction() {
  spi_finish();
  pg_call([] {
    PopActiveSnapshot();
    CommitTransactionCommand();
  });
}

void abort_transaction() {
  pg_call([] { AbortCurrentTransaction(); });
}

std::vector<Cell> fetch_result(const std::vector<bool>& text_columns) {
  const uint64 rows = SPI_processed;
  const int columns = static_cast<int>(text_columns.size());
  std::vector<Cell> cells(rows * columns);
  if (rows == 0) return cells;
  Cell* out = cells.data();
  std::vector<char> flags(text_columns.begin(), text_columns.end());
  const char* text_flags = flags.data();
  pg_call([rows, columns, out, text_flags] {
    SPITupleTable* table = SPI_tuptable;
    for (uint64 r = 0; r < rows; r++) {
      for (int c = 0; c < columns; c++) {
        Cell& cell = out[r * columns + c];
        bool isnull = false;
        cell.value = SPI_getbinval(table->vals[r], table->tupdesc, c + 1, &isnull);
        cell.null = isnull;
        if (!isnull && text_flags[c]) {
          text* t = DatumGetTextPP(cell.value);
          cell.text = VARDATA_ANY(t);
          cell.text_length = static_cast<int>(VARSIZE_ANY_EXHDR(t));
        }
      }
    }
  });
  return cells;
}

namespace {

Datum build_text_array(const std::vector<const char*>& data, const std::vector<int>& lengths) {
  int n = static_cast<int>(data.size());
  const char* const* d = data.data();
  const int* l = lengths.data();
  return pg_call([n, d, l] {
    Datum* elements = static_cast<Datum*>(palloc(sizeof(Datum) * (n > 0 ? n : 1)));
    for (int i = 0; i < n; i++) elements[i] = PointerGetDatum(cstring_to_text_with_len(d[i], l[i]));
    return PointerGetDatum(construct_array(elements, n, TEXTOID, -1, false, TYPALIGN_INT));
  });
}

}  // namespace

Datum text_array(const std::vector<std::string>& values) {
  std::vector<const char*> data;
  std::vector<int> lengths;
  data.reserve(values.size());
  lengths.reserve(values.size());
  for (const std::string& s : values) {
    data.push_back(s.data());
    lengths.push_back(static_cast<int>(s.size()));
  }
  return build_text_array(data, lengths);
}

Datum text_array(const std::vector<std::string_view>& values) {
  std::vector<const char*> data;
  std::vector<int> lengths;
  data.reserve(values.size());
  lengths.reserve(values.size());
  for (std::string_view s : values) {
    data.push_back(s.data());
    lengths.push_back(static_cast<int>(s.size()));
  }
  return build_text_array(data, lengths);
}

Datum datum_array(const std::vector<Datum>& elements, const std::vector<bool>& nulls, Oid type) {
  int n = static_cast<int>(elements.size());
  std::vector<char> null_flags;  // std::vector<bool> has no data(); empty: no NULL element
  if (!nulls.empty()) {
    null_flags.assign(elements.size(), 0);
    for (std::size_t i = 0; i < nulls.size() && i < elements.size(); i++) null_flags[i] = static_cast<char>(nulls[i]);
  }
  const Datum* e = elements.data();
  const char* f = null_flags.empty() ? nullptr : null_flags.data();
  return pg_call([n, e, f, type] {
    if (n == 0) return PointerGetDatum(construct_empty_array(type));
    int16 typlen;
    bool byval;
    char align;
    get_typlenbyvalalign(type, &typlen, &byval, &align);
    bool* flags = nullptr;
    if (f != nullptr) {
      flags = static_cast<bool*>(palloc(sizeof(bool) * n));
      for (int i = 0; i < n; i++) flags[i] = f[i] != 0;
    }
    int dims[1] = {n};
    int lbs[1] = {1};
    return PointerGetDatum(construct_md_array(const_cast<Datum*>(e), flags, 1, dims, lbs, type, typlen, byval, align));
  });
}

Datum timestamptz_array(const std::vector<int64>& values) { return nullable_array(values, {}, TIMESTAMPTZOID); }
Datum int8_array(const std::vector<int64>& values) { return nullable_array(values, {}, INT8OID); }

namespace {

// deconstruct_array() of a one-dimensional array (inside a pg_call); `expected` says what its
// elements must be: text, or 8-byte values passed by value (int8, timestamptz).
void elements_of(Datum array, Oid expected, Datum** values, bool** nulls, int* n) {
  ArrayType* a = DatumGetArrayTypeP(array);
  Oid type = ARR_ELEMTYPE(a);
  int16 typlen;
  bool byval;
  char align;
  get_typlenbyvalalign(type, &typlen, &byval, &align);
  bool fits = expected == TEXTOID ? type == TEXTOID : (typlen == 8 && byval);
  if (!fits)
    ereport(ERROR,
            (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("unexpected array element type %s", format_type_be(type)),
             errhint("Restore the column's type as the extension created it.")));
  deconstruct_array(a, type, typlen, byval, align, values, nulls, n);
}

}  // namespace

std::vector<std::string> text_array_values(Datum array) {
  Datum* values = nullptr;
  bool* nulls = nullptr;
  int n = 0;
  pg_call([array, &values, &nulls, &n] { elements_of(array, TEXTOID, &values, &nulls, &n); });
  std::vector<std::string> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; i++) {
    if (nulls[i]) continue;
    // Elements of a detoasted array are plain varlenas (no compression, no external storage).
    const auto* t = reinterpret_cast<const text*>(DatumGetPointer(values[i]));
    out[i].assign(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
  }
  return out;
}

std::vector<int64> int64_array_values(Datum array) {
  Datum* values = nullptr;
  bool* nulls = nullptr;
  int n = 0;
  pg_call([array, &values, &nulls, &n] { elements_of(array, INT8OID, &values, &nulls, &n); });
  std::vector<int64> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; i++) out[i] = nulls[i] ? 0 : DatumGetInt64(values[i]);
  return out;
}

std::string array_literal(const std::vector<std::string_view>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); i++) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

}  // namespace streamrec
