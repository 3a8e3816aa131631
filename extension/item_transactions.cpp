// The item_transactions pipeline (DESIGN.md section 4, seed 004, issue 6) as C++ statement-level
// AFTER INSERT triggers on streamrec.item_transactions and streamrec.stock_queries.
//
// Per statement (a source batch or a psql INSERT): the touched items' rows locked FOR NO KEY
// UPDATE in item order and their stock read, one primary-key probe each (extension/inventory_rows:
// PostgreSQL's C APIs, not SQL); sequential validation in memory (extension/core/item_ledger);
// each changed row updated by the TID we locked, and one INSERT of the created items; one INSERT
// of the results in input order; one upsert of the window summaries in key order; then the
// event-time clock, which closes windows and writes their alerts. The row locks make concurrent
// batches and a manual `UPDATE inventory SET stock = ...` queue per item: no negative stock and
// no lost update. Locks are always taken inventory rows (item order), summary rows (key order),
// clock row, so two writers never wait for each other in a cycle.
#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "extension/core/item_ledger.h"
#include "extension/core/ranking.h"
#include "extension/error_boundary.h"
#include "extension/inventory_rows.h"
#include "extension/pipeline_stats.h"
#include "extension/pipeline_trigger.h"
#include "extension/spi_batch.h"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
}

namespace streamrec {
namespace {

constexpr const char* kPipeline = "item_transactions";

struct TransactionsConfig {
  bool enabled = false;
  int64 window_us = 60 * INT64CONST(1000000);
  int64 watermark_delay_us = INT64CONST(1000000);
  int64 idle_timeout_us = 5 * INT64CONST(1000000);
  double alert_failure_ratio = 0.5;
  int64 alert_min_transactions = 10;
};

KeptPlan read_config(
    "SELECT c.enabled, (extract(epoch FROM (o->>'window')::interval) * 1000000)::int8,"
    " (extract(epoch FROM (o->>'watermark_delay')::interval) * 1000000)::int8,"
    " (extract(epoch FROM (o->>'idle_timeout')::interval) * 1000000)::int8,"
    " (o->>'alert_failure_ratio')::float8, (o->>'alert_min_transactions')::int8"
    " FROM streamrec.pipeline_catalog c, LATERAL (SELECT c.options AS o) x WHERE c.name = 'item_transactions'",
    {});

TransactionsConfig transactions_config() {
  TransactionsConfig cfg;
  if (read_config.run({}, true) == 0) return cfg;
  std::vector<Cell> row = fetch_result({false, false, false, false, false, false});
  cfg.enabled = DatumGetBool(row[0].value);
  cfg.window_us = DatumGetInt64(row[1].value);
  cfg.watermark_delay_us = DatumGetInt64(row[2].value);
  cfg.idle_timeout_us = DatumGetInt64(row[3].value);
  cfg.alert_failure_ratio = DatumGetFloat8(row[4].value);
  cfg.alert_min_transactions = DatumGetInt64(row[5].value);
  return cfg;
}

// ------------------------------------------------------------------------------------------
// Transactions
// ------------------------------------------------------------------------------------------
struct Transaction {
  int64 id = 0;
  bool id_null = true;
  std::string item;
  int32 quantity = 0;
  int64 ts = 0;
};

// The statement's transactions in input order.
std::vector<Transaction> read_transactions() {
  uint64 n = run_sql("SELECT transaction_id, item_id, quantity, ts FROM streamrec_new_rows", true);
  std::vector<Cell> cells = fetch_result({false, true, false, false});
  std::vector<Transaction> out(n);
  for (uint64 r = 0; r < n; r++) {
    const Cell* row = &cells[r * 4];
    Transaction& t = out[r];
    t.id_null = row[0].null;
    if (!t.id_null) t.id = DatumGetInt64(row[0].value);
    t.item = row[1].str();
    t.quantity = DatumGetInt32(row[2].value);
    t.ts = DatumGetTimestampTz(row[3].value);
  }
  return out;
}

KeptPlan create_items(
    "INSERT INTO streamrec.inventory (product_id, stock) SELECT * FROM unnest($1::text[], $2::int4[])"
    " ON CONFLICT (product_id) DO NOTHING RETURNING product_id",
    {TEXTARRAYOID, INT4ARRAYOID});
KeptPlan write_results(
    "INSERT INTO streamrec.transaction_results (transaction_id, item_id, quantity, success, stock_after)"
    " SELECT * FROM unnest($1::int8[], $2::text[], $3::int4[], $4::bool[], $5::int4[])",
    {INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, BOOLARRAYOID, INT4ARRAYOID});

// Locks the rows of `items` (sorted, distinct); returns those that exist, with stock and TID.
std::unordered_map<std::string, LockedStock> lock_stock(const std::vector<std::string>& items) {
  std::unordered_map<std::string, LockedStock> found;
  std::vector<LockedStock> rows = lock_inventory_rows(items);
  found.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); i++)
    if (rows[i].found) found.emplace(items[i], rows[i]);
  return found;
}

