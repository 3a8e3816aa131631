// Keyed state in a table with a unique index (see keyed_table.h). Each C++ method hands its work
// to one plain-PostgreSQL function run inside one pg_call(): those may ERROR (a lock timeout,
// statement_timeout, a user's trigger, a constraint) at any point, so they keep no C++ object and
// allocate only in memory contexts reset at abort; the relations they open are released by the
// resource owner at abort, the AFTER-trigger query level by AfterTriggerEndXact/SubXact.
#include "pg/keyed_table.h"

#include "pg/bulk_insert.h"
#include "pg/table_statement.h"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
}

namespace streamrec {
namespace {

// What opening the table resolves.
struct Resolved {
  Oid relid;
  Oid index;
  const char* name;  // quoted schema.table
};

// The attribute of `name` in rel, checked to be of `type` (text also takes varchar and bpchar).
AttrNumber find_column(Relation rel, const char* table, const char* name, Oid type) {
  TupleDesc desc = RelationGetDescr(rel);
  for (int i = 0; i < desc->natts; i++) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    if (att->attisdropped || strcmp(NameStr(att->attname), name) != 0) continue;
    bool fits =
        att->atttypid == type || (type == TEXTOID && (att->atttypid == VARCHAROID || att->atttypid == BPCHAROID));
    if (!fits)
      ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION),
                      errmsg("column %s of %s must be of type %s", name, table, format_type_be(type)),
                      errhint("Restore the table as the extension created it.")));
    return att->attnum;
  }
  ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION), errmsg("%s has no column %s", table, name),
                  errhint("Restore the table as the extension created it.")));
  return InvalidAttrNumber;  // not reached
}

// Whether index is a valid unique btree on exactly the key columns, in order.
bool is_key_index(Relation index, const AttrNumber* keys, int nkeys) {
  Form_pg_index form = index->rd_index;
  if (index->rd_rel->relam != BTREE_AM_OID || !form->indisunique || !form->indisvalid || !form->indisready ||
      !form->indimmediate || IndexRelationGetNumberOfKeyAttributes(index) != nkeys ||
      !heap_attisnull(index->rd_indextuple, Anum_pg_index_indexprs, nullptr) ||
      !heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, nullptr))
    return false;
  for (int c = 0; c < nkeys; c++)
    if (form->indkey.values[c] != keys[c]) return false;
  return true;
}

// KeyedTable's constructor inside one pg_call.
void resolve(const char* schema, const char* table, const char* const* names, const Oid* types, int nkeys, int nvalues,
             AttrNumber* attnums, Resolved* out) {
  RangeVar* range = makeRangeVar(const_cast<char*>(schema), const_cast<char*>(table), -1);
  Relation rel = table_open(RangeVarGetRelid(range, RowExclusiveLock, false), NoLock);
  const char* name = quote_qualified_identifier(schema, table);
  if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
      rel->rd_rel->relam != HEAP_TABLE_AM_OID)
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE), errmsg("%s must be a plain heap table", name),
                    errhint("The pipelines lock and update its rows directly.")));
  for (int c = 0; c < nkeys + nvalues; c++) attnums[c] = find_column(rel, name, names[c], types[c]);

  // The primary key if it fits, else the first other unique index that does.
  Oid found = InvalidOid;
  Oid primary = RelationGetPrimaryKeyIndex(rel);
  List* indexes = RelationGetIndexList(rel);
  if (OidIsValid(primary)) indexes = lcons_oid(primary, indexes);
  ListCell* cell;
  foreach (cell, indexes) {
    Relation index = index_open(lfirst_oid(cell), AccessShareLock);
    bool fits = is_key_index(index, attnums, nkeys);
    index_close(index, AccessShareLock);
    if (fits) {
      found = lfirst_oid(cell);
      break;
    }
  }
  if (!OidIsValid(found))
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_TABLE_DEFINITION), errmsg("%s has no unique btree index on its key columns", name),
             errhint("Restore the table's primary key as the extension created it.")));
  out->relid = RelationGetRelid(rel);
  out->index = found;
  out->name = name;
  table_close(rel, NoLock);
}

