// The item_transactions pipeline as C++ statement-level
// AFTER INSERT triggers on streamrec.item_transactions and streamrec.stock_queries.
//
// Per statement (a source batch or a psql INSERT): the touched items' rows locked FOR NO KEY
// UPDATE in item order and their stock read, one primary-key probe each (extension/inventory_rows:
// PostgreSQL's C APIs, not SQL); sequential validation in memory (core/pipelines/item_ledger);
// each changed row updated by the TID we locked, and one INSERT of the created items; the results
// inserted in input order as COPY inserts rows (pg/bulk_insert); then, under the
// event-time clock (pg/event_clock), late transactions into their summaries and the
// windows that close summarized, with their alerts. The row locks make concurrent batches and a
// manual `UPDATE inventory SET stock = ...` queue per item: no negative stock and no lost update.
// Locks are always taken inventory rows (item order), clock row, writer row, summary rows (key
// order), so two writers never wait for each other in a cycle.
#include <algorithm>
#include <optional>
#include <string>
#include <unordered_map>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "core/pipelines/item_ledger.h"
#include "core/event_time.h"

#include "pg/catalog_options.h"
#include "pg/error_boundary.h"
#include "pg/event_clock.h"
#include "extension/inventory_rows.h"
#include "pg/pipeline_stats.h"
#include "extension/pipeline_trigger.h"
#include "pg/spi.h"
#include "pg/bulk_insert.h"

extern "C" {
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
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

PipelineOptions options(kPipeline, {{"window", OptionKind::interval_us},
                                    {"watermark_delay", OptionKind::interval_us},
                                    {"idle_timeout", OptionKind::interval_us},
                                    {"alert_failure_ratio", OptionKind::float8},
                                    {"alert_min_transactions", OptionKind::int8}});

TransactionsConfig transactions_config() {
  TransactionsConfig cfg;
  std::vector<Cell> row = options.read();
  if (row.empty()) return cfg;
  cfg.enabled = DatumGetBool(row[0].value);
  cfg.window_us = checked_option_us(kPipeline, "window", DatumGetInt64(row[1].value));
  cfg.watermark_delay_us = checked_option_us(kPipeline, "watermark_delay", DatumGetInt64(row[2].value), true);
  cfg.idle_timeout_us = checked_option_us(kPipeline, "idle_timeout", DatumGetInt64(row[3].value));
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

// The results of a batch, as the RowSource of insert_table_rows() reads them.
struct ResultRows {
  const Transaction* batch;
  const transaction_outcome* outcomes;
  std::size_t count;
  std::size_t next;
};

// The inserted columns, in the order result_row() fills them; processed_at takes its default.
constexpr const char* kResultColumns[] = {"transaction_id", "item_id", "quantity", "success", "stock_after", "ts"};
constexpr Oid kResultTypes[] = {INT8OID, TEXTOID, INT4OID, BOOLOID, INT4OID, TIMESTAMPTZOID};
constexpr int kResultColumnCount = 6;

bool result_row(void* arg, Datum* values, bool* nulls) noexcept {
  ResultRows* rows = static_cast<ResultRows*>(arg);
  if (rows->next == rows->count) return false;
  const Transaction& t = rows->batch[rows->next];
  const transaction_outcome& o = rows->outcomes[rows->next];
  rows->next++;
  values[0] = Int64GetDatum(t.id);
  nulls[0] = t.id_null;
  values[1] = PointerGetDatum(cstring_to_text_with_len(t.item.data(), static_cast<int>(t.item.size())));
  nulls[1] = false;
  values[2] = Int32GetDatum(t.quantity);
  nulls[2] = false;
  values[3] = BoolGetDatum(o.success);
  nulls[3] = false;
  nulls[4] = !o.stock_after.has_value();
  values[4] = Int32GetDatum(nulls[4] ? 0 : *o.stock_after);
  values[5] = TimestampTzGetDatum(t.ts);
  nulls[5] = false;
  return true;
}

// insert_results() inside one pg_call: streamrec.transaction_results opened as an INSERT opens
// it, its columns found by name.
void insert_results(ResultRows* rows) {
  RangeVar* name = makeRangeVar(const_cast<char*>("streamrec"), const_cast<char*>("transaction_results"), -1);
  Relation rel = table_open(RangeVarGetRelid(name, RowExclusiveLock, false), NoLock);
  TupleDesc desc = RelationGetDescr(rel);
  AttrNumber columns[kResultColumnCount];
  for (int c = 0; c < kResultColumnCount; c++) {
    columns[c] = InvalidAttrNumber;
    for (int i = 0; i < desc->natts; i++) {
      Form_pg_attribute att = TupleDescAttr(desc, i);
      if (!att->attisdropped && att->atttypid == kResultTypes[c] &&
          strcmp(NameStr(att->attname), kResultColumns[c]) == 0)
        columns[c] = att->attnum;
    }
    if (columns[c] == InvalidAttrNumber)
      ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION),
                      errmsg("streamrec.transaction_results has no column %s of type %s", kResultColumns[c],
                             format_type_be(kResultTypes[c])),
                      errhint("Restore the table as the extension created it.")));
  }
  insert_table_rows(rel, columns, kResultColumnCount, result_row, rows);
  table_close(rel, NoLock);
}

