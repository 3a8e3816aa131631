#include "core/formats/typed_cells.h"

#include <cstring>

#include "core/formats/format_error.h"
#include "core/formats/timestamp_text.h"

namespace streamrec {

namespace {

constexpr int64_t micros_per_second = 1'000'000;
constexpr int64_t seconds_per_day = 86'400;

bool digit(char c) { return c >= '0' && c <= '9'; }

// `count` digits at text[at]: true and the number when they are all digits.
bool digits(std::string_view text, size_t at, size_t count, int64_t& out) {
  if (text.size() < at + count) return false;
  int64_t v = 0;
  for (size_t i = at; i < at + count; ++i) {
    if (!digit(text[i])) return false;
    v = v * 10 + (text[i] - '0');
  }
  out = v;
  return true;
}

bool leap_year(int64_t year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

unsigned days_in_month(int64_t year, int64_t month) {
  static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && leap_year(year) ? 29 : days[month - 1];
}

// "YYYY-MM-DD" at the start of text: days since 1970-01-01.
bool parse_date_prefix(std::string_view text, int64_t& days) {
  int64_t year, month, day;
  if (text.size() < 10 || text[4] != '-' || text[7] != '-') return false;
  if (!digits(text, 0, 4, year) || !digits(text, 5, 2, month) || !digits(text, 8, 2, day)) return false;
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return false;
  days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  return true;
}

// -?[0-9]{1,18}: no sign, spaces or leading '+' (those go to the input function).
bool parse_integer(std::string_view text, int64_t& out) {
  size_t i = 0;
  const bool negative = !text.empty() && text[0] == '-';
  if (negative) i = 1;
  const size_t count = text.size() - i;
  if (count == 0 || count > 18) return false;
  int64_t v;
  if (!digits(text, i, count, v)) return false;
  out = negative ? -v : v;
  return true;
}

}  // namespace

bool parse_iso_timestamp(std::string_view text, int64_t& local, bool& has_zone, int32_t& offset_seconds) {
  int64_t days;
  if (!parse_date_prefix(text, days)) return false;
  if (text.size() < 19 || (text[10] != 'T' && text[10] != ' ') || text[13] != ':' || text[16] != ':') return false;
  int64_t hour, minute, second;
  if (!digits(text, 11, 2, hour) || !digits(text, 14, 2, minute) || !digits(text, 17, 2, second)) return false;
  if (hour > 23 || minute > 59 || second > 59) return false;
  size_t at = 19;
  int64_t fraction = 0;
  if (at < text.size() && text[at] == '.') {
    ++at;
    size_t count = 0;
    while (at < text.size() && digit(text[at])) {
      if (++count > 6) return false;  // PostgreSQL rounds beyond microseconds: its own function does it
      fraction = fraction * 10 + (text[at] - '0');
      ++at;
    }
    if (count == 0) return false;
    for (size_t i = count; i < 6; ++i) fraction *= 10;
  }
  has_zone = false;
  offset_seconds = 0;
  if (at < text.size()) {
    if (text[at] == 'Z' && at + 1 == text.size()) {
      has_zone = true;
    } else if (text[at] == '+' || text[at] == '-') {
      const bool west = text[at] == '-';
      int64_t zone_hours, zone_minutes = 0;
      if (!digits(text, at + 1, 2, zone_hours)) return false;
      size_t end = at + 3;
      if (end < text.size()) {
        if (text[end] != ':' || !digits(text, end + 1, 2, zone_minutes) || end + 3 != text.size()) return false;
      }
      if (zone_hours > 14 || zone_minutes > 59) return false;
      has_zone = true;
      offset_seconds = static_cast<int32_t>((west ? -1 : 1) * (zone_hours * 3600 + zone_minutes * 60));
    } else {
      return false;
    }
  }
  local = (days * seconds_per_day + hour * 3600 + minute * 60 + second) * micros_per_second + fraction;
  return true;
}

void typed_rows::unescape(std::string_view raw) {
  const char* p = raw.data();
  const char* const end = p + raw.size();
  const char* backslash = static_cast<const char*>(std::memchr(p, '\\', raw.size()));
  if (backslash == nullptr) {
    text_.append(p, raw.size());
    return;
  }
  // As COPY FROM's text format reads a field: \b \f \n \r \t \v, up to three octal digits, \x
  // and one or two hex digits, and any other character after a backslash taken literally.
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  while (p < end) {
    char c = *p++;
    if (c == '\\') {
      if (p >= end) break;
      c = *p++;
      switch (c) {
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7': {
          int v = c - '0';
          for (int i = 0; i < 2 && p < end && *p >= '0' && *p <= '7'; ++i) v = (v << 3) + (*p++ - '0');
          c = static_cast<char>(v & 0xff);
          break;
        }
        case 'x':
          if (p < end && hex(*p) >= 0) {
            int v = hex(*p++);
            if (p < end && hex(*p) >= 0) v = (v << 4) + hex(*p++);
            c = static_cast<char>(v & 0xff);
          }
          break;
        case 'b':
          c = '\b';
          break;
        case 'f':
          c = '\f';
          break;
        case 'n':
          c = '\n';
          break;
        case 'r':
          c = '\r';
          break;
        case 't':
          c = '\t';
          break;
        case 'v':
          c = '\v';
          break;
        default:
          break;
      }
    }
    text_.push_back(c);
  }
}

void typed_rows::add_text(cell_kind kind, std::string_view raw) {
  const size_t offset = text_.size();
  unescape(raw);
  push(kind, static_cast<uint32_t>(text_.size() - offset), static_cast<int64_t>(offset));
}

size_t typed_rows::append_line(std::string_view line, const column_mask& present, const std::vector<cell_type>& types) {
  const size_t first = cells_.size();
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  size_t pos = 0;
  bool more = !line.empty();  // a line of fields (one without any holds no text)
  bool first_field = true;
  for (size_t b = 0; b < present.size(); ++b) {
    if (!present[b]) continue;
    if (!more && !first_field) throw format_error("decoded row has fewer fields than columns");
    first_field = false;
    // The field runs to the next tab that no backslash escapes (decoders escape every tab in a
    // value, so a field without a backslash ends at the first tab).
    const char* const data = line.data();
    const void* tab = pos < line.size() ? std::memchr(data + pos, '\t', line.size() - pos) : nullptr;
    size_t end = tab != nullptr ? static_cast<size_t>(static_cast<const char*>(tab) - data) : line.size();
    const bool escaped = end > pos && std::memchr(data + pos, '\\', end - pos) != nullptr;
    if (escaped) {
      end = pos;
      while (end < line.size() && line[end] != '\t') end += line[end] == '\\' ? 2 : 1;
      if (end > line.size()) end = line.size();
    }
    const std::string_view raw = line.substr(pos, end - pos);
    more = end < line.size();
    pos = end + 1;
    if (escaped && raw == "\\N") {
      push(cell_kind::null, 0, 0);
      continue;
    }
    // Fast forms never contain a backslash, so they are recognised on the raw field.
    int64_t v = 0;
    switch (types[b]) {
      case cell_type::text:
        if (!escaped) {
          push(cell_kind::text, static_cast<uint32_t>(raw.size()), static_cast<int64_t>(text_.size()));
          text_.append(raw);
          continue;
        }
        add_text(cell_kind::text, raw);
        continue;
      case cell_type::int2:
      case cell_type::int4:
      case cell_type::int8:
        if (parse_integer(raw, v) &&
            (types[b] == cell_type::int8 || (types[b] == cell_type::int4 && v >= INT32_MIN && v <= INT32_MAX) ||
             (types[b] == cell_type::int2 && v >= INT16_MIN && v <= INT16_MAX))) {
          push(cell_kind::integer, 0, v);
          continue;
        }
        break;
      case cell_type::boolean:
        if (raw == "t" || raw == "true" || raw == "f" || raw == "false") {
          push(cell_kind::boolean, 0, raw[0] == 't' ? 1 : 0);
          continue;
        }
        break;
      case cell_type::date:
        if (raw.size() == 10 && parse_date_prefix(raw, v)) {
          push(cell_kind::date, 0, v);
          continue;
        }
        break;
      case cell_type::timestamp:
      case cell_type::timestamptz: {
        bool has_zone;
        int32_t offset;
        if (parse_iso_timestamp(raw, v, has_zone, offset)) {
          if (types[b] == cell_type::timestamp) {
            push(cell_kind::timestamp, 0, v);  // the zone is ignored, as timestamp_in does
          } else if (has_zone) {
            push(cell_kind::timestamp, 0, v - int64_t{offset} * micros_per_second);
          } else {
            push(cell_kind::local_timestamp, 0, v);
          }
          continue;
        }
        break;
      }
      case cell_type::input:
        break;
    }
    add_text(cell_kind::input, raw);
  }
  if (more) throw format_error("decoded row has more fields than columns");
  return first;
}

}  // namespace streamrec
