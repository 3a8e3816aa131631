#include "core/pipelines/item_ledger.h"

#include <gtest/gtest.h>

#include <limits>

namespace streamrec {
namespace {

using outcome = std::pair<bool, std::optional<std::int32_t>>;
outcome of(const transaction_outcome& o) { return {o.success, o.stock_after}; }

TEST(ItemLedger, AppliesInOrderAndNeverGoesNegative) {
  stock_ledger l;
  l.load("a", 5);
  EXPECT_EQ(of(l.apply("a", -3)), outcome(true, 2));
  EXPECT_EQ(of(l.apply("a", -3)), outcome(false, 2));  // would be -1
  EXPECT_EQ(of(l.apply("a", 10)), outcome(true, 12));
  EXPECT_EQ(of(l.apply("a", -12)), outcome(true, 0));  // exactly zero is fine
  EXPECT_EQ(of(l.apply("a", 0)), outcome(true, 0));
  ASSERT_EQ(l.changed().size(), 1u);
  EXPECT_EQ(l.changed()[0].item, "a");
  EXPECT_EQ(l.changed()[0].stock, 0);
  EXPECT_TRUE(l.created().empty());
}

TEST(ItemLedger, RestockCreatesAnUnknownItemAnythingElseFails) {
  stock_ledger l;
  EXPECT_EQ(of(l.apply("new", -1)), outcome(false, std::nullopt));
  EXPECT_EQ(of(l.apply("new", 0)), outcome(false, std::nullopt));
  EXPECT_EQ(of(l.apply("new", 7)), outcome(true, 7));
  EXPECT_EQ(of(l.apply("new", -8)), outcome(false, 7));
  EXPECT_EQ(of(l.apply("new", -7)), outcome(true, 0));
  EXPECT_EQ(of(l.apply("never", -2)), outcome(false, std::nullopt));
  ASSERT_EQ(l.created().size(), 1u);  // "never" stays unknown
  EXPECT_EQ(l.created()[0].item, "new");
  EXPECT_EQ(l.created()[0].stock, 0);
  EXPECT_TRUE(l.changed().empty());
}

TEST(ItemLedger, UnchangedItemsAreNotWrittenAndOutputIsInByteOrder) {
  stock_ledger l;
  l.load("b", 1);
  l.load("a", 1);
  l.load("B", 1);
  l.load("same", 4);
  l.apply("b", 1);
  l.apply("a", 1);
  l.apply("B", 1);
  l.apply("same", 2);
  l.apply("same", -2);
  std::vector<std::string> items;
  for (const auto& f : l.changed()) items.push_back(f.item);
  EXPECT_EQ(items, (std::vector<std::string>{"B", "a", "b"}));
}

TEST(ItemLedger, OverflowFailsInsteadOfWrapping) {
  stock_ledger l;
  l.load("a", std::numeric_limits<std::int32_t>::max() - 1);
  EXPECT_EQ(of(l.apply("a", 2)), outcome(false, std::numeric_limits<std::int32_t>::max() - 1));
  EXPECT_EQ(of(l.apply("a", 1)), outcome(true, std::numeric_limits<std::int32_t>::max()));
  EXPECT_EQ(of(l.apply("a", std::numeric_limits<std::int32_t>::min())),
            outcome(false, std::numeric_limits<std::int32_t>::max()));
}

TEST(ItemLedger, ReloadReplacesWhatTheBatchAssumed) {
  stock_ledger l;
  l.apply("x", 3);    // thought unknown: created
  l.reload("x", 10);  // another writer created it with 10
  EXPECT_EQ(of(l.apply("x", 3)), outcome(true, 13));
  EXPECT_TRUE(l.created().empty());
  ASSERT_EQ(l.changed().size(), 1u);
  EXPECT_EQ(l.changed()[0].stock, 13);
  l.apply("y", 4);
  l.reload("y", std::nullopt);  // created elsewhere and deleted again: unknown once more
  EXPECT_EQ(of(l.apply("y", -1)), outcome(false, std::nullopt));
  EXPECT_TRUE(l.created().empty());
}

TEST(ItemLedger, WindowSummariesPerItemAndMinute) {
  const std::int64_t minute = 60'000'000;
  window_summaries w(minute);
  w.add("a", 0, 5, true);
  w.add("a", minute - 1, -3, true);
  w.add("a", minute, -9, false);
  w.add("b", -1, 2, true);  // before the epoch: the window starting a minute earlier
  const auto& m = w.windows();
  ASSERT_EQ(m.size(), 3u);
  auto a0 = m.at({0, "a"});
  EXPECT_EQ((std::tuple{a0.succeeded, a0.failed, a0.volume}),
            (std::tuple<std::int64_t, std::int64_t, std::int64_t>{2, 0, 8}));
  auto a1 = m.at({minute, "a"});
  EXPECT_EQ((std::tuple{a1.succeeded, a1.failed, a1.volume}),
            (std::tuple<std::int64_t, std::int64_t, std::int64_t>{0, 1, 0}));
  EXPECT_EQ(m.at({-minute, "b"}).succeeded, 1);
  EXPECT_EQ(m.begin()->first, (window_summaries::key{-minute, "b"}));  // key order: window, item
}

TEST(ItemLedger, AlertNeedsEnoughTransactionsAndARatioAbove) {
  EXPECT_FALSE(window_alerts({4, 5, 0}, 0.5, 10));  // 9 transactions
  EXPECT_TRUE(window_alerts({4, 6, 0}, 0.5, 10));
  EXPECT_FALSE(window_alerts({5, 5, 0}, 0.5, 10));  // exactly the ratio: not above
  EXPECT_FALSE(window_alerts({0, 0, 0}, 0.0, 0));
  EXPECT_TRUE(window_alerts({0, 1, 0}, 0.0, 1));
}

}  // namespace
}  // namespace streamrec
