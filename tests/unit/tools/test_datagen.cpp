// The data generator: determinism, shapes per kind, and the correlations pipelines rely on
// (checkouts follow clicks, transactions fail at the requested ratio).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "tools/datagen/datagen_options.h"
#include "tools/datagen/datagen_run.h"
#include "core/formats/confluent_avro.h"
#include "core/formats/timestamp_text.h"

namespace streamrec::datagen {
namespace {

datagen_options options_for(const std::vector<std::string>& args) { return parse_datagen_arguments(args); }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// RFC 4180 for one line; returns nullopt for NULL (unquoted empty) fields.
std::vector<std::optional<std::string>> split_csv(const std::string& line) {
  std::vector<std::optional<std::string>> fields;
  size_t i = 0;
  while (true) {
    std::string value;
    bool quoted = false;
    if (i < line.size() && line[i] == '"') {
      quoted = true;
      ++i;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            value += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        value += line[i++];
      }
    } else {
      while (i < line.size() && line[i] != ',') value += line[i++];
    }
    fields.push_back(quoted || !value.empty() ? std::optional<std::string>(value) : std::nullopt);
    if (i >= line.size()) break;
    EXPECT_EQ(line[i], ',') << line;
    ++i;
  }
  return fields;
}

std::vector<std::vector<std::optional<std::string>>> csv_rows(const std::vector<std::string>& args) {
  std::vector<std::vector<std::optional<std::string>>> rows;
  for (const std::string& line : lines_of(generate_to_string(options_for(args)))) rows.push_back(split_csv(line));
  return rows;
}

int64_t sql_time(const std::string& text) {
  const auto t = parse_iso8601(text);
  EXPECT_TRUE(t.has_value()) << text;
  return t.value_or(0);
}

TEST(Datagen, SameSeedSameBytesDifferentSeedDifferentBytes) {
  for (const char* kind : {"inventory", "clicks", "purchases", "users", "checkouts", "customers", "ratings",
                           "item_transactions", "stock_queries"}) {
    for (const char* format : {"csv", "json"}) {
      const auto a = generate_to_string(options_for({kind, "--format", format, "--count", "500", "--seed", "42"}));
      const auto b = generate_to_string(options_for({kind, "--format", format, "--count", "500", "--seed", "42"}));
      const auto c = generate_to_string(options_for({kind, "--format", format, "--count", "500", "--seed", "43"}));
      EXPECT_EQ(a, b) << kind << " " << format;
      EXPECT_NE(a, c) << kind << " " << format;
      EXPECT_EQ(lines_of(a).size(), 500u) << kind;
    }
  }
  const auto avro_a =
      generate_to_string(options_for({"clicks", "--format", "avro", "--schema-id", "3", "--count", "300"}), 3);
  const auto avro_b =
      generate_to_string(options_for({"clicks", "--format", "avro", "--schema-id", "3", "--count", "300"}), 3);
  EXPECT_EQ(avro_a, avro_b);
}

TEST(Datagen, KnownValuesAreStable) {
  // Pin a few records so an accidental change to the generator (which would silently change
  // every fixture built on it) fails here first. Update deliberately if the generator changes.
  EXPECT_EQ(lines_of(generate_to_string(options_for({"inventory", "--count", "1"})))[0], "0,accessories,47,8");
  EXPECT_EQ(lines_of(generate_to_string(options_for({"clicks", "--count", "1"})))[0],
            "0,user-2,20,page_view,,2024-06-28 13:00:00");
  EXPECT_EQ(lines_of(generate_to_string(options_for({"checkouts", "--count", "1"})))[0],
            "0,user-25,50,paypal,173.10,2024-06-28 13:01:00");
}

TEST(Datagen, InventoryMatchesSeedCsvShape) {
  const auto rows = csv_rows({"inventory"});
  ASSERT_EQ(rows.size(), 200u);  // default --products
  const std::set<std::string> categories = {"accessories", "appliances",  "health&beauty",   "home&furniture",
                                            "toys",        "electronics", "sports&outdoors", "books"};
  int zero_stock = 0;
  std::set<std::string> seen_categories;
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), 4u);
    EXPECT_EQ(*rows[i][0], std::to_string(i));
    EXPECT_TRUE(categories.count(*rows[i][1])) << *rows[i][1];
    seen_categories.insert(*rows[i][1]);
    const int stock = std::stoi(*rows[i][2]);
    const int rating = std::stoi(*rows[i][3]);
    EXPECT_GE(stock, 0);
    EXPECT_LE(stock, 100);
    EXPECT_GE(rating, 1);
    EXPECT_LE(rating, 10);
    EXPECT_EQ(std::to_string(stock), *rows[i][2]);  // plain integers, as the table's CSV load expects
    EXPECT_EQ(std::to_string(rating), *rows[i][3]);
    zero_stock += stock == 0;
  }
  EXPECT_EQ(seen_categories.size(), categories.size());
  EXPECT_GT(zero_stock, 5);
  EXPECT_LT(zero_stock, 50);
}