// Applies the batch to the inventory and returns each transaction's outcome, in input order.
std::vector<transaction_outcome> apply_transactions(const std::vector<Transaction>& batch, StepTimer& timer) {
  std::vector<std::string> items;
  items.reserve(batch.size());
  for (const Transaction& t : batch) items.push_back(t.item);
  std::sort(items.begin(), items.end());
  items.erase(std::unique(items.begin(), items.end()), items.end());

  std::unordered_map<std::string, LockedStock> locked = lock_stock(items);
  stock_ledger ledger;
  for (const auto& [item, row] : locked) ledger.load(item, row.stock);
  timer.mark("lock");
  std::vector<transaction_outcome> outcomes(batch.size());
  for (std::size_t i = 0; i < batch.size(); i++) outcomes[i] = ledger.apply(batch[i].item, batch[i].quantity);

  // Items this batch created. Another writer may have created one of them meanwhile (there was
  // no row to lock): then ON CONFLICT skips it, and the batch locks the new row and replays
  // that item's transactions against its real stock.
  std::unordered_set<std::string> inserted;
  for (int round = 0;; round++) {
    std::vector<std::string> names;
    std::vector<int32> stocks;
    for (const auto& c : ledger.created())
      if (!inserted.count(c.item)) {
        names.push_back(c.item);
        stocks.push_back(c.stock);
      }
    if (names.empty()) break;
    if (round == 5)
      throw Error(ERRCODE_T_R_SERIALIZATION_FAILURE, "items keep being created and deleted concurrently", "",
                  "The batch is retried; avoid deleting inventory rows while transactions for them arrive.");
    uint64 n = create_items.run({text_array(names), nullable_array(stocks, {}, INT4OID)}, false);
    std::vector<Cell> cells = fetch_result({true});
    for (uint64 r = 0; r < n; r++) inserted.insert(cells[r].str());
    std::vector<std::string> raced;
    for (const std::string& name : names)
      if (!inserted.count(name)) raced.push_back(name);
    if (raced.empty()) break;
    std::unordered_map<std::string, LockedStock> found = lock_stock(raced);
    std::unordered_set<std::string> replay(raced.begin(), raced.end());
    for (const std::string& name : raced) {
      // Found: start again from its committed stock. Gone again: unknown once more.
      auto f = found.find(name);
      if (f != found.end()) locked.insert_or_assign(name, f->second);
      ledger.reload(name, f != found.end() ? std::optional<int32>(f->second.stock) : std::nullopt);
    }
    for (std::size_t i = 0; i < batch.size(); i++)
      if (replay.count(batch[i].item)) outcomes[i] = ledger.apply(batch[i].item, batch[i].quantity);
  }

  // Each changed row by the TID of the version we locked (in item order, though the locks are
  // already ours).
  std::vector<StockWrite> writes;
  for (const auto& c : ledger.changed()) writes.push_back({locked.at(c.item).tid, c.stock});
  timer.mark("validate");
  write_inventory_stock(writes);
  timer.mark("update");
  return outcomes;
}

void write_transaction_results(const std::vector<Transaction>& batch, const std::vector<transaction_outcome>& outcomes) {
  std::vector<int64> ids;
  std::vector<bool> id_nulls, success, stock_nulls;
  std::vector<std::string_view> items;
  std::vector<int32> quantities, stocks;
  for (std::size_t i = 0; i < batch.size(); i++) {
    ids.push_back(batch[i].id);
    id_nulls.push_back(batch[i].id_null);
    items.push_back(batch[i].item);
    quantities.push_back(batch[i].quantity);
    success.push_back(outcomes[i].success);
    stocks.push_back(outcomes[i].stock_after.value_or(0));
    stock_nulls.push_back(!outcomes[i].stock_after.has_value());
  }
  write_results.run({nullable_array(ids, id_nulls, INT8OID), text_array(items), nullable_array(quantities, {}, INT4OID),
                     nullable_array(success, {}, BOOLOID), nullable_array(stocks, stock_nulls, INT4OID)},
                    false);
}

// ------------------------------------------------------------------------------------------
// Windows: summaries, the event-time clock, alerts
// ------------------------------------------------------------------------------------------
KeptPlan write_summaries(
    "INSERT INTO streamrec.transaction_summaries AS s (item_id, window_start, succeeded, failed, volume)"
    " SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int8[], $4::int8[], $5::int8[])"
    " ON CONFLICT (window_start, item_id) DO UPDATE SET succeeded = s.succeeded + excluded.succeeded,"
    " failed = s.failed + excluded.failed, volume = s.volume + excluded.volume",
    {TEXTARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID});
