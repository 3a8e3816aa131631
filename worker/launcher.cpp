// The launcher: one background worker in streamrec.database. It waits for CREATE EXTENSION,
// watches the sources/sinks catalog once a second and (from the sources and sinks issues on)
// starts one dynamic worker per source and sink. It survives DROP/CREATE EXTENSION, reloads
// its settings on SIGHUP and exits cleanly on SIGTERM.
#include <csignal>
#include <cstdio>

#include "extension/error_boundary.h"
#include "extension/settings.h"

extern "C" {
#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

PGDLLEXPORT void streamrec_launcher_main(Datum main_arg);
}

namespace streamrec {
namespace {

constexpr long kCatalogPollMs = 1000;

volatile sig_atomic_t shutdown_requested = false;

void handle_sigterm(SIGNAL_ARGS) {
  int saved_errno = errno;
  shutdown_requested = true;
  SetLatch(MyLatch);
  errno = saved_errno;
}

// What the launcher saw in its database during the last pass.
struct CatalogView {
  bool installed = false;
  int64 sources = 0;
  int64 sinks = 0;
};

int64 count_rows(const char* query) {
  int rc = pg_call([query] { return SPI_execute(query, true, 1); });
  if (rc != SPI_OK_SELECT || SPI_processed != 1)
    throw Error(ERRCODE_INTERNAL_ERROR, std::string("unexpected result from ") + query);
  bool is_null = false;
  Datum value = pg_call([&is_null] { return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null); });
  return is_null ? 0 : DatumGetInt64(value);
}

// Reads the catalog in a short transaction of its own; the launcher never holds locks while
// it sleeps, so DROP EXTENSION is never blocked by it.
CatalogView read_catalog() {
  CatalogView view;
  pg_call([] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
  });
  view.installed = pg_call([] { return OidIsValid(get_extension_oid("pg_streamrec", true)); });
  if (view.installed) {
    pg_call([] { return SPI_connect(); });
    view.sources = count_rows("SELECT count(*) FROM streamrec.sources");
    view.sinks = count_rows("SELECT count(*) FROM streamrec.sinks");
    pg_call([] { return SPI_finish(); });
  }
  pg_call([] {
    PopActiveSnapshot();
    CommitTransactionCommand();
  });
  return view;
}

class Launcher {
 public:
  void pass() {
    CatalogView view = read_catalog();
    if (view.installed != last_.installed || !reported_) {
      if (view.installed)
        log("extension installed in database \"%s\"; managing sources and sinks", streamrec_database);
      else
        log("waiting for CREATE EXTENSION pg_streamrec in database \"%s\"", streamrec_database);
    }
    char activity[256];
    if (view.installed)
      snprintf(activity, sizeof activity, "pg_streamrec: watching %lld sources and %lld sinks",
               static_cast<long long>(view.sources), static_cast<long long>(view.sinks));
    else
      snprintf(activity, sizeof activity, "pg_streamrec: waiting for CREATE EXTENSION pg_streamrec");
    pg_call([&activity] { pgstat_report_activity(STATE_IDLE, activity); });
    last_ = view;
    reported_ = true;
  }

  void reload_settings() {
    pg_call([] { ProcessConfigFile(PGC_SIGHUP); });
    log("configuration reloaded: streamrec.brokers=\"%s\", streamrec.max_workers=%d", streamrec_brokers,
        streamrec_max_workers);
  }

 private:
  template <typename... Args>
  static void log(const char* format, Args... args) {
    char line[512];
    snprintf(line, sizeof line, format, args...);
    pg_call([&line] { ereport(LOG, (errmsg("pg_streamrec launcher: %s", line))); });
  }

  CatalogView last_;
  bool reported_ = false;
};

// One pass with PostgreSQL-style recovery: an ERROR (say, the extension dropped while we
// read its catalog) is logged, the transaction aborted, and the launcher carries on.
// C-style on purpose: nothing with a destructor lives in this frame.
void run_pass(Launcher* launcher, MemoryContext pass_context) {
  MemoryContext loop_context = MemoryContextSwitchTo(pass_context);
  PG_TRY();
  {
    entry_boundary([launcher] { launcher->pass(); });
  }
  PG_CATCH();
  {
    HOLD_INTERRUPTS();
    EmitErrorReport();
    AbortOutOfAnyTransaction();
    FlushErrorState();
    RESUME_INTERRUPTS();
  }
  PG_END_TRY();
  MemoryContextSwitchTo(loop_context);
  MemoryContextReset(pass_context);
}

}  // namespace
}  // namespace streamrec

extern "C" void streamrec_launcher_main(Datum) {
  using namespace streamrec;
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, handle_sigterm);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnection(streamrec_database, nullptr, 0);

  MemoryContext pass_context =
      AllocSetContextCreate(TopMemoryContext, "pg_streamrec launcher pass", ALLOCSET_DEFAULT_SIZES);
  // Launcher lives for the whole process; it owns only plain members, so exiting via
  // proc_exit (which does not unwind) leaks nothing that outlives the process.
  static Launcher launcher;

  while (!shutdown_requested) {
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      entry_boundary([] { launcher.reload_settings(); });
    }
    run_pass(&launcher, pass_context);
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kCatalogPollMs, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
  ereport(LOG, (errmsg("pg_streamrec launcher: shutting down")));
  proc_exit(0);
}
