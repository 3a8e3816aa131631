// The item_transactions pipeline as C++ statement-level
// AFTER INSERT triggers on streamrec.item_transactions and streamrec.stock_queries.
//
// Per statement (a source batch or a psql INSERT): the transition table read once into typed
// columns (pg/transition_rows); the touched items' rows locked FOR NO KEY UPDATE in item order
// and their stock read, one primary-key probe each (pg/keyed_table: PostgreSQL's C APIs, not
// SQL); the batch applied in memory (core/pipelines/item_ledger); each changed row updated once
// by the TID we locked, and one INSERT of the created items; the results inserted in input order
// as COPY inserts rows (pg/bulk_insert); then, under the
// event-time clock (pg/event_clock), late transactions into their summaries and the
// windows that close summarized, with their alerts. The row locks make concurrent batches and a
// manual `UPDATE inventory SET stock = ...` queue per item: no negative stock and no lost update;
// the inventory's writer lock (keyed_table.h) makes two batches that create the same item take
// turns. Locks are always taken inventory writer lock, inventory rows (item order), clock row,
// writer row, summary rows (key order), so two writers never wait for each other in a cycle.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/pipelines/item_ledger.h"
#include "core/event_time.h"

#include "extension/pipeline_trigger.h"
#include "pg/bulk_insert.h"
#include "pg/catalog_options.h"
#include "pg/error_boundary.h"
#include "pg/event_clock.h"
#include "pg/change_generation.h"
#include "pg/keyed_table.h"
#include "pg/pipeline_stats.h"
#include "pg/spi.h"
#include "pg/transition_rows.h"

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
// A batch as the trigger reads it: the transition table once, into typed columns.
struct TransactionBatch {
  explicit TransactionBatch(TriggerData* trigger)
      : rows(trigger, {{"transaction_id", ColumnKind::int64},
                       {"item_id", ColumnKind::text},
                       {"quantity", ColumnKind::int32},
                       {"ts", ColumnKind::timestamptz}}) {
    std::size_t n = rows.size();
    items.reserve(n);
    quantities.reserve(n);
    times.reserve(n);
    for (std::size_t r = 0; r < n; r++) {
      items.push_back(rows.column(1).text(r));
      quantities.push_back(static_cast<int32>(rows.column(2).integer(r)));
      times.push_back(rows.column(3).integer(r));
    }
    keys = distinct_items(items);
    key_datums = text_datums(keys.items);
  }
  std::size_t size() const { return items.size(); }
  bool id_null(std::size_t r) const { return rows.column(0).is_null(r); }
  int64 id(std::size_t r) const { return rows.column(0).integer(r); }

  TransitionRows rows;
  std::vector<std::string_view> items;
  std::vector<int32_t> quantities;
  std::vector<int64_t> times;
  batch_items keys;               // distinct items, byte order
  std::vector<Datum> key_datums;  // the same as text Datums
};

// streamrec.inventory as the pipeline's keyed state: product_id -> stock.
KeyedTable inventory_state() {
  return KeyedTable({"streamrec", "inventory", {{"product_id", TEXTOID}}, {{"stock", INT4OID}}});
}

// Applies the batch to the inventory and returns each transaction's outcome, in input order:
// every item's row locked and read with one probe (keyed_table.h, in byte order), the batch
// applied in memory (core/pipelines/item_ledger), each changed row updated once and each
// created item inserted once.
std::vector<transaction_outcome> apply_transactions(const TransactionBatch& batch, StepTimer& timer) {
  KeyedTable inventory = inventory_state();
  const std::vector<Datum>& keys = batch.key_datums;
  KeyedRows rows = inventory.lock_rows(keys.size(), keys.data());
  std::vector<std::optional<int32>> stock(keys.size());
  for (std::size_t k = 0; k < keys.size(); k++)
    if (rows.found[k]) stock[k] = rows.is_null(k, 0) ? 0 : DatumGetInt32(rows.value(k, 0));
  timer.mark("lock");
  stock_batch applied = apply_stock_batch(batch.keys, batch.quantities, stock);
  timer.mark("validate");

  std::vector<uint32_t> which;
  std::vector<Datum> values;
  std::vector<bool> nulls;
  for (const auto& u : applied.updates) {
    which.push_back(u.item);
    values.push_back(Int32GetDatum(u.stock));
  }
  std::unique_ptr<bool[]> no_nulls(new bool[std::max(applied.updates.size(), applied.inserts.size()) + 1]());
  inventory.update_rows(rows, which.size(), which.data(), values.data(), no_nulls.get());
  std::vector<Datum> created_keys, created_values;
  for (const auto& c : applied.inserts) {
    created_keys.push_back(keys[c.item]);
    created_values.push_back(Int32GetDatum(c.stock));
  }
  inventory.insert_rows(created_keys.size(), created_keys.data(), created_values.data(), no_nulls.get());
  // The statement triggers fired above include streamrec_inventory_changed; mark the transaction
  // here as well, so the recommenders' inventory cache learns of the change even when ordinary
  // triggers do not fire (session_replication_role = replica, a disabled trigger).
  if (!applied.updates.empty() || !applied.inserts.empty()) note_inventory_change();
  timer.mark("update");
  return std::move(applied.outcomes);
}

