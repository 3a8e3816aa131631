// Command line of streamrec-datagen, parsed into a plain struct. Lives in the library (not in
// main.cpp) so unit tests can check that bad arguments are refused with a clear message.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/datagen/record_encoder.h"
#include "tools/datagen/record_generator.h"

namespace streamrec::datagen {

// A bad argument: main prints the message and exits with status 2.
class usage_error : public std::runtime_error {
 public:
  explicit usage_error(const std::string& message) : std::runtime_error(message) {}
};

enum class avro_framing { confluent, none };

struct datagen_options {
  generator_config generator;  // kind, seed, universe, event time, kind-specific knobs
  uint64_t start_index = 0;

  data_format format = data_format::csv;
  bool header = false;
  char delimiter = ',';
  avro_framing framing = avro_framing::confluent;
  std::string registry_url;
  std::string subject;
  std::optional<int32_t> schema_id;
  bool print_schema = false;
  // --envelope debezium (customers only): Debezium change events instead of rows; with
  // --json-schemas, json keys and values in the JSON converter's schema/payload wrapper.
  bool debezium = false;
  bool json_schemas = false;

  std::string output = "-";
  std::string brokers;
  std::string topic;
  bool no_key = false;
  std::map<std::string, std::string> kafka_properties;

  // Records to generate; nullopt = until --duration ends or the process is interrupted.
  std::optional<uint64_t> count;
  double rate = 0;        // messages per wall-clock second; 0 = as fast as possible
  double duration_s = 0;  // 0 = no time limit
  bool quiet = false;
  bool help = false;

  bool to_kafka() const { return !brokers.empty(); }
  // Subject the schema is registered under: --subject, else "<topic>-value".
  std::string avro_subject() const { return !subject.empty() ? subject : topic + "-value"; }
  // Subject of Debezium keys in Avro: "<topic>-key".
  std::string avro_key_subject() const { return topic + "-key"; }
};

// `args` excludes the program name. Throws usage_error.
datagen_options parse_datagen_arguments(const std::vector<std::string>& args);
std::string datagen_usage();

}  // namespace streamrec::datagen
