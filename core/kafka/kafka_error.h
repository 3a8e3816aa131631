// Exception for librdkafka failures, carrying the error code so callers can tell a full queue
// or a timed-out flush from a fatal producer error without parsing messages.
#pragma once

#include "core/postgres_free.h"

#include <librdkafka/rdkafka.h>

#include <stdexcept>
#include <string>

namespace streamrec {

class kafka_error : public std::runtime_error {
 public:
  kafka_error(const std::string& message, rd_kafka_resp_err_t code = RD_KAFKA_RESP_ERR_UNKNOWN, bool fatal = false)
      : std::runtime_error(message), code_(code), fatal_(fatal) {}

  rd_kafka_resp_err_t code() const { return code_; }
  // A fatal error (e.g. the idempotent producer lost its guarantees): the client must be
  // destroyed and recreated; retrying on the same handle cannot succeed.
  bool fatal() const { return fatal_; }

 private:
  rd_kafka_resp_err_t code_;
  bool fatal_;
};

}  // namespace streamrec
