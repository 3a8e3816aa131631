// The similar-products ranking, free of PostgreSQL so that the trigger,
// streamrec.recommend() and the unit tests share one implementation.
//
// A product_catalog holds the candidates of some categories (in stock, passing min_rating),
// each category sorted best first: rating descending (unrated last), then product_id. Ranking
// one page view then costs O(k + bought + shown) map probes, not a pass over the category:
//   1. products the user bought before and was not shown recently, best first;
//   2. the rest of the category, best first, skipping the viewed, bought and shown ones;
//   3. with repeats = demote, the recently shown ones last (bought first among them).
#pragma once

#include "core/postgres_free.h"

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace streamrec {

enum class repeat_policy { demote, exclude, allow };

// Parses "demote" / "exclude" / "allow"; nullopt for anything else.
std::optional<repeat_policy> parse_repeat_policy(std::string_view text);

class product_catalog {
 public:
  // Adds an in-stock candidate. Call finish() once all are added, before ranking.
  void add(std::string_view category, std::string_view product_id, std::optional<float> rating);
  void finish();

  // The top k for a view of `viewed` in `category` by a user who bought `bought` and was shown
  // `shown` within the repeat window. Views into this catalog's strings; fewer than k when the
  // category has fewer candidates.
  std::vector<std::string_view> rank(std::string_view category, std::string_view viewed,
                                     const std::vector<std::string_view>& bought,
                                     const std::vector<std::string_view>& shown, repeat_policy repeats, int k) const;

 private:
  struct product {
    std::string id;
    std::optional<float> rating;
    std::uint32_t category = 0;
    std::uint32_t position = 0;  // index in its category's best-first order
  };
  // Positions (in the category's order) of those of `ids` that are candidates of `category`.
  std::vector<std::uint32_t> positions_in(std::uint32_t category, const std::vector<std::string_view>& ids) const;

  std::vector<product> products_;
  std::deque<std::string> category_names_;                          // stable storage for the keys below
  std::unordered_map<std::string_view, std::uint32_t> categories_;  // name -> index
  std::vector<std::vector<std::uint32_t>> members_;                 // per category: products_, best first
  std::unordered_map<std::string_view, std::uint32_t> by_id_;       // product_id -> products_ index
  bool finished_ = false;
};

}  // namespace streamrec
