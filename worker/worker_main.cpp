#include "worker/worker_main.h"

#include <algorithm>

extern "C" {
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace streamrec {

std::atomic<bool> worker_stop_requested = false;

namespace {

void handle_sigterm(SIGNAL_ARGS) {
  int saved_errno = errno;
  worker_stop_requested = true;
  SetLatch(MyLatch);
  errno = saved_errno;
}

}  // namespace

void install_signal_handlers() {
  pqsignal(SIGTERM, handle_sigterm);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
}

void set_worker_state(int index, const char* state, const std::string& error) {
  WorkerSlot* slot = worker_slot(index);
  if (slot == nullptr) return;
  TimestampTz now = error.empty() ? 0 : GetCurrentTimestamp();
  SpinLockAcquire(&slot->mutex);
  strlcpy(slot->stats.state, state, sizeof slot->stats.state);
  if (!error.empty()) {
    strlcpy(slot->stats.last_error, error.c_str(), sizeof slot->stats.last_error);
    slot->stats.last_error_at = now;
  }
  SpinLockRelease(&slot->mutex);
}

void clear_worker_error(int index) {
  WorkerSlot* slot = worker_slot(index);
  if (slot == nullptr) return;
  SpinLockAcquire(&slot->mutex);
  slot->stats.last_error[0] = '\0';
  slot->stats.last_error_at = 0;
  SpinLockRelease(&slot->mutex);
}

bool reload_config_if_requested() {
  if (!ConfigReloadPending) return false;
  ConfigReloadPending = false;
  pg_call([] { ProcessConfigFile(PGC_SIGHUP); });
  return true;
}

void wait_on_latch(long ms, WaitEventSet* set) {
  pg_call([ms, set] {
    if (set == nullptr) {
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
    } else {
      WaitEvent event;
      (void)WaitEventSetWait(set, ms, &event, 1, PG_WAIT_EXTENSION);
    }
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  });
}

WaitEventSet* latch_wait_set(pgsocket socket) {
  return pg_call([socket] {
    WaitEventSet* set = CreateWaitEventSet(TopMemoryContext, 3);
    AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
    AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
    AddWaitEventToSet(set, WL_SOCKET_READABLE, socket, nullptr, nullptr);
    return set;
  });
}

void backoff_on_latch(int failures, long base_ms, long cap_ms) {
  wait_on_latch(std::min(cap_ms, base_ms << std::min(std::max(failures, 0), 6)));
}

}  // namespace streamrec
