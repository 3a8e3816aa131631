#include "pg/result_table.h"

#include <cstring>

#include "pg/error_boundary.h"

extern "C" {
#include "access/table.h"
#include "catalog/namespace.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/rel.h"
}

namespace streamrec {
namespace {

struct Append {
  const char* table;
  const ResultColumn* columns;
  int column_count;
  RowSource next;
  void* arg;
};

// PostgreSQL code only (inside one pg_call).
int64 append(const Append* a) {
  RangeVar* name = makeRangeVar(const_cast<char*>("streamrec"), const_cast<char*>(a->table), -1);
  Relation rel = table_open(RangeVarGetRelid(name, RowExclusiveLock, false), NoLock);
  TupleDesc desc = RelationGetDescr(rel);
  auto* attnums = static_cast<AttrNumber*>(palloc(sizeof(AttrNumber) * a->column_count));
  for (int c = 0; c < a->column_count; c++) {
    attnums[c] = InvalidAttrNumber;
    for (int i = 0; i < desc->natts; i++) {
      Form_pg_attribute att = TupleDescAttr(desc, i);
      if (!att->attisdropped && att->atttypid == a->columns[c].type &&
          strcmp(NameStr(att->attname), a->columns[c].name) == 0)
        attnums[c] = att->attnum;
    }
    if (attnums[c] == InvalidAttrNumber)
      ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION),
                      errmsg("streamrec.%s has no column %s of type %s", a->table, a->columns[c].name,
                             format_type_be(a->columns[c].type)),
                      errhint("Restore the table as the extension created it.")));
  }
  int64 inserted = insert_table_rows(rel, attnums, a->column_count, a->next, a->arg);
  pfree(attnums);
  table_close(rel, NoLock);
  return inserted;
}

}  // namespace

int64_t append_rows(const char* table, const ResultColumn* columns, int column_count, RowSource next, void* arg) {
  Append a{table, columns, column_count, next, arg};
  const Append* request = &a;
  return pg_call([request] { return append(request); });
}

}  // namespace streamrec
