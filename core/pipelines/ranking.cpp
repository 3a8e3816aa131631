#include "core/pipelines/ranking.h"

#include <algorithm>
#include <stdexcept>

namespace streamrec {

std::optional<repeat_policy> parse_repeat_policy(std::string_view text) {
  if (text == "demote") return repeat_policy::demote;
  if (text == "exclude") return repeat_policy::exclude;
  if (text == "allow") return repeat_policy::allow;
  return std::nullopt;
}

void product_catalog::add(std::string_view category, std::string_view product_id, std::optional<float> rating) {
  if (finished_) throw std::logic_error("product_catalog::add after finish");
  auto it = categories_.find(category);
  if (it == categories_.end()) {
    std::string_view name = category_names_.emplace_back(category);
    it = categories_.emplace(name, static_cast<std::uint32_t>(members_.size())).first;
    members_.emplace_back();
  }
  product p;
  p.id = std::string(product_id);
  p.rating = rating;
  p.category = it->second;
  members_[p.category].push_back(static_cast<std::uint32_t>(products_.size()));
  products_.push_back(std::move(p));
}

void product_catalog::finish() {
  auto better = [this](std::uint32_t a, std::uint32_t b) {
    const product& x = products_[a];
    const product& y = products_[b];
    if (x.rating.has_value() != y.rating.has_value()) return x.rating.has_value();
    if (x.rating && *x.rating != *y.rating) return *x.rating > *y.rating;
    return x.id < y.id;
  };
  for (auto& list : members_) {
    std::sort(list.begin(), list.end(), better);
    for (std::uint32_t i = 0; i < list.size(); i++) products_[list[i]].position = i;
  }
  by_id_.reserve(products_.size());
  for (std::uint32_t i = 0; i < products_.size(); i++) by_id_.emplace(products_[i].id, i);
  finished_ = true;
}

std::vector<std::uint32_t> product_catalog::positions_in(std::uint32_t category,
                                                         const std::vector<std::string_view>& ids) const {
  std::vector<std::uint32_t> out;
  for (std::string_view id : ids) {
    auto it = by_id_.find(id);
    if (it != by_id_.end() && products_[it->second].category == category) out.push_back(products_[it->second].position);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::string_view> product_catalog::rank(std::string_view category, std::string_view viewed,
                                                    const std::vector<std::string_view>& bought,
                                                    const std::vector<std::string_view>& shown, repeat_policy repeats,
                                                    int k) const {
  if (!finished_) throw std::logic_error("product_catalog::rank before finish");
  std::vector<std::string_view> out;
  auto cat = categories_.find(category);
  if (cat == categories_.end() || k <= 0) return out;
  const std::vector<std::uint32_t>& members = members_[cat->second];
  const std::size_t want = static_cast<std::size_t>(k);

  std::vector<std::uint32_t> bought_pos = positions_in(cat->second, bought);
  std::vector<std::uint32_t> shown_pos =
      repeats == repeat_policy::allow ? std::vector<std::uint32_t>{} : positions_in(cat->second, shown);
  auto contains = [](const std::vector<std::uint32_t>& sorted, std::uint32_t v) {
    return std::binary_search(sorted.begin(), sorted.end(), v);
  };
  auto is_viewed = [&](std::uint32_t pos) { return products_[members[pos]].id == viewed; };

  // 1. bought before, not shown recently.
  for (std::uint32_t pos : bought_pos) {
    if (out.size() == want) return out;
    if (!is_viewed(pos) && !contains(shown_pos, pos)) out.push_back(products_[members[pos]].id);
  }
  // 2. everything else in the category, best first.
  for (std::uint32_t pos = 0; pos < members.size() && out.size() < want; pos++) {
    if (is_viewed(pos) || contains(bought_pos, pos) || contains(shown_pos, pos)) continue;
    out.push_back(products_[members[pos]].id);
  }
  // 3. demoted: shown recently, bought first, then best first.
  if (repeats == repeat_policy::demote && out.size() < want) {
    std::vector<std::uint32_t> demoted;
    for (std::uint32_t pos : shown_pos)
      if (!is_viewed(pos) && contains(bought_pos, pos)) demoted.push_back(pos);
    for (std::uint32_t pos : shown_pos)
      if (!is_viewed(pos) && !contains(bought_pos, pos)) demoted.push_back(pos);
    for (std::uint32_t pos : demoted) {
      if (out.size() == want) break;
      out.push_back(products_[members[pos]].id);
    }
  }
  return out;
}

}  // namespace streamrec