KeptPlan lock_clock(
    "INSERT INTO streamrec.pipeline_clock AS k (pipeline) VALUES ('item_transactions')"
    " ON CONFLICT (pipeline) DO UPDATE SET pipeline = k.pipeline RETURNING k.watermark, k.max_event_time",
    {});
KeptPlan lock_idle_clock(
    "SELECT watermark, max_event_time FROM streamrec.pipeline_clock WHERE pipeline = 'item_transactions'"
    " AND max_event_time IS NOT NULL AND last_arrival < clock_timestamp() - make_interval(secs => $1 / 1e6)"
    " FOR UPDATE SKIP LOCKED",
    {INT8OID});
KeptPlan set_clock(
    "UPDATE streamrec.pipeline_clock SET watermark = $1, max_event_time = $2,"
    " last_arrival = CASE WHEN $3 THEN clock_timestamp() ELSE last_arrival END WHERE pipeline = 'item_transactions'",
    {TIMESTAMPTZOID, TIMESTAMPTZOID, BOOLOID});
KeptPlan read_closed(
    "SELECT item_id, window_start, succeeded, failed, volume FROM streamrec.transaction_summaries"
    " WHERE window_start > $1 AND window_start <= $2 AND succeeded + failed >= $3",
    {TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID});
KeptPlan write_alerts(
    "INSERT INTO streamrec.transaction_alerts (item_id, window_start, window_end, succeeded, failed, volume)"
    " SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::int8[], $5::int8[], $6::int8[])"
    " ON CONFLICT (window_start, item_id) DO NOTHING",
    {TEXTARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID});

void write_window_summaries(const window_summaries& summaries) {
  if (summaries.windows().empty()) return;
  std::vector<std::string_view> items;
  std::vector<int64> starts, succeeded, failed, volume;
  for (const auto& [key, s] : summaries.windows()) {
    items.push_back(key.second);
    starts.push_back(key.first);
    succeeded.push_back(s.succeeded);
    failed.push_back(s.failed);
    volume.push_back(s.volume);
  }
  write_summaries.run({text_array(items), timestamptz_array(starts), int8_array(succeeded), int8_array(failed),
                       int8_array(volume)},
                      false);
}

struct Clock {
  std::optional<int64> watermark;
  std::optional<int64> max_event_time;
};

Clock clock_from(const std::vector<Cell>& row) {
  Clock c;
  if (!row[0].null) c.watermark = DatumGetTimestampTz(row[0].value);
  if (!row[1].null) c.max_event_time = DatumGetTimestampTz(row[1].value);
  return c;
}

void save_clock(const Clock& clock, bool arrival) {
  set_clock.run({TimestampTzGetDatum(clock.watermark.value_or(0)), TimestampTzGetDatum(clock.max_event_time.value_or(0)),
                 BoolGetDatum(arrival)},
                false, {!clock.watermark.has_value(), !clock.max_event_time.has_value(), false});
}

// Closes the windows whose end is in (from, to] and writes the alerts among them; returns how
// many alerts it wrote.
int64 close_windows(const TransactionsConfig& cfg, std::optional<int64> from, int64 to) {
  int64 low = from ? *from - cfg.window_us : std::numeric_limits<int64>::min();  // -infinity
  uint64 n = read_closed.run({TimestampTzGetDatum(low), TimestampTzGetDatum(to - cfg.window_us),
                              Int64GetDatum(cfg.alert_min_transactions)},
                             true);
  std::vector<Cell> cells = fetch_result({true, false, false, false, false});
  std::vector<std::string> items;
  std::vector<int64> starts, ends, succeeded, failed, volume;
  for (uint64 r = 0; r < n; r++) {
    const Cell* row = &cells[r * 5];
    window_summary s{DatumGetInt64(row[2].value), DatumGetInt64(row[3].value), DatumGetInt64(row[4].value)};
    if (!window_alerts(s, cfg.alert_failure_ratio, cfg.alert_min_transactions)) continue;
    items.push_back(row[0].str());
    starts.push_back(DatumGetTimestampTz(row[1].value));
    ends.push_back(starts.back() + cfg.window_us);
    succeeded.push_back(s.succeeded);
    failed.push_back(s.failed);
    volume.push_back(s.volume);
  }
  if (items.empty()) return 0;
  // Key order, like every other writer of these rows.
  std::vector<std::size_t> order(items.size());
  for (std::size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::tie(starts[a], items[a]) < std::tie(starts[b], items[b]);
  });
  auto permute = [&order](const auto& v) {
    std::decay_t<decltype(v)> out;
    for (std::size_t i : order) out.push_back(v[i]);
    return out;
  };
  return static_cast<int64>(write_alerts.run({text_array(permute(items)), timestamptz_array(permute(starts)),
                                              timestamptz_array(permute(ends)), int8_array(permute(succeeded)),
                                              int8_array(permute(failed)), int8_array(permute(volume))},
                                             false));
}

