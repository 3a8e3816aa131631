// Change generations of the tables whose contents backends keep between batches: each is
// bumped (cluster-wide) when a transaction that changed its table commits, once before its
// changes become visible and once after. A backend that read the table while the generation
// was g may keep what it read for as long as it is still g and its own transaction has not
// changed the table.
// A transaction changes a table by a statement or, under logical replication, by the rows an
// apply worker applies: the table's triggers note both (see _inventory_changed). On a hot
// standby, where the tables change by WAL replay, the generation follows the replay
// (change_generation()).
//  * inventory: streamrec.inventory (the recommenders keep the candidates of its categories)
//  * catalog: streamrec.pipeline_catalog (the pipelines keep their options)
#pragma once

#include <cstdint>

extern "C" {
#include "postgres.h"
}

namespace streamrec {

enum class Watched { inventory, catalog };

uint64 change_generation(Watched table);
// Called by the table's triggers (and by the pipelines that write the inventory): the
// current transaction changed the table (its own later reads must not use what is kept; its
// commit bumps the generation).
void note_change(Watched table);
bool changed_in_this_transaction(Watched table);

inline uint64 inventory_generation() { return change_generation(Watched::inventory); }
inline void note_inventory_change() { note_change(Watched::inventory); }
inline bool inventory_changed_in_this_transaction() { return changed_in_this_transaction(Watched::inventory); }

// For shared_state.cpp's shared-memory hooks.
Size change_generation_shmem_size();
void change_generation_shmem_init();

}  // namespace streamrec
