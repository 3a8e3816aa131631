#include "core/pipelines/attribution.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace streamrec {
namespace {

constexpr std::int64_t kHour = std::int64_t{3600} * 1'000'000;
constexpr std::int64_t kSecond = 1'000'000;

click_ref click(std::string id, std::int64_t time) { return {std::move(id), false, time}; }
click_ref anonymous(std::int64_t time) { return {"", true, time}; }

TEST(Attribution, ClickOrderEarliestThenSmallestIdThenNoId) {
  EXPECT_TRUE(click_wins(click("b", 1), click("a", 2), bytewise_order));
  EXPECT_FALSE(click_wins(click("a", 2), click("b", 1), bytewise_order));
  EXPECT_TRUE(click_wins(click("a", 1), click("b", 1), bytewise_order));
  EXPECT_FALSE(click_wins(click("b", 1), click("a", 1), bytewise_order));
  EXPECT_FALSE(click_wins(click("a", 1), click("a", 1), bytewise_order));
  EXPECT_TRUE(click_wins(click("z", 1), anonymous(1), bytewise_order));
  EXPECT_FALSE(click_wins(anonymous(1), click("z", 1), bytewise_order));
  EXPECT_FALSE(click_wins(anonymous(1), anonymous(1), bytewise_order));
  EXPECT_TRUE(click_wins(anonymous(0), click("a", 1), bytewise_order));
  // The collation decides between ids: reversed here.
  auto reversed = [](std::string_view a, std::string_view b) { return b.compare(a); };
  EXPECT_TRUE(click_wins(click("b", 1), click("a", 1), reversed));
}

TEST(Attribution, CheckoutProbesOnePerKeyCoveringEveryWindow) {
  attribution_options o;
  std::vector<checkout_event> batch = {
      {"k3", "u1", "p1", 5 * kHour}, {"k1", "u2", "p1", kHour}, {"k2", "u1", "p1", 3 * kHour}, {"k4", "u1", "p2", 0}};
  std::vector<key_range> probes = checkout_probes(batch, o);
  ASSERT_EQ(probes.size(), 3u);
  EXPECT_EQ(probes[0].user, "u1");
  EXPECT_EQ(probes[0].product, "p1");
  EXPECT_EQ(probes[0].from, 2 * kHour);
  EXPECT_EQ(probes[0].to, 5 * kHour);
  EXPECT_EQ(probes[1].product, "p2");
  EXPECT_EQ(probes[1].from, -kHour);
  EXPECT_EQ(probes[2].user, "u2");
  EXPECT_EQ(checkout_users(batch), (std::vector<std::string_view>{"u1", "u2"}));
}

TEST(Attribution, WindowBoundsAreInclusiveAndResultsInCheckoutIdOrder) {
  attribution_options o;
  std::vector<checkout_event> batch = {{"k2", "u", "p", 2 * kHour}, {"k1", "u", "p", kHour}, {"k0", "u", "q", kHour}};
  std::vector<key_range> probes = checkout_probes(batch, o);
  std::vector<std::vector<click_ref>> clicks(probes.size());
  // (u, p): read over [0, 2h]; (u, q): [0, 1h].
  clicks[0] = {click("c9", kHour), click("c1", 0), click("c5", kHour + kSecond), click("c2", 2 * kHour + 1)};
  clicks[1] = {};
  std::vector<checkout_attribution> out = attribute_checkouts(batch, o, probes, clicks, bytewise_order);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].row, 2u);  // k0: nothing
  EXPECT_FALSE(out[0].click);
  EXPECT_EQ(out[1].row, 1u);  // k1 at 1h: c1 at exactly 1h before
  ASSERT_TRUE(out[1].click);
  EXPECT_EQ(out[1].click->id, "c1");
  EXPECT_EQ(out[2].row, 0u);  // k2 at 2h: c1 is out, c9 at exactly 1h before; c2 is after
  ASSERT_TRUE(out[2].click);
  EXPECT_EQ(out[2].click->id, "c9");
}

