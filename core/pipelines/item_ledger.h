// item_transactions without PostgreSQL: the sequential per-item
// validation of a batch of stock changes, and the per-item event-time window summaries.
//
// The trigger reads the stock of every item a batch touches (locked, one probe per distinct
// item), hands it with the batch to apply_stock_batch(), and writes back only what that says
// changed or created, once per item. The per-item rule (stock_ledger::apply) is the whole rule,
// so the unit tests and the integration tests' Python model check the same thing.
#pragma once

#include "core/postgres_free.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace streamrec {

// What one transaction did: success, and the item's stock after it (the unchanged stock when it
// failed; nullopt when the item is unknown and stays unknown).
struct transaction_outcome {
  bool success = false;
  std::optional<std::int32_t> stock_after;
};

// The stock of a batch's items, changed transaction by transaction.
class stock_ledger {
 public:
  // An item that exists with this stock (before the batch).
  void load(std::string_view item, std::int32_t stock);

  // Applies one transaction: stock + quantity must stay within 0..INT32_MAX. A known item
  // changes only then. An unknown item is created by a restock (quantity > 0) with stock =
  // quantity; any other change to an unknown item fails and leaves it unknown.
  transaction_outcome apply(std::string_view item, std::int32_t quantity);

  // Items whose stock differs from what was loaded (existing rows to update), and items the
  // batch created (rows to insert), each in item order (the order rows are locked and written).
  struct final_stock {
    std::string item;
    std::int32_t stock;
  };
  std::vector<final_stock> changed() const;
  std::vector<final_stock> created() const;

  // Forgets what the batch did to `item` and loads it afresh, existing with `stock` or unknown
  // (nullopt): used when another writer created the item while this batch thought it unknown
  // (the caller then replays that item's transactions).
  void reload(std::string_view item, std::optional<std::int32_t> stock);

 private:
  struct entry {
    std::optional<std::int32_t> loaded;  // stock before the batch; nullopt: unknown item
    std::optional<std::int32_t> stock;   // current stock; nullopt: still unknown
  };
  std::unordered_map<std::string, entry> items_;
};

// A batch's distinct items in byte order (the order rows are probed, locked and written), and
// for each transaction the index of its item among them.
struct batch_items {
  std::vector<std::string_view> items;
  std::vector<std::uint32_t> of_transaction;
};
batch_items distinct_items(const std::vector<std::string_view>& transaction_items);

// What a batch does to the stock: each transaction's outcome (input order), the found items
// whose stock changed and the unknown items it created, each once, in item order.
struct stock_batch {
  std::vector<transaction_outcome> outcomes;
  struct item_stock {
    std::uint32_t item;  // index into batch_items::items
    std::int32_t stock;  // the item's stock after the batch
  };
  std::vector<item_stock> updates;
  std::vector<item_stock> inserts;
};

// Applies `quantities` (input order) to the stock of their items: stock[k] is items[k]'s stock
// before the batch (nullopt: unknown item), transaction by transaction as stock_ledger::apply.
stock_batch apply_stock_batch(const batch_items& items, const std::vector<std::int32_t>& quantities,
                              const std::vector<std::optional<std::int32_t>>& stock);

// Per item per tumbling window: transactions that succeeded, failed, and the volume (sum of
// |quantity| of the successful ones: the stock actually moved).
struct window_summary {
  std::int64_t succeeded = 0;
  std::int64_t failed = 0;
  std::int64_t volume = 0;
};

// Sums a batch's outcomes per (window start, item) in key order (the upsert's lock order).
class window_summaries {
 public:
  explicit window_summaries(std::int64_t width_us) : width_us_(width_us) {}
  void add(std::string_view item, std::int64_t event_time_us, std::int32_t quantity, bool success);
  using key = std::pair<std::int64_t, std::string>;  // (window start, item)
  const std::map<key, window_summary>& windows() const { return windows_; }

 private:
  std::int64_t width_us_;
  std::map<key, window_summary> windows_;
};

// Where a batch's transactions stand against the event-time clock: those beyond the clock
// limit (future: applied, but they move no clock), those behind the watermark's closed windows
// (late: added to their window's summary as they come), and the newest event time of the
// others (nullopt when there are none: the clock stays as it is).
struct window_step {
  explicit window_step(std::int64_t width_us) : late(width_us) {}
  window_summaries late;
  std::int64_t late_count = 0;
  std::int64_t future_count = 0;
  std::optional<std::int64_t> newest;
};
window_step place_in_windows(const batch_items& items, const std::vector<std::int32_t>& quantities,
                             const std::vector<std::int64_t>& event_times,
                             const std::vector<transaction_outcome>& outcomes, std::optional<std::int64_t> watermark,
                             std::int64_t clock_limit, std::int64_t width_us);

// The alert rule: at least min_transactions in the window and failed / total > failure_ratio.
bool window_alerts(const window_summary& s, double failure_ratio, std::int64_t min_transactions);

}  // namespace streamrec
