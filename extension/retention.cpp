// streamrec._retain_as(owner, relation, time_column, keep): one table's retention, run by the
// launcher's tick as the role that set it. The launcher connects as the bootstrap superuser; a
// DELETE it ran itself would fire the table's triggers, and apply its privileges and row-level
// security, as that superuser. Here the DELETE runs as the owner, in a restricted security context
// (as REFRESH MATERIALIZED VIEW runs a view's query as its owner): privileges, policies and
// triggers apply as for the owner's own DELETE, and the owner's code can neither SET ROLE back
// to the superuser nor leave a setting behind (the GUC nest level is rolled back).
#include "pg/error_boundary.h"

extern "C" {
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/syscache.h"
}

namespace streamrec {
namespace {

// PostgreSQL C calls only (runs as one pg_call). An ERROR leaves the user id and the GUC nest
// level to the (sub)transaction abort, which restores both.
void retain_as_owner(Oid owner, Datum relation, Datum time_column, Datum keep) {
  if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("role with OID %u does not exist", owner),
                    errhint("The retention's owner was dropped; streamrec.set_retention sets it again.")));
  Oid saved_user;
  int saved_context;
  GetUserIdAndSecContext(&saved_user, &saved_context);
  int nest_level = NewGUCNestLevel();
  SetUserIdAndSecContext(owner, saved_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
  (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                          false);
  // SPI_connect fails only when called in the wrong place, and a SELECT that does not raise always reports
  // SPI_OK_SELECT: bugs, so these stay internal.
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
  Oid types[3] = {REGCLASSOID, NAMEOID, INTERVALOID};
  Datum values[3] = {relation, time_column, keep};
  int rc = SPI_execute_with_args("SELECT streamrec._retain($1, $2, $3)", 3, types, values, nullptr, false, 0);
  if (rc != SPI_OK_SELECT) elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
  SPI_finish();
  AtEOXact_GUC(false, nest_level);
  SetUserIdAndSecContext(saved_user, saved_context);
}

Datum retain_as(FunctionCallInfo fcinfo) {
  // It acts as any role it is given: only the launcher's superuser may call it, whatever was granted.
  if (!pg_call([] { return superuser(); }))
    throw Error(ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied for streamrec._retain_as", "",
                "Only the launcher (a superuser) runs retention as a bound's owner.");
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
    throw Error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "streamrec._retain_as arguments must not be NULL", "",
                "Pass the owner, the relation, its time column and how long to keep rows.");
  Oid owner = PG_GETARG_OID(0);
  Datum relation = PG_GETARG_DATUM(1);
  Datum time_column = PG_GETARG_DATUM(2);
  Datum keep = PG_GETARG_DATUM(3);
  pg_call([owner, relation, time_column, keep] { retain_as_owner(owner, relation, time_column, keep); });
  PG_RETURN_VOID();
}

}  // namespace
}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_retain_as, streamrec::retain_as)
