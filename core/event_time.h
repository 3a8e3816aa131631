// Event-time arithmetic shared by every windowed pipeline, without PostgreSQL: tumbling
// windows, watermarks, and the limit no clock may pass.
//
// Times are microseconds on PostgreSQL's timestamp epoch. Window arithmetic is checked: a width
// of zero or less, or a time so near the ends of the range that a window bound would overflow,
// throws window_error (the error boundary reports it as an ERROR with a SQLSTATE) instead of
// dividing by zero or overflowing, which the server would see as a floating-point exception.
//
// The clock limit: an event time later than the wall clock plus the allowed skew is a "future"
// event. It is stored and counted, but no clock (watermark, newest event time, retention's
// "newest row") ever moves past the limit, so one wild timestamp cannot close every window at
// once or make retention delete the history behind it.
#pragma once

#include "core/postgres_free.h"

#include <cstdint>
#include <optional>
#include <stdexcept>

namespace streamrec {

class window_error : public std::domain_error {
 public:
  enum class kind { bad_width, out_of_range };
  window_error(kind k, const char* message) : std::domain_error(message), kind_(k) {}
  kind what_kind() const noexcept { return kind_; }

 private:
  kind kind_;
};

// The start of the tumbling window of `width` microseconds holding time `t` (floor division,
// so times before the epoch land in the right window too).
inline std::int64_t window_start(std::int64_t t, std::int64_t width) {
  if (width <= 0) throw window_error(window_error::kind::bad_width, "a window must be at least 1 microsecond wide");
  std::int64_t q = t / width;  // width >= 1: neither a division by zero nor INT64_MIN / -1
  if (t % width != 0 && t < 0) q -= 1;
  std::int64_t start = 0;
  if (__builtin_mul_overflow(q, width, &start))
    throw window_error(window_error::kind::out_of_range, "event time out of range for its window");
  return start;
}

// The end of the window starting at `start` (checked like window_start).
inline std::int64_t window_end(std::int64_t start, std::int64_t width) {
  if (width <= 0) throw window_error(window_error::kind::bad_width, "a window must be at least 1 microsecond wide");
  std::int64_t end = 0;
  if (__builtin_add_overflow(start, width, &end))
    throw window_error(window_error::kind::out_of_range, "event time out of range for its window");
  return end;
}

// The latest time any clock may reach: now plus the allowed skew (saturating).
inline std::int64_t clock_limit(std::int64_t now_us, std::int64_t max_skew_us) {
  std::int64_t limit = 0;
  if (__builtin_add_overflow(now_us, max_skew_us < 0 ? 0 : max_skew_us, &limit)) return INT64_MAX;
  return limit;
}

// An event later than the limit: stored and counted as future, moving no clock.
inline bool is_future(std::int64_t event_time_us, std::int64_t limit) { return event_time_us > limit; }

// The watermark after events up to max_event_time: max event time (never past the limit) minus
// the delay, never moving backwards.
std::int64_t advance_watermark(std::optional<std::int64_t> watermark, std::int64_t max_event_time,
                               std::int64_t delay_us, std::int64_t limit);

// A stream that went quiet for the idle timeout: the watermark moves to the end of the window
// (of the smaller width) holding the newest event, but not past the limit, so every window but
// a longer one still running closes; nullopt when that closes nothing new.
std::optional<std::int64_t> idle_watermark(std::optional<std::int64_t> watermark, std::int64_t max_event_time,
                                           std::int64_t smallest_width_us, std::int64_t limit);

}  // namespace streamrec
