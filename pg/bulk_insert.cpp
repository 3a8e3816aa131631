// Both bulk-insert paths (see bulk_insert.h); insert_table_rows() takes the steps of COPY FROM's
// own executor loop.
#include "pg/bulk_insert.h"

#include <algorithm>
#include <cstring>

#include "pg/table_statement.h"

extern "C" {
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "commands/copy.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/memutils.h"
#include "utils/rel.h"
}

namespace streamrec {
namespace {

// BeginCopyFrom's data-source callback takes no user pointer, so the text being copied lives
// here for the duration of one CopyFrom() call.
struct CopyFeed {
  const char* data = nullptr;
  size_t size = 0;
  size_t position = 0;
};
CopyFeed copy_feed;

extern "C" int feed_copy(void* outbuf, int minread, int maxread) {
  size_t left = copy_feed.size - copy_feed.position;
  size_t n = std::min(left, static_cast<size_t>(maxread));
  memcpy(outbuf, copy_feed.data + copy_feed.position, n);
  copy_feed.position += n;
  return static_cast<int>(n);
}

}  // namespace

uint64 copy_text_rows(Relation rel, List* column_names, const char* data, size_t size) {
  copy_feed = CopyFeed{data, size, 0};
  ParseState* pstate = make_parsestate(nullptr);
  // As COPY itself does: the relation is range-table entry 1, checked for INSERT as the
  // current user, column privileges included.
  ParseNamespaceItem* item = addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, nullptr, false, false);
  AttrNumber* columns = static_cast<AttrNumber*>(palloc(sizeof(AttrNumber) * (list_length(column_names) + 1)));
  int column_count = 0;
  ListCell* cell;
  foreach (cell, column_names)
    columns[column_count++] = static_cast<AttrNumber>(attnameAttNum(rel, strVal(lfirst(cell)), false));
  ask_insert(item->p_rte, columns, column_count);
  ExecCheckRTPerms(pstate->p_rtable, true);
  CopyFromState cstate = BeginCopyFrom(pstate, rel, nullptr, nullptr, false, feed_copy, column_names, NIL);
  uint64 rows = CopyFrom(cstate);
  EndCopyFrom(cstate);
  free_parsestate(pstate);
  CommandCounterIncrement();
  return rows;
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
void flush_rows(TableStatement* statement, TupleTableSlot** slots, const int64* ordinals, int count,
                BulkInsertState bistate, volatile int64* current_row) {
  EState* estate = statement->estate;
  ResultRelInfo* target = statement->target;
  MemoryContext query = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));  // it may leak
  *current_row = -1;
  table_multi_insert(target->ri_RelationDesc, slots, count, estate->es_output_cid, 0, bistate);
  MemoryContextSwitchTo(query);
  for (int i = 0; i < count; i++) {
    *current_row = ordinals[i];
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
  volatile int64 current_row = -1;
  return insert_table_rows(rel, columns, column_count, next, arg, &current_row);
}

int64 insert_table_rows(Relation rel, const AttrNumber* columns, int column_count, RowSource next, void* arg,
                        volatile int64* current_row) {
  *current_row = -1;
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
  ask_insert(rte, columns, column_count);

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
  int64* ordinals = static_cast<int64*>(palloc(sizeof(int64) * kBufferedRows));
  int64 ordinal = -1;
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
    *current_row = ++ordinal;
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
      ordinals[buffered] = ordinal;
      buffered++;
      if (TTS_IS_BUFFERTUPLE(slot))
        buffered_bytes += reinterpret_cast<BufferHeapTupleTableSlot*>(slot)->base.tuple->t_len;
      if (buffered == kBufferedRows || buffered_bytes >= kBufferedBytes) {
        flush_rows(&statement, slots, ordinals, buffered, bistate, current_row);
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
  if (buffered > 0) flush_rows(&statement, slots, ordinals, buffered, bistate, current_row);
  *current_row = -1;
  FreeBulkInsertState(bistate);
  end_table_statement(&statement);
  return inserted;
}

}  // namespace streamrec
