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

transaction_outcome stock_ledger::apply(std::string_view item, std::int32_t quantity) {
  entry& e = items_[std::string(item)];  // a new entry is an unknown item
  std::int64_t before = e.stock.value_or(0);
  std::int64_t after = before + quantity;
  bool fits = after >= 0 && after <= std::numeric_limits<std::int32_t>::max();
  if (!e.stock) {
    if (quantity > 0) {
      e.stock = quantity;
      return {true, e.stock};
    }
    return {false, std::nullopt};
  }
  if (fits) e.stock = static_cast<std::int32_t>(after);
  return {fits, e.stock};
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

bool window_alerts(const window_summary& s, double failure_ratio, std::int64_t min_transactions) {
  std::int64_t total = s.succeeded + s.failed;
  return total > 0 && total >= min_transactions &&
         static_cast<double>(s.failed) > failure_ratio * static_cast<double>(total);
}

}  // namespace streamrec
