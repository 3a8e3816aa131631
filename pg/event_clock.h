// Event-time clocks of the windowed pipelines (item_transactions, ratings, similar_products with
// windowed emit): one locked row per pipeline in streamrec.pipeline_clock holding the watermark,
// the newest event time and the last arrival, and one row per writer in
// streamrec.pipeline_writers holding that writer's newest event time.
//
// A writer is the source worker storing the batch (its source's name), or '' for any other
// session. The watermark is the oldest "newest event time" among the writers that delivered
// within idle_timeout, minus watermark_delay, and never moves back: two source workers of one
// consumer group, each ahead or behind the other, close a window only when both are past it (a
// window does not close on the faster worker's clock and make the slower one's events late).
//
// No clock moves past the clock limit (the wall clock plus streamrec.max_clock_skew): the
// pipelines leave future events out of what they pass here, and the clock is clamped anyway.
#pragma once

#include <optional>
#include <string>

extern "C" {
#include "postgres.h"
}

namespace streamrec {

struct EventClock {
  std::optional<int64> watermark;
  std::optional<int64> max_event_time;
};

// The latest time a clock may reach now: the wall clock plus streamrec.max_clock_skew. SQL
// code reads the same limit from streamrec._clock_limit().
int64 clock_limit_now();

// The source worker tells whose batches this backend stores (once, at start).
void set_event_writer(const std::string& source_name);

// The pipeline's clock row, locked until the transaction ends (created on first use). Take it
// after every other row lock of the batch.
EventClock lock_event_clock(const char* pipeline);

// The clock row if no event arrived for idle_us and no batch holds it, locked; nothing otherwise.
std::optional<EventClock> lock_idle_event_clock(const char* pipeline, int64 idle_us);

// With the clock locked: records this writer's newest event time (batch_max, clamped to the
// clock limit) and moves the clock (max_event_time, watermark) as described above. Returns the watermark before the
// move.
std::optional<int64> advance_event_clock(const char* pipeline, EventClock& clock, int64 batch_max, int64 delay_us,
                                         int64 idle_us);

// Stores the clock; arrival: this is a batch (sets last_arrival), not an idle close.
void save_event_clock(const char* pipeline, const EventClock& clock, bool arrival);

// The one idle-window closer of the windowed pipelines (the launcher calls them through
// streamrec._pipeline_tick()). When no event arrived for idle_us and no batch holds the
// pipeline's clock, next_watermark(clock) says where the watermark moves (nullopt: it stays);
// the clock is saved, then close(from, to) closes the windows between the old watermark (from,
// nullopt when there was none) and the new one and returns how many outputs it wrote. Returns 0
// when the watermark did not move. SPI must be connected.
template <typename NextWatermark, typename Close>
int64 close_idle_windows(const char* pipeline, int64 idle_us, NextWatermark&& next_watermark, Close&& close) {
  std::optional<EventClock> clock = lock_idle_event_clock(pipeline, idle_us);
  if (!clock) return 0;
  std::optional<int64> to = next_watermark(*clock);
  if (!to) return 0;
  std::optional<int64> from = clock->watermark;
  clock->watermark = to;
  save_event_clock(pipeline, *clock, false);
  return close(from, *to);
}

}  // namespace streamrec