TEST(Attribution, ClicksCorrectOnlyWhatTheyBeat) {
  attribution_options o;
  std::vector<click_event> batch = {{"c5", false, "u", "p", false, 100},
                                    {"c1", false, "u", "p", false, 100},
                                    {"", true, "u", "p", false, 50},
                                    {"s", false, "u", "", true, 0},
                                    {"c7", false, "v", "p", false, 10}};
  std::vector<key_range> probes = click_probes(batch, o);
  ASSERT_EQ(probes.size(), 2u);
  EXPECT_EQ(probes[0].from, 50);
  EXPECT_EQ(probes[0].to, 100 + kHour);
  std::vector<std::vector<stored_attribution>> stored(2);
  stored[0] = {{"a-unattributed", 200, std::nullopt},
               {"b-later-click", 200, click("c0", 150)},
               {"c-earlier-click", 200, click("c0", 40)},
               {"d-earlier-anonymous", 100, click("c3", 100)},
               {"e-out-of-window", 100 + kHour + 1, std::nullopt},
               {"f-same-click", 60, anonymous(50)}};
  stored[1] = {{"g", 20, click("c8", 10)}};
  std::vector<attribution_correction> out = click_corrections(batch, o, probes, stored, bytewise_order);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].checkout_id, "a-unattributed");
  EXPECT_TRUE(out[0].click.id_null);  // the anonymous click at 50 is the earliest
  EXPECT_EQ(out[1].checkout_id, "b-later-click");
  EXPECT_EQ(out[2].checkout_id, "d-earlier-anonymous");  // the click at 50 beats c3 at 100
  EXPECT_TRUE(out[2].click.id_null);
  EXPECT_EQ(out[3].checkout_id, "g");  // equal times: c7 < c8
  EXPECT_EQ(out[3].click.id, "c7");
}

// ---- the order property: any arrival order and batching gives the model's table -------------
struct world_click {
  std::string id;
  bool id_null;
  std::string user, product;
  bool product_null;
  std::int64_t time;
};
struct world_checkout {
  std::string id, user, product;
  std::int64_t time;
};

// A database of clicks and attributions that runs both batch functions the way the triggers do.
class store {
 public:
  explicit store(attribution_options o) : o_(o) {}

  void checkouts(const std::vector<world_checkout>& rows) {
    std::vector<checkout_event> batch;
    for (const world_checkout& c : rows) batch.push_back({c.id, c.user, c.product, c.time});
    std::vector<key_range> probes = checkout_probes(batch, o_);
    std::vector<std::vector<click_ref>> state(probes.size());
    for (std::size_t i = 0; i < probes.size(); i++)
      for (const world_click& k : clicks_)
        if (!k.product_null && k.user == probes[i].user && k.product == probes[i].product && k.time >= probes[i].from &&
            k.time <= probes[i].to)
          state[i].push_back({k.id, k.id_null, k.time});
    std::vector<checkout_attribution> out = attribute_checkouts(batch, o_, probes, state, bytewise_order);
    std::string previous;
    for (const checkout_attribution& a : out) {
      const world_checkout& c = rows[a.row];
      EXPECT_LE(previous, c.id);
      previous = c.id;
      table_[c.id] = {c.id, c.time, a.click};
      keys_[c.id] = {c.user, c.product};
      log_.emplace_back(c.id, a.click);
    }
  }

  void clicks(const std::vector<world_click>& rows) {
    for (const world_click& k : rows) clicks_.push_back(k);
    std::vector<click_event> batch;
    for (const world_click& k : rows) batch.push_back({k.id, k.id_null, k.user, k.product, k.product_null, k.time});
    std::vector<key_range> probes = click_probes(batch, o_);
    std::vector<std::vector<stored_attribution>> state(probes.size());
    for (std::size_t i = 0; i < probes.size(); i++)
      for (const auto& [id, s] : table_)
        if (keys_[id] == std::make_pair(std::string(probes[i].user), std::string(probes[i].product)) &&
            s.checkout_time >= probes[i].from && s.checkout_time <= probes[i].to)
          state[i].push_back(s);
    for (const attribution_correction& c : click_corrections(batch, o_, probes, state, bytewise_order)) {
      stored_attribution& s = table_.at(c.checkout_id);
      // The trigger re-checks on the locked row; nothing else writes here.
      EXPECT_TRUE(!s.click || click_wins(c.click, *s.click, bytewise_order));
      s.click = c.click;
      log_.emplace_back(c.checkout_id, c.click);
    }
  }

  std::map<std::string, std::optional<click_ref>> table() const {
    std::map<std::string, std::optional<click_ref>> out;
    for (const auto& [id, s] : table_) out[id] = s.click;
    return out;
  }
  // The last logged attribution of each checkout (what a compacted topic keeps).
  std::map<std::string, std::optional<click_ref>> log_table() const {
    std::map<std::string, std::optional<click_ref>> out;
    for (const auto& [id, c] : log_) out[id] = c;
    return out;
  }

