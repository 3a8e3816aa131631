// The ratings pipeline as a C++ statement-level AFTER
// INSERT trigger on streamrec.ratings.
//
// Per statement (a source batch or a psql INSERT), the batch read once from the transition table
// into typed columns (pg/transition_rows) and planned without PostgreSQL (core/pipelines/ratings):
//   1. test traffic (channel ILIKE '%test%') is copied to test_ratings and goes nowhere else;
//   2. live ratings of known customers are enriched from streamrec.customers as it is now (so an
//      UPDATE of a customer shows from the next rating on; one index probe per distinct customer)
//      into ratings_enriched, and those with stars < 3 from platinum customers into
//      unhappy_customers, all in input order; the three tables are written as COPY writes
//      (pg/bulk_insert);
//   3. live ratings with a product_id lock their products' inventory rows (product order), add
//      their sums to product_ratings and set inventory.rating to the product's average;
//   4. the clock row is locked, the enriched ratings are summed per event-time window in memory
//      (core/pipelines/rating_windows; a rating behind a closed window is counted late and left
//      out of it; one beyond the clock limit is counted future and left out of every window), the
//      sums added to their window rows in key order, and the watermark advanced.
// inventory, product_ratings and the two window tables are keyed state (pg/keyed_table): per
// table, one primary-key probe per key locks and reads the rows, one UPDATE writes the rows
// found and one INSERT the keys missing, each table's writer lock taken first.
// Lock order: inventory (writer lock, rows in product order), product_ratings (likewise), the
// clock row, ratings_by_club_status and ratings_per_customer (writer lock, rows in key order).
// Two feeding workers therefore never wait for each other in a cycle, and none waits on
// item_transactions (which locks the inventory the same way, then its own tables).
#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/pipelines/rating_windows.h"
#include "core/pipelines/ratings.h"

#include "pg/bulk_insert.h"
#include "pg/catalog_options.h"
#include "pg/error_boundary.h"
#include "pg/event_clock.h"
#include "pg/pipeline_stats.h"
#include "extension/pipeline_trigger.h"
#include "pg/change_generation.h"
#include "pg/keyed_table.h"
#include "pg/spi.h"
#include "pg/transition_rows.h"

extern "C" {
#include "access/table.h"
#include "common/int.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/rel.h"
#include "utils/array.h"
#include "utils/timestamp.h"
}

