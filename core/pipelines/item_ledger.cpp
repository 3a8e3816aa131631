#include "core/pipelines/item_ledger.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "core/event_time.h"

namespace streamrec {

void stock_ledger::load(std::string_view item, std::int32_t stock) { items_[std::string(item)] = entry{stock, stock}; }

void stock_ledger::reload(std::string_view item, std::optional<std::int32_t> stock) {
  items_[std::string(item)] = entry{stock, stock};
}

namespace {

// The rule of one transaction on its item's current stock (nullopt: unknown item).
transaction_outcome apply_rule(std::optional<std::int32_t>& stock, std::int32_t quantity) {
  if (!stock) {
    if (quantity > 0) {
      stock = quantity;
      return {true, stock};
    }
    return {false, std::nullopt};
  }
  std::int64_t after = static_cast<std::int64_t>(*stock) + quantity;
  bool fits = after >= 0 && after <= std::numeric_limits<std::int32_t>::max();
  if (fits) stock = static_cast<std::int32_t>(after);
  return {fits, stock};
}

}  // namespace

transaction_outcome stock_ledger::apply(std::string_view item, std::int32_t quantity) {
  return apply_rule(items_[std::string(item)].stock, quantity);  // a new entry is an unknown item
}

batch_items distinct_items(const std::vector<std::string_view>& transaction_items) {
  batch_items out;
  std::size_t n = transaction_items.size();
  std::vector<std::uint32_t> order(n);
  for (std::size_t i = 0; i < n; i++) order[i] = static_cast<std::uint32_t>(i);
  // std::string_view compares bytewise (char_traits<char> compares as unsigned char).
  std::sort(order.begin(), order.end(), [&transaction_items](std::uint32_t a, std::uint32_t b) {
    return transaction_items[a] < transaction_items[b];
  });
  out.of_transaction.resize(n);
  for (std::uint32_t i : order) {
    if (out.items.empty() || out.items.back() != transaction_items[i]) out.items.push_back(transaction_items[i]);
    out.of_transaction[i] = static_cast<std::uint32_t>(out.items.size() - 1);
  }
  return out;
}

stock_batch apply_stock_batch(const batch_items& items, const std::vector<std::int32_t>& quantities,
                              const std::vector<std::optional<std::int32_t>>& stock) {
  stock_batch out;
  std::vector<std::optional<std::int32_t>> current = stock;
  out.outcomes.resize(quantities.size());
  for (std::size_t i = 0; i < quantities.size(); i++)
    out.outcomes[i] = apply_rule(current[items.of_transaction[i]], quantities[i]);
  for (std::size_t k = 0; k < items.items.size(); k++) {
    if (!current[k]) continue;
    auto index = static_cast<std::uint32_t>(k);
    if (!stock[k])
      out.inserts.push_back({index, *current[k]});
    else if (*current[k] != *stock[k])
      out.updates.push_back({index, *current[k]});
  }
  return out;
}

std::vector<stock_ledger::final_stock> stock_ledger::changed() const {
  std::vector<final_stock> out;
  for (const auto& [item, e] : items_)
    if (e.loaded && e.stock && *e.stock != *e.loaded) out.push_back({item, *e.stock});
  std::sort(out.begin(), out.end(), [](const final_stock& a, const final_stock& b) { return a.item < b.item; });
  return out;
}

std::vector<stock_ledger::final_stock> stock_ledger::created() const {
  std::vector<final_stock> out;
  for (const auto& [item, e] : items_)
    if (!e.loaded && e.stock) out.push_back({item, *e.stock});
  std::sort(out.begin(), out.end(), [](const final_stock& a, const final_stock& b) { return a.item < b.item; });
  return out;
}

void window_summaries::add(std::string_view item, std::int64_t event_time_us, std::int32_t quantity, bool success) {
  window_summary& s = windows_[{window_start(event_time_us, width_us_), std::string(item)}];
  if (success) {
    s.succeeded++;
    s.volume += std::llabs(static_cast<long long>(quantity));
  } else {
    s.failed++;
  }
}

window_step place_in_windows(const batch_items& items, const std::vector<std::int32_t>& quantities,
                             const std::vector<std::int64_t>& event_times,
                             const std::vector<transaction_outcome>& outcomes, std::optional<std::int64_t> watermark,
                             std::int64_t clock_limit, std::int64_t width_us) {
  window_step step(width_us);
  for (std::size_t i = 0; i < event_times.size(); i++) {
    std::int64_t ts = event_times[i];
    if (is_future(ts, clock_limit)) {
      step.future_count++;
      continue;
    }
    if (watermark && window_end(window_start(ts, width_us), width_us) <= *watermark) {
      step.late_count++;
      step.late.add(items.items[items.of_transaction[i]], ts, quantities[i], outcomes[i].success);
    }
    step.newest = std::max(step.newest.value_or(ts), ts);
  }
  return step;
}

bool window_alerts(const window_summary& s, double failure_ratio, std::int64_t min_transactions) {
  std::int64_t total = s.succeeded + s.failed;
  return total > 0 && total >= min_transactions &&
         static_cast<double>(s.failed) > failure_ratio * static_cast<double>(total);
}

}  // namespace streamrec
