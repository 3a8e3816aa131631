// A sink worker: produces the rows inserted into one table to one Kafka topic, none lost.
//
// The relation's outbox trigger copies the inserted rows, in the inserting transaction, into
// streamrec.sink_outbox, in chunks of up to 1,000 rows per outbox row: binary typed rows
// (core/formats/outbox_rows.h), or jsonb (the SQL capture's, and chunks written before the
// extension's update: a jsonb array of the rows, or the row itself). This worker reads the outbox
// in id order (in batches of about batch_size rows), takes the values straight out of the binary
// chunk (see stage_binary_row) or the jsonb (see extract_row), encodes each row with the
// PostgreSQL-free encoders of core/formats and produces it with librdkafka's idempotent
// producer (message order per partition survives retries). It does not wait for a batch's
// acknowledgements before reading and producing the next: a window of batches is in flight, and
// each batch's outbox rows are deleted once the broker acknowledged all of its messages, batches
// retiring in the order they were sent. A crash between the acknowledgement and the delete
// re-sends rows: at-least-once, never lost. A row that no format can hold is split out of its
// chunk into an outbox row of its own (jsonb), with its error, and the sink goes on; a chunk
// that cannot be read at all stays in the outbox with its error.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <climits>
#include <csignal>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/formats/format_error.h"
#include "core/formats/outbox_rows.h"
#include "core/registry/schema_registry_client.h"
#include "core/formats/sink_encoder.h"
#include "core/formats/timestamp_text.h"
#include "core/kafka/producer.h"

#include "pg/catalog_options.h"
#include "pg/error_boundary.h"
#include "pg/outbox_chunks.h"
#include "pg/shared_state.h"
#include "pg/spi.h"
#include "worker/kafka_guard.h"
#include "worker/worker_launch.h"
#include "worker/worker_main.h"

extern "C" {
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/syncrep.h"
#include "storage/ipc.h"
#include "storage/itemptr.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "nodes/makefuncs.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PGDLLEXPORT void streamrec_sink_main(Datum main_arg);
}

namespace streamrec {
namespace {

// How long an idle sink sleeps before looking at its outbox again: bounds the latency from
// commit to produce when rows trickle in.
constexpr long kIdlePollMs = 5;
// A sink keeps this many batches' worth of rows in flight (produced, not yet acknowledged).
constexpr int kWindowBatches = 4;
// Acknowledgements overdue this long put "waiting for broker" in sink_stats.
constexpr auto kBrokerPatience = std::chrono::seconds(1);
// Late ranges kept apart at most; more are merged into the newest.
constexpr size_t kMaxLateRanges = 64;
// Encoded rows are handed to librdkafka this many at a time (produce_batch).
constexpr size_t kProduceChunk = 1000;

// One column the worker reads from an outbox row: its encoder description and how to get its
// text. A "direct" column (text, varchar, integers, boolean, timestamps, and arrays of the
// non-timestamp ones) is read straight from the payload jsonb, where to_jsonb left exactly its
// output text (or, for timestamps, an ISO 8601 string); any other type goes through its input
// and output functions, from the text jsonb_populate_record would hand to the input function,
// so it prints as PostgreSQL prints it.
struct FetchedColumn {
  sink_column column;
  Oid type = InvalidOid;  // the element type for arrays
  int32 typmod = -1;
  bool direct = false;
  Oid output_function = InvalidOid;
  Oid input_function = InvalidOid;
  Oid io_param = InvalidOid;
  int16 element_length = 0;
  bool element_by_value = false;
  char element_align = 'i';
  // Composite types: jsonb_populate_record, called as if from SQL (it needs the call's type).
  FmgrInfo* populate_record = nullptr;
};

struct SinkConfig {
  std::string name;
  std::string topic;
  std::string brokers;
  Oid relation = InvalidOid;
  sink_format format = sink_format::csv;
  std::string schema_registry;
  std::string subject;
  csv_dialect csv;
  int batch_size = 10000;
  producer::properties kafka;
  std::vector<FetchedColumn> values;
  std::vector<FetchedColumn> keys;
};

// $1 sink name, $2 ids above, $3 ids up to, $4 rows: id, ctid, payload, data of the outbox rows
// in id order, up to the one that reaches $4 rows. An outbox without binary chunks (the extension
// not yet updated) has no column data: kReadJsonbSql.
constexpr const char* kReadSql = R"SQL(
SELECT id, ctid, payload, data FROM (
  SELECT o.id, o.ctid, o.payload, o.data, sum(o.rows) OVER (ORDER BY o.id) - o.rows AS rows_before
  FROM streamrec.sink_outbox o
  WHERE o.sink = $1 AND o.error IS NULL AND o.id > $2 AND o.id <= $3 ORDER BY o.id LIMIT $4) b
WHERE rows_before < $4
)SQL";
constexpr const char* kReadJsonbSql = R"SQL(
SELECT id, ctid, payload, NULL::bytea AS data FROM (
  SELECT o.id, o.ctid, o.payload, sum(o.rows) OVER (ORDER BY o.id) - o.rows AS rows_before
  FROM streamrec.sink_outbox o
  WHERE o.sink = $1 AND o.error IS NULL AND o.id > $2 AND o.id <= $3 ORDER BY o.id LIMIT $4) b
WHERE rows_before < $4
)SQL";

// The sink's options, in the order load_config() reads them (columns 5 on of config_sql()).
const std::vector<OptionSpec> kSinkOptions = {
    {"schema_registry", OptionKind::text},
    {"subject", OptionKind::text, nullptr, "topic || '-value'"},
    {"csv.delimiter", OptionKind::text, nullptr, "','"},
    {"csv.quote", OptionKind::text, nullptr, "'\"'"},
    {"csv.null", OptionKind::text, nullptr, "''"},
    {"batch_size", OptionKind::int4, nullptr, "10000"},
};

// $1 sink name: its catalog columns, then kSinkOptions.
const std::string& config_sql() {
  static const std::string sql =
      "SELECT topic, relation::oid, coalesce(brokers, current_setting('streamrec.brokers')), format, " +
      option_list_sql("options", kSinkOptions) + " FROM streamrec.sinks WHERE name = $1";
  return sql;
}

// Value columns (option "columns" in order, else all in attnum order), then key columns.
constexpr const char* kColumnsSql = R"SQL(
WITH s AS (SELECT * FROM streamrec.sinks WHERE name = $1),
cols AS (
  SELECT a.attname::text AS col, a.attnum, a.atttypmod,
         CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE a.atttypid END AS base,
         t.typcategory = 'A' AS is_array,
         t.typtype = 'b' AND CASE WHEN t.typcategory = 'A'
             THEN t.typelem IN ('text'::regtype, 'varchar'::regtype, 'int2'::regtype, 'int4'::regtype,
                                'int8'::regtype, 'bool'::regtype)
             ELSE a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'int2'::regtype, 'int4'::regtype,
                                 'int8'::regtype, 'bool'::regtype, 'timestamptz'::regtype, 'timestamp'::regtype)
             END AS direct
  FROM s JOIN pg_catalog.pg_attribute a ON a.attrelid = s.relation
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  WHERE a.attnum > 0 AND NOT a.attisdropped),
keys AS (
  SELECT e.col, e.ord FROM s,
    jsonb_array_elements_text(CASE jsonb_typeof(s.options -> 'key') WHEN 'string' THEN jsonb_build_array(s.options -> 'key')
                                   ELSE coalesce(s.options -> 'key', '[]') END) WITH ORDINALITY e(col, ord)),
vals AS (
  SELECT e.col, e.ord FROM s, jsonb_array_elements_text(s.options -> 'columns') WITH ORDINALITY e(col, ord)
  WHERE s.options ? 'columns'
  UNION ALL
  SELECT c.col, c.attnum FROM s, cols c WHERE NOT (s.options ? 'columns'))
SELECT c.col, c.base::oid, c.is_array, false AS is_key,
       CASE WHEN c.base IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'oid'::regtype) THEN 'integer'
            WHEN c.base IN ('float4'::regtype, 'float8'::regtype) THEN 'floating'
            WHEN c.base = 'numeric'::regtype THEN 'numeric'
            WHEN c.base = 'bool'::regtype THEN 'boolean'
            WHEN c.base IN ('timestamptz'::regtype, 'timestamp'::regtype) THEN 'timestamp'
            WHEN c.base IN ('json'::regtype, 'jsonb'::regtype) THEN 'json'
            ELSE 'text' END, 0 AS part, v.ord, c.atttypmod, c.direct
