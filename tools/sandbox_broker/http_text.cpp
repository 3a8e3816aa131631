#include "tools/sandbox_broker/http_text.h"

#include <charconv>

#include <simdjson.h>

namespace streamrec {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> decode_path_segment(std::string_view segment) {
  std::string out;
  out.reserve(segment.size());
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      out.push_back(segment[i]);
      continue;
    }
    if (i + 2 >= segment.size()) return std::nullopt;
    const int high = hex_value(segment[i + 1]);
    const int low = hex_value(segment[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  // The decoded name is echoed inside JSON responses, which must stay valid UTF-8.
  if (out.find('\0') != std::string::npos) return std::nullopt;
  if (!simdjson::validate_utf8(out.data(), out.size())) return std::nullopt;
  return out;
}

std::optional<long long> parse_bounded_integer(std::string_view text, long long min, long long max) {
  long long value = 0;
  const char *end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  if (value < min || value > max) return std::nullopt;
  return value;
}

}  // namespace streamrec
