// Minimal JSON text encoder for flat objects, appending to a caller-owned std::string.
//
// Sinks and the data generator emit one small object per Kafka message; building a DOM for that
// would cost more than the rest of the encoding. Strings are escaped per RFC 8259 (quote,
// backslash and control characters); other bytes pass through, so valid UTF-8 stays valid.
#pragma once

#include "core/postgres_free.h"

#include <cstdint>
#include <string>
#include <string_view>

#include "core/formats/number_text.h"
#include "core/formats/timestamp_text.h"

namespace streamrec {

// Appends `value` as a JSON string literal, quotes included.
void append_json_string(std::string& out, std::string_view value);

class json_object_writer {
 public:
  // Appends '{' to `out`; finish() appends '}'. `out` must outlive the writer.
  explicit json_object_writer(std::string& out) : out_(&out) { out_->push_back('{'); }

  void string_field(std::string_view name, std::string_view value);
  void null_field(std::string_view name);
  void int_field(std::string_view name, int64_t value);
  // Non-finite doubles have no JSON spelling and are written as null.
  void double_field(std::string_view name, double value);
  // A JSON number with exactly `scale` fractional digits (money as scaled integers).
  void decimal_field(std::string_view name, int64_t unscaled, unsigned scale);
  void bool_field(std::string_view name, bool value);
  // ISO 8601 UTC string, e.g. "2024-06-28T13:01:55.000Z".
  void timestamp_field(std::string_view name, int64_t epoch_us, time_precision precision = time_precision::millis);
  // Pre-encoded JSON (an array or nested object) written verbatim.
  void raw_field(std::string_view name, std::string_view json);

  void finish() { out_->push_back('}'); }

 private:
  void key(std::string_view name);

  std::string* out_;
  bool first_ = true;
};

}  // namespace streamrec