// A range table entry reading the key and value columns, updating the value columns when
// `update`: the executor checks privileges and fires column triggers from it.
RangeTblEntry* keyed_rte(Relation rel, const AttrNumber* keys, int nkeys, const AttrNumber* values, int nvalues,
                         bool update) {
  RangeTblEntry* rte = makeNode(RangeTblEntry);
  rte->rtekind = RTE_RELATION;
  rte->relid = RelationGetRelid(rel);
  rte->relkind = rel->rd_rel->relkind;
  rte->rellockmode = RowExclusiveLock;
  rte->requiredPerms = ACL_SELECT | (update ? ACL_UPDATE : 0);
  for (int c = 0; c < nkeys; c++)
    rte->selectedCols = bms_add_member(rte->selectedCols, keys[c] - FirstLowInvalidHeapAttributeNumber);
  for (int c = 0; c < nvalues; c++) {
    rte->selectedCols = bms_add_member(rte->selectedCols, values[c] - FirstLowInvalidHeapAttributeNumber);
    if (update) rte->updatedCols = bms_add_member(rte->updatedCols, values[c] - FirstLowInvalidHeapAttributeNumber);
  }
  // Stored generated columns are recomputed (all of them: recomputing one that depends on no
  // value column gives the same value).
  TupleDesc desc = RelationGetDescr(rel);
  if (update && desc->constr != nullptr && desc->constr->has_generated_stored)
    for (int i = 0; i < desc->natts; i++)
      if (TupleDescAttr(desc, i)->attgenerated == ATTRIBUTE_GENERATED_STORED)
        rte->extraUpdatedCols = bms_add_member(rte->extraUpdatedCols, i + 1 - FirstLowInvalidHeapAttributeNumber);
  return rte;
}

// A batch's probe, as KeyedTable::probe hands it over.
struct ProbeJob {
  Oid relid;
  Oid index;
  const AttrNumber* key_attnums;
  int nkeys;
  const AttrNumber* value_attnums;
  int nvalues;
  std::size_t count;
  const Datum* keys;
  bool lock;
  // Out, sized by the caller.
  char* found;
  ItemPointerData* tids;
  void** tuples;  // lock only: each locked row, copied (HeapTuple)
  Datum* values;
  char* nulls;
};

// Whether the row in slot still has key k (a row reached by following an update chain may
// have another key now: a SELECT FOR UPDATE rechecks its WHERE clause the same way).
bool same_key(TupleTableSlot* slot, const ProbeJob* job, FmgrInfo* equal, const Oid* collations, std::size_t k) {
  for (int c = 0; c < job->nkeys; c++) {
    bool isnull = false;
    Datum value = slot_getattr(slot, job->key_attnums[c], &isnull);
    if (isnull || !DatumGetBool(FunctionCall2Coll(&equal[c], collations[c], value, job->keys[k * job->nkeys + c])))
      return false;
  }
  return true;
}

// The writers' advisory lock on the table (see keyed_table.h), held to the transaction's end.
void lock_writers(Oid relid) {
  LOCKTAG tag;
  SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(kAdvisoryLockClass), static_cast<uint32>(relid), 2);
  (void)LockAcquire(&tag, ExclusiveLock, false, false);
}

// Under REPEATABLE READ and SERIALIZABLE: a key missing from the transaction's snapshot that
// another transaction has committed since cannot be inserted; as INSERT ... ON CONFLICT, that is
// a serialization failure.
void check_not_committed_since(IndexScanDesc* latest_scan, Snapshot* latest, Relation rel, Relation index, ScanKey key,
                               int nkeys, TupleTableSlot* slot) {
  if (*latest_scan == nullptr) {
    *latest = RegisterSnapshot(GetLatestSnapshot());
    *latest_scan = index_beginscan(rel, index, *latest, nkeys, 0);
  }
  index_rescan(*latest_scan, key, nkeys, nullptr, 0);
  if (index_getnext_slot(*latest_scan, ForwardScanDirection, slot))
    ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                    errmsg("could not serialize access due to concurrent insert")));
}