FROM vals v JOIN cols c USING (col)
UNION ALL
SELECT c.col, c.base::oid, c.is_array, true, 'text', 1, k.ord, c.atttypmod, c.direct
FROM keys k JOIN cols c USING (col)
ORDER BY part, ord
)SQL";

sink_kind kind_from_name(const std::string& k) {
  if (k == "integer") return sink_kind::integer;
  if (k == "floating") return sink_kind::floating;
  if (k == "numeric") return sink_kind::numeric;
  if (k == "boolean") return sink_kind::boolean;
  if (k == "timestamp") return sink_kind::timestamp;
  if (k == "json") return sink_kind::json;
  return sink_kind::text;
}

void prepare_io(FetchedColumn& f) {
  Oid type = f.type;
  Oid output = InvalidOid, input = InvalidOid, io_param = InvalidOid;
  bool varlena = false;
  pg_call([type, &output, &input, &io_param, &varlena] {
    getTypeOutputInfo(type, &output, &varlena);
    getTypeInputInfo(type, &input, &io_param);
  });
  f.output_function = output;
  f.input_function = input;
  f.io_param = io_param;
  if (f.column.array) {
    int16 length = 0;
    bool by_value = false;
    char align = 'i';
    pg_call([type, &length, &by_value, &align] { get_typlenbyvalalign(type, &length, &by_value, &align); });
    f.element_length = length;
    f.element_by_value = by_value;
    f.element_align = align;
  }
  f.populate_record = pg_call([type] {
    if (!type_is_rowtype(type)) return static_cast<FmgrInfo*>(nullptr);
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    FmgrInfo* populate = static_cast<FmgrInfo*>(palloc0(sizeof(FmgrInfo)));
    fmgr_info_cxt(F_JSONB_POPULATE_RECORD, populate, TopMemoryContext);
    populate->fn_expr = reinterpret_cast<Node*>(
        makeFuncExpr(F_JSONB_POPULATE_RECORD, type,
                     list_make2(makeNullConst(type, -1, InvalidOid), makeNullConst(JSONBOID, -1, InvalidOid)),
                     InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL));
    MemoryContextSwitchTo(old);
    return populate;
  });
}

SinkConfig load_config(const std::string& name) {
  SinkConfig c;
  c.name = name;
  Datum name_datum = text_datum(name);
  if (spi_exec(config_sql().c_str(), {{TEXTOID, name_datum, false}}, true) != SPI_OK_SELECT || SPI_processed != 1)
    throw Error(ERRCODE_UNDEFINED_OBJECT, "sink \"" + name + "\" no longer exists");
  auto field = [](int column) { return spi_text(0, column).value_or(""); };
  c.topic = field(1);
  c.relation = static_cast<Oid>(std::stoul(field(2)));
  c.brokers = field(3);
  std::string format = field(4);
  c.format = format == "json"       ? sink_format::json
             : format == "avro"     ? sink_format::avro
             : format == "protobuf" ? sink_format::protobuf
                                    : sink_format::csv;
  c.schema_registry = field(5);
  c.subject = field(6);
  c.csv.delimiter = field(7)[0];
  c.csv.quote = field(8)[0];
  c.csv.null_string = field(9);
  c.batch_size = std::stoi(field(10));

  c.kafka = read_kafka_options("sinks", name);
  refuse_forbidden_kafka_properties(c.kafka, "sink \"" + name + "\"");

  if (spi_exec(kColumnsSql, {{TEXTOID, name_datum, false}}, true) != SPI_OK_SELECT)
    throw Error(ERRCODE_INTERNAL_ERROR, "cannot read the relation's columns");
  uint64 rows = SPI_processed;
  for (uint64 i = 0; i < rows; i++) {
    FetchedColumn f;
    f.column.name = spi_text(i, 1).value_or("");
    f.type = static_cast<Oid>(std::stoul(spi_text(i, 2).value_or("0")));
    f.column.array = spi_text(i, 3).value_or("f") == "t";
    f.column.kind = kind_from_name(spi_text(i, 5).value_or("text"));
    f.typmod = std::stoi(spi_text(i, 8).value_or("-1"));
    f.direct = spi_text(i, 9).value_or("f") == "t";
    bool is_key = spi_text(i, 4).value_or("f") == "t";
    if (is_key && f.type != TIMESTAMPTZOID && f.type != TIMESTAMPOID) f.column.kind = sink_kind::text;
    if (is_key && (f.type == TIMESTAMPTZOID || f.type == TIMESTAMPOID) && !f.column.array)
      f.column.kind = sink_kind::timestamp;
    (is_key ? c.keys : c.values).push_back(std::move(f));
  }
  if (c.values.empty()) throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "the sink has no value columns");

  for (std::vector<FetchedColumn>* columns : {&c.values, &c.keys})
    for (FetchedColumn& f : *columns) prepare_io(f);
  return c;
}

// ---- Reading a row's values out of its jsonb. PostgreSQL C calls only (run inside pg_call,
// ---- in a per-row memory context): no C++ objects with destructors.

// A value's text as PostgreSQL prints it (for timestamps: to_jsonb's ISO 8601). data == nullptr
// means NULL. Points into the payload or into the row's memory context.
struct TextSlice {
  const char* data;
  int len;
};

struct RawValue {
  TextSlice text;
  int first_element;  // arrays: this value's elements in RawRow::elements
  int element_count;
};

struct RawRow {
  RawValue* values;  // one per FetchedColumn, values then keys
  TextSlice* elements;
  int element_count;
  int element_capacity;
};

void add_element(RawRow* row, TextSlice text) {
  if (row->element_count == row->element_capacity) {
    row->element_capacity = row->element_capacity * 2 + 16;
    row->elements = static_cast<TextSlice*>(row->elements == nullptr
                                                ? palloc(sizeof(TextSlice) * row->element_capacity)
                                                : repalloc(row->elements, sizeof(TextSlice) * row->element_capacity));
  }
  row->elements[row->element_count++] = text;
}

TextSlice cstring_slice(char* s) { return TextSlice{s, static_cast<int>(strlen(s))}; }

// The text jsonb_populate_record would hand to the type's input function (populate_scalar).
char* populate_text(const JsonbValue* v) {
  switch (v->type) {
    case jbvString:
      return pnstrdup(v->val.string.val, v->val.string.len);
    case jbvBool:
      return pstrdup(v->val.boolean ? "true" : "false");
    case jbvNumeric:
      return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
    case jbvBinary:
      return JsonbToCString(nullptr, v->val.binary.data, v->val.binary.len);
    // Cannot happen: the caller passes scalars and containers only.
    default:
      elog(ERROR, "unexpected jsonb value type %d", static_cast<int>(v->type));
  }
  return nullptr;
}

// One non-null scalar (or array element). For a direct column the shapes to_jsonb writes are
// read as they are; anything else (other types, or a column whose type changed while the row
// waited) goes through the type's input and output functions, as jsonb_populate_record would.
TextSlice scalar_text(const FetchedColumn* f, const JsonbValue* v) {
  switch (f->direct ? f->type : InvalidOid) {
    case TEXTOID:
    case VARCHAROID:
    case TIMESTAMPOID:
    case TIMESTAMPTZOID:
      if (v->type == jbvString) return TextSlice{v->val.string.val, v->val.string.len};
      break;
    case INT2OID:
    case INT4OID:
    case INT8OID:
      if (v->type == jbvNumeric)
        return cstring_slice(DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric))));
      break;
    case BOOLOID:
      if (v->type == jbvBool) return TextSlice{v->val.boolean ? "t" : "f", 1};
      break;
    default:
      break;
  }
  if (f->populate_record != nullptr && v->type == jbvBinary) {
    // A composite value (an object): jsonb_populate_record(NULL::type, value), then its output.
    LOCAL_FCINFO(call, 2);
    InitFunctionCallInfoData(*call, f->populate_record, 2, InvalidOid, nullptr, nullptr);
    call->args[0].value = static_cast<Datum>(0);
    call->args[0].isnull = true;
    call->args[1].value = JsonbPGetDatum(JsonbValueToJsonb(const_cast<JsonbValue*>(v)));
    call->args[1].isnull = false;
    Datum record = FunctionCallInvoke(call);
    // Cannot happen: the function returns a record for a non-null object.
    if (call->isnull) elog(ERROR, "jsonb_populate_record returned NULL");
    return cstring_slice(OidOutputFunctionCall(f->output_function, record));
  }
  if (f->type == JSONBOID || f->type == JSONOID) {
    // jsonb_populate_record keeps a json value as it is (a string stays a JSON string).
    if (v->type == jbvBinary) return cstring_slice(JsonbToCString(nullptr, v->val.binary.data, v->val.binary.len));
    Jsonb* scalar = JsonbValueToJsonb(const_cast<JsonbValue*>(v));
    return cstring_slice(JsonbToCString(nullptr, &scalar->root, static_cast<int>(VARSIZE(scalar))));
  }
  Datum d = OidInputFunctionCall(f->input_function, populate_text(v), f->io_param, f->typmod);
  return cstring_slice(OidOutputFunctionCall(f->output_function, d));
}

