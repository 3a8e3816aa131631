// The data generator's record model: which kinds exist, their fields (named and ordered like
// the domain tables of the extension, so a source maps them by name or position), and the
// deterministic generator that fills them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace streamrec::datagen {

enum class record_kind {
  inventory,
  clicks,
  purchases,
  users,
  checkouts,
  customers,
  ratings,
  item_transactions,
  stock_queries,
};

std::string_view kind_name(record_kind kind);
std::optional<record_kind> parse_kind(std::string_view name);
// Comma-separated list of every kind, for help and error texts.
std::string all_kind_names();
// Inventory, users and customers describe a fixed universe (one row per id); the rest are
// event streams with event times.
bool is_dimension(record_kind kind);

enum class field_type {
  text,
  int32,
  int64,
  cents,      // money as integer cents: "12.34" in text formats, double in Avro
  timestamp,  // epoch microseconds
};

struct field_spec {
  std::string_view name;
  field_type type;
  bool nullable;
};

struct field_value {
  bool is_null = false;
  std::string_view text;  // for field_type::text
  int64_t number = 0;     // for every other type
};

inline constexpr size_t max_fields = 8;

struct record {
  std::array<field_value, max_fields> values;
  // Index into values of the field used as the Kafka message key.
  size_t key_field = 0;
  // Event time in epoch microseconds; nullopt for dimension rows.
  std::optional<int64_t> event_time_us;
  std::string_view key() const { return values[key_field].text; }
};

struct generator_config {
  record_kind kind = record_kind::clicks;
  uint64_t seed = 1;
  uint64_t products = 200;
  uint64_t categories = 8;
  uint64_t users = 100;
  int64_t start_time_us = 0;
  double events_per_second = 10;
  // item_transactions: share of transactions built to fail by overdrawing the stock.
  double fail_ratio = 0.1;
  // inventory: add the name column (table order: product_id, name, category, stock, rating).
  bool with_name = false;
  // checkouts: one checkout per this many clicks; its click is one of those.
  uint32_t clicks_per_checkout = 4;
  // checkouts: share whose user and product are drawn at random instead of from a click.
  double unattributed_ratio = 0.1;
};

// Seconds between a checkout and the last click of its group (see checkout_time_us).
inline constexpr int64_t checkout_lag_us = 60'000'000;

class record_generator {
 public:
  explicit record_generator(const generator_config& config);

  const std::vector<field_spec>& fields() const { return fields_; }
  const generator_config& config() const { return config_; }

  // Fills `out` with record `index` of the configured kind. Text views point into the
  // generator and stay valid until the next call. Every kind except item_transactions is a pure
  // function of the index; item_transactions replays the stock simulation when indexes go
  // backwards or skip ahead, so sequential calls are O(1).
  void generate(uint64_t index, record& out);

  // The universe, exposed for tests and for readers who want to check a pipeline's output.
  std::string_view category_name(uint64_t category) const { return category_names_[category]; }
  uint64_t product_category(uint64_t product) const;
  int64_t product_stock(uint64_t product) const;
  int64_t product_rating(uint64_t product) const;
  int64_t product_price_cents(uint64_t product) const;
  // Event time of record `index` of an event stream (clicks' index space for checkouts).
  int64_t event_time_us(uint64_t index) const;
  // Which click of group `checkout` (clicks checkout*K .. checkout*K+K-1) a checkout follows.
  uint64_t anchor_click(uint64_t checkout) const;
  int64_t checkout_time_us(uint64_t checkout) const;

 private:
  void inventory(uint64_t index, record& out);
  void clicks(uint64_t index, record& out);
  void purchases(uint64_t index, record& out);
  void users(uint64_t index, record& out);
  void checkouts(uint64_t index, record& out);
  void customers(uint64_t index, record& out);
  void ratings(uint64_t index, record& out);
  void item_transactions(uint64_t index, record& out);
  void stock_queries(uint64_t index, record& out);

  // A product id drawn with a popularity skew (a few products get most views, like real shops).
  uint64_t popular_product(uint64_t random_bits) const;
  uint64_t anchor_user(uint64_t checkout) const;
  uint64_t anchor_product(uint64_t checkout) const;
  int64_t simulate_transaction(uint64_t index, int64_t& quantity, uint64_t& item);

  std::string_view set_text(size_t slot, std::string_view prefix, uint64_t number);
  std::string_view set_text(size_t slot, std::string_view text);

  generator_config config_;
  std::vector<field_spec> fields_;
  size_t key_field_ = 0;
  std::vector<std::string> category_names_;
  uint64_t popularity_stride_ = 1;
  uint64_t popularity_shift_ = 0;
  double microseconds_per_event_ = 100'000;
  // Per-field scratch buffers: reused, so steady-state generation does not allocate.
  std::array<std::string, max_fields> text_;
  // item_transactions: simulated stock per product and the next index the simulation expects.
  std::vector<int64_t> stock_;
  uint64_t next_transaction_ = 0;
};

}  // namespace streamrec::datagen