namespace streamrec {
namespace {

constexpr const char* kPipeline = "ratings";

struct RatingsConfig {
  bool enabled = false;
  int64 status_window_us = 60 * INT64CONST(1000000);
  int64 customer_window_us = INT64CONST(15) * 60 * 1000000;
  int64 watermark_delay_us = INT64CONST(1000000);
  int64 idle_timeout_us = 5 * INT64CONST(1000000);
};

PipelineOptions options(kPipeline, {{"status_window", OptionKind::interval_us},
                                    {"customer_window", OptionKind::interval_us},
                                    {"watermark_delay", OptionKind::interval_us},
                                    {"idle_timeout", OptionKind::interval_us}});

RatingsConfig ratings_config() {
  RatingsConfig cfg;
  std::vector<Cell> row = options.read();
  if (row.empty()) return cfg;
  cfg.enabled = DatumGetBool(row[0].value);
  cfg.status_window_us = checked_option_us(kPipeline, "status_window", DatumGetInt64(row[1].value));
  cfg.customer_window_us = checked_option_us(kPipeline, "customer_window", DatumGetInt64(row[2].value));
  cfg.watermark_delay_us = checked_option_us(kPipeline, "watermark_delay", DatumGetInt64(row[3].value), true);
  cfg.idle_timeout_us = checked_option_us(kPipeline, "idle_timeout", DatumGetInt64(row[4].value));
  return cfg;
}

// The batch's columns, in the order rows_of() reads them.
const std::vector<ColumnRequest> kBatchColumns = {
    {"rating_id", ColumnKind::text},         {"user_id", ColumnKind::text},
    {"product_id", ColumnKind::text},        {"stars", ColumnKind::int32},
    {"channel", ColumnKind::text},           {"message", ColumnKind::text},
    {"rating_time", ColumnKind::timestamptz}};

std::optional<std::string_view> nullable_text(const BatchColumn& column, std::size_t row) {
  if (column.is_null(row)) return std::nullopt;
  return column.text(row);
}

// channel ILIKE '%test%' as PostgreSQL decides it under the column's collation: for the channels
// whose answer test_channel() cannot give alone.
bool test_channel_in_postgres(TriggerData* trigger, std::string_view channel) {
  const char* data = channel.data();
  int length = static_cast<int>(channel.size());
  return pg_call([trigger, data, length] {
    TupleDesc desc = RelationGetDescr(trigger->tg_relation);
    Oid collation = DEFAULT_COLLATION_OID;
    for (int i = 0; i < desc->natts; i++) {
      Form_pg_attribute att = TupleDescAttr(desc, i);
      if (!att->attisdropped && strcmp(NameStr(att->attname), "channel") == 0) collation = att->attcollation;
    }
    Datum pattern = PointerGetDatum(cstring_to_text("%test%"));
    Datum value = PointerGetDatum(cstring_to_text_with_len(data, length));
    return DatumGetBool(DirectFunctionCall2Coll(texticlike, collation, value, pattern));
  });
}

// The batch as the core reads it (views into the columns), test traffic marked.
std::vector<rating_row> rows_of(TriggerData* trigger, const TransitionRows& rows) {
  const BatchColumn &rating_id = rows.column(0), &user_id = rows.column(1), &product_id = rows.column(2),
                    &stars = rows.column(3), &channel = rows.column(4), &message = rows.column(5),
                    &rating_time = rows.column(6);
  std::unordered_map<std::string_view, bool> asked;  // channels PostgreSQL decided, once each
  std::vector<rating_row> batch(rows.size());
  for (std::size_t i = 0; i < rows.size(); i++) {
    rating_row& r = batch[i];
    r.rating_id = nullable_text(rating_id, i);
    r.user_id = user_id.text(i);  // NOT NULL
    r.product_id = nullable_text(product_id, i);
    r.stars = static_cast<int32>(stars.integer(i));
    r.channel = nullable_text(channel, i);
    r.message = nullable_text(message, i);
    r.time_us = rating_time.integer(i);
    if (r.channel) {
      std::optional<bool> test = test_channel(*r.channel);
      if (!test) {
        auto known = asked.find(*r.channel);
        test = known != asked.end()
                   ? known->second
                   : asked.emplace(*r.channel, test_channel_in_postgres(trigger, *r.channel)).first->second;
      }
      r.test = *test;
    }
  }
  return batch;
}

// The customers of the batch, one index probe per distinct key; full_name and platinum computed
// by PostgreSQL as the enrichment always computed them (concat_ws, lower under the collation).
KeptPlan read_customers(
    "SELECT customer_id, nullif(concat_ws(' ', first_name, last_name), ''), club_status, email,"
    " coalesce(lower(club_status) = 'platinum', false)"
    " FROM streamrec.customers WHERE customer_id = ANY($1::text[])",
    {TEXTARRAYOID});

// Owns the customers' text (SPI's result memory lasts only until the next statement).
struct CustomerStore {
  std::vector<std::string> text;
  std::vector<rating_customer> customers;  // sorted by customer_id
};

void load_customers(const std::vector<std::string_view>& keys, CustomerStore& store) {
  if (keys.empty()) return;
  uint64 n = read_customers.run({text_array(keys)}, false);  // a fresh snapshot: customers as they are now
  std::vector<Cell> cells = fetch_result({true, true, true, true, false});
  store.text.reserve(4 * n);
  struct Found {
    std::size_t id, name, status, email;  // indexes into store.text; SIZE_MAX: NULL
    bool platinum;
  };
  std::vector<Found> found(n);
  auto keep = [&store](const Cell& c) {
    if (c.null) return SIZE_MAX;
    store.text.push_back(c.str());
    return store.text.size() - 1;
  };
  for (uint64 r = 0; r < n; r++) {
    const Cell* row = &cells[r * 5];
    found[r] = {keep(row[0]), keep(row[1]), keep(row[2]), keep(row[3]), DatumGetBool(row[4].value)};
  }
  auto view = [&store](std::size_t i) -> std::optional<std::string_view> {
    if (i == SIZE_MAX) return std::nullopt;
    return std::string_view(store.text[i]);
  };
  store.customers.reserve(n);
  for (const Found& f : found)
    store.customers.push_back({*view(f.id), view(f.name), view(f.status), view(f.email), f.platinum});
  std::sort(store.customers.begin(), store.customers.end(),
            [](const rating_customer& a, const rating_customer& b) { return a.customer_id < b.customer_id; });
}

// ------------------------------------------------------------------------------------------
// The append-only results, inserted as COPY inserts them (pg/bulk_insert): a page of rows at a
// time, then the indexes, the sinks' capture and any user trigger, as an INSERT would fire them.
// ------------------------------------------------------------------------------------------
struct OutputColumn {
  const char* name;
  Oid type;
};

Datum text_value(std::string_view s) {
  return PointerGetDatum(cstring_to_text_with_len(s.data(), static_cast<int>(s.size())));
}

void set_text(Datum* values, bool* nulls, int i, std::optional<std::string_view> s) {
  nulls[i] = !s.has_value();
  values[i] = s ? text_value(*s) : Datum(0);
}

// Inside one pg_call: streamrec.<table> opened as an INSERT opens it, its columns found by name
// and type, the rows of `next` inserted.
void insert_into(const char* table, const OutputColumn* columns, int count, RowSource next, void* arg) {
  RangeVar* name = makeRangeVar(const_cast<char*>("streamrec"), const_cast<char*>(table), -1);
  Relation rel = table_open(RangeVarGetRelid(name, RowExclusiveLock, false), NoLock);
  TupleDesc desc = RelationGetDescr(rel);
  AttrNumber attnums[16];
  Assert(count <= 16);
  for (int c = 0; c < count; c++) {
    attnums[c] = InvalidAttrNumber;
    for (int i = 0; i < desc->natts; i++) {
      Form_pg_attribute att = TupleDescAttr(desc, i);
      if (!att->attisdropped && att->atttypid == columns[c].type && strcmp(NameStr(att->attname), columns[c].name) == 0)
        attnums[c] = att->attnum;
    }
    if (attnums[c] == InvalidAttrNumber)
      ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION),
                      errmsg("streamrec.%s has no column %s of type %s", table, columns[c].name,
                             format_type_be(columns[c].type)),
                      errhint("Restore the table as the extension created it.")));
  }
  insert_table_rows(rel, attnums, count, next, arg);
  table_close(rel, NoLock);
}

