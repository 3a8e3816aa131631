#include "core/formats/json_writer.h"

#include <cmath>

namespace streamrec {

void append_json_string(std::string& out, std::string_view value) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run_start = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    // Flush the clean run before the byte that needs an escape.
    out.append(value.data() + run_start, i - run_start);
    run_start = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default: {
        const char escape[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
        out.append(escape, sizeof escape);
      }
    }
  }
  out.append(value.data() + run_start, value.size() - run_start);
  out.push_back('"');
}

void json_object_writer::key(std::string_view name) {
  if (!first_) out_->push_back(',');
  first_ = false;
  append_json_string(*out_, name);
  out_->push_back(':');
}

void json_object_writer::string_field(std::string_view name, std::string_view value) {
  key(name);
  append_json_string(*out_, value);
}

void json_object_writer::null_field(std::string_view name) {
  key(name);
  *out_ += "null";
}

void json_object_writer::int_field(std::string_view name, int64_t value) {
  key(name);
  append_int(*out_, value);
}

void json_object_writer::double_field(std::string_view name, double value) {
  key(name);
  if (std::isfinite(value)) {
    append_double(*out_, value);
  } else {
    *out_ += "null";
  }
}

void json_object_writer::decimal_field(std::string_view name, int64_t unscaled, unsigned scale) {
  key(name);
  append_decimal(*out_, unscaled, scale);
}

void json_object_writer::bool_field(std::string_view name, bool value) {
  key(name);
  *out_ += value ? "true" : "false";
}

void json_object_writer::timestamp_field(std::string_view name, int64_t epoch_us, time_precision precision) {
  key(name);
  out_->push_back('"');
  append_iso8601(*out_, epoch_us, precision);
  out_->push_back('"');
}

void json_object_writer::raw_field(std::string_view name, std::string_view json) {
  key(name);
  out_->append(json);
}

}  // namespace streamrec
