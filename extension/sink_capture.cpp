// The outbox trigger of a sink: copies the rows a statement
// inserted into streamrec.sink_outbox, in the inserting transaction, one outbox row per chunk of
// up to 1,000 rows or about 8 MB. The outbox then pays its per-row costs (heap tuple, index
// entry, WAL record, and the worker's delete) once per chunk.
//
// A chunk is binary (column data; core/formats/outbox_rows.h): the column names and types once,
// then each row's values typed, written straight from the transition table. Columns of the
// common types (text, integers, floats, numeric, boolean, dates and timestamps, other built-in
// scalars, and arrays of them) are written as integers, booleans, timestamps (PostgreSQL's
// microseconds) or text (PostgreSQL's output text; numbers as to_jsonb would read them, dates as
// to_jsonb spells them), so that streamrec.outbox_rows() renders each row exactly as
// to_jsonb(row). A statement on a table with any other column type (json, composite, enum or
// other user-defined types, whose to_jsonb may involve casts) runs the capture in SQL instead,
// into jsonb chunks (column payload: a jsonb array of to_jsonb(row), or the row itself for a
// chunk of one; 1,000 rows a chunk, without the byte bound). An outbox created before the binary
// chunks (no column data: the extension not yet updated) gets jsonb chunks from this code too.
//
// The trigger is SECURITY DEFINER (whoever inserts must be able to append to the outbox), so it
// never runs code a user controls with the extension owner's rights: the SQL capture, whose
// to_jsonb calls the casts to json and the output functions of user-defined types, runs as the
// sink's owner in a security-restricted operation, and only the outbox insert runs as the
// definer. Nor does it ship rows the sink's owner may not read: a table the owner may not
// SELECT, or on which row-level security applies to it (check_enable_rls), is refused, at
// create_sink and here (each statement: a privilege may be revoked after create_sink).
//
// A sink that names its columns (the `key` and `columns` options) installs the trigger with those
// names after its own: then each row holds only those columns, which is all the sink reads. A
// name the table no longer has (a renamed column) makes the capture take every column under the
// table's current names, as it does for a sink without a column list.
#include <string>
#include <vector>

#include "core/formats/outbox_rows.h"

#include "pg/error_boundary.h"
#include "pg/outbox_chunks.h"
#include "pg/spi.h"
#include "pg/trigger_context.h"

extern "C" {
#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "access/transam.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/jsonapi.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
}

