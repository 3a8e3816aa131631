// Self-test entry points for the error boundary. They exist so the regression and
// integration suites can prove, on a real server, that errors in both directions reach the
// client as clean ERRORs with a SQLSTATE and that C++ destructors ran. Superuser only.
#include "core/formats/format_error.h"
#include "core/kafka/kafka_error.h"
#include "core/registry/schema_registry_client.h"

#include <atomic>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "pg/error_boundary.h"

extern "C" {
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
}

namespace streamrec {
namespace {

// Counts live instances, so a test can see that unwinding really ran the destructors.
std::atomic<int> live_guards{0};
struct LiveGuard {
  LiveGuard() { ++live_guards; }
  ~LiveGuard() { --live_guards; }
  LiveGuard(const LiveGuard&) = delete;
  LiveGuard& operator=(const LiveGuard&) = delete;
};

// A PostgreSQL ERROR raised while C++ objects are alive on the stack.
void raise_pg_error_under_cpp() {
  LiveGuard guard;
  std::vector<std::string> owned{"objects", "with", "destructors"};
  const char* text = "not a number";
  pg_call([text] { return DirectFunctionCall1(int4in, CStringGetDatum(text)); });
}

// C++ calls PostgreSQL (SPI) which calls back into C++, whose exception becomes an ERROR,
// which comes back to the outer C++ code as PgError: both directions, nested.
void nested_round_trip() {
  LiveGuard guard;
  std::string query = "SELECT streamrec._selftest('cpp_error')";
  const char* sql = query.c_str();
  pg_call([] { return SPI_connect(); });
  // No SPI_finish on the error path: after an ERROR only unwinding is safe, and the
  // transaction abort that follows cleans up SPI.
  pg_call([sql] { return SPI_execute(sql, true, 0); });
  pg_call([] { return SPI_finish(); });
}

Datum selftest(FunctionCallInfo fcinfo) {
  if (PG_ARGISNULL(0)) throw Error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "kind must not be NULL");
  std::string kind = pg_call([fcinfo] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
  LiveGuard guard;
  if (kind == "ok") {
    return pg_call([] { return PointerGetDatum(cstring_to_text("ok")); });
  } else if (kind == "pg_error") {
    raise_pg_error_under_cpp();
  } else if (kind == "cpp_error") {
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "selftest: C++ error with SQLSTATE",
                "Thrown as streamrec::Error inside a SQL function.", "This is expected in tests.");
  } else if (kind == "std_exception") {
    throw std::runtime_error("selftest: plain std::exception");
  } else if (kind == "bad_alloc") {
    throw std::bad_alloc();
  } else if (kind == "kafka_setting") {  // the core exceptions that users, brokers and data cause
    throw kafka_error("selftest: Kafka setting refused", RD_KAFKA_RESP_ERR__INVALID_ARG);
  } else if (kind == "kafka_broker") {
    throw kafka_error("selftest: Kafka broker unreachable", RD_KAFKA_RESP_ERR__TRANSPORT);
  } else if (kind == "registry_down") {
    throw registry_error("selftest: registry unreachable", true, 0, "http://127.0.0.1:1");
  } else if (kind == "registry_refused") {
    throw registry_error("selftest: subject not found", false, 404, "http://127.0.0.1:1", 40401);
  } else if (kind == "bad_data") {
    throw format_error("selftest: malformed message");
  } else if (kind == "bad_option") {
    throw std::invalid_argument("selftest: bad option value");
  } else if (kind == "nested") {
    nested_round_trip();
  } else if (kind == "interrupt") {
    // Lets a test cancel a C++ loop: pg_cancel_backend arrives as PgError via the guard.
    for (;;) {
      check_for_interrupts();
      pg_call([] { pg_usleep(10000); });
    }
  } else {
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "unknown selftest kind \"" + kind + "\"", "",
                "Use one of: ok, pg_error, cpp_error, std_exception, bad_alloc, nested, interrupt.");
  }
  // Cannot happen: every kind above returns or raises.
  throw Error(ERRCODE_INTERNAL_ERROR, "selftest kind \"" + kind + "\" did not raise");
}

Datum selftest_live_objects(FunctionCallInfo) { return Int32GetDatum(live_guards.load()); }

}  // namespace
}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_selftest, streamrec::selftest)
STREAMREC_SQL_FUNCTION(streamrec_selftest_live_objects, streamrec::selftest_live_objects)
