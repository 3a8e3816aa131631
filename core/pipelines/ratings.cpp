#include "core/pipelines/ratings.h"

#include <algorithm>

#include "core/event_time.h"

namespace streamrec {

std::optional<bool> test_channel(std::string_view channel) {
  for (unsigned char c : channel)
    if (c >= 0x80) return std::nullopt;
  constexpr std::string_view kWord = "test";
  if (channel.size() < kWord.size()) return false;
  for (std::size_t i = 0; i + kWord.size() <= channel.size(); i++) {
    std::size_t k = 0;
    while (k < kWord.size()) {
      char c = channel[i + k];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != kWord[k]) break;
      k++;
    }
    if (k == kWord.size()) return true;
  }
  return false;
}

std::vector<std::string_view> rating_customer_keys(const std::vector<rating_row>& batch) {
  std::vector<std::string_view> keys;
  keys.reserve(batch.size());
  for (const rating_row& r : batch)
    if (!r.test) keys.push_back(r.user_id);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

ratings_plan plan_ratings(const std::vector<rating_row>& batch, const std::vector<rating_customer>& customers) {
  ratings_plan plan;
  std::vector<product_rating_sum> products;
  for (std::size_t i = 0; i < batch.size(); i++) {
    const rating_row& r = batch[i];
    if (r.test) {
      plan.test.push_back(i);
      continue;
    }
    if (r.product_id) products.push_back({*r.product_id, 1, r.stars});
    auto c = std::lower_bound(customers.begin(), customers.end(), r.user_id,
                              [](const rating_customer& a, std::string_view id) { return a.customer_id < id; });
    if (c == customers.end() || c->customer_id != r.user_id) {
      plan.skipped++;
      continue;
    }
    if (r.stars < 3 && c->platinum) plan.unhappy.push_back(plan.enriched.size());
    plan.enriched.push_back({i, &*c});
  }
  // Per product, in byte order (stable: equal keys merge in any order, sums commute).
  std::sort(products.begin(), products.end(),
            [](const product_rating_sum& a, const product_rating_sum& b) { return a.product_id < b.product_id; });
  for (const product_rating_sum& p : products) {
    if (!plan.products.empty() && plan.products.back().product_id == p.product_id) {
      plan.products.back().ratings += p.ratings;
      plan.products.back().stars += p.stars;
    } else {
      plan.products.push_back(p);
    }
  }
  return plan;
}

ratings_windowed window_ratings(const std::vector<rating_row>& batch, const ratings_plan& plan,
                                std::int64_t status_width_us, std::int64_t customer_width_us,
                                std::optional<std::int64_t> watermark, std::int64_t clock_limit) {
  ratings_windowed out{rating_windows(status_width_us, customer_width_us, watermark), 0, std::nullopt};
  for (const enriched_rating& e : plan.enriched) {
    const rating_row& r = batch[e.row];
    if (is_future(r.time_us, clock_limit)) {
      out.future++;
      continue;
    }
    const rating_customer& c = *e.customer;
    out.windows.add(r.time_us, c.club_status.value_or("none"), c.customer_id, c.full_name.value_or(""), r.stars);
    out.newest = std::max(out.newest.value_or(r.time_us), r.time_us);
  }
  return out;
}

}  // namespace streamrec
