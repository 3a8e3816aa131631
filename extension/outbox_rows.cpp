// streamrec.outbox_rows(chunk streamrec.sink_outbox): an outbox row's chunk as its rows, each
// as to_jsonb(row), so that the outbox stays readable whatever kind its chunks are (binary, or
// jsonb from the SQL capture, from before the update, or a row kept with its error). It decodes
// only the row it is handed: what the caller may read of the outbox is what it may render.
#include <string>
#include <string_view>

#include "core/formats/format_error.h"
#include "core/formats/outbox_rows.h"

#include "pg/error_boundary.h"
#include "pg/outbox_chunks.h"

extern "C" {
#include "executor/executor.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/tuplestore.h"
}

namespace streamrec {
namespace {

void put_row(ReturnSetInfo* result, int ordinal, Jsonb* row) {
  Datum values[2] = {Int32GetDatum(ordinal), JsonbPGetDatum(row)};
  bool nulls[2] = {false, false};
  tuplestore_putvalues(result->setResult, result->setDesc, values, nulls);
}

Datum outbox_rows(FunctionCallInfo fcinfo) {
  Datum payload = 0;
  Datum data = 0;
  bool payload_null = true;
  bool data_null = true;
  pg_call([fcinfo, &payload, &data, &payload_null, &data_null] {
    HeapTupleHeader chunk = PG_GETARG_HEAPTUPLEHEADER(0);
    payload = GetAttributeByName(chunk, "payload", &payload_null);
    data = GetAttributeByName(chunk, "data", &data_null);
    InitMaterializedSRF(fcinfo, 0);
  });
  auto* result = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  if (!data_null) {
    const bytea* bytes = pg_call([data] { return DatumGetByteaPP(data); });
    outbox_chunk chunk;
    try {
      chunk.read(std::string_view(VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes)));
    } catch (const format_error& e) {
      throw Error(ERRCODE_DATA_CORRUPTED, std::string("the outbox row does not hold a readable chunk: ") + e.what(), "",
                  "The sink worker sets such a row aside with its error; delete it once inspected.");
    }
    for (size_t r = 0; r < chunk.rows(); r++)
      pg_call([result, &chunk, r] { put_row(result, static_cast<int>(r) + 1, outbox_row_jsonb(chunk, r)); });
  } else if (!payload_null) {
    pg_call([result, payload] {
      Jsonb* rows = DatumGetJsonbP(payload);
      // A jsonb chunk is an array of rows; an outbox row holding one row has the row itself.
      if (!JB_ROOT_IS_ARRAY(rows) || JB_ROOT_IS_SCALAR(rows)) {
        put_row(result, 1, rows);
        return;
      }
      uint32 count = JB_ROOT_COUNT(rows);
      for (uint32 i = 0; i < count; i++)
        put_row(result, static_cast<int>(i) + 1, JsonbValueToJsonb(getIthJsonbValueFromContainer(&rows->root, i)));
    });
  }
  return static_cast<Datum>(0);
}

}  // namespace
}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_outbox_rows, streamrec::outbox_rows)
