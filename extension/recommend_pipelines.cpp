// The recommendation pipelines: similar_products (with user_purchases),
// trending and category_affinity, as C++ statement-level AFTER INSERT triggers, plus
// streamrec.recommend() and the windows' idle timeout.
//
// Every trigger works per statement, not per row: it reads the transition table once, looks up
// what the batch needs with one statement per kind of lookup (= ANY of the batch's keys: a few
// index probes per event), computes in C++ and writes with one set-based statement per result
// table. Upserts go in key order, so two source workers feeding the same table lock rows in the
// same order and cannot deadlock; increments are done by the upsert itself, so none is lost.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/event_time.h"
#include "core/pipelines/ranking.h"
#include "core/pipelines/similar_products.h"

#include "pg/catalog_options.h"
#include "pg/error_boundary.h"
#include "pg/event_clock.h"
#include "pg/change_generation.h"
#include "pg/keyed_counters.h"
#include "pg/keyed_table.h"
#include "pg/pipeline_stats.h"
#include "pg/result_table.h"
#include "extension/dispatch.h"
#include "extension/pipeline_trigger.h"
#include "pg/spi.h"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "catalog/namespace.h"
#include "utils/timestamp.h"
}

namespace streamrec {
namespace {

constexpr int64 kHourUs = INT64CONST(3600) * 1000000;

// ------------------------------------------------------------------------------------------
// Options, read once per statement (a change applies from the next batch on).
// ------------------------------------------------------------------------------------------
struct SimilarProductsConfig {
  bool enabled = false;
  int top_k = 6;
  std::optional<float> min_rating;
  repeat_policy repeats = repeat_policy::demote;
  int64 repeat_window_us = INT64CONST(10) * 60 * 1000000;
  int64 emit_us = 0;  // 0: one list per click
  int64 watermark_delay_us = INT64CONST(1000000);
  int64 idle_timeout_us = 5 * INT64CONST(1000000);
};

PipelineOptions similar_options("similar_products", {{"top_k", OptionKind::int4},
                                                     {"min_rating", OptionKind::float4},
                                                     {"repeats", OptionKind::text},
                                                     {"repeat_window", OptionKind::interval_us},
                                                     {"emit", OptionKind::interval_us, "click"},
                                                     {"watermark_delay", OptionKind::interval_us},
                                                     {"idle_timeout", OptionKind::interval_us}});

SimilarProductsConfig similar_config() {
  SimilarProductsConfig cfg;
  std::vector<Cell> row = similar_options.read();
  if (row.empty()) return cfg;
  cfg.enabled = DatumGetBool(row[0].value);
  cfg.top_k = DatumGetInt32(row[1].value);
  if (!row[2].null) cfg.min_rating = DatumGetFloat4(row[2].value);
  if (auto policy = parse_repeat_policy(row[3].view())) cfg.repeats = *policy;
  cfg.repeat_window_us = checked_option_us("similar_products", "repeat_window", DatumGetInt64(row[4].value), true);
  if (!row[5].null) cfg.emit_us = checked_option_us("similar_products", "emit", DatumGetInt64(row[5].value));
  cfg.watermark_delay_us = checked_option_us("similar_products", "watermark_delay", DatumGetInt64(row[6].value), true);
  cfg.idle_timeout_us = checked_option_us("similar_products", "idle_timeout", DatumGetInt64(row[7].value));
  return cfg;
}

PipelineOptions trending_options("trending", {{"window", OptionKind::interval_us}});

// The trending window's width (one hour when it is not set).
int64 trending_window_us() {
  std::vector<Cell> row = trending_options.read();
  if (row.empty() || row[1].null) return kHourUs;
  return checked_option_us("trending", "window", DatumGetInt64(row[1].value));
}

// A page view of the batch.
struct View {
  std::string user;
  std::string product;
  int64 time = 0;  // event time, or the window's end
};

// The batch's page views in input order; counts.events counts every row of the statement. A
// view later than the clock limit is left out and counted as future: a recommender's state and
// clocks (windows, pending views, each user's latest list, trending windows, affinity buckets)
// never take a time past the limit. The click itself stays in streamrec.clicks.
std::vector<View> read_page_views(const TransitionRows& batch, PipelineCounts& counts) {
  const BatchColumn& users = batch.column(click_columns::user_id);
  const BatchColumn& products = batch.column(click_columns::product_id);
  const BatchColumn& types = batch.column(click_columns::event_type);
  const BatchColumn& times = batch.column(click_columns::event_time);
  counts.events = static_cast<int64>(batch.size());
  int64 limit = clock_limit_now();
  std::vector<View> views;
  views.reserve(batch.size());
  for (std::size_t r = 0; r < batch.size(); r++) {
    if (products.is_null(r) || types.is_null(r) || types.text(r) != "page_view") continue;
    int64 time = times.integer(r);
    if (is_future(time, limit)) {
      counts.future++;
      continue;
    }
    views.push_back(View{std::string(users.text(r)), std::string(products.text(r)), time});
  }
  return views;
}

template <typename T>
std::vector<T> distinct(std::vector<T> values) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return values;
}

// ------------------------------------------------------------------------------------------
// The inventory as the recommenders see it: each product's category, and the in-stock
// candidates (rating >= min_rating) of the categories, best first. A full snapshot is kept in
// the backend between batches for as long as no transaction that changed the inventory has
// committed since it was read (inventory_generation()), so a steady stream of clicks reads the
// inventory once, and an UPDATE is still honoured by the very next batch.
// ------------------------------------------------------------------------------------------
struct InventoryView {
  std::unordered_map<std::string, std::string> category;  // product_id -> category
  product_catalog catalog;
};

KeptPlan read_inventory(
    "SELECT product_id, category, stock > 0 AND ($1::real IS NULL OR rating >= $1), rating"
    " FROM streamrec.inventory WHERE category IS NOT NULL",
    {FLOAT4OID});
KeptPlan read_categories(
    "SELECT product_id, category FROM streamrec.inventory WHERE product_id = ANY($1) AND category IS NOT NULL",
    {TEXTARRAYOID});
KeptPlan read_candidates(
    "SELECT category, product_id, rating FROM streamrec.inventory"
    " WHERE category = ANY($1) AND stock > 0 AND ($2::real IS NULL OR rating >= $2)",
    {TEXTARRAYOID, FLOAT4OID});

std::vector<Datum> min_rating_arg(std::optional<float> min_rating, std::vector<bool>* nulls) {
  nulls->push_back(!min_rating.has_value());
  return {Float4GetDatum(min_rating.value_or(0.0f))};
}

std::optional<float> rating_of(const Cell& cell) {
  return cell.null ? std::nullopt : std::optional<float>(DatumGetFloat4(cell.value));
}

// Just what one batch needs: the categories of its products and those categories' candidates.
std::shared_ptr<InventoryView> read_inventory_for(const std::vector<std::string>& products,
                                                  std::optional<float> min_rating) {
  auto view = std::make_shared<InventoryView>();
  if (!products.empty()) {
    uint64 n = read_categories.run({text_array(products)}, true);
    std::vector<Cell> cells = fetch_result({true, true});
    for (uint64 r = 0; r < n; r++) view->category.emplace(cells[r * 2].str(), cells[r * 2 + 1].str());
  }
  std::vector<std::string> categories;
  for (auto& [product, cat] : view->category) categories.push_back(cat);
  categories = distinct(std::move(categories));
  if (!categories.empty()) {
    std::vector<bool> nulls{false};
    std::vector<Datum> args{text_array(categories)};
    args.push_back(min_rating_arg(min_rating, &nulls)[0]);
    uint64 n = read_candidates.run(args, true, nulls);
    std::vector<Cell> cells = fetch_result({true, true, false});
    for (uint64 r = 0; r < n; r++) {
      const Cell* row = &cells[r * 3];
      view->catalog.add(row[0].view(), row[1].view(), rating_of(row[2]));
    }
  }
  view->catalog.finish();
  return view;
}

// `fresh`: read with a snapshot of its own, taken now (under READ COMMITTED), instead of the
// statement's, which may be older than the change generation the caller read.
std::shared_ptr<InventoryView> read_whole_inventory(std::optional<float> min_rating, bool fresh) {
  auto view = std::make_shared<InventoryView>();
  std::vector<bool> nulls;
  uint64 n = read_inventory.run(min_rating_arg(min_rating, &nulls), !fresh, nulls);
  std::vector<Cell> cells = fetch_result({true, true, false, false});
  view->category.reserve(n);
  for (uint64 r = 0; r < n; r++) {
    const Cell* row = &cells[r * 4];
    view->category.emplace(row[0].str(), row[1].str());
    if (DatumGetBool(row[2].value)) view->catalog.add(row[1].view(), row[0].view(), rating_of(row[3]));
  }
  view->catalog.finish();
  return view;
}

class InventoryCache {
 public:
  // The inventory for a batch viewing `products` (distinct). `need_candidates` false: only the
  // categories are used, so a snapshot read with any min_rating will do.
  std::shared_ptr<const InventoryView> get(const std::vector<std::string>& products, std::optional<float> min_rating,
                                           bool need_candidates) {
    // Read the generation before the inventory: a change committed after this read bumps it
    // again, so what we read is never kept past a change we did not see.
    uint64 generation = inventory_generation();
    Oid relation = pg_call([] { return get_relname_relid("inventory", get_namespace_oid("streamrec", false)); });
    bool own_changes = inventory_changed_in_this_transaction();
    bool current = kept_ && generation == kept_generation_ && relation == kept_relation_ && !own_changes;
    if (current && (!need_candidates || kept_min_rating_ == min_rating)) return kept_;
    // Reading everything pays off for a large batch, or when the inventory has been calm
    // since the previous batch; a small batch while the inventory keeps changing reads only
    // what it needs.
    bool calm = generation == last_seen_generation_;
    last_seen_generation_ = generation;
    if (own_changes || (products.size() < kWholeInventoryBatch && !calm))
      return read_inventory_for(products, min_rating);
    // What is kept must be read with a snapshot taken after the generation was: the statement's
    // own snapshot (a trigger's statement may have started seconds ago) can miss a change that
    // committed before the generation read, and would be kept past it. Under REPEATABLE READ
    // and SERIALIZABLE every read uses the transaction's snapshot, so nothing is kept.
    if (pg_call([] { return IsolationUsesXactSnapshot(); })) return read_whole_inventory(min_rating, false);
    kept_ = read_whole_inventory(min_rating, true);
    kept_generation_ = generation;
    kept_relation_ = relation;
    kept_min_rating_ = min_rating;
    return kept_;
  }

