// Turns generated records into message payloads: CSV (RFC 4180, COPY-compatible), JSON (one flat
// object) or Avro (optionally with the Confluent header). One interface so the generator loop
// does not care which.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tools/datagen/record_generator.h"

namespace streamrec::datagen {

enum class data_format { csv, json, avro, protobuf };

class record_encoder {
 public:
  virtual ~record_encoder() = default;
  // Appends one record's payload (no line terminator) to `out`.
  virtual void encode(const record& rec, std::string& out) = 0;
};

// Timestamps as "YYYY-MM-DD HH:MM:SS" (UTC), NULL as an empty unquoted field, cents as "12.34".
std::unique_ptr<record_encoder> make_csv_encoder(const std::vector<field_spec>& fields, char delimiter = ',');
// Header line (field names) for --header.
std::string csv_header(const std::vector<field_spec>& fields, char delimiter = ',');

// Timestamps as ISO 8601 strings with milliseconds ("2024-06-28T13:00:00.000Z"), NULL as null,
// cents as a JSON number with two decimals.
std::unique_ptr<record_encoder> make_json_encoder(const std::vector<field_spec>& fields);

// The Avro record schema for a kind: timestamps are long/timestamp-millis, cents are double,
// nullable fields are ["null", T] with default null.
std::string avro_schema_json(record_kind kind, const std::vector<field_spec>& fields);
// With a schema id the payload carries the Confluent header; without, it is bare Avro binary.
std::unique_ptr<record_encoder> make_avro_encoder(record_kind kind, const std::vector<field_spec>& fields,
                                                  std::optional<int32_t> confluent_schema_id);

// The proto3 schema for a kind: one message named like the Avro record, fields numbered in
// order; timestamps google.protobuf.Timestamp, cents double, nullable fields as wrappers
// (google.protobuf.StringValue, Int64Value, ...) so that NULL is an absent field.
std::string protobuf_schema_text(record_kind kind, const std::vector<field_spec>& fields);
// With a schema id the payload carries the Confluent header and message index [0]; without, it
// is bare Protobuf.
std::unique_ptr<record_encoder> make_protobuf_encoder(const std::vector<field_spec>& fields,
                                                      std::optional<int32_t> confluent_schema_id);

}  // namespace streamrec::datagen
