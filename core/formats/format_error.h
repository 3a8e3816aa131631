// Errors raised by the PostgreSQL-free encoders and decoders in core/formats.
//
// One exception type for "these bytes are not what the format says" lets a source worker catch a
// single type per message and dead-letter it, while anything else (bad_alloc, registry outages)
// propagates and stops or retries the batch instead.
#pragma once

#include "core/postgres_free.h"

#include <stdexcept>
#include <string>

namespace streamrec {

class format_error : public std::runtime_error {
 public:
  explicit format_error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace streamrec
