// The ratings pipeline as a C++ statement-level AFTER
// INSERT trigger on streamrec.ratings.
//
// Per statement (a source batch or a psql INSERT):
//   1. test traffic (channel ILIKE '%test%') is copied to test_ratings and goes nowhere else;
//   2. live ratings of known customers are enriched from streamrec.customers as it is now (so an
//      UPDATE of a customer shows from the next rating on) into ratings_enriched, and those with
//      stars < 3 from platinum customers into unhappy_customers, all in input order;
//   3. live ratings with a product_id add to product_ratings (upsert in product order) and set
//      inventory.rating to the product's average (rows locked in product order);
//   4. the clock row is locked, the enriched ratings are summed per event-time window in memory
//      (core/pipelines/rating_windows; a rating behind a closed window is counted late and left
//      out of it; one beyond the clock limit is counted future and left out of every window), the
//      sums upserted in key order, and the watermark advanced.
// Lock order: product_ratings rows, inventory rows (product order), the clock row, window rows
// (key order). Two feeding workers therefore never wait for each other in a cycle, and none
// waits on item_transactions (which locks inventory rows, then its own tables).
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "core/pipelines/rating_windows.h"

#include "pg/catalog_options.h"
#include "pg/error_boundary.h"
#include "pg/event_clock.h"
#include "pg/pipeline_stats.h"
#include "extension/pipeline_trigger.h"
#include "pg/spi.h"

