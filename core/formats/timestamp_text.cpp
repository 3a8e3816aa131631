#include "core/formats/timestamp_text.h"

#include <charconv>
#include <cstring>

namespace streamrec {

namespace {

constexpr int64_t us_per_second = 1'000'000;
constexpr int64_t seconds_per_day = 86'400;

// Floor division: C++ truncates toward zero, which would put pre-1970 instants on the wrong day.
int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

inline void put2(char* p, unsigned v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

// The remainder of floor division, in [0, b): never multiplies the quotient back, so it holds
// for every int64 (the second an instant near INT64_MIN falls in has no microsecond count).
int64_t floor_mod(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return r < 0 ? r + b : r;
}

// Writes the fixed part "YYYY-MM-DD?HH:MM:SS" (19 bytes for years 0..9999) of the second
// `seconds` after the epoch.
void append_second_text(std::string& out, int64_t seconds, char separator) {
  const int64_t days = floor_div(seconds, seconds_per_day);
  const auto second_of_day = static_cast<unsigned>(seconds - days * seconds_per_day);

  int64_t year;
  unsigned month;
  unsigned day;
  civil_from_days(days, year, month, day);

  if (year >= 0 && year <= 9999) {
    char buf[19];
    const auto y = static_cast<unsigned>(year);
    put2(buf, y / 100);
    put2(buf + 2, y % 100);
    buf[4] = '-';
    put2(buf + 5, month);
    buf[7] = '-';
    put2(buf + 8, day);
    buf[10] = separator;
    put2(buf + 11, second_of_day / 3600);
    buf[13] = ':';
    put2(buf + 14, second_of_day / 60 % 60);
    buf[16] = ':';
    put2(buf + 17, second_of_day % 60);
    out.append(buf, sizeof buf);
  } else {
    // Outside four-digit years: ISO 8601 "expanded" form, rare enough to take the slow path.
    char buf[32];
    auto res = std::to_chars(buf, buf + sizeof buf, year);
    out.append(buf, res.ptr);
    char rest[15];
    rest[0] = '-';
    put2(rest + 1, month);
    rest[3] = '-';
    put2(rest + 4, day);
    rest[6] = separator;
    put2(rest + 7, second_of_day / 3600);
    rest[9] = ':';
    put2(rest + 10, second_of_day / 60 % 60);
    rest[12] = ':';
    put2(rest + 13, second_of_day % 60);
    out.append(rest, sizeof rest);
  }
}

// The date and time of `epoch_us` to the second; returns the sub-second remainder in microseconds.
int64_t append_date_time_text(std::string& out, int64_t epoch_us, char separator) {
  append_second_text(out, floor_div(epoch_us, us_per_second), separator);
  return floor_mod(epoch_us, us_per_second);
}

void append_fraction(std::string& out, int64_t micros, time_precision precision) {
  if (precision == time_precision::seconds) return;
  char buf[7];
  buf[0] = '.';
  auto value = static_cast<unsigned>(micros);
  for (int i = 6; i >= 1; --i) {
    buf[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  out.append(buf, precision == time_precision::millis ? 4 : 7);
}

// Reads exactly `width` decimal digits at `pos`; advances pos on success.
bool read_digits(std::string_view text, size_t& pos, size_t width, int64_t& value) {
  if (pos + width > text.size()) return false;
  int64_t v = 0;
  for (size_t i = 0; i < width; ++i) {
    const char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  value = v;
  pos += width;
  return true;
}

bool is_leap(int64_t year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

unsigned days_in_month(int64_t year, unsigned month) {
  static constexpr unsigned lengths[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap(year) ? 29 : lengths[month - 1];
}

}  // namespace

int64_t days_from_civil(int64_t year, unsigned month, unsigned day) {
  // Shift the year to start in March so the leap day is the last day of the "year"; then a
  // 400-year era has a fixed length of 146097 days.
  year -= month <= 2 ? 1 : 0;
  const int64_t era = floor_div(year, 400);
  const auto year_of_era = static_cast<unsigned>(year - era * 400);
  const unsigned month_from_march = month > 2 ? month - 3 : month + 9;
  const unsigned day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
  const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + static_cast<int64_t>(day_of_era) - 719468;
}

void civil_from_days(int64_t days, int64_t& year, unsigned& month, unsigned& day) {
  days += 719468;  // days from 0000-03-01
  const int64_t era = floor_div(days, 146097);
  const auto day_of_era = static_cast<unsigned>(days - era * 146097);
  const unsigned year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const unsigned day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const unsigned month_from_march = (5 * day_of_year + 2) / 153;
  day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
  month = month_from_march < 10 ? month_from_march + 3 : month_from_march - 9;
  year = static_cast<int64_t>(year_of_era) + era * 400 + (month <= 2 ? 1 : 0);
}

void append_sql_timestamp(std::string& out, int64_t epoch_us, time_precision precision) {
  const int64_t micros = append_date_time_text(out, epoch_us, ' ');
  append_fraction(out, micros, precision);
}

void append_iso8601(std::string& out, int64_t epoch_us, time_precision precision) {
  const int64_t micros = append_date_time_text(out, epoch_us, 'T');
  append_fraction(out, micros, precision);
  out.push_back('Z');
}

int64_t timestamp_formatter::append_date_time(std::string& out, int64_t epoch_us, char separator) {
  const int64_t second = floor_div(epoch_us, us_per_second);
  if (second != cached_second_) {
    cached_text_.clear();
    append_second_text(cached_text_, second, ' ');
    cached_second_ = second;
  }
  const size_t start = out.size();
  out.append(cached_text_);
  // "HH:MM:SS" ends the text whatever the year's width; the separator precedes it.
  const size_t separator_at = cached_text_.size() - 9;
  out[start + separator_at] = separator;
  return floor_mod(epoch_us, us_per_second);
}

void timestamp_formatter::append_sql(std::string& out, int64_t epoch_us, time_precision precision) {
  append_fraction(out, append_date_time(out, epoch_us, ' '), precision);
}

void timestamp_formatter::append_iso(std::string& out, int64_t epoch_us, time_precision precision) {
  append_fraction(out, append_date_time(out, epoch_us, 'T'), precision);
  out.push_back('Z');
}

std::string format_sql_timestamp(int64_t epoch_us, time_precision precision) {
  std::string out;
  append_sql_timestamp(out, epoch_us, precision);
  return out;
}

std::string format_iso8601(int64_t epoch_us, time_precision precision) {
  std::string out;
  append_iso8601(out, epoch_us, precision);
  return out;
}

std::optional<int64_t> parse_iso8601(std::string_view text) {
  size_t pos = 0;
  int64_t year;
  int64_t month;
  int64_t day;
  if (!read_digits(text, pos, 4, year)) return std::nullopt;
  if (pos >= text.size() || text[pos++] != '-') return std::nullopt;
  if (!read_digits(text, pos, 2, month)) return std::nullopt;
  if (pos >= text.size() || text[pos++] != '-') return std::nullopt;
  if (!read_digits(text, pos, 2, day)) return std::nullopt;
  if (month < 1 || month > 12) return std::nullopt;
  if (day < 1 || day > days_in_month(year, static_cast<unsigned>(month))) return std::nullopt;

  int64_t hour = 0;
  int64_t minute = 0;
  int64_t second = 0;
  int64_t micros = 0;
  if (pos < text.size() && (text[pos] == 'T' || text[pos] == 't' || text[pos] == ' ')) {
    ++pos;
    if (!read_digits(text, pos, 2, hour)) return std::nullopt;
    if (pos >= text.size() || text[pos++] != ':') return std::nullopt;
    if (!read_digits(text, pos, 2, minute)) return std::nullopt;
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      if (!read_digits(text, pos, 2, second)) return std::nullopt;
      if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
        ++pos;
        size_t digits = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
          if (digits < 6) micros = micros * 10 + (text[pos] - '0');
          ++digits;
          ++pos;
        }
        if (digits == 0) return std::nullopt;
        for (size_t i = digits; i < 6; ++i) micros *= 10;
      }
    }
    // 24:00 is not accepted; a leap second 60 is not representable in epoch time either.
    if (hour > 23 || minute > 59 || second > 59) return std::nullopt;
  }

  int64_t offset_seconds = 0;
  if (pos < text.size()) {
    const char zone = text[pos];
    if (zone == 'Z' || zone == 'z') {
      ++pos;
    } else if (zone == '+' || zone == '-') {
      ++pos;
      int64_t offset_hours;
      int64_t offset_minutes = 0;
      if (!read_digits(text, pos, 2, offset_hours)) return std::nullopt;
      const bool colon = pos < text.size() && text[pos] == ':';
      if (colon) ++pos;
      if ((colon || pos < text.size()) && !read_digits(text, pos, 2, offset_minutes)) {
        return std::nullopt;
      }
      if (offset_hours > 23 || offset_minutes > 59) return std::nullopt;
      offset_seconds = (offset_hours * 3600 + offset_minutes * 60) * (zone == '+' ? 1 : -1);
    } else {
      return std::nullopt;
    }
  }
  if (pos != text.size()) return std::nullopt;

  const int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const int64_t seconds = days * seconds_per_day + hour * 3600 + minute * 60 + second - offset_seconds;
  return seconds * us_per_second + micros;
}

}  // namespace streamrec
