#include "core/pipelines/rating_windows.h"

#include <gtest/gtest.h>

namespace streamrec {
namespace {

constexpr std::int64_t kSecond = 1000000;
constexpr std::int64_t kMinute = 60 * kSecond;

TEST(RatingWindows, CountsPerStatusAndListsStarsPerCustomerInInputOrder) {
  rating_windows w(kMinute, 15 * kMinute, std::nullopt);
  EXPECT_TRUE(w.add(10 * kSecond, "platinum", "2", "Ann Lee", 1));
  EXPECT_TRUE(w.add(70 * kSecond, "gold", "3", "Bo Kim", 4));
  EXPECT_TRUE(w.add(20 * kSecond, "platinum", "2", "Ann Li", 5));
  EXPECT_TRUE(w.add(16 * kMinute, "platinum", "2", "Ann Li", 3));
  ASSERT_EQ(w.by_status().size(), 3u);
  EXPECT_EQ(w.by_status().at({0, "platinum"}), 2);
  EXPECT_EQ(w.by_status().at({kMinute, "gold"}), 1);
  EXPECT_EQ(w.by_status().at({16 * kMinute, "platinum"}), 1);
  const auto& first = w.by_customer().at({0, "2"});
  EXPECT_EQ(first.stars, (std::vector<std::int32_t>{1, 5}));
  EXPECT_EQ(first.full_name, "Ann Li");  // the latest name wins
  EXPECT_EQ(w.by_customer().at({15 * kMinute, "2"}).stars, std::vector<std::int32_t>{3});
  EXPECT_EQ(w.late(), 0);
  // Key order: window first, then status.
  EXPECT_EQ(w.by_status().begin()->first, (rating_windows::key{0, "platinum"}));
}

TEST(RatingWindows, LateRatingsLeaveOnlyTheClosedWindowsAndAreCounted) {
  // Watermark 13:05:30 (relative: 5.5 minutes): the 1-minute windows up to 5:00-6:00 exclusive
  // are closed, the 15-minute window 0:00-15:00 is still open.
  rating_windows w(kMinute, 15 * kMinute, 5 * kMinute + 30 * kSecond);
  EXPECT_FALSE(w.add(4 * kMinute + 59 * kSecond, "gold", "7", "X Y", 2));  // 4:00-5:00 closed
  EXPECT_TRUE(w.add(5 * kMinute, "gold", "7", "X Y", 3));                  // 5:00-6:00 open
  EXPECT_EQ(w.late(), 1);
  EXPECT_EQ(w.by_status().size(), 1u);
  EXPECT_EQ(w.by_status().at({5 * kMinute, "gold"}), 1);
  // The 15-minute window still takes both.
  EXPECT_EQ(w.by_customer().at({0, "7"}).stars, (std::vector<std::int32_t>{2, 3}));
  // Exactly at the end: closed.
  rating_windows edge(kMinute, 15 * kMinute, 15 * kMinute);
  EXPECT_FALSE(edge.add(15 * kMinute - 1, "gold", "7", "X Y", 2));
  EXPECT_TRUE(edge.by_customer().empty());
  EXPECT_TRUE(edge.add(15 * kMinute, "gold", "7", "X Y", 2));
}

TEST(RatingWindows, NegativeTimesLandInTheirWindow) {
  rating_windows w(kMinute, 15 * kMinute, std::nullopt);
  w.add(-1, "bronze", "1", "A B", 5);
  EXPECT_EQ(w.by_status().begin()->first.first, -kMinute);
  EXPECT_EQ(w.by_customer().begin()->first.first, -15 * kMinute);
}

TEST(RatingWindows, WatermarkNeverMovesBackAndIdleClosesTheSmallWindow) {
  constexpr std::int64_t kNoLimit = INT64_MAX;
  EXPECT_EQ(advance_watermark(std::nullopt, 10 * kSecond, kSecond, kNoLimit), 9 * kSecond);
  EXPECT_EQ(advance_watermark(20 * kSecond, 10 * kSecond, kSecond, kNoLimit), 20 * kSecond);
  EXPECT_EQ(advance_watermark(5 * kSecond, 10 * kSecond, 0, kNoLimit), 10 * kSecond);
  EXPECT_EQ(idle_watermark(std::nullopt, 70 * kSecond, kMinute, kNoLimit), 2 * kMinute);
  EXPECT_EQ(idle_watermark(69 * kSecond, 70 * kSecond, kMinute, kNoLimit), 2 * kMinute);
  EXPECT_EQ(idle_watermark(2 * kMinute, 70 * kSecond, kMinute, kNoLimit), std::nullopt);
}

}  // namespace
}  // namespace streamrec
