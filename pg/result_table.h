// The pipelines' one way to append rows to a table of theirs: streamrec.<table> opened as an
// INSERT opens it, the columns found by name and checked against the types the extension
// created them with, and the rows inserted through insert_table_rows() (bulk_insert.h: a page
// at a time, every index, constraint, default and trigger, transition tables included).
#pragma once

#include <cstdint>

#include "pg/bulk_insert.h"

namespace streamrec {

struct ResultColumn {
  const char* name;
  Oid type;
};

// Inserts the rows of `next` into streamrec.`table`; `columns` in the order `next` fills
// them. A missing column, or one of another type, is an ERROR (42P16) saying to restore the
// table. Returns how many rows were inserted. C++ code: wraps its own pg_call.
int64_t append_rows(const char* table, const ResultColumn* columns, int column_count, RowSource next, void* arg);

}  // namespace streamrec
