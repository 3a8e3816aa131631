#include "pg/change_generation.h"

#include <string>

#include "pg/error_boundary.h"
#include "pg/trigger_context.h"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "port/atomics.h"
#include "storage/shmem.h"
}

namespace streamrec {
namespace {

constexpr int kWatched = 2;

struct ChangeGenerationShared {
  pg_atomic_uint64 generation[kWatched];
};

ChangeGenerationShared* shared = nullptr;
bool callback_registered = false;
bool changed[kWatched] = {false, false};  // by the current transaction

void on_transaction_end(XactEvent event, void*) {
  // Bumped twice: XACT_EVENT_PRE_COMMIT comes before the transaction's changes become visible
  // to others and XACT_EVENT_COMMIT after. A reader that takes the generation before reading
  // the table then never keeps what it read past the change: between the two bumps it reads
  // the first one and keeps its read only until the second; after the second it sees the
  // changes. (One bump at commit alone would leave a window in which the changes are visible
  // while a reader still finds its kept generation current.) A bump of a transaction that
  // aborts after PRE_COMMIT costs one read of the table.
  for (int t = 0; t < kWatched; t++) {
    if ((event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_COMMIT) && shared != nullptr && changed[t])
      pg_atomic_fetch_add_u64(&shared->generation[t], 1);
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_COMMIT ||
        event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
      changed[t] = false;
  }
}

// The trigger data of a change trigger: an AFTER trigger, per statement or per row (a BEFORE
// row trigger would have to return the row, and one returning NULL skips it).
TriggerData* after_trigger_data(FunctionCallInfo fcinfo, const char* function) {
  TriggerData* trigger = trigger_data(fcinfo, function, "The extension installs it on its own table.");
  if (!TRIGGER_FIRED_AFTER(trigger->tg_event))
    throw Error(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, std::string(function) + " must be an AFTER trigger", "",
                "The extension installs it on its own table.");
  return trigger;
}

// On streamrec.inventory per statement (ENABLE ALWAYS: local writes, COPY, TRUNCATE, also a
// TRUNCATE applied by logical replication) and, while a subscription replicates the inventory,
// per row ENABLE REPLICA (the rows an apply worker applies: it fires no statement trigger but for
// TRUNCATE, and only row triggers enabled for replica or always). It runs no SQL and names
// nothing, so it is the same under whichever role fires it (an apply worker: the subscription's
// owner).
Datum inventory_changed_trigger(FunctionCallInfo fcinfo) {
  after_trigger_data(fcinfo, "_inventory_changed");
  note_change(Watched::inventory);
  return PointerGetDatum(nullptr);
}

Datum catalog_changed_trigger(FunctionCallInfo fcinfo) {
  after_trigger_data(fcinfo, "_catalog_changed");
  note_change(Watched::catalog);
  return PointerGetDatum(nullptr);
}

}  // namespace

// Marks a generation read during recovery: the replay position, kept apart from the counters.
constexpr uint64 kReplayGeneration = uint64{1} << 63;

uint64 change_generation(Watched table) {
  // A hot standby replays changes without running triggers or commit callbacks, so the counters
  // never move there: any WAL replayed since a backend read the table may have changed it. The
  // replay position is the generation then (a lookup that reads little re-reads only what it
  // needs; see the recommenders' inventory cache). After promotion the counters take over, and
  // anything read during recovery no longer matches them.
  uint64 replayed = pg_call(
      [] { return RecoveryInProgress() ? kReplayGeneration | static_cast<uint64>(GetXLogReplayRecPtr(nullptr)) : 0; });
  if (replayed != 0) return replayed;
  return shared != nullptr ? pg_atomic_read_u64(&shared->generation[static_cast<int>(table)]) : 0;
}

void note_change(Watched table) {
  if (!callback_registered) {
    pg_call([] { RegisterXactCallback(on_transaction_end, nullptr); });
    callback_registered = true;
  }
  changed[static_cast<int>(table)] = true;
}

bool changed_in_this_transaction(Watched table) { return changed[static_cast<int>(table)]; }

Size change_generation_shmem_size() { return sizeof(ChangeGenerationShared); }

// Called under AddinShmemInitLock.
void change_generation_shmem_init() {
  bool found = false;
  shared = static_cast<ChangeGenerationShared*>(
      ShmemInitStruct("pg_streamrec change generations", sizeof(ChangeGenerationShared), &found));
  if (!found)
    for (int t = 0; t < kWatched; t++) pg_atomic_init_u64(&shared->generation[t], 1);
}

}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_inventory_changed, streamrec::inventory_changed_trigger)
STREAMREC_SQL_FUNCTION(streamrec_catalog_changed, streamrec::catalog_changed_trigger)