// One result per transaction, in input order, inserted the way COPY inserts (bulk_insert.h):
// a page of rows at a time into the heap, then the BRIN indexes, the sinks' capture and any
// user trigger, as an INSERT statement would fire them.
void write_transaction_results(const std::vector<Transaction>& batch,
                               const std::vector<transaction_outcome>& outcomes) {
  ResultRows rows{batch.data(), outcomes.data(), batch.size(), 0};
  ResultRows* source = &rows;
  pg_call([source] { insert_results(source); });
}

// ------------------------------------------------------------------------------------------
// Windows: summaries, the event-time clock, alerts
//
// A window's summaries are written once, when the watermark passes its end: one aggregate over
// the results of the windows that close (each result carries its transaction's event time),
// instead of an upsert per transaction. Transactions behind the watermark (late) are added to
// their closed window's summary as they come. Both happen with the clock row locked, so a batch
// decides what is late against the watermark that the closing batch used: a result is either
// in the aggregate (committed before the window closed) or counted late, never both.
// ------------------------------------------------------------------------------------------
// Writes the summaries of the results with ts in [$1, $2) and returns those of at least $5
// transactions (the alert candidates). Rows go in item order, so the index takes them at a few
// places at a time. A window that has summaries is closed: the second form, for when some in the
// range have (the clock was reset by hand, or summaries were written by hand), leaves those out.
#define STREAMREC_AGGREGATE_CLOSED(filter)                                                                         \
  "WITH s AS (INSERT INTO streamrec.transaction_summaries AS s (item_id, window_start, succeeded, failed, volume)" \
  " SELECT item_id, date_bin($3, ts, $4), count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success),"   \
  " coalesce(sum(abs(quantity::int8)) FILTER (WHERE success), 0)"                                                  \
  " FROM streamrec.transaction_results r WHERE ts >= $1 AND ts < $2" filter                                        \
  " GROUP BY 1, 2 ORDER BY 1, 2"                                                                                   \
  " RETURNING s.item_id, s.window_start, s.succeeded, s.failed, s.volume)"                                         \
  " SELECT * FROM s WHERE succeeded + failed >= $5"
KeptPlan aggregate_closed(STREAMREC_AGGREGATE_CLOSED(""),
                          {TIMESTAMPTZOID, TIMESTAMPTZOID, INTERVALOID, TIMESTAMPTZOID, INT8OID});
KeptPlan aggregate_unclosed(STREAMREC_AGGREGATE_CLOSED(" AND NOT EXISTS (SELECT FROM streamrec.transaction_summaries x"
                                                       " WHERE x.window_start = date_bin($3, r.ts, $4))"),
                            {TIMESTAMPTZOID, TIMESTAMPTZOID, INTERVALOID, TIMESTAMPTZOID, INT8OID});
#undef STREAMREC_AGGREGATE_CLOSED
KeptPlan summaries_exist(
    "SELECT FROM streamrec.transaction_summaries WHERE window_start >= $1 AND window_start < $2 LIMIT 1",
    {TIMESTAMPTZOID, TIMESTAMPTZOID});
KeptPlan write_summaries(
    "INSERT INTO streamrec.transaction_summaries AS s (item_id, window_start, succeeded, failed, volume)"
    " SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int8[], $4::int8[], $5::int8[])"
    " ON CONFLICT (window_start, item_id) DO UPDATE SET succeeded = s.succeeded + excluded.succeeded,"
    " failed = s.failed + excluded.failed, volume = s.volume + excluded.volume",
    {TEXTARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID});
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
  write_summaries.run(
      {text_array(items), timestamptz_array(starts), int8_array(succeeded), int8_array(failed), int8_array(volume)},
      false);
}

