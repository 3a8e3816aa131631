#include "worker/worker_main.h"

extern "C" {
#include "storage/latch.h"
}

namespace streamrec {

volatile sig_atomic_t worker_stop_requested = false;

void handle_worker_sigterm(SIGNAL_ARGS) {
  int saved_errno = errno;
  worker_stop_requested = true;
  SetLatch(MyLatch);
  errno = saved_errno;
}

}  // namespace streamrec
