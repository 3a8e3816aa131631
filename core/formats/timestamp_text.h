// Text forms of UTC timestamps held as microseconds since the Unix epoch (PostgreSQL's own
// resolution, so a timestamptz converts without rounding).
//
// Formatting is hand-rolled instead of strftime/gmtime_r because encoders call it once per row
// on the hot path; these helpers take tens of nanoseconds and never touch the process locale or
// the TZ database.
#pragma once

#include "core/postgres_free.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace streamrec {

// How many fractional digits a formatted timestamp keeps. Extra precision is truncated toward
// the earlier instant (floor), never rounded, so a formatted time never lies in the future of
// the event.
enum class time_precision { seconds, millis, micros };

// Appends "YYYY-MM-DD HH:MM:SS" (plus ".fff"/".ffffff" when asked) in UTC: PostgreSQL's own
// timestamp text, which COPY reads back unchanged and which the Flink recommender we replace emits.
void append_sql_timestamp(std::string& out, int64_t epoch_us, time_precision precision = time_precision::seconds);

// Appends ISO 8601 / RFC 3339 "YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z" in UTC, the form JSON
// producers and consumers expect. Defaults to milliseconds because that is what Kafka message
// timestamps and Avro timestamp-millis carry.
void append_iso8601(std::string& out, int64_t epoch_us, time_precision precision = time_precision::millis);

std::string format_sql_timestamp(int64_t epoch_us, time_precision precision = time_precision::seconds);
std::string format_iso8601(int64_t epoch_us, time_precision precision = time_precision::millis);

// Formats a stream of timestamps that mostly share their second (events in event-time order)
// by reusing the previous "YYYY-MM-DD HH:MM:SS" text: the calendar math runs once per second of
// data instead of once per row.
class timestamp_formatter {
 public:
  void append_sql(std::string& out, int64_t epoch_us, time_precision precision = time_precision::seconds);
  void append_iso(std::string& out, int64_t epoch_us, time_precision precision = time_precision::millis);

 private:
  // Returns the sub-second microseconds after appending the cached or fresh date-time.
  int64_t append_date_time(std::string& out, int64_t epoch_us, char separator);

  int64_t cached_second_ = INT64_MIN;
  std::string cached_text_;
};

// Parses "YYYY-MM-DD[( |T)HH:MM[:SS[.fraction]]][Z|+HH[:MM]|-HH[:MM]]" into epoch microseconds.
// A missing zone means UTC. Fractions beyond microseconds are truncated. Returns nullopt for
// anything else (including out-of-range fields such as month 13 or 25:00), so callers can
// produce their own error message naming the option that was wrong.
std::optional<int64_t> parse_iso8601(std::string_view text);

// Days since 1970-01-01 for a proleptic Gregorian date, and back. Exposed for window math and
// tests; valid for every int32 year.
int64_t days_from_civil(int64_t year, unsigned month, unsigned day);
void civil_from_days(int64_t days, int64_t& year, unsigned& month, unsigned& day);

}  // namespace streamrec