 private:
  static constexpr std::size_t kWholeInventoryBatch = 1000;
  std::shared_ptr<InventoryView> kept_;
  uint64 kept_generation_ = 0;
  Oid kept_relation_ = InvalidOid;
  std::optional<float> kept_min_rating_;
  uint64 last_seen_generation_ = 0;
};

InventoryCache inventory_cache;

// ------------------------------------------------------------------------------------------
// similar_products
// ------------------------------------------------------------------------------------------
KeptPlan read_bought("SELECT user_id, product_id FROM streamrec.user_purchases WHERE user_id = ANY($1)",
                     {TEXTARRAYOID});
// Every list the log holds for the users from each user's own time on ($2[i] for $1[i]).
KeptPlan read_logged(
    "SELECT l.user_id, l.window_end, p.product_id FROM unnest($1::text[], $2::timestamptz[]) AS u(user_id, since)"
    " JOIN LATERAL (SELECT r.user_id, r.window_end, r.product_ids, r.id FROM streamrec.recommendation_log r"
    " WHERE r.user_id = u.user_id AND r.window_end >= u.since) l ON true,"
    " unnest(l.product_ids) WITH ORDINALITY AS p(product_id, n) ORDER BY l.user_id, l.id, p.n",
    {TEXTARRAYOID, TIMESTAMPTZARRAYOID});

// The keyed state of similar_products: each user's row of streamrec.recommendations, the latest
// list next to the lists shown within the repeat window (shown_products[i] shown at
// shown_at[i]) and the time from which those are complete (shown_since; NULL: not known, the
// log is read).
enum StateColumn : std::size_t {
  kProducts,
  kViewed,
  kCategory,
  kWindowEnd,
  kUpdatedAt,
  kShownProducts,
  kShownAt,
  kShownSince,
  kStateColumns
};
const KeyedTableSpec kUserStates{"streamrec",
                                 "recommendations",
                                 {{"user_id", TEXTOID}},
                                 {{"product_ids", TEXTARRAYOID},
                                  {"viewed_product_id", TEXTOID},
                                  {"category", TEXTOID},
                                  {"window_end", TIMESTAMPTZOID},
                                  {"updated_at", TIMESTAMPTZOID},
                                  {"shown_products", TEXTARRAYOID},
                                  {"shown_at", TIMESTAMPTZARRAYOID},
                                  {"shown_since", TIMESTAMPTZOID}}};

// The same without the state columns: the schema of versions before 0.3, which the library
// serves until ALTER EXTENSION UPDATE (the lists shown then come from the log).
KeyedTableSpec user_lists_spec() {
  KeyedTableSpec spec = kUserStates;
  spec.value_columns.resize(kShownProducts);
  return spec;
}
const KeyedTableSpec kUserLists = user_lists_spec();

// Whether streamrec.recommendations has the state columns.
bool has_state_columns() {
  return pg_call([] {
    Oid rel = get_relname_relid("recommendations", get_namespace_oid("streamrec", false));
    return OidIsValid(rel) && get_attnum(rel, "shown_since") != InvalidAttrNumber;
  });
}

struct Emitted {
  const View* view;
  std::string_view category;
  std::vector<std::string_view> products;  // into the inventory view
};

// One batch of similar_products: the views ranked against their users' state.
struct RankedBatch {
  std::shared_ptr<const InventoryView> inventory;  // the lists point into it
  std::vector<std::string_view> users;             // distinct, in byte order
  KeyedRows rows;                                  // the users' rows (locked when writing)
  bool state_columns = false;                      // rows carry the state columns
  std::unordered_map<std::string_view, user_shown_state> states;
  std::vector<Emitted> lists;
};

std::optional<int64> timestamp_cell(const KeyedRows& rows, std::size_t row, std::size_t column) {
  if (!rows.found[row] || rows.is_null(row, column)) return std::nullopt;
  return DatumGetTimestampTz(rows.value(row, column));
}

// Each user's shown state from their row, or from the log where the row does not have what the
// batch's views need.
void load_shown_states(const SimilarProductsConfig& cfg, const std::vector<View>& views, RankedBatch& batch) {
  similar_products_options options{cfg.top_k, cfg.repeats, cfg.repeat_window_us};
  std::unordered_map<std::string_view, int64> earliest;
  for (const View& v : views) {
    auto [it, inserted] = earliest.emplace(v.user, v.time);
    if (!inserted) it->second = std::min(it->second, v.time);
  }
  std::vector<std::string_view> from_log;
  std::vector<int64> since;
  for (std::size_t u = 0; u < batch.users.size(); u++) {
    user_shown_state& state = batch.states[batch.users[u]];
    if (cfg.repeats == repeat_policy::allow) continue;
    if (batch.state_columns) state.complete_since = timestamp_cell(batch.rows, u, kShownSince);
    if (state.complete_since && batch.rows.found[u] && !batch.rows.is_null(u, kShownProducts) &&
        !batch.rows.is_null(u, kShownAt)) {
      std::vector<std::string> products = text_array_values(batch.rows.value(u, kShownProducts));
      std::vector<int64> times = int64_array_values(batch.rows.value(u, kShownAt));
      for (std::size_t i = 0; i < products.size() && i < times.size(); i++)
        state.shown.push_back(shown_list_entry{times[i], std::move(products[i])});
    } else {
      state.complete_since.reset();
      state.shown.clear();
    }
    int64 first = earliest.at(batch.users[u]);
    if (needs_log(state, first, options)) {
      from_log.push_back(batch.users[u]);
      since.push_back(first - cfg.repeat_window_us);
    }
  }
  if (from_log.empty()) return;
  uint64 n = read_logged.run({text_array(from_log), timestamptz_array(since)}, true);
  std::vector<Cell> cells = fetch_result({true, false, true});
  std::unordered_map<std::string_view, std::vector<shown_list_entry>> logged;
  for (uint64 r = 0; r < n; r++) {
    const Cell* row = &cells[r * 3];
    auto user = std::lower_bound(batch.users.begin(), batch.users.end(), row[0].view());
    logged[*user].push_back(shown_list_entry{DatumGetTimestampTz(row[1].value), row[2].str()});
  }
  for (std::size_t i = 0; i < from_log.size(); i++) {
    auto it = logged.find(from_log[i]);
    reset_from_log(batch.states[from_log[i]], since[i],
                   it == logged.end() ? std::vector<shown_list_entry>{} : std::move(it->second));
  }
}

// Ranks `views` in order against their users' state. Lists emitted earlier in the same call
// count as shown for later views of the same user. Views of products not in the inventory, and
// empty lists, are skipped. `lock`: the users' rows are read and locked for the write that
// follows; otherwise (streamrec.recommend(), which writes nothing and may run on a standby) the
// lists shown come from the log.
RankedBatch rank_views(const SimilarProductsConfig& cfg, const std::vector<View>& views, int k, bool lock,
                       PipelineCounts& counts, StepTimer& timer) {
  RankedBatch batch;
  if (views.empty()) return batch;
  std::vector<std::string> products;
  products.reserve(views.size());
  batch.users.reserve(views.size());
  for (const View& v : views) {
    products.push_back(v.product);
    batch.users.push_back(v.user);
  }
  batch.users = distinct(std::move(batch.users));
  batch.inventory = inventory_cache.get(distinct(std::move(products)), cfg.min_rating, true);
  timer.mark("inventory");

  batch.state_columns = lock && has_state_columns();
  if (lock) {
    KeyedTable states(batch.state_columns ? kUserStates : kUserLists);
    std::vector<Datum> keys = text_datums(batch.users);
    batch.rows = states.lock_rows(keys.size(), keys.data());
  } else {
    batch.rows.value_count = kStateColumns;
    batch.rows.found.assign(batch.users.size(), 0);
  }
  load_shown_states(cfg, views, batch);
  timer.mark("state");

  std::unordered_map<std::string_view, std::vector<std::string>> bought;
  {
    uint64 n = read_bought.run({text_array(batch.users)}, true);
    std::vector<Cell> cells = fetch_result({true, true});
    for (uint64 r = 0; r < n; r++) bought[cells[r * 2].view()].push_back(cells[r * 2 + 1].str());
  }
  std::unordered_map<std::string_view, std::vector<std::string_view>> bought_views;
  for (auto& [user, list] : bought) {
    auto u = std::lower_bound(batch.users.begin(), batch.users.end(), user);
    bought_views[*u] = std::vector<std::string_view>(list.begin(), list.end());
  }
  timer.mark("purchases");

  std::vector<page_view> page_views;
  page_views.reserve(views.size());
  for (const View& v : views) page_views.push_back(page_view{v.user, v.product, v.time});
  const std::unordered_map<std::string, std::string>& category = batch.inventory->category;
  static const std::vector<std::string_view> nothing_bought;
  similar_products_options options{k, cfg.repeats, cfg.repeat_window_us};
  std::vector<emitted_list> ranked = rank_page_views(
      page_views, batch.inventory->catalog,
      [&category](std::string_view product) -> const std::string* {
        auto it = category.find(std::string(product));
        return it == category.end() ? nullptr : &it->second;
      },
      [&bought_views](std::string_view user) -> const std::vector<std::string_view>& {
        auto it = bought_views.find(user);
        return it == bought_views.end() ? nothing_bought : it->second;
      },
      batch.states, options, &counts.skipped);
  batch.lists.reserve(ranked.size());
  for (emitted_list& e : ranked) batch.lists.push_back(Emitted{&views[e.view], e.category, std::move(e.products)});
  timer.mark("rank");
  return batch;
}

// The log rows of a batch's lists, as the RowSource of append_rows() reads them.
struct LogRows {
  const std::vector<Emitted>* lists;
  std::size_t next;
};

constexpr ResultColumn kLogColumns[] = {{"user_id", TEXTOID},
                                        {"product_ids", TEXTARRAYOID},
                                        {"window_end", TIMESTAMPTZOID},
                                        {"viewed_product_id", TEXTOID},
                                        {"category", TEXTOID}};

text* text_of(std::string_view s) { return cstring_to_text_with_len(s.data(), static_cast<int>(s.size())); }

Datum text_array_of(const std::vector<std::string_view>& values) {
  std::size_t n = values.size();
  auto* elements = static_cast<Datum*>(palloc(sizeof(Datum) * (n == 0 ? 1 : n)));
  for (std::size_t i = 0; i < n; i++) elements[i] = PointerGetDatum(text_of(values[i]));
  return PointerGetDatum(construct_array(elements, static_cast<int>(n), TEXTOID, -1, false, TYPALIGN_INT));
}

bool log_row(void* arg, Datum* values, bool* nulls) noexcept {
  auto* rows = static_cast<LogRows*>(arg);
  if (rows->next == rows->lists->size()) return false;
  const Emitted& e = (*rows->lists)[rows->next++];
  values[0] = PointerGetDatum(text_of(e.view->user));
  values[1] = text_array_of(e.products);
  values[2] = TimestampTzGetDatum(e.view->time);
  values[3] = PointerGetDatum(text_of(e.view->product));
  values[4] = PointerGetDatum(text_of(e.category));
  for (int c = 0; c < 5; c++) nulls[c] = false;
  return true;
}

// Writes the batch: every list to the log (the sink's relation), in order, the way COPY
// inserts; then each user's row once: the latest list (by time, then by order) where it is not
// older than the row's, and the shown state.
void write_emitted(const SimilarProductsConfig& cfg, RankedBatch& batch, PipelineCounts& counts, StepTimer& timer) {
  if (!batch.lists.empty()) {
    LogRows rows{&batch.lists, 0};
    append_rows("recommendation_log", kLogColumns, 5, log_row, &rows);
    counts.outputs += static_cast<int64>(batch.lists.size());
  }
  timer.mark("log");
  std::unordered_map<std::string_view, std::size_t> latest;
  for (std::size_t i = 0; i < batch.lists.size(); i++) {
    auto [it, inserted] = latest.emplace(batch.lists[i].view->user, i);
    if (!inserted && batch.lists[it->second].view->time <= batch.lists[i].view->time) it->second = i;
  }
  bool keep_shown = cfg.repeats != repeat_policy::allow && batch.state_columns;
  std::size_t columns = batch.state_columns ? kStateColumns : kShownProducts;
  int64 now = pg_call([] { return GetCurrentTimestamp(); });
  std::vector<std::uint32_t> updated;
  std::vector<Datum> update_values, insert_keys, insert_values;
  std::vector<bool> update_nulls, insert_nulls;
  std::vector<std::string_view> inserted_users;
  for (std::size_t u = 0; u < batch.users.size(); u++) {
    std::string_view user = batch.users[u];
    auto list = latest.find(user);
    const user_shown_state& state = batch.states[user];
    bool found = batch.rows.found[u];
    // A user without a list keeps the row as it is (none is made for them); one whose state
    // came from the log keeps it in the row for the next batch.
    if (list == latest.end() && (!found || !keep_shown || !state.complete_since)) continue;
    Datum values[kStateColumns];
    bool nulls[kStateColumns];
    for (std::size_t c = 0; c < columns; c++) {
      values[c] = found ? batch.rows.value(u, c) : 0;
      nulls[c] = found ? batch.rows.is_null(u, c) : true;
    }
    std::optional<int64> row_end = timestamp_cell(batch.rows, u, kWindowEnd);
    if (list != latest.end() && (!row_end || *row_end <= batch.lists[list->second].view->time)) {
      const Emitted& e = batch.lists[list->second];
      values[kProducts] = pg_call([&e] { return text_array_of(e.products); });
      values[kViewed] = text_datums({e.view->product})[0];
      values[kCategory] = text_datums({e.category})[0];
      values[kWindowEnd] = TimestampTzGetDatum(e.view->time);
      values[kUpdatedAt] = TimestampTzGetDatum(now);
      for (std::size_t c : {kProducts, kViewed, kCategory, kWindowEnd, kUpdatedAt}) nulls[c] = false;
    }
    nulls[kShownProducts] = nulls[kShownAt] = nulls[kShownSince] = !state.complete_since.has_value();
    if (keep_shown && state.complete_since) {
      std::vector<std::string_view> products;
      std::vector<int64> times;
      for (const shown_list_entry& e : state.shown) {
        products.push_back(e.product);
        times.push_back(e.time);
      }
      values[kShownProducts] = text_array(products);
      values[kShownAt] = timestamptz_array(times);
      values[kShownSince] = TimestampTzGetDatum(*state.complete_since);
    }
    std::vector<Datum>& out = found ? update_values : insert_values;
    std::vector<bool>& out_nulls = found ? update_nulls : insert_nulls;
    out.insert(out.end(), values, values + columns);
    out_nulls.insert(out_nulls.end(), nulls, nulls + columns);
    if (found)
      updated.push_back(static_cast<std::uint32_t>(u));
    else
      inserted_users.push_back(user);
  }
  KeyedTable states(batch.state_columns ? kUserStates : kUserLists);
  if (!updated.empty()) {
    std::unique_ptr<bool[]> flags(new bool[update_nulls.size()]);
    for (std::size_t i = 0; i < update_nulls.size(); i++) flags[i] = update_nulls[i];
    states.update_rows(batch.rows, updated.size(), updated.data(), update_values.data(), flags.get());
  }
  if (!inserted_users.empty()) {
    std::unique_ptr<bool[]> flags(new bool[insert_nulls.size()]);
    for (std::size_t i = 0; i < insert_nulls.size(); i++) flags[i] = insert_nulls[i];
    std::vector<Datum> keys = text_datums(inserted_users);
    states.insert_rows(keys.size(), keys.data(), insert_values.data(), flags.get());
  }
  timer.mark("state write");
}

// Windowed emit: the event-time clock, the pending views and closing windows.
KeptPlan write_pending(
    "INSERT INTO streamrec.pending_views AS pv (user_id, window_start, product_id, event_time)"
    " SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::timestamptz[])"
    " ON CONFLICT (user_id, window_start) DO UPDATE SET product_id = excluded.product_id,"
    " event_time = excluded.event_time WHERE pv.event_time <= excluded.event_time",
    {TEXTARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID});
KeptPlan close_windows(
    "DELETE FROM streamrec.pending_views WHERE window_start <= $1 RETURNING user_id, product_id, window_start, "
    "event_time",
    {TIMESTAMPTZOID});

// Deletes the pending views of every window ending at or before `watermark` and returns them as
// views at their window's end, in window then event-time order.
std::vector<View> take_closed_windows(int64 watermark, int64 width) {
  uint64 n = close_windows.run({TimestampTzGetDatum(watermark - width)}, false);
  std::vector<Cell> cells = fetch_result({true, true, false, false});
  std::vector<std::pair<int64, View>> closed;
  for (uint64 r = 0; r < n; r++) {
    const Cell* row = &cells[r * 4];
    closed.emplace_back(DatumGetTimestampTz(row[3].value),
                        View{row[0].str(), row[1].str(), DatumGetTimestampTz(row[2].value) + width});
  }
  std::sort(closed.begin(), closed.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second.time, a.first, a.second.user) < std::tie(b.second.time, b.first, b.second.user);
  });
  std::vector<View> out;
  out.reserve(closed.size());
  for (auto& [event_time, view] : closed) out.push_back(std::move(view));
  return out;
}