// Array elements in storage order (nested JSON arrays are a multi-dimensional array).
void flatten_elements(const FetchedColumn* f, JsonbContainer* array, RawRow* row) {
  uint32 count = JsonContainerSize(array);
  for (uint32 i = 0; i < count; i++) {
    JsonbValue* e = getIthJsonbValueFromContainer(array, i);
    if (e->type == jbvNull)
      add_element(row, TextSlice{nullptr, 0});
    else if (e->type == jbvBinary && JsonContainerIsArray(e->val.binary.data))
      flatten_elements(f, e->val.binary.data, row);
    else
      add_element(row, scalar_text(f, e));
  }
}

// A column's value (v: its jsonb, nullptr when absent) into `out`.
void extract_found(const FetchedColumn* f, const JsonbValue* v, RawRow* row, RawValue* out) {
  out->text = TextSlice{nullptr, 0};
  out->first_element = row->element_count;
  out->element_count = 0;
  if (v == nullptr || v->type == jbvNull) return;  // an absent key is NULL, as in populate_record
  out->text = TextSlice{"", 0};
  if (!f->column.array) {
    out->text = scalar_text(f, v);
    return;
  }
  if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data)) {
    flatten_elements(f, v->val.binary.data, row);
  } else {
    // An array literal in a string ('{a,b}'), which populate_record also accepts.
    ArrayType* a = DatumGetArrayTypeP(OidInputFunctionCall(F_ARRAY_IN, populate_text(v), f->type, f->typmod));
    Datum* elements = nullptr;
    bool* nulls = nullptr;
    int count = 0;
    deconstruct_array(a, f->type, f->element_length, f->element_by_value, f->element_align, &elements, &nulls, &count);
    for (int i = 0; i < count; i++)
      add_element(row, nulls[i] ? TextSlice{nullptr, 0}
                                : cstring_slice(OidOutputFunctionCall(f->output_function, elements[i])));
  }
  out->element_count = row->element_count - out->first_element;
}

void extract_value(const FetchedColumn* f, JsonbContainer* payload, RawRow* row, RawValue* out) {
  JsonbValue found;
  const char* key = f->column.name.data();
  int key_len = static_cast<int>(f->column.name.size());
  extract_found(f, getKeyJsonValueFromContainer(payload, key, key_len, &found), row, out);
}

struct RowColumns {
  const FetchedColumn* const* columns;  // values then keys
  int count;
};

// Outbox row `r` of the read: its id, ctid and chunk, detoasted in the current memory context:
// binary (*data; *root nullptr) or jsonb (*root and *count, the payload's elements).
void open_chunk(int r, int64* id, ItemPointerData* tid, JsonbContainer** root, int* count, bytea** data) {
  HeapTuple tuple = SPI_tuptable->vals[r];
  TupleDesc desc = SPI_tuptable->tupdesc;
  bool is_null = false;
  *id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &is_null));
  *tid = *reinterpret_cast<ItemPointer>(DatumGetPointer(SPI_getbinval(tuple, desc, 2, &is_null)));
  *root = nullptr;
  *count = 0;
  Datum binary = SPI_getbinval(tuple, desc, 4, &is_null);
  *data = is_null ? nullptr : DatumGetByteaPP(binary);
  if (*data != nullptr) return;
  Datum jsonb = SPI_getbinval(tuple, desc, 3, &is_null);
  // Cannot happen: a constraint of the outbox wants payload or data.
  if (is_null)
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED), errmsg("outbox row %lld holds no chunk", static_cast<long long>(*id))));
  Jsonb* payload = DatumGetJsonbP(jsonb);
  *root = &payload->root;
  // A chunk is an array of rows; an outbox row holding one row has the row itself.
  *count = JB_ROOT_IS_ARRAY(payload) && !JB_ROOT_IS_SCALAR(payload) ? static_cast<int>(JB_ROOT_COUNT(payload)) : -1;
}

// Row `index` of a chunk opened by open_chunk (-1: the payload is the row).
JsonbContainer* chunk_row(JsonbContainer* root, int index) {
  if (index < 0) return root;
  JsonbValue* v = getIthJsonbValueFromContainer(root, static_cast<uint32>(index));
  if (v == nullptr || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
    ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                    errmsg("element %d of an outbox chunk is not a row (a jsonb object)", index)));
  return v->val.binary.data;
}

// Every column's text of one row of a chunk into `row`.
void extract_row(JsonbContainer* payload, const RowColumns* columns, RawRow* row) {
  row->element_count = 0;
  for (int i = 0; i < columns->count; i++) extract_value(columns->columns[i], payload, row, &row->values[i]);
}

// A chunk row's jsonb as text, to keep it for inspection.
char* row_json(JsonbContainer* payload) { return JsonbToCString(nullptr, payload, -1); }

// A timestamp the fast parser would not take (BC, year > 9999, infinity, an offset with
// seconds): PostgreSQL's own input function, as jsonb_populate_record would call it.
Timestamp timestamp_from_text(const FetchedColumn* f, TextSlice text) {
  char* s = pnstrdup(text.data, text.len);
  PGFunction input = f->type == TIMESTAMPTZOID ? timestamptz_in : timestamp_in;
  return DatumGetTimestamp(
      DirectFunctionCall3(input, CStringGetDatum(s), ObjectIdGetDatum(InvalidOid), Int32GetDatum(f->typmod)));
}

// ---- C++ from here on.

// to_jsonb writes a timestamptz with its offset ("...+02:00") and a timestamp without one; only
// those shapes take the fast path (an offset-less timestamptz would mean the session's zone).
bool has_offset(std::string_view text) {
  size_t n = text.size();
  return n >= 6 && (text[n - 6] == '+' || text[n - 6] == '-') && text[n - 3] == ':';
}

// The last timestamp text a column parsed: rows of a batch often share one (a window's end).
struct TimestampCache {
  std::string text;
  int64_t epoch_us = 0;
  bool infinite = false;
};

void set_timestamp(const FetchedColumn& f, TextSlice text, TimestampCache& cache, sink_value& out) {
  std::string_view view(text.data, static_cast<size_t>(text.len));
  if (view != cache.text) {
    std::optional<int64_t> parsed;
    if (has_offset(view) == (f.type == TIMESTAMPTZOID)) parsed = parse_iso8601(view);
    cache.infinite = false;
    if (parsed) {
      cache.epoch_us = *parsed;
    } else {
      const FetchedColumn* fp = &f;
      Timestamp ts = pg_call([fp, text] { return timestamp_from_text(fp, text); });
      if (TIMESTAMP_NOT_FINITE(ts)) {
        cache.infinite = true;
        cache.epoch_us = TIMESTAMP_IS_NOBEGIN(ts) ? -1 : 1;
      } else {
        cache.epoch_us = ts + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
      }
    }
    cache.text.assign(view);
  }
  out.epoch_us = cache.epoch_us;
  out.infinite = cache.infinite;
}

// Fills `out` from the raw row, reusing its buffers.
void to_sink_value(const FetchedColumn& f, const RawRow& row, const RawValue& raw, TimestampCache& cache,
                   sink_value& out) {
  out.null = raw.text.data == nullptr;
  out.infinite = false;
  out.epoch_us = 0;
  out.text.clear();
  if (out.null) {
    out.elements.clear();
    return;
  }
  if (f.column.array) {
    out.elements.resize(static_cast<size_t>(raw.element_count));
    for (int i = 0; i < raw.element_count; i++) {
      const TextSlice& e = row.elements[raw.first_element + i];
      std::optional<std::string>& element = out.elements[static_cast<size_t>(i)];
      if (e.data == nullptr)
        element.reset();
      else if (element)
        element->assign(e.data, static_cast<size_t>(e.len));
      else
        element.emplace(e.data, static_cast<size_t>(e.len));
    }
    return;
  }
  if (f.direct && (f.type == TIMESTAMPTZOID || f.type == TIMESTAMPOID)) {
    set_timestamp(f, raw.text, cache, out);
    return;
  }
  out.text.assign(raw.text.data, static_cast<size_t>(raw.text.len));
}

