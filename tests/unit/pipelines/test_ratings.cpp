#include "core/pipelines/ratings.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

namespace streamrec {
namespace {

constexpr std::int64_t kSecond = 1000000;
constexpr std::int64_t kMinute = 60 * kSecond;

rating_row rating(std::string_view id, std::string_view user, std::optional<std::string_view> product,
                  std::int32_t stars, std::int64_t time_us, bool test = false) {
  rating_row r;
  r.rating_id = id;
  r.user_id = user;
  r.product_id = product;
  r.stars = stars;
  r.channel = test ? "TestBot" : "web";
  r.message = "m";
  r.time_us = time_us;
  r.test = test;
  return r;
}

TEST(Ratings, TestChannelIsAsciiCaseInsensitiveAndLeavesOtherTextToPostgres) {
  EXPECT_EQ(test_channel("test"), true);
  EXPECT_EQ(test_channel("A-TeSt-channel"), true);
  EXPECT_EQ(test_channel("mobile-tes"), false);
  EXPECT_EQ(test_channel(""), false);
  EXPECT_EQ(test_channel("tset"), false);
  EXPECT_EQ(test_channel("ttest"), true);
  EXPECT_EQ(test_channel("t\xc3\xa9st"), std::nullopt);  // é: PostgreSQL decides under the collation
}

TEST(Ratings, CustomerKeysAreTheDistinctLiveUsersInByteOrder) {
  std::vector<rating_row> batch = {rating("1", "b", "p", 5, 0),        rating("2", "a", "p", 5, 0),
                                   rating("3", "b", "p", 5, 0),        rating("4", "z", "p", 5, 0, true),
                                   rating("5", "\xc3\xa9", "p", 5, 0), rating("6", "B", "p", 5, 0)};
  EXPECT_EQ(rating_customer_keys(batch), (std::vector<std::string_view>{"B", "a", "b", "\xc3\xa9"}));
}

TEST(Ratings, PlanSplitsTestEnrichesKnownCustomersAndFindsUnhappyPlatinum) {
  std::vector<rating_customer> customers = {{"1", "Ann Lee", "platinum", "a@x", true},
                                            {"2", std::nullopt, std::nullopt, std::nullopt, false}};
  std::vector<rating_row> batch = {
      rating("r1", "1", "p2", 2, 0),       rating("r2", "9", "p1", 1, 0),  // unknown customer
      rating("r3", "2", "p1", 1, 0),       rating("r4", "1", std::nullopt, 5, 0),
      rating("r5", "1", "p2", 4, 0, true), rating("r6", "1", "p1", 3, 0)};
  ratings_plan plan = plan_ratings(batch, customers);
  EXPECT_EQ(plan.test, std::vector<std::size_t>{4});
  ASSERT_EQ(plan.enriched.size(), 4u);
  std::vector<std::size_t> rows;
  for (const enriched_rating& e : plan.enriched) rows.push_back(e.row);
  EXPECT_EQ(rows, (std::vector<std::size_t>{0, 2, 3, 5}));  // input order
  EXPECT_EQ(plan.enriched[1].customer->customer_id, "2");
  EXPECT_EQ(plan.unhappy, std::vector<std::size_t>{0});  // r1: platinum, 2 stars; r3 not platinum; r6: 3 stars
  EXPECT_EQ(plan.skipped, 1);
  // Live ratings with a product, known customer or not, summed per product in byte order.
  ASSERT_EQ(plan.products.size(), 2u);
  EXPECT_EQ(plan.products[0].product_id, "p1");
  EXPECT_EQ(plan.products[0].ratings, 3);
  EXPECT_EQ(plan.products[0].stars, 5);
  EXPECT_EQ(plan.products[1].product_id, "p2");
  EXPECT_EQ(plan.products[1].ratings, 1);
  EXPECT_EQ(plan.products[1].stars, 2);
}

TEST(Ratings, WindowsTakeEnrichedRatingsOnlyAndLeaveFutureOnesOut) {
  std::vector<rating_customer> customers = {{"1", "Ann Lee", "gold", "a@x", false},
                                            {"2", std::nullopt, std::nullopt, std::nullopt, false}};
  std::vector<rating_row> batch = {rating("r1", "1", "p", 4, 10 * kSecond), rating("r2", "2", "p", 1, 20 * kSecond),
                                   rating("r3", "9", "p", 3, 30 * kSecond),  // unknown: no window
                                   rating("r4", "1", "p", 5, 50 * kMinute),  // future
                                   rating("r5", "1", "p", 2, 40 * kSecond, true)};
  ratings_plan plan = plan_ratings(batch, customers);
  ratings_windowed w = window_ratings(batch, plan, kMinute, 15 * kMinute, std::nullopt, 10 * kMinute);
  EXPECT_EQ(w.future, 1);
  EXPECT_EQ(w.newest, 20 * kSecond);
  EXPECT_EQ(w.windows.by_status().at({0, "gold"}), 1);
  EXPECT_EQ(w.windows.by_status().at({0, "none"}), 1);  // no club status
  EXPECT_EQ(w.windows.by_customer().at({0, "2"}).full_name, "");
  EXPECT_EQ(w.windows.by_customer().at({0, "1"}).stars, std::vector<std::int32_t>{4});
  EXPECT_EQ(w.windows.late(), 0);
}

// The plan against a direct model on random batches: every live rating of a known customer is
// enriched once, in input order; sums per product match.
TEST(Ratings, RandomBatchesMatchADirectModel) {
  std::mt19937 rng(7);
  for (int round = 0; round < 50; round++) {
    std::vector<std::string> ids;
    for (int i = 0; i < 30; i++) ids.push_back(std::to_string(i));
    std::vector<rating_customer> customers;
    for (int i = 0; i < 30; i += 2) customers.push_back({ids[i], "N", "platinum", std::nullopt, i % 4 == 0});
    std::sort(customers.begin(), customers.end(),
              [](const rating_customer& a, const rating_customer& b) { return a.customer_id < b.customer_id; });
    std::vector<rating_row> batch;
    for (int i = 0; i < 200; i++) {
      bool no_product = rng() % 5 == 0;
      batch.push_back(rating("r", ids[rng() % 30],
                             no_product ? std::nullopt : std::optional<std::string_view>(ids[rng() % 30]),
                             static_cast<std::int32_t>(1 + rng() % 5), 0, rng() % 7 == 0));
    }
    ratings_plan plan = plan_ratings(batch, customers);
    std::map<std::string_view, std::pair<std::int64_t, std::int64_t>> sums;
    std::vector<std::size_t> enriched, test, unhappy;
    std::int64_t skipped = 0;
    for (std::size_t i = 0; i < batch.size(); i++) {
      const rating_row& r = batch[i];
      if (r.test) {
        test.push_back(i);
        continue;
      }
      if (r.product_id) {
        sums[*r.product_id].first++;
        sums[*r.product_id].second += r.stars;
      }
      int user = std::stoi(std::string(r.user_id));
      if (user % 2 != 0) {
        skipped++;
        continue;
      }
      if (r.stars < 3 && user % 4 == 0) unhappy.push_back(enriched.size());
      enriched.push_back(i);
    }
    EXPECT_EQ(plan.test, test);
    EXPECT_EQ(plan.unhappy, unhappy);
    EXPECT_EQ(plan.skipped, skipped);
    ASSERT_EQ(plan.enriched.size(), enriched.size());
    for (std::size_t k = 0; k < enriched.size(); k++) {
      EXPECT_EQ(plan.enriched[k].row, enriched[k]);
      EXPECT_EQ(plan.enriched[k].customer->customer_id, batch[enriched[k]].user_id);
    }
    ASSERT_EQ(plan.products.size(), sums.size());
    std::size_t k = 0;
    for (const auto& [product, sum] : sums) {
      EXPECT_EQ(plan.products[k].product_id, product);
      EXPECT_EQ(plan.products[k].ratings, sum.first);
      EXPECT_EQ(plan.products[k].stars, sum.second);
      k++;
    }
  }
}

}  // namespace
}  // namespace streamrec
