#include "core/pipelines/rating_windows.h"

#include <algorithm>

namespace streamrec {

bool rating_windows::add(std::int64_t event_time_us, std::string_view club_status, std::string_view customer_id,
                         std::string_view full_name, std::int32_t stars) {
  bool on_time = true;
  std::int64_t status_start = window_start(event_time_us, status_width_);
  if (closed(status_start, status_width_, watermark_)) {
    on_time = false;
  } else {
    by_status_[key(status_start, std::string(club_status))]++;
  }
  std::int64_t customer_start = window_start(event_time_us, customer_width_);
  if (closed(customer_start, customer_width_, watermark_)) {
    on_time = false;
  } else {
    customer_window& w = by_customer_[key(customer_start, std::string(customer_id))];
    w.full_name.assign(full_name);
    w.stars.push_back(stars);
  }
  if (!on_time) late_++;
  return on_time;
}

}  // namespace streamrec
