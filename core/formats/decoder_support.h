// Pieces shared by the csv, json and Avro decoders (internal to core/formats): the
// per-format constructors behind make_decoder, values collected out of order, Kafka metadata
// columns, and the text forms of times that more than one format produces.
#pragma once

#include "core/postgres_free.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/formats/decoder.h"
#include "core/formats/timestamp_text.h"

namespace streamrec {

std::unique_ptr<decoder> make_csv_decoder(const decoder_config& config);
std::unique_ptr<decoder> make_json_decoder(const decoder_config& config);
// Confluent framing when `fetch` is set, else plain Avro with config.inline_schema.
std::unique_ptr<decoder> make_avro_decoder(const decoder_config& config, schema_fetcher fetch);
// The value decoder of config.format alone (no keys, no envelope, no bound on decoded bytes).
std::unique_ptr<decoder> make_unbounded_decoder(const decoder_config& config, schema_fetcher fetch);
// Keys and envelopes (change_events.cpp), around decoders of the formats above.
std::unique_ptr<decoder> make_change_decoder(const decoder_config& config, const schema_fetcher& fetch);

// The bindings' field paths split at dots ("a.b.c" -> a, b, c); an empty path is the column name.
std::vector<std::string> split_field_path(const column_binding& binding);

// Values of one message, keyed by binding index, for formats whose fields arrive in their own
// order (json keys, Avro record fields) rather than in COPY column order. Text is kept already
// COPY-escaped in one buffer, so assembling the line is a copy per column.
class value_slots {
 public:
  enum class state : uint8_t { absent, null, value };

  // Starts a message: every slot `initial`, the buffer empty.
  void reset(size_t count, state initial) {
    slots_.assign(count, slot{0, 0, initial});
    buffer_.clear();
  }
  // Starts writing slot `index`: append its escaped text to the returned buffer, then commit().
  // A later write to the same slot replaces the earlier one (duplicate json keys: last wins).
  std::string& begin(size_t index) {
    slots_[index].offset = static_cast<uint32_t>(buffer_.size());
    return buffer_;
  }
  void commit(size_t index) {
    slot& s = slots_[index];
    s.length = static_cast<uint32_t>(buffer_.size() - s.offset);
    s.current = state::value;
  }
  void set_null(size_t index) { slots_[index].current = state::null; }
  void set_absent(size_t index) { slots_[index].current = state::absent; }

  state state_of(size_t index) const { return slots_[index].current; }
  // Bytes of text held for this message so far.
  size_t buffered() const { return buffer_.size(); }
  std::string_view text(size_t index) const {
    return std::string_view(buffer_).substr(slots_[index].offset, slots_[index].length);
  }

 private:
  struct slot {
    uint32_t offset;
    uint32_t length;
    state current;
  };
  std::vector<slot> slots_;
  std::string buffer_;
};

// Appends the COPY field of a metadata binding (without separator): the Kafka timestamp as ISO
// UTC with milliseconds (\N when the broker gave none), the key as text or bytea hex (\N when
// there is none), partition, offset, topic.
void append_metadata_field(std::string& out, const column_binding& binding, const message_view& message,
                           timestamp_formatter& timestamps);

// Splits one COPY text line (with or without its '\n') of `count` fields into its raw (still
// escaped) fields: an empty line is no field or one empty one. Throws format_error when the
// line holds another number of fields.
void split_copy_fields(std::string_view line, size_t count, std::vector<std::string_view>& fields);

// Appends the line of a message whose values sit in `slots` (metadata bindings are filled from
// `message`) and sets `present`: absent slots are left out of the line and the mask.
void append_slots_line(std::string& line, column_mask& present, const std::vector<column_binding>& bindings,
                       const value_slots& slots, const message_view& message, timestamp_formatter& timestamps);

// Epoch milliseconds as ISO 8601 UTC ("2024-06-28T13:01:55.123Z"). Throws format_error when
// the instant does not fit in microseconds (no PostgreSQL timestamp is that far out either).
void append_epoch_millis_iso(std::string& out, int64_t epoch_ms, timestamp_formatter& timestamps);
// A fractional or exponent number of epoch milliseconds (a JSON 1.7e12 or an Avro double).
void append_epoch_millis_iso(std::string& out, double epoch_ms, timestamp_formatter& timestamps);
// Days since 1970-01-01 as YYYY-MM-DD.
void append_epoch_days_date(std::string& out, int64_t days);
// Microseconds since midnight as HH:MM:SS.ffffff (or .fff with millis).
void append_time_of_day(std::string& out, int64_t micros, time_precision precision);

}  // namespace streamrec
