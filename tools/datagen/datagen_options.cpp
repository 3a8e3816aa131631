#include "tools/datagen/datagen_options.h"

#include <charconv>
#include <cmath>

#include "core/formats/timestamp_text.h"

namespace streamrec::datagen {

namespace {

constexpr const char* default_start_time = "2024-06-28T13:00:00Z";

uint64_t parse_uint(const std::string& option, const std::string& text, uint64_t min, uint64_t max) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto res = std::from_chars(text.data(), end, value);
  if (text.empty() || res.ec != std::errc() || res.ptr != end) {
    throw usage_error(option + " expects a whole number, got '" + text + "'");
  }
  if (value < min || value > max) {
    throw usage_error(option + " must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                      text);
  }
  return value;
}

double parse_double(const std::string& option, const std::string& text, double min, double max, bool min_exclusive) {
  double value = 0;
  const char* end = text.data() + text.size();
  const auto res = std::from_chars(text.data(), end, value);
  if (text.empty() || res.ec != std::errc() || res.ptr != end || !std::isfinite(value)) {
    throw usage_error(option + " expects a number, got '" + text + "'");
  }
  if ((min_exclusive ? value <= min : value < min) || value > max) {
    throw usage_error(option + " must be " + (min_exclusive ? "greater than " : "at least ") + std::to_string(min) +
                      " and at most " + std::to_string(max) + ", got " + text);
  }
  return value;
}

}  // namespace

std::string datagen_usage() {
  return R"(Usage: streamrec-datagen KIND [options]

Generates deterministic e-commerce test data for pg_streamrec as CSV, JSON or Avro, to a file
or a Kafka topic. The same seed and options always give the same bytes.

Kinds (fields in the column order of the streamrec.<kind> table):
  inventory          product_id,category,stock,rating  (as productInventory.csv)
                     with --with-name: product_id,name,category,stock,rating
  clicks             click_id,user_id,product_id,event_type,query,event_time
                     event_type mostly page_view, some add_to_cart and search
                     (a search has no product_id and a query)
  purchases          invoice_id,user_id,product_id,quantity,unit_cost,purchase_time
  users              user_id,name
  checkouts          checkout_id,user_id,product_id,payment_method,total_amount,checkout_time
                     checkout j follows a click by the same user on the same product in
                     click group j (clicks j*K .. j*K+K-1, K = --clicks-per-checkout), and
                     comes 60 s after the group's last click; generate the clicks with the same
                     seed and at least K times as many records
  customers          customer_id,first_name,last_name,email,club_status
  ratings            rating_id,user_id,product_id,stars,channel,message,rating_time
                     user_id is a customer id; channel iOS/android/web, ~10% test channels
  item_transactions  transaction_id,item_id,quantity,ts
                     item ids are product ids; quantities are simulated against the stock of
                     the inventory with the same seed: --fail-ratio of them overdraw and must
                     fail, all others succeed when applied in order per item
  stock_queries      query_id,item_id

Universe:
  --seed N                 random seed (default 1)
  --products N             product ids "0".."N-1" (default 200)
  --categories N           categories, the inventory's names extended as toys-2, ... (default 8)
  --users N                user ids user-0..user-(N-1); customer ids 1..N (default 100)

Event time:
  --start-time ISO         time of record 0 (default 2024-06-28T13:00:00Z)
  --events-per-second X    event-time rate: record i happens at start + i/X s (default 10)
  --start-index N          first record index (default 0); ids and times continue from there,
                           so a later run can extend an earlier one

Kind options:
  --with-name              inventory: add the name column
  --fail-ratio F           item_transactions: share designed to fail (default 0.1)
  --clicks-per-checkout K  clicks and checkouts: clicks per checkout (default 4); give the
                           same value to both runs
  --unattributed-ratio F   checkouts: share with a random user and product instead of a
                           click's (default 0.1)

Format:
  --format csv|json|avro|protobuf
                           default csv
                           csv: RFC 4180 as COPY ... CSV reads it; NULL is an empty field;
                                timestamps "YYYY-MM-DD HH:MM:SS" (UTC, whole seconds)
                           json: one flat object per record; NULL is null; timestamps ISO 8601
                                with milliseconds, "2024-06-28T13:00:00.100Z"
                           avro: timestamps long timestamp-millis, money double, nullable
                                fields ["null", T]; Confluent framing (magic byte, schema id)
                           protobuf: proto3, timestamps google.protobuf.Timestamp, money double,
                                nullable fields as wrappers (google.protobuf.StringValue, ...);
                                Confluent framing (magic byte, schema id, message index [0]).
                                --registry, --subject, --schema-id and --avro-framing as for avro
  --header                 csv to a file: first line holds the field names
  --delimiter C            csv field delimiter (default ,)
  --registry URL           avro: register the kind's schema with this Confluent-compatible
                           registry under the subject and frame messages with its id
  --subject S              avro: registry subject (default <topic>-value)
  --schema-id N            avro: frame with this schema id, no registry
  --avro-framing confluent|none
                           none: bare Avro binary, for sources given an inline schema
  --print-schema           print the kind's Avro schema JSON (protobuf: its .proto) and exit
  --envelope debezium      customers: Debezium change events instead of rows (json or avro,
                           keyed {"customer_id": ...}): a snapshot (op r) of every customer,
                           then club_status updates (u), deletes (d, each followed by its
                           tombstone), creates again (c) and primary-key changes (u from
                           "17" to "17-2"); --count counts changes. avro needs --registry
                           (subjects <topic>-key and <topic>-value)
  --json-schemas           with --envelope debezium and json: keys and values wrapped in the
                           JSON converter's {"schema": ..., "payload": ...}

Output (default: stdout):
  --output FILE            write to FILE ('-' = stdout). csv and json: one record per line.
                           avro, protobuf: each message as a 4-byte big-endian length and its bytes
  --brokers B              produce to Kafka (bootstrap servers) instead; needs --topic
  --topic T                topic to produce to (also names the default avro subject)
  --no-key                 produce without message keys. Keys by default: user_id (clicks,
                           purchases, checkouts, ratings, users), item_id (item_transactions,
                           stock_queries), product_id (inventory), customer_id (customers).
                           The message timestamp is the record's event time.
  -X name=value            librdkafka producer property, repeatable (e.g. -X linger.ms=5,
                           -X security.protocol=SASL_SSL)

Volume:
  --count N                records to generate (default: --products for inventory, --users
                           for users and customers, 1000 for event kinds; unlimited when only
                           --rate or --duration is given)
  --rate R                 at most R messages per wall-clock second
  --duration S             stop after S seconds
  --quiet                  no summary line on stderr (messages, payload bytes, seconds)
  --help                   this text

Exit status: 0 success, 1 runtime failure (registry, broker, file), 2 bad arguments.
)";
}