// Closes the windows whose end is in (from, to]: writes their summaries and the alerts among
// them; returns how many alerts it wrote.
int64 close_windows(const TransactionsConfig& cfg, std::optional<int64> from, int64 to) {
  // Those windows hold the results with ts in [window_start(from), window_start(to)). date_bin
  // counts whole windows from an origin in PostgreSQL's first year (4713 BC) that is a multiple
  // of the width since 2000-01-01, so its windows start where window_start() puts them, and
  // (before PostgreSQL 16) its rounding never meets a time before the origin.
  if (from && window_start(*from, cfg.window_us) == window_start(to, cfg.window_us)) return 0;  // none closes
  Interval width{};
  width.time = cfg.window_us;
  int64 origin = (MIN_TIMESTAMP / cfg.window_us) * cfg.window_us;
  int64 first = from ? window_start(*from, cfg.window_us) : DT_NOBEGIN;
  int64 last = window_start(to, cfg.window_us);
  bool some_closed = !from || summaries_exist.run({TimestampTzGetDatum(first), TimestampTzGetDatum(last)}, false) > 0;
  uint64 n = (some_closed ? aggregate_unclosed : aggregate_closed)
                 .run({TimestampTzGetDatum(first), TimestampTzGetDatum(last), IntervalPGetDatum(&width),
                       TimestampTzGetDatum(origin), Int64GetDatum(cfg.alert_min_transactions)},
                      false);
  std::vector<Cell> cells = fetch_result({true, false, false, false, false});
  struct Alert {
    int64 start;
    std::string item;
    window_summary counts;
  };
  std::vector<Alert> alerts;
  for (uint64 r = 0; r < n; r++) {
    const Cell* row = &cells[r * 5];
    window_summary s{DatumGetInt64(row[2].value), DatumGetInt64(row[3].value), DatumGetInt64(row[4].value)};
    if (window_alerts(s, cfg.alert_failure_ratio, cfg.alert_min_transactions))
      alerts.push_back({DatumGetTimestampTz(row[1].value), row[0].str(), s});
  }
  if (alerts.empty()) return 0;
  // In primary-key order (the aggregate returns them by item).
  std::sort(alerts.begin(), alerts.end(),
            [](const Alert& a, const Alert& b) { return std::tie(a.start, a.item) < std::tie(b.start, b.item); });
  std::vector<std::string_view> items;
  std::vector<int64> starts, ends, succeeded, failed, volume;
  for (const Alert& a : alerts) {
    items.push_back(a.item);
    starts.push_back(a.start);
    ends.push_back(a.start + cfg.window_us);
    succeeded.push_back(a.counts.succeeded);
    failed.push_back(a.counts.failed);
    volume.push_back(a.counts.volume);
  }
  return static_cast<int64>(write_alerts.run({text_array(items), timestamptz_array(starts), timestamptz_array(ends),
                                              int8_array(succeeded), int8_array(failed), int8_array(volume)},
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

    // The clock is locked after the stock: every lock a batch takes before it is on rows of
    // its own items. Summary rows are written only under the clock's lock (late ones here,
    // closed windows in close_windows), in key order.
    EventClock clock = lock_event_clock(kPipeline);
    window_summaries late(cfg.window_us);
    int64 limit = clock_limit_now();
    std::optional<int64> newest;
    for (std::size_t i = 0; i < batch.size(); i++) {
      const Transaction& t = batch[i];
      // Beyond the clock limit: applied to the stock and given its result like any other, but
      // it moves no clock; its window is summarized if the watermark ever reaches it.
      if (is_future(t.ts, limit)) {
        counts.future++;
        continue;
      }
      // Behind a closed window: it still counts in the summary, but the alert was decided.
      if (clock.watermark && window_end(window_start(t.ts, cfg.window_us), cfg.window_us) <= *clock.watermark) {
        counts.late++;
        late.add(t.item, t.ts, t.quantity, outcomes[i].success);
      }
      newest = std::max(newest.value_or(t.ts), t.ts);
    }
    write_window_summaries(late);
    if (newest) {  // a batch of future transactions only is no arrival: the clock stays as it is
      std::optional<int64> closed_until =
          advance_event_clock(kPipeline, clock, *newest, cfg.watermark_delay_us, cfg.idle_timeout_us);
      save_event_clock(kPipeline, clock, true);
      timer.mark("clock");
      if (!closed_until || *clock.watermark > *closed_until) {
        counts.outputs += close_windows(cfg, closed_until, *clock.watermark);
        timer.mark("close");
      }
    }
    count_pipeline(kPipeline, counts);
    timer.report(kPipeline, batch.size());
  });
}

// Windows of a stream that went quiet for idle_timeout: closed up to the newest window's end.
Datum close_idle_transaction_windows(FunctionCallInfo) {
  spi_connect();
  TransactionsConfig cfg = transactions_config();
  int64 alerts = 0;
  if (cfg.enabled)
    alerts = close_idle_windows(
        kPipeline, cfg.idle_timeout_us,
        [&cfg](const EventClock& clock) {
          return idle_watermark(clock.watermark, *clock.max_event_time, cfg.window_us, clock_limit_now());
        },
        [&cfg](std::optional<int64> closed_until, int64 newest_end) {
          PipelineCounts counts;
          counts.outputs = close_windows(cfg, closed_until, newest_end);
          count_pipeline(kPipeline, counts);
          return counts.outputs;
        });
  spi_finish();
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
