// Aggregates kept per key in a table (view counts per window, last-seen times): a batch adds its
// own aggregate of each key to the key's row, through pg/keyed_table (one probe per key, one
// UPDATE of the rows found, one bulk INSERT of the keys missing). Every value column is an int8
// or a timestamptz, merged as the column says.
#pragma once

#include <cstddef>
#include <vector>

#include "pg/keyed_table.h"

namespace streamrec {

enum class Merge {
  add,       // the row's value plus the batch's
  greatest,  // the later (larger) of the two
};

// For count keys (row-major Datums: key k's column c at keys[k * key columns + c], no key twice,
// in the order every writer of the table uses), the batch's values (row-major likewise, none
// NULL), merged into the rows found, inserted for the keys missing. merges: one per value column.
void merge_into_rows(const KeyedTableSpec& spec, const std::vector<Merge>& merges, std::size_t count,
                     const std::vector<Datum>& keys, const std::vector<Datum>& values);

}  // namespace streamrec