// KeyedTable::probe inside one pg_call.
void probe_rows(const ProbeJob* job) {
  Relation rel = table_open(job->relid, NoLock);  // locked RowExclusiveLock when resolved
  check_table_access(keyed_rte(rel, job->key_attnums, job->nkeys, job->value_attnums, job->nvalues, job->lock));
  if (job->lock) lock_writers(job->relid);
  Relation index = index_open(job->index, AccessShareLock);
  MemoryContext caller = CurrentMemoryContext;
  MemoryContext work = AllocSetContextCreate(caller, "streamrec keyed probe", ALLOCSET_DEFAULT_SIZES);
  MemoryContextSwitchTo(work);

  int nkeys = job->nkeys;
  ScanKey key = static_cast<ScanKey>(palloc(sizeof(ScanKeyData) * nkeys));
  FmgrInfo* equal = static_cast<FmgrInfo*>(palloc(sizeof(FmgrInfo) * nkeys));
  Oid* collations = static_cast<Oid*>(palloc(sizeof(Oid) * nkeys));
  for (int c = 0; c < nkeys; c++) {
    Oid type = index->rd_opcintype[c];
    Oid op = get_opfamily_member(index->rd_opfamily[c], type, type, BTEqualStrategyNumber);
    // Every btree operator family has an equality member: cannot happen, so internal.
    if (!OidIsValid(op)) elog(ERROR, "no equality operator in the opfamily of index %u", job->index);
    RegProcedure proc = get_opcode(op);
    fmgr_info(proc, &equal[c]);
    collations[c] = index->rd_indcollation[c];
    ScanKeyInit(&key[c], static_cast<AttrNumber>(c + 1), BTEqualStrategyNumber, proc, 0);
    key[c].sk_collation = collations[c];
  }
  int16* lengths = static_cast<int16*>(palloc(sizeof(int16) * Max(job->nvalues, 1)));
  bool* byval = static_cast<bool*>(palloc(sizeof(bool) * Max(job->nvalues, 1)));
  for (int v = 0; v < job->nvalues; v++) {
    Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), job->value_attnums[v] - 1);
    lengths[v] = att->attlen;
    byval[v] = att->attbyval;
  }

  // As SPI runs a statement: earlier commands' changes visible, a new snapshot under READ
  // COMMITTED (the transaction's under REPEATABLE READ and SERIALIZABLE), taken after the
  // writers' lock so that it sees what the previous holder inserted.
  CommandCounterIncrement();
  PushActiveSnapshot(GetTransactionSnapshot());
  Snapshot snapshot = GetActiveSnapshot();
  CommandId cid = GetCurrentCommandId(job->lock);
  // As ExecLockRows: under READ COMMITTED a row updated since the snapshot is locked in its latest
  // version; under the snapshot isolation levels that is a serialization failure.
  bool xact_snapshot = IsolationUsesXactSnapshot();
  uint8 flags = TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS | (xact_snapshot ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION);
  IndexScanDesc scan = index_beginscan(rel, index, snapshot, nkeys, 0);
  IndexScanDesc latest_scan = nullptr;
  Snapshot latest = nullptr;
  TupleTableSlot* slot = table_slot_create(rel, nullptr);

  for (std::size_t k = 0; k < job->count; k++) {
    CHECK_FOR_INTERRUPTS();
    job->found[k] = 0;
    for (int c = 0; c < nkeys; c++) key[c].sk_argument = job->keys[k * nkeys + c];
    index_rescan(scan, key, nkeys, nullptr, 0);
    if (!index_getnext_slot(scan, ForwardScanDirection, slot)) {  // no committed row
      if (job->lock && xact_snapshot) check_not_committed_since(&latest_scan, &latest, rel, index, key, nkeys, slot);
      continue;
    }
    ItemPointerData tid = slot->tts_tid;
    if (job->lock) {
      TM_FailureData failure;
      // FOR NO KEY UPDATE: what an UPDATE of the value columns takes, so the later update needs
      // no stronger lock; it conflicts with other batches, UPDATE, DELETE and FOR UPDATE/SHARE,
      // not with the KEY SHARE locks of foreign keys referencing the row.
      TM_Result result =
          table_tuple_lock(rel, &tid, snapshot, slot, cid, LockTupleNoKeyExclusive, LockWaitBlock, flags, &failure);
      // Statuses other than TM_Ok, TM_Updated and TM_Deleted cannot come back for a row locked
      // with LockWaitBlock (as in PostgreSQL's own row locking, they are internal).
      switch (result) {
        case TM_Ok:
          break;
        case TM_Updated:
        case TM_Deleted:
          if (xact_snapshot)
            ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                            errmsg("could not serialize access due to concurrent update")));
          if (result == TM_Deleted) continue;  // deleted while we waited: the key is missing
          elog(ERROR, "unexpected table_tuple_lock status: %u", result);
          break;
        case TM_Invisible:
          elog(ERROR, "attempted to lock invisible tuple");
          break;
        default:
          elog(ERROR, "unexpected table_tuple_lock status: %u", result);
          break;
      }
      if (failure.traversed && !same_key(slot, job, equal, collations, k)) continue;
    }
    job->found[k] = 1;
    job->tids[k] = tid;
    MemoryContextSwitchTo(caller);
    // The update forms the new row from this copy instead of fetching the locked row again.
    if (job->lock) job->tuples[k] = ExecCopySlotHeapTuple(slot);
    for (int v = 0; v < job->nvalues; v++) {
      bool isnull = false;
      Datum value = slot_getattr(slot, job->value_attnums[v], &isnull);
      if (!isnull && !byval[v])
        value = lengths[v] == -1
                    ? PointerGetDatum(pg_detoast_datum_copy(reinterpret_cast<varlena*>(DatumGetPointer(value))))
                    : datumCopy(value, false, lengths[v]);
      job->values[k * job->nvalues + v] = isnull ? 0 : value;
      job->nulls[k * job->nvalues + v] = isnull ? 1 : 0;
    }
    MemoryContextSwitchTo(work);
  }

  ExecDropSingleTupleTableSlot(slot);
  index_endscan(scan);
  if (latest_scan != nullptr) {
    index_endscan(latest_scan);
    UnregisterSnapshot(latest);
  }
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