datagen_options parse_datagen_arguments(const std::vector<std::string>& args) {
  datagen_options o;
  o.generator.start_time_us = *parse_iso8601(default_start_time);
  bool kind_given = false;
  bool have_count = false;
  bool fail_ratio_given = false;
  bool unattributed_given = false;
  bool clicks_per_checkout_given = false;

  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::string value;
    bool has_inline_value = false;
    if (arg.rfind("--", 0) == 0) {
      if (const auto eq = arg.find('='); eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        has_inline_value = true;
      }
    }
    const auto next = [&]() -> std::string {
      if (has_inline_value) return value;
      if (i + 1 >= args.size()) throw usage_error(arg + " needs a value");
      return args[++i];
    };
    const auto no_value = [&] {
      if (has_inline_value) throw usage_error(arg + " takes no value");
    };

    if (arg == "--help" || arg == "-h") {
      o.help = true;
    } else if (arg == "--kind") {
      const std::string name = next();
      const auto kind = parse_kind(name);
      if (!kind) throw usage_error("unknown kind '" + name + "'; kinds: " + all_kind_names());
      o.generator.kind = *kind;
      kind_given = true;
    } else if (arg == "--seed") {
      o.generator.seed = parse_uint(arg, next(), 0, UINT64_MAX);
    } else if (arg == "--products") {
      o.generator.products = parse_uint(arg, next(), 1, uint64_t{1} << 40);
    } else if (arg == "--categories") {
      o.generator.categories = parse_uint(arg, next(), 1, uint64_t{1} << 24);
    } else if (arg == "--users") {
      o.generator.users = parse_uint(arg, next(), 1, uint64_t{1} << 40);
    } else if (arg == "--start-time") {
      const std::string text = next();
      const auto parsed = parse_iso8601(text);
      if (!parsed)
        throw usage_error("--start-time expects an ISO 8601 time like 2024-06-28T13:00:00Z, got '" + text + "'");
      o.generator.start_time_us = *parsed;
    } else if (arg == "--events-per-second") {
      o.generator.events_per_second = parse_double(arg, next(), 0, 1e9, true);
    } else if (arg == "--start-index") {
      o.start_index = parse_uint(arg, next(), 0, uint64_t{1} << 52);
    } else if (arg == "--with-name") {
      no_value();
      o.generator.with_name = true;
    } else if (arg == "--fail-ratio") {
      o.generator.fail_ratio = parse_double(arg, next(), 0, 1, false);
      fail_ratio_given = true;
    } else if (arg == "--clicks-per-checkout") {
      o.generator.clicks_per_checkout = static_cast<uint32_t>(parse_uint(arg, next(), 1, 1'000'000));
      clicks_per_checkout_given = true;
    } else if (arg == "--unattributed-ratio") {
      o.generator.unattributed_ratio = parse_double(arg, next(), 0, 1, false);
      unattributed_given = true;
    } else if (arg == "--format") {
      const std::string f = next();
      if (f == "csv") {
        o.format = data_format::csv;
      } else if (f == "json") {
        o.format = data_format::json;
      } else if (f == "avro") {
        o.format = data_format::avro;
      } else if (f == "protobuf") {
        o.format = data_format::protobuf;
      } else {
        throw usage_error("--format must be csv, json, avro or protobuf, got '" + f + "'");
      }
    } else if (arg == "--header") {
      no_value();
      o.header = true;
    } else if (arg == "--delimiter") {
      const std::string d = next();
      if (d.size() != 1 || d[0] == '"' || d[0] == '\n' || d[0] == '\r') {
        throw usage_error("--delimiter must be one character other than a quote or newline, got '" + d + "'");
      }
      o.delimiter = d[0];
    } else if (arg == "--registry") {
      o.registry_url = next();
    } else if (arg == "--subject") {
      o.subject = next();
    } else if (arg == "--schema-id") {
      o.schema_id = static_cast<int32_t>(parse_uint(arg, next(), 0, INT32_MAX));
    } else if (arg == "--avro-framing") {
      const std::string f = next();
      if (f == "confluent") {
        o.framing = avro_framing::confluent;
      } else if (f == "none") {
        o.framing = avro_framing::none;
      } else {
        throw usage_error("--avro-framing must be confluent or none, got '" + f + "'");
      }
    } else if (arg == "--envelope") {
      const std::string envelope = next();
      if (envelope != "debezium") throw usage_error("--envelope must be debezium, got '" + envelope + "'");
      o.debezium = true;
    } else if (arg == "--json-schemas") {
      no_value();
      o.json_schemas = true;
    } else if (arg == "--print-schema") {
      no_value();
      o.print_schema = true;
    } else if (arg == "--output" || arg == "-o") {
      o.output = next();
    } else if (arg == "--brokers") {
      o.brokers = next();
    } else if (arg == "--topic") {
      o.topic = next();
    } else if (arg == "--no-key") {
      no_value();
      o.no_key = true;
    } else if (arg == "-X" || arg == "--kafka") {
      const std::string property = next();
      const auto eq = property.find('=');
      if (eq == std::string::npos || eq == 0) {
        throw usage_error(arg.append(" expects name=value, got '").append(property).append("'"));
      }
      o.kafka_properties[property.substr(0, eq)] = property.substr(eq + 1);
    } else if (arg == "--count") {
      o.count = parse_uint(arg, next(), 0, UINT64_MAX);
      have_count = true;
    } else if (arg == "--rate") {
      o.rate = parse_double(arg, next(), 0, 1e9, true);
    } else if (arg == "--duration") {
      o.duration_s = parse_double(arg, next(), 0, 1e9, true);
    } else if (arg == "--quiet" || arg == "-q") {
      no_value();
      o.quiet = true;
    } else if (!arg.empty() && arg[0] != '-' && !kind_given) {
      const auto kind = parse_kind(arg);
      if (!kind) throw usage_error("unknown kind '" + arg + "'; kinds: " + all_kind_names());
      o.generator.kind = *kind;
      kind_given = true;
    } else {
      throw usage_error("unknown argument '" + args[i] + "'");
    }
  }
  if (o.help) return o;
  if (!kind_given) throw usage_error("which kind of data? give one of: " + all_kind_names());
  if (o.print_schema) return o;

  // Cross-checks: refuse combinations that would silently do something else than asked.
  const record_kind kind = o.generator.kind;
  if (o.generator.with_name && kind != record_kind::inventory)
    throw usage_error("--with-name applies to inventory only");
  if (fail_ratio_given && kind != record_kind::item_transactions) {
    throw usage_error("--fail-ratio applies to item_transactions only");
  }
  if (unattributed_given && kind != record_kind::checkouts) {
    throw usage_error("--unattributed-ratio applies to checkouts only");
  }
  // Clicks need it too: it decides which click each checkout follows.
  if (clicks_per_checkout_given && kind != record_kind::checkouts && kind != record_kind::clicks) {
    throw usage_error("--clicks-per-checkout applies to clicks and checkouts only");
  }
  if (o.to_kafka()) {
    if (o.topic.empty()) throw usage_error("--brokers needs --topic");
    if (o.output != "-") throw usage_error("--output and --brokers are exclusive: write a file or a topic");
    if (o.header) throw usage_error("--header applies to files only: a Kafka message holds one record");
  } else if (!o.kafka_properties.empty() || o.no_key) {
    throw usage_error("-X and --no-key apply to Kafka output; add --brokers and --topic");
  }
  if (o.header && o.format != data_format::csv) throw usage_error("--header applies to --format csv only");
  if (o.debezium) {
    if (kind != record_kind::customers) throw usage_error("--envelope debezium applies to customers only");
    if (o.format == data_format::csv) throw usage_error("--envelope debezium writes json or avro");
    if (o.format == data_format::avro && (o.registry_url.empty() || o.topic.empty())) {
      throw usage_error("--envelope debezium with avro needs --registry and --topic (key and value subjects)");
    }
  }
  if (o.json_schemas && (!o.debezium || o.format != data_format::json)) {
    throw usage_error("--json-schemas applies to --envelope debezium with --format json");
  }
  if (o.format != data_format::csv && o.delimiter != ',') {
    throw usage_error("--delimiter applies to --format csv only");
  }
  const bool avro_options =
      !o.registry_url.empty() || !o.subject.empty() || o.schema_id || o.framing != avro_framing::confluent;
  const bool registry_format = o.format == data_format::avro || o.format == data_format::protobuf;
  if (!registry_format && avro_options) {
    throw usage_error("--registry, --subject, --schema-id and --avro-framing apply to --format avro or protobuf only");
  }
  if (registry_format && o.framing == avro_framing::confluent) {
    if (o.schema_id && !o.registry_url.empty()) {
      throw usage_error("give either --registry (to register the schema) or --schema-id, not both");
    }
    if (!o.schema_id && o.registry_url.empty()) {
      throw usage_error(
          std::string("--format ") + (o.format == data_format::avro ? "avro" : "protobuf") +
          " needs --registry URL (Confluent framing with a registered id), --schema-id N, or --avro-framing none");
    }
    if (!o.registry_url.empty() && o.subject.empty() && o.topic.empty()) {
      throw usage_error("--registry needs --subject or --topic to name the subject");
    }
  }
  if (registry_format && o.framing == avro_framing::none && (!o.registry_url.empty() || o.schema_id)) {
    throw usage_error("--avro-framing none writes no schema id: drop --registry/--schema-id");
  }
  if (!have_count && o.rate == 0 && o.duration_s == 0) {
    switch (o.generator.kind) {
      case record_kind::inventory:
        o.count = o.generator.products;
        break;
      case record_kind::users:
      case record_kind::customers:
        o.count = o.generator.users;
        break;
      default:
        o.count = 1000;
        break;
    }
  }
  return o;
}

}  // namespace streamrec::datagen
