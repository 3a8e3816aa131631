// item_transactions' row locks and stock updates on streamrec.inventory through the table, index
// and executor C APIs (see inventory_rows.h). Everything between the two C++ entry points at the
// bottom is plain PostgreSQL code run inside one pg_call() each: it may ERROR (lock timeout,
// statement_timeout, a user's trigger, a constraint) at any point, so it keeps no C++ object and
// allocates only in memory contexts that are reset at abort; the relations it opens are released
// by the resource owner at abort, the AFTER-trigger query level by AfterTriggerEndXact/SubXact.
//
// What a SQL `UPDATE streamrec.inventory SET stock = ...` does and this code does too: the
// privilege check (as the trigger's SECURITY DEFINER owner, column privileges and
// ExecutorCheckPerms_hook included), BEFORE/AFTER statement and row triggers (column lists,
// WHEN clauses, transition tables), stored generated columns, NOT NULL and CHECK constraints,
// index maintenance when the update is not HOT (unique, deferred and exclusion constraints
// included), replica identity checks for publications. What it does not: row-level security
// policies (it refuses to run when they apply to the owner rather than skipping them); the
// planner (an item is always one primary-key probe); partitioned or non-heap inventories are
// refused by the checks below.
#include "extension/inventory_rows.h"

#include "pg/change_generation.h"
#include "pg/table_statement.h"

extern "C" {
#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
}

namespace streamrec {
namespace {

// The two columns the pipeline uses.
struct InventoryColumns {
  AttrNumber product_id;
  AttrNumber stock;
};

// Opens streamrec.inventory with the lock an UPDATE takes and finds its columns.
Relation open_inventory(InventoryColumns* columns) {
  RangeVar* name = makeRangeVar(const_cast<char*>("streamrec"), const_cast<char*>("inventory"), -1);
  Relation rel = table_open(RangeVarGetRelid(name, RowExclusiveLock, false), NoLock);
  if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
      rel->rd_rel->relam != HEAP_TABLE_AM_OID)
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE), errmsg("streamrec.inventory must be a plain heap table"),
                    errhint("item_transactions locks and updates its rows directly.")));
  TupleDesc desc = RelationGetDescr(rel);
  columns->product_id = InvalidAttrNumber;
  columns->stock = InvalidAttrNumber;
  for (int i = 0; i < desc->natts; i++) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    if (att->attisdropped) continue;
    if (strcmp(NameStr(att->attname), "product_id") == 0 && att->atttypid == TEXTOID) columns->product_id = att->attnum;
    if (strcmp(NameStr(att->attname), "stock") == 0 && att->atttypid == INT4OID) columns->stock = att->attnum;
  }
  if (columns->product_id == InvalidAttrNumber || columns->stock == InvalidAttrNumber)
    ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION),
                    errmsg("streamrec.inventory needs the columns product_id text and stock int"),
                    errhint("Restore the table as the extension created it.")));
  return rel;
}

// A range table entry for reading product_id and stock and updating stock, as the pipeline's
// SQL did; the executor checks privileges and fires column triggers from it.
RangeTblEntry* inventory_rte(Relation rel, const InventoryColumns& columns) {
  RangeTblEntry* rte = makeNode(RangeTblEntry);
  rte->rtekind = RTE_RELATION;
  rte->relid = RelationGetRelid(rel);
  rte->relkind = rel->rd_rel->relkind;
  rte->rellockmode = RowExclusiveLock;
  rte->requiredPerms = ACL_SELECT | ACL_UPDATE;
  rte->selectedCols = bms_make_singleton(columns.product_id - FirstLowInvalidHeapAttributeNumber);
  rte->selectedCols = bms_add_member(rte->selectedCols, columns.stock - FirstLowInvalidHeapAttributeNumber);
  rte->updatedCols = bms_make_singleton(columns.stock - FirstLowInvalidHeapAttributeNumber);
  // Stored generated columns are recomputed (all of them: recomputing one that does not depend
  // on stock gives the same value).
  TupleDesc desc = RelationGetDescr(rel);
  if (desc->constr != nullptr && desc->constr->has_generated_stored)
    for (int i = 0; i < desc->natts; i++)
      if (TupleDescAttr(desc, i)->attgenerated == ATTRIBUTE_GENERATED_STORED)
        rte->extraUpdatedCols = bms_add_member(rte->extraUpdatedCols, i + 1 - FirstLowInvalidHeapAttributeNumber);
  return rte;
}

// The primary key on product_id, and its equality function.
Relation open_primary_key(Relation rel, AttrNumber product_id, RegProcedure* equal) {
  Oid index_oid = RelationGetPrimaryKeyIndex(rel);
  if (!OidIsValid(index_oid))
    ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION), errmsg("streamrec.inventory has no primary key"),
                    errhint("Restore its PRIMARY KEY (product_id).")));
  Relation index = index_open(index_oid, AccessShareLock);
  if (index->rd_rel->relam != BTREE_AM_OID || IndexRelationGetNumberOfKeyAttributes(index) != 1 ||
      index->rd_index->indkey.values[0] != product_id)
    ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION),
                    errmsg("the primary key of streamrec.inventory must be a btree on product_id"),
                    errhint("Restore its PRIMARY KEY (product_id).")));
  Oid type = index->rd_opcintype[0];
  Oid op = get_opfamily_member(index->rd_opfamily[0], type, type, BTEqualStrategyNumber);
  // Every btree operator family has an equality member: cannot happen, so internal.
  if (!OidIsValid(op)) elog(ERROR, "no equality operator in the opfamily of streamrec.inventory's primary key");
  *equal = get_opcode(op);
  return index;
}

