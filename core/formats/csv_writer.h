// RFC 4180 CSV encoder that appends to a caller-owned std::string.
//
// Used by sinks (rows -> Kafka messages), by the data generator, and by anything that feeds
// PostgreSQL's COPY ... CSV. It follows COPY's reading rules so that what we write is read back
// byte-for-byte: a NULL is the (unquoted) null string, an empty string is written as "" so it is
// not mistaken for NULL, and a field is quoted only when it has to be (delimiter, quote, CR, LF,
// the null string itself, or COPY's end-of-data marker \.). Leading and trailing spaces are kept
// unquoted: RFC 4180 and COPY both preserve them.
//
// The timestamp helpers live in timestamp_text.h (also used by the JSON encoder) and are
// re-exported here so a CSV caller needs one include.
#pragma once

#include "core/postgres_free.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/formats/number_text.h"
#include "core/formats/timestamp_text.h"

namespace streamrec {

struct csv_dialect {
  char delimiter = ',';
  char quote = '"';
  // Text of a NULL field. COPY's CSV default is the empty string.
  std::string null_string;
  // Appended by end_record(). Kafka messages carry one record each and want no terminator;
  // files want "\n" (COPY accepts "\n" and "\r\n"; RFC 4180 says "\r\n").
  std::string record_terminator = "\n";
};

class csv_writer {
 public:
  // `out` must outlive the writer; records are appended to it.
  explicit csv_writer(std::string& out, csv_dialect dialect = {});

  // Points the writer at another buffer, e.g. one per Kafka message. Starts a new record.
  void set_output(std::string& out) {
    out_ = &out;
    at_record_start_ = true;
  }
  std::string& output() { return *out_; }
  const csv_dialect& dialect() const { return dialect_; }

  // A text value, quoted only when needed.
  void field(std::string_view value);
  // A value that is always quoted (e.g. to force a list like "140,13" to look like one field).
  void quoted_field(std::string_view value);
  // SQL NULL.
  void null_field();
  // A value the caller knows needs no quoting (ids, enum words): skips the scan.
  void plain_field(std::string_view value);

  // Numbers and timestamps are written unquoted: they cannot contain a delimiter unless the
  // dialect picks a digit, '-', '.', ':' or a space as delimiter, which no caller should.
  void int_field(int64_t value);
  void double_field(double value);
  void decimal_field(int64_t unscaled, unsigned scale);
  // "YYYY-MM-DD HH:MM:SS[.fff[fff]]", UTC; what COPY reads into timestamptz (with the
  // session in UTC or the column declared timestamp) and what the Flink recommender we replace prints.
  void timestamp_field(int64_t epoch_us, time_precision precision = time_precision::seconds);

  // Appends the record terminator and starts a new record.
  void end_record();

  // True when `value` must be quoted to read back as the same non-NULL string.
  bool needs_quoting(std::string_view value) const;

 private:
  void separate() {
    if (!at_record_start_) out_->push_back(dialect_.delimiter);
    at_record_start_ = false;
  }
  void append_quoted(std::string_view value);

  std::string* out_;
  csv_dialect dialect_;
  timestamp_formatter timestamps_;
  bool at_record_start_ = true;
  // Bytes that force quoting, as a table so the scan is one load and test per byte.
  std::array<bool, 256> special_{};
};

}  // namespace streamrec
