#include "core/event_time.h"

#include "pg/event_clock.h"

#include <algorithm>
#include <vector>

#include "pg/error_boundary.h"
#include "pg/settings.h"
#include "pg/spi.h"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

namespace streamrec {
namespace {

std::string& event_writer() {
  static std::string writer;  // '' : not a source worker
  return writer;
}

// Locked as an UPDATE of its columns locks it (the batch then updates it once); created the
// first time (a racing creator is waited for by ON CONFLICT).
KeptPlan lock_clock(
    "SELECT watermark, max_event_time FROM streamrec.pipeline_clock WHERE pipeline = $1 FOR NO KEY UPDATE", {TEXTOID});
KeptPlan create_clock("INSERT INTO streamrec.pipeline_clock (pipeline) VALUES ($1) ON CONFLICT (pipeline) DO NOTHING",
                      {TEXTOID});
KeptPlan lock_idle_clock(
    "SELECT watermark, max_event_time FROM streamrec.pipeline_clock WHERE pipeline = $1"
    " AND max_event_time IS NOT NULL AND last_arrival < clock_timestamp() - make_interval(secs => $2 / 1e6)"
    " FOR UPDATE SKIP LOCKED",
    {TEXTOID, INT8OID});
// This writer's newest event time, then the oldest newest among the writers heard from within
// the idle timeout (this one always counts).
KeptPlan record_writer(
    "WITH w AS (INSERT INTO streamrec.pipeline_writers AS w (pipeline, writer, max_event_time, last_arrival)"
    " VALUES ($1, $2, $3, clock_timestamp()) ON CONFLICT (pipeline, writer) DO UPDATE"
    " SET max_event_time = greatest(w.max_event_time, excluded.max_event_time), last_arrival = excluded.last_arrival"
    " RETURNING w.max_event_time)"
    " SELECT least((SELECT max_event_time FROM w), (SELECT min(o.max_event_time) FROM streamrec.pipeline_writers o"
    " WHERE o.pipeline = $1 AND o.writer <> $2 AND o.last_arrival >= clock_timestamp() - make_interval(secs => $4 / "
    "1e6)))",
    {TEXTOID, TEXTOID, TIMESTAMPTZOID, INT8OID});
KeptPlan set_clock(
    "UPDATE streamrec.pipeline_clock SET watermark = $2, max_event_time = $3,"
    " last_arrival = CASE WHEN $4 THEN clock_timestamp() ELSE last_arrival END WHERE pipeline = $1",
    {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, BOOLOID});

EventClock clock_from(const std::vector<Cell>& row) {
  EventClock c;
  if (!row[0].null) c.watermark = DatumGetTimestampTz(row[0].value);
  if (!row[1].null) c.max_event_time = DatumGetTimestampTz(row[1].value);
  return c;
}

}  // namespace

int64 clock_limit_now() {
  int64 now = pg_call([] { return GetCurrentTimestamp(); });
  return clock_limit(now, static_cast<int64>(streamrec_max_clock_skew_s) * USECS_PER_SEC);
}

void set_event_writer(const std::string& source_name) { event_writer() = source_name; }

EventClock lock_event_clock(const char* pipeline) {
  Datum name = text_datum(pipeline);
  if (lock_clock.run({name}, false) == 0) {
    create_clock.run({name}, false);
    if (lock_clock.run({name}, false) == 0)
      throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, std::string("the clock of ") + pipeline + " vanished", "",
                  "Something deleted its streamrec.pipeline_clock row while a batch created it; the batch is retried.");
  }
  return clock_from(fetch_result({false, false}));
}

std::optional<EventClock> lock_idle_event_clock(const char* pipeline, int64 idle_us) {
  if (lock_idle_clock.run({text_datum(pipeline), Int64GetDatum(idle_us)}, false) == 0) return std::nullopt;
  return clock_from(fetch_result({false, false}));
}

std::optional<int64> advance_event_clock(const char* pipeline, EventClock& clock, int64 batch_max, int64 delay_us,
                                         int64 idle_us) {
  std::optional<int64> before = clock.watermark;
  int64 limit = clock_limit_now();
  batch_max = std::min(batch_max, limit);
  clock.max_event_time = std::max(clock.max_event_time.value_or(batch_max), batch_max);
  record_writer.run(
      {text_datum(pipeline), text_datum(event_writer()), TimestampTzGetDatum(batch_max), Int64GetDatum(idle_us)},
      false);
  int64 slowest = DatumGetTimestampTz(fetch_result({false})[0].value);
  clock.watermark = advance_watermark(clock.watermark, slowest, delay_us, limit);
  return before;
}

void save_event_clock(const char* pipeline, const EventClock& clock, bool arrival) {
  set_clock.run({text_datum(pipeline), TimestampTzGetDatum(clock.watermark.value_or(0)),
                 TimestampTzGetDatum(clock.max_event_time.value_or(0)), BoolGetDatum(arrival)},
                false, {false, !clock.watermark.has_value(), !clock.max_event_time.has_value(), false});
}

namespace {
Datum sql_clock_limit(FunctionCallInfo) { return TimestampTzGetDatum(clock_limit_now()); }
}  // namespace

}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_clock_limit, streamrec::sql_clock_limit)
