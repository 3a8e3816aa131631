// The inventory's change generation: bumped (cluster-wide) when a transaction that changed
// streamrec.inventory commits, after its changes became visible. A backend that read the
// inventory while the generation was g may keep what it read for as long as it is still g (the
// similar_products pipeline caches the inventory's candidates this way).
#pragma once

#include <cstdint>

extern "C" {
#include "postgres.h"
}

namespace streamrec {

uint64 inventory_generation();
// Called by the inventory's statement trigger (and by the pipelines that write the inventory):
// the current transaction changed the inventory (its own later reads must not use a cache; its
// commit bumps the generation).
void note_inventory_change();
bool inventory_changed_in_this_transaction();

// For shared_state.cpp's shared-memory hooks.
Size inventory_generation_shmem_size();
void inventory_generation_shmem_init();

}  // namespace streamrec
