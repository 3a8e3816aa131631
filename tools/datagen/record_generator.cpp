#include "tools/datagen/record_generator.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

#include "tools/datagen/prng.h"

namespace streamrec::datagen {

namespace {

// Independent random streams: each purpose draws from its own so that adding a field to one
// kind never changes the values of another.
enum stream : uint64_t {
  s_category = 1,
  s_stock,
  s_rating,
  s_price,
  s_product_name,
  s_popularity,
  s_clicks,
  s_anchor,
  s_anchor_user,
  s_anchor_product,
  s_purchases,
  s_person_name,
  s_checkouts,
  s_club,
  s_ratings,
  s_transactions,
  s_queries,
};

// Category names of the recommender's productInventory.csv (the first five); beyond the list,
// names repeat with a numeric suffix: toys-2, books-3, ...
constexpr std::string_view base_categories[] = {
    "accessories", "appliances", "health&beauty", "home&furniture", "toys", "electronics", "sports&outdoors", "books",
};

constexpr std::string_view adjectives[] = {
    "Compact", "Classic", "Cozy",     "Deluxe", "Eco",   "Foldable", "Handmade", "Heavy-Duty",
    "Mini",    "Modern",  "Portable", "Rustic", "Smart", "Soft",     "Sturdy",   "Vintage",
};
constexpr std::string_view nouns[] = {
    "Backpack", "Blender", "Bookshelf", "Candle", "Chair",   "Desk Lamp", "Headphones", "Kettle",
    "Mug",      "Puzzle",  "Rug",       "Scarf",  "Speaker", "Tent",      "Toaster",    "Wallet",
};
constexpr std::string_view first_names[] = {
    "Ada",  "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines",   "Jonas", "Kara",   "Liam",  "Maya",
    "Noor", "Oscar", "Priya", "Quinn",  "Rosa",  "Sven",  "Tariq", "Uma",  "Victor", "Wen",   "Ximena", "Yusuf", "Zoe",
};
constexpr std::string_view last_names[] = {
    "Abbott", "Baker",  "Castillo", "Dubois", "Eriksen", "Fischer",  "Garcia", "Haddad",
    "Ito",    "Jensen", "Kowalski", "Lopez",  "Moreau",  "Nakamura", "Okafor", "Petrov",
    "Quist",  "Rossi",  "Schmidt",  "Tanaka", "Usman",   "Varga",    "Weber",  "Yilmaz",
};
// One query holds a comma and one a quote so CSV consumers meet quoting in ordinary data.
constexpr std::string_view search_queries[] = {
    "running shoes", "desk lamp", "usb-c cable",        "coffee grinder",   "yoga mat",    "board game",
    "face cream",    "bookshelf", "red shoes, size 42", "wireless earbuds", "garden hose", "12\" frying pan",
};
constexpr std::string_view payment_methods[] = {"card",   "card",      "card",       "paypal",
                                                "paypal", "apple_pay", "google_pay", "gift_card"};
constexpr std::string_view unhappy_messages[] = {
    "Checkout kept failing on my phone", "Delivery took far too long", "The item arrived damaged",
    "Support never answered my email",   "Not as described",
};
constexpr std::string_view neutral_messages[] = {
    "It was fine, nothing special",
    "Average experience",
    "Could be better, could be worse",
};
constexpr std::string_view happy_messages[] = {
    "Great service, thank you", "Fast delivery and easy returns", "Love the new app", "Exactly what I wanted",
    "Will buy again",
};

template <size_t N>
std::string_view pick(const std::string_view (&list)[N], uint64_t draw) {
  return list[draw % N];
}

using ft = field_type;

std::vector<field_spec> fields_of(const generator_config& config) {
  switch (config.kind) {
    case record_kind::inventory:
      if (config.with_name) {
        return {{"product_id", ft::text, false},
                {"name", ft::text, false},
                {"category", ft::text, false},
                {"stock", ft::int32, false},
                {"rating", ft::int32, false}};
      }
      return {{"product_id", ft::text, false},
              {"category", ft::text, false},
              {"stock", ft::int32, false},
              {"rating", ft::int32, false}};
    case record_kind::clicks:
      return {{"click_id", ft::text, false},   {"user_id", ft::text, false}, {"product_id", ft::text, true},
              {"event_type", ft::text, false}, {"query", ft::text, true},    {"event_time", ft::timestamp, false}};
    case record_kind::purchases:
      return {{"invoice_id", ft::text, false}, {"user_id", ft::text, false},
              {"product_id", ft::text, false}, {"quantity", ft::int32, false},
              {"unit_cost", ft::cents, false}, {"purchase_time", ft::timestamp, false}};
    case record_kind::users:
      return {{"user_id", ft::text, false}, {"name", ft::text, false}};
    case record_kind::checkouts:
      return {{"checkout_id", ft::text, false},   {"user_id", ft::text, false},
              {"product_id", ft::text, false},    {"payment_method", ft::text, false},
              {"total_amount", ft::cents, false}, {"checkout_time", ft::timestamp, false}};
    case record_kind::customers:
      return {{"customer_id", ft::text, false},
              {"first_name", ft::text, false},
              {"last_name", ft::text, false},
              {"email", ft::text, false},
              {"club_status", ft::text, false}};
    case record_kind::ratings:
      return {{"rating_id", ft::text, false},       {"user_id", ft::text, false}, {"product_id", ft::text, true},
              {"stars", ft::int32, false},          {"channel", ft::text, false}, {"message", ft::text, false},
              {"rating_time", ft::timestamp, false}};
    case record_kind::item_transactions:
      return {{"transaction_id", ft::int64, false},
              {"item_id", ft::text, false},
              {"quantity", ft::int32, false},
              {"ts", ft::timestamp, false}};
    case record_kind::stock_queries:
      return {{"query_id", ft::int64, false}, {"item_id", ft::text, false}};
  }
  return {};
}

size_t key_field_of(record_kind kind) {
  switch (kind) {
    case record_kind::clicks:
    case record_kind::purchases:
    case record_kind::checkouts:
    case record_kind::ratings:
    case record_kind::item_transactions:
    case record_kind::stock_queries:
      return 1;  // user_id / item_id
    default:
      return 0;  // product_id / user_id / customer_id
  }
}

}  // namespace

std::string_view kind_name(record_kind kind) {
  switch (kind) {
    case record_kind::inventory:
      return "inventory";
    case record_kind::clicks:
      return "clicks";
    case record_kind::purchases:
      return "purchases";
    case record_kind::users:
      return "users";
    case record_kind::checkouts:
      return "checkouts";
    case record_kind::customers:
      return "customers";
    case record_kind::ratings:
      return "ratings";
    case record_kind::item_transactions:
      return "item_transactions";
    case record_kind::stock_queries:
      return "stock_queries";
  }
  return "?";
}

namespace {
constexpr record_kind every_kind[] = {
    record_kind::inventory,     record_kind::clicks,    record_kind::purchases, record_kind::users,
    record_kind::checkouts,     record_kind::customers, record_kind::ratings,   record_kind::item_transactions,
    record_kind::stock_queries,
};
}  // namespace

std::optional<record_kind> parse_kind(std::string_view name) {
  for (const record_kind kind : every_kind) {
    if (kind_name(kind) == name) return kind;
  }
  return std::nullopt;
}

std::string all_kind_names() {
  std::string names;
  for (const record_kind kind : every_kind) {
    if (!names.empty()) names += ", ";
    names += kind_name(kind);
  }
  return names;
}

bool is_dimension(record_kind kind) {
  return kind == record_kind::inventory || kind == record_kind::users || kind == record_kind::customers;
}

record_generator::record_generator(const generator_config& config)
    : config_(config), fields_(fields_of(config)), key_field_(key_field_of(config.kind)) {
  config_.products = std::max<uint64_t>(config_.products, 1);
  config_.categories = std::max<uint64_t>(config_.categories, 1);
  config_.users = std::max<uint64_t>(config_.users, 1);
  config_.clicks_per_checkout = std::max<uint32_t>(config_.clicks_per_checkout, 1);
  microseconds_per_event_ = 1e6 / config_.events_per_second;

  category_names_.reserve(config_.categories);
  constexpr uint64_t base_count = std::size(base_categories);
  for (uint64_t c = 0; c < config_.categories; ++c) {
    std::string name(base_categories[c % base_count]);
    if (c >= base_count) name += "-" + std::to_string(c / base_count + 1);
    category_names_.push_back(std::move(name));
  }

  // Popularity rank r maps to product (r * stride + shift) mod N: a permutation when stride and
  // N are coprime, so popular products are spread over ids and categories instead of being 0..k.
  const uint64_t n = config_.products;
  popularity_stride_ = std::max<uint64_t>(1, static_cast<uint64_t>(static_cast<double>(n) * 0.6180339887));
  while (std::gcd(popularity_stride_, n) != 1) ++popularity_stride_;
  popularity_shift_ = hash3(config_.seed, s_popularity, 0) % n;
}

// --- the universe --------------------------------------------------------------------------------

uint64_t record_generator::product_category(uint64_t product) const {
  // The first products cover every category once, so no category is empty when products >=
  // categories; the rest are spread at random.
  if (product < config_.categories) return product;
  return rng(config_.seed, s_category, product).below(config_.categories);
}

int64_t record_generator::product_stock(uint64_t product) const {
  rng r(config_.seed, s_stock, product);
  if (r.chance(0.1)) return 0;  // some sold out, so "in stock only" filters have work to do
  return r.between(1, 100);
}

int64_t record_generator::product_rating(uint64_t product) const {
  return rng(config_.seed, s_rating, product).between(1, 10);
}

int64_t record_generator::product_price_cents(uint64_t product) const {
  return rng(config_.seed, s_price, product).between(199, 49999);
}

uint64_t record_generator::popular_product(uint64_t random_bits) const {
  // Squaring a uniform variate skews ranks toward 0: rank 0 gets about 1/sqrt(N) of the draws.
  const double u = static_cast<double>(random_bits >> 11) * 0x1.0p-53;
  const auto n = config_.products;
  const auto rank = std::min<uint64_t>(n - 1, static_cast<uint64_t>(u * u * static_cast<double>(n)));
  if (n <= (uint64_t{1} << 31)) return (rank * popularity_stride_ + popularity_shift_) % n;  // no overflow
  return static_cast<uint64_t>((static_cast<unsigned __int128>(rank) * popularity_stride_ + popularity_shift_) % n);
}

int64_t record_generator::event_time_us(uint64_t index) const {
  return config_.start_time_us + static_cast<int64_t>(static_cast<double>(index) * microseconds_per_event_);
}

uint64_t record_generator::anchor_click(uint64_t checkout) const {
  const uint64_t k = config_.clicks_per_checkout;
  return checkout * k + rng(config_.seed, s_anchor, checkout).below(k);
}

uint64_t record_generator::anchor_user(uint64_t checkout) const {
  return rng(config_.seed, s_anchor_user, checkout).below(config_.users);
}

uint64_t record_generator::anchor_product(uint64_t checkout) const {
  return popular_product(rng(config_.seed, s_anchor_product, checkout).next());
}

int64_t record_generator::checkout_time_us(uint64_t checkout) const {
  // After the last click of the checkout's group, so after its anchor click; monotonic in the
  // checkout index, and within the hour while (K - 1) events take less than 59 minutes.
  const uint64_t k = config_.clicks_per_checkout;
  return event_time_us(checkout * k + k - 1) + checkout_lag_us;
}

// --- helpers ---------------------------------------------------------------------------------------

std::string_view record_generator::set_text(size_t slot, std::string_view prefix, uint64_t number) {
  std::string& s = text_[slot];
  s.assign(prefix);
  char digits[24];
  const auto res = std::to_chars(digits, digits + sizeof digits, number);
  s.append(digits, res.ptr);
  return s;
}

std::string_view record_generator::set_text(size_t slot, std::string_view text) {
  text_[slot].assign(text);
  return text_[slot];
}

void record_generator::generate(uint64_t index, record& out) {
  for (size_t i = 0; i < fields_.size(); ++i) out.values[i] = field_value{};
  out.key_field = key_field_;
  out.event_time_us.reset();
  switch (config_.kind) {
    case record_kind::inventory:
      inventory(index, out);
      break;
    case record_kind::clicks:
      clicks(index, out);
      break;
    case record_kind::purchases:
      purchases(index, out);
      break;
    case record_kind::users:
      users(index, out);
      break;
    case record_kind::checkouts:
      checkouts(index, out);
      break;
    case record_kind::customers:
      customers(index, out);
      break;
    case record_kind::ratings:
      ratings(index, out);
      break;
    case record_kind::item_transactions:
      item_transactions(index, out);
      break;
    case record_kind::stock_queries:
      stock_queries(index, out);
      break;
  }
}

// --- kinds ---------------------------------------------------------------------------------------------

void record_generator::inventory(uint64_t index, record& out) {
  // Dimension rows: ids wrap, so running past the universe re-emits rows (an upsert stream).
  const uint64_t product = index % config_.products;
  size_t f = 0;
  out.values[f++].text = set_text(0, "", product);
  if (config_.with_name) {
    rng r(config_.seed, s_product_name, product);
    std::string& name = text_[1];
    name.assign(pick(adjectives, r.next()));
    name += ' ';
    name += pick(nouns, r.next());
    out.values[f++].text = name;
  }
  out.values[f++].text = category_names_[product_category(product)];
  out.values[f++].number = product_stock(product);
  out.values[f++].number = product_rating(product);
}

void record_generator::clicks(uint64_t index, record& out) {
  rng r(config_.seed, s_clicks, index);
  const uint64_t k = config_.clicks_per_checkout;
  const uint64_t group = index / k;
  out.values[0].text = set_text(0, "", index);
  if (anchor_click(group) == index) {
    // The click a checkout will follow: same user and product, and a product event, never a
    // search, so attribution always has something to find.
    out.values[1].text = set_text(1, "user-", anchor_user(group));
    out.values[2].text = set_text(2, "", anchor_product(group));
    out.values[3].text = r.chance(0.5) ? "add_to_cart" : "page_view";
    out.values[4].is_null = true;
  } else {
    out.values[1].text = set_text(1, "user-", r.below(config_.users));
    const uint64_t event = r.below(100);
    if (event < 85) {
      out.values[2].text = set_text(2, "", popular_product(r.next()));
      out.values[3].text = "page_view";
      out.values[4].is_null = true;
    } else if (event < 93) {
      out.values[2].text = set_text(2, "", popular_product(r.next()));
      out.values[3].text = "add_to_cart";
      out.values[4].is_null = true;
    } else {
      out.values[2].is_null = true;
      out.values[3].text = "search";
      out.values[4].text = pick(search_queries, r.next());
    }
  }
  out.values[5].number = event_time_us(index);
  out.event_time_us = out.values[5].number;
}

void record_generator::purchases(uint64_t index, record& out) {
  rng r(config_.seed, s_purchases, index);
  const uint64_t product = popular_product(r.next());
  out.values[0].text = set_text(0, "", index);
  out.values[1].text = set_text(1, "user-", r.below(config_.users));
  out.values[2].text = set_text(2, "", product);
  const uint64_t q = r.below(10);
  out.values[3].number = q < 7 ? 1 : q < 9 ? 2 : r.between(3, 5);
  out.values[4].number = product_price_cents(product);
  out.values[5].number = event_time_us(index);
  out.event_time_us = out.values[5].number;
}

void record_generator::users(uint64_t index, record& out) {
  const uint64_t user = index % config_.users;
  rng r(config_.seed, s_person_name, user);
  out.values[0].text = set_text(0, "user-", user);
  std::string& name = text_[1];
  name.assign(pick(first_names, r.next()));
  name += ' ';
  name += pick(last_names, r.next());
  out.values[1].text = name;
}

void record_generator::checkouts(uint64_t index, record& out) {
  rng r(config_.seed, s_checkouts, index);
  uint64_t user;
  uint64_t product;
  if (r.chance(config_.unattributed_ratio)) {
    user = r.below(config_.users);
    product = r.below(config_.products);
  } else {
    user = anchor_user(index);
    product = anchor_product(index);
  }
  out.values[0].text = set_text(0, "", index);
  out.values[1].text = set_text(1, "user-", user);
  out.values[2].text = set_text(2, "", product);
  out.values[3].text = pick(payment_methods, r.next());
  out.values[4].number = product_price_cents(product) * r.between(1, 3);
  out.values[5].number = checkout_time_us(index);
  out.event_time_us = out.values[5].number;
}

void record_generator::customers(uint64_t index, record& out) {
  // Customer ids are 1..N like the customers table a CDC source fills; ratings refer to them.
  const uint64_t customer = index % config_.users + 1;
  rng names(config_.seed, s_person_name, customer);
  const std::string_view first = pick(first_names, names.next());
  const std::string_view last = pick(last_names, names.next());
  out.values[0].text = set_text(0, "", customer);
  out.values[1].text = first;
  out.values[2].text = last;
  std::string& email = text_[3];
  email.clear();
  for (const char c : first) email += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  email += '.';
  for (const char c : last) email += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  char digits[24];
  email.append(digits, std::to_chars(digits, digits + sizeof digits, customer).ptr);
  email += "@example.com";
  out.values[3].text = email;
  const uint64_t club = rng(config_.seed, s_club, customer).below(10);
  out.values[4].text = club < 1 ? "platinum" : club < 3 ? "gold" : club < 6 ? "silver" : "bronze";
}

void record_generator::ratings(uint64_t index, record& out) {
  rng r(config_.seed, s_ratings, index);
  out.values[0].text = set_text(0, "", index);
  out.values[1].text = set_text(1, "", r.below(config_.users) + 1);
  if (r.chance(0.1)) {
    out.values[2].is_null = true;  // a rating of the shop, not of a product
  } else {
    out.values[2].text = set_text(2, "", popular_product(r.next()));
  }
  const uint64_t s = r.below(10);
  const int64_t stars = s < 1 ? 1 : s < 2 ? 2 : s < 4 ? 3 : s < 7 ? 4 : 5;
  out.values[3].number = stars;
  const uint64_t c = r.below(20);
  out.values[4].text = c < 6 ? "iOS" : c < 12 ? "android" : c < 18 ? "web" : c < 19 ? "ios-test" : "web-TEST";
  out.values[5].text = stars <= 2   ? pick(unhappy_messages, r.next())
                       : stars == 3 ? pick(neutral_messages, r.next())
                                    : pick(happy_messages, r.next());
  out.values[6].number = event_time_us(index);
  out.event_time_us = out.values[6].number;
}

int64_t record_generator::simulate_transaction(uint64_t index, int64_t& quantity, uint64_t& item) {
  rng r(config_.seed, s_transactions, index);
  item = popular_product(r.next());
  int64_t& stock = stock_[item];
  if (r.chance(config_.fail_ratio)) {
    quantity = -(stock + 1 + r.between(0, 9));  // designed to overdraw: must fail
  } else if (stock == 0 || r.chance(0.3)) {
    quantity = r.between(1, 20);
  } else {
    quantity = -r.between(1, std::min<int64_t>(stock, 10));
  }
  if (stock + quantity >= 0) stock += quantity;
  return stock;
}

void record_generator::item_transactions(uint64_t index, record& out) {
  // Quantities depend on the stock each item has at that point (starting from the inventory
  // generated with the same seed), so the stream is replayed from 0 when asked out of order.
  if (stock_.empty() || index < next_transaction_) {
    stock_.resize(config_.products);
    for (uint64_t p = 0; p < config_.products; ++p) stock_[p] = product_stock(p);
    next_transaction_ = 0;
  }
  int64_t quantity = 0;
  uint64_t item = 0;
  while (next_transaction_ < index) simulate_transaction(next_transaction_++, quantity, item);
  simulate_transaction(index, quantity, item);
  next_transaction_ = index + 1;

  out.values[0].number = static_cast<int64_t>(index);
  out.values[1].text = set_text(1, "", item);
  out.values[2].number = quantity;
  out.values[3].number = event_time_us(index);
  out.event_time_us = out.values[3].number;
}

void record_generator::stock_queries(uint64_t index, record& out) {
  rng r(config_.seed, s_queries, index);
  out.values[0].number = static_cast<int64_t>(index);
  out.values[1].text = set_text(1, "", popular_product(r.next()));
}

}  // namespace streamrec::datagen
