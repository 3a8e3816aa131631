// Datums of decoded cells (core/formats/typed_cells.h) for a table's columns: the values the
// columns' input functions would make of the same text, without COPY's parser in between.
//
// Plain PostgreSQL code for use inside pg_call(): a conversion may ERROR (a type's input
// function refusing the text, bytes invalid in the database encoding).
#pragma once

#include "core/formats/typed_cells.h"

extern "C" {
#include "postgres.h"
#include "access/attnum.h"
#include "access/tupdesc.h"
#include "fmgr.h"
}

namespace streamrec {

// The fast form a column of this type and typmod takes (cell_type::input when none is exact).
cell_type cell_type_of(Oid type, int32 typmod);

// How one target column turns cells into Datums.
struct CellColumn {
  AttrNumber attnum;
  cell_type fast;
  Oid type;
  int32 typmod;
  Oid ioparam;
  FmgrInfo input;  // the type's input function (for cell_kind::input), in the caller's context
};

// Prepares `column` for attribute `att` of the target.
void prepare_cell_column(Form_pg_attribute att, CellColumn* column);

// The Datum of one cell for `column`, allocated in CurrentMemoryContext; sets *isnull. Checks
// text against the database encoding, as COPY FROM does, before the input function reads it.
Datum cell_datum(const CellColumn* column, const typed_cell& cell, const char* text, bool* isnull);

}  // namespace streamrec