// Adds the batch's views to their windows and returns the views of the windows that closed.
std::vector<View> window_views(const SimilarProductsConfig& cfg, const std::vector<View>& views,
                               PipelineCounts& counts) {
  EventClock clock = lock_event_clock("similar_products");
  std::optional<int64> newest;
  std::map<std::pair<std::string, int64>, const View*> latest;  // (user, window start) -> view
  for (const View& v : views) {
    int64 start = window_start(v.time, cfg.emit_us);
    if (clock.watermark && window_end(start, cfg.emit_us) <= *clock.watermark) {
      counts.late++;
      continue;
    }
    auto [it, inserted] = latest.emplace(std::make_pair(v.user, start), &v);
    if (!inserted && it->second->time <= v.time) it->second = &v;
    newest = std::max(newest.value_or(v.time), v.time);
  }
  if (!latest.empty()) {
    std::vector<std::string> users, products;
    std::vector<int64> starts, times;
    for (const auto& [key, v] : latest) {
      users.push_back(key.first);
      starts.push_back(key.second);
      products.push_back(v->product);
      times.push_back(v->time);
    }
    write_pending.run({text_array(users), timestamptz_array(starts), text_array(products), timestamptz_array(times)},
                      false);
  }
  if (newest) advance_event_clock("similar_products", clock, *newest, cfg.watermark_delay_us, cfg.idle_timeout_us);
  save_event_clock("similar_products", clock, true);
  if (!clock.watermark) return {};
  return take_closed_windows(*clock.watermark, cfg.emit_us);
}

}  // namespace