struct ResultRows {
  const std::vector<rating_row>* batch;
  const ratings_plan* plan;
  std::size_t next;
};

constexpr OutputColumn kTestColumns[] = {
    {"rating_id", TEXTOID}, {"user_id", TEXTOID}, {"product_id", TEXTOID},        {"stars", INT4OID},
    {"channel", TEXTOID},   {"message", TEXTOID}, {"rating_time", TIMESTAMPTZOID}};

bool test_row(void* arg, Datum* values, bool* nulls) noexcept {
  ResultRows* rows = static_cast<ResultRows*>(arg);
  if (rows->next == rows->plan->test.size()) return false;
  const rating_row& r = (*rows->batch)[rows->plan->test[rows->next++]];
  set_text(values, nulls, 0, r.rating_id);
  set_text(values, nulls, 1, r.user_id);
  set_text(values, nulls, 2, r.product_id);
  values[3] = Int32GetDatum(r.stars);
  nulls[3] = false;
  set_text(values, nulls, 4, r.channel);
  set_text(values, nulls, 5, r.message);
  values[6] = TimestampTzGetDatum(r.time_us);
  nulls[6] = false;
  return true;
}

constexpr OutputColumn kEnrichedColumns[] = {
    {"rating_id", TEXTOID},   {"customer_id", TEXTOID}, {"product_id", TEXTOID},         {"stars", INT4OID},
    {"channel", TEXTOID},     {"message", TEXTOID},     {"rating_time", TIMESTAMPTZOID}, {"full_name", TEXTOID},
    {"club_status", TEXTOID}, {"email", TEXTOID}};

