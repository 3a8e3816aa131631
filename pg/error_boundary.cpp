#include "core/event_time.h"
#include "core/formats/confluent_avro.h"
#include "core/formats/decoder.h"
#include "core/formats/format_error.h"
#include "core/kafka/kafka_error.h"
#include "core/registry/schema_registry_client.h"

#include "pg/error_boundary.h"

#include <cstring>
#include <new>

extern "C" {
#include "miscadmin.h"
}

namespace streamrec {

const char* PgError::what() const noexcept {
  return data_ != nullptr && data_->message != nullptr ? data_->message : "PostgreSQL error";
}

namespace {
void copy_text(char* dest, size_t size, const char* text) noexcept {
  if (text == nullptr) {
    dest[0] = '\0';
    return;
  }
  strlcpy(dest, text, size);
}
}  // namespace

void capture_current_exception(CaughtError& out) noexcept {
  out.failed = true;
  try {
    throw;
  } catch (PgError& e) {
    out.pg_error = e.release();
    if (out.pg_error == nullptr) {
      // Cannot happen: a PgError is released once, by the boundary that reports it.
      out.sqlstate = ERRCODE_INTERNAL_ERROR;
      copy_text(out.message, sizeof out.message, "PostgreSQL error was already reported");
    }
  } catch (const Error& e) {
    out.sqlstate = e.sqlstate();
    copy_text(out.message, sizeof out.message, e.what());
    copy_text(out.detail, sizeof out.detail, e.detail().c_str());
    copy_text(out.hint, sizeof out.hint, e.hint().c_str());
  } catch (const window_error& e) {
    bool width = e.what_kind() == window_error::kind::bad_width;
    out.sqlstate = width ? ERRCODE_INVALID_PARAMETER_VALUE : ERRCODE_DATETIME_VALUE_OUT_OF_RANGE;
    copy_text(out.message, sizeof out.message, e.what());
    copy_text(out.hint, sizeof out.hint,
              width ? "Set the pipeline's window options again with streamrec.enable_pipeline(): each must be at least "
                      "1 microsecond wide."
                    : "The event's time is too near the end of the timestamp range for its window.");
  } catch (const std::bad_alloc&) {
    out.sqlstate = ERRCODE_OUT_OF_MEMORY;
    copy_text(out.message, sizeof out.message, "out of memory in pg_streamrec");
  } catch (const kafka_error& e) {
    // A setting librdkafka refuses is the user's to fix; anything else is the client or broker.
    bool setting = e.code() == RD_KAFKA_RESP_ERR__INVALID_ARG;
    out.sqlstate = setting ? ERRCODE_INVALID_PARAMETER_VALUE : ERRCODE_CONNECTION_FAILURE;
    copy_text(out.message, sizeof out.message, e.what());
    if (setting) copy_text(out.hint, sizeof out.hint, "Correct the Kafka properties in the options' \"kafka\" object.");
  } catch (const registry_error& e) {
    // Unreachable or overloaded: try again later; a 4xx answer: the subject or schema is refused.
    out.sqlstate = e.transient() ? ERRCODE_CONNECTION_FAILURE : ERRCODE_INVALID_PARAMETER_VALUE;
    copy_text(out.message, sizeof out.message, e.what());
  } catch (const transient_error& e) {
    out.sqlstate = ERRCODE_CONNECTION_FAILURE;
    copy_text(out.message, sizeof out.message, e.what());
  } catch (const format_error& e) {
    out.sqlstate = ERRCODE_DATA_EXCEPTION;
    copy_text(out.message, sizeof out.message, e.what());
  } catch (const avro_error& e) {
    // A schema Avro cannot express or read (an inline schema, or a relation's column types).
    out.sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
    copy_text(out.message, sizeof out.message, e.what());
  } catch (const std::invalid_argument& e) {
    // Core code rejects a bad option value (start position, csv or avro settings) this way.
    out.sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
    copy_text(out.message, sizeof out.message, e.what());
  } catch (const std::exception& e) {
    // Every condition a user, a broker or bad data can cause throws one of the types above or
    // an Error with its own SQLSTATE; any other exception is a bug in pg_streamrec.
    out.sqlstate = ERRCODE_INTERNAL_ERROR;
    copy_text(out.message, sizeof out.message, e.what());
  } catch (...) {
    out.sqlstate = ERRCODE_INTERNAL_ERROR;
    copy_text(out.message, sizeof out.message, "unknown C++ exception in pg_streamrec");
  }
}

void report_caught_error(const CaughtError& caught, int elevel) {
  if (caught.pg_error != nullptr) {
    if (elevel >= ERROR) ReThrowError(caught.pg_error);  // keeps SQLSTATE, detail, hint, context
    caught.pg_error->elevel = elevel;
    ThrowErrorData(caught.pg_error);
    return;
  }
  ereport(elevel,
          (errcode(caught.sqlstate), errmsg("%s", caught.message),
           caught.detail[0] ? errdetail("%s", caught.detail) : 0, caught.hint[0] ? errhint("%s", caught.hint) : 0));
}

void check_for_interrupts() {
  pg_call([] { CHECK_FOR_INTERRUPTS(); });
}

}  // namespace streamrec
