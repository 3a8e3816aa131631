// The one way rows are inserted in bulk, as COPY FROM inserts them: BEFORE/AFTER statement and
// row triggers, transition tables, NOT NULL and CHECK constraints, every index, defaults and
// stored generated columns, INSERT privilege on the columns given.
//  * copy_text_rows() feeds COPY's own text format to PostgreSQL's COPY FROM (BeginCopyFrom
//    with a data-source callback): the source workers' path, where rows arrive as text and
//    partitioned targets route rows as COPY does.
//  * insert_table_rows() takes the rows' values (Datums) and runs CopyFrom's executor steps
//    itself (table_statement.h): the path of the pipelines that compute their rows.
// A row that fails fails the call; the caller isolates bad rows (in subtransactions) and
// dead-letters them.
//
// Everything here is plain PostgreSQL code for use inside one pg_call() (see table_statement.h).
#pragma once

#include <cstddef>

extern "C" {
#include "postgres.h"
#include "nodes/pg_list.h"
#include "utils/relcache.h"
}

namespace streamrec {

// COPYs `size` bytes of COPY text lines into rel (opened with RowExclusiveLock): column_names
// (a List of String) in line order, INSERT on them checked as the current user, column
// privileges included. Returns how many rows were inserted; the changes are visible to the
// transaction's next commands.
uint64 copy_text_rows(Relation rel, List* column_names, const char* data, std::size_t size);

// Fills the values of one row's inserted columns, in the order given to insert_table_rows();
// returns false when there are no more rows. Runs in a per-row memory context (reset before
// the next row), inside the same pg_call as insert_table_rows().
// noexcept: it runs inside pg_call, where a C++ exception must not unwind through PG_TRY.
typedef bool (*RowSource)(void* arg, Datum* values, bool* nulls) noexcept;

// Inserts the rows of `next` into rel (opened with RowExclusiveLock; a plain table) as one
// INSERT statement, the way COPY FROM does: `columns` (attribute numbers) from the source, the
// other columns' defaults evaluated, stored generated columns computed; INSERT privilege on
// those columns; BEFORE/AFTER statement and row triggers, transition tables, NOT NULL and CHECK
// constraints, every index. Rows go to the heap a page at a time (table_multi_insert with a
// BulkInsertState) and then to the indexes and AFTER triggers in input order; when a BEFORE ROW
// trigger exists or a default is volatile, one at a time (as COPY, so the trigger or default
// sees every earlier row). Returns how many rows were inserted (a BEFORE ROW trigger may skip).
int64 insert_table_rows(Relation rel, const AttrNumber* columns, int column_count, RowSource next, void* arg);

// The same, telling the caller which row an ERROR concerns: *current_row holds the ordinal (from
// 0, in the order `next` gave them) of the row being worked on while one is (its defaults,
// BEFORE ROW triggers, generated columns, constraints, index entries: a unique violation), and
// -1 while the work concerns no single row (heap pages written in bulk, statement triggers, AFTER
// triggers at the statement's end: a foreign key's check). The caller reads it after a caught
// ERROR to isolate a bad row without inserting anything else.
int64 insert_table_rows(Relation rel, const AttrNumber* columns, int column_count, RowSource next, void* arg,
                        volatile int64* current_row);

}  // namespace streamrec
