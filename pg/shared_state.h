// Shared memory: one slot per source or sink worker, holding its identity (so the launcher
// never runs two workers for one source, even after its own restart) and its live statistics
// (read by streamrec.source_stats / sink_stats). Plain C structs under a spinlock per slot.
#pragma once

#include <cstdint>

extern "C" {
#include "postgres.h"
#include "storage/spin.h"
#include "datatype/timestamp.h"
}

namespace streamrec {

enum class WorkerKind : char { none = 0, source = 's', sink = 'k' };

struct WorkerStats {
  int64 messages = 0;      // consumed (sources) / produced (sinks)
  int64 rows = 0;          // stored rows (sources)
  int64 bytes = 0;         // payload bytes
  int64 dead_letters = 0;  // sources: dead-lettered messages; sinks: failed rows
  int64 batches = 0;       // committed batches
  int64 lag = -1;          // sources: messages behind the high watermark; sinks: pending rows
  int64 tombstones = 0;    // sources: null-value messages skipped (append mode, after a change event's delete)
  TimestampTz last_message_at = 0;
  TimestampTz last_error_at = 0;
  TimestampTz started_at = 0;
  char state[48] = {};
  char last_error[512] = {};
};

struct WorkerSlot {
  slock_t mutex;
  WorkerKind kind;
  char name[NAMEDATALEN];
  pid_t pid;          // 0 when no worker runs for this slot
  uint32 generation;  // bumped by the launcher each time it starts a worker here
  WorkerStats stats;
};

// Called from _PG_init.
void install_shared_state_hooks();

int worker_slot_count();
// The slot of (kind, name), or -1. Takes no lock on the whole array: names only change under
// the launcher, the only writer of kind/name.
int find_worker_slot(WorkerKind kind, const char* name);
// Claims a free slot for (kind, name) (launcher only), or returns -1 when all are in use.
int claim_worker_slot(WorkerKind kind, const char* name);
void release_worker_slot(int slot);
WorkerSlot* worker_slot(int slot);

// A worker process takes the slot the launcher assigned it: false when the slot is not
// (kind, name) or another live process already holds it (then the worker must exit).
bool take_worker_slot(int slot, WorkerKind kind, const char* name);
// before_shmem_exit callback (arg: the slot index): the slot no longer has a process.
void release_worker_slot_pid(int code, Datum slot_index);

// Copy of a slot taken under its lock.
struct SlotSnapshot {
  WorkerKind kind;
  char name[NAMEDATALEN];
  pid_t pid;
  uint32 generation;
  WorkerStats stats;
};
bool snapshot_worker_slot(int slot, SlotSnapshot* out);

}  // namespace streamrec