Datum tid_array_datum(const std::vector<ItemPointerData>& values) {
  const ItemPointerData* data = values.data();
  int count = static_cast<int>(values.size());
  return pg_call([data, count] {
    Datum* elements = static_cast<Datum*>(palloc(sizeof(Datum) * (count > 0 ? count : 1)));
    for (int i = 0; i < count; i++) elements[i] = PointerGetDatum(&data[i]);
    return PointerGetDatum(construct_array(elements, count, TIDOID, sizeof(ItemPointerData), false, TYPALIGN_SHORT));
  });
}

// A row no format can hold: kept, split out of its chunk, as an outbox row of its own.
struct FailedRow {
  int64 id;  // its chunk's outbox id
  std::string error;
  std::string payload;  // the row's jsonb, as text
};

// An encoded row waiting to be handed to librdkafka with the rest of its chunk; key and value
// are in SinkWorker::staged_bytes_.
struct StagedMessage {
  int64 id;
  int spi_row;  // where the row is in the read: outbox row and row of its chunk
  int chunk_index;
  bool has_key;
  size_t key_offset;
  size_t key_length;
  size_t value_offset;
  size_t value_length;
};

// A batch whose messages were produced and whose outbox rows wait for the acknowledgements.
struct InFlightBatch {
  uint64_t seq = 0;
  int64 min_id = INT64_MAX;  // the outbox ids it covers (read, produced or failed)
  int64 max_id = INT64_MIN;
  std::vector<ItemPointerData> tids;  // its outbox rows: deleted once all messages are acknowledged
  std::vector<FailedRow> failed;      // rows no format can hold: kept when the batch retires
  // Outbox rows whose chunk cannot be read (a damaged binary chunk): set aside with the error
  // when the batch retires (ids, errors).
  std::vector<std::pair<int64, std::string>> unreadable;
  // Every message handed to librdkafka, by its place in the batch (the low bits of its delivery
  // tag): its outbox id and row of the chunk.
  std::vector<std::pair<int64, int>> sent;
  // Messages the broker refused for good because of the row itself (see row_refusal): kept
  // apart, with the error, when the batch retires.
  std::vector<std::pair<size_t, rd_kafka_resp_err_t>> refused_rows;
  size_t messages = 0;  // produced
  size_t acknowledged = 0;
  size_t refused = 0;
  std::chrono::steady_clock::time_point sent_at;

  bool complete() const { return acknowledged + refused + refused_rows.size() == messages; }
};

// A message's delivery tag: its batch's sequence number and its place in the batch.
constexpr int kTagIndexBits = 24;  // a batch holds fewer than batch_size + 1,000 messages

// Errors with which the broker refuses a record for what it is (too large, invalid): sending it
// again cannot help, so it is kept apart like a row no format can hold. Anything else (the topic,
// authorization, the connection) is the sink's problem and retried.
bool row_refusal(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
      return true;
    default:
      return false;
  }
}

// Outbox ids (lo, hi] a read went past while transactions that may still add rows there were
// running (ids are handed out at insert, rows become visible at commit). Once those transactions
// ended and no batch in flight holds ids of the range, the range is read again for rows
// committed late.
struct LateRange {
  int64 lo;  // read up to here already
  int64 hi;
  std::vector<TransactionId> running;  // the read snapshot's in-progress transactions
  TransactionId unseen_from;           // and those it could not see: [unseen_from, unseen_to)
  TransactionId unseen_to;
};

class SinkWorker {
 public:
  explicit SinkWorker(const WorkerLaunch& launch) : launch_(launch) {}

  void run() {
    set_state("starting");
    pg_call([] {
      // The outbox is a queue: the rows just deleted sit in the (sink, id) index until vacuum.
      // An index range scan from the last id read skips them; a bitmap scan plus sort (which
      // the planner likes for small estimates) would visit them.
      SetConfigOption("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION);
      SetConfigOption("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION);
      SetConfigOption("enable_sort", "off", PGC_USERSET, PGC_S_SESSION);
      // The worker's only writes delete acknowledged chunks and keep failed rows apart (in the
      // same transaction): a commit lost in a crash sends those rows again, which at-least-once
      // allows. No WAL flush per batch. With synchronous replication configured the server's
      // synchronous_commit stays: a delete then reaches the standby before the next batch is
      // read, so a failover re-sends no more than the window of unacknowledged batches.
      if (SyncRepStandbyNames == nullptr || SyncRepStandbyNames[0] == '\0')
        SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION);
      // The outbox read of a full batch costs enough for the planner to JIT-compile it, on every
      // read: about a sixth of the worker's time, for a plan that runs a few milliseconds.
      SetConfigOption("jit", "off", PGC_USERSET, PGC_S_SESSION);
    });
    begin_transaction();
    config_ = load_config(launch_.name);
    commit_transaction();
    sink_encoder_config encoding;
    encoding.format = config_.format;
    encoding.csv = config_.csv;
    for (const FetchedColumn& f : config_.values) encoding.columns.push_back(f.column);
    for (const FetchedColumn& f : config_.keys) key_columns_.push_back(f.column);
    for (const FetchedColumn& f : config_.values) all_columns_.push_back(&f);
    for (const FetchedColumn& f : config_.keys) all_columns_.push_back(&f);
    values_.resize(config_.values.size());
    keys_.resize(config_.keys.size());
    raw_values_.resize(all_columns_.size());
    timestamp_cache_.resize(all_columns_.size());
    plain_key_ = config_.keys.size() == 1 && config_.keys[0].column.kind != sink_kind::timestamp;
    max_in_flight_ = static_cast<size_t>(config_.batch_size) * kWindowBatches;
    if (config_.format == sink_format::avro || config_.format == sink_format::protobuf) {
      encoding.schema_id = register_schema(encoding.columns);
    }
    if (worker_stop_requested) return;
    encoder_ = make_sink_encoder(encoding);
    producer_ = std::make_unique<producer>(config_.brokers, producer_properties());
    producer_->set_close_timeout(std::chrono::milliseconds(1000));
    producer_->set_delivery_listener([this](uint64_t tag, rd_kafka_resp_err_t err) { on_delivery(tag, err); });
    int wakeup = producer_->wakeup_fd();
    wait_set_ = latch_wait_set(wakeup);
    pg_call([this] {
      MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
      row_context_ = AllocSetContextCreate(TopMemoryContext, "streamrec sink row", ALLOCSET_DEFAULT_SIZES);
      chunk_context_ = AllocSetContextCreate(TopMemoryContext, "streamrec sink chunk", ALLOCSET_DEFAULT_SIZES);
      MemoryContextSwitchTo(old);
    });
    set_state("running");
    while (!worker_stop_requested) {
      reload_config_if_requested();
      bool busy = false;
      try {
        busy = step(false);
        failures_ = 0;
      } catch (const PgError& e) {
        recover_from_failure(e.what());
      } catch (const Error& e) {
        recover_from_failure(e.what());
      } catch (const kafka_error& e) {
        if (e.fatal()) throw;
        recover_from_failure(e.what());
      }
      if (!busy) wait_for_work();
    }
    set_state("stopping");
    finish_in_flight();
  }

  void set_state(const char* state, const std::string& error = {}) {
    state_ = state;
    set_worker_state(launch_.slot, state, error);
  }

 private:
  producer::properties producer_properties() const {
    producer::properties p = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        // Never give up on a message: while the broker is away rows wait (in librdkafka and in
        // the outbox), and are delivered in order once it is back.
        {"message.timeout.ms", "0"},
        {"linger.ms", "2"},
        // The whole window fits librdkafka's queue: producing never waits for queue space. No
        // byte bound either (the window's rows are held by this worker anyway): a byte limit
        // could refuse a large message and take a smaller one after it, out of order.
        {"queue.buffering.max.messages", std::to_string(std::max<size_t>(100000, max_in_flight_ + 1000))},
        {"queue.buffering.max.kbytes", "2147483647"},
        // Java clients' partitioner: the same key lands on the same partition as theirs would.
        {"partitioner", "murmur2_random"},
        {"client.id", "pg_streamrec-sink-" + config_.name},
    };
    for (const auto& [k, v] : config_.kafka) p[k] = v;
    return p;
  }

