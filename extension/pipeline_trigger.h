// Plumbing shared by the C++ pipeline triggers: checking how a trigger was fired and running
// its body with SPI connected and the transition table visible as streamrec_new_rows.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "pg/error_boundary.h"
#include "pg/pipeline_stats.h"
#include "pg/spi.h"
#include "pg/trigger_context.h"

extern "C" {
#include "utils/elog.h"
}

namespace streamrec {

// Runs a pipeline trigger's body with SPI connected and the transition table registered; an
// error is recorded against the pipeline and re-thrown.
template <typename Body>
Datum run_pipeline_trigger(FunctionCallInfo fcinfo, const char* pipeline, Body&& body) {
  TriggerData* trigger = insert_statement_trigger_data(fcinfo, pipeline, "streamrec.enable_pipeline() installs it.");
  try {
    spi_connect();
    pg_call([trigger] { return SPI_register_trigger_data(trigger); });
    body();
    spi_finish();
  } catch (const std::exception& e) {
    record_pipeline_error(pipeline, e.what());
    throw;
  }
  return PointerGetDatum(nullptr);
}

// Where a batch's time goes, reported at DEBUG1 (SET client_min_messages = debug1 shows it).
class StepTimer {
 public:
  void mark(const char* step) {
    if (!wanted_) return;
    auto now = std::chrono::steady_clock::now();
    char piece[64];
    snprintf(piece, sizeof piece, "%s%s %.1f ms", report_.empty() ? "" : ", ", step,
             std::chrono::duration<double, std::milli>(now - last_).count());
    report_ += piece;
    last_ = now;
  }
  void report(const char* pipeline, std::size_t events) {
    if (!wanted_) return;
    std::string line = report_;
    const char* text = line.c_str();
    pg_call([pipeline, events, text] { elog(DEBUG1, "%s: %zu events: %s", pipeline, events, text); });
  }

 private:
  // Formatting costs nothing unless someone will see the line.
  bool wanted_ = pg_call([] { return message_level_is_interesting(DEBUG1); });
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  std::string report_;
};

}  // namespace streamrec