TEST(Datagen, ManyCategoriesExtendSeedNames) {
  const auto rows = csv_rows({"inventory", "--products", "100", "--categories", "20"});
  std::set<std::string> names;
  for (const auto& row : rows) names.insert(*row[1]);
  EXPECT_EQ(names.size(), 20u);
  EXPECT_TRUE(names.count("toys-2"));
  EXPECT_TRUE(names.count("accessories-3"));
}

TEST(Datagen, InventoryWithNameUsesTableOrder) {
  const std::string json =
      generate_to_string(options_for({"inventory", "--with-name", "--format", "json", "--count", "5"}));
  simdjson::dom::parser parser;
  for (const std::string& line : lines_of(json)) {
    simdjson::dom::object object = parser.parse(line).get_object();
    std::vector<std::string> keys;
    for (auto field : object) keys.emplace_back(field.key);
    EXPECT_EQ(keys, (std::vector<std::string>{"product_id", "name", "category", "stock", "rating"}));
  }
  const auto rows = csv_rows({"inventory", "--with-name", "--count", "5"});
  EXPECT_EQ(rows[0].size(), 5u);
}

TEST(Datagen, EveryKindHasItsTableColumns) {
  const std::map<std::string, std::vector<std::string>> columns = {
      {"clicks", {"click_id", "user_id", "product_id", "event_type", "query", "event_time"}},
      {"purchases", {"invoice_id", "user_id", "product_id", "quantity", "unit_cost", "purchase_time"}},
      {"users", {"user_id", "name"}},
      {"checkouts", {"checkout_id", "user_id", "product_id", "payment_method", "total_amount", "checkout_time"}},
      {"customers", {"customer_id", "first_name", "last_name", "email", "club_status"}},
      {"ratings", {"rating_id", "user_id", "product_id", "stars", "channel", "message", "rating_time"}},
      {"item_transactions", {"transaction_id", "item_id", "quantity", "ts"}},
      {"stock_queries", {"query_id", "item_id"}},
      {"inventory", {"product_id", "category", "stock", "rating"}},
  };
  simdjson::dom::parser parser;
  for (const auto& [kind, names] : columns) {
    for (const auto& row : csv_rows({kind, "--count", "300"})) ASSERT_EQ(row.size(), names.size()) << kind;
    const std::string json = generate_to_string(options_for({kind, "--format", "json", "--count", "300"}));
    for (const std::string& line : lines_of(json)) {
      simdjson::dom::object object;
      ASSERT_EQ(parser.parse(line).get_object().get(object), simdjson::SUCCESS) << line;
      std::vector<std::string> keys;
      for (auto field : object) keys.emplace_back(field.key);
      ASSERT_EQ(keys, names) << kind;
    }
    // --header names the same columns.
    datagen_options o = options_for({kind, "--count", "1", "--header"});
    record_generator g(o.generator);
    EXPECT_EQ(split_csv(csv_header(g.fields())).size(), names.size());
  }
}