// The results of a batch, as the RowSource of insert_table_rows() reads them.
struct ResultRows {
  const TransactionBatch* batch;
  const transaction_outcome* outcomes;
  const Datum* items;  // the batch's distinct items as text Datums
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
  std::size_t r = rows->next++;
  const TransactionBatch& batch = *rows->batch;
  const transaction_outcome& o = rows->outcomes[r];
  nulls[0] = batch.id_null(r);
  values[0] = Int64GetDatum(nulls[0] ? 0 : batch.id(r));
  values[1] = rows->items[batch.keys.of_transaction[r]];
  nulls[1] = false;
  values[2] = Int32GetDatum(batch.quantities[r]);
  nulls[2] = false;
  values[3] = BoolGetDatum(o.success);
  nulls[3] = false;
  nulls[4] = !o.stock_after.has_value();
  values[4] = Int32GetDatum(nulls[4] ? 0 : *o.stock_after);
  values[5] = TimestampTzGetDatum(batch.times[r]);
  nulls[5] = false;
  return true;
}

// Opens schema.table as an INSERT opens it and finds the given columns, by name and type.
Relation open_output(const char* schema, const char* table, const char* const* names, const Oid* types, int count,
                     AttrNumber* columns) {
  RangeVar* name = makeRangeVar(const_cast<char*>(schema), const_cast<char*>(table), -1);
  Relation rel = table_open(RangeVarGetRelid(name, RowExclusiveLock, false), NoLock);
  TupleDesc desc = RelationGetDescr(rel);
  for (int c = 0; c < count; c++) {
    columns[c] = InvalidAttrNumber;
    for (int i = 0; i < desc->natts; i++) {
      Form_pg_attribute att = TupleDescAttr(desc, i);
      if (!att->attisdropped && att->atttypid == types[c] && strcmp(NameStr(att->attname), names[c]) == 0)
        columns[c] = att->attnum;
    }
    if (columns[c] == InvalidAttrNumber)
      ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION),
                      errmsg("%s.%s has no column %s of type %s", schema, table, names[c], format_type_be(types[c])),
                      errhint("Restore the table as the extension created it.")));
  }
  return rel;
}

// insert_results() inside one pg_call.
void insert_results(ResultRows* rows) {
  AttrNumber columns[kResultColumnCount];
  Relation rel =
      open_output("streamrec", "transaction_results", kResultColumns, kResultTypes, kResultColumnCount, columns);
  insert_table_rows(rel, columns, kResultColumnCount, result_row, rows);
  table_close(rel, NoLock);
}

