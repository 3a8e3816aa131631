// The one reader of the options that the catalog keeps as jsonb (streamrec.pipeline_catalog,
// streamrec.sources, streamrec.sinks): each option is converted from its text the same way for
// every caller, in SQL (an interval through PostgreSQL's interval input, as microseconds), in a
// plan kept for the backend's life.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "pg/spi.h"

namespace streamrec {

// How an option's text reads.
enum class OptionKind { text, int4, int8, float4, float8, interval_us };

struct OptionSpec {
  const char* key;
  OptionKind kind;
  const char* null_word = nullptr;  // a value equal to this word reads as NULL (emit = 'click')
};

// The options of one pipeline, read from its streamrec.pipeline_catalog row.
class PipelineOptions {
 public:
  PipelineOptions(const char* pipeline, const std::vector<OptionSpec>& options);
  // The row's cells: `enabled`, then the options in the order given (NULL: not set). Empty
  // when the pipeline has no catalog row. Valid until the next SPI statement. SPI connected.
  std::vector<Cell> read();

 private:
  const char* pipeline_;
  std::vector<bool> text_columns_;
  KeptPlan plan_;
};

// A width or delay option as the pipeline uses it (microseconds), refused with a clean ERROR
// (22023) when it is not at least 1 microsecond (0 allowed with zero_ok): enable_pipeline checks
// every option, but the catalog row may have been changed by hand since.
int64 checked_option_us(const char* pipeline, const char* option, int64 us, bool zero_ok = false);

// The "kafka" option of a source or sink (table: "sources" or "sinks"): librdkafka properties
// by name. SPI connected.
std::map<std::string, std::string> read_kafka_options(const char* table, const std::string& name);

}  // namespace streamrec