TEST(Datagen, ClickShapes) {
  std::map<std::string, int> event_types;
  const auto rows = csv_rows({"clicks", "--count", "5000", "--users", "50"});
  int64_t previous = INT64_MIN;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    EXPECT_EQ(*row[0], std::to_string(i));
    ASSERT_EQ(row[1]->rfind("user-", 0), 0u);
    EXPECT_LT(std::stoi(row[1]->substr(5)), 50);
    ++event_types[*row[3]];
    if (*row[3] == "search") {
      EXPECT_FALSE(row[2].has_value());
      EXPECT_TRUE(row[4].has_value());
    } else {
      EXPECT_TRUE(row[2].has_value());
      EXPECT_FALSE(row[4].has_value());
    }
    const int64_t t = sql_time(*row[5]);
    EXPECT_GE(t, previous);
    previous = t;
  }
  EXPECT_GT(event_types["page_view"], 3500);
  EXPECT_GT(event_types["add_to_cart"], 200);
  EXPECT_GT(event_types["search"], 100);
  EXPECT_EQ(event_types.size(), 3u);
  // 10 events per second by default: 5000 events span 500 s from the default start.
  EXPECT_EQ(*rows.front()[5], "2024-06-28 13:00:00");
  EXPECT_EQ(*rows.back()[5], "2024-06-28 13:08:19");
}

TEST(Datagen, JsonTimestampsAndNulls) {
  const std::string json =
      generate_to_string(options_for({"clicks", "--format", "json", "--count", "200", "--start-time",
                                      "2024-01-01T00:00:00Z", "--events-per-second", "4"}));
  simdjson::dom::parser parser;
  const auto lines = lines_of(json);
  simdjson::dom::element second = parser.parse(lines[1]);
  EXPECT_EQ(std::string_view(second["event_time"]), "2024-01-01T00:00:00.250Z");
  bool saw_null_query = false;
  for (const std::string& line : lines) {
    simdjson::dom::element e = parser.parse(line);
    saw_null_query |= e["query"].is_null();
  }
  EXPECT_TRUE(saw_null_query);
}

TEST(Datagen, CheckoutsFollowAClickWithinTheHour) {
  const int checkouts = 2000;
  const auto clicks = csv_rows({"clicks", "--count", std::to_string(checkouts * 4), "--seed", "9"});
  const auto orders = csv_rows({"checkouts", "--count", std::to_string(checkouts), "--seed", "9"});
  std::map<std::pair<std::string, std::string>, std::vector<int64_t>> click_times;
  for (const auto& c : clicks) {
    if (c[2]) click_times[{*c[1], *c[2]}].push_back(sql_time(*c[5]));
  }
  int attributed = 0;
  int64_t previous = INT64_MIN;
  for (const auto& o : orders) {
    const int64_t t = sql_time(*o[5]);
    EXPECT_GE(t, previous);  // checkout times never go backwards
    previous = t;
    const auto found = click_times.find({*o[1], *o[2]});
    if (found == click_times.end()) continue;
    for (const int64_t click : found->second) {
      if (click <= t && click >= t - int64_t{3600} * 1'000'000) {
        ++attributed;
        break;
      }
    }
  }
  // 90% follow their anchor click; some of the random 10% hit a click by chance.
  EXPECT_GE(attributed, checkouts * 88 / 100);
  EXPECT_LT(attributed, checkouts);  // and some do not: attribution must handle "no click"
}

TEST(Datagen, AnchorClickMatchesCheckout) {
  datagen_options o = options_for({"clicks", "--seed", "5"});
  record_generator clicks(o.generator);
  o.generator.kind = record_kind::checkouts;
  o.generator.unattributed_ratio = 0;
  record_generator checkouts(o.generator);
  record click;
  record checkout;
  for (uint64_t j = 0; j < 500; ++j) {
    checkouts.generate(j, checkout);
    clicks.generate(checkouts.anchor_click(j), click);
    EXPECT_EQ(click.values[1].text, checkout.values[1].text);
    EXPECT_EQ(click.values[2].text, checkout.values[2].text);
    EXPECT_NE(click.values[3].text, "search");
    EXPECT_LT(click.values[5].number, checkout.values[5].number);
    EXPECT_GT(click.values[5].number, checkout.values[5].number - int64_t{3600} * 1'000'000);
  }
}

