// The attribution pipeline as C++ statement-level AFTER
// INSERT triggers on streamrec.checkouts and streamrec.clicks.
//
// A checkout (u, p, t) is attributed to the earliest click by u on p in [t - lookback, t]
// (equal times: the smaller click_id; a NULL click_id last), enriched with u's name, and
// upserted into attributed_checkouts in checkout_id order. So that arrival order does not
// matter, a click batch re-examines the attributed checkouts of its (user, product) pairs with
// checkout time in [click time, click time + lookback] and corrects those it now wins. Every
// first attribution and every correction is appended to attribution_log (the sink's relation).
//
// A checkout batch and a click batch for the same user must not both miss each other's
// uncommitted rows. Both triggers therefore first take transaction-level locks on the
// buckets (hashtext(user_id) & 255) of their users, in bucket order, and only then read: each
// statement after the lock takes a fresh snapshot (READ COMMITTED), so whichever batch comes
// second sees the first one's rows. At most 256 locks per transaction, so the lock table never
// overflows however big a batch is. The locks are the extension's own (streamrec._xact_lock):
// a role holding SQL advisory locks cannot stall the triggers. Lock order everywhere: buckets,
// then attributed_checkouts rows in checkout_id order.
#include <string>

#include "pg/catalog_options.h"
#include "pg/error_boundary.h"
#include "pg/event_clock.h"
#include "pg/pipeline_stats.h"
#include "extension/dispatch.h"
#include "extension/pipeline_trigger.h"
#include "pg/spi.h"