void similar_products_clicks(const TransitionRows& batch) {
  {
    SimilarProductsConfig cfg = similar_config();
    if (!cfg.enabled) return;
    PipelineCounts counts;
    StepTimer timer;
    std::vector<View> views = read_page_views(batch, counts);
    timer.mark("read");
    if (cfg.emit_us > 0) {
      std::vector<View> closed = window_views(cfg, views, counts);
      timer.mark("windows");
      RankedBatch ranked = rank_views(cfg, closed, cfg.top_k, true, counts, timer);
      write_emitted(cfg, ranked, counts, timer);
    } else {
      RankedBatch ranked = rank_views(cfg, views, cfg.top_k, true, counts, timer);
      write_emitted(cfg, ranked, counts, timer);
    }
    count_pipeline("similar_products", counts);
    timer.report("similar_products", views.size());
  }
}

// Purchases into user_purchases: per (user, product) of the batch, in key order, its sums added
// to the pair's row (or a row made for it).
const KeyedTableSpec kUserPurchases{
    "streamrec",
    "user_purchases",
    {{"user_id", TEXTOID}, {"product_id", TEXTOID}},
    {{"quantity", INT8OID}, {"purchases", INT8OID}, {"last_purchase_time", TIMESTAMPTZOID}}};

void similar_products_purchases(const TransitionRows& batch) {
  const BatchColumn& users = batch.column(purchase_columns::user_id);
  const BatchColumn& products = batch.column(purchase_columns::product_id);
  const BatchColumn& quantities = batch.column(purchase_columns::quantity);
  const BatchColumn& times = batch.column(purchase_columns::purchase_time);
  struct Sums {
    int64 quantity = 0;
    int64 purchases = 0;
    int64 last = 0;
  };
  std::map<std::pair<std::string_view, std::string_view>, Sums> per_pair;
  for (std::size_t r = 0; r < batch.size(); r++) {
    // (NOT NULL columns: a NULL cannot arrive)
    Sums& sums = per_pair[{users.text(r), products.text(r)}];
    int64 time = times.integer(r);
    sums.last = sums.purchases == 0 ? time : std::max(sums.last, time);
    sums.quantity += quantities.integer(r);
    sums.purchases++;
  }
  std::vector<std::string_view> key_text;
  for (const auto& [key, sums] : per_pair) {
    key_text.push_back(key.first);
    key_text.push_back(key.second);
  }
  std::vector<Datum> keys = text_datums(key_text);
  std::vector<Datum> values;
  for (const auto& [key, sums] : per_pair) {
    values.push_back(Int64GetDatum(sums.quantity));
    values.push_back(Int64GetDatum(sums.purchases));
    values.push_back(TimestampTzGetDatum(sums.last));
  }
  merge_into_rows(kUserPurchases, {Merge::add, Merge::add, Merge::greatest}, per_pair.size(), keys, values);
}