bool same_text(Datum value, const char* key, int length) {
  text* t = DatumGetTextPP(value);
  return static_cast<int>(VARSIZE_ANY_EXHDR(t)) == length && memcmp(VARDATA_ANY(t), key, length) == 0;
}

// lock_inventory_rows() inside one pg_call.
void lock_rows(const char* const* keys, const int* lengths, int n, LockedStock* out) {
  InventoryColumns columns;
  Relation rel = open_inventory(&columns);
  check_table_access(inventory_rte(rel, columns));
  RegProcedure equal;
  Relation index = open_primary_key(rel, columns.product_id, &equal);
  MemoryContext work = AllocSetContextCreate(CurrentMemoryContext, "streamrec inventory locks", ALLOCSET_DEFAULT_SIZES);
  MemoryContext caller = MemoryContextSwitchTo(work);

  // As SPI runs a statement: earlier commands' changes visible, a new snapshot under READ
  // COMMITTED (the transaction's under REPEATABLE READ and SERIALIZABLE).
  CommandCounterIncrement();
  PushActiveSnapshot(GetTransactionSnapshot());
  Snapshot snapshot = GetActiveSnapshot();
  CommandId cid = GetCurrentCommandId(true);
  // As ExecLockRows: under READ COMMITTED a row updated since the snapshot is locked in its latest
  // version; under the snapshot isolation levels that is a serialization failure.
  bool xact_snapshot = IsolationUsesXactSnapshot();
  uint8 flags = TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS | (xact_snapshot ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION);

  int longest = 0;
  for (int i = 0; i < n; i++) longest = Max(longest, lengths[i]);
  text* key_text = static_cast<text*>(palloc(VARHDRSZ + longest));
  ScanKeyData key;
  ScanKeyInit(&key, 1, BTEqualStrategyNumber, equal, PointerGetDatum(key_text));
  key.sk_collation = index->rd_indcollation[0];
  IndexScanDesc scan = index_beginscan(rel, index, snapshot, 1, 0);
  TupleTableSlot* slot = table_slot_create(rel, nullptr);

  for (int i = 0; i < n; i++) {
    CHECK_FOR_INTERRUPTS();
    out[i].found = false;
    SET_VARSIZE(key_text, VARHDRSZ + lengths[i]);
    memcpy(VARDATA(key_text), keys[i], lengths[i]);
    index_rescan(scan, &key, 1, nullptr, 0);
    if (!index_getnext_slot(scan, ForwardScanDirection, slot)) continue;  // no committed row

    ItemPointerData tid = slot->tts_tid;
    TM_FailureData failure;
    // FOR NO KEY UPDATE: what an UPDATE of stock takes, so the later update needs no stronger
    // lock; it conflicts with other batches, UPDATE, DELETE and FOR UPDATE/SHARE, not with the
    // KEY SHARE locks of foreign keys referencing the item.
    TM_Result result =
        table_tuple_lock(rel, &tid, snapshot, slot, cid, LockTupleNoKeyExclusive, LockWaitBlock, flags, &failure);
    // Statuses other than TM_Ok, TM_Updated and TM_Deleted cannot come back for a row locked with LockWaitBlock (as in
    // PostgreSQL's own row locking, they are internal).
    switch (result) {
      case TM_Ok:
        break;
      case TM_Updated:
      case TM_Deleted:
        if (xact_snapshot)
          ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                          errmsg("could not serialize access due to concurrent update")));
        if (result == TM_Deleted) continue;  // deleted while we waited: the item is unknown
        elog(ERROR, "unexpected table_tuple_lock status: %u", result);
        break;
      case TM_Invisible:
        elog(ERROR, "attempted to lock invisible tuple");
        break;
      default:
        elog(ERROR, "unexpected table_tuple_lock status: %u", result);
        break;
    }
    bool isnull = false;
    // Following an update chain can end on a row whose key changed: that row is another item's
    // now (a SELECT FOR UPDATE rechecks its WHERE clause the same way and skips it).
    if (failure.traversed) {
      Datum product = slot_getattr(slot, columns.product_id, &isnull);
      if (isnull || !same_text(product, keys[i], lengths[i])) continue;
    }
    Datum stock = slot_getattr(slot, columns.stock, &isnull);
    out[i].found = true;
    out[i].stock = isnull ? 0 : DatumGetInt32(stock);
    out[i].tid = tid;
  }

  ExecDropSingleTupleTableSlot(slot);
  index_endscan(scan);
  PopActiveSnapshot();
  MemoryContextSwitchTo(caller);
  MemoryContextDelete(work);
  index_close(index, NoLock);
  table_close(rel, NoLock);
}

