// Number-to-text helpers shared by the CSV and JSON encoders.
//
// std::to_chars is locale-independent and allocation-free (snprintf is neither); the decimal
// helper exists because money travels as scaled integers, and "12.30" must not come out as
// 12.3000000000000007.
#pragma once

#include "core/postgres_free.h"

#include <charconv>
#include <cstdint>
#include <string>

namespace streamrec {

inline void append_int(std::string& out, int64_t value) {
  char buf[24];
  const auto res = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, res.ptr);
}

inline void append_uint(std::string& out, uint64_t value) {
  char buf[24];
  const auto res = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, res.ptr);
}

// Shortest text that reads back as the same double. Non-finite values are written as
// PostgreSQL spells them (NaN, Infinity, -Infinity); JSON callers must map them to null.
void append_double(std::string& out, double value);

// Writes unscaled / 10^scale with exactly `scale` fractional digits: (1234, 2) -> "12.34",
// (-5, 2) -> "-0.05", (7, 0) -> "7". scale must be <= 18.
void append_decimal(std::string& out, int64_t unscaled, unsigned scale);

}  // namespace streamrec