bool enriched_row(void* arg, Datum* values, bool* nulls) noexcept {
  ResultRows* rows = static_cast<ResultRows*>(arg);
  if (rows->next == rows->plan->enriched.size()) return false;
  const enriched_rating& e = rows->plan->enriched[rows->next++];
  const rating_row& r = (*rows->batch)[e.row];
  set_text(values, nulls, 0, r.rating_id);
  set_text(values, nulls, 1, e.customer->customer_id);
  set_text(values, nulls, 2, r.product_id);
  values[3] = Int32GetDatum(r.stars);
  nulls[3] = false;
  set_text(values, nulls, 4, r.channel);
  set_text(values, nulls, 5, r.message);
  values[6] = TimestampTzGetDatum(r.time_us);
  nulls[6] = false;
  set_text(values, nulls, 7, e.customer->full_name);
  set_text(values, nulls, 8, e.customer->club_status);
  set_text(values, nulls, 9, e.customer->email);
  return true;
}

constexpr OutputColumn kUnhappyColumns[] = {
    {"rating_id", TEXTOID},   {"customer_id", TEXTOID}, {"full_name", TEXTOID},
    {"club_status", TEXTOID}, {"email", TEXTOID},       {"stars", INT4OID},
    {"message", TEXTOID},     {"channel", TEXTOID},     {"rating_time", TIMESTAMPTZOID}};

bool unhappy_row(void* arg, Datum* values, bool* nulls) noexcept {
  ResultRows* rows = static_cast<ResultRows*>(arg);
  if (rows->next == rows->plan->unhappy.size()) return false;
  const enriched_rating& e = rows->plan->enriched[rows->plan->unhappy[rows->next++]];
  const rating_row& r = (*rows->batch)[e.row];
  set_text(values, nulls, 0, r.rating_id);
  set_text(values, nulls, 1, e.customer->customer_id);
  set_text(values, nulls, 2, e.customer->full_name);
  set_text(values, nulls, 3, e.customer->club_status);
  set_text(values, nulls, 4, e.customer->email);
  values[5] = Int32GetDatum(r.stars);
  nulls[5] = false;
  set_text(values, nulls, 6, r.message);
  set_text(values, nulls, 7, r.channel);
  values[8] = TimestampTzGetDatum(r.time_us);
  nulls[8] = false;
  return true;
}

// Steps 1 and 2: test_ratings, ratings_enriched, unhappy_customers, in that order.
void write_results(const std::vector<rating_row>& batch, const ratings_plan& plan) {
  ResultRows test{&batch, &plan, 0}, enriched{&batch, &plan, 0}, unhappy{&batch, &plan, 0};
  ResultRows *t = &test, *e = &enriched, *u = &unhappy;
  pg_call([t, e, u] {
    if (!t->plan->test.empty()) insert_into("test_ratings", kTestColumns, 7, test_row, t);
    if (!e->plan->enriched.empty()) insert_into("ratings_enriched", kEnrichedColumns, 10, enriched_row, e);
    if (!u->plan->unhappy.empty()) insert_into("unhappy_customers", kUnhappyColumns, 9, unhappy_row, u);
  });
}

// ------------------------------------------------------------------------------------------
// The keyed state (pg/keyed_table): each table's rows of the batch's keys locked and read with
// one primary-key probe each, the new values computed here, the rows found updated in one
// UPDATE statement and the keys missing inserted in one INSERT statement, as the upserts
// INSERT ... ON CONFLICT DO UPDATE wrote them before.
// ------------------------------------------------------------------------------------------
const KeyedTableSpec kInventoryRatings{"streamrec", "inventory", {{"product_id", TEXTOID}}, {{"rating", FLOAT4OID}}};
const KeyedTableSpec kProductRatings{
    "streamrec", "product_ratings", {{"product_id", TEXTOID}}, {{"ratings", INT8OID}, {"stars", INT8OID}}};
const KeyedTableSpec kStatusWindows{"streamrec",
                                    "ratings_by_club_status",
                                    {{"window_start", TIMESTAMPTZOID}, {"club_status", TEXTOID}},
                                    {{"window_end", TIMESTAMPTZOID}, {"ratings", INT8OID}}};
const KeyedTableSpec kCustomerWindows{
    "streamrec",
    "ratings_per_customer",
    {{"window_start", TIMESTAMPTZOID}, {"customer_id", TEXTOID}},
    {{"window_end", TIMESTAMPTZOID}, {"full_name", TEXTOID}, {"ratings", INT8OID}, {"stars", INT4ARRAYOID}}};