// One row, as ExecSimpleRelationUpdate() does it, plus the transition tables' capture.
void update_row(EState* estate, ResultRelInfo* target, EPQState* epq, ItemPointer tid, TupleTableSlot* slot,
                TransitionCaptureState* capture) {
  Relation rel = target->ri_RelationDesc;
  if (target->ri_TrigDesc != nullptr && target->ri_TrigDesc->trig_update_before_row &&
      !ExecBRUpdateTriggers(estate, epq, target, tid, nullptr, slot, nullptr))
    return;  // a BEFORE trigger returned NULL: the row stays as it is
  if (rel->rd_att->constr != nullptr && rel->rd_att->constr->has_generated_stored)
    ExecComputeStoredGenerated(target, estate, slot, CMD_UPDATE);
  if (rel->rd_att->constr != nullptr) ExecConstraints(target, slot, estate);
  bool update_indexes = false;
  simple_table_tuple_update(rel, tid, slot, estate->es_snapshot, &update_indexes);
  List* recheck = NIL;
  if (target->ri_NumIndices > 0 && update_indexes)
    recheck = ExecInsertIndexTuples(target, slot, estate, true, false, nullptr, NIL);
  ExecARUpdateTriggers(estate, target, nullptr, nullptr, tid, nullptr, slot, recheck, capture, false);
  list_free(recheck);
}

// write_inventory_stock() inside one pg_call: one UPDATE statement (table_statement.h), then each
// row by its TID.
void write_rows(const StockWrite* rows, int n) {
  InventoryColumns columns;
  Relation rel = open_inventory(&columns);
  TableStatement statement;
  begin_table_statement(&statement, rel, inventory_rte(rel, columns), CMD_UPDATE);
  EState* estate = statement.estate;
  EPQState epq;
  EvalPlanQualInit(&epq, estate, nullptr, NIL, -1);
  TupleTableSlot* old_row = table_slot_create(rel, &estate->es_tupleTable);
  // The table's own slot type, as UPDATE's new-tuple slot: materializing it forms the heap tuple
  // the update then stores, with no second copy.
  TupleTableSlot* new_row = table_slot_create(rel, &estate->es_tupleTable);
  int natts = RelationGetDescr(rel)->natts;
  for (int i = 0; i < n; i++) {
    CHECK_FOR_INTERRUPTS();
    ResetPerTupleExprContext(estate);
    ItemPointerData tid = rows[i].tid;
    // The version we locked: nobody else can have changed it since, so a miss cannot happen (internal).
    if (!table_tuple_fetch_row_version(rel, &tid, SnapshotAny, old_row))
      elog(ERROR, "locked inventory row (%u,%u) not found", ItemPointerGetBlockNumber(&tid),
           ItemPointerGetOffsetNumber(&tid));
    slot_getallattrs(old_row);
    ExecClearTuple(new_row);
    memcpy(new_row->tts_values, old_row->tts_values, natts * sizeof(Datum));
    memcpy(new_row->tts_isnull, old_row->tts_isnull, natts * sizeof(bool));
    new_row->tts_values[columns.stock - 1] = Int32GetDatum(rows[i].stock);
    new_row->tts_isnull[columns.stock - 1] = false;
    ExecStoreVirtualTuple(new_row);
    new_row->tts_tableOid = RelationGetRelid(rel);  // as ExecUpdatePrepareSlot: tableoid for CHECKs and triggers
    ExecMaterializeSlot(new_row);                   // its own copy: the old version's page changes under the update
    EvalPlanQualSetSlot(&epq, new_row);
    update_row(estate, statement.target, &epq, &tid, new_row, statement.capture);
  }
  EvalPlanQualEnd(&epq);
  end_table_statement(&statement);  // AFTER triggers fire; the next statements see the new stock
  table_close(rel, NoLock);
}

}  // namespace

std::vector<LockedStock> lock_inventory_rows(const std::vector<std::string>& items) {
  std::vector<LockedStock> out(items.size());
  if (items.empty()) return out;
  std::vector<const char*> keys;
  std::vector<int> lengths;
  keys.reserve(items.size());
  lengths.reserve(items.size());
  for (const std::string& item : items) {
    keys.push_back(item.data());
    lengths.push_back(static_cast<int>(item.size()));
  }
  const char* const* key_data = keys.data();
  const int* length_data = lengths.data();
  int n = static_cast<int>(items.size());
  LockedStock* rows = out.data();
  pg_call([key_data, length_data, n, rows] { lock_rows(key_data, length_data, n, rows); });
  return out;
}

void write_inventory_stock(const std::vector<StockWrite>& rows) {
  if (rows.empty()) return;
  const StockWrite* data = rows.data();
  int n = static_cast<int>(rows.size());
  pg_call([data, n] { write_rows(data, n); });
  // The statement triggers fired above include streamrec_inventory_changed; mark the transaction
  // here as well, so the recommenders' inventory cache learns of the change even when ordinary
  // triggers do not fire (session_replication_role = replica, a disabled trigger).
  note_inventory_change();
}

}  // namespace streamrec
