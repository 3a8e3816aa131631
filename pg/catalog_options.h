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

// How an option's text reads. json_text: a string as it is, any other JSON value as its JSON text
// (an Avro schema given inline as an object or as a string).
enum class OptionKind { text, int4, int8, float4, float8, boolean, interval_us, json_text };

struct OptionSpec {
  const char* key;  // "batch_size", or a path into nested options: "csv.delimiter"
  OptionKind kind;
  const char* null_word = nullptr;  // a value equal to this word reads as NULL (emit = 'click')
  const char* fallback = nullptr;   // SQL expression the option reads as when it is not set
};

// The SQL expression that reads one option out of the jsonb expression `options`, converted as
// its kind says. Every reader of catalog options (pipelines, source and sink workers) builds its
// query from these, so an option reads the same wherever it is read.
std::string option_sql(const std::string& options, const OptionSpec& option);

// option_sql() of each option, joined with ", " (a select list).
std::string option_list_sql(const std::string& options, const std::vector<OptionSpec>& specs);

// The options of one pipeline, read from its streamrec.pipeline_catalog row.
class PipelineOptions {
 public:
  PipelineOptions(const char* pipeline, const std::vector<OptionSpec>& options);
  // The row's cells: `enabled`, then the options in the order given (NULL: not set). Empty
  // when the pipeline has no catalog row. SPI connected. The row is kept in the backend until
  // streamrec.pipeline_catalog changes (its change generation), so a stream of batches reads it
  // once; a change applies from the next batch after it commits.
  std::vector<Cell> read();

 private:
  const char* pipeline_;
  std::vector<bool> text_columns_;
  KeptPlan plan_;
  uint64 kept_generation_ = 0;  // 0: nothing kept
  std::vector<Cell> kept_;
  std::vector<std::string> kept_text_;  // the kept text cells' bytes
};

// A width or delay option as the pipeline uses it (microseconds), refused with a clean ERROR
// (22023) when it is not at least 1 microsecond (0 allowed with zero_ok): enable_pipeline checks
// every option, but the catalog row may have been changed by hand since.
int64 checked_option_us(const char* pipeline, const char* option, int64 us, bool zero_ok = false);

// The "kafka" option of a source or sink (table: "sources" or "sinks"): librdkafka properties
// by name. SPI connected.
std::map<std::string, std::string> read_kafka_options(const char* table, const std::string& name);

}  // namespace streamrec
