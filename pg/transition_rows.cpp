#include "pg/transition_rows.h"

#include <string>

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"
}

namespace streamrec {
namespace {

bool kind_takes(ColumnKind kind, Oid type) {
  switch (kind) {
    case ColumnKind::text:
      return type == TEXTOID || type == VARCHAROID || type == BPCHAROID;
    case ColumnKind::int32:
      return type == INT4OID || type == INT2OID;
    case ColumnKind::int64:
      return type == INT8OID;
    case ColumnKind::timestamptz:
      return type == TIMESTAMPTZOID;
    case ColumnKind::float8:
      return type == FLOAT8OID || type == FLOAT4OID;
    case ColumnKind::boolean:
      return type == BOOLOID;
    case ColumnKind::output_text:
      return true;
  }
  return false;
}

// Where one requested column is in the table's rows.
struct Source {
  AttrNumber attnum = 0;
  Oid type = InvalidOid;
  FmgrInfo output;  // output_text only
};

// The table's tuplestore, rewound under a read pointer of our own (another reader of the same
// transition table keeps its position).
Tuplestorestate* rewound(TriggerData* trigger) {
  Tuplestorestate* rows = trigger->tg_newtable;
  int pointer = tuplestore_alloc_read_pointer(rows, EXEC_FLAG_REWIND);
  tuplestore_select_read_pointer(rows, pointer);
  tuplestore_rescan(rows);
  return rows;
}

}  // namespace

TransitionRows::TransitionRows(TriggerData* trigger, const std::vector<ColumnRequest>& requests) {
  TupleDesc desc = RelationGetDescr(trigger->tg_relation);
  std::vector<Source> sources(requests.size());
  AttrNumber last = 0;
  for (std::size_t c = 0; c < requests.size(); c++) {
    const ColumnRequest& request = requests[c];
    for (int a = 0; a < desc->natts; a++) {
      Form_pg_attribute att = TupleDescAttr(desc, a);
      if (!att->attisdropped && strcmp(NameStr(att->attname), request.name) == 0) {
        sources[c].attnum = att->attnum;
        sources[c].type = att->atttypid;
      }
    }
    std::string table = pg_call([trigger] { return RelationGetRelationName(trigger->tg_relation); });
    if (sources[c].attnum == 0)
      throw Error(ERRCODE_UNDEFINED_COLUMN,
                  "column \"" + std::string(request.name) + "\" of table \"" + table + "\" does not exist", "",
                  "The pipelines read this column; restore it with ALTER TABLE.");
    if (!kind_takes(request.kind, sources[c].type))
      throw Error(ERRCODE_DATATYPE_MISMATCH,
                  "column \"" + std::string(request.name) + "\" of table \"" + table + "\" has an unexpected type", "",
                  "The pipelines read this column with the type the extension created it with; restore that type.");
    if (request.kind == ColumnKind::output_text) {
      Source* source = &sources[c];
      pg_call([source] {
        Oid function = InvalidOid;
        bool varlena = false;
        getTypeOutputInfo(source->type, &function, &varlena);
        fmgr_info(function, &source->output);
      });
    }
    last = std::max(last, sources[c].attnum);
  }

  Tuplestorestate* rows = pg_call([trigger] { return rewound(trigger); });
  rows_ = static_cast<std::size_t>(pg_call([rows] { return tuplestore_tuple_count(rows); }));
  columns_.resize(requests.size());
  for (std::size_t c = 0; c < requests.size(); c++) {
    BatchColumn& column = columns_[c];
    column.kind = requests[c].kind;
    column.null.reserve(rows_);
    if (column.kind == ColumnKind::float8)
      column.floats.reserve(rows_);
    else if (column.kind == ColumnKind::text || column.kind == ColumnKind::output_text)
      column.offsets.reserve(rows_ + 1), column.offsets.push_back(0);
    else
      column.ints.reserve(rows_);
  }

  TupleTableSlot* slot = pg_call([desc] { return MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple); });
  for (std::size_t r = 0; r < rows_; r++) {
    bool found = pg_call([rows, slot, last] {
      if (!tuplestore_gettupleslot(rows, true, false, slot)) return false;
      slot_getsomeattrs(slot, last);
      return true;
    });
    // Cannot happen: the loop reads no more rows than the transition table counted.
    if (!found) throw Error(ERRCODE_INTERNAL_ERROR, "the transition table ended early");
    for (std::size_t c = 0; c < requests.size(); c++) {
      BatchColumn& column = columns_[c];
      int index = sources[c].attnum - 1;
      bool is_null = slot->tts_isnull[index];
      Datum value = slot->tts_values[index];
      column.null.push_back(is_null);
      switch (column.kind) {
        case ColumnKind::text: {
          if (!is_null) {
            auto* text = reinterpret_cast<varlena*>(DatumGetPointer(value));
            if (VARATT_IS_EXTENDED(text)) text = pg_call([text] { return pg_detoast_datum_packed(text); });
            column.chars.append(VARDATA_ANY(text), VARSIZE_ANY_EXHDR(text));
          }
          column.offsets.push_back(static_cast<uint32_t>(column.chars.size()));
          break;
        }
        case ColumnKind::output_text: {
          if (!is_null) {
            Source* source = &sources[c];
            char* rendered = pg_call([source, value] { return OutputFunctionCall(&source->output, value); });
            column.chars.append(rendered);
            pg_call([rendered] { pfree(rendered); });
          }
          column.offsets.push_back(static_cast<uint32_t>(column.chars.size()));
          break;
        }
        case ColumnKind::int32:
          column.ints.push_back(is_null ? 0 : sources[c].type == INT2OID ? DatumGetInt16(value) : DatumGetInt32(value));
          break;
        case ColumnKind::int64:
        case ColumnKind::timestamptz:
          column.ints.push_back(is_null ? 0 : DatumGetInt64(value));
          break;
        case ColumnKind::boolean:
          column.ints.push_back(is_null ? 0 : DatumGetBool(value));
          break;
        case ColumnKind::float8:
          column.floats.push_back(is_null                        ? 0.0
                                  : sources[c].type == FLOAT4OID ? DatumGetFloat4(value)
                                                                 : DatumGetFloat8(value));
          break;
      }
    }
  }
  pg_call([slot] { ExecDropSingleTupleTableSlot(slot); });
}

}  // namespace streamrec
