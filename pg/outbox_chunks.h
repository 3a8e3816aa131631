// The PostgreSQL side of a binary outbox chunk (core/formats/outbox_rows.h): its values as the
// jsonb to_jsonb would have made of the rows, for streamrec.outbox_rows(), for the rows a sink
// keeps apart with an error, and for a column whose type changed while its rows waited (the
// sink worker then converts the value as it converts a jsonb chunk's).
//
// PostgreSQL C code (it may ERROR, and allocates in the current memory context): call it inside
// pg_call().
#pragma once

#include "core/formats/outbox_rows.h"

#include "pg/error_boundary.h"

extern "C" {
#include "utils/jsonb.h"
}

namespace streamrec {

// Value `value` of column `column` of the chunk, as to_jsonb gives it: a scalar, or (arrays) a
// jbvBinary pointing at a jsonb array (nested for several dimensions).
JsonbValue* outbox_value_jsonb(const outbox_chunk& chunk, const outbox_column& column, const outbox_value& value);

// Row `row` of the chunk as to_jsonb(row).
Jsonb* outbox_row_jsonb(const outbox_chunk& chunk, size_t row);

// Whether streamrec.sink_outbox takes binary chunks (has column data): an installation whose
// extension is not yet updated has jsonb chunks only, and the same library serves it.
bool outbox_takes_binary();

}  // namespace streamrec