  // Registers the Avro or Protobuf schema derived from the columns under the subject; waits
  // while the registry is unreachable.
  int32_t register_schema(const std::vector<sink_column>& columns) {
    const bool protobuf = config_.format == sink_format::protobuf;
    std::string schema =
        protobuf ? protobuf_value_schema(config_.topic, columns) : avro_value_schema(config_.topic, columns);
    schema_registry_client registry(config_.schema_registry);
    for (int attempt = 0; !worker_stop_requested; attempt++) {
      try {
        if (protobuf) return registry.register_schema(config_.subject, schema, "PROTOBUF", {});
        return registry.register_schema(config_.subject, schema);
      } catch (const registry_error& e) {
        if (!e.transient())
          throw Error(ERRCODE_INVALID_PARAMETER_VALUE,
                      "schema registry refused the sink's schema for subject \"" + config_.subject + "\": " + e.what(),
                      "", "Check the subject's compatibility settings, or use another subject option.");
        set_state("waiting for schema registry", e.what());
        backoff_on_latch(attempt, 200, 10000);
      }
    }
    return 0;
  }

  // Delivery reports (served by poll on this thread): count them against their batch. Reports
  // of batches given up by recover_from_failure find no batch and are ignored.
  void on_delivery(uint64_t tag, rd_kafka_resp_err_t err) {
    uint64_t seq = tag >> kTagIndexBits;
    if (window_.empty() || seq < window_.front().seq || seq > window_.back().seq) return;
    InFlightBatch& batch = window_[seq - window_.front().seq];
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
      batch.acknowledged++;
    else if (row_refusal(err))
      batch.refused_rows.emplace_back(static_cast<size_t>(tag & ((uint64_t{1} << kTagIndexBits) - 1)), err);
    else
      batch.refused++;
  }

  size_t rows_in_flight() const {
    size_t rows = 0;
    for (const InFlightBatch& b : window_) rows += b.messages;
    return rows;
  }

  // One turn: serve acknowledgements; in one transaction read, encode and produce the next
  // batch (when the window has room and the outbox may hold rows) and delete the rows of the
  // batches acknowledged in full. True when it did something and should go on at once.
  bool step(bool stopping) {
    producer_->clear_wakeup();
    producer_->poll();
    producer_->throw_if_fatal();
    size_t retiring = 0;
    for (const InFlightBatch& b : window_) {
      if (!b.complete()) break;
      if (b.refused > 0) {
        // Some message was refused for good (librdkafka retries transient errors forever here).
        // Nothing from this batch on is deleted: it is read and sent again, duplicates rather
        // than a loss.
        std::string error = producer_->take_delivery_error().value_or("delivery failed");
        throw Error(ERRCODE_CONNECTION_FAILURE, "delivery to topic \"" + config_.topic + "\" failed: " + error);
      }
      retiring++;
    }
    report_broker_wait();
    auto now = std::chrono::steady_clock::now();
    bool may_read = !stopping && now >= next_read_at_ && rows_in_flight() + config_.batch_size <= max_in_flight_;
    if (retiring == 0 && !may_read) return false;

    begin_transaction();
    binary_outbox_ = pg_call([] { return outbox_takes_binary(); });
    bool full = false;
    if (may_read) {
      check_select_privilege();
      read_and_produce(full);
    }
    if (retiring > 0) acknowledge(retiring);
    commit_transaction();
    for (size_t i = 0; i < retiring; i++) {
      record_batch(window_.front());
      window_.pop_front();
    }
    if (may_read) next_read_at_ = full ? now : now + std::chrono::milliseconds(kIdlePollMs);
    if (state_ != "running" && (window_.empty() || !overdue(window_.front()))) set_state("running");
    return full || retiring > 0;
  }

