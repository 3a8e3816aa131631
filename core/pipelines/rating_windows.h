// ratings without PostgreSQL: the event-time tumbling windows of
// enriched ratings, per club status (1 minute) and per customer (15 minutes, with the list of
// stars), and the watermark that closes them.
//
// The trigger locks the pipeline's clock, feeds the batch's enriched ratings in input order
// through rating_windows (which drops a rating from each window already closed by the
// watermark and counts it late), upserts the sums in key order and stores the new clock.
#pragma once

#include "core/postgres_free.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/event_time.h"

namespace streamrec {

class rating_windows {
 public:
  // Widths in microseconds; watermark: the clock before this batch (nullopt: nothing closed).
  rating_windows(std::int64_t status_width_us, std::int64_t customer_width_us, std::optional<std::int64_t> watermark)
      : status_width_(status_width_us), customer_width_(customer_width_us), watermark_(watermark) {}

  // Adds one enriched rating; returns false when it was late for at least one window (then it
  // is left out of that window, whose result is final).
  bool add(std::int64_t event_time_us, std::string_view club_status, std::string_view customer_id,
           std::string_view full_name, std::int32_t stars);

  struct customer_window {
    std::string full_name;            // the latest name seen in the batch
    std::vector<std::int32_t> stars;  // in input order
  };
  using key = std::pair<std::int64_t, std::string>;  // (window start, club status | customer id)
  // Ordered by key: the upserts' lock order.
  const std::map<key, std::int64_t>& by_status() const { return by_status_; }
  const std::map<key, customer_window>& by_customer() const { return by_customer_; }
  std::int64_t late() const { return late_; }

  // A closed window: its end is at or before the watermark.
  static bool closed(std::int64_t start, std::int64_t width, std::optional<std::int64_t> watermark) {
    return watermark && window_end(start, width) <= *watermark;
  }

 private:
  std::int64_t status_width_;
  std::int64_t customer_width_;
  std::optional<std::int64_t> watermark_;
  std::map<key, std::int64_t> by_status_;
  std::map<key, customer_window> by_customer_;
  std::int64_t late_ = 0;
};

}  // namespace streamrec