extern "C" {
#include "catalog/pg_type.h"
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

// Steps 1 and 2 in one statement; returns the enriched ratings (input order) for the windows,
// with the number of live ratings and of unhappy rows in every row.
constexpr const char* kEnrich =
    "WITH n AS (SELECT row_number() OVER () AS i, r.*, coalesce(r.channel ILIKE '%test%', false) AS test"
    "  FROM streamrec_new_rows r),"
    " t AS (INSERT INTO streamrec.test_ratings (rating_id, user_id, product_id, stars, channel, message, rating_time)"
    "  SELECT rating_id, user_id, product_id, stars, channel, message, rating_time FROM n WHERE test ORDER BY i"
    "  RETURNING 1),"
    " e AS (INSERT INTO streamrec.ratings_enriched (rating_id, customer_id, product_id, stars, channel, message,"
    "   rating_time, full_name, club_status, email)"
    "  SELECT n.rating_id, c.customer_id, n.product_id, n.stars, n.channel, n.message, n.rating_time,"
    "   nullif(concat_ws(' ', c.first_name, c.last_name), ''), c.club_status, c.email"
    "  FROM n JOIN streamrec.customers c ON c.customer_id = n.user_id WHERE NOT n.test ORDER BY n.i"
    "  RETURNING *),"
    " u AS (INSERT INTO streamrec.unhappy_customers (rating_id, customer_id, full_name, club_status, email, stars,"
    "   message, channel, rating_time)"
    "  SELECT rating_id, customer_id, full_name, club_status, email, stars, message, channel, rating_time FROM e"
    "  WHERE stars < 3 AND lower(club_status) = 'platinum'"
    "  RETURNING 1)"
    " SELECT e.rating_time, coalesce(e.club_status, 'none'), e.customer_id, e.full_name, e.stars,"
    "  (SELECT count(*) FROM n WHERE NOT n.test), (SELECT count(*) FROM u), (SELECT count(*) FROM t)"
    " FROM e";

// Step 3.
constexpr const char* kProductAverages =
    "WITH s AS (INSERT INTO streamrec.product_ratings AS p (product_id, ratings, stars)"
    "  SELECT product_id, count(*), sum(stars) FROM streamrec_new_rows"
    "  WHERE product_id IS NOT NULL AND NOT coalesce(channel ILIKE '%test%', false)"
    "  GROUP BY product_id ORDER BY product_id COLLATE \"C\""
    "  ON CONFLICT (product_id) DO UPDATE SET ratings = p.ratings + excluded.ratings, stars = p.stars + excluded.stars"
    "  RETURNING p.product_id, p.ratings, p.stars),"
    " l AS (SELECT i.product_id FROM streamrec.inventory i WHERE i.product_id IN (SELECT product_id FROM s)"
    "  ORDER BY i.product_id COLLATE \"C\" FOR UPDATE)"
    " UPDATE streamrec.inventory i SET rating = (s.stars::float8 / s.ratings)::real"
    " FROM s JOIN l ON l.product_id = s.product_id WHERE i.product_id = s.product_id";

KeptPlan upsert_status(
    "INSERT INTO streamrec.ratings_by_club_status AS w (window_start, window_end, club_status, ratings)"
    " SELECT s, s + make_interval(secs => $4 / 1e6), c, n FROM unnest($1::timestamptz[], $2::text[], $3::int8[]) AS "
    "x(s, c, n)"
    " ON CONFLICT (window_start, club_status) DO UPDATE SET ratings = w.ratings + excluded.ratings",
    {TIMESTAMPTZARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8OID});
KeptPlan upsert_customer(
    "INSERT INTO streamrec.ratings_per_customer AS w (window_start, window_end, customer_id, full_name, ratings, stars)"
    " SELECT s, s + make_interval(secs => $5 / 1e6), c, f, cardinality(st::int[]), st::int[]"
    " FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[]) AS x(s, c, f, st)"
    " ON CONFLICT (window_start, customer_id) DO UPDATE SET full_name = excluded.full_name,"
    " ratings = w.ratings + excluded.ratings, stars = w.stars || excluded.stars",
    {TIMESTAMPTZARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8OID});

void write_windows(const RatingsConfig& cfg, const rating_windows& windows) {
  if (!windows.by_status().empty()) {
    std::vector<int64> starts, counts;
    std::vector<std::string_view> statuses;
    for (const auto& [key, n] : windows.by_status()) {
      starts.push_back(key.first);
      statuses.push_back(key.second);
      counts.push_back(n);
    }
    upsert_status.run(
        {timestamptz_array(starts), text_array(statuses), int8_array(counts), Int64GetDatum(cfg.status_window_us)},
        false);
  }
  if (!windows.by_customer().empty()) {
    std::vector<int64> starts;
    std::vector<std::string_view> customers, names;
    std::vector<std::string> stars;
    for (const auto& [key, w] : windows.by_customer()) {
      starts.push_back(key.first);
      customers.push_back(key.second);
      names.push_back(w.full_name);
      std::string list = "{";
      for (std::size_t i = 0; i < w.stars.size(); i++) list += (i ? "," : "") + std::to_string(w.stars[i]);
      stars.push_back(list + "}");
    }
    upsert_customer.run({timestamptz_array(starts), text_array(customers), text_array(names), text_array(stars),
                         Int64GetDatum(cfg.customer_window_us)},
                        false);
  }
}

Datum ratings_trigger(FunctionCallInfo fcinfo) {
  return run_pipeline_trigger(fcinfo, kPipeline, [] {
    RatingsConfig cfg = ratings_config();
    if (!cfg.enabled) return;
    PipelineCounts counts;
    uint64 total = run_sql("SELECT count(*) FROM streamrec_new_rows", true);
    if (total > 0) counts.events = DatumGetInt64(fetch_result({false})[0].value);
    if (counts.events == 0) return;

    uint64 enriched = run_sql(kEnrich, false);
    std::vector<Cell> rows = fetch_result({false, true, true, true, false, false, false, false});
    struct Enriched {
      int64 time;
      std::string status, customer, name;
      int32 stars;
    };
    std::vector<Enriched> batch(enriched);
    for (uint64 r = 0; r < enriched; r++) {
      const Cell* row = &rows[r * 8];
      batch[r] = {DatumGetTimestampTz(row[0].value), row[1].str(), row[2].str(), row[3].null ? "" : row[3].str(),
                  DatumGetInt32(row[4].value)};
      if (r == 0) {
        int64 live = DatumGetInt64(row[5].value);
        counts.skipped = live - static_cast<int64>(enriched);  // live ratings of unknown customers
        counts.outputs += DatumGetInt64(row[6].value);         // unhappy customers
      }
    }
    counts.outputs += static_cast<int64>(enriched);
    if (enriched == 0) {  // no enriched row to carry the live count: count it apart
      uint64 live =
          run_sql("SELECT count(*) FROM streamrec_new_rows WHERE NOT coalesce(channel ILIKE '%test%', false)", true);
      if (live > 0) counts.skipped = DatumGetInt64(fetch_result({false})[0].value);
    }

    run_sql(kProductAverages, false);

    if (!batch.empty()) {
      EventClock clock = lock_event_clock(kPipeline);
      rating_windows windows(cfg.status_window_us, cfg.customer_window_us, clock.watermark);
      int64 limit = clock_limit_now();
      std::optional<int64> newest;
      for (const Enriched& e : batch) {
        // Beyond the clock limit: enriched (and averaged) like any rating, but left out of the
        // windows and moving no clock.
        if (is_future(e.time, limit)) {
          counts.future++;
          continue;
        }
        windows.add(e.time, e.status, e.customer, e.name, e.stars);
        newest = std::max(newest.value_or(e.time), e.time);
      }
      counts.late = windows.late();
      write_windows(cfg, windows);
      if (newest) {
        advance_event_clock(kPipeline, clock, *newest, cfg.watermark_delay_us, cfg.idle_timeout_us);
        save_event_clock(kPipeline, clock, true);
      }
    }
    count_pipeline(kPipeline, counts);
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