namespace streamrec {
namespace {

// Rows per outbox row, and about the most bytes of column values: a jsonb cannot exceed 256 MB,
// and a chunk is built and read whole.
constexpr int64 kChunkRows = 1000;
constexpr Size kChunkBytes = Size{8} * 1024 * 1024;

// How to_jsonb converts a value of a type (jsonb_categorize_type's categories we take on).
enum class JsonKind : char { text, integer, number, boolean, datetime, other, unsupported };

struct CapturedColumn {
  int attnum;  // 0-based
  int16 attlen;
  const char* name;
  int name_len;
  JsonKind kind;
  Oid type;  // the base type, or the array's element type
  bool array;
  Oid output_function;
  int16 element_length;
  bool element_by_value;
  char element_align;
};

// The capture of one statement; PostgreSQL memory only (built and used inside pg_call).
struct Capture {
  CapturedColumn* columns;
  int column_count;
  bool supported;
};

JsonKind kind_of(Oid type) {
  switch (type) {
    case TEXTOID:
    case VARCHAROID:
      return JsonKind::text;
    case INT2OID:
    case INT4OID:
    case INT8OID:
      return JsonKind::integer;
    case FLOAT4OID:
    case FLOAT8OID:
    case NUMERICOID:
      return JsonKind::number;
    case BOOLOID:
      return JsonKind::boolean;
    case DATEOID:
    case TIMESTAMPOID:
    case TIMESTAMPTZOID:
      return JsonKind::datetime;
    case JSONOID:
    case JSONBOID:
    case RECORDOID:
      return JsonKind::unsupported;
    default:
      // Built-in scalars print through their output function, as to_jsonb's "other" category;
      // a user-defined type may have a cast to json that to_jsonb would use.
      if (type >= FirstNormalObjectId || type_is_rowtype(type) || OidIsValid(get_element_type(type)))
        return JsonKind::unsupported;
      return JsonKind::other;
  }
}

// C only from here to the C++ part below: these run inside pg_call.

// wanted: the column names to capture (count 0: every column).
Capture* describe(TupleDesc desc, char** wanted, int wanted_count) {
  if (wanted_count > 0) {
    for (int w = 0; w < wanted_count; w++) {
      bool found = false;
      for (int i = 0; i < desc->natts && !found; i++)
        found =
            !TupleDescAttr(desc, i)->attisdropped && strcmp(NameStr(TupleDescAttr(desc, i)->attname), wanted[w]) == 0;
      if (!found) return describe(desc, nullptr, 0);
    }
  }
  Capture* c = static_cast<Capture*>(palloc0(sizeof(Capture)));
  c->columns = static_cast<CapturedColumn*>(palloc0(sizeof(CapturedColumn) * (desc->natts > 0 ? desc->natts : 1)));
  c->supported = true;
  for (int i = 0; i < desc->natts; i++) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    if (att->attisdropped) continue;
    bool take = wanted_count == 0;
    for (int w = 0; w < wanted_count && !take; w++) take = strcmp(NameStr(att->attname), wanted[w]) == 0;
    if (!take) continue;
    CapturedColumn* col = &c->columns[c->column_count++];
    col->attnum = i;
    col->attlen = att->attlen;
    col->name = NameStr(att->attname);
    col->name_len = static_cast<int>(strlen(col->name));
    Oid type = getBaseType(att->atttypid);
    Oid element = get_element_type(type);
    col->array = OidIsValid(element);
    if (col->array) type = getBaseType(element);
    col->type = type;
    col->kind = kind_of(type);
    if (col->kind == JsonKind::unsupported) {
      c->supported = false;
      continue;
    }
    bool varlena = false;
    getTypeOutputInfo(type, &col->output_function, &varlena);
    if (col->array) get_typlenbyvalalign(type, &col->element_length, &col->element_by_value, &col->element_align);
  }
  return c;
}

// One non-null scalar as to_jsonb makes it (datum_to_jsonb).
void push_scalar(JsonbParseState** state, JsonbIteratorToken token, const CapturedColumn* col, Datum value) {
  JsonbValue v;
  switch (col->kind) {
    case JsonKind::text: {
      text* t = DatumGetTextPP(value);
      v.type = jbvString;
      v.val.string.val = VARDATA_ANY(t);
      v.val.string.len = static_cast<int>(VARSIZE_ANY_EXHDR(t));
      break;
    }
    case JsonKind::integer: {
      int64 n = col->type == INT2OID   ? DatumGetInt16(value)
                : col->type == INT4OID ? DatumGetInt32(value)
                                       : DatumGetInt64(value);
      v.type = jbvNumeric;
      v.val.numeric = int64_to_numeric(n);
      break;
    }
    case JsonKind::number: {
      // A valid JSON number becomes one; NaN and infinities stay strings. A finite numeric is
      // that number already (to_jsonb's trip through its text gives the same value and scale).
      if (col->type == NUMERICOID) {
        Numeric n = DatumGetNumeric(value);
        if (!numeric_is_nan(n) && !numeric_is_inf(n)) {
          v.type = jbvNumeric;
          v.val.numeric = n;
          break;
        }
      }
      char* out = OidOutputFunctionCall(col->output_function, value);
      int len = static_cast<int>(strlen(out));
      if (IsValidJsonNumber(out, len)) {
        v.type = jbvNumeric;
        v.val.numeric = DatumGetNumeric(
            DirectFunctionCall3(numeric_in, CStringGetDatum(out), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
      } else {
        v.type = jbvString;
        v.val.string.val = out;
        v.val.string.len = len;
      }
      break;
    }
    case JsonKind::boolean:
      v.type = jbvBool;
      v.val.boolean = DatumGetBool(value);
      break;
    case JsonKind::datetime: {
      char* buf = static_cast<char*>(palloc(MAXDATELEN + 1));
      char* out = JsonEncodeDateTime(buf, value, col->type, nullptr);
      v.type = jbvString;
      v.val.string.val = out;
      v.val.string.len = static_cast<int>(strlen(out));
      break;
    }
    default: {
      char* out = OidOutputFunctionCall(col->output_function, value);
      v.type = jbvString;
      v.val.string.val = out;
      v.val.string.len = static_cast<int>(strlen(out));
      break;
    }
  }
  pushJsonbValue(state, token, &v);
}

// Dimension `dim` of an array from element *index on (array_dim_to_jsonb).
void push_array_dim(JsonbParseState** state, const CapturedColumn* col, int dim, int ndims, const int* dims,
                    const Datum* values, const bool* nulls, int* index) {
  pushJsonbValue(state, WJB_BEGIN_ARRAY, nullptr);
  for (int i = 0; i < dims[dim]; i++) {
    if (dim + 1 == ndims) {
      if (nulls[*index]) {
        JsonbValue v;
        v.type = jbvNull;
        pushJsonbValue(state, WJB_ELEM, &v);
      } else {
        push_scalar(state, WJB_ELEM, col, values[*index]);
      }
      (*index)++;
    } else {
      push_array_dim(state, col, dim + 1, ndims, dims, values, nulls, index);
    }
  }
  pushJsonbValue(state, WJB_END_ARRAY, nullptr);
}

void push_array(JsonbParseState** state, const CapturedColumn* col, Datum value) {
  ArrayType* a = DatumGetArrayTypeP(value);
  int ndims = ARR_NDIM(a);
  if (ndims <= 0) {
    pushJsonbValue(state, WJB_BEGIN_ARRAY, nullptr);
    pushJsonbValue(state, WJB_END_ARRAY, nullptr);
    return;
  }
  Datum* values = nullptr;
  bool* nulls = nullptr;
  int count = 0;
  deconstruct_array(a, col->type, col->element_length, col->element_by_value, col->element_align, &values, &nulls,
                    &count);
  int index = 0;
  push_array_dim(state, col, 0, ndims, ARR_DIMS(a), values, nulls, &index);
}

// One row as an object (composite_to_jsonb).
void push_row(JsonbParseState** state, const Capture* capture, TupleTableSlot* slot) {
  slot_getallattrs(slot);
  pushJsonbValue(state, WJB_BEGIN_OBJECT, nullptr);
  for (int i = 0; i < capture->column_count; i++) {
    const CapturedColumn* col = &capture->columns[i];
    JsonbValue key;
    key.type = jbvString;
    key.val.string.val = const_cast<char*>(col->name);
    key.val.string.len = col->name_len;
    pushJsonbValue(state, WJB_KEY, &key);
    if (slot->tts_isnull[col->attnum]) {
      JsonbValue v;
      v.type = jbvNull;
      pushJsonbValue(state, WJB_VALUE, &v);
    } else if (col->array) {
      push_array(state, col, slot->tts_values[col->attnum]);
    } else {
      push_scalar(state, WJB_VALUE, col, slot->tts_values[col->attnum]);
    }
  }
  pushJsonbValue(state, WJB_END_OBJECT, nullptr);
}

// About how many bytes a row adds to its chunk (the slot is deformed).
Size row_bytes(const Capture* capture, TupleTableSlot* slot) {
  Size bytes = 0;
  for (int i = 0; i < capture->column_count; i++) {
    const CapturedColumn* col = &capture->columns[i];
    bytes += static_cast<Size>(col->name_len) + 8;
    if (slot->tts_isnull[col->attnum]) continue;
    Datum value = slot->tts_values[col->attnum];
    bytes += col->attlen == -1   ? toast_raw_datum_size(value)
             : col->attlen == -2 ? strlen(DatumGetCString(value))
                                 : static_cast<Size>(col->attlen > 8 ? col->attlen : 8);
  }
  return bytes;
}

// ---- Binary chunks.

// The chunk's bytes are built in place behind a bytea header, so the outbox insert copies nothing.
void grow_bytea_buffer(outbox_buffer& buffer, size_t capacity) {
  char* base = buffer.data == nullptr ? static_cast<char*>(palloc(capacity + VARHDRSZ))
                                      : static_cast<char*>(repalloc(buffer.data - VARHDRSZ, capacity + VARHDRSZ));
  buffer.data = base + VARHDRSZ;
  buffer.capacity = capacity;
}

bytea* buffer_bytea(const outbox_buffer& buffer) {
  bytea* b = reinterpret_cast<bytea*>(buffer.data - VARHDRSZ);
  SET_VARSIZE(b, buffer.size + VARHDRSZ);
  return b;
}

void write_text(outbox_writer* w, const char* text) { w->text(text, strlen(text)); }

// One non-null scalar (see the top of the file for what each kind becomes).
void write_scalar(outbox_writer* w, const CapturedColumn* col, Datum value) {
  switch (col->kind) {
    case JsonKind::text: {
      text* t = DatumGetTextPP(value);
      w->text(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
      return;
    }
    case JsonKind::integer:
      w->integer(col->type == INT2OID   ? DatumGetInt16(value)
                 : col->type == INT4OID ? DatumGetInt32(value)
                                        : DatumGetInt64(value));
      return;
    case JsonKind::boolean:
      w->boolean(DatumGetBool(value));
      return;
    case JsonKind::datetime:
      if (col->type != DATEOID) {
        w->timestamp(DatumGetInt64(value));
        return;
      }
      {
        char buf[MAXDATELEN + 1];
        write_text(w, JsonEncodeDateTime(buf, value, DATEOID, nullptr));
      }
      return;
    default:
      write_text(w, OidOutputFunctionCall(col->output_function, value));
      return;
  }
}

void write_array(outbox_writer* w, const CapturedColumn* col, Datum value) {
  ArrayType* a = DatumGetArrayTypeP(value);
  int ndims = ARR_NDIM(a);
  if (ndims <= 0) {
    w->begin_array(0, nullptr);
    return;
  }
  Datum* values = nullptr;
  bool* nulls = nullptr;
  int count = 0;
  deconstruct_array(a, col->type, col->element_length, col->element_by_value, col->element_align, &values, &nulls,
                    &count);
  w->begin_array(ndims, ARR_DIMS(a));
  for (int i = 0; i < count; i++) {
    if (nulls[i])
      w->null();
    else
      write_scalar(w, col, values[i]);
  }
}

void write_row(outbox_writer* w, const Capture* capture, TupleTableSlot* slot) {
  slot_getallattrs(slot);
  for (int i = 0; i < capture->column_count; i++) {
    const CapturedColumn* col = &capture->columns[i];
    if (slot->tts_isnull[col->attnum])
      w->null();
    else if (col->array)
      write_array(w, col, slot->tts_values[col->attnum]);
    else
      write_scalar(w, col, slot->tts_values[col->attnum]);
  }
  w->end_row();
}

void write_header(outbox_writer* w, const Capture* capture) {
  w->begin(static_cast<uint32_t>(capture->column_count));
  for (int i = 0; i < capture->column_count; i++) {
    const CapturedColumn* col = &capture->columns[i];
    w->column(std::string_view(col->name, static_cast<size_t>(col->name_len)), col->type, col->array);
  }
  w->begin_rows();
}

// A chunk goes into the outbox as bytea `data` (binary chunks) or as jsonb `payload` (an outbox
// that has no binary chunks yet).
KeptPlan insert_binary_plan("INSERT INTO streamrec.sink_outbox(sink, data, rows) VALUES ($1, $2, $3)",
                            {TEXTOID, BYTEAOID, INT4OID}, PlanChoice::planner);
KeptPlan insert_jsonb_plan("INSERT INTO streamrec.sink_outbox(sink, payload, rows) VALUES ($1, $2, $3)",
                           {TEXTOID, JSONBOID, INT4OID}, PlanChoice::planner);

void insert_chunk(KeptPlan& plan, Datum sink, Datum chunk, int64 rows) {
  Datum args[3] = {sink, chunk, Int32GetDatum(static_cast<int32>(rows))};
  // Only a rule someone added to the outbox turns the INSERT into another command.
  if (SPI_execute_plan(plan.prepared(), args, nullptr, false, 0) != SPI_OK_INSERT)
    ereport(ERROR,
            (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), errmsg("cannot insert into streamrec.sink_outbox"),
             errhint("Drop the rule that rewrites INSERTs into streamrec.sink_outbox.")));
}

// The whole capture of a statement whose columns all have a supported type: binary chunks, or
// jsonb ones into an outbox that has no binary chunks yet.
void capture_rows(TriggerData* trigger, const Capture* capture, Datum sink, bool binary) {
  Tuplestorestate* rows = trigger->tg_newtable;
  int64 total = tuplestore_tuple_count(rows);
  int pointer = tuplestore_alloc_read_pointer(rows, EXEC_FLAG_REWIND);
  tuplestore_select_read_pointer(rows, pointer);
  tuplestore_rescan(rows);
  TupleDesc desc = RelationGetDescr(trigger->tg_relation);
  TupleTableSlot* fetched = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
  // The jsonb of a chunk points into its rows until it is built. Rows of a tuplestore in memory
  // stay put; one spilled to disk hands out each row in memory that the next fetch frees, so
  // those rows are copied into the chunk's memory. (A binary chunk copies each value at once.)
  bool in_memory = binary || tuplestore_in_memory(rows);
  TupleTableSlot* kept = in_memory ? fetched : MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
  MemoryContext outer = CurrentMemoryContext;
  MemoryContext chunk_context = AllocSetContextCreate(outer, "streamrec sink capture", ALLOCSET_DEFAULT_SIZES);
  for (int64 done = 0; done < total;) {
    MemoryContextSwitchTo(chunk_context);
    JsonbParseState* state = nullptr;
    outbox_buffer buffer;
    buffer.grow = grow_bytea_buffer;
    outbox_writer writer(buffer);
    if (binary) {
      grow_bytea_buffer(buffer, std::size_t{64} * 1024);
      write_header(&writer, capture);
    } else {
      pushJsonbValue(&state, WJB_BEGIN_ARRAY, nullptr);
    }
    int64 chunk = 0;
    for (Size bytes = 0; chunk < kChunkRows && done + chunk < total && bytes < kChunkBytes; chunk++) {
      MemoryContextSwitchTo(outer);
      bool found = tuplestore_gettupleslot(rows, true, false, fetched);
      MemoryContextSwitchTo(chunk_context);
      // Cannot happen: the loop reads no more rows than the transition table counted.
      if (!found)
        elog(ERROR, "the transition table ended after %lld of %lld rows", static_cast<long long>(done + chunk),
             static_cast<long long>(total));
      if (binary) {
        write_row(&writer, capture, fetched);
        bytes = buffer.size;
        continue;
      }
      if (!in_memory) ExecStoreMinimalTuple(ExecCopySlotMinimalTuple(fetched), kept, false);
      push_row(&state, capture, kept);
      bytes += row_bytes(capture, kept);
    }
    if (binary) {
      writer.finish();
      insert_chunk(insert_binary_plan, sink, PointerGetDatum(buffer_bytea(buffer)), chunk);
    } else {
      JsonbValue* built = pushJsonbValue(&state, WJB_END_ARRAY, nullptr);
      // A chunk of one row is the row itself.
      insert_chunk(insert_jsonb_plan, sink,
                   JsonbPGetDatum(JsonbValueToJsonb(chunk == 1 ? &built->val.array.elems[0] : built)), chunk);
    }
    MemoryContextSwitchTo(outer);
    if (!in_memory) ExecClearTuple(kept);
    MemoryContextReset(chunk_context);
    done += chunk;
  }
  ExecDropSingleTupleTableSlot(fetched);
  if (!in_memory) ExecDropSingleTupleTableSlot(kept);
  MemoryContextDelete(chunk_context);
}

}  // namespace
}  // namespace streamrec

namespace streamrec {
namespace {

// The same capture in SQL, for tables with a column type capture_rows does not take on: one
// result row per chunk (its payload and row count), in order.
constexpr const char* kCaptureSql = R"SQL(
SELECT CASE WHEN pg_catalog.count(*) = 1 THEN pg_catalog.jsonb_agg(c.js ORDER BY c.n) OPERATOR(pg_catalog.->) 0
            ELSE pg_catalog.jsonb_agg(c.js ORDER BY c.n) END,
       pg_catalog.count(*)
FROM (SELECT pg_catalog.to_jsonb(r.*) AS js, pg_catalog.row_number() OVER () - 1 AS n FROM streamrec_new_rows r) c
GROUP BY c.n / $1 ORDER BY c.n / $1
)SQL";

KeptPlan owner_plan("SELECT owner FROM streamrec.sinks WHERE name = $1", {TEXTOID}, PlanChoice::planner);

// The sink's owner, as of the latest committed catalog (the trigger exists only while its sink
// does; a transaction whose snapshot predates create_sink still finds it).
Oid sink_owner(Datum sink) {
  Datum args[1] = {sink};
  if (SPI_execute_snapshot(owner_plan.prepared(), args, nullptr, GetLatestSnapshot(), InvalidSnapshot, true, false,
                           1) != SPI_OK_SELECT ||
      SPI_processed != 1)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("sink \"%s\" of this outbox trigger does not exist", TextDatumGetCString(sink)),
                    errhint("streamrec.create_sink() installs the trigger and streamrec.drop_sink() removes it.")));
  bool is_null = false;
  Oid owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null));
  if (is_null || !SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                    errmsg("the owner of sink \"%s\" no longer exists", TextDatumGetCString(sink)),
                    errhint("Drop the sink with streamrec.drop_sink() and create it again.")));
  return owner;
}

