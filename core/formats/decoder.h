// The one decoder interface of source workers: a Kafka message in, one line of PostgreSQL
// COPY text format out. The PostgreSQL side feeds those lines to BeginCopyFrom, so every
// type conversion, default, constraint and trigger is PostgreSQL's own; decoders only turn
// wire formats (csv, json, Avro) into the text input forms PostgreSQL accepts.
#pragma once

#include "core/postgres_free.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/formats/format_error.h"

namespace streamrec {

// A consumed Kafka message, borrowed from librdkafka for the duration of decode().
struct message_view {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = -1;  // -1 when the broker gave none
  std::optional<std::string_view> key;
  std::optional<std::string_view> payload;  // nullopt: a tombstone (null value)
};

// How a value must be spelled for the target column's input function. Everything not listed
// is passed through as text (PostgreSQL parses numbers, uuids, enums, ... itself).
enum class column_kind {
  text,       // passthrough
  boolean,    // JSON true/false, Avro boolean -> t / f
  timestamp,  // timestamptz or timestamp: epoch numbers (ms) and Avro logical types -> ISO text
  date,       // Avro date (days) -> YYYY-MM-DD
  bytea,      // raw bytes -> \x hex
  json,       // json/jsonb: a nested object/array is kept as JSON text
  array,      // any array type: JSON array / Avro array -> {..} literal
};

// Where a target column's value comes from. change_ts_ms, change_source and change_op are the
// ts_ms, source and op fields of a Debezium change event (envelope debezium only).
enum class metadata_field { none, timestamp, key, partition, offset, topic, change_ts_ms, change_source, change_op };

struct column_binding {
  std::string column;  // target column name (for messages and COPY's column list)
  column_kind kind = column_kind::text;
  // json/avro: field path ("a.b.c" descends into nested objects/records); empty means the
  // field named like the column. csv: unused (fields are taken in order).
  std::string field;
  metadata_field metadata = metadata_field::none;  // when not none, the value comes from the message
  // The value comes from the message key (option key_columns), decoded as key_format says: text
  // and csv take key bindings in order, json and avro by `field` (empty: the column's name).
  bool from_key = false;
};

struct csv_options {
  char delimiter = ',';
  char quote = '"';
  std::string null_string;  // an unquoted field equal to this is NULL (default: empty)
  // Skip header records: a message whose fields equal the names of the csv-fed columns (in
  // order, ASCII case-insensitively) makes decode() return false. Any message may be one,
  // since producers that replay files send a header per file.
  bool header = false;
};

enum class wire_format { csv, json, avro, protobuf };

// How the message key is spelled when columns take their values from it (key_columns).
enum class key_format { text, csv, json, avro };

// How a message value carries its row: as is, or as a Debezium change event (before, after, op).
enum class envelope_kind { none, debezium };

struct decoder_config {
  wire_format format = wire_format::csv;
  // In COPY column order. For csv, the non-metadata bindings take the record's fields in order.
  std::vector<column_binding> columns;
  csv_options csv;
  // avro: Confluent framing with a registry (schema ids looked up and cached) ...
  std::string schema_registry_url;
  // ... or plain Avro with this inline writer schema (protobuf: an inline `.proto` file).
  std::string inline_schema;
  // protobuf with an inline `.proto`: the message type to decode, by full name ("shop.Click") or,
  // when only one message type has it, by simple name; empty means the file's first message.
  std::string proto_message;
  // The most COPY text one message may decode to. A message over it is a format_error (dead
  // letter), raised as soon as the decoder sees it coming, so a small message that expands
  // (Avro decimals with a large scale, arrays of nulls) never takes more memory than this.
  size_t max_decoded_bytes = default_max_decoded_bytes;
  static constexpr size_t default_max_decoded_bytes = size_t{64} << 20;
  // Bindings with from_key take their values from the key, spelled so (avro: Confluent framing
  // through schema_registry_url). A key in csv uses the default csv options.
  key_format key = key_format::text;
  envelope_kind envelope = envelope_kind::none;
  // The target's primary key columns (names of bindings): what a delete of a change event names.
  std::vector<std::string> primary_key;
};

// Which bindings a message supplied. Absent fields (json keys that are not there, Avro fields
// missing from the writer schema) are left out of the COPY column list so the column's
// DEFAULT applies; explicit nulls are NULL. Messages in a batch are grouped by this mask.
using column_mask = std::vector<bool>;

// Whether messages may carry more than one row or deletes: key bindings or an envelope. Such a
// source reads rows with decoder::decode_changes().
bool decodes_changes(const decoder_config& config);

// What a decoded row asks of the target.
enum class row_change : uint8_t {
  upsert,  // insert, or update on the primary key (the line holds the present columns)
  remove,  // delete the row whose key the line holds (only key columns are present)
};

// One row of decode_changes(): [begin, end) of the lines buffer, one COPY text line.
struct decoded_row {
  row_change change = row_change::upsert;
  size_t begin = 0;
  size_t end = 0;
  column_mask present;
};

// Raised when the schema registry cannot be reached or cannot answer now (a 5xx, a timeout):
// the batch must be retried later, never dead-lettered. A registry that answers that it does
// not know a schema id has answered: that message is a format_error.
class transient_error : public std::runtime_error {
 public:
  explicit transient_error(const std::string& message) : std::runtime_error(message) {}
};

class decoder {
 public:
  virtual ~decoder() = default;
  // Appends exactly one COPY text line (tab-separated, \N for NULL, backslash escapes, ending
  // in '\n') holding the present columns in binding order, sets `present` (one entry per
  // binding) and returns true.
  // Returns false when the message is deliberately skipped (a csv header record): nothing is
  // appended and `present` is untouched; the message is consumed (its offset advances).
  // Throws format_error for bytes that can never decode (dead-letter them), including a line
  // longer than max_decoded_bytes, and transient_error for a registry outage (retry the batch).
  // When it throws, `line` is left as it was, so a batch buffer never holds half a row.
  [[nodiscard]] bool decode(const message_view& message, std::string& line, column_mask& present);

