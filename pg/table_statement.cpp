// One INSERT or UPDATE statement through the executor's C APIs (see table_statement.h). Modelled
// on PostgreSQL 15's CopyFrom() (src/backend/commands/copyfrom.c) and the apply worker's
// create_edata_for_relation()/finish_edata() (src/backend/replication/logical/worker.c).
#include "pg/table_statement.h"

extern "C" {
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
}

namespace streamrec {

void check_table_access(RangeTblEntry* rte) {
  ExecCheckRTPerms(list_make1(rte), true);
  if (check_enable_rls(rte->relid, InvalidOid, false) == RLS_ENABLED) {
    const char* name =
        quote_qualified_identifier(get_namespace_name(get_rel_namespace(rte->relid)), get_rel_name(rte->relid));
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("item_transactions does not apply row-level security policies to %s", name),
                    errhint("Disable FORCE ROW LEVEL SECURITY on %s.", name)));
  }
}

void begin_table_statement(TableStatement* statement, Relation rel, RangeTblEntry* rte, CmdType operation) {
  Assert(operation == CMD_INSERT || operation == CMD_UPDATE);
  // As SPI runs a statement: earlier commands' changes visible, a new snapshot under READ
  // COMMITTED (the transaction's under REPEATABLE READ and SERIALIZABLE).
  CommandCounterIncrement();
  PushActiveSnapshot(GetTransactionSnapshot());
  EState* estate = CreateExecutorState();
  statement->estate = estate;
  statement->operation = operation;
  statement->caller = MemoryContextSwitchTo(estate->es_query_cxt);

  check_table_access(rte);
  ExecInitRangeTable(estate, list_make1(rte));
  estate->es_snapshot = GetActiveSnapshot();
  estate->es_output_cid = GetCurrentCommandId(true);
  ResultRelInfo* target = makeNode(ResultRelInfo);
  InitResultRelInfo(target, rel, 1, nullptr, 0);
  // Listed as opened so that ExecGetTriggerResultRel() finds it and ExecCloseResultRelations()
  // closes its indexes (not the relation: it is the caller's).
  estate->es_opened_result_relations = lappend(estate->es_opened_result_relations, target);
  statement->target = target;
  CheckValidResultRel(target, operation);
  ExecOpenIndices(target, false);

  // The AFTER-trigger query level first, then its transition tables: as ExecutorStart does
  // before ExecInitModifyTable, so that the tuplestores belong to this statement's level (not
  // to the statement whose trigger runs us) and are released when it ends.
  AfterTriggerBeginQuery();
  statement->capture = MakeTransitionCaptureState(rel->trigdesc, RelationGetRelid(rel), operation);
  if (operation == CMD_INSERT)
    ExecBSInsertTriggers(estate, target);
  else
    ExecBSUpdateTriggers(estate, target);
}

void end_table_statement(TableStatement* statement) {
  EState* estate = statement->estate;
  if (statement->operation == CMD_INSERT)
    ExecASInsertTriggers(estate, statement->target, statement->capture);
  else
    ExecASUpdateTriggers(estate, statement->target, statement->capture);
  AfterTriggerEndQuery(estate);  // fires the AFTER triggers queued above

  ExecCloseResultRelations(estate);  // the indexes, and relations the triggers' machinery opened
  ExecCloseRangeTableRelations(estate);
  ExecResetTupleTable(estate->es_tupleTable, false);
  MemoryContextSwitchTo(statement->caller);
  FreeExecutorState(estate);
  PopActiveSnapshot();
  CommandCounterIncrement();  // the transaction's next statements see the changes
}

namespace {

// At most this many rows, or about this many bytes of them, wait for one table_multi_insert
// (COPY's own bounds: beyond them the heap gains nothing and the slots hold memory).
constexpr int kBufferedRows = 1000;
constexpr Size kBufferedBytes = 65535;

// A column filled from its default expression.
struct DefaultColumn {
  int index;  // 0-based attribute
  ExprState* expr;
};

// The buffered rows into the heap, then each into the indexes and the AFTER ROW triggers and
// transition tables, in order (CopyMultiInsertBufferFlush).
void flush_rows(TableStatement* statement, TupleTableSlot** slots, int count, BulkInsertState bistate) {
  EState* estate = statement->estate;
  ResultRelInfo* target = statement->target;
  MemoryContext query = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));  // it may leak
  table_multi_insert(target->ri_RelationDesc, slots, count, estate->es_output_cid, 0, bistate);
  MemoryContextSwitchTo(query);
  for (int i = 0; i < count; i++) {
    List* recheck = NIL;
    if (target->ri_NumIndices > 0)
      recheck = ExecInsertIndexTuples(target, slots[i], estate, false, false, nullptr, NIL);
    // Does nothing unless there are AFTER ROW triggers or transition tables.
    ExecARInsertTriggers(estate, target, slots[i], recheck, statement->capture);
    list_free(recheck);
    ExecClearTuple(slots[i]);
  }
}

}  // namespace

