// Module entry: refuses to load outside shared_preload_libraries, defines the GUCs and
// registers the launcher background worker.
#include "extension/roles.h"
#include "pg/settings.h"
#include "pg/shared_state.h"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

char* streamrec_database = nullptr;
char* streamrec_brokers = nullptr;
int streamrec_max_workers = 8;
int streamrec_max_workers_per_role = 0;
int streamrec_max_clock_skew_s = 3600;

void _PG_init(void);
}

namespace {

void define_settings() {
  DefineCustomStringVariable("streamrec.database",
                             "Database in which the pg_streamrec launcher runs its sources, sinks and pipelines.",
                             "CREATE EXTENSION pg_streamrec in this database; changing it needs a restart.",
                             &streamrec_database, "postgres", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "streamrec.brokers",
      "Default Kafka bootstrap servers (host:port,...) for sources and sinks created without brokers.", nullptr,
      &streamrec_brokers, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("streamrec.max_workers",
                          "Maximum number of source and sink workers the launcher runs at once.",
                          "Each worker takes one of max_worker_processes.", &streamrec_max_workers, 8, 0, 1024,
                          PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("streamrec.max_workers_per_role",
                          "Maximum number of source and sink workers the launcher runs for any one owning role.",
                          "0 means no cap beyond streamrec.max_workers.", &streamrec_max_workers_per_role, 0, 0, 1024,
                          PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  // An event time further ahead of the wall clock than this is stored but moves no clock: one
  // wild timestamp must not make retention delete history or close every window at once.
  DefineCustomIntVariable(
      "streamrec.max_clock_skew", "How far past the wall clock an event time may move retention clocks and watermarks.",
      "Later event times are stored and counted as future but move no clock.", &streamrec_max_clock_skew_s, 3600, 0,
      10 * 365 * 86400, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
  MarkGUCPrefixReserved("streamrec");
}

void register_launcher() {
  BackgroundWorker worker{};
  worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
  // After a crash or kill -9 the postmaster brings the launcher back this many seconds later.
  worker.bgw_restart_time = 2;
  strlcpy(worker.bgw_library_name, "pg_streamrec", BGW_MAXLEN);
  strlcpy(worker.bgw_function_name, "streamrec_launcher_main", BGW_MAXLEN);
  strlcpy(worker.bgw_name, "pg_streamrec launcher", BGW_MAXLEN);
  strlcpy(worker.bgw_type, "pg_streamrec launcher", BGW_MAXLEN);
  RegisterBackgroundWorker(&worker);
}

}  // namespace

// Nothing here throws: only PostgreSQL C calls, so no boundary is needed.
extern "C" void _PG_init(void) {
  if (!process_shared_preload_libraries_in_progress) {
    ereport(ERROR,
            (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
             errmsg("pg_streamrec must be loaded via shared_preload_libraries"),
             errhint("Add pg_streamrec to shared_preload_libraries in postgresql.conf and restart the server.")));
  }
  define_settings();
  streamrec::install_shared_state_hooks();
  streamrec::install_lock_guard();
  register_launcher();
}
