#include "core/event_time.h"

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
  } catch (const std::exception& e) {
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
