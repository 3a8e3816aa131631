#include "core/event_time.h"
#include "core/pipelines/ranking.h"

#include <gtest/gtest.h>

namespace streamrec {
namespace {

std::vector<std::string> ids(const std::vector<std::string_view>& v) { return {v.begin(), v.end()}; }

// Category "c": p1..p8 with ratings chosen so best-first order is p3 p5 p1 p2 p7 p8 p4 (p6 unrated).
product_catalog sample() {
  product_catalog c;
  c.add("c", "p1", 4.0f);
  c.add("c", "p2", 4.0f);
  c.add("c", "p3", 5.0f);
  c.add("c", "p4", 1.0f);
  c.add("c", "p5", 4.5f);
  c.add("c", "p6", std::nullopt);
  c.add("c", "p7", 3.0f);
  c.add("c", "p8", 3.0f);
  c.add("other", "q1", 5.0f);
  c.finish();
  return c;
}

TEST(Ranking, BestRatedFirstTiesByProductIdUnratedLast) {
  auto c = sample();
  EXPECT_EQ(ids(c.rank("c", "none", {}, {}, repeat_policy::demote, 10)),
            (std::vector<std::string>{"p3", "p5", "p1", "p2", "p7", "p8", "p4", "p6"}));
}

TEST(Ranking, ExcludesTheViewedProductAndTakesK) {
  auto c = sample();
  EXPECT_EQ(ids(c.rank("c", "p3", {}, {}, repeat_policy::demote, 3)), (std::vector<std::string>{"p5", "p1", "p2"}));
}

TEST(Ranking, FewerCandidatesThanK) {
  auto c = sample();
  EXPECT_EQ(ids(c.rank("other", "x", {}, {}, repeat_policy::demote, 6)), (std::vector<std::string>{"q1"}));
  EXPECT_TRUE(c.rank("other", "q1", {}, {}, repeat_policy::demote, 6).empty());
  EXPECT_TRUE(c.rank("unknown", "x", {}, {}, repeat_policy::demote, 6).empty());
}

TEST(Ranking, BoughtBeforeComesFirstInItsOwnBestFirstOrder) {
  auto c = sample();
  EXPECT_EQ(ids(c.rank("c", "p3", {"p4", "p7", "q1", "gone"}, {}, repeat_policy::demote, 4)),
            (std::vector<std::string>{"p7", "p4", "p5", "p1"}));
}

TEST(Ranking, ShownRecentlyIsDemotedExcludedOrAllowed) {
  auto c = sample();
  std::vector<std::string_view> shown{"p5", "p1"};
  EXPECT_EQ(ids(c.rank("c", "p3", {}, shown, repeat_policy::demote, 7)),
            (std::vector<std::string>{"p2", "p7", "p8", "p4", "p6", "p5", "p1"}));
  EXPECT_EQ(ids(c.rank("c", "p3", {}, shown, repeat_policy::exclude, 7)),
            (std::vector<std::string>{"p2", "p7", "p8", "p4", "p6"}));
  EXPECT_EQ(ids(c.rank("c", "p3", {}, shown, repeat_policy::allow, 3)), (std::vector<std::string>{"p5", "p1", "p2"}));
}

TEST(Ranking, ShownAndBoughtIsDemotedButFirstAmongTheDemoted) {
  auto c = sample();
  EXPECT_EQ(ids(c.rank("c", "p2", {"p1"}, {"p5", "p1"}, repeat_policy::demote, 8)),
            (std::vector<std::string>{"p3", "p7", "p8", "p4", "p6", "p1", "p5"}));
}

TEST(Ranking, DuplicatesInInputsDoNotRepeatOutput) {
  auto c = sample();
  EXPECT_EQ(ids(c.rank("c", "p3", {"p7", "p7"}, {"p5", "p5"}, repeat_policy::demote, 3)),
            (std::vector<std::string>{"p7", "p1", "p2"}));
}

TEST(Ranking, ParsesRepeatPolicy) {
  EXPECT_EQ(parse_repeat_policy("exclude"), repeat_policy::exclude);
  EXPECT_FALSE(parse_repeat_policy("Demote").has_value());
}

TEST(Windows, TumblingWindowStartFloorsTowardMinusInfinity) {
  EXPECT_EQ(window_start(12'345, 5'000), 10'000);
  EXPECT_EQ(window_start(10'000, 5'000), 10'000);
  EXPECT_EQ(window_start(-1, 5'000), -5'000);
  EXPECT_EQ(window_start(-5'000, 5'000), -5'000);
}

}  // namespace
}  // namespace streamrec
