// Debezium change events of the customers table, as a MySQL connector streams a table whose
// rows change: a snapshot (op r) of customers 1..N, then updates of club_status (op u), deletes
// (op d, each followed by the tombstone Debezium sends for log compaction), creates of deleted
// customers again (op c) and primary-key changes (op u with before and after keys that differ,
// customer "17" becoming "17-2"). Keys are {"customer_id": ...}; values the Debezium envelope
// (before, after, source, op, ts_ms) in json, with or without the JSON converter's schema/payload
// wrapper, or in Avro with the Confluent framing. Deterministic for a seed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tools/datagen/record_encoder.h"
#include "tools/datagen/record_generator.h"

namespace streamrec::datagen {

struct change_message {
  std::string key;
  std::optional<std::string> value;  // nullopt: a tombstone
  int64_t timestamp_us = 0;
};

class debezium_customers {
 public:
  // avro needs the schema ids the key and the value are framed with.
  debezium_customers(const generator_config& config, data_format format, bool json_schemas,
                     std::optional<int32_t> key_schema_id = std::nullopt,
                     std::optional<int32_t> value_schema_id = std::nullopt);
  ~debezium_customers();

  // Appends the messages of change `index` (changes are generated in order: the state of the
  // table after change i decides change i + 1): one event, and after a delete its tombstone.
  void next(std::vector<change_message>& out);

  static const std::string& avro_key_schema();
  static const std::string& avro_value_schema();

 private:
  struct customer {
    bool alive = false;
    std::string id, first_name, last_name, email, club_status;
    int version = 1;
  };
  void emit(const customer* before, const customer* after, char op, std::vector<change_message>& out);
  std::string json_row(const customer& c) const;

  generator_config config_;
  data_format format_;
  bool json_schemas_;
  std::optional<int32_t> key_schema_id_;
  std::optional<int32_t> value_schema_id_;
  std::vector<customer> table_;
  uint64_t index_ = 0;
  struct avro_state;
  std::unique_ptr<avro_state> avro_;
};

}  // namespace streamrec::datagen
