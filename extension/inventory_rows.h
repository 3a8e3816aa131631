// Direct access to streamrec.inventory's stock for item_transactions: the row locks and the stock
// updates of a batch go through PostgreSQL's table, index and executor C APIs (the way the
// logical replication apply worker applies rows), not through SQL. Per batch of 10,000
// transactions this replaces a `SELECT ... FOR UPDATE` and an `UPDATE ... FROM unnest(...)`
// whose planning, array building, hashing and per-row executor overhead cost far more than the
// index probes, tuple locks and heap updates themselves.
#pragma once

#include <string>
#include <vector>

#include "pg/error_boundary.h"

extern "C" {
#include "storage/itemptr.h"
}

namespace streamrec {

// One item's row as lock_inventory_rows() left it.
struct LockedStock {
  bool found = false;     // false: no committed row (or it was deleted while we waited)
  int32 stock = 0;        // the latest committed stock (a NULL stock reads as 0)
  ItemPointerData tid{};  // the locked row version: stable while the transaction holds the lock
};

// Locks the inventory rows of `items` (distinct, sorted in byte order: the order every batch
// locks in) with one probe of the primary key each, FOR NO KEY UPDATE, waiting for concurrent
// writers and ending on the latest committed version, like `SELECT ... FOR NO KEY UPDATE` under
// READ COMMITTED. Returns one entry per item, in the same order.
std::vector<LockedStock> lock_inventory_rows(const std::vector<std::string>& items);

// A new stock for a row this transaction locked with lock_inventory_rows().
struct StockWrite {
  ItemPointerData tid;
  int32 stock;
};

// Updates each row's stock by its TID as one UPDATE statement would: statement and row triggers
// (with transition tables), NOT NULL and CHECK constraints, index entries when the update is not
// HOT, privileges; then marks the transaction as one that changed the inventory and makes the
// change visible to the transaction's next statements.
void write_inventory_stock(const std::vector<StockWrite>& rows);

}  // namespace streamrec