namespace streamrec {
namespace {

constexpr const char* kPipeline = "attribution";

struct AttributionConfig {
  bool enabled = false;
  int64 lookback_us = 3600 * INT64CONST(1000000);
};

PipelineOptions options(kPipeline, {{"lookback", OptionKind::interval_us}});

AttributionConfig attribution_config() {
  AttributionConfig cfg;
  std::vector<Cell> row = options.read();
  if (row.empty()) return cfg;
  cfg.enabled = DatumGetBool(row[0].value);
  cfg.lookback_us = checked_option_us(kPipeline, "lookback", DatumGetInt64(row[1].value));
  return cfg;
}

// The user buckets of the statement's rows, locked in bucket order (the ordered subquery feeds
// the aggregate row by row).
void lock_user_buckets() {
  run_sql(
      "SELECT count(streamrec._xact_lock(hashtext('streamrec.attribution'), b))"
      " FROM (SELECT DISTINCT hashtext(user_id) & 255 AS b FROM streamrec_new_rows ORDER BY 1 OFFSET 0) s",
      false);
}

std::string lookback_literal(const AttributionConfig& cfg) {
  return "'" + std::to_string(cfg.lookback_us) + " microseconds'::interval";
}

// Checkouts: attribute, enrich, upsert in key order, log. The first click is one probe of
// clicks_attribution_idx per checkout (ordered by event_time, click_id; LIMIT 1).
void checkouts_batch() {
  {
    AttributionConfig cfg = attribution_config();
    if (!cfg.enabled) return;
    lock_user_buckets();
    std::string sql =
        "WITH a AS ("
        " INSERT INTO streamrec.attributed_checkouts AS a"
        "  (checkout_id, user_id, user_name, product_id, checkout_time, click_id, click_time)"
        " SELECT n.checkout_id, n.user_id, u.name, n.product_id, n.checkout_time, k.click_id, k.event_time"
        " FROM streamrec_new_rows n"
        " LEFT JOIN streamrec.users u ON u.user_id = n.user_id"
        " LEFT JOIN LATERAL (SELECT c.click_id, c.event_time FROM streamrec.clicks c"
        "   WHERE c.user_id = n.user_id AND c.product_id = n.product_id"
        "     AND c.event_time >= n.checkout_time - " +
        lookback_literal(cfg) +
        "     AND c.event_time <= n.checkout_time"
        "   ORDER BY c.event_time, c.click_id LIMIT 1) k ON true"
        " ORDER BY n.checkout_id COLLATE \"C\""
        " ON CONFLICT (checkout_id) DO UPDATE SET user_id = excluded.user_id, user_name = excluded.user_name,"
        "  product_id = excluded.product_id, checkout_time = excluded.checkout_time, click_id = excluded.click_id,"
        "  click_time = excluded.click_time, updated_at = now()"
        " RETURNING a.*)"
        " INSERT INTO streamrec.attribution_log"
        "  (checkout_id, user_id, user_name, product_id, checkout_time, click_id, click_time)"
        " SELECT checkout_id, user_id, user_name, product_id, checkout_time, click_id, click_time FROM a"
        " ORDER BY checkout_id COLLATE \"C\"";
    PipelineCounts counts;
    counts.outputs = static_cast<int64>(run_sql(sql.c_str(), false));
    counts.events = counts.outputs;
    // A checkout beyond the clock limit is attributed like any other (retention's clock, the
    // newest checkout time, ignores it): counted as future.
    run_sql("SELECT count(*) FROM streamrec_new_rows WHERE checkout_time > streamrec._clock_limit()", true);
    counts.future = DatumGetInt64(fetch_result({false})[0].value);
    count_pipeline(kPipeline, counts);
  }
}

Datum attribution_checkouts_trigger(FunctionCallInfo fcinfo) {
  return run_pipeline_trigger(fcinfo, kPipeline, [] { checkouts_batch(); });
}

// Clicks: per attributed checkout of the same user and product with checkout time in
// [click time, + lookback], the batch's best click; where it beats the stored one, the row is
// locked (checkout_id order), corrected and logged.
void clicks_batch() {
  {
    AttributionConfig cfg = attribution_config();
    if (!cfg.enabled) return;
    lock_user_buckets();
    std::string sql =
        "WITH best AS ("
        " SELECT DISTINCT ON (a.checkout_id) a.checkout_id, n.click_id, n.event_time"
        " FROM streamrec_new_rows n JOIN streamrec.attributed_checkouts a"
        "  ON a.user_id = n.user_id AND a.product_id = n.product_id"
        "  AND a.checkout_time >= n.event_time AND a.checkout_time <= n.event_time + " +
        lookback_literal(cfg) +
        " WHERE n.product_id IS NOT NULL"
        " ORDER BY a.checkout_id, n.event_time, n.click_id),"
        " better AS ("
        " SELECT a.checkout_id, b.click_id, b.event_time FROM best b"
        " JOIN streamrec.attributed_checkouts a ON a.checkout_id = b.checkout_id"
        " WHERE a.click_time IS NULL OR b.event_time < a.click_time"
        "  OR (b.event_time = a.click_time AND b.click_id IS NOT NULL AND (a.click_id IS NULL OR b.click_id < "
        "a.click_id))"
        " ORDER BY a.checkout_id COLLATE \"C\" FOR UPDATE OF a),"
        " fixed AS ("
        " UPDATE streamrec.attributed_checkouts a SET click_id = b.click_id, click_time = b.event_time, updated_at = "
        "now()"
        " FROM better b WHERE a.checkout_id = b.checkout_id RETURNING a.*)"
        " INSERT INTO streamrec.attribution_log"
        "  (checkout_id, user_id, user_name, product_id, checkout_time, click_id, click_time)"
        " SELECT checkout_id, user_id, user_name, product_id, checkout_time, click_id, click_time FROM fixed"
        " ORDER BY checkout_id COLLATE \"C\"";
    PipelineCounts counts;
    counts.outputs = static_cast<int64>(run_sql(sql.c_str(), false));
    run_sql("SELECT count(*), count(*) FILTER (WHERE event_time > streamrec._clock_limit()) FROM streamrec_new_rows",
            true);
    std::vector<Cell> row = fetch_result({false, false});
    counts.events = DatumGetInt64(row[0].value);
    counts.future = DatumGetInt64(row[1].value);
    count_pipeline(kPipeline, counts);
  }
}

Datum attribution_clicks_trigger(FunctionCallInfo fcinfo) {
  return run_pipeline_trigger(fcinfo, kPipeline, [] { clicks_batch(); });
}

}  // namespace

// The dispatcher's handlers: the statements read the batch as streamrec_new_rows.
void attribution_checkouts(const TransitionRows&) { checkouts_batch(); }
void attribution_clicks(const TransitionRows&) { clicks_batch(); }

}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_attribution_checkouts_trigger, streamrec::attribution_checkouts_trigger)
STREAMREC_SQL_FUNCTION(streamrec_attribution_clicks_trigger, streamrec::attribution_clicks_trigger)
