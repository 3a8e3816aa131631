#include "pg/inventory_generation.h"

#include "pg/error_boundary.h"
#include "pg/trigger_context.h"

extern "C" {
#include "access/xact.h"
#include "port/atomics.h"
#include "storage/shmem.h"
}

namespace streamrec {
namespace {

struct InventoryGenerationShared {
  pg_atomic_uint64 generation;
};

InventoryGenerationShared* shared = nullptr;
bool callback_registered = false;
bool inventory_changed = false;  // by the current transaction

void on_transaction_end(XactEvent event, void*) {
  // XACT_EVENT_COMMIT comes after the transaction's changes became visible to others.
  if (event == XACT_EVENT_COMMIT && shared != nullptr && inventory_changed)
    pg_atomic_fetch_add_u64(&shared->generation, 1);
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_COMMIT ||
      event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
    inventory_changed = false;
}

Datum inventory_changed_trigger(FunctionCallInfo fcinfo) {
  trigger_data(fcinfo, "_inventory_changed", "");
  note_inventory_change();
  return PointerGetDatum(nullptr);
}

}  // namespace

uint64 inventory_generation() { return shared != nullptr ? pg_atomic_read_u64(&shared->generation) : 0; }

void note_inventory_change() {
  if (!callback_registered) {
    pg_call([] { RegisterXactCallback(on_transaction_end, nullptr); });
    callback_registered = true;
  }
  inventory_changed = true;
}

bool inventory_changed_in_this_transaction() { return inventory_changed; }

Size inventory_generation_shmem_size() { return sizeof(InventoryGenerationShared); }

// Called under AddinShmemInitLock.
void inventory_generation_shmem_init() {
  bool found = false;
  shared = static_cast<InventoryGenerationShared*>(
      ShmemInitStruct("pg_streamrec inventory generation", sizeof(InventoryGenerationShared), &found));
  if (!found) pg_atomic_init_u64(&shared->generation, 1);
}

}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_inventory_changed, streamrec::inventory_changed_trigger)