 private:
  attribution_options o_;
  std::deque<world_click> clicks_;
  std::map<std::string, stored_attribution> table_;
  std::map<std::string, std::pair<std::string, std::string>> keys_;
  std::vector<std::pair<std::string, std::optional<click_ref>>> log_;
};

std::map<std::string, std::optional<click_ref>> model(const std::vector<world_click>& clicks,
                                                      const std::vector<world_checkout>& checkouts,
                                                      std::int64_t lookback) {
  std::map<std::string, std::optional<click_ref>> out;
  for (const world_checkout& c : checkouts) {
    std::optional<click_ref> best;
    for (const world_click& k : clicks) {
      if (k.product_null || k.user != c.user || k.product != c.product) continue;
      if (k.time < c.time - lookback || k.time > c.time) continue;
      click_ref r{k.id, k.id_null, k.time};
      if (!best || click_wins(r, *best, bytewise_order)) best = r;
    }
    out[c.id] = best;
  }
  return out;
}

bool same(const std::map<std::string, std::optional<click_ref>>& a,
          const std::map<std::string, std::optional<click_ref>>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [id, x] : a) {
    auto it = b.find(id);
    if (it == b.end() || x.has_value() != it->second.has_value()) return false;
    if (x && std::tie(x->id, x->id_null, x->time) != std::tie(it->second->id, it->second->id_null, it->second->time))
      return false;
  }
  return true;
}

TEST(Attribution, AnyArrivalOrderAndBatchingGivesTheModel) {
  const std::int64_t lookback = 100;
  attribution_options o{lookback};
  for (unsigned seed = 1; seed <= 60; seed++) {
    std::mt19937_64 rng(seed);
    auto below = [&rng](std::uint64_t n) { return static_cast<std::int64_t>(rng() % n); };
    std::vector<world_click> clicks;
    std::vector<world_checkout> checkouts;
    for (int i = 0; i < 150; i++) {
      world_click k;
      k.id_null = below(12) == 0;
      k.id = k.id_null ? "" : "c" + std::to_string(below(60));  // repeated ids and times: ties
      k.user = "u" + std::to_string(below(3));
      k.product_null = below(10) == 0;
      k.product = k.product_null ? "" : "p" + std::to_string(below(3));
      k.time = below(400);
      clicks.push_back(k);
    }
    for (int i = 0; i < 60; i++)
      checkouts.push_back(
          {"k" + std::to_string(i), "u" + std::to_string(below(3)), "p" + std::to_string(below(3)), below(500)});
    auto expected = model(clicks, checkouts, lookback);

    // Events in a random order, in batches of random sizes (each batch one kind).
    std::vector<std::pair<bool, std::size_t>> events;
    for (std::size_t i = 0; i < clicks.size(); i++) events.emplace_back(true, i);
    for (std::size_t i = 0; i < checkouts.size(); i++) events.emplace_back(false, i);
    std::shuffle(events.begin(), events.end(), rng);
    store s(o);
    for (std::size_t i = 0; i < events.size();) {
      bool kind = events[i].first;
      std::size_t n = 1 + static_cast<std::size_t>(below(20));
      std::vector<world_click> click_batch;
      std::vector<world_checkout> checkout_batch;
      for (; i < events.size() && n > 0 && events[i].first == kind; i++, n--) {
        if (kind)
          click_batch.push_back(clicks[events[i].second]);
        else
          checkout_batch.push_back(checkouts[events[i].second]);
      }
      if (kind)
        s.clicks(click_batch);
      else
        s.checkouts(checkout_batch);
    }
    EXPECT_TRUE(same(s.table(), expected)) << "seed " << seed;
    EXPECT_TRUE(same(s.log_table(), expected)) << "seed " << seed;
  }
}

TEST(Attribution, InfiniteTimesDoNotWrap) {
  attribution_options o;
  const std::int64_t lo = std::numeric_limits<std::int64_t>::min();
  const std::int64_t hi = std::numeric_limits<std::int64_t>::max();
  std::vector<checkout_event> batch = {{"k", "u", "p", lo}};
  std::vector<key_range> probes = checkout_probes(batch, o);
  EXPECT_EQ(probes[0].from, lo);
  std::vector<click_event> clicks = {{"c", false, "u", "p", false, hi}};
  std::vector<key_range> cp = click_probes(clicks, o);
  EXPECT_EQ(cp[0].to, hi);
}

}  // namespace
}  // namespace streamrec
