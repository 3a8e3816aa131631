#include "core/event_time.h"

#include <algorithm>
#include <cstdint>

namespace streamrec {

std::int64_t advance_watermark(std::optional<std::int64_t> watermark, std::int64_t max_event_time,
                               std::int64_t delay_us, std::int64_t limit) {
  std::int64_t candidate = 0;
  if (__builtin_sub_overflow(std::min(max_event_time, limit), delay_us < 0 ? 0 : delay_us, &candidate))
    candidate = INT64_MIN;
  return watermark ? std::max(*watermark, candidate) : candidate;
}

std::optional<std::int64_t> idle_watermark(std::optional<std::int64_t> watermark, std::int64_t max_event_time,
                                           std::int64_t smallest_width_us, std::int64_t limit) {
  std::int64_t end = std::min(window_end(window_start(max_event_time, smallest_width_us), smallest_width_us), limit);
  if (watermark && *watermark >= end) return std::nullopt;
  return end;
}

}  // namespace streamrec
