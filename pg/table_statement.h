// One INSERT or UPDATE statement on one table, run through PostgreSQL's executor C APIs rather
// than SQL: the executor state that the logical replication apply worker and COPY FROM build
// (privileges, result relation, indexes, statement triggers, AFTER-trigger query level,
// transition tables), shared by the pipelines that write rows directly (pg/keyed_table,
// and pg/bulk_insert for the item_transactions results).
//
// Everything here is plain PostgreSQL code for use inside one pg_call(): it may ERROR at any
// point, so it keeps no C++ object and allocates only in memory contexts reset at abort; the
// relations it opens are released by the resource owner at abort, the AFTER-trigger query level
// by AfterTriggerEndXact/SubXact.
#pragma once

extern "C" {
#include "postgres.h"
#include "commands/trigger.h"
#include "nodes/execnodes.h"
#include "nodes/parsenodes.h"
#include "utils/relcache.h"
}

namespace streamrec {

// A statement begun by begin_table_statement().
struct TableStatement {
  EState* estate;
  ResultRelInfo* target;
  TransitionCaptureState* capture;  // null when no trigger on the table has a transition table
  CmdType operation;
  MemoryContext caller;
};

// What the executor checks before it reads or writes rel's rows as rte asks (as the trigger's
// SECURITY DEFINER owner: column privileges and ExecutorCheckPerms_hook included). Row-level
// security policies are not applied: a table where they apply refuses the statement.
void check_table_access(RangeTblEntry* rte);

// Makes rte ask for INSERT (and nothing else) into the given columns (attribute numbers), as
// COPY FROM asks.
void ask_insert(RangeTblEntry* rte, const AttrNumber* columns, int column_count);

// Starts a statement of `operation` (CMD_INSERT or CMD_UPDATE) on rel, which the caller opened
// with RowExclusiveLock: earlier commands' changes made visible and a snapshot pushed (as SPI
// does), the access rte asks for checked, the result relation and its indexes opened, an
// AFTER-trigger query level begun with its transition tables, BEFORE STATEMENT triggers fired.
// CurrentMemoryContext is the statement's (es_query_cxt) until end_table_statement().
void begin_table_statement(TableStatement* statement, Relation rel, RangeTblEntry* rte, CmdType operation);

// Queues the AFTER STATEMENT triggers, fires every AFTER trigger the statement queued (they see
// the transition tables), frees the executor state and makes the statement's changes visible to
// the transaction's next commands. The caller closes rel.
void end_table_statement(TableStatement* statement);

}  // namespace streamrec
