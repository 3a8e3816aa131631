// The entry point shared by source and sink workers: take the slot the launcher assigned,
// run the worker's C++ loop inside the error boundary, and exit so the launcher can tell a
// clean stop (exit 0) from a failure (ERROR -> exit 1, restarted with backoff).
#pragma once

#include <atomic>
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
#include "storage/latch.h"
#include "utils/guc.h"
}

namespace streamrec {

// Set by SIGTERM in the launcher and in every worker: its loop ends at its next turn (a worker's
// at the next batch boundary). Read by the source worker's decode thread too, hence an atomic;
// a lock-free one, which a signal handler may set.
extern std::atomic<bool> worker_stop_requested;
static_assert(std::atomic<bool>::is_always_lock_free, "a signal handler sets worker_stop_requested");

// The one signal handling of the launcher and the workers: SIGTERM sets worker_stop_requested,
// SIGHUP asks for a configuration reload (reload_config_if_requested); then signals are
// unblocked. Call first thing in the background worker's main function.
void install_signal_handlers();

// The worker's state and, when given, its last error, in its shared-memory slot.
void set_worker_state(int slot, const char* state, const std::string& error = {});
// Forgets a slot's last error (what it said is no longer true).
void clear_worker_error(int slot);
// Applies a pending SIGHUP (ProcessConfigFile); true when there was one.
bool reload_config_if_requested();
// The one latch wait: sleeps until the latch is set (a signal came), `ms` passed or, with a wait
// set (latch_wait_set), one of its sockets is readable; then serves interrupts. A dead
// postmaster ends the process.
void wait_on_latch(long ms, WaitEventSet* set = nullptr);
// A wait set of the latch, postmaster death and `socket` becoming readable, for the process's life.
WaitEventSet* latch_wait_set(pgsocket socket);
// Sleeps on the latch (a SIGTERM wakes it early); ms grows with `failures`: base << failures, at most cap.
void backoff_on_latch(int failures, long base_ms, long cap_ms);

// Worker must be constructible from a WorkerLaunch and have run() and set_state(state, error).
template <typename Worker>
void run_background_worker(WorkerKind kind, const char* label) {
  WorkerLaunch launch;
  memcpy(&launch, MyBgworkerEntry->bgw_extra, sizeof launch);
  install_signal_handlers();
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
    // The transaction is left open on purpose: a caught PostgreSQL error was copied into the
    // memory context current at the failed call (SPI's, inside a transaction), which an abort
    // here would free before the report reads it. The report ends the process, and its exit
    // aborts the transaction.
    report_caught_error(caught, ERROR);
  }
  ereport(LOG, (errmsg("pg_streamrec %s \"%s\": stopped", label, launch.name)));
  proc_exit(0);
}

}  // namespace streamrec