// The outbox is the owner's to read: a table it may not SELECT (a privilege revoked after
// create_sink), or with row-level security that applies to it (as it would to the owner's own
// SELECT), would show it rows it may not see: such a table's rows are not captured at all.
void refuse_unreadable(Relation rel, Datum sink, Oid owner) {
  if (pg_class_aclcheck(RelationGetRelid(rel), owner, ACL_SELECT) != ACLCHECK_OK)
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                    errmsg("sink \"%s\" cannot capture rows of %s: its owner may not read the table",
                           TextDatumGetCString(sink), RelationGetRelationName(rel)),
                    errhint("Grant the sink's owner SELECT on the table again, or drop the sink "
                            "(its owner or a superuser can, with streamrec.drop_sink()).")));
  if (!rel->rd_rel->relrowsecurity || check_enable_rls(RelationGetRelid(rel), owner, true) != RLS_ENABLED) return;
  ereport(ERROR,
          (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
           errmsg("sink \"%s\" cannot capture rows of %s: row-level security applies to the sink's owner",
                  TextDatumGetCString(sink), RelationGetRelationName(rel)),
           errhint("A sink ships every inserted row, so its owner must see them all: drop the sink (or its trigger), "
                   "or disable row-level security, or let the owner bypass it (BYPASSRLS, or owning the table "
                   "without FORCE ROW LEVEL SECURITY).")));
}