Datum item_transactions_trigger(FunctionCallInfo fcinfo) {
  return run_pipeline_trigger(fcinfo, kPipeline, [] {
    TransactionsConfig cfg = transactions_config();
    if (!cfg.enabled) return;
    PipelineCounts counts;
    StepTimer timer;
    std::vector<Transaction> batch = read_transactions();
    timer.mark("read");
    counts.events = static_cast<int64>(batch.size());
    if (batch.empty()) return;
    std::vector<transaction_outcome> outcomes = apply_transactions(batch, timer);
    write_transaction_results(batch, outcomes);
    timer.mark("results");
    counts.outputs += static_cast<int64>(batch.size());

    // The clock is locked last: every lock a batch takes before it is on rows of its own items.
    window_summaries summaries(cfg.window_us);
    for (std::size_t i = 0; i < batch.size(); i++)
      summaries.add(batch[i].item, batch[i].ts, batch[i].quantity, outcomes[i].success);
    write_window_summaries(summaries);
    timer.mark("summaries");

    lock_clock.run({}, false);
    Clock clock = clock_from(fetch_result({false, false}));
    std::optional<int64> closed_until = clock.watermark;
    for (const Transaction& t : batch) {
      // Behind a closed window: it still counts in the summary, but the alert was decided.
      if (clock.watermark && window_start(t.ts, cfg.window_us) + cfg.window_us <= *clock.watermark) counts.late++;
      clock.max_event_time = std::max(clock.max_event_time.value_or(t.ts), t.ts);
    }
    int64 candidate = *clock.max_event_time - cfg.watermark_delay_us;
    clock.watermark = std::max(clock.watermark.value_or(candidate), candidate);
    save_clock(clock, true);
    if (!closed_until || *clock.watermark > *closed_until)
      counts.outputs += close_windows(cfg, closed_until, *clock.watermark);
    timer.mark("clock");
    count_pipeline(kPipeline, counts);
    timer.report(kPipeline, batch.size());
  });
}

// Windows of a stream that went quiet for idle_timeout: closed up to the newest window's end.
Datum close_idle_transaction_windows(FunctionCallInfo) {
  int64 alerts = 0;
  pg_call([] { return SPI_connect(); });
  TransactionsConfig cfg = transactions_config();
  if (cfg.enabled && lock_idle_clock.run({Int64GetDatum(cfg.idle_timeout_us)}, false) > 0) {
    Clock clock = clock_from(fetch_result({false, false}));
    int64 newest_end = window_start(*clock.max_event_time, cfg.window_us) + cfg.window_us;
    if (!clock.watermark || *clock.watermark < newest_end) {
      std::optional<int64> closed_until = clock.watermark;
      clock.watermark = newest_end;
      save_clock(clock, false);
      PipelineCounts counts;
      alerts = close_windows(cfg, closed_until, newest_end);
      counts.outputs = alerts;
      count_pipeline(kPipeline, counts);
    }
  }
  pg_call([] { return SPI_finish(); });
  return Int64GetDatum(alerts);
}

// ------------------------------------------------------------------------------------------
// Stock queries: the stock committed when the statement started (so every transaction stored
// before the query), or what this transaction itself changed; NULL for an unknown item. The
// scalar subquery keeps the answers in input order.
// ------------------------------------------------------------------------------------------
Datum stock_queries_trigger(FunctionCallInfo fcinfo) {
  return run_pipeline_trigger(fcinfo, kPipeline, [] {
    TransactionsConfig cfg = transactions_config();
    if (!cfg.enabled) return;
    uint64 n = run_sql(
        "INSERT INTO streamrec.query_results (query_id, item_id, stock)"
        " SELECT q.query_id, q.item_id, (SELECT i.stock FROM streamrec.inventory i WHERE i.product_id = q.item_id)"
        " FROM streamrec_new_rows q",
        false);
    PipelineCounts counts;
    counts.events = static_cast<int64>(n);
    counts.outputs = static_cast<int64>(n);
    count_pipeline(kPipeline, counts);
  });
}

}  // namespace
}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_item_transactions_trigger, streamrec::item_transactions_trigger)
STREAMREC_SQL_FUNCTION(streamrec_stock_queries_trigger, streamrec::stock_queries_trigger)
STREAMREC_SQL_FUNCTION(streamrec_close_idle_transaction_windows, streamrec::close_idle_transaction_windows)
