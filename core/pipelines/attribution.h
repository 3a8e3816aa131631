// attribution without PostgreSQL: which click a checkout is attributed to, and which stored
// attributions a batch of clicks corrects.
//
// A checkout (u, p, t) is attributed to the earliest click by u on p with time in
// [t - lookback, t]; at equal times the smaller click id wins and a click without an id comes
// last. The result must not depend on arrival order, so each side of the stream is a batch
// function over the keyed state of the other side:
//  * a checkout batch names, per distinct (user, product), the range of click times it needs
//    (checkout_probes); the trigger reads those clicks with one index probe per key, and
//    attribute_checkouts() gives each checkout its first click;
//  * a click batch names, per distinct (user, product), the range of checkout times it may win
//    (click_probes); the trigger reads the stored attributions there, and click_corrections()
//    gives the ones a click of the batch now beats.
// The trigger writes the results in checkout_id order (byte order, as COLLATE "C" sorts).
#pragma once

#include "core/postgres_free.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace streamrec {

struct attribution_options {
  std::int64_t lookback_us = std::int64_t{3600} * 1'000'000;
};

// A click as attribution keeps it.
struct click_ref {
  std::string id;  // empty when id_null
  bool id_null = false;
  std::int64_t time = 0;  // microseconds
};

// The order of two click ids (negative, zero, positive), as the database's collation sorts them.
using click_id_order = int (*)(std::string_view a, std::string_view b);
int bytewise_order(std::string_view a, std::string_view b);

// Whether click a is attributed before click b: the earlier time; at equal times an id before
// none, then the smaller id.
bool click_wins(const click_ref& a, const click_ref& b, click_id_order order);

// One (user, product) key of a batch and the times of the other side's rows it needs, in
// [from, to]. Probes come sorted by (user, product), bytewise, each key once.
struct key_range {
  std::string_view user;
  std::string_view product;
  std::int64_t from = 0;
  std::int64_t to = 0;
};

// ---- checkouts ----------------------------------------------------------------------------
struct checkout_event {
  std::string_view checkout_id;
  std::string_view user;
  std::string_view product;
  std::int64_t time = 0;
};

// Per distinct (user, product) of the batch: clicks in [earliest checkout - lookback, latest checkout].
std::vector<key_range> checkout_probes(const std::vector<checkout_event>& batch, const attribution_options& options);

// The distinct users of the batch, sorted bytewise (whose names enrich the attributions).
std::vector<std::string_view> checkout_users(const std::vector<checkout_event>& batch);

// One checkout's attribution: batch row `row`, and its click (none when no click qualifies).
struct checkout_attribution {
  std::size_t row = 0;
  std::optional<click_ref> click;
};

// Every checkout of the batch attributed, in checkout_id order (bytewise). clicks[i] holds the
// clicks read for probes[i] (any order; clicks outside a checkout's window are ignored).
std::vector<checkout_attribution> attribute_checkouts(const std::vector<checkout_event>& batch,
                                                      const attribution_options& options,
                                                      const std::vector<key_range>& probes,
                                                      const std::vector<std::vector<click_ref>>& clicks,
                                                      click_id_order order);

// ---- clicks -------------------------------------------------------------------------------
struct click_event {
  std::string_view click_id;
  bool click_id_null = false;
  std::string_view user;
  std::string_view product;
  bool product_null = false;  // a search: attributes nothing
  std::int64_t time = 0;
};

// Per distinct (user, product) of the batch's product clicks: attributed checkouts in
// [earliest click, latest click + lookback].
std::vector<key_range> click_probes(const std::vector<click_event>& batch, const attribution_options& options);

// A stored attribution: the checkout's time and its click (none: unattributed).
struct stored_attribution {
  std::string checkout_id;
  std::int64_t checkout_time = 0;
  std::optional<click_ref> click;
};

// A stored attribution the batch's best click beats.
struct attribution_correction {
  std::string checkout_id;
  click_ref click;
};

// The corrections of a click batch, in checkout_id order (bytewise): per stored attribution of
// stored[i] (read for probes[i]), the batch's best click of that (user, product) in
// [checkout time - lookback, checkout time], where it beats the stored click.
std::vector<attribution_correction> click_corrections(const std::vector<click_event>& batch,
                                                      const attribution_options& options,
                                                      const std::vector<key_range>& probes,
                                                      const std::vector<std::vector<stored_attribution>>& stored,
                                                      click_id_order order);

}  // namespace streamrec