namespace {

// The windowed emit's windows closed by the idle timeout: up to the end of the newest pending
// window.
Datum close_idle_similar_products_windows(FunctionCallInfo) {
  spi_connect();
  SimilarProductsConfig cfg = similar_config();
  int64 closed_lists = 0;
  if (cfg.enabled && cfg.emit_us > 0)
    closed_lists = close_idle_windows(
        "similar_products", cfg.idle_timeout_us,
        [&cfg](const EventClock& clock) -> std::optional<int64> {
          run_sql("SELECT max(window_start) FROM streamrec.pending_views", true);
          std::vector<Cell> row = fetch_result({false});
          if (row[0].null) return std::nullopt;
          int64 newest_end = std::min(window_end(DatumGetTimestampTz(row[0].value), cfg.emit_us), clock_limit_now());
          return std::max(clock.watermark.value_or(newest_end), newest_end);
        },
        [&cfg](std::optional<int64>, int64 watermark) {
          PipelineCounts counts;
          std::vector<View> views = take_closed_windows(watermark, cfg.emit_us);
          StepTimer timer;
          RankedBatch ranked = rank_views(cfg, views, cfg.top_k, true, counts, timer);
          write_emitted(cfg, ranked, counts, timer);
          count_pipeline("similar_products", counts);
          return counts.outputs;
        });
  spi_finish();
  return Int64GetDatum(closed_lists);
}

// streamrec.recommend(user_id, product_id, k): the list a view would get now. The repeat window
// ends at the user's latest emitted list.
KeptPlan read_user_clock("SELECT max(window_end) FROM streamrec.recommendation_log WHERE user_id = $1", {TEXTOID});

Datum recommend(FunctionCallInfo fcinfo) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
    throw Error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "user_id and product_id must not be NULL", "",
                "Pass the user and the product being viewed, e.g. streamrec.recommend('user-27', '39').");
  if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 1 || PG_GETARG_INT32(2) > 1000)
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "k must be between 1 and 1000", "", "The default is 6.");
  int k = PG_GETARG_INT32(2);
  std::string user = pg_call([fcinfo] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
  std::string product = pg_call([fcinfo] { return text_to_cstring(PG_GETARG_TEXT_PP(1)); });

  pg_call([] { return SPI_connect(); });
  SimilarProductsConfig cfg = similar_config();
  read_user_clock.run({text_datum(user)}, true);
  std::vector<Cell> row = fetch_result({false});
  int64 now = row[0].null ? pg_call([] { return GetCurrentTimestamp(); }) : DatumGetTimestampTz(row[0].value);
  std::vector<View> views{View{user, product, now}};
  PipelineCounts ignored;
  StepTimer timer;
  RankedBatch ranked = rank_views(cfg, views, k, false, ignored, timer);
  pg_call([] { return SPI_finish(); });
  if (ranked.lists.empty()) {
    fcinfo->isnull = true;
    return static_cast<Datum>(0);
  }
  // (the list points into the kept inventory, not into SPI's memory)
  return text_array(ranked.lists.front().products);
}

