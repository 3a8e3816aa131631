#include "core/pipelines/similar_products.h"

#include <algorithm>

namespace streamrec {

bool needs_log(const user_shown_state& state, int64_t earliest, const similar_products_options& options) {
  if (options.repeats == repeat_policy::allow) return false;
  return !state.complete_since || earliest - options.repeat_window_us < *state.complete_since;
}

void reset_from_log(user_shown_state& state, int64_t since, std::vector<shown_list_entry> logged) {
  state.shown = std::move(logged);
  state.complete_since = since;
}

void prune_shown(user_shown_state& state, const similar_products_options& options) {
  if (state.shown.empty()) return;
  int64_t newest = state.shown.front().time;
  for (const shown_list_entry& e : state.shown) newest = std::max(newest, e.time);
  int64_t horizon = newest - options.repeat_window_us;
  state.shown.erase(std::remove_if(state.shown.begin(), state.shown.end(),
                                   [horizon](const shown_list_entry& e) { return e.time < horizon; }),
                    state.shown.end());
  if (state.complete_since && *state.complete_since < horizon) state.complete_since = horizon;
}

}  // namespace streamrec