// KeyedTable::update_rows, as handed over.
struct UpdateJob {
  Oid relid;
  const AttrNumber* key_attnums;
  int nkeys;
  const AttrNumber* value_attnums;
  int nvalues;
  const ItemPointerData* tids;
  void* const* tuples;
  std::size_t count;
  const std::uint32_t* which;
  const Datum* values;
  const bool* nulls;
};

// KeyedTable::update_rows inside one pg_call: one UPDATE statement (table_statement.h), then
// each row by the TID of the version we locked.
void update_rows_job(const UpdateJob* job) {
  Relation rel = table_open(job->relid, NoLock);
  TableStatement statement;
  begin_table_statement(&statement, rel,
                        keyed_rte(rel, job->key_attnums, job->nkeys, job->value_attnums, job->nvalues, true),
                        CMD_UPDATE);
  EState* estate = statement.estate;
  EPQState epq;
  EvalPlanQualInit(&epq, estate, nullptr, NIL, -1);
  // The table's own slot type, as UPDATE's new-tuple slot: materializing it forms the heap tuple
  // the update then stores, with no second copy.
  TupleTableSlot* new_row = table_slot_create(rel, &estate->es_tupleTable);
  TupleDesc desc = RelationGetDescr(rel);
  for (std::size_t i = 0; i < job->count; i++) {
    CHECK_FOR_INTERRUPTS();
    ResetPerTupleExprContext(estate);
    ItemPointerData tid = job->tids[job->which[i]];
    // The version we locked, as lock_rows copied it: nobody else can have changed it since.
    ExecClearTuple(new_row);
    heap_deform_tuple(static_cast<HeapTuple>(job->tuples[job->which[i]]), desc, new_row->tts_values,
                      new_row->tts_isnull);
    for (int v = 0; v < job->nvalues; v++) {
      new_row->tts_values[job->value_attnums[v] - 1] = job->values[i * job->nvalues + v];
      new_row->tts_isnull[job->value_attnums[v] - 1] = job->nulls[i * job->nvalues + v];
    }
    ExecStoreVirtualTuple(new_row);
    new_row->tts_tableOid = RelationGetRelid(rel);  // as ExecUpdatePrepareSlot: tableoid for CHECKs and triggers
    ExecMaterializeSlot(new_row);                   // its own copy: the old version's page changes under the update
    EvalPlanQualSetSlot(&epq, new_row);
    update_row(estate, statement.target, &epq, &tid, new_row, statement.capture);
  }
  EvalPlanQualEnd(&epq);
  end_table_statement(&statement);  // AFTER triggers fire; the next statements see the new values
  table_close(rel, NoLock);
}

// KeyedTable::insert_rows' rows, as insert_table_rows() reads them.
struct InsertRows {
  int nkeys;
  int nvalues;
  std::size_t count;
  std::size_t next;
  const Datum* keys;
  const Datum* values;
  const bool* nulls;
};

bool insert_row(void* arg, Datum* values, bool* nulls) noexcept {
  auto* rows = static_cast<InsertRows*>(arg);
  if (rows->next == rows->count) return false;
  std::size_t i = rows->next++;
  for (int c = 0; c < rows->nkeys; c++) {
    values[c] = rows->keys[i * rows->nkeys + c];
    nulls[c] = false;
  }
  for (int v = 0; v < rows->nvalues; v++) {
    values[rows->nkeys + v] = rows->values[i * rows->nvalues + v];
    nulls[rows->nkeys + v] = rows->nulls[i * rows->nvalues + v];
  }
  return true;
}

// KeyedTable::insert_rows inside one pg_call.
void insert_rows_job(Oid relid, const AttrNumber* columns, int ncolumns, InsertRows* rows) {
  Relation rel = table_open(relid, NoLock);
  insert_table_rows(rel, columns, ncolumns, insert_row, rows);
  table_close(rel, NoLock);
}

}  // namespace