// The SQL capture: to_jsonb (user-defined casts and output functions included) runs as the
// sink's owner in a security-restricted operation, with any setting it changes undone; the
// chunks go into the outbox as the definer.
void capture_in_sql(TriggerData* trigger, Datum sink, Oid owner) {
  // Fails only without a transition table, which sink_capture() checked: internal.
  if (SPI_register_trigger_data(trigger) != SPI_OK_TD_REGISTER) elog(ERROR, "SPI_register_trigger_data failed");
  Oid definer = InvalidOid;
  int security_context = 0;
  GetUserIdAndSecContext(&definer, &security_context);
  int guc_level = NewGUCNestLevel();
  SetUserIdAndSecContext(owner, security_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
  int rc = 0;
  PG_TRY();
  {
    Oid types[1] = {INT8OID};
    Datum args[1] = {Int64GetDatum(kChunkRows)};
    rc = SPI_execute_with_args(kCaptureSql, 1, types, args, nullptr, true, 0);
  }
  PG_FINALLY();
  { SetUserIdAndSecContext(definer, security_context); }
  PG_END_TRY();
  AtEOXact_GUC(false, guc_level);
  // A SELECT that does not raise always reports SPI_OK_SELECT: cannot happen, so internal.
  if (rc != SPI_OK_SELECT) elog(ERROR, "cannot read the statement's rows: %s", SPI_result_code_string(rc));
  SPITupleTable* chunks = SPI_tuptable;
  uint64 count = SPI_processed;
  for (uint64 i = 0; i < count; i++) {
    bool payload_null = false;
    bool rows_null = false;
    Datum payload = SPI_getbinval(chunks->vals[i], chunks->tupdesc, 1, &payload_null);
    Datum rows = SPI_getbinval(chunks->vals[i], chunks->tupdesc, 2, &rows_null);
    // Cannot happen: every chunk of the capture aggregates at least one row.
    if (payload_null || rows_null) elog(ERROR, "the SQL capture returned an empty chunk");
    insert_chunk(insert_jsonb_plan, sink, payload, DatumGetInt64(rows));
  }
}

Datum sink_capture(FunctionCallInfo fcinfo) {
  TriggerData* trigger =
      insert_statement_trigger_data(fcinfo, "streamrec._sink_capture()", "streamrec.create_sink() installs it.", 1,
                                    " with the sink's name (and the columns it reads) as its arguments");
  // Statement triggers fire for statements that inserted nothing too.
  if (tuplestore_tuple_count(trigger->tg_newtable) == 0) return PointerGetDatum(nullptr);
  pg_call([trigger] {
    // SPI_connect fails only when called in the wrong place: a bug, so internal.
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    Datum sink = CStringGetTextDatum(trigger->tg_trigger->tgargs[0]);
    Relation rel = trigger->tg_relation;
    Capture* capture =
        describe(RelationGetDescr(rel), trigger->tg_trigger->tgargs + 1, trigger->tg_trigger->tgnargs - 1);
    // Every statement: privileges may have been revoked since create_sink (one probe by key).
    Oid owner = sink_owner(sink);
    refuse_unreadable(rel, sink, owner);
    if (capture->supported)
      capture_rows(trigger, capture, sink, outbox_takes_binary());
    else
      capture_in_sql(trigger, sink, owner);
    SPI_finish();
  });
  return PointerGetDatum(nullptr);
}

}  // namespace
}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_sink_capture, streamrec::sink_capture)
