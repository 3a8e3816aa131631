#include "worker/worker_main.h"

#include <algorithm>

extern "C" {
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace streamrec {

volatile sig_atomic_t worker_stop_requested = false;

void handle_worker_sigterm(SIGNAL_ARGS) {
  int saved_errno = errno;
  worker_stop_requested = true;
  SetLatch(MyLatch);
  errno = saved_errno;
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

void reload_config_if_requested() {
  if (!ConfigReloadPending) return;
  ConfigReloadPending = false;
  pg_call([] { ProcessConfigFile(PGC_SIGHUP); });
}

void backoff_on_latch(int failures, long base_ms, long cap_ms) {
  long ms = std::min(cap_ms, base_ms << std::min(std::max(failures, 0), 6));
  pg_call([ms] {
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  });
}

}  // namespace streamrec
