// streamrec._current_role() and the LOCK TABLE guard (see roles.h).
//
// Every admin holds INSERT, UPDATE or DELETE on the shared catalog tables (row-level security
// keeps each to its own rows), and those privileges let LOCK TABLE take any mode: one admin
// holding ACCESS EXCLUSIVE on streamrec.sink_outbox would stop every writer of every sinked
// table. Row-level security does not apply to table locks, so the guard refuses them.
#include "pg/error_boundary.h"
#include "extension/roles.h"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_rewrite.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "rewrite/rewriteSupport.h"
#include "storage/lock.h"
#include "storage/lockdefs.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace streamrec {
namespace {

ProcessUtility_hook_type previous_process_utility = nullptr;

// Tables that sources fill and pipelines read: the deployment's own data, whose privileges
// the DBA grants. Every other table of the extension is internal and shared by all admins.
const char* const kInputTables[] = {"inventory", "clicks",  "purchases",         "users",        "checkouts",
                                    "customers", "ratings", "item_transactions", "stock_queries"};

// Whether visit(row) holds for some pg_depend row of the object (classid, objid); stops at the
// first. visit may raise an ERROR: nothing here needs unwinding.
template <typename Visit>
bool any_dependency(Oid classid, Oid objid, Visit visit) {
  bool found = false;
  Relation depend = table_open(DependRelationId, AccessShareLock);
  ScanKeyData keys[2];
  ScanKeyInit(&keys[0], Anum_pg_depend_classid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(classid));
  ScanKeyInit(&keys[1], Anum_pg_depend_objid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(objid));
  SysScanDesc scan = systable_beginscan(depend, DependDependerIndexId, true, nullptr, 2, keys);
  HeapTuple tuple;
  while (!found && HeapTupleIsValid(tuple = systable_getnext(scan)))
    found = visit(reinterpret_cast<Form_pg_depend>(GETSTRUCT(tuple)));
  systable_endscan(scan);
  table_close(depend, AccessShareLock);
  return found;
}

bool is_extension_member(Oid relid, Oid extension) {
  return any_dependency(RelationRelationId, relid, [extension](Form_pg_depend d) {
    return d->deptype == DEPENDENCY_EXTENSION && d->refclassid == ExtensionRelationId && d->refobjid == extension;
  });
}

bool is_internal_table(Oid relid, Oid extension) {
  if (get_rel_relkind(relid) != RELKIND_RELATION || !is_extension_member(relid, extension)) return false;
  const char* name = get_rel_name(relid);
  for (const char* input : kInputTables)
    if (name != nullptr && strcmp(name, input) == 0) return false;
  return true;
}

// The internal table that locking relid would lock, or InvalidOid. LOCK on a view locks the
// relations its query reads (with the view owner's privileges), so views are followed through
// the dependencies of their _RETURN rule.
Oid internal_table_locked_by(Oid relid, Oid extension, int depth) {
  if (is_internal_table(relid, extension)) return relid;
  if (depth > 32 || get_rel_relkind(relid) != RELKIND_VIEW) return InvalidOid;
  Oid rule = get_rewrite_oid(relid, "_RETURN", true);
  if (!OidIsValid(rule)) return InvalidOid;
  Oid found = InvalidOid;
  any_dependency(RewriteRelationId, rule, [&found, relid, extension, depth](Form_pg_depend d) {
    if (d->refclassid == RelationRelationId && d->refobjid != relid)
      found = internal_table_locked_by(d->refobjid, extension, depth + 1);
    return OidIsValid(found);
  });
  return found;
}

// ACCESS SHARE (what pg_dump takes) conflicts only with ACCESS EXCLUSIVE, which the extension
// takes on these tables in no normal operation; every stronger mode is refused.
void check_lock(const LockStmt* stmt) {
  if (stmt->mode <= AccessShareLock || superuser()) return;
  Oid extension = get_extension_oid("pg_streamrec", true);
  if (!OidIsValid(extension)) return;
  ListCell* cell;
  foreach (cell, stmt->relations) {
    RangeVar* rv = lfirst_node(RangeVar, cell);
    Oid relid = RangeVarGetRelid(rv, NoLock, true);
    if (!OidIsValid(relid)) continue;  // LOCK itself reports the missing relation
    Oid internal = internal_table_locked_by(relid, extension, 0);
    if (OidIsValid(internal)) {
      ereport(ERROR,
              (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
               errmsg("permission denied to lock %s.%s", get_namespace_name(get_rel_namespace(internal)),
                      get_rel_name(internal)),
               errdetail("Only superusers may lock the internal tables of pg_streamrec in a mode above ACCESS SHARE."),
               errhint("These tables are shared by every admin; the streamrec functions lock only the rows they "
                       "change.")));
    }
  }
}

// Only PostgreSQL C calls here (no C++ object with a destructor), so an ERROR may longjmp
// through it like through any other hook.
void guard_process_utility(PlannedStmt* pstmt, const char* query_string, bool read_only_tree,
                           ProcessUtilityContext context, ParamListInfo params, QueryEnvironment* query_env,
                           DestReceiver* dest, QueryCompletion* qc) {
  if (IsA(pstmt->utilityStmt, LockStmt)) check_lock(castNode(LockStmt, pstmt->utilityStmt));
  if (previous_process_utility != nullptr)
    previous_process_utility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
  else
    standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
}

Datum current_role(FunctionCallInfo) { return ObjectIdGetDatum(GetUserId()); }

// Advisory locks of SQL's pg_advisory_* functions carry 1 or 2 in the tag's last field; this
// value sets the extension's own locks apart, so no role can take (and hold) them from SQL.
constexpr uint16 kPrivateLockSpace = 0x5352;

// streamrec._xact_lock(space, key): waits for and takes an exclusive lock on (space, key) held
// until the transaction ends, like pg_advisory_xact_lock(space, key) but out of SQL's reach.
Datum xact_lock(FunctionCallInfo fcinfo) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
    throw Error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "streamrec._xact_lock arguments must not be NULL", "",
                "Pass a lock space and a key.");
  uint32 space = static_cast<uint32>(PG_GETARG_INT32(0));
  uint32 key = static_cast<uint32>(PG_GETARG_INT32(1));
  pg_call([space, key] {
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, space, key, kPrivateLockSpace);
    (void)LockAcquire(&tag, ExclusiveLock, false, false);
  });
  PG_RETURN_BOOL(true);
}

}  // namespace

void install_lock_guard() {
  previous_process_utility = ProcessUtility_hook;
  ProcessUtility_hook = guard_process_utility;
}

}  // namespace streamrec

// The role the caller acts as (current_user), as an OID: what owner columns and row-level
// security compare, so that "Adm1" and adm1 are two roles.
STREAMREC_SQL_FUNCTION(streamrec_current_role, streamrec::current_role)
// Transaction-level locks the extension takes for itself (pipelines' serialization points).
STREAMREC_SQL_FUNCTION(streamrec_xact_lock, streamrec::xact_lock)
