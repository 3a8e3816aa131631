#include "core/pipelines/attribution.h"

#include <algorithm>
#include <limits>
#include <tuple>
#include <utility>

namespace streamrec {
namespace {

constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

// Times are microseconds; -infinity and infinity are the extremes, so the window arithmetic
// saturates instead of wrapping.
std::int64_t minus(std::int64_t t, std::int64_t d) { return t < kMin + d ? kMin : t - d; }
std::int64_t plus(std::int64_t t, std::int64_t d) { return t > kMax - d ? kMax : t + d; }

using key = std::pair<std::string_view, std::string_view>;

// The probe of (user, product) in probes (sorted, distinct), or probes.size().
std::size_t find_probe(const std::vector<key_range>& probes, std::string_view user, std::string_view product) {
  auto it = std::lower_bound(probes.begin(), probes.end(), key(user, product),
                             [](const key_range& r, const key& k) { return key(r.user, r.product) < k; });
  if (it == probes.end() || it->user != user || it->product != product) return probes.size();
  return static_cast<std::size_t>(it - probes.begin());
}

// Sorts (key, time) pairs and merges each key's times into one range [min - before, max + after].
std::vector<key_range> merge_ranges(std::vector<std::tuple<std::string_view, std::string_view, std::int64_t>> items,
                                    std::int64_t before, std::int64_t after) {
  std::sort(items.begin(), items.end());
  std::vector<key_range> out;
  for (const auto& [user, product, time] : items) {
    if (!out.empty() && out.back().user == user && out.back().product == product) {
      out.back().to = plus(time, after);  // sorted: the latest time so far
      continue;
    }
    out.push_back({user, product, minus(time, before), plus(time, after)});
  }
  return out;
}

}  // namespace

int bytewise_order(std::string_view a, std::string_view b) { return a.compare(b); }

bool click_wins(const click_ref& a, const click_ref& b, click_id_order order) {
  if (a.time != b.time) return a.time < b.time;
  if (a.id_null) return false;
  return b.id_null || order(a.id, b.id) < 0;
}

std::vector<key_range> checkout_probes(const std::vector<checkout_event>& batch, const attribution_options& options) {
  std::vector<std::tuple<std::string_view, std::string_view, std::int64_t>> items;
  items.reserve(batch.size());
  for (const checkout_event& c : batch) items.emplace_back(c.user, c.product, c.time);
  return merge_ranges(std::move(items), options.lookback_us, 0);
}

std::vector<std::string_view> checkout_users(const std::vector<checkout_event>& batch) {
  std::vector<std::string_view> users;
  users.reserve(batch.size());
  for (const checkout_event& c : batch) users.push_back(c.user);
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
  return users;
}

std::vector<checkout_attribution> attribute_checkouts(const std::vector<checkout_event>& batch,
                                                      const attribution_options& options,
                                                      const std::vector<key_range>& probes,
                                                      const std::vector<std::vector<click_ref>>& clicks,
                                                      click_id_order order) {
  std::vector<checkout_attribution> out(batch.size());
  for (std::size_t row = 0; row < batch.size(); row++) {
    const checkout_event& c = batch[row];
    out[row].row = row;
    std::size_t p = find_probe(probes, c.user, c.product);
    if (p == probes.size() || p >= clicks.size()) continue;
    const std::int64_t from = minus(c.time, options.lookback_us);
    const click_ref* best = nullptr;
    for (const click_ref& k : clicks[p])
      if (k.time >= from && k.time <= c.time && (best == nullptr || click_wins(k, *best, order))) best = &k;
    if (best != nullptr) out[row].click = *best;
  }
  std::stable_sort(out.begin(), out.end(), [&batch](const checkout_attribution& a, const checkout_attribution& b) {
    return batch[a.row].checkout_id < batch[b.row].checkout_id;
  });
  return out;
}

std::vector<key_range> click_probes(const std::vector<click_event>& batch, const attribution_options& options) {
  std::vector<std::tuple<std::string_view, std::string_view, std::int64_t>> items;
  items.reserve(batch.size());
  for (const click_event& k : batch)
    if (!k.product_null) items.emplace_back(k.user, k.product, k.time);
  return merge_ranges(std::move(items), 0, options.lookback_us);
}

std::vector<attribution_correction> click_corrections(const std::vector<click_event>& batch,
                                                      const attribution_options& options,
                                                      const std::vector<key_range>& probes,
                                                      const std::vector<std::vector<stored_attribution>>& stored,
                                                      click_id_order order) {
  // The batch's product clicks grouped by probe.
  std::vector<std::vector<click_ref>> by_probe(probes.size());
  for (const click_event& k : batch) {
    if (k.product_null) continue;
    std::size_t p = find_probe(probes, k.user, k.product);
    if (p == probes.size()) continue;
    by_probe[p].push_back({k.click_id_null ? std::string() : std::string(k.click_id), k.click_id_null, k.time});
  }
  std::vector<attribution_correction> out;
  for (std::size_t p = 0; p < probes.size() && p < stored.size(); p++) {
    for (const stored_attribution& s : stored[p]) {
      const std::int64_t from = minus(s.checkout_time, options.lookback_us);
      const click_ref* best = nullptr;
      for (const click_ref& k : by_probe[p])
        if (k.time >= from && k.time <= s.checkout_time && (best == nullptr || click_wins(k, *best, order))) best = &k;
      if (best != nullptr && (!s.click || click_wins(*best, *s.click, order))) out.push_back({s.checkout_id, *best});
    }
  }
  std::sort(out.begin(), out.end(), [order](const attribution_correction& a, const attribution_correction& b) {
    if (a.checkout_id != b.checkout_id) return a.checkout_id < b.checkout_id;
    return click_wins(a.click, b.click, order);
  });
  // A checkout read twice (never, with distinct probes) keeps its best click.
  out.erase(std::unique(out.begin(), out.end(),
                        [](const attribution_correction& a, const attribution_correction& b) {
                          return a.checkout_id == b.checkout_id;
                        }),
            out.end());
  return out;
}

}  // namespace streamrec
