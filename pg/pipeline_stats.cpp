#include "pg/pipeline_stats.h"

#include <cstring>

#include "pg/error_boundary.h"

extern "C" {
#include "access/xact.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

namespace streamrec {
namespace {

constexpr int kPipelineSlots = 64;  // (database, pipeline) pairs
constexpr int kNameLength = 32;

struct PipelineSlot {
  Oid database;
  char name[kNameLength];
  PipelineCounts counts;
  TimestampTz last_error_at;
  char last_error[512];
};

struct PipelineStatsShared {
  slock_t mutex;
  PipelineSlot slots[kPipelineSlots];
};

PipelineStatsShared* shared = nullptr;

// The current transaction's tally, per pipeline name (a handful at most).
struct PendingTally {
  char name[kNameLength];
  PipelineCounts counts;
};
PendingTally pending[8];
int pending_count = 0;
bool callback_registered = false;

// Under the mutex: the slot of (MyDatabaseId, name), claimed if new; nullptr when full.
PipelineSlot* slot_for(const char* name) {
  PipelineSlot* free_slot = nullptr;
  for (PipelineSlot& s : shared->slots) {
    if (s.database == MyDatabaseId && strncmp(s.name, name, kNameLength) == 0) return &s;
    if (s.database == InvalidOid && free_slot == nullptr) free_slot = &s;
  }
  if (free_slot != nullptr) {
    free_slot->database = MyDatabaseId;
    strlcpy(free_slot->name, name, kNameLength);
  }
  return free_slot;
}

void on_transaction_end(XactEvent event, void*) {
  if (event == XACT_EVENT_COMMIT && shared != nullptr && pending_count > 0) {
    SpinLockAcquire(&shared->mutex);
    for (int i = 0; i < pending_count; i++) {
      PipelineSlot* s = slot_for(pending[i].name);
      if (s == nullptr) continue;
      s->counts.events += pending[i].counts.events;
      s->counts.outputs += pending[i].counts.outputs;
      s->counts.skipped += pending[i].counts.skipped;
      s->counts.late += pending[i].counts.late;
      s->counts.future += pending[i].counts.future;
    }
    SpinLockRelease(&shared->mutex);
  }
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_COMMIT ||
      event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
    pending_count = 0;
}

void emit_rows(FunctionCallInfo fcinfo) {
  InitMaterializedSRF(fcinfo, 0);
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  if (shared == nullptr) return;
  for (int i = 0; i < kPipelineSlots; i++) {
    SpinLockAcquire(&shared->mutex);
    PipelineSlot copy = shared->slots[i];
    SpinLockRelease(&shared->mutex);
    if (copy.database != MyDatabaseId) continue;
    Datum values[8];
    bool nulls[8] = {};
    values[0] = CStringGetTextDatum(copy.name);
    values[1] = Int64GetDatum(copy.counts.events);
    values[2] = Int64GetDatum(copy.counts.outputs);
    values[3] = Int64GetDatum(copy.counts.skipped);
    values[4] = Int64GetDatum(copy.counts.late);
    values[5] = CStringGetTextDatum(copy.last_error);
    nulls[5] = copy.last_error[0] == '\0';
    values[6] = TimestampTzGetDatum(copy.last_error_at);
    nulls[6] = copy.last_error_at == 0;
    values[7] = Int64GetDatum(copy.counts.future);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
}

Datum pipeline_stats(FunctionCallInfo fcinfo) {
  pg_call([fcinfo] { emit_rows(fcinfo); });
  return static_cast<Datum>(0);
}

void register_callback() {
  if (!callback_registered) {
    pg_call([] { RegisterXactCallback(on_transaction_end, nullptr); });
    callback_registered = true;
  }
}

}  // namespace

void count_pipeline(const char* pipeline, const PipelineCounts& counts) {
  register_callback();
  for (int i = 0; i < pending_count; i++) {
    if (strncmp(pending[i].name, pipeline, kNameLength) == 0) {
      pending[i].counts.events += counts.events;
      pending[i].counts.outputs += counts.outputs;
      pending[i].counts.skipped += counts.skipped;
      pending[i].counts.late += counts.late;
      pending[i].counts.future += counts.future;
      return;
    }
  }
  if (pending_count == static_cast<int>(sizeof pending / sizeof pending[0])) return;
  strlcpy(pending[pending_count].name, pipeline, kNameLength);
  pending[pending_count].counts = counts;
  pending_count++;
}

void record_pipeline_error(const char* pipeline, const std::string& message) {
  if (shared == nullptr) return;
  TimestampTz now = GetCurrentTimestamp();
  SpinLockAcquire(&shared->mutex);
  PipelineSlot* s = slot_for(pipeline);
  if (s != nullptr) {
    strlcpy(s->last_error, message.c_str(), sizeof s->last_error);
    s->last_error_at = now;
  }
  SpinLockRelease(&shared->mutex);
}

Size pipeline_stats_shmem_size() { return sizeof(PipelineStatsShared); }

// Called under AddinShmemInitLock.
void pipeline_stats_shmem_init() {
  bool found = false;
  shared = static_cast<PipelineStatsShared*>(
      ShmemInitStruct("pg_streamrec pipeline stats", sizeof(PipelineStatsShared), &found));
  if (!found) {
    memset(static_cast<void*>(shared), 0, sizeof *shared);
    SpinLockInit(&shared->mutex);
  }
}

}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_pipeline_stats, streamrec::pipeline_stats)
