#include "pg/shared_state.h"

#include "pg/change_generation.h"
#include "pg/pipeline_stats.h"

#include <cstring>
#include <new>

extern "C" {
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
}

namespace streamrec {
namespace {

struct SharedState {
  int slot_count;
  WorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
};

SharedState* shared = nullptr;
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

// One slot per possible background worker process is always enough.
int wanted_slots() { return max_worker_processes; }

Size shared_size() { return add_size(offsetof(SharedState, slots), mul_size(wanted_slots(), sizeof(WorkerSlot))); }

void request_shared_memory() {
  if (previous_request_hook != nullptr) previous_request_hook();
  RequestAddinShmemSpace(
      add_size(add_size(shared_size(), pipeline_stats_shmem_size()), change_generation_shmem_size()));
}

void attach_shared_memory() {
  if (previous_startup_hook != nullptr) previous_startup_hook();
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  bool found = false;
  shared = static_cast<SharedState*>(ShmemInitStruct("pg_streamrec worker slots", shared_size(), &found));
  if (!found) {
    shared->slot_count = wanted_slots();
    for (int i = 0; i < shared->slot_count; i++) {
      WorkerSlot* slot = &shared->slots[i];
      memset(static_cast<void*>(slot), 0, sizeof *slot);
      SpinLockInit(&slot->mutex);
    }
  }
  pipeline_stats_shmem_init();
  change_generation_shmem_init();
  LWLockRelease(AddinShmemInitLock);
}

}  // namespace

void install_shared_state_hooks() {
  previous_request_hook = shmem_request_hook;
  shmem_request_hook = request_shared_memory;
  previous_startup_hook = shmem_startup_hook;
  shmem_startup_hook = attach_shared_memory;
}

int worker_slot_count() { return shared != nullptr ? shared->slot_count : 0; }

WorkerSlot* worker_slot(int slot) {
  return shared != nullptr && slot >= 0 && slot < shared->slot_count ? &shared->slots[slot] : nullptr;
}

int find_worker_slot(WorkerKind kind, const char* name) {
  for (int i = 0; i < worker_slot_count(); i++) {
    WorkerSlot* slot = &shared->slots[i];
    SpinLockAcquire(&slot->mutex);
    bool match = slot->kind == kind && strncmp(slot->name, name, NAMEDATALEN) == 0;
    SpinLockRelease(&slot->mutex);
    if (match) return i;
  }
  return -1;
}

int claim_worker_slot(WorkerKind kind, const char* name) {
  for (int i = 0; i < worker_slot_count(); i++) {
    WorkerSlot* slot = &shared->slots[i];
    SpinLockAcquire(&slot->mutex);
    bool is_free = slot->kind == WorkerKind::none;
    if (is_free) {
      slot->kind = kind;
      strlcpy(slot->name, name, NAMEDATALEN);
      slot->pid = 0;
      slot->stats = WorkerStats{};
    }
    SpinLockRelease(&slot->mutex);
    if (is_free) return i;
  }
  return -1;
}

void release_worker_slot(int index) {
  WorkerSlot* slot = worker_slot(index);
  if (slot == nullptr) return;
  SpinLockAcquire(&slot->mutex);
  slot->kind = WorkerKind::none;
  slot->name[0] = '\0';
  slot->pid = 0;
  slot->stats = WorkerStats{};
  SpinLockRelease(&slot->mutex);
}

bool take_worker_slot(int index, WorkerKind kind, const char* name) {
  WorkerSlot* slot = worker_slot(index);
  if (slot == nullptr) return false;
  TimestampTz now = GetCurrentTimestamp();
  SpinLockAcquire(&slot->mutex);
  bool ours = slot->kind == kind && strncmp(slot->name, name, NAMEDATALEN) == 0;
  pid_t holder = slot->pid;
  bool taken = ours && (holder == 0 || kill(holder, 0) != 0);
  if (taken) {
    slot->pid = MyProcPid;
    slot->generation++;
    slot->stats.started_at = now;
  }
  SpinLockRelease(&slot->mutex);
  return taken;
}

void release_worker_slot_pid(int, Datum slot_index) {
  WorkerSlot* slot = worker_slot(DatumGetInt32(slot_index));
  if (slot == nullptr) return;
  SpinLockAcquire(&slot->mutex);
  if (slot->pid == MyProcPid) slot->pid = 0;
  SpinLockRelease(&slot->mutex);
}

bool snapshot_worker_slot(int index, SlotSnapshot* out) {
  WorkerSlot* slot = worker_slot(index);
  if (slot == nullptr) return false;
  SpinLockAcquire(&slot->mutex);
  out->kind = slot->kind;
  memcpy(out->name, slot->name, NAMEDATALEN);
  out->pid = slot->pid;
  out->generation = slot->generation;
  out->stats = slot->stats;
  SpinLockRelease(&slot->mutex);
  return out->kind != WorkerKind::none;
}

}  // namespace streamrec
