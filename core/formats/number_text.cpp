#include "core/formats/number_text.h"

#include <cmath>

namespace streamrec {

void append_double(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value < 0 ? "-Infinity" : "Infinity";
  } else {
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, res.ptr);
  }
}

void append_decimal(std::string& out, int64_t unscaled, unsigned scale) {
  if (scale == 0) {
    append_int(out, unscaled);
    return;
  }
  // Work in unsigned so INT64_MIN has a magnitude.
  const bool negative = unscaled < 0;
  const uint64_t magnitude = negative ? uint64_t{0} - static_cast<uint64_t>(unscaled) : static_cast<uint64_t>(unscaled);
  uint64_t divisor = 1;
  for (unsigned i = 0; i < scale; ++i) divisor *= 10;
  if (negative) out.push_back('-');
  append_uint(out, magnitude / divisor);
  out.push_back('.');
  uint64_t fraction = magnitude % divisor;
  char digits[20];
  for (unsigned i = scale; i > 0; --i) {
    digits[i - 1] = static_cast<char>('0' + fraction % 10);
    fraction /= 10;
  }
  out.append(digits, scale);
}

}  // namespace streamrec