TEST(Datagen, TransactionsFailAtTheRequestedRatio) {
  const auto inventory = csv_rows({"inventory", "--products", "50"});
  const auto transactions =
      csv_rows({"item_transactions", "--products", "50", "--count", "20000", "--fail-ratio", "0.2"});
  std::map<std::string, int64_t> stock;
  for (const auto& row : inventory) stock[*row[0]] = std::stoll(*row[2]);
  int failed = 0;
  for (size_t i = 0; i < transactions.size(); ++i) {
    const auto& row = transactions[i];
    EXPECT_EQ(*row[0], std::to_string(i));
    ASSERT_TRUE(stock.count(*row[1])) << *row[1];
    const int64_t quantity = std::stoll(*row[2]);
    EXPECT_NE(quantity, 0);
    int64_t& s = stock[*row[1]];
    if (s + quantity < 0) {
      ++failed;
    } else {
      s += quantity;
    }
  }
  EXPECT_NEAR(failed / 20000.0, 0.2, 0.015);
  // No failures requested, none happen.
  const auto clean = csv_rows({"item_transactions", "--products", "50", "--count", "5000", "--fail-ratio", "0"});
  std::map<std::string, int64_t> stock2;
  for (const auto& row : inventory) stock2[*row[0]] = std::stoll(*row[2]);
  for (const auto& row : clean) {
    int64_t& s = stock2[*row[1]];
    s += std::stoll(*row[2]);
    ASSERT_GE(s, 0);
  }
}

TEST(Datagen, StartIndexContinuesAnEarlierRun) {
  for (const char* kind : {"clicks", "item_transactions", "checkouts"}) {
    const std::string whole = generate_to_string(options_for({kind, "--count", "400"}));
    const std::string first = generate_to_string(options_for({kind, "--count", "150"}));
    const std::string rest = generate_to_string(options_for({kind, "--count", "250", "--start-index", "150"}));
    EXPECT_EQ(first + rest, whole) << kind;
  }
}

TEST(Datagen, RatingsAndCustomersShareIds) {
  const auto customers = csv_rows({"customers", "--users", "30"});
  ASSERT_EQ(customers.size(), 30u);
  std::set<std::string> ids;
  std::set<std::string> statuses;
  for (const auto& c : customers) {
    ids.insert(*c[0]);
    statuses.insert(*c[4]);
    EXPECT_NE(c[3]->find("@example.com"), std::string::npos);
  }
  EXPECT_TRUE(ids.count("1"));
  EXPECT_TRUE(ids.count("30"));
  EXPECT_LE(statuses.size(), 4u);
  int test_channels = 0;
  int null_products = 0;
  const auto ratings = csv_rows({"ratings", "--users", "30", "--count", "2000"});
  for (const auto& r : ratings) {
    EXPECT_TRUE(ids.count(*r[1])) << *r[1];
    const int stars = std::stoi(*r[3]);
    EXPECT_GE(stars, 1);
    EXPECT_LE(stars, 5);
    std::string channel = *r[4];
    for (char& ch : channel) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    test_channels += channel.find("test") != std::string::npos;
    null_products += !r[2].has_value();
  }
  EXPECT_GT(test_channels, 100);
  EXPECT_LT(test_channels, 400);
  EXPECT_GT(null_products, 100);
}

TEST(Datagen, AvroRecordsDecodeToTheSameValuesAsJson) {
  const std::string stream =
      generate_to_string(options_for({"ratings", "--format", "avro", "--schema-id", "77", "--count", "50"}), 77);
  const std::string json = generate_to_string(options_for({"ratings", "--format", "json", "--count", "50"}));
  const auto json_lines = lines_of(json);
  datagen_options o = options_for({"ratings", "--format", "avro", "--schema-id", "77"});
  record_generator g(o.generator);
  const avro_schema schema = avro_schema::from_json(avro_schema_json(record_kind::ratings, g.fields()));
  avro_generic_value value(schema);
  avro_value_deserializer reader;
  simdjson::dom::parser parser;
  size_t pos = 0;
  size_t n = 0;
  while (pos < stream.size()) {
    ASSERT_LE(pos + 4, stream.size());
    const auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(stream[pos + i])); };
    const uint32_t length = byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3);
    const auto frame = confluent::parse_frame(std::string_view(stream).substr(pos + 4, length));
    pos += 4 + length;
    EXPECT_EQ(frame.schema_id, 77);
    reader.read(frame.payload, value.get());

    simdjson::dom::element expected = parser.parse(json_lines[n++]);
    avro_value_t field = avro_field(value.get(), 1);
    EXPECT_EQ(get_avro_string(field), std::string_view(expected["user_id"]));
    field = avro_field(value.get(), 2);
    int branch = -1;
    check_avro(avro_value_get_discriminant(&field, &branch), "discriminant");
    EXPECT_EQ(branch == 0, expected["product_id"].is_null());
    field = avro_field(value.get(), 3);
    int32_t stars = 0;
    check_avro(avro_value_get_int(&field, &stars), "stars");
    EXPECT_EQ(stars, int64_t(expected["stars"]));
    field = avro_field(value.get(), 6);
    int64_t millis = 0;
    check_avro(avro_value_get_long(&field, &millis), "rating_time");
    EXPECT_EQ(format_iso8601(millis * 1000), std::string_view(expected["rating_time"]));
  }
  EXPECT_EQ(n, 50u);
}