KeyedTable::KeyedTable(const KeyedTableSpec& spec) {
  std::vector<const char*> names;
  std::vector<Oid> types;
  for (const KeyedColumn& c : spec.key_columns) names.push_back(c.name.c_str()), types.push_back(c.type);
  for (const KeyedColumn& c : spec.value_columns) names.push_back(c.name.c_str()), types.push_back(c.type);
  std::vector<AttrNumber> attnums(names.size());
  Resolved resolved{};
  const char* schema = spec.schema.c_str();
  const char* table = spec.table.c_str();
  const char* const* name_data = names.data();
  const Oid* type_data = types.data();
  int nkeys = static_cast<int>(spec.key_columns.size());
  int nvalues = static_cast<int>(spec.value_columns.size());
  AttrNumber* attnum_data = attnums.data();
  Resolved* out = &resolved;
  pg_call([=] { resolve(schema, table, name_data, type_data, nkeys, nvalues, attnum_data, out); });
  relid_ = resolved.relid;
  index_ = resolved.index;
  name_ = resolved.name;
  key_attnums_.assign(attnums.begin(), attnums.begin() + nkeys);
  value_attnums_.assign(attnums.begin() + nkeys, attnums.end());
}

KeyedRows KeyedTable::probe(std::size_t count, const Datum* keys, bool lock) const {
  KeyedRows rows;
  rows.value_count = value_count();
  rows.found.assign(count, 0);
  rows.tids.resize(count);
  rows.tuples.assign(lock ? count : 0, nullptr);
  rows.values.assign(count * value_count(), 0);
  rows.nulls.assign(count * value_count(), 1);
  if (count == 0) return rows;
  ProbeJob job{relid_,
               index_,
               key_attnums_.data(),
               static_cast<int>(key_count()),
               value_attnums_.data(),
               static_cast<int>(value_count()),
               count,
               keys,
               lock,
               rows.found.data(),
               rows.tids.data(),
               rows.tuples.data(),
               rows.values.data(),
               rows.nulls.data()};
  const ProbeJob* job_data = &job;
  pg_call([job_data] { probe_rows(job_data); });
  return rows;
}

KeyedRows KeyedTable::lock_rows(std::size_t count, const Datum* keys) const { return probe(count, keys, true); }

KeyedRows KeyedTable::read_rows(std::size_t count, const Datum* keys) const { return probe(count, keys, false); }

void KeyedTable::update_rows(const KeyedRows& rows, std::size_t count, const std::uint32_t* which, const Datum* values,
                             const bool* nulls) const {
  if (count == 0) return;
  for (std::size_t i = 0; i < count; i++)
    if (which[i] >= rows.size() || !rows.found[which[i]])
      throw Error(ERRCODE_INTERNAL_ERROR, "update of a key of " + name_ + " that was not found and locked");
  UpdateJob job{relid_,
                key_attnums_.data(),
                static_cast<int>(key_count()),
                value_attnums_.data(),
                static_cast<int>(value_count()),
                rows.tids.data(),
                rows.tuples.data(),
                count,
                which,
                values,
                nulls};
  const UpdateJob* job_data = &job;
  pg_call([job_data] { update_rows_job(job_data); });
}

void KeyedTable::insert_rows(std::size_t count, const Datum* keys, const Datum* values, const bool* nulls) const {
  if (count == 0) return;
  std::vector<AttrNumber> columns(key_attnums_);
  columns.insert(columns.end(), value_attnums_.begin(), value_attnums_.end());
  InsertRows rows{static_cast<int>(key_count()), static_cast<int>(value_count()), count, 0, keys, values, nulls};
  Oid relid = relid_;
  const AttrNumber* column_data = columns.data();
  int ncolumns = static_cast<int>(columns.size());
  InsertRows* row_data = &rows;
  pg_call([=] { insert_rows_job(relid, column_data, ncolumns, row_data); });
}

std::vector<Datum> text_datums(const std::vector<std::string_view>& values) {
  std::vector<Datum> out(values.size());
  if (values.empty()) return out;
  std::size_t bytes = 0;
  for (std::string_view v : values) bytes += INTALIGN(VARHDRSZ + v.size());
  char* block = static_cast<char*>(pg_call([bytes] { return palloc_extended(bytes, MCXT_ALLOC_HUGE); }));
  for (std::size_t i = 0; i < values.size(); i++) {
    auto* t = reinterpret_cast<text*>(block);
    SET_VARSIZE(t, VARHDRSZ + values[i].size());
    memcpy(VARDATA(t), values[i].data(), values[i].size());
    out[i] = PointerGetDatum(t);
    block += INTALIGN(VARHDRSZ + values[i].size());
  }
  return out;
}

}  // namespace streamrec