// A stored bigint plus the batch's, as SQL's bigint + bigint (an overflow is 22003).
int64 added(int64 stored, int64 batch) {
  int64 sum = 0;
  if (pg_add_s64_overflow(stored, batch, &sum)) throw Error(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE, "bigint out of range");
  return sum;
}

// Step 3: the products' inventory rows locked first, in byte order (the order every batch and
// item_transactions lock them in), then the products' rows of product_ratings in the same
// order, their sums increased by the batch's (or inserted), and the locked inventory rows'
// rating set to the new average. Only rows this batch locked are updated, so no row lock is
// taken out of order.
void write_product_ratings(const ratings_plan& plan, StepTimer& timer) {
  if (plan.products.empty()) return;
  std::size_t n = plan.products.size();
  std::vector<std::string_view> ids;
  ids.reserve(n);
  for (const product_rating_sum& p : plan.products) ids.push_back(p.product_id);
  std::vector<Datum> keys = text_datums(ids);
  KeyedTable inventory(kInventoryRatings);
  KeyedRows stock = inventory.lock_rows(n, keys.data());
  timer.mark("lock");

  KeyedTable sums(kProductRatings);
  KeyedRows stored = sums.lock_rows(n, keys.data());
  std::vector<uint32_t> updated, rated;
  std::vector<Datum> update_values, insert_keys, insert_values, ratings;
  for (std::size_t k = 0; k < n; k++) {
    const product_rating_sum& p = plan.products[k];
    int64 count = p.ratings, total = p.stars;
    if (stored.found[k]) {  // both columns NOT NULL
      count = added(DatumGetInt64(stored.value(k, 0)), count);
      total = added(DatumGetInt64(stored.value(k, 1)), total);
      updated.push_back(static_cast<uint32_t>(k));
      update_values.push_back(Int64GetDatum(count));
      update_values.push_back(Int64GetDatum(total));
    } else {
      insert_keys.push_back(keys[k]);
      insert_values.push_back(Int64GetDatum(count));
      insert_values.push_back(Int64GetDatum(total));
    }
    if (stock.found[k]) {  // else no inventory row for the product
      rated.push_back(static_cast<uint32_t>(k));
      ratings.push_back(Float4GetDatum(product_rating(count, total)));
    }
  }
  std::unique_ptr<bool[]> no_nulls(new bool[2 * n]());
  sums.update_rows(stored, updated.size(), updated.data(), update_values.data(), no_nulls.get());
  sums.insert_rows(insert_keys.size(), insert_keys.data(), insert_values.data(), no_nulls.get());
  timer.mark("product_ratings");
  inventory.update_rows(stock, rated.size(), rated.data(), ratings.data(), no_nulls.get());
  // The inventory's statement trigger fired above; marked here as well, so the recommenders'
  // inventory cache learns of the change even when ordinary triggers do not fire.
  if (!rated.empty()) note_inventory_change();
}

// A window's end as the upserts computed it: start + make_interval(secs => width_us / 1e6)
// (the width in seconds as a float8: the double nearest width_us / 10^6).
std::vector<Datum> window_ends(const std::vector<Datum>& starts, int64 width_us) {
  std::vector<Datum> ends(starts.size());
  if (starts.empty()) return ends;
  const Datum* in = starts.data();
  Datum* out = ends.data();
  std::size_t n = starts.size();
  double seconds = static_cast<double>(width_us) / 1e6;
  pg_call([in, out, n, seconds] {
    Datum zero = Int32GetDatum(0);
    Datum width = DirectFunctionCall7(make_interval, zero, zero, zero, zero, zero, zero, Float8GetDatum(seconds));
    for (std::size_t i = 0; i < n; i++) out[i] = DirectFunctionCall2(timestamptz_pl_interval, in[i], width);
  });
  return ends;
}

