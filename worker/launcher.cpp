// The launcher: one background worker in streamrec.database. It waits for CREATE EXTENSION,
// watches the sources/sinks catalog once a second, starts one dynamic worker per source and
// sink, and runs the pipelines' periodic work (idle windows, retention). It survives
// DROP/CREATE EXTENSION, reloads its settings on SIGHUP and exits cleanly on SIGTERM.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "pg/error_boundary.h"
#include "pg/settings.h"
#include "pg/shared_state.h"
#include "pg/spi.h"
#include "worker/worker_launch.h"
#include "worker/worker_main.h"

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
#include "utils/timestamp.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

PGDLLEXPORT void streamrec_launcher_main(Datum main_arg);
}

namespace streamrec {
namespace {

constexpr long kCatalogPollMs = 1000;

// One source or sink as the catalog describes it.
struct CatalogEntry {
  WorkerKind kind;
  std::string name;
  Oid owner;
  std::string owner_name;
  std::string signature;  // changes whenever the worker must restart to see new settings
  std::string blocked;    // why the owner cannot run a worker now (role dropped, no LOGIN), or ""
};

// What the launcher saw in its database during the last pass.
struct CatalogView {
  bool installed = false;
  int64 sources = 0;
  int64 sinks = 0;
  std::vector<CatalogEntry> runnable;  // not paused, not stopped
};

std::string text_value(int row, int column) { return spi_text(row, column).value_or(""); }

int64 count_rows(const char* query) {
  int rc = spi_exec(query, {}, true, 1);
  // A count(*) always gives one row: cannot happen, so internal.
  if (rc != SPI_OK_SELECT || SPI_processed != 1)
    throw Error(ERRCODE_INTERNAL_ERROR, std::string("unexpected result from ") + query);
  return std::stoll(text_value(0, 1));
}

// Every name is schema-qualified (and search_path pinned): this runs as the bootstrap superuser.
void read_runnable(WorkerKind kind, const char* table, std::vector<CatalogEntry>& out) {
  std::string query =
      std::string("SELECT c.name, c.owner, pg_catalog.md5(pg_catalog.concat_ws('|', c.owner, c.topic, c.") +
      (kind == WorkerKind::source ? "target" : "relation") +
      "::pg_catalog.oid, c.format, c.brokers, c.options, c.generation)), r.rolname, "
      "CASE WHEN r.oid IS NULL THEN 'dropped' WHEN NOT r.rolcanlogin THEN 'nologin' ELSE '' END "
      "FROM streamrec." +
      table +
      " c LEFT JOIN pg_catalog.pg_roles r ON r.oid = c.owner "
      "WHERE NOT c.paused ORDER BY c.name";
  int rc = spi_exec(query.c_str(), {}, true);
  // A SELECT that does not raise always reports SPI_OK_SELECT: cannot happen, so internal.
  if (rc != SPI_OK_SELECT) throw Error(ERRCODE_INTERNAL_ERROR, "cannot read streamrec." + std::string(table));
  uint64 rows = SPI_processed;
  for (uint64 i = 0; i < rows; i++) {
    int row = static_cast<int>(i);
    Oid owner = static_cast<Oid>(std::stoul(text_value(row, 2)));
    std::string owner_state = text_value(row, 5);
    std::string blocked;
    if (owner_state == "dropped")
      blocked = "the owner role (OID " + std::to_string(owner) +
                ") no longer exists; a superuser can drop it with streamrec.drop_" +
                (kind == WorkerKind::source ? "source" : "sink") + "()";
    else if (owner_state == "nologin")
      blocked =
          "the owner role \"" + text_value(row, 4) + "\" cannot log in; ALTER ROLE ... LOGIN lets its worker start";
    out.push_back(CatalogEntry{kind, text_value(row, 1), owner, text_value(row, 4), text_value(row, 3), blocked});
  }
}

// Reads the catalog in a short transaction of its own; the launcher never holds locks while
// it sleeps, so DROP EXTENSION is never blocked by it. It connects as the bootstrap
// superuser, so row-level security does not hide anyone's sources from it.
CatalogView read_catalog() {
  CatalogView view;
  begin_transaction();
  view.installed = pg_call([] { return OidIsValid(get_extension_oid("pg_streamrec", true)); });
  if (view.installed) {
    view.sources = count_rows("SELECT count(*) FROM streamrec.sources");
    view.sinks = count_rows("SELECT count(*) FROM streamrec.sinks");
    read_runnable(WorkerKind::source, "sources", view.runnable);
    read_runnable(WorkerKind::sink, "sinks", view.runnable);
  }
  commit_transaction();
  return view;
}

// The pipelines' periodic work (idle windows, retention), in a transaction of its own so that
// a failure there never keeps the catalog pass from running.
void pipeline_tick() {
  begin_transaction();
  spi_exec("SELECT streamrec._pipeline_tick()", {}, false);
  commit_transaction();
}

// A worker the launcher started (or found running after its own restart).
struct ManagedWorker {
  CatalogEntry entry;
  int slot = -1;
  BackgroundWorkerHandle* handle = nullptr;
  bool stopping = false;
  TimestampTz started_at = 0;
  TimestampTz next_start_at = 0;  // backoff after failures
  int failures = 0;
  std::string waiting;  // why it is not started (reported in its slot), or ""
};

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
    reconcile(view.runnable);
    char activity[256];
    if (view.installed)
      snprintf(activity, sizeof activity, "pg_streamrec: watching %lld sources and %lld sinks",
               static_cast<long long>(view.sources), static_cast<long long>(view.sinks));
    else
      snprintf(activity, sizeof activity, "pg_streamrec: waiting for CREATE EXTENSION pg_streamrec");
    pg_call([&activity] { pgstat_report_activity(STATE_IDLE, activity); });
    last_.installed = view.installed;
    last_.sources = view.sources;
    last_.sinks = view.sinks;
    reported_ = true;
    if (view.installed) pipeline_tick();
  }

