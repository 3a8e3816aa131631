// The entry point shared by source and sink workers: take the slot the launcher assigned,
// run the worker's C++ loop inside the error boundary, and exit so the launcher can tell a
// clean stop (exit 0) from a failure (ERROR -> exit 1, restarted with backoff).
#pragma once

#include <csignal>
#include <cstring>
#include <string>

#include "pg/error_boundary.h"
#include "pg/shared_state.h"
#include "worker/worker_launch.h"

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "utils/guc.h"
}

namespace streamrec {

// Set by SIGTERM; a worker's loop ends at the next batch boundary.
extern volatile sig_atomic_t worker_stop_requested;
void handle_worker_sigterm(SIGNAL_ARGS);

// The worker's state and, when given, its last error, in its shared-memory slot.
void set_worker_state(int slot, const char* state, const std::string& error = {});
// Forgets a slot's last error (what it said is no longer true).
void clear_worker_error(int slot);
// Applies a pending SIGHUP (ProcessConfigFile).
void reload_config_if_requested();
// Sleeps on the latch (a SIGTERM wakes it early); ms grows with `failures`: base << failures, at most cap.
void backoff_on_latch(int failures, long base_ms, long cap_ms);

// Worker must be constructible from a WorkerLaunch and have run() and set_state(state, error).
template <typename Worker>
void run_background_worker(WorkerKind kind, const char* label) {
  WorkerLaunch launch;
  memcpy(&launch, MyBgworkerEntry->bgw_extra, sizeof launch);
  pqsignal(SIGTERM, handle_worker_sigterm);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnectionByOid(launch.database, launch.owner, 0);
  // As pin_search_path() (then again at each transaction); nothing in this frame needs unwinding yet.
  SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION);
  if (!take_worker_slot(launch.slot, kind, launch.name)) {
    ereport(LOG, (errmsg("pg_streamrec %s \"%s\": another worker is already running; exiting", label, launch.name)));
    proc_exit(0);
  }
  before_shmem_exit(release_worker_slot_pid, Int32GetDatum(launch.slot));
  pgstat_report_appname(MyBgworkerEntry->bgw_name);

  CaughtError caught;
  {
    Worker worker(launch);
    try {
      worker.run();
    } catch (...) {
      capture_current_exception(caught);
      worker.set_state("failed", caught.pg_error != nullptr ? caught.pg_error->message : caught.message);
    }
  }
  if (caught.failed) {
    // Unrecoverable here (bad settings, a missing privilege, a fatal client error): report and
    // exit; the launcher restarts the worker with backoff and the stats view shows the error.
    AbortOutOfAnyTransaction();
    report_caught_error(caught, ERROR);
  }
  ereport(LOG, (errmsg("pg_streamrec %s \"%s\": stopped", label, launch.name)));
  proc_exit(0);
}

}  // namespace streamrec
