#include "core/event_time.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace streamrec {
namespace {

constexpr std::int64_t kSecond = 1000000;
constexpr std::int64_t kHour = 3600 * kSecond;
// 2024-06-28 13:00:00 UTC on PostgreSQL's epoch (2000-01-01), and 9999-12-31 on the same.
constexpr std::int64_t kNow = INT64_C(772894800) * kSecond;
constexpr std::int64_t kYear9999 = INT64_C(252455529600) * kSecond;

TEST(ClockLimit, IsTheWallClockPlusTheSkewAndSaturates) {
  EXPECT_EQ(clock_limit(kNow, kHour), kNow + kHour);
  EXPECT_EQ(clock_limit(kNow, 0), kNow);
  EXPECT_EQ(clock_limit(kNow, -kHour), kNow);  // a negative skew counts as none
  EXPECT_EQ(clock_limit(INT64_MAX - 5, kHour), INT64_MAX);
}

TEST(ClockLimit, AnEventPastTheLimitIsFuture) {
  std::int64_t limit = clock_limit(kNow, kHour);
  EXPECT_FALSE(is_future(kNow, limit));
  EXPECT_FALSE(is_future(limit, limit));
  EXPECT_TRUE(is_future(limit + 1, limit));
  EXPECT_TRUE(is_future(kYear9999, limit));
  EXPECT_TRUE(is_future(INT64_MAX, limit));  // 'infinity'
}

TEST(ClockLimit, TheWatermarkNeverPassesTheLimit) {
  std::int64_t limit = clock_limit(kNow, kHour);
  // The 9999-12-31 event: the watermark stops at the limit minus the delay, not in year 9998.
  EXPECT_EQ(advance_watermark(kNow - kSecond, kYear9999, kSecond, limit), limit - kSecond);
  EXPECT_EQ(advance_watermark(std::nullopt, INT64_MAX, 0, limit), limit);
  // Events before the limit move it as always, and it never moves back.
  EXPECT_EQ(advance_watermark(kNow - 10 * kSecond, kNow, kSecond, limit), kNow - kSecond);
  EXPECT_EQ(advance_watermark(kNow + 5 * kSecond, kNow, kSecond, limit), kNow + 5 * kSecond);
  // A huge delay saturates instead of overflowing.
  EXPECT_EQ(advance_watermark(std::nullopt, INT64_MIN + 5, kHour, limit), INT64_MIN);
}

TEST(ClockLimit, TheIdleWatermarkStopsAtTheLimit) {
  // Newest event 30 minutes before the limit in a window of 1 day: the window's end is past
  // the limit, so the idle close moves the watermark to the limit only.
  std::int64_t limit = clock_limit(kNow, kHour);
  std::int64_t day = 24 * kHour;
  EXPECT_EQ(idle_watermark(std::nullopt, limit - kHour / 2, day, limit), limit);
  EXPECT_EQ(idle_watermark(limit, limit - kHour / 2, day, limit), std::nullopt);
  // Within the limit, the end of the newest window, as before.
  EXPECT_EQ(idle_watermark(std::nullopt, kNow + 1, kHour, limit), kNow + kHour);
}

TEST(Windows, ZeroOrNegativeWidthThrowsInsteadOfDividingByZero) {
  EXPECT_THROW(window_start(kNow, 0), window_error);
  EXPECT_THROW(window_start(kNow, -1), window_error);
  EXPECT_THROW(window_end(kNow, 0), window_error);
  try {
    window_start(kNow, 0);
  } catch (const window_error& e) {
    EXPECT_EQ(e.what_kind(), window_error::kind::bad_width);
  }
  EXPECT_THROW(idle_watermark(std::nullopt, kNow, 0, INT64_MAX), window_error);
}

TEST(Windows, OverflowAtTheEndsOfTheRangeThrows) {
  // '-infinity' in a window of one hour: the window's start is below INT64_MIN.
  try {
    window_start(INT64_MIN, kHour);
    ADD_FAILURE() << "no throw";
  } catch (const window_error& e) {
    EXPECT_EQ(e.what_kind(), window_error::kind::out_of_range);
  }
  EXPECT_THROW(window_end(window_start(INT64_MAX, kHour), kHour), window_error);
  EXPECT_EQ(window_start(INT64_MIN, 1), INT64_MIN);
  EXPECT_EQ(window_start(INT64_MAX, 1), INT64_MAX);
}

}  // namespace
}  // namespace streamrec
