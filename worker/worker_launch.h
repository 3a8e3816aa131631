// What the launcher hands a source or sink worker it starts (in bgw_extra), and how it
// registers one. Kept tiny and plain: it crosses process boundaries by memcpy.
#pragma once

#include <cstring>

#include "pg/shared_state.h"

extern "C" {
#include "postgres.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
}

namespace streamrec {

struct WorkerLaunch {
  Oid database;
  Oid owner;  // the worker runs as this role: the source's or sink's creator
  int slot;   // its slot in shared memory
  char name[NAMEDATALEN];
};
static_assert(sizeof(WorkerLaunch) <= BGW_EXTRALEN, "WorkerLaunch must fit in bgw_extra");

inline void fill_worker_registration(WorkerKind kind, const WorkerLaunch& launch, BackgroundWorker* worker) {
  const bool source = kind == WorkerKind::source;
  worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
  worker->bgw_restart_time = BGW_NEVER_RESTART;  // the launcher restarts it, with backoff
  strlcpy(worker->bgw_library_name, "pg_streamrec", BGW_MAXLEN);
  strlcpy(worker->bgw_function_name, source ? "streamrec_source_main" : "streamrec_sink_main", BGW_MAXLEN);
  snprintf(worker->bgw_name, BGW_MAXLEN, "pg_streamrec %s %s", source ? "source" : "sink", launch.name);
  strlcpy(worker->bgw_type, source ? "pg_streamrec source" : "pg_streamrec sink", BGW_MAXLEN);
  worker->bgw_main_arg = Int32GetDatum(launch.slot);
  worker->bgw_notify_pid = MyProcPid;
  memcpy(worker->bgw_extra, &launch, sizeof launch);
}

}  // namespace streamrec