  void report_reloaded_settings() {
    log("configuration reloaded: streamrec.brokers=\"%s\", streamrec.max_workers=%d", streamrec_brokers,
        streamrec_max_workers);
  }

  // Workers left by an earlier launcher of this postmaster have no handle here: stop them,
  // so that no source ever has two workers. Their slots are then reused by name.
  void stop_orphans() {
    for (int i = 0; i < worker_slot_count(); i++) {
      SlotSnapshot snap;
      if (!snapshot_worker_slot(i, &snap)) continue;
      if (snap.pid != 0) {
        log("stopping worker %d of \"%s\" left by an earlier launcher", static_cast<int>(snap.pid), snap.name);
        kill(snap.pid, SIGTERM);
      }
    }
  }

 private:
  using Key = std::pair<WorkerKind, std::string>;

  void reconcile(const std::vector<CatalogEntry>& runnable) {
    TimestampTz now = GetCurrentTimestamp();
    std::map<Key, const CatalogEntry*> wanted;
    for (const CatalogEntry& e : runnable) wanted[{e.kind, e.name}] = &e;

    // Reap exited workers; stop those whose catalog row went away or changed.
    for (auto it = workers_.begin(); it != workers_.end();) {
      ManagedWorker& w = it->second;
      bool alive = is_alive(w);
      auto want = wanted.find(it->first);
      bool still_wanted = want != wanted.end() && want->second->signature == w.entry.signature;
      bool may_run = still_wanted && want->second->blocked.empty();
      if (!alive) {
        if (w.handle != nullptr && !w.stopping) note_exit(w, now);
        if (!still_wanted || w.stopping) {
          release_worker_slot(w.slot);
          it = workers_.erase(it);
          continue;
        }
      } else if (!may_run && !w.stopping) {
        w.stopping = true;
        if (w.handle != nullptr) pg_call([&w] { TerminateBackgroundWorker(w.handle); });
      }
      ++it;
    }

    int running = 0;
    std::map<Oid, int> running_per_role;
    for (auto& [key, w] : workers_) {
      if (!is_alive(w)) continue;
      running++;
      running_per_role[w.entry.owner]++;
    }
    for (const CatalogEntry& e : runnable) {
      auto it = workers_.find({e.kind, e.name});
      if (it != workers_.end() && (is_alive(it->second) || it->second.stopping)) continue;
      if (!e.blocked.empty()) {
        report_waiting(e, "waiting for its owner", e.blocked);
        continue;
      }
      if (it != workers_.end() && now < it->second.next_start_at) continue;
      if (streamrec_max_workers_per_role > 0 && running_per_role[e.owner] >= streamrec_max_workers_per_role) {
        report_waiting(e, "waiting for its role's worker quota",
                       "streamrec.max_workers_per_role (" + std::to_string(streamrec_max_workers_per_role) +
                           ") workers of role \"" + e.owner_name + "\" are running");
        continue;
      }
      if (running >= streamrec_max_workers) {
        if (!warned_max_workers_)
          log("streamrec.max_workers (%d) reached; \"%s\" waits for a free worker", streamrec_max_workers,
              e.name.c_str());
        warned_max_workers_ = true;
        continue;
      }
      ManagedWorker& w = workers_[{e.kind, e.name}];
      w.entry = e;
      if (start(w, now)) {
        running++;
        running_per_role[e.owner]++;
      }
    }
    if (running < streamrec_max_workers) warned_max_workers_ = false;
  }

  // A runnable source or sink the launcher does not start now: its slot (claimed for it, so the
  // stats views show it) says why, once, until that changes.
  void report_waiting(const CatalogEntry& e, const char* state, const std::string& why) {
    ManagedWorker& w = workers_[{e.kind, e.name}];
    w.entry = e;
    if (w.slot < 0) w.slot = find_worker_slot(e.kind, e.name.c_str());
    if (w.slot < 0) w.slot = claim_worker_slot(e.kind, e.name.c_str());
    if (w.slot < 0 || w.waiting == why) return;
    set_worker_state(w.slot, state, why);
    w.waiting = why;
  }