// ------------------------------------------------------------------------------------------
// trending
// ------------------------------------------------------------------------------------------
const KeyedTableSpec kTrendingCounts{
    "streamrec", "trending_counts", {{"window_start", TIMESTAMPTZOID}, {"product_id", TEXTOID}}, {{"views", INT8OID}}};

}  // namespace

void trending_clicks(const TransitionRows& batch) {
  {
    int64 width = trending_window_us();
    PipelineCounts counts;
    std::vector<View> views = read_page_views(batch, counts);
    std::map<std::pair<int64, std::string_view>, int64> views_per;
    for (const View& v : views) views_per[{window_start(v.time, width), v.product}]++;
    std::vector<std::string_view> products;
    products.reserve(views_per.size());
    for (const auto& [key, n] : views_per) products.push_back(key.second);
    std::vector<Datum> texts = text_datums(products);
    std::vector<Datum> keys, values;
    std::size_t i = 0;
    for (const auto& [key, n] : views_per) {
      keys.push_back(TimestampTzGetDatum(key.first));
      keys.push_back(texts[i++]);
      values.push_back(Int64GetDatum(n));
    }
    merge_into_rows(kTrendingCounts, {Merge::add}, views_per.size(), keys, values);
    counts.outputs = static_cast<int64>(views_per.size());
    count_pipeline("trending", counts);
  }
}