// Step 4's windows, in key order. A row found keeps its window_end; ratings_by_club_status adds
// the batch's count; ratings_per_customer takes the batch's latest name, adds its count and
// appends its stars (array_cat, as stars || excluded.stars).
void write_windows(const RatingsConfig& cfg, const rating_windows& windows) {
  if (!windows.by_status().empty()) {
    std::size_t n = windows.by_status().size();
    std::vector<std::string_view> statuses;
    std::vector<Datum> starts;
    statuses.reserve(n);
    starts.reserve(n);
    for (const auto& [key, count] : windows.by_status()) {
      starts.push_back(TimestampTzGetDatum(key.first));
      statuses.push_back(key.second);
    }
    std::vector<Datum> texts = text_datums(statuses), keys;
    keys.reserve(2 * n);
    for (std::size_t k = 0; k < n; k++) {
      keys.push_back(starts[k]);
      keys.push_back(texts[k]);
    }
    KeyedTable table(kStatusWindows);
    KeyedRows rows = table.lock_rows(n, keys.data());
    std::vector<uint32_t> updated;
    std::vector<Datum> update_values, insert_keys, insert_starts, insert_counts;
    std::size_t k = 0;
    for (const auto& [key, count] : windows.by_status()) {
      if (rows.found[k]) {  // window_end and ratings NOT NULL
        updated.push_back(static_cast<uint32_t>(k));
        update_values.push_back(rows.value(k, 0));
        update_values.push_back(Int64GetDatum(added(DatumGetInt64(rows.value(k, 1)), count)));
      } else {
        insert_keys.push_back(keys[2 * k]);
        insert_keys.push_back(keys[2 * k + 1]);
        insert_starts.push_back(keys[2 * k]);
        insert_counts.push_back(Int64GetDatum(count));
      }
      k++;
    }
    std::vector<Datum> ends = window_ends(insert_starts, cfg.status_window_us), insert_values;
    insert_values.reserve(2 * ends.size());
    for (std::size_t i = 0; i < ends.size(); i++) {
      insert_values.push_back(ends[i]);
      insert_values.push_back(insert_counts[i]);
    }
    std::unique_ptr<bool[]> no_nulls(new bool[2 * n]());
    table.update_rows(rows, updated.size(), updated.data(), update_values.data(), no_nulls.get());
    table.insert_rows(insert_starts.size(), insert_keys.data(), insert_values.data(), no_nulls.get());
  }
  if (!windows.by_customer().empty()) {
    std::size_t n = windows.by_customer().size();
    std::vector<std::string_view> customers, names;
    std::vector<Datum> starts;
    std::vector<int64> counts;
    customers.reserve(n);
    names.reserve(n);
    starts.reserve(n);
    counts.reserve(n);
    for (const auto& [key, w] : windows.by_customer()) {
      starts.push_back(TimestampTzGetDatum(key.first));
      customers.push_back(key.second);
      names.push_back(w.full_name);
      counts.push_back(static_cast<int64>(w.stars.size()));
    }
    std::vector<Datum> texts = text_datums(customers), name_texts = text_datums(names), keys;
    keys.reserve(2 * n);
    for (std::size_t k = 0; k < n; k++) {
      keys.push_back(starts[k]);
      keys.push_back(texts[k]);
    }
    // Each window's stars of the batch as an int4[] (one dimension, from 1), as the slice of the
    // flat array the upsert took.
    std::vector<Datum> stars(n);
    const rating_windows* source = &windows;
    Datum* stars_out = stars.data();
    pg_call([source, stars_out] {
      std::size_t i = 0;
      std::vector<Datum> elements;
      for (const auto& [key, w] : source->by_customer()) {
        elements.resize(w.stars.size());
        for (std::size_t e = 0; e < w.stars.size(); e++) elements[e] = Int32GetDatum(w.stars[e]);
        stars_out[i++] = PointerGetDatum(construct_array(elements.data(), static_cast<int>(elements.size()), INT4OID,
                                                         sizeof(int32), true, TYPALIGN_INT));
      }
    });

    KeyedTable table(kCustomerWindows);
    KeyedRows rows = table.lock_rows(n, keys.data());
    std::vector<uint32_t> updated;
    std::vector<Datum> update_values, insert_keys, insert_starts;
    std::vector<std::size_t> inserted;
    for (std::size_t k = 0; k < n; k++) {
      if (rows.found[k]) {  // window_end, ratings and stars NOT NULL
        updated.push_back(static_cast<uint32_t>(k));
        update_values.push_back(rows.value(k, 0));
        update_values.push_back(name_texts[k]);
        update_values.push_back(Int64GetDatum(added(DatumGetInt64(rows.value(k, 2)), counts[k])));
        update_values.push_back(stars[k]);  // the stored array prepended below
      } else {
        inserted.push_back(k);
        insert_keys.push_back(keys[2 * k]);
        insert_keys.push_back(keys[2 * k + 1]);
        insert_starts.push_back(keys[2 * k]);
      }
    }
    Datum* appended = update_values.data();
    const KeyedRows* found = &rows;
    const uint32_t* which = updated.data();
    std::size_t count = updated.size();
    pg_call([appended, found, which, count] {
      for (std::size_t i = 0; i < count; i++)
        appended[4 * i + 3] = DirectFunctionCall2(array_cat, found->value(which[i], 3), appended[4 * i + 3]);
    });
    std::vector<Datum> ends = window_ends(insert_starts, cfg.customer_window_us), insert_values;
    insert_values.reserve(4 * ends.size());
    for (std::size_t i = 0; i < ends.size(); i++) {
      std::size_t w = inserted[i];
      insert_values.push_back(ends[i]);
      insert_values.push_back(name_texts[w]);
      insert_values.push_back(Int64GetDatum(counts[w]));
      insert_values.push_back(stars[w]);
    }
    std::unique_ptr<bool[]> no_nulls(new bool[4 * n]());
    table.update_rows(rows, updated.size(), updated.data(), update_values.data(), no_nulls.get());
    table.insert_rows(insert_starts.size(), insert_keys.data(), insert_values.data(), no_nulls.get());
  }
}

