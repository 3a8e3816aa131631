// streamrec._worker_stats(kind): the live statistics of source or sink workers, read from
// shared memory for the source_stats and sink_stats views.
#include "pg/error_boundary.h"
#include "pg/shared_state.h"

extern "C" {
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

namespace streamrec {
namespace {

constexpr int kStatColumns = 12;

// The names of the caller's own sources (kind 's') or sinks: a worker's state and errors are
// its owner's to see (and every superuser's). Returns -1 for a superuser (no filter); else the
// count, with the names in *names (allocated in the caller's memory context).
int own_worker_names(char kind, char*** names) {
  if (superuser()) return -1;
  Oid arg_types[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(GetUserId())};
  SPI_connect();
  const char* query = kind == static_cast<char>(WorkerKind::source)
                          ? "SELECT name FROM streamrec.sources WHERE owner = $1"
                          : "SELECT name FROM streamrec.sinks WHERE owner = $1";
  // A SELECT that does not raise always reports SPI_OK_SELECT: cannot happen, so internal.
  if (SPI_execute_with_args(query, 1, arg_types, args, nullptr, true, 0) != SPI_OK_SELECT)
    elog(ERROR, "could not read the owners of pg_streamrec workers");
  int count = static_cast<int>(SPI_processed);
  *names = static_cast<char**>(SPI_palloc(sizeof(char*) * (count + 1)));
  for (int i = 0; i < count; i++) {
    char* name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
    (*names)[i] = static_cast<char*>(SPI_palloc(strlen(name) + 1));
    strcpy((*names)[i], name);
  }
  SPI_finish();
  return count;
}

bool is_own(const char* name, char** names, int count) {
  if (count < 0) return true;
  for (int i = 0; i < count; i++)
    if (strncmp(names[i], name, NAMEDATALEN) == 0) return true;
  return false;
}

// Only PostgreSQL C calls and plain data here, so it runs as one pg_call.
void emit_rows(FunctionCallInfo fcinfo, char kind) {
  InitMaterializedSRF(fcinfo, 0);
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  char** own_names = nullptr;
  int own_count = own_worker_names(kind, &own_names);
  for (int i = 0; i < worker_slot_count(); i++) {
    SlotSnapshot snap;
    if (!snapshot_worker_slot(i, &snap) || static_cast<char>(snap.kind) != kind) continue;
    if (!is_own(snap.name, own_names, own_count)) continue;
    Datum values[kStatColumns];
    bool nulls[kStatColumns] = {};
    const WorkerStats& s = snap.stats;
    values[0] = CStringGetTextDatum(snap.name);
    values[1] = Int32GetDatum(snap.pid);
    nulls[1] = snap.pid == 0;
    values[2] = CStringGetTextDatum(s.state);
    values[3] = Int64GetDatum(s.messages);
    values[4] = Int64GetDatum(s.rows);
    values[5] = Int64GetDatum(s.bytes);
    values[6] = Int64GetDatum(s.dead_letters);
    values[7] = Int64GetDatum(s.batches);
    values[8] = Int64GetDatum(s.lag);
    nulls[8] = s.lag < 0;
    values[9] = TimestampTzGetDatum(s.last_message_at);
    nulls[9] = s.last_message_at == 0;
    values[10] = CStringGetTextDatum(s.last_error);
    nulls[10] = s.last_error[0] == '\0';
    values[11] = TimestampTzGetDatum(s.last_error_at);
    nulls[11] = s.last_error_at == 0;
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
}

// The tombstones each source skipped, by name (the caller's own sources, as above).
void emit_tombstones(FunctionCallInfo fcinfo) {
  InitMaterializedSRF(fcinfo, 0);
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  char** own_names = nullptr;
  int own_count = own_worker_names(static_cast<char>(WorkerKind::source), &own_names);
  for (int i = 0; i < worker_slot_count(); i++) {
    SlotSnapshot snap;
    if (!snapshot_worker_slot(i, &snap) || snap.kind != WorkerKind::source) continue;
    if (!is_own(snap.name, own_names, own_count)) continue;
    Datum values[2] = {CStringGetTextDatum(snap.name), Int64GetDatum(snap.stats.tombstones)};
    bool nulls[2] = {};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
}

Datum source_tombstones(FunctionCallInfo fcinfo) {
  pg_call([fcinfo] { emit_tombstones(fcinfo); });
  return static_cast<Datum>(0);
}

Datum worker_stats(FunctionCallInfo fcinfo) {
  char kind = DatumGetChar(PG_GETARG_DATUM(0));
  if (kind != static_cast<char>(WorkerKind::source) && kind != static_cast<char>(WorkerKind::sink))
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE, std::string("unknown worker kind \"") + kind + "\"", "",
                "Use 's' for sources or 'k' for sinks.");
  pg_call([fcinfo, kind] { emit_rows(fcinfo, kind); });
  return static_cast<Datum>(0);
}

}  // namespace
}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_worker_stats, streamrec::worker_stats)
STREAMREC_SQL_FUNCTION(streamrec_source_tombstones, streamrec::source_tombstones)
