// The ratings pipeline without PostgreSQL: what one batch of ratings writes, given the
// customers it names (read once per distinct customer) and, for the windows, the clock.
//
// A batch is split in two steps because the clock row is locked after the product rows:
//   plan_ratings()   test traffic apart; live ratings of known customers enriched (input
//                    order), unhappy platinum customers among them; per-product sums in the
//                    byte order of product_id (the upserts' lock order); the counters.
//   window_ratings() with the clock locked: the enriched ratings summed per event-time window
//                    (rating_windows), future ones left out, the newest on-time event time.
#pragma once

#include "core/postgres_free.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/pipelines/rating_windows.h"

namespace streamrec {

// One rating of the batch; the views point into the caller's batch columns.
struct rating_row {
  std::optional<std::string_view> rating_id;
  std::string_view user_id;
  std::optional<std::string_view> product_id;
  std::int32_t stars = 0;
  std::optional<std::string_view> channel;
  std::optional<std::string_view> message;
  std::int64_t time_us = 0;  // rating_time
  bool test = false;         // channel ILIKE '%test%' (the caller decides, see test_channel)
};

// A customer as the enrichment reads it.
struct rating_customer {
  std::string_view customer_id;
  std::optional<std::string_view> full_name;    // nullif(concat_ws(' ', first, last), '')
  std::optional<std::string_view> club_status;  // as stored
  std::optional<std::string_view> email;
  bool platinum = false;  // lower(club_status) = 'platinum'
};

// channel ILIKE '%test%' when the answer does not depend on the collation: a channel of ASCII
// characters only (no other character lower-cases to t, e or s). nullopt: the caller asks
// PostgreSQL.
std::optional<bool> test_channel(std::string_view channel);

// The distinct user_ids of the batch's live ratings in byte order: the keys to read customers by.
std::vector<std::string_view> rating_customer_keys(const std::vector<rating_row>& batch);

struct product_rating_sum {
  std::string_view product_id;
  std::int64_t ratings = 0;
  std::int64_t stars = 0;
};

// inventory.rating for a product's sums: (stars::float8 / ratings)::real, as the SQL computed it.
inline float product_rating(std::int64_t ratings, std::int64_t stars) {
  return static_cast<float>(static_cast<double>(stars) / static_cast<double>(ratings));
}

struct enriched_rating {
  std::size_t row;                  // index into the batch
  const rating_customer* customer;  // into the customers given
};

struct ratings_plan {
  std::vector<std::size_t> test;             // rows for test_ratings, input order
  std::vector<enriched_rating> enriched;     // ratings_enriched, input order
  std::vector<std::size_t> unhappy;          // indexes into enriched: unhappy_customers
  std::vector<product_rating_sum> products;  // live ratings with a product_id, byte order
  std::int64_t skipped = 0;                  // live ratings of unknown customers
};

// customers: the customers found for rating_customer_keys(batch), sorted by customer_id (byte
// order), each at most once.
ratings_plan plan_ratings(const std::vector<rating_row>& batch, const std::vector<rating_customer>& customers);

struct ratings_windowed {
  rating_windows windows;
  std::int64_t future = 0;             // beyond the clock limit: in no window, moving no clock
  std::optional<std::int64_t> newest;  // newest event time of the others (the clock's input)
};

// The enriched ratings in input order through the windows (widths in microseconds), against the
// watermark before this batch and the clock limit now.
ratings_windowed window_ratings(const std::vector<rating_row>& batch, const ratings_plan& plan,
                                std::int64_t status_width_us, std::int64_t customer_width_us,
                                std::optional<std::int64_t> watermark, std::int64_t clock_limit);

}  // namespace streamrec