Datum ratings_trigger(FunctionCallInfo fcinfo) {
  return run_pipeline_trigger(fcinfo, kPipeline, [fcinfo] {
    StepTimer timer;
    RatingsConfig cfg = ratings_config();
    if (!cfg.enabled) return;
    TriggerData* trigger = reinterpret_cast<TriggerData*>(fcinfo->context);
    TransitionRows rows(trigger, kBatchColumns);
    if (rows.size() == 0) return;
    std::vector<rating_row> batch = rows_of(trigger, rows);
    timer.mark("read");

    CustomerStore customers;
    load_customers(rating_customer_keys(batch), customers);
    ratings_plan plan = plan_ratings(batch, customers.customers);
    timer.mark("customers");
    write_results(batch, plan);
    timer.mark("results");
    write_product_ratings(plan, timer);
    timer.mark("inventory");

    PipelineCounts counts;
    counts.events = static_cast<int64>(batch.size());
    counts.skipped = plan.skipped;
    counts.outputs = static_cast<int64>(plan.enriched.size() + plan.unhappy.size());
    if (!plan.enriched.empty()) {
      EventClock clock = lock_event_clock(kPipeline);
      ratings_windowed windowed =
          window_ratings(batch, plan, cfg.status_window_us, cfg.customer_window_us, clock.watermark, clock_limit_now());
      counts.future = windowed.future;
      counts.late = windowed.windows.late();
      timer.mark("windows");
      write_windows(cfg, windowed.windows);
      if (windowed.newest) {
        advance_event_clock(kPipeline, clock, *windowed.newest, cfg.watermark_delay_us, cfg.idle_timeout_us);
        save_event_clock(kPipeline, clock, true);
      }
      timer.mark("upserts");
    }
    count_pipeline(kPipeline, counts);
    timer.report(kPipeline, batch.size());
  });
}

// Ratings stopped for idle_timeout: the watermark moves to the end of the newest status window.
Datum close_idle_rating_windows(FunctionCallInfo) {
  spi_connect();
  RatingsConfig cfg = ratings_config();
  int64 moved = 0;
  if (cfg.enabled)
    moved = close_idle_windows(
        kPipeline, cfg.idle_timeout_us,
        [&cfg](const EventClock& clock) {
          return idle_watermark(clock.watermark, *clock.max_event_time,
                                std::min(cfg.status_window_us, cfg.customer_window_us), clock_limit_now());
        },
        [](std::optional<int64>, int64) { return int64{1}; });
  spi_finish();
  return Int64GetDatum(moved);
}

}  // namespace
}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_ratings_trigger, streamrec::ratings_trigger)
STREAMREC_SQL_FUNCTION(streamrec_close_idle_rating_windows, streamrec::close_idle_rating_windows)