// One result per transaction, in input order, inserted the way COPY inserts (bulk_insert.h):
// a page of rows at a time into the heap, then the BRIN indexes, the sinks' capture and any
// user trigger, as an INSERT statement would fire them.
void write_transaction_results(const TransactionBatch& batch, const std::vector<transaction_outcome>& outcomes) {
  ResultRows rows{&batch, outcomes.data(), batch.key_datums.data(), batch.size(), 0};
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
// The summaries and the alerts as keyed state, (window_start, item_id) -> counts; written only
// with the clock row locked, so the aggregate above (plain SQL) never races them.
KeyedTable summaries_state() {
  return KeyedTable({"streamrec",
                     "transaction_summaries",
                     {{"window_start", TIMESTAMPTZOID}, {"item_id", TEXTOID}},
                     {{"succeeded", INT8OID}, {"failed", INT8OID}, {"volume", INT8OID}}});
}
KeyedTable alerts_state() {
  return KeyedTable(
      {"streamrec",
       "transaction_alerts",
       {{"window_start", TIMESTAMPTZOID}, {"item_id", TEXTOID}},
       {{"window_end", TIMESTAMPTZOID}, {"succeeded", INT8OID}, {"failed", INT8OID}, {"volume", INT8OID}}});
}

// Keys (window start, item) as Datums, row-major, in the order given.
std::vector<Datum> window_keys(const std::vector<int64>& starts, const std::vector<std::string_view>& items) {
  std::vector<Datum> texts = text_datums(items);
  std::vector<Datum> keys;
  keys.reserve(2 * starts.size());
  for (std::size_t i = 0; i < starts.size(); i++) {
    keys.push_back(TimestampTzGetDatum(starts[i]));
    keys.push_back(texts[i]);
  }
  return keys;
}

// Adds late transactions to their windows' summaries: each summary row updated or inserted
// once, in key order.
void write_window_summaries(const window_summaries& summaries) {
  if (summaries.windows().empty()) return;
  std::vector<std::string_view> items;
  std::vector<int64> starts;
  for (const auto& [key, s] : summaries.windows()) {
    items.push_back(key.second);
    starts.push_back(key.first);
  }
  std::vector<Datum> keys = window_keys(starts, items);
  KeyedTable table = summaries_state();
  KeyedRows rows = table.lock_rows(starts.size(), keys.data());
  std::vector<uint32_t> which;
  std::vector<Datum> updated, inserted_keys, inserted;
  std::size_t k = 0;
  for (const auto& [key, s] : summaries.windows()) {
    int64 counts[3] = {s.succeeded, s.failed, s.volume};
    if (rows.found[k]) {
      which.push_back(static_cast<uint32_t>(k));
      for (int c = 0; c < 3; c++) updated.push_back(Int64GetDatum(DatumGetInt64(rows.value(k, c)) + counts[c]));
    } else {
      inserted_keys.push_back(keys[2 * k]);
      inserted_keys.push_back(keys[2 * k + 1]);
      for (int c = 0; c < 3; c++) inserted.push_back(Int64GetDatum(counts[c]));
    }
    k++;
  }
  std::unique_ptr<bool[]> no_nulls(new bool[3 * k]());
  table.update_rows(rows, which.size(), which.data(), updated.data(), no_nulls.get());
  table.insert_rows(inserted_keys.size() / 2, inserted_keys.data(), inserted.data(), no_nulls.get());
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
  // An alert already written for a window (the clock was reset by hand) stays as it was.
  std::vector<std::string_view> items;
  std::vector<int64> starts;
  for (const Alert& a : alerts) {
    items.push_back(a.item);
    starts.push_back(a.start);
  }
  std::vector<Datum> keys = window_keys(starts, items);
  KeyedTable table = alerts_state();
  KeyedRows rows = table.lock_rows(alerts.size(), keys.data());
  std::vector<Datum> new_keys, values;
  for (std::size_t i = 0; i < alerts.size(); i++) {
    if (rows.found[i]) continue;
    const Alert& a = alerts[i];
    new_keys.push_back(keys[2 * i]);
    new_keys.push_back(keys[2 * i + 1]);
    values.push_back(TimestampTzGetDatum(a.start + cfg.window_us));
    values.push_back(Int64GetDatum(a.counts.succeeded));
    values.push_back(Int64GetDatum(a.counts.failed));
    values.push_back(Int64GetDatum(a.counts.volume));
  }
  std::unique_ptr<bool[]> no_nulls(new bool[values.size() + 1]());
  table.insert_rows(new_keys.size() / 2, new_keys.data(), values.data(), no_nulls.get());
  return static_cast<int64>(new_keys.size() / 2);
}

Datum item_transactions_trigger(FunctionCallInfo fcinfo) {
  TriggerData* trigger = reinterpret_cast<TriggerData*>(fcinfo->context);
  return run_pipeline_trigger(fcinfo, kPipeline, [trigger] {
    TransactionsConfig cfg = transactions_config();
    if (!cfg.enabled) return;
    PipelineCounts counts;
    StepTimer timer;
    TransactionBatch batch(trigger);
    timer.mark("read");
    counts.events = static_cast<int64>(batch.size());
    if (batch.size() == 0) return;
    std::vector<transaction_outcome> outcomes = apply_transactions(batch, timer);
    write_transaction_results(batch, outcomes);
    timer.mark("results");
    counts.outputs += static_cast<int64>(batch.size());

    // The clock is locked after the stock: every lock a batch takes before it is on rows of
    // its own items. Summary rows are written only under the clock's lock (late ones here,
    // closed windows in close_windows), in key order.
    EventClock clock = lock_event_clock(kPipeline);
    window_step step = place_in_windows(batch.keys, batch.quantities, batch.times, outcomes, clock.watermark,
                                        clock_limit_now(), cfg.window_us);
    counts.future += step.future_count;
    counts.late += step.late_count;
    write_window_summaries(step.late);
    if (step.newest) {  // a batch of future transactions only is no arrival: the clock stays as it is
      std::optional<int64> closed_until =
          advance_event_clock(kPipeline, clock, *step.newest, cfg.watermark_delay_us, cfg.idle_timeout_us);
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
// The answers of a batch, as the RowSource of insert_table_rows() reads them.
struct AnswerRows {
  const TransitionRows* queries;
  const batch_items* keys;
  const Datum* items;
  const KeyedRows* stock;
  std::size_t next;
};

constexpr const char* kAnswerColumns[] = {"query_id", "item_id", "stock"};
constexpr Oid kAnswerTypes[] = {INT8OID, TEXTOID, INT4OID};
constexpr int kAnswerColumnCount = 3;

bool answer_row(void* arg, Datum* values, bool* nulls) noexcept {
  AnswerRows* rows = static_cast<AnswerRows*>(arg);
  if (rows->next == rows->queries->size()) return false;
  std::size_t r = rows->next++;
  const BatchColumn& id = rows->queries->column(0);
  nulls[0] = id.is_null(r);
  values[0] = Int64GetDatum(nulls[0] ? 0 : id.integer(r));
  uint32_t k = rows->keys->of_transaction[r];
  values[1] = rows->items[k];
  nulls[1] = false;
  nulls[2] = !rows->stock->found[k] || rows->stock->is_null(k, 0);
  values[2] = nulls[2] ? Int32GetDatum(0) : rows->stock->value(k, 0);
  return true;
}

// insert_answers() inside one pg_call.
void insert_answers(AnswerRows* rows) {
  AttrNumber columns[kAnswerColumnCount];
  Relation rel = open_output("streamrec", "query_results", kAnswerColumns, kAnswerTypes, kAnswerColumnCount, columns);
  insert_table_rows(rel, columns, kAnswerColumnCount, answer_row, rows);
  table_close(rel, NoLock);
}

Datum stock_queries_trigger(FunctionCallInfo fcinfo) {
  TriggerData* trigger = reinterpret_cast<TriggerData*>(fcinfo->context);
  return run_pipeline_trigger(fcinfo, kPipeline, [trigger] {
    TransactionsConfig cfg = transactions_config();
    if (!cfg.enabled) return;
    TransitionRows queries(trigger, {{"query_id", ColumnKind::int64}, {"item_id", ColumnKind::text}});
    std::vector<std::string_view> items;
    items.reserve(queries.size());
    for (std::size_t r = 0; r < queries.size(); r++) items.push_back(queries.column(1).text(r));
    batch_items keys = distinct_items(items);
    std::vector<Datum> key_datums = text_datums(keys.items);
    KeyedRows stock = inventory_state().read_rows(key_datums.size(), key_datums.data());
    AnswerRows rows{&queries, &keys, key_datums.data(), &stock, 0};
    AnswerRows* source = &rows;
    pg_call([source] { insert_answers(source); });
    PipelineCounts counts;
    counts.events = static_cast<int64>(queries.size());
    counts.outputs = static_cast<int64>(queries.size());
    count_pipeline(kPipeline, counts);
  });
}

}  // namespace
}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_item_transactions_trigger, streamrec::item_transactions_trigger)
STREAMREC_SQL_FUNCTION(streamrec_stock_queries_trigger, streamrec::stock_queries_trigger)
STREAMREC_SQL_FUNCTION(streamrec_close_idle_transaction_windows, streamrec::close_idle_transaction_windows)