  // A slot held only to show why a source or sink waits (report_waiting) gives way to a worker
  // that can start: waiting entries must not keep runnable ones of other roles from starting.
  bool free_a_waiting_slot() {
    for (auto& [key, other] : workers_) {
      if (other.slot < 0 || other.waiting.empty() || other.handle != nullptr) continue;
      release_worker_slot(other.slot);
      other.slot = -1;
      other.waiting.clear();  // reported again once a slot is free
      return true;
    }
    return false;
  }

  bool is_alive(ManagedWorker& w) {
    if (w.handle == nullptr) return false;
    pid_t pid = 0;
    BgwHandleStatus status = pg_call([&w, &pid] { return GetBackgroundWorkerPid(w.handle, &pid); });
    return status == BGWH_STARTED || status == BGWH_NOT_YET_STARTED;
  }

  // A worker that exits on its own was either told to stop by its source (on_error = stop,
  // recorded in the catalog) or failed; retry failures with exponential backoff.
  void note_exit(ManagedWorker& w, TimestampTz now) {
    pfree_handle(w);
    if (TimestampDifferenceExceeds(w.started_at, now, 60 * 1000)) w.failures = 0;
    w.failures++;
    long delay_ms = std::min<long>(30000, 500L << std::min(w.failures, 6));
    w.next_start_at = TimestampTzPlusMilliseconds(now, delay_ms);
  }

  void pfree_handle(ManagedWorker& w) {
    if (w.handle != nullptr) pg_call([&w] { pfree(w.handle); });
    w.handle = nullptr;
  }

  bool start(ManagedWorker& w, TimestampTz now) {
    pfree_handle(w);
    if (w.slot < 0) w.slot = find_worker_slot(w.entry.kind, w.entry.name.c_str());
    if (w.slot < 0) w.slot = claim_worker_slot(w.entry.kind, w.entry.name.c_str());
    if (w.slot < 0 && free_a_waiting_slot()) w.slot = claim_worker_slot(w.entry.kind, w.entry.name.c_str());
    if (w.slot < 0) {
      log("no free worker slot for \"%s\" (max_worker_processes = %d)", w.entry.name.c_str(), max_worker_processes);
      return false;
    }
    WorkerLaunch launch{};
    launch.database = MyDatabaseId;
    launch.owner = w.entry.owner;
    launch.slot = w.slot;
    strlcpy(launch.name, w.entry.name.c_str(), sizeof launch.name);
    BackgroundWorker worker{};
    fill_worker_registration(w.entry.kind, launch, &worker);
    BackgroundWorkerHandle* handle = nullptr;
    // The handle outlives this pass's memory context.
    bool ok = pg_call([&worker, &handle] {
      MemoryContext previous = MemoryContextSwitchTo(TopMemoryContext);
      bool registered = RegisterDynamicBackgroundWorker(&worker, &handle);
      MemoryContextSwitchTo(previous);
      return registered;
    });
    if (!ok) {
      log("cannot start a worker for \"%s\": no free background worker slot (raise max_worker_processes)",
          w.entry.name.c_str());
      w.next_start_at = TimestampTzPlusMilliseconds(now, 5000);
      return false;
    }
    w.handle = handle;
    w.stopping = false;
    w.started_at = now;
    if (!w.waiting.empty()) clear_worker_error(w.slot);  // why it waited is no longer true
    w.waiting.clear();
    return true;
  }

  template <typename... Args>
  static void log(const char* format, Args... args) {
    char line[512];
    snprintf(line, sizeof line, format, args...);
    pg_call([&line] { ereport(LOG, (errmsg("pg_streamrec launcher: %s", line))); });
  }

  CatalogView last_;
  bool reported_ = false;
  bool warned_max_workers_ = false;
  std::map<Key, ManagedWorker> workers_;
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
  install_signal_handlers();
  BackgroundWorkerInitializeConnection(streamrec_database, nullptr, 0);
  // As pin_search_path() (then again at each transaction); nothing in this frame needs unwinding.
  SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION);

  MemoryContext pass_context =
      AllocSetContextCreate(TopMemoryContext, "pg_streamrec launcher pass", ALLOCSET_DEFAULT_SIZES);
  // Launcher lives for the whole process; it owns only plain members, so exiting via
  // proc_exit (which does not unwind) leaks nothing that outlives the process.
  static Launcher launcher;
  entry_boundary([] { launcher.stop_orphans(); });

  while (!worker_stop_requested) {
    entry_boundary([] {
      if (reload_config_if_requested()) launcher.report_reloaded_settings();
    });
    run_pass(&launcher, pass_context);
    entry_boundary([] { wait_on_latch(kCatalogPollMs); });
  }
  ereport(LOG, (errmsg("pg_streamrec launcher: shutting down")));
  proc_exit(0);
}
