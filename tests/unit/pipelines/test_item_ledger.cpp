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

TEST(ItemBatch, DistinctItemsInByteOrderWithEachTransactionsIndex) {
  std::vector<std::string_view> items{"b", "a", "B", "b", "\xc3\xa9", "a"};
  batch_items k = distinct_items(items);
  EXPECT_EQ(k.items, (std::vector<std::string_view>{"B", "a", "b", "\xc3\xa9"}));  // bytes, not a locale
  EXPECT_EQ(k.of_transaction, (std::vector<std::uint32_t>{2, 1, 0, 2, 3, 1}));
  EXPECT_TRUE(distinct_items({}).items.empty());
}

TEST(ItemBatch, OneUpdateOrInsertPerItemInItemOrder) {
  std::vector<std::string_view> names{"z", "a", "new", "z", "same", "gone", "same", "new"};
  std::vector<std::int32_t> quantities{-2, 5, 3, -9, 1, -1, -1, -4};
  batch_items k = distinct_items(names);  // a, gone, new, same, z
  std::vector<std::optional<std::int32_t>> stock{1, std::nullopt, std::nullopt, 7, 10};
  stock_batch b = apply_stock_batch(k, quantities, stock);
  std::vector<std::pair<bool, std::optional<std::int32_t>>> outcomes;
  for (const auto& o : b.outcomes) outcomes.emplace_back(o.success, o.stock_after);
  EXPECT_EQ(outcomes,
            (std::vector<std::pair<bool, std::optional<std::int32_t>>>{
                {true, 8}, {true, 6}, {true, 3}, {false, 8}, {true, 8}, {false, std::nullopt}, {true, 7}, {false, 3}}));
  ASSERT_EQ(b.updates.size(), 2u);  // "same" went back to 7: not written
  EXPECT_EQ(k.items[b.updates[0].item], "a");
  EXPECT_EQ(b.updates[0].stock, 6);
  EXPECT_EQ(k.items[b.updates[1].item], "z");
  EXPECT_EQ(b.updates[1].stock, 8);
  ASSERT_EQ(b.inserts.size(), 1u);  // "gone" stays unknown
  EXPECT_EQ(k.items[b.inserts[0].item], "new");
  EXPECT_EQ(b.inserts[0].stock, 3);
}

// The batch function and the ledger, transaction by transaction, agree on random batches.
TEST(ItemBatch, MatchesTheLedgerOnRandomBatches) {
  std::uint64_t seed = 88172645463325252ull;
  auto next = [&seed] {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    return seed;
  };
  const char* names[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
  for (int round = 0; round < 200; round++) {
    std::vector<std::string_view> items;
    std::vector<std::int32_t> quantities;
    for (int i = 0, n = static_cast<int>(next() % 40); i < n; i++) {
      items.push_back(names[next() % 8]);
      std::int64_t q = static_cast<std::int64_t>(next() % 21) - 12;
      if (next() % 50 == 0) q = std::numeric_limits<std::int32_t>::max() - static_cast<std::int64_t>(next() % 3);
      quantities.push_back(static_cast<std::int32_t>(q));
    }
    batch_items k = distinct_items(items);
    std::vector<std::optional<std::int32_t>> stock;
    stock_ledger ledger;
    for (std::string_view item : k.items) {
      if (next() % 3 == 0) {
        stock.push_back(std::nullopt);
      } else {
        stock.push_back(static_cast<std::int32_t>(next() % 15));
        ledger.load(item, *stock.back());
      }
    }
    stock_batch b = apply_stock_batch(k, quantities, stock);
    for (std::size_t i = 0; i < items.size(); i++) {
      transaction_outcome o = ledger.apply(items[i], quantities[i]);
      EXPECT_EQ(of(b.outcomes[i]), of(o));
    }
    auto rows = [&k](const std::vector<stock_batch::item_stock>& v) {
      std::vector<std::pair<std::string, std::int32_t>> out;
      for (const auto& s : v) out.emplace_back(std::string(k.items[s.item]), s.stock);
      return out;
    };
    auto ledger_rows = [](const std::vector<stock_ledger::final_stock>& v) {
      std::vector<std::pair<std::string, std::int32_t>> out;
      for (const auto& s : v) out.emplace_back(s.item, s.stock);
      return out;
    };
    EXPECT_EQ(rows(b.updates), ledger_rows(ledger.changed()));
    EXPECT_EQ(rows(b.inserts), ledger_rows(ledger.created()));
  }
}

TEST(ItemBatch, PlacesTransactionsAgainstTheClock) {
  const std::int64_t minute = 60'000'000;
  std::vector<std::string_view> names{"a", "b", "a", "c"};
  batch_items k = distinct_items(names);
  std::vector<std::int32_t> quantities{5, -3, -1, 2};
  std::vector<std::int64_t> times{minute + 5, 10, 3 * minute, 20};  // 3 minutes: beyond the limit
  std::vector<transaction_outcome> outcomes{{true, 5}, {false, 0}, {true, 4}, {true, 2}};
  window_step step = place_in_windows(k, quantities, times, outcomes, minute, 2 * minute, minute);
  EXPECT_EQ(step.future_count, 1);
  EXPECT_EQ(step.late_count, 2);  // the first minute closed at the watermark
  EXPECT_EQ(step.newest, minute + 5);
  ASSERT_EQ(step.late.windows().size(), 2u);
  EXPECT_EQ(step.late.windows().at({0, "b"}).failed, 1);
  EXPECT_EQ(step.late.windows().at({0, "c"}).volume, 2);

  window_step none = place_in_windows(k, quantities, times, outcomes, std::nullopt, 2 * minute, minute);
  EXPECT_EQ(none.late_count, 0);  // no watermark yet: nothing is late
  EXPECT_TRUE(none.late.windows().empty());
  window_step all_future = place_in_windows(k, quantities, times, outcomes, std::nullopt, 0, minute);
  EXPECT_EQ(all_future.future_count, 4);
  EXPECT_FALSE(all_future.newest.has_value());
}

}  // namespace
}  // namespace streamrec