  // The rows a message asks for, in the order they apply: an upsert, a delete (a tombstone, a
  // Debezium delete), or a delete then an upsert (a Debezium update that changes the primary
  // key). Appends their lines to `lines` and one entry each to `rows` (none: the message is
  // consumed with no effect). Throws as decode() does, leaving `lines` and `rows` as they were.
  // The default is decode()'s one upsert.
  void decode_changes(const message_view& message, std::string& lines, std::vector<decoded_row>& rows);

  void set_max_decoded_bytes(size_t limit) { max_decoded_bytes_ = limit; }
  size_t max_decoded_bytes() const { return max_decoded_bytes_; }

 protected:
  // The format's work; decode() adds the rollback on error and the check of the line's size
  // (formats whose output can outgrow their input check earlier, with too_large()).
  virtual bool decode_into(const message_view& message, std::string& line, column_mask& present) = 0;
  // decode_changes()'s work for formats with changes of their own (keys, envelopes).
  virtual void changes_into(const message_view& message, std::string& lines, std::vector<decoded_row>& rows);
  [[noreturn]] void too_large(size_t at_least) const;

 private:
  size_t max_decoded_bytes_ = decoder_config::default_max_decoded_bytes;
};

// Returns the writer schema (JSON text) registered under a Confluent schema id. Throws
// transient_error when it cannot answer now (registry down or failing) and format_error when
// the registry answered that it has no such id.
using schema_fetcher = std::function<std::string(int32_t schema_id)>;

// Throws std::invalid_argument for a configuration no message could satisfy (delimiter equal
// to quote, avro with neither or both of schema_registry_url and inline_schema, an inline
// schema that does not parse or is not a record).
std::unique_ptr<decoder> make_decoder(const decoder_config& config);
// The same, with schema ids resolved by `fetch` instead of a schema_registry_client on
// config.schema_registry_url (units, tools, a cache shared by decoders). Each id is fetched
// once per decoder. Only used for avro and protobuf with a registry (protobuf through this
// overload: schemas without imports; make_protobuf_decoder takes their imported files too).
std::unique_ptr<decoder> make_decoder(const decoder_config& config, schema_fetcher fetch);

// A Protobuf schema as a registry holds it: the `.proto` text and, for every file it imports
// through the registry's references (transitively), that file's text under its import name.
// Google's well-known types (google/protobuf/timestamp.proto, wrappers.proto, ...) are built in
// and need no entry.
struct protobuf_schema_files {
  std::string schema;
  std::vector<std::pair<std::string, std::string>> imports;  // import name -> .proto text
};
// Like schema_fetcher, for Protobuf: transient_error to retry, format_error for an unknown id.
using protobuf_schema_fetcher = std::function<protobuf_schema_files(int32_t schema_id)>;
// A protobuf decoder whose Confluent-framed messages resolve schema ids through `fetch` (units,
// tools, fuzzing); with a null `fetch`, plain Protobuf of config.inline_schema.
std::unique_ptr<decoder> make_protobuf_decoder(const decoder_config& config, protobuf_schema_fetcher fetch);

}  // namespace streamrec
