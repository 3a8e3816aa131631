#include "core/pipelines/similar_products.h"

#include <gtest/gtest.h>

#include <map>

namespace streamrec {
namespace {

constexpr int64_t kMinute = 60 * INT64_C(1000000);

product_catalog catalog() {
  product_catalog c;
  for (int i = 1; i <= 9; i++) c.add("c", "p" + std::to_string(i), static_cast<float>(10 - i));  // p1 best
  c.finish();
  return c;
}

struct World {
  product_catalog products = catalog();
  std::string category = "c";
  std::map<std::string, std::vector<std::string_view>, std::less<>> bought;
  std::unordered_map<std::string_view, user_shown_state> states;
  similar_products_options options{3, repeat_policy::demote, 10 * kMinute};
  int64_t skipped = 0;

  std::vector<emitted_list> run(const std::vector<page_view>& views) {
    static const std::vector<std::string_view> none;
    return rank_page_views(
        views, products,
        [this](std::string_view p) -> const std::string* { return p.rfind('p', 0) == 0 ? &category : nullptr; },
        [this](std::string_view u) -> const std::vector<std::string_view>& {
          auto it = bought.find(u);
          return it == bought.end() ? none : it->second;
        },
        states, options, &skipped);
  }
};

std::vector<std::string> ids(const emitted_list& l) { return {l.products.begin(), l.products.end()}; }

TEST(SimilarProducts, LaterViewsOfABatchSeeTheListsShownEarlierInIt) {
  World w;
  w.states["u"].complete_since = 0;
  auto lists = w.run({{"u", "p9", 1 * kMinute}, {"u", "p9", 2 * kMinute}, {"v", "p9", 2 * kMinute}});
  ASSERT_EQ(lists.size(), 3u);
  EXPECT_EQ(ids(lists[0]), (std::vector<std::string>{"p1", "p2", "p3"}));
  EXPECT_EQ(ids(lists[1]), (std::vector<std::string>{"p4", "p5", "p6"}));  // p1-p3 demoted
  EXPECT_EQ(ids(lists[2]), (std::vector<std::string>{"p1", "p2", "p3"}));  // another user
  EXPECT_EQ(w.states["u"].shown.size(), 6u);
}

TEST(SimilarProducts, BoughtFirstAndUnknownProductsSkipped) {
  World w;
  w.bought["u"] = {"p7"};
  auto lists = w.run({{"u", "p1", kMinute}, {"u", "x1", kMinute}});
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(ids(lists[0]), (std::vector<std::string>{"p7", "p2", "p3"}));
  EXPECT_EQ(w.skipped, 1);
}

TEST(SimilarProducts, StateKeepsOnlyTheWindowOfTheNewestList) {
  World w;
  w.states["u"].complete_since = -10 * kMinute;
  w.run({{"u", "p9", 0}});
  w.run({{"u", "p9", 30 * kMinute}});
  const user_shown_state& s = w.states["u"];
  ASSERT_EQ(s.shown.size(), 3u);
  EXPECT_EQ(s.shown[0].time, 30 * kMinute);
  EXPECT_EQ(s.complete_since, 20 * kMinute);
  // A state never read from the log stays unknown, whatever it holds.
  World fresh;
  fresh.run({{"u", "p9", 0}});
  EXPECT_FALSE(fresh.states["u"].complete_since.has_value());
}

TEST(SimilarProducts, AViewOlderThanTheStateNeedsTheLog) {
  World w;
  user_shown_state s;
  EXPECT_TRUE(needs_log(s, 0, w.options));  // nothing known
  s.complete_since = 20 * kMinute;
  EXPECT_FALSE(needs_log(s, 30 * kMinute, w.options));
  EXPECT_TRUE(needs_log(s, 29 * kMinute, w.options));
  w.options.repeats = repeat_policy::allow;
  EXPECT_FALSE(needs_log(s, 0, w.options));
  reset_from_log(s, 5 * kMinute, {{6 * kMinute, "p1"}});
  EXPECT_EQ(s.complete_since, 5 * kMinute);
  EXPECT_EQ(s.shown.size(), 1u);
}

TEST(SimilarProducts, ShownOutsideTheViewsWindowDoesNotCount) {
  World w;
  w.states["u"] = user_shown_state{{{0, "p1"}, {0, "p2"}, {0, "p3"}}, -kMinute};
  // 11 minutes later the earlier list is outside the window: p1-p3 again.
  auto lists = w.run({{"u", "p9", 11 * kMinute}});
  EXPECT_EQ(ids(lists[0]), (std::vector<std::string>{"p1", "p2", "p3"}));
  // A list shown after the view's time does not count for it either.
  World later;
  later.states["u"] = user_shown_state{{{5 * kMinute, "p1"}}, 0};
  EXPECT_EQ(ids(later.run({{"u", "p9", 11 * kMinute}})[0]), (std::vector<std::string>{"p2", "p3", "p4"}));
  World earlier;
  earlier.states["u"] = user_shown_state{{{12 * kMinute, "p1"}}, 0};
  EXPECT_EQ(ids(earlier.run({{"u", "p9", 11 * kMinute}})[0]), (std::vector<std::string>{"p1", "p2", "p3"}));
}

TEST(SimilarProducts, AllowKeepsNoStateSoALaterPolicyReadsTheLog) {
  World w;
  w.options.repeats = repeat_policy::allow;
  w.states["u"] = user_shown_state{{{0, "p1"}}, 0};
  w.run({{"u", "p9", kMinute}});
  EXPECT_TRUE(w.states["u"].shown.empty());
  EXPECT_FALSE(w.states["u"].complete_since.has_value());
}

}  // namespace
}  // namespace streamrec
