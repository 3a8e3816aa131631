// The one error boundary between C++ and PostgreSQL.
//
// PostgreSQL reports errors with longjmp, C++ with exceptions; neither may cross the other.
//  * pg_call() runs PostgreSQL code inside its own PG_TRY frame and turns an ERROR into a
//    PgError exception, so C++ frames unwind normally and destructors run.
//  * entry_boundary() wraps the C++ body of every extern "C" entry point (SQL function,
//    trigger, worker loop): whatever the body throws is copied into plain memory, the C++
//    scope ends, and only then is the PostgreSQL ERROR raised.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

namespace streamrec {

// A PostgreSQL ERROR caught by pg_call(), carried through C++ frames. It owns a copy of the
// ErrorData (allocated in the memory context that was current when pg_call() was entered).
class PgError : public std::exception {
 public:
  explicit PgError(ErrorData* data) noexcept : data_(data) {}
  PgError(PgError&& other) noexcept : data_(std::exchange(other.data_, nullptr)) {}
  PgError(const PgError&) = delete;
  PgError& operator=(const PgError&) = delete;
  PgError& operator=(PgError&&) = delete;

  const char* what() const noexcept override;
  int sqlstate() const noexcept { return data_ ? data_->sqlerrcode : ERRCODE_INTERNAL_ERROR; }
  // Hands the ErrorData to the caller (the entry boundary re-throws it unchanged).
  ErrorData* release() noexcept { return std::exchange(data_, nullptr); }

 private:
  ErrorData* data_;
};

// An error our own C++ code raises on purpose, with the SQLSTATE and hint the user will see.
class Error : public std::runtime_error {
 public:
  Error(int sqlstate, const std::string& message, std::string detail = {}, std::string hint = {})
      : std::runtime_error(message), sqlstate_(sqlstate), detail_(std::move(detail)), hint_(std::move(hint)) {}
  int sqlstate() const noexcept { return sqlstate_; }
  const std::string& detail() const noexcept { return detail_; }
  const std::string& hint() const noexcept { return hint_; }

 private:
  int sqlstate_;
  std::string detail_;
  std::string hint_;
};

// Runs fn (PostgreSQL C calls only: no C++ object with a destructor may live in fn's own
// frame, because an ERROR longjmps out of it) and converts an ERROR into PgError.
// After a PgError the transaction is in an aborted state: C++ code must unwind to the entry
// boundary (which re-raises it) rather than keep calling PostgreSQL, unless the call ran
// inside a subtransaction that it rolls back.
template <typename Fn>
auto pg_call(Fn&& fn) -> decltype(fn()) {
  using Result = decltype(fn());
  MemoryContext caller_context = CurrentMemoryContext;
  ErrorData* volatile caught = nullptr;
  if constexpr (std::is_void_v<Result>) {
    PG_TRY();
    { fn(); }
    PG_CATCH();
    {
      MemoryContextSwitchTo(caller_context);
      caught = CopyErrorData();
      FlushErrorState();
    }
    PG_END_TRY();
    if (caught != nullptr) throw PgError(caught);
  } else {
    static_assert(std::is_scalar_v<Result>, "pg_call returns only plain values (Datum, pointers, numbers)");
    volatile Result result{};  // assigned between setjmp and a possible longjmp
    PG_TRY();
    { result = fn(); }
    PG_CATCH();
    {
      MemoryContextSwitchTo(caller_context);
      caught = CopyErrorData();
      FlushErrorState();
    }
    PG_END_TRY();
    if (caught != nullptr) throw PgError(caught);
    return result;
  }
}

// What an entry point caught, in plain memory that needs no destructor, so that raising the
// PostgreSQL ERROR afterwards skips nothing.
struct CaughtError {
  bool failed = false;
  ErrorData* pg_error = nullptr;  // set when the body let a PgError escape: re-thrown unchanged
  int sqlstate = 0;
  char message[1024] = {};
  char detail[1024] = {};
  char hint[512] = {};
};

// Classifies the exception being handled (call only inside a catch block).
void capture_current_exception(CaughtError& out) noexcept;
// Raises the captured error as a PostgreSQL ERROR (at elevel) and does not return for ERROR.
void report_caught_error(const CaughtError& caught, int elevel = ERROR);

// Runs the C++ body of an extern "C" entry point; a throw becomes a clean PostgreSQL ERROR.
template <typename Body>
auto entry_boundary(Body&& body) -> decltype(body()) {
  using Result = decltype(body());
  CaughtError caught;
  if constexpr (std::is_void_v<Result>) {
    try {
      body();
    } catch (...) {
      capture_current_exception(caught);
    }
    if (caught.failed) report_caught_error(caught);
  } else {
    Result result{};
    try {
      result = body();
    } catch (...) {
      capture_current_exception(caught);
    }
    if (caught.failed) report_caught_error(caught);
    return result;
  }
}

// CHECK_FOR_INTERRUPTS() from C++ code: a cancel or termination arrives as PgError.
void check_for_interrupts();

}  // namespace streamrec

// Declares a V1 SQL-callable function whose body is the C++ function `body(FunctionCallInfo)`.
#define STREAMREC_SQL_FUNCTION(sql_symbol, body)                                      \
  extern "C" {                                                                        \
  PG_FUNCTION_INFO_V1(sql_symbol);                                                    \
  Datum sql_symbol(PG_FUNCTION_ARGS) {                                                \
    return ::streamrec::entry_boundary([fcinfo]() -> Datum { return body(fcinfo); }); \
  }                                                                                   \
  }