namespace {

// ------------------------------------------------------------------------------------------
// category_affinity
// ------------------------------------------------------------------------------------------
const KeyedTableSpec kCategoryViews{"streamrec",
                                    "category_views",
                                    {{"user_id", TEXTOID}, {"bucket_start", TIMESTAMPTZOID}, {"category", TEXTOID}},
                                    {{"views", INT8OID}}};
const KeyedTableSpec kViewedProducts{"streamrec",
                                     "user_viewed_products",
                                     {{"user_id", TEXTOID}, {"product_id", TEXTOID}},
                                     {{"last_viewed", TIMESTAMPTZOID}}};

}  // namespace

void category_affinity_clicks(const TransitionRows& batch) {
  {
    PipelineCounts counts;
    std::vector<View> views = read_page_views(batch, counts);
    std::vector<std::string> products;
    products.reserve(views.size());
    for (const View& v : views) products.push_back(v.product);
    std::shared_ptr<const InventoryView> inventory =
        inventory_cache.get(distinct(std::move(products)), std::nullopt, false);
    const std::unordered_map<std::string, std::string>& category = inventory->category;
    // Keyed as the primary keys are, so rows are locked in one order by every writer.
    std::map<std::tuple<std::string_view, int64, std::string_view>, int64> per_bucket;
    std::map<std::pair<std::string_view, std::string_view>, int64> last_viewed;
    for (const View& v : views) {
      auto cat = category.find(v.product);
      if (cat == category.end()) {
        counts.skipped++;
        continue;
      }
      per_bucket[{v.user, window_start(v.time, kHourUs), cat->second}]++;
      auto [it, inserted] =
          last_viewed.emplace(std::make_pair(std::string_view(v.user), std::string_view(v.product)), v.time);
      if (!inserted) it->second = std::max(it->second, v.time);
    }
    std::vector<std::string_view> texts;
    for (const auto& [key, n] : per_bucket) {
      texts.push_back(std::get<0>(key));
      texts.push_back(std::get<2>(key));
    }
    std::vector<Datum> text_values = text_datums(texts);
    std::vector<Datum> keys, values;
    std::size_t t = 0;
    for (const auto& [key, n] : per_bucket) {
      keys.push_back(text_values[t++]);
      keys.push_back(TimestampTzGetDatum(std::get<1>(key)));
      keys.push_back(text_values[t++]);
      values.push_back(Int64GetDatum(n));
    }
    merge_into_rows(kCategoryViews, {Merge::add}, per_bucket.size(), keys, values);
    texts.clear();
    for (const auto& [key, when] : last_viewed) {
      texts.push_back(key.first);
      texts.push_back(key.second);
    }
    std::vector<Datum> pair_keys = text_datums(texts);
    values.clear();
    for (const auto& [key, when] : last_viewed) values.push_back(TimestampTzGetDatum(when));
    merge_into_rows(kViewedProducts, {Merge::greatest}, last_viewed.size(), pair_keys, values);
    counts.outputs = static_cast<int64>(per_bucket.size());
    count_pipeline("category_affinity", counts);
  }
}

}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_close_idle_windows, streamrec::close_idle_similar_products_windows)
STREAMREC_SQL_FUNCTION(streamrec_recommend, streamrec::recommend)