  void check_select_privilege() {
    Oid relation = config_.relation;
    AclResult select_ok = pg_call([relation] { return pg_class_aclcheck(relation, GetUserId(), ACL_SELECT); });
    if (select_ok != ACLCHECK_OK)
      throw Error(ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied to read the sink's relation", "",
                  "The worker runs as the sink's owner; GRANT SELECT on the relation to that role.");
    // Row-level security enabled after create_sink: the owner may no longer see every row.
    if (pg_call([relation] { return check_enable_rls(relation, InvalidOid, true); }) == RLS_ENABLED)
      throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                  "row-level security on the sink's relation applies to the sink's owner", "",
                  "A sink ships every inserted row, so its owner must see them all: disable row-level security, or "
                  "let the owner bypass it (BYPASSRLS, or owning the table without FORCE ROW LEVEL SECURITY).");
  }

  // Reads one batch (rows committed late into a range already passed, else the rows after the
  // last id read), encodes and produces it. Sets `full` when it hit the batch size.
  size_t read_and_produce(bool& full) {
    Snapshot snapshot = pg_call([] { return GetActiveSnapshot(); });
    LateRange* late = resolvable_late_range(snapshot);
    int64 above = late != nullptr ? late->lo : cursor_;
    int64 up_to = late != nullptr ? late->hi : INT64_MAX;
    if (name_datum_ == 0) keep_name_datum();
    Datum args[4] = {name_datum_, Int64GetDatum(above), Int64GetDatum(up_to), Int64GetDatum(config_.batch_size)};
    int rc = (binary_outbox_ ? read_plan_ : read_jsonb_plan_).execute(args, nullptr, true);
    // A SELECT that does not raise always reports SPI_OK_SELECT: cannot happen, so internal.
    if (rc != SPI_OK_SELECT) throw Error(ERRCODE_INTERNAL_ERROR, "cannot read streamrec.sink_outbox");
    size_t chunks = SPI_processed;
    if (chunks == 0) {
      full = false;
      if (late != nullptr) late_.erase(late_.begin() + (late - late_.data()));
      return 0;
    }
    InFlightBatch& batch = window_.emplace_back();
    batch.seq = next_seq_++;
    batch.tids.reserve(chunks);
    size_t rows = produce_rows(chunks, batch);
    full = rows >= static_cast<size_t>(config_.batch_size);
    batch.sent_at = std::chrono::steady_clock::now();
    if (late != nullptr) {
      late->lo = batch.max_id;
      if (!full) late_.erase(late_.begin() + (late - late_.data()));
      full = true;  // other late ranges or new rows may be waiting: look again at once
    } else {
      remember_running_transactions(snapshot, cursor_, batch.max_id);
      cursor_ = batch.max_id;
    }
    return rows;
  }

  // Encodes and produces the rows of the `chunks` outbox rows read; returns how many rows.
  size_t produce_rows(size_t chunks, InFlightBatch& batch) {
    RowColumns columns{all_columns_.data(), static_cast<int>(all_columns_.size())};
    RawRow* raw = &raw_row_;
    raw->values = raw_values_.data();
    MemoryContext row_context = row_context_;
    MemoryContext chunk_context = chunk_context_;
    size_t rows = 0;
    for (size_t c = 0; c < chunks; c++) {
      int64 id = 0;
      ItemPointerData tid;
      JsonbContainer* root = nullptr;
      int count = 0;
      bytea* data = nullptr;
      int spi_row = static_cast<int>(c);
      pg_call([chunk_context, spi_row, &id, &tid, &root, &count, &data] {
        MemoryContextReset(chunk_context);
        MemoryContext old = MemoryContextSwitchTo(chunk_context);
        open_chunk(spi_row, &id, &tid, &root, &count, &data);
        MemoryContextSwitchTo(old);
      });
      batch.min_id = std::min(batch.min_id, id);
      batch.max_id = std::max(batch.max_id, id);
      if (data != nullptr) {
        try {
          binary_chunk_.read(std::string_view(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data)));
        } catch (const format_error& e) {
          // Not a chunk this worker can read: nothing of it is produced, and it stays in the
          // outbox with the reason (no longer read), as a row no format can hold does.
          batch.unreadable.emplace_back(id, e.what());
          continue;
        }
        batch.tids.push_back(tid);
        map_chunk_columns();
        for (size_t r = 0; r < binary_chunk_.rows(); r++) {
          rows++;
          stage_binary_row(batch, id, spi_row, r);
          if (staged_.size() == kProduceChunk) produce_staged(batch);
        }
        continue;
      }
      batch.tids.push_back(tid);
      // count -1: the payload is one row.
      for (int index = count < 0 ? -1 : 0; index < std::max(count, 0); index++) {
        JsonbContainer* payload = nullptr;
        pg_call([row_context, root, index, &columns, raw, &payload] {
          MemoryContextReset(row_context);
          MemoryContext old = MemoryContextSwitchTo(row_context);
          raw->elements = nullptr;
          raw->element_capacity = 0;
          payload = chunk_row(root, index);
          extract_row(payload, &columns, raw);
          MemoryContextSwitchTo(old);
        });
        rows++;
        stage_row(batch, id, spi_row, index, payload);
        if (staged_.size() == kProduceChunk) produce_staged(batch);
      }
    }
    produce_staged(batch);
    return rows;
  }

  // Encodes the row of a jsonb chunk just extracted and stages its message, or notes it as failed.
  void stage_row(InFlightBatch& batch, int64 id, int spi_row, int index, JsonbContainer* payload) {
    RawRow* raw = &raw_row_;
    try {
      for (size_t v = 0; v < values_.size(); v++)
        to_sink_value(config_.values[v], *raw, raw->values[v], timestamp_cache_[v], values_[v]);
      for (size_t k = 0; k < keys_.size(); k++)
        to_sink_value(config_.keys[k], *raw, raw->values[values_.size() + k], timestamp_cache_[values_.size() + k],
                      keys_[k]);
      stage_message(id, spi_row, index);
    } catch (const format_error& e) {
      unstage_partial();
      batch.failed.push_back({id, e.what(), json_text(payload)});
    }
  }

  // Where each column the sink reads is in the binary chunk just read, and whether its values
  // can be taken as they are: the chunk holds the type the column has now, one the sink takes
  // straight (see FetchedColumn::direct). Any other column (one whose type changed while its
  // rows waited, and types printed through their output function) converts each value as it
  // would from a jsonb chunk, from the jsonb to_jsonb would have made of it.
  void map_chunk_columns() {
    binary_sources_.resize(all_columns_.size());
    binary_needs_pg_ = false;
    for (size_t i = 0; i < all_columns_.size(); i++) {
      const FetchedColumn& f = *all_columns_[i];
      BinarySource& source = binary_sources_[i];
      source.index = binary_chunk_.column_index(f.column.name);
      source.direct = false;
      if (source.index < 0) continue;  // a column the rows do not have is NULL, as in a jsonb chunk
      const outbox_column& held = binary_chunk_.columns()[static_cast<size_t>(source.index)];
      source.direct = f.direct && held.type == f.type && held.array == f.column.array;
      binary_needs_pg_ = binary_needs_pg_ || !source.direct;
    }
  }

  // Row `r` of the binary chunk just read: its values, encoded and staged (or noted as failed).
  void stage_binary_row(InFlightBatch& batch, int64 id, int spi_row, size_t r) {
    try {
      if (binary_needs_pg_) {
        MemoryContext row_context = row_context_;
        RawRow* raw = &raw_row_;
        pg_call([row_context, raw] {
          MemoryContextReset(row_context);
          raw->elements = nullptr;
          raw->element_capacity = 0;
          raw->element_count = 0;
        });
      }
      size_t value_count = values_.size();
      for (size_t i = 0; i < all_columns_.size(); i++) {
        sink_value& out = i < value_count ? values_[i] : keys_[i - value_count];
        const BinarySource& source = binary_sources_[i];
        if (source.index < 0) {
          set_null(out);
        } else {
          const outbox_value& v = binary_chunk_.value(r, static_cast<size_t>(source.index));
          if (!source.direct || !direct_value(*all_columns_[i], v, out)) converted_value(i, source.index, v, out);
        }
      }
      stage_message(id, spi_row, static_cast<int>(r));
    } catch (const format_error& e) {
      unstage_partial();
      batch.failed.push_back({id, e.what(), binary_row_json(r)});
    }
  }

  static void set_null(sink_value& out) {
    out.null = true;
    out.infinite = false;
    out.epoch_us = 0;
    out.text.clear();
    out.elements.clear();
  }

  // One value of a direct column, straight from the chunk; false for a shape the column's type
  // does not write (then it is converted as any other).
  bool direct_value(const FetchedColumn& f, const outbox_value& v, sink_value& out) {
    if (v.null()) {
      set_null(out);
      return true;
    }
    out.null = false;
    out.infinite = false;
    out.epoch_us = 0;
    out.text.clear();
    if (v.tag == outbox_tag::array) {
      out.elements.resize(v.count);
      for (uint32_t e = 0; e < v.count; e++) {
        const outbox_value& element = binary_chunk_.elements()[v.first + e];
        std::optional<std::string>& text = out.elements[e];
        if (element.null()) {
          text.reset();
          continue;
        }
        if (!text) text.emplace();
        if (!direct_text(element, *text)) return false;
      }
      return true;
    }
    out.elements.clear();
    if (v.tag == outbox_tag::timestamp) {
      if (f.type != TIMESTAMPTZOID && f.type != TIMESTAMPOID) return false;
      out.infinite = v.number == kOutboxTimestampInfinity || v.number == kOutboxTimestampMinusInfinity;
      out.epoch_us =
          out.infinite ? (v.number < 0 ? -1 : 1) : v.number + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
      return true;
    }
    if (f.type == TIMESTAMPTZOID || f.type == TIMESTAMPOID) return false;
    return direct_text(v, out.text);
  }

  // A direct scalar's text as PostgreSQL prints it: text as it is, integers in decimal, booleans
  // as t and f.
  static bool direct_text(const outbox_value& v, std::string& out) {
    switch (v.tag) {
      case outbox_tag::text:
        out.assign(v.text);
        return true;
      case outbox_tag::integer: {
        char digits[24];
        auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v.number);
        out.assign(digits, static_cast<size_t>(end - digits));
        return true;
      }
      case outbox_tag::true_value:
      case outbox_tag::false_value:
        out.assign(v.tag == outbox_tag::true_value ? "t" : "f");
        return true;
      default:
        return false;
    }
  }

  // Any other value: its jsonb (as to_jsonb made it) through the jsonb chunk's conversion.
  void converted_value(size_t i, int index, const outbox_value& v, sink_value& out) {
    const FetchedColumn* f = all_columns_[i];
    const outbox_chunk* chunk = &binary_chunk_;
    const outbox_column* column = &binary_chunk_.columns()[static_cast<size_t>(index)];
    const outbox_value* value = &v;
    RawRow* raw = &raw_row_;
    RawValue* target = &raw_values_[i];
    MemoryContext row_context = row_context_;
    pg_call([f, chunk, column, value, raw, target, row_context] {
      MemoryContext old = MemoryContextSwitchTo(row_context);
      extract_found(f, outbox_value_jsonb(*chunk, *column, *value), raw, target);
      MemoryContextSwitchTo(old);
    });
    to_sink_value(*f, raw_row_, *target, timestamp_cache_[i], out);
  }

  // Encodes the row in values_ and keys_ and stages its message.
  void stage_message(int64 id, int spi_row, int index) {
    StagedMessage m{id, spi_row, index, false, staged_bytes_.size(), 0, 0, 0};
    if (plain_key_) {
      if (!keys_[0].null) {
        m.has_key = true;
        staged_bytes_ += keys_[0].text;
      }
    } else if (!keys_.empty()) {
      key_ = encode_sink_key(key_columns_, keys_);
      if (key_) {
        m.has_key = true;
        staged_bytes_ += *key_;
      }
    }
    m.key_length = staged_bytes_.size() - m.key_offset;
    m.value_offset = staged_bytes_.size();
    encoder_->encode(values_, staged_bytes_);  // appends
    m.value_length = staged_bytes_.size() - m.value_offset;
    staged_.push_back(m);
  }

  // Drops what a row that failed to encode left in staged_bytes_.
  void unstage_partial() {
    staged_bytes_.resize(staged_.empty() ? 0 : staged_.back().value_offset + staged_.back().value_length);
  }

  // Row `r` of the binary chunk just read, as jsonb text (in the row memory context).
  std::string binary_row_json(size_t r) {
    const outbox_chunk* chunk = &binary_chunk_;
    MemoryContext row_context = row_context_;
    const char* text = pg_call([chunk, r, row_context] {
      MemoryContext old = MemoryContextSwitchTo(row_context);
      Jsonb* row = outbox_row_jsonb(*chunk, r);
      char* t = row_json(&row->root);
      MemoryContextSwitchTo(old);
      return t;
    });
    return std::string(text);
  }

  // A row's jsonb as text (in the row memory context, which the next row resets).
  std::string json_text(JsonbContainer* payload) {
    MemoryContext row_context = row_context_;
    const char* text = pg_call([row_context, payload] {
      MemoryContext old = MemoryContextSwitchTo(row_context);
      char* t = row_json(payload);
      MemoryContextSwitchTo(old);
      return t;
    });
    return std::string(text);
  }

  // Row `index` of outbox row `spi_row` of the current read, as jsonb text.
  std::string json_text_of(int spi_row, int index) {
    MemoryContext row_context = row_context_;
    bytea* data = nullptr;
    const char* text = pg_call([row_context, spi_row, index, &data] {
      MemoryContext old = MemoryContextSwitchTo(row_context);
      int64 id = 0;
      ItemPointerData tid;
      JsonbContainer* root = nullptr;
      int count = 0;
      open_chunk(spi_row, &id, &tid, &root, &count, &data);
      char* t = data == nullptr ? row_json(chunk_row(root, index)) : nullptr;
      MemoryContextSwitchTo(old);
      return t;
    });
    if (data == nullptr) return std::string(text);
    // A binary chunk (read once already, so readable).
    outbox_chunk chunk;
    chunk.read(std::string_view(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data)));
    const outbox_chunk* read = &chunk;
    size_t r = static_cast<size_t>(index);
    text = pg_call([read, r, row_context] {
      MemoryContext old = MemoryContextSwitchTo(row_context);
      char* t = row_json(&outbox_row_jsonb(*read, r)->root);
      MemoryContextSwitchTo(old);
      return t;
    });
    return std::string(text);
  }

  // Hands the staged messages to librdkafka in one call.
  void produce_staged(InFlightBatch& batch) {
    chunk_.clear();
    for (const StagedMessage& m : staged_) {
      producer::batch_message out;
      if (m.has_key) out.key = std::string_view(staged_bytes_).substr(m.key_offset, m.key_length);
      out.value = std::string_view(staged_bytes_).substr(m.value_offset, m.value_length);
      out.tag = (batch.seq << kTagIndexBits) | batch.sent.size();
      batch.sent.emplace_back(m.id, m.chunk_index);
      chunk_.push_back(out);
    }
    std::vector<producer::refused_message> refused = producer_->produce_batch(config_.topic, chunk_);
    size_t next_refused = 0;
    for (size_t i = 0; i < staged_.size(); i++) {
      if (next_refused < refused.size() && refused[next_refused].index == i) {
        batch.failed.push_back(
            {staged_[i].id, std::string("Kafka refused the message: ") + rd_kafka_err2str(refused[next_refused].err),
             json_text_of(staged_[i].spi_row, staged_[i].chunk_index)});
        next_refused++;
        continue;
      }
      batch.messages++;
    }
    staged_.clear();
    staged_bytes_.clear();
  }

  // The sink's name as a text Datum that lives as long as the worker.
  void keep_name_datum() {
    name_datum_ = pg_call([this] {
      MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
      Datum d = PointerGetDatum(cstring_to_text_with_len(config_.name.data(), static_cast<int>(config_.name.size())));
      MemoryContextSwitchTo(old);
      return d;
    });
  }

  // Whether `xid` may still be running as far as `snapshot` knows.
  static bool running(TransactionId xid, Snapshot snapshot) {
    return pg_call([xid, snapshot] { return XidInMVCCSnapshot(xid, snapshot); });
  }

  // After a read of ids (lo, hi]: the transactions the read could not see the end of. Any row
  // they add has an id above hi unless they held ids already (the outbox sequence hands them out
  // in time order), and then they are in this list.
  void remember_running_transactions(Snapshot snapshot, int64 lo, int64 hi) {
    TransactionId next = pg_call([] { return ReadNextTransactionId(); });
    if (snapshot->xcnt == 0 && snapshot->xmax == next) return;
    LateRange range{lo, hi, std::vector<TransactionId>(snapshot->xip, snapshot->xip + snapshot->xcnt), snapshot->xmax,
                    next};
    if (late_.size() < kMaxLateRanges) {
      late_.push_back(std::move(range));
      return;
    }
    // A transaction that stays open (say, a prepared one) holds every range back; the newest
    // range then takes in this one rather than the list growing with each read. The ids between
    // them hold no row to find: that read saw no transaction running.
    LateRange& last = late_.back();
    std::vector<TransactionId> still_running;
    for (TransactionId xid : last.running)
      if (running(xid, snapshot)) still_running.push_back(xid);
    if (last.unseen_to - last.unseen_from <= 1024) {
      for (TransactionId xid = last.unseen_from; xid != last.unseen_to;) {
        if (running(xid, snapshot)) still_running.push_back(xid);
        TransactionIdAdvance(xid);
      }
      last.unseen_from = range.unseen_from;
    }
    for (TransactionId xid : range.running)
      if (std::find(still_running.begin(), still_running.end(), xid) == still_running.end())
        still_running.push_back(xid);
    last.running = std::move(still_running);
    last.unseen_to = range.unseen_to;
    last.hi = hi;
  }

  // A late range whose transactions all ended (as of this transaction's snapshot) and of which
  // no batch is in flight, or nullptr.
  LateRange* resolvable_late_range(Snapshot snapshot) {
    for (size_t i = 0; i < late_.size(); i++) {
      if (!resolvable(late_[i], late_[i].lo, snapshot)) continue;
      // Resolvable neighbours join it: one read covers them all (the ids between them that no
      // range holds are deleted or were never this sink's).
      size_t last = i;
      while (last + 1 < late_.size() && resolvable(late_[last + 1], late_[i].lo, snapshot)) last++;
      late_[i].hi = late_[last].hi;
      late_[i].running.clear();
      late_[i].unseen_from = late_[i].unseen_to;
      late_.erase(late_.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                  late_.begin() + static_cast<std::ptrdiff_t>(last) + 1);
      return &late_[i];
    }
    return nullptr;
  }

  // Whether `range` may be read again: its transactions ended and no batch in flight holds ids
  // in (from, range.hi].
  bool resolvable(const LateRange& range, int64 from, Snapshot snapshot) const {
    for (const InFlightBatch& b : window_)
      if (b.max_id > from && b.min_id <= range.hi) return false;
    for (TransactionId xid : range.running)
      if (running(xid, snapshot)) return false;
    uint32 unseen = range.unseen_to - range.unseen_from;
    if (unseen > 1024) return TransactionIdFollowsOrEquals(snapshot->xmin, range.unseen_to);
    for (TransactionId xid = range.unseen_from; xid != range.unseen_to;) {
      if (running(xid, snapshot)) return false;
      TransactionIdAdvance(xid);
    }
    return true;
  }

  // The outbox rows of the first `count` batches leave the outbox once delivered; their
  // unencodable rows stay, one outbox row each with its reason; in the caller's transaction.
  void acknowledge(size_t count) {
    for (size_t i = 0; i < count; i++) {
      const InFlightBatch& batch = window_[i];
      // A statement on the outbox reports another command only when someone added a rule to it.
      // Rows the broker refused for good: copied out of their chunk before it is deleted.
      for (const auto& [index, err] : batch.refused_rows) {
        const auto& [id, chunk_index] = batch.sent[index];
        Datum args[4] = {name_datum_, Int64GetDatum(id), Int32GetDatum(chunk_index),
                         text_datum(std::string("Kafka refused the message: ") + rd_kafka_err2str(err))};
        KeptPlan& keep = binary_outbox_ ? keep_refused_plan_ : keep_refused_jsonb_plan_;
        if (keep.execute(args, nullptr, false) != SPI_OK_INSERT)
          throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "cannot keep a refused row in streamrec.sink_outbox",
                      "", "Drop the rule that rewrites INSERTs into streamrec.sink_outbox.");
      }
      for (const auto& [id, error] : batch.unreadable) {
        Datum args[3] = {name_datum_, Int64GetDatum(id), text_datum("unreadable outbox chunk: " + error)};
        if (set_aside_plan_.execute(args, nullptr, false) != SPI_OK_UPDATE)
          throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "cannot update streamrec.sink_outbox", "",
                      "Drop the rule that rewrites UPDATEs on streamrec.sink_outbox.");
      }
      if (!batch.tids.empty()) {
        Datum args[4] = {name_datum_, tid_array_datum(batch.tids), Int64GetDatum(batch.min_id),
                         Int64GetDatum(batch.max_id)};
        if (delete_plan_.execute(args, nullptr, false) != SPI_OK_DELETE)
          throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "cannot delete from streamrec.sink_outbox", "",
                      "Drop the rule that rewrites DELETEs on streamrec.sink_outbox.");
      }
      for (const FailedRow& f : batch.failed) {
        Datum args[3] = {name_datum_, text_datum(f.payload), text_datum(f.error)};
        if (keep_failed_plan_.execute(args, nullptr, false) != SPI_OK_INSERT)
          throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "cannot keep a failed row in streamrec.sink_outbox", "",
                      "Drop the rule that rewrites INSERTs into streamrec.sink_outbox.");
      }
    }
  }

  bool overdue(const InFlightBatch& batch) const {
    return !batch.complete() && std::chrono::steady_clock::now() - batch.sent_at > kBrokerPatience;
  }

  void report_broker_wait() {
    if (window_.empty() || !overdue(window_.front()) || state_ == "waiting for broker") return;
    std::string why = producer_->last_client_error();
    set_state("waiting for broker", why.empty() ? "no acknowledgement from the broker yet" : why);
  }

  // Sleeps until a delivery report, the latch, or the next look at the outbox.
  void wait_for_work() {
    long timeout = 100;
    if (rows_in_flight() + config_.batch_size <= max_in_flight_) {
      // Rounded up: a wait of 0 ms until the next read would spin.
      auto until = std::chrono::ceil<std::chrono::milliseconds>(next_read_at_ - std::chrono::steady_clock::now());
      timeout = std::clamp<long>(until.count(), 1, kIdlePollMs);
    }
    wait_on_latch(timeout, wait_set_);
  }

  // Stopping (pause, drop, shutdown): gives the batches in flight a moment to be acknowledged
  // and deleted, so a pause does not send them again later.
  void finish_in_flight() {
    if (!producer_) return;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    try {
      while (!window_.empty() && std::chrono::steady_clock::now() < deadline) {
        if (!step(true)) producer_->poll(std::chrono::milliseconds(10));
      }
    } catch (const std::exception&) {
      abort_transaction();  // whatever is left is sent again by the next worker
    }
  }

  void record_batch(const InFlightBatch& batch) {
    WorkerSlot* slot = worker_slot(launch_.slot);
    TimestampTz now = GetCurrentTimestamp();
    size_t produced = batch.messages - batch.refused_rows.size();
    // Built before the spinlock: nothing that may allocate or throw runs while it is held.
    std::string error;
    if (!batch.refused_rows.empty())
      error = "a row of outbox chunk " + std::to_string(batch.sent[batch.refused_rows.back().first].first) +
              ": Kafka refused the message: " + rd_kafka_err2str(batch.refused_rows.back().second);
    else if (!batch.failed.empty())
      error = "a row of outbox chunk " + std::to_string(batch.failed.back().id) + ": " + batch.failed.back().error;
    else if (!batch.unreadable.empty())
      error = "outbox chunk " + std::to_string(batch.unreadable.back().first) +
              " set aside: " + batch.unreadable.back().second;
    SpinLockAcquire(&slot->mutex);
    slot->stats.messages += static_cast<int64>(produced);
    slot->stats.rows += static_cast<int64>(produced);
    slot->stats.dead_letters +=
        static_cast<int64>(batch.failed.size() + batch.refused_rows.size() + batch.unreadable.size());
    slot->stats.batches++;
    if (produced > 0) slot->stats.last_message_at = now;
    if (!error.empty()) {
      strlcpy(slot->stats.last_error, error.c_str(), sizeof slot->stats.last_error);
      slot->stats.last_error_at = now;
    }
    SpinLockRelease(&slot->mutex);
  }

  // Gives up the batches in flight (their messages may still arrive: duplicates, not losses)
  // and reads the outbox again from its start.
  void recover_from_failure(const std::string& error) {
    abort_transaction();
    window_.clear();
    late_.clear();
    cursor_ = 0;
    next_read_at_ = {};
    set_state("retrying", error);
    backoff_on_latch(++failures_, 200, 10000);
  }

  WorkerLaunch launch_;
  SinkConfig config_;
  std::vector<sink_column> key_columns_;
  std::vector<const FetchedColumn*> all_columns_;  // values then keys
  std::unique_ptr<sink_encoder> encoder_;
  std::string state_;
  int failures_ = 0;

  // Per-row scratch, reused.
  std::vector<RawValue> raw_values_;
  std::vector<TimestampCache> timestamp_cache_;  // per column, values then keys
  RawRow raw_row_{};
  std::vector<sink_value> values_;
  std::vector<sink_value> keys_;
  std::optional<std::string> key_;
  std::vector<StagedMessage> staged_;
  std::string staged_bytes_;
  std::vector<producer::batch_message> chunk_;
  bool plain_key_ = false;  // one non-timestamp key column: the key is its text

  // The binary chunk being produced, and where each column the sink reads is in it.
  struct BinarySource {
    int index = -1;  // the chunk's column, or -1: the rows do not have it (NULL)
    bool direct = false;
  };
  outbox_chunk binary_chunk_;
  std::vector<BinarySource> binary_sources_;
  bool binary_needs_pg_ = false;  // some column converts through jsonb

  // PostgreSQL objects kept across transactions.
  KeptPlan read_plan_{kReadSql, {TEXTOID, INT8OID, INT8OID, INT8OID}, PlanChoice::planner};
  KeptPlan read_jsonb_plan_{kReadJsonbSql, {TEXTOID, INT8OID, INT8OID, INT8OID}, PlanChoice::planner};
  // Only this worker updates outbox rows, so a row read keeps its ctid until deleted; the id
  // range guards against a slot reused after someone else deleted a row meanwhile (a row
  // inserted later has a higher id).
  KeptPlan delete_plan_{
      "DELETE FROM streamrec.sink_outbox WHERE ctid = ANY ($2) AND sink = $1 AND id BETWEEN $3 AND $4",
      {TEXTOID, TIDARRAYOID, INT8OID, INT8OID},
      PlanChoice::planner};
  KeptPlan keep_failed_plan_{"INSERT INTO streamrec.sink_outbox(sink, payload, error) VALUES ($1, $2::jsonb, $3)",
                             {TEXTOID, TEXTOID, TEXTOID},
                             PlanChoice::planner};
  // A refused row of a chunk as jsonb ($3: its place in the chunk, -1 for a jsonb chunk that is
  // the row itself).
  KeptPlan keep_refused_plan_{
      "INSERT INTO streamrec.sink_outbox(sink, payload, error) SELECT o.sink, CASE WHEN o.data IS NOT NULL THEN "
      "(SELECT r.row_json FROM streamrec.outbox_rows(o) r WHERE r.ordinal = $3 + 1) WHEN $3 < 0 THEN o.payload "
      "ELSE o.payload -> $3 END, $4 FROM streamrec.sink_outbox o WHERE o.sink = $1 AND o.id = $2",
      {TEXTOID, INT8OID, INT4OID, TEXTOID},
      PlanChoice::planner};
  KeptPlan keep_refused_jsonb_plan_{
      "INSERT INTO streamrec.sink_outbox(sink, payload, error) SELECT o.sink, CASE WHEN $3 < 0 THEN o.payload "
      "ELSE o.payload -> $3 END, $4 FROM streamrec.sink_outbox o WHERE o.sink = $1 AND o.id = $2",
      {TEXTOID, INT8OID, INT4OID, TEXTOID},
      PlanChoice::planner};
  KeptPlan set_aside_plan_{"UPDATE streamrec.sink_outbox SET error = $3 WHERE sink = $1 AND id = $2",
                           {TEXTOID, INT8OID, TEXTOID},
                           PlanChoice::planner};
  bool binary_outbox_ = false;  // the outbox has binary chunks (see outbox_takes_binary)
  Datum name_datum_ = 0;
  MemoryContext row_context_ = nullptr;
  MemoryContext chunk_context_ = nullptr;  // the payload of the outbox row being read
  WaitEventSet* wait_set_ = nullptr;       // the latch, postmaster death, delivery reports

  // The window; declared before the producer, whose reports it counts.
  std::deque<InFlightBatch> window_;
  std::vector<LateRange> late_;
  uint64_t next_seq_ = 1;
  int64 cursor_ = 0;  // the highest outbox id read in order
  size_t max_in_flight_ = 0;
  std::chrono::steady_clock::time_point next_read_at_{};
  std::unique_ptr<producer> producer_;
};

}  // namespace
}  // namespace streamrec

extern "C" void streamrec_sink_main(Datum) {
  streamrec::run_background_worker<streamrec::SinkWorker>(streamrec::WorkerKind::sink, "sink");
}
