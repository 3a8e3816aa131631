#include "core/formats/decoder_support.h"

#include <cmath>

#include "core/formats/copy_text.h"
#include "core/formats/number_text.h"

namespace streamrec {

namespace {

// |ms| beyond this overflows int64 microseconds; PostgreSQL's range ends far earlier anyway.
constexpr int64_t max_epoch_millis = INT64_MAX / 1000 - 1;

inline void put2(std::string& out, unsigned v) {
  out.push_back(static_cast<char>('0' + v / 10));
  out.push_back(static_cast<char>('0' + v % 10));
}

}  // namespace

std::vector<std::string> split_field_path(const column_binding& binding) {
  const std::string_view path = binding.field.empty() ? std::string_view(binding.column) : binding.field;
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    parts.emplace_back(path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return parts;
}

void append_epoch_millis_iso(std::string& out, int64_t epoch_ms, timestamp_formatter& timestamps) {
  if (epoch_ms > max_epoch_millis || epoch_ms < -max_epoch_millis) {
    throw format_error("epoch milliseconds " + std::to_string(epoch_ms) + " are out of the timestamp range");
  }
  timestamps.append_iso(out, epoch_ms * 1000, time_precision::millis);
}

void append_epoch_millis_iso(std::string& out, double epoch_ms, timestamp_formatter& timestamps) {
  const double micros = std::round(epoch_ms * 1000.0);
  // 9.2e18 is the int64 limit; stay well inside so the conversion is defined.
  if (!(std::fabs(micros) < 9.0e18)) {
    std::string text;
    append_double(text, epoch_ms);
    throw format_error("epoch milliseconds " + text + " are out of the timestamp range");
  }
  const auto us = static_cast<int64_t>(micros);
  // Keep microseconds only when the number carried them.
  timestamps.append_iso(out, us, us % 1000 == 0 ? time_precision::millis : time_precision::micros);
}

void append_epoch_days_date(std::string& out, int64_t days) {
  int64_t year;
  unsigned month;
  unsigned day;
  civil_from_days(days, year, month, day);
  // PostgreSQL spells years before 1 as "YYYY-MM-DD BC" (year 0 is 1 BC).
  const bool bc = year <= 0;
  const int64_t shown = bc ? 1 - year : year;
  if (shown < 1000) out.append(shown < 10 ? "000" : shown < 100 ? "00" : "0");
  append_int(out, shown);
  out.push_back('-');
  put2(out, month);
  out.push_back('-');
  put2(out, day);
  if (bc) out.append(" BC");
}

void append_time_of_day(std::string& out, int64_t micros, time_precision precision) {
  // PostgreSQL's time accepts 00:00:00 through 24:00:00.
  constexpr int64_t day_us = int64_t{86'400} * 1'000'000;
  if (micros < 0 || micros > day_us) {
    throw format_error("time of day " + std::to_string(micros) + " us is outside 00:00:00..24:00:00");
  }
  const auto seconds = static_cast<unsigned>(micros / 1'000'000);
  put2(out, seconds / 3600);
  out.push_back(':');
  put2(out, seconds / 60 % 60);
  out.push_back(':');
  put2(out, seconds % 60);
  if (precision == time_precision::seconds) return;
  auto fraction = static_cast<unsigned>(micros % 1'000'000);
  char digits[6];
  for (int i = 5; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + fraction % 10);
    fraction /= 10;
  }
  out.push_back('.');
  out.append(digits, precision == time_precision::millis ? 3 : 6);
}

void append_metadata_field(std::string& out, const column_binding& binding, const message_view& message,
                           timestamp_formatter& timestamps) {
  switch (binding.metadata) {
    case metadata_field::timestamp:
      if (message.timestamp_ms == -1) {
        out.append(copy_null_marker);
      } else {
        append_epoch_millis_iso(out, message.timestamp_ms, timestamps);
      }
      return;
    case metadata_field::key:
      if (!message.key) {
        out.append(copy_null_marker);
      } else if (binding.kind == column_kind::bytea) {
        append_copy_bytea(out, *message.key);
      } else {
        append_copy_escaped(out, *message.key);
      }
      return;
    case metadata_field::partition:
      append_int(out, message.partition);
      return;
    case metadata_field::offset:
      append_int(out, message.offset);
      return;
    case metadata_field::topic:
      append_copy_escaped(out, message.topic);
      return;
    case metadata_field::none:
    case metadata_field::change_ts_ms:
    case metadata_field::change_source:
    case metadata_field::change_op:
      break;  // no such thing in the message itself (envelopes fill these)
  }
  out.append(copy_null_marker);
}

void split_copy_fields(std::string_view line, size_t count, std::vector<std::string_view>& fields) {
  fields.clear();
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (count == 0 && line.empty()) return;  // a line of no fields (every binding absent)
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      fields.push_back(line.substr(start));
      break;
    }
    fields.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
  if (fields.size() != count) {
    throw format_error("a decoded line holds " + std::to_string(fields.size()) + " fields, not " +
                       std::to_string(count));
  }
}

void append_slots_line(std::string& line, column_mask& present, const std::vector<column_binding>& bindings,
                       const value_slots& slots, const message_view& message, timestamp_formatter& timestamps) {
  present.resize(bindings.size());
  copy_line out(line);
  for (size_t i = 0; i < bindings.size(); ++i) {
    const column_binding& binding = bindings[i];
    if (binding.metadata != metadata_field::none) {
      present[i] = true;
      append_metadata_field(out.begin_field(), binding, message, timestamps);
      continue;
    }
    switch (slots.state_of(i)) {
      case value_slots::state::absent:
        present[i] = false;
        break;
      case value_slots::state::null:
        present[i] = true;
        out.null();
        break;
      case value_slots::state::value:
        present[i] = true;
        out.raw(slots.text(i));
        break;
    }
  }
  out.finish();
}

}  // namespace streamrec