TEST(DatagenOptions, BadArgumentsAreUsageErrors) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"nonsense"},
      {"clicks", "--count"},
      {"clicks", "--count", "-3"},
      {"clicks", "--count", "12x"},
      {"clicks", "--format", "xml"},
      {"clicks", "--products", "0"},
      {"item_transactions", "--fail-ratio", "1.5"},
      {"clicks", "--fail-ratio", "0.5"},
      {"clicks", "--with-name"},
      {"users", "--clicks-per-checkout", "3"},
      {"clicks", "--unattributed-ratio", "0.5"},
      {"clicks", "--events-per-second", "0"},
      {"clicks", "--start-time", "yesterday"},
      {"clicks", "--brokers", "localhost:9092"},
      {"clicks", "--brokers", "b:9092", "--topic", "t", "--output", "f.csv"},
      {"clicks", "--format", "avro"},
      {"clicks", "--format", "avro", "--registry", "http://r"},
      {"clicks", "--format", "avro", "--registry", "http://r", "--schema-id", "1", "--subject", "s"},
      {"clicks", "--format", "json", "--header"},
      {"clicks", "--schema-id", "4"},
      {"clicks", "--no-key"},
      {"clicks", "-X", "linger.ms"},
      {"inventory", "--with-name=yes"},
      {"clicks", "--delimiter", "ab"},
      {"clicks", "--wat"},
      {"clicks", "users"},
  };
  for (const auto& args : bad) {
    EXPECT_THROW(parse_datagen_arguments(args), usage_error) << (args.empty() ? "(none)" : args.back());
  }
}

TEST(DatagenOptions, DefaultsAndForms) {
  auto o = options_for({"clicks"});
  EXPECT_EQ(o.count, 1000u);
  EXPECT_EQ(o.generator.start_time_us, *parse_iso8601("2024-06-28T13:00:00Z"));
  o = options_for({"--kind=inventory", "--products=30"});
  EXPECT_EQ(o.generator.kind, record_kind::inventory);
  EXPECT_EQ(o.count, 30u);
  o = options_for({"users", "--rate", "10"});
  EXPECT_FALSE(o.count.has_value());
  o = options_for({"clicks", "--format", "avro", "--registry", "http://r", "--brokers", "b", "--topic", "clicks"});
  EXPECT_EQ(o.avro_subject(), "clicks-value");
  o = options_for({"clicks", "--format", "avro", "--avro-framing", "none"});
  EXPECT_EQ(o.framing, avro_framing::none);
  o = options_for({"--help"});
  EXPECT_TRUE(o.help);
  EXPECT_NE(datagen_usage().find("--events-per-second"), std::string::npos);
}

TEST(DatagenRun, DurationAndRateBoundTheRun) {
  auto o = options_for({"clicks", "--rate", "200", "--duration", "0.25"});
  stream_sink sink(stream_framing::lines);
  const run_summary summary = generate_records(o, sink);
  EXPECT_GE(summary.messages, 30u);
  EXPECT_LE(summary.messages, 60u);
  EXPECT_EQ(summary.payload_bytes + summary.messages, sink.contents().size());
}

}  // namespace
}  // namespace streamrec::datagen
