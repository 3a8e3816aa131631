// similar_products over one batch of page views, free of PostgreSQL: each view ranked against
// its user's keyed state (what the user bought, the lists shown to the user lately), the lists
// emitted, and each user's state brought up to date, so that the trigger reads a user's state
// once per batch and writes it back once.
//
// A user's shown state holds every list emitted to the user at or after `complete_since`, and
// only those within the repeat window of the newest one (older ones can matter only to a view
// older than the newest list by more than the window: such a view's user is read from the
// log instead, see needs_log()).
#pragma once

#include "core/postgres_free.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/pipelines/ranking.h"

namespace streamrec {

struct page_view {
  std::string_view user;
  std::string_view product;
  int64_t time = 0;  // event time, or the window's end
};

struct shown_list_entry {
  int64_t time = 0;  // the view's time of the list that showed it
  std::string product;
};

struct user_shown_state {
  std::vector<shown_list_entry> shown;    // in the order shown
  std::optional<int64_t> complete_since;  // nullopt: nothing known (read the log)
};

struct similar_products_options {
  int top_k = 6;
  repeat_policy repeats = repeat_policy::demote;
  int64_t repeat_window_us = 0;
};

struct emitted_list {
  std::size_t view = 0;  // index into the batch's views
  std::string_view category;
  std::vector<std::string_view> products;  // into the catalog
};

// Whether `state` lacks lists a view at `earliest` (the user's earliest view of the batch)
// needs: then the user's lists in [earliest - window, ...] come from the log.
bool needs_log(const user_shown_state& state, int64_t earliest, const similar_products_options& options);

// Replaces the state by what the log says from `since` on (the log holds every list emitted).
void reset_from_log(user_shown_state& state, int64_t since, std::vector<shown_list_entry> logged);

// Ranks `views` in order; lists emitted earlier in the batch count as shown for later views of
// the same user. `category_of` gives a product's category (nullptr when it is not in the
// inventory: the view is skipped); `bought` a user's purchased products. The states of the
// batch's users are updated (new lists added, entries outside the window of the newest
// dropped). *skipped counts views without a list.
template <typename CategoryOf, typename Bought>
std::vector<emitted_list> rank_page_views(const std::vector<page_view>& views, const product_catalog& catalog,
                                          CategoryOf&& category_of, Bought&& bought,
                                          std::unordered_map<std::string_view, user_shown_state>& states,
                                          const similar_products_options& options, int64_t* skipped);

// Drops the entries the state no longer needs (outside the window of its newest entry) and
// moves complete_since (when known) up to match.
void prune_shown(user_shown_state& state, const similar_products_options& options);

// --- implementation of the template ---------------------------------------------------------
template <typename CategoryOf, typename Bought>
std::vector<emitted_list> rank_page_views(const std::vector<page_view>& views, const product_catalog& catalog,
                                          CategoryOf&& category_of, Bought&& bought,
                                          std::unordered_map<std::string_view, user_shown_state>& states,
                                          const similar_products_options& options, int64_t* skipped) {
  std::vector<emitted_list> out;
  out.reserve(views.size());
  std::vector<std::string_view> shown;
  for (std::size_t i = 0; i < views.size(); i++) {
    const page_view& v = views[i];
    const std::string* category = category_of(v.product);
    if (category == nullptr) {
      (*skipped)++;
      continue;
    }
    user_shown_state& state = states[v.user];
    shown.clear();
    if (options.repeats != repeat_policy::allow)
      for (const shown_list_entry& e : state.shown)
        if (e.time >= v.time - options.repeat_window_us && e.time <= v.time) shown.push_back(e.product);
    const std::vector<std::string_view>& user_bought = bought(v.user);
    std::vector<std::string_view> ranked =
        catalog.rank(*category, v.product, user_bought, shown, options.repeats, options.top_k);
    if (ranked.empty()) {
      (*skipped)++;
      continue;
    }
    if (options.repeats != repeat_policy::allow) {
      for (std::string_view p : ranked) state.shown.push_back(shown_list_entry{v.time, std::string(p)});
    } else {
      // Not kept while repeats are allowed: a later change of policy reads the log.
      state.shown.clear();
      state.complete_since.reset();
    }
    out.push_back(emitted_list{i, *category, std::move(ranked)});
  }
  for (auto& [user, state] : states) prune_shown(state, options);
  return out;
}

}  // namespace streamrec
