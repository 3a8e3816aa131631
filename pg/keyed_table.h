// Keyed state kept in an ordinary table with a unique btree index, read and written a batch at a
// time: the pipelines' equivalent of a stream processor's keyed state. Per batch, each distinct
// key is probed once (one index descent, one index scan rescanned for every key), the rows found
// are locked and their values returned; the pipeline computes the keys' new values in memory;
// then each changed row is updated once and each missing key inserted once, all rows of the
// batch in one UPDATE statement and one INSERT statement run through the executor's C APIs
// (pg/table_statement.h, pg/bulk_insert.h): privileges, BEFORE/AFTER statement and row
// triggers with transition tables, NOT NULL and CHECK constraints, stored generated columns, and
// index maintenance when an update is not HOT, as SQL's own UPDATE and INSERT.
//
// Concurrency. Rows found are locked FOR NO KEY UPDATE (the lock an UPDATE of non-key columns
// takes): under READ COMMITTED a row updated or locked by another transaction is waited for and
// then locked in its latest committed version (a row deleted meanwhile, or whose key changed,
// reads as missing), as SELECT ... FOR NO KEY UPDATE does; under REPEATABLE READ and SERIALIZABLE
// such a row is a serialization failure (40001), as is a key missing from the transaction's
// snapshot that another transaction has committed since.
// Missing keys have no row to lock, so two batches could both find a key missing and both insert
// it. To prevent that, lock_rows() first takes a transaction-level advisory lock on the table,
// exclusive, held to the end of the transaction: batches that write the same state table take
// turns, and each probes with a snapshot taken after the lock, so it sees every key an earlier
// batch inserted. (A per-key lock would let batches of disjoint keys overlap, but a batch that
// creates ten thousand keys would need ten thousand lock-table entries, and lock-table space is
// bounded.) The lock is the two-key advisory lock (kAdvisoryLockClass, table oid): an
// administrator sees it in pg_locks and can take it with
// pg_advisory_xact_lock(<kAdvisoryLockClass>, 'schema.table'::regclass::oid::int). Writers that do
// not take it (an UPDATE by hand) are ordered by the row locks; an INSERT by hand of a key that a
// batch is inserting at the same moment makes one of the two fail with a unique violation, as two
// plain INSERTs would.
//
// Locks are taken in the order the keys are given: pass them in one order every writer uses (the
// index's order gives the best locality), after no other row lock of the batch, and two batches
// never wait for each other in a cycle.
//
// Keys and values are Datums of the columns' types (KeyedColumn::type; text for varchar and bpchar
// columns too). Pass-by-reference values returned are copies (detoasted) in the memory context
// current at the call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pg/error_boundary.h"

extern "C" {
#include "postgres.h"
#include "access/attnum.h"
#include "storage/itemptr.h"
}

namespace streamrec {

// The first key of the advisory lock a writer of a keyed table takes (the second is the
// table's oid). Spells 'keyT'.
constexpr int32 kAdvisoryLockClass = 0x6b657954;

struct KeyedColumn {
  std::string name;
  Oid type;  // the column's type; a column of another type is refused when the table is opened
};

// Which table and columns. key_columns: the key columns, in order, of a unique btree index on
// the table (its primary key, or another valid unique index on exactly those columns, without
// expressions or predicate). value_columns: the columns a batch reads and writes.
struct KeyedTableSpec {
  std::string schema;
  std::string table;
  std::vector<KeyedColumn> key_columns;
  std::vector<KeyedColumn> value_columns;
};

// A batch's keys as lock_rows() or read_rows() found them, in the order given.
struct KeyedRows {
  std::size_t value_count = 0;
  std::vector<char> found;            // per key: a row exists (and is locked, for lock_rows)
  std::vector<ItemPointerData> tids;  // per key: the row version found (locked: stable)
  std::vector<void*> tuples;          // lock_rows: per found key, a copy of the locked row (HeapTuple)
  std::vector<Datum> values;          // key k's value v at [k * value_count + v]; found keys only
  std::vector<char> nulls;            // same layout
  std::size_t size() const { return found.size(); }
  Datum value(std::size_t key, std::size_t column) const { return values[key * value_count + column]; }
  bool is_null(std::size_t key, std::size_t column) const { return nulls[key * value_count + column] != 0; }
};

// One table's keyed state for the current transaction. Made per batch: opening it resolves the
// names (the table locked RowExclusiveLock, as INSERT and UPDATE lock it) and checks that the
// table is a plain heap table with such an index; a table that is not is refused with 42809 or
// 42P16 and a hint to restore it. Holds no resources: nothing to close.
class KeyedTable {
 public:
  explicit KeyedTable(const KeyedTableSpec& spec);

  std::size_t key_count() const { return key_attnums_.size(); }
  std::size_t value_count() const { return value_attnums_.size(); }
  Oid relation() const { return relid_; }

  // Takes the table's writer lock, then probes each key (row-major: key k's column c at
  // keys[k * key_count() + c], none NULL, no key twice), locking the rows found. Needs SELECT
  // on the key and value columns and UPDATE on the value columns.
  KeyedRows lock_rows(std::size_t count, const Datum* keys) const;

  // Probes each key without locking anything, with the snapshot of a new statement (what this
  // transaction wrote so far included). Needs SELECT on the key and value columns.
  KeyedRows read_rows(std::size_t count, const Datum* keys) const;

  // Updates rows found by lock_rows() in this transaction: for i < count, key which[i] of
  // `rows` gets values[i * value_count() + v] (nulls likewise) in its value columns; the other
  // columns keep theirs. One UPDATE statement, rows in the order given.
  void update_rows(const KeyedRows& rows, std::size_t count, const std::uint32_t* which, const Datum* values,
                   const bool* nulls) const;

  // Inserts rows for keys that lock_rows() found missing in this transaction: row i has
  // keys[i * key_count() + c] and values[i * value_count() + v]; the other columns take their
  // defaults. One INSERT statement through insert_table_rows(), rows in the order given.
  void insert_rows(std::size_t count, const Datum* keys, const Datum* values, const bool* nulls) const;

 private:
  KeyedRows probe(std::size_t count, const Datum* keys, bool lock) const;

  Oid relid_ = InvalidOid;
  Oid index_ = InvalidOid;
  std::string name_;  // schema.table, quoted, for messages
  std::vector<AttrNumber> key_attnums_;
  std::vector<AttrNumber> value_attnums_;
};

// Text Datums (4-byte headers) of `values`, in one allocation in the current memory context.
std::vector<Datum> text_datums(const std::vector<std::string_view>& values);

}  // namespace streamrec
