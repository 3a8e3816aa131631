// Row encoders for sinks: one table row -> one Kafka message key and value, in csv, json or
// Confluent-framed Avro. PostgreSQL-free: the sink worker turns each column's Datum into a
// sink_value (text, plus epoch microseconds for timestamps and elements for arrays) and these
// classes do the rest, so they are unit-tested without a server.
//
// A row that cannot be encoded (an infinite timestamp, which no format can spell) throws
// format_error: the worker keeps that row in its outbox, flagged with the reason, and goes on.
#pragma once

#include "core/postgres_free.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/formats/csv_writer.h"

namespace streamrec {

enum class sink_kind { text, integer, floating, numeric, boolean, timestamp, json };

struct sink_column {
  std::string name;
  sink_kind kind = sink_kind::text;
  bool array = false;  // a one-dimensional array whose elements are of `kind`
};

// One column's value. `text` is PostgreSQL's output text of the value (of each element for
// arrays), except timestamps, which carry epoch_us instead.
struct sink_value {
  bool null = true;
  std::string text;
  int64_t epoch_us = 0;
  bool infinite = false;  // timestamp 'infinity' / '-infinity'
  std::vector<std::optional<std::string>> elements;
};

enum class sink_format { csv, json, avro, protobuf };

struct sink_encoder_config {
  sink_format format = sink_format::csv;
  std::vector<sink_column> columns;  // the value's columns, in order
  csv_dialect csv;                   // record_terminator is ignored: one record per message
  int32_t schema_id = 0;             // avro, protobuf: the registry id of *_value_schema(columns)
};

class sink_encoder {
 public:
  virtual ~sink_encoder() = default;
  // Appends the message value for `row` (one sink_value per configured column) to `out`.
  // Throws format_error for a row the format cannot hold; `out` is then unspecified.
  virtual void encode(const std::vector<sink_value>& row, std::string& out) = 0;
};

std::unique_ptr<sink_encoder> make_sink_encoder(const sink_encoder_config& config);

// The Avro record schema a sink registers for its columns: every field nullable, integers as
// long, floating point as double, timestamps as timestamp-millis, arrays as arrays of nullable
// items, everything else (numeric, text, json) as string. `record_name` is sanitized.
std::string avro_value_schema(const std::string& record_name, const std::vector<sink_column>& columns);

// The Protobuf (proto3) schema a sink registers for its columns, field numbers in column order:
// every scalar field a wrapper (google.protobuf.Int64Value for integers, DoubleValue for floating
// point, BoolValue, StringValue for numeric, text and json), so NULL stays NULL; timestamps as
// google.protobuf.Timestamp; arrays as repeated plain scalars (a NULL array is written as an
// empty one; a NULL element cannot be written). `message_name` is sanitized.
std::string protobuf_value_schema(const std::string& message_name, const std::vector<sink_column>& columns);
// The Protobuf encoder behind make_sink_encoder (Confluent framing, message index [0]).
std::unique_ptr<sink_encoder> make_protobuf_sink_encoder(const sink_encoder_config& config);

// The message key of a row from its key columns: nullopt when every key column is NULL; one
// column gives its text (a timestamp its "YYYY-MM-DD HH:MM:SS"), several a csv record of them.
std::optional<std::string> encode_sink_key(const std::vector<sink_column>& columns,
                                           const std::vector<sink_value>& values);

}  // namespace streamrec
