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

// The inventory's change generation: bumped (cluster-wide) when a transaction that changed
// streamrec.inventory commits, after its changes became visible. A backend that read the
// inventory while the generation was g may keep what it read for as long as it is still g.
uint64 inventory_generation();
// Called by the inventory's statement trigger: the current transaction changed the inventory
// (its own later reads must not use a cache; its commit bumps the generation).
void note_inventory_change();
bool inventory_changed_in_this_transaction();

// For shared_state.cpp's shared-memory hooks.
Size pipeline_stats_shmem_size();
void pipeline_stats_shmem_init();

}  // namespace streamrec
