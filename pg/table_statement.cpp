// One INSERT or UPDATE statement through the executor's C APIs (see table_statement.h).
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
                    errmsg("the pipelines do not apply row-level security policies to %s", name),
                    errhint("Disable FORCE ROW LEVEL SECURITY on %s.", name)));
  }
}

void ask_insert(RangeTblEntry* rte, const AttrNumber* columns, int column_count) {
  rte->requiredPerms = ACL_INSERT;
  for (int c = 0; c < column_count; c++)
    rte->insertedCols = bms_add_member(rte->insertedCols, columns[c] - FirstLowInvalidHeapAttributeNumber);
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

}  // namespace streamrec