int64 insert_table_rows(Relation rel, const AttrNumber* columns, int column_count, RowSource next, void* arg) {
  if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition)
    ereport(ERROR,
            (errcode(ERRCODE_WRONG_OBJECT_TYPE), errmsg("\"%s\" must be a plain table", RelationGetRelationName(rel)),
             errhint("Its rows are inserted directly, as COPY does; partitioned tables, their partitions "
                     "and foreign tables are not.")));
  RangeTblEntry* rte = makeNode(RangeTblEntry);
  rte->rtekind = RTE_RELATION;
  rte->relid = RelationGetRelid(rel);
  rte->relkind = rel->rd_rel->relkind;
  rte->rellockmode = RowExclusiveLock;
  rte->requiredPerms = ACL_INSERT;
  for (int c = 0; c < column_count; c++)
    rte->insertedCols = bms_add_member(rte->insertedCols, columns[c] - FirstLowInvalidHeapAttributeNumber);

  TableStatement statement;
  begin_table_statement(&statement, rel, rte, CMD_INSERT);
  EState* estate = statement.estate;
  ResultRelInfo* target = statement.target;
  TupleDesc desc = RelationGetDescr(rel);
  int natts = desc->natts;

  // The other columns' defaults, as BeginCopyFrom prepares them; a volatile one (nextval()
  // apart) may read the table, so it must see every earlier row.
  bool* given = static_cast<bool*>(palloc0(sizeof(bool) * (natts + 1)));
  for (int c = 0; c < column_count; c++) given[columns[c] - 1] = true;
  DefaultColumn* defaults = static_cast<DefaultColumn*>(palloc(sizeof(DefaultColumn) * (natts + 1)));
  int default_count = 0;
  bool volatile_defaults = false;
  for (int i = 0; i < natts; i++) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    if (att->attisdropped || given[i] || att->attgenerated) continue;
    Expr* expr = reinterpret_cast<Expr*>(build_column_default(rel, i + 1));
    if (expr == nullptr) continue;
    expr = expression_planner(expr);
    defaults[default_count].index = i;
    defaults[default_count].expr = ExecInitExpr(expr, nullptr);
    default_count++;
    volatile_defaults = volatile_defaults || contain_volatile_functions_not_nextval(reinterpret_cast<Node*>(expr));
  }

  TriggerDesc* triggers = target->ri_TrigDesc;
  bool before_row = triggers != nullptr && triggers->trig_insert_before_row;
  bool batched = !before_row && !volatile_defaults;
  bool generated = desc->constr != nullptr && desc->constr->has_generated_stored;
  BulkInsertState bistate = GetBulkInsertState();
  ExprContext* econtext = GetPerTupleExprContext(estate);
  TupleTableSlot** slots = static_cast<TupleTableSlot**>(palloc0(sizeof(TupleTableSlot*) * kBufferedRows));
  TupleTableSlot* single = batched ? nullptr : table_slot_create(rel, &estate->es_tupleTable);
  Datum* source_values = static_cast<Datum*>(palloc(sizeof(Datum) * (column_count + 1)));
  bool* source_nulls = static_cast<bool*>(palloc(sizeof(bool) * (column_count + 1)));
  int buffered = 0;
  Size buffered_bytes = 0;
  int64 inserted = 0;

  for (;;) {
    CHECK_FOR_INTERRUPTS();
    ResetPerTupleExprContext(estate);
    TupleTableSlot* slot = single;
    if (batched) {
      if (slots[buffered] == nullptr) slots[buffered] = table_slot_create(rel, &estate->es_tupleTable);
      slot = slots[buffered];
    }
    // The source's values and the defaults live in the per-row context until the slot is
    // materialized (or inserted).
    MemoryContext query = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
    ExecClearTuple(slot);
    if (!next(arg, source_values, source_nulls)) {
      MemoryContextSwitchTo(query);
      break;
    }
    for (int i = 0; i < natts; i++) {
      slot->tts_values[i] = (Datum)0;
      slot->tts_isnull[i] = true;
    }
    for (int c = 0; c < column_count; c++) {
      slot->tts_values[columns[c] - 1] = source_values[c];
      slot->tts_isnull[columns[c] - 1] = source_nulls[c];
    }
    for (int d = 0; d < default_count; d++) {
      int i = defaults[d].index;
      slot->tts_values[i] = ExecEvalExpr(defaults[d].expr, econtext, &slot->tts_isnull[i]);
    }
    ExecStoreVirtualTuple(slot);
    slot->tts_tableOid = RelationGetRelid(rel);  // constraints may read tableoid
    MemoryContextSwitchTo(query);

    if (before_row && !ExecBRInsertTriggers(estate, target, slot)) continue;  // the trigger skipped it
    if (generated) ExecComputeStoredGenerated(target, estate, slot, CMD_INSERT);
    if (desc->constr != nullptr) ExecConstraints(target, slot, estate);
    inserted++;

    if (batched) {
      ExecMaterializeSlot(slot);  // its own copy, out of the per-row context
      buffered++;
      if (TTS_IS_BUFFERTUPLE(slot))
        buffered_bytes += reinterpret_cast<BufferHeapTupleTableSlot*>(slot)->base.tuple->t_len;
      if (buffered == kBufferedRows || buffered_bytes >= kBufferedBytes) {
        flush_rows(&statement, slots, buffered, bistate);
        buffered = 0;
        buffered_bytes = 0;
      }
    } else {
      table_tuple_insert(rel, slot, estate->es_output_cid, 0, bistate);
      List* recheck = NIL;
      if (target->ri_NumIndices > 0) recheck = ExecInsertIndexTuples(target, slot, estate, false, false, nullptr, NIL);
      ExecARInsertTriggers(estate, target, slot, recheck, statement.capture);
      list_free(recheck);
    }
  }
  if (buffered > 0) flush_rows(&statement, slots, buffered, bistate);
  FreeBulkInsertState(bistate);
  end_table_statement(&statement);
  return inserted;
}

}  // namespace streamrec
