// Pipeline counters (streamrec.pipelines): events read, outputs written, skipped, late and
// future events (later than the clock limit), the last error. A trigger adds to a backend-local tally; the tally
// reaches shared memory only when the transaction commits, so a rolled-back batch counts nothing.
#pragma once

#include <cstdint>
#include <string>

extern "C" {
#include "postgres.h"
}

namespace streamrec {

struct PipelineCounts {
  int64 events = 0;
  int64 outputs = 0;
  int64 skipped = 0;
  int64 late = 0;
  int64 future = 0;
};

// Adds to the current transaction's tally of `pipeline` (applied at commit).
void count_pipeline(const char* pipeline, const PipelineCounts& counts);
// Records an error at once (the transaction that hit it will not commit).
void record_pipeline_error(const char* pipeline, const std::string& message);

// For shared_state.cpp's shared-memory hooks.
Size pipeline_stats_shmem_size();
void pipeline_stats_shmem_init();

}  // namespace streamrec
