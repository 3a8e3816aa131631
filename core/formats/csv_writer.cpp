#include "core/formats/csv_writer.h"

#include <cstring>
#include <utility>

namespace streamrec {

csv_writer::csv_writer(std::string& out, csv_dialect dialect) : out_(&out), dialect_(std::move(dialect)) {
  special_[static_cast<unsigned char>(dialect_.delimiter)] = true;
  special_[static_cast<unsigned char>(dialect_.quote)] = true;
  special_[static_cast<unsigned char>('\r')] = true;
  special_[static_cast<unsigned char>('\n')] = true;
}

bool csv_writer::needs_quoting(std::string_view value) const {
  if (value == dialect_.null_string) return true;
  // COPY treats a line holding only \. as end of data, even in CSV mode, unless quoted.
  if (value == "\\.") return true;
  for (const char c : value) {
    if (special_[static_cast<unsigned char>(c)]) return true;
  }
  return false;
}

void csv_writer::append_quoted(std::string_view value) {
  std::string& out = *out_;
  out.push_back(dialect_.quote);
  // Copy runs between quote characters in one append each; double every quote.
  size_t start = 0;
  while (true) {
    const void* hit =
        value.size() > start ? std::memchr(value.data() + start, dialect_.quote, value.size() - start) : nullptr;
    if (hit == nullptr) {
      out.append(value.data() + start, value.size() - start);
      break;
    }
    const size_t at = static_cast<size_t>(static_cast<const char*>(hit) - value.data());
    out.append(value.data() + start, at - start + 1);
    out.push_back(dialect_.quote);
    start = at + 1;
  }
  out.push_back(dialect_.quote);
}

void csv_writer::field(std::string_view value) {
  separate();
  if (needs_quoting(value)) {
    append_quoted(value);
  } else {
    out_->append(value);
  }
}

void csv_writer::quoted_field(std::string_view value) {
  separate();
  append_quoted(value);
}

void csv_writer::null_field() {
  separate();
  out_->append(dialect_.null_string);
}

void csv_writer::plain_field(std::string_view value) {
  separate();
  out_->append(value);
}

void csv_writer::int_field(int64_t value) {
  separate();
  append_int(*out_, value);
}

void csv_writer::double_field(double value) {
  separate();
  append_double(*out_, value);
}

void csv_writer::decimal_field(int64_t unscaled, unsigned scale) {
  separate();
  append_decimal(*out_, unscaled, scale);
}

void csv_writer::timestamp_field(int64_t epoch_us, time_precision precision) {
  separate();
  timestamps_.append_sql(*out_, epoch_us, precision);
}

void csv_writer::end_record() {
  out_->append(dialect_.record_terminator);
  at_record_start_ = true;
}

}  // namespace streamrec
