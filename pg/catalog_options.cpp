#include "pg/catalog_options.h"

#include "pg/change_generation.h"

extern "C" {
#include "catalog/pg_type.h"
}

namespace streamrec {
namespace {

// "csv.delimiter" -> '{"csv","delimiter"}', a text[] literal for #> and #>> (each element
// quoted: unquoted, the key "null" would read as a NULL element). Option names are the product's
// own identifiers, never a user's text.
std::string key_path(const char* key) {
  std::string path = "'{\"";
  for (const char* c = key; *c != '\0'; c++) path += *c == '.' ? std::string("\",\"") : std::string(1, *c);
  return path + "\"}'";
}

}  // namespace

std::string option_sql(const std::string& options, const OptionSpec& option) {
  std::string path = key_path(option.key);
  std::string text = "(" + options + " #>> " + path + ")";
  std::string value;
  switch (option.kind) {
    case OptionKind::text:
      value = text;
      break;
    case OptionKind::int4:
      value = text + "::int";
      break;
    case OptionKind::int8:
      value = text + "::int8";
      break;
    case OptionKind::float4:
      value = text + "::real";
      break;
    case OptionKind::float8:
      value = text + "::float8";
      break;
    case OptionKind::boolean:
      value = text + "::bool";
      break;
    case OptionKind::interval_us:
      value = "(extract(epoch FROM " + text + "::interval) * 1000000)::int8";
      break;
    case OptionKind::json_text:
      value = "CASE jsonb_typeof(" + options + " #> " + path + ") WHEN 'string' THEN " + text + " ELSE (" + options +
              " #> " + path + ")::text END";
      break;
  }
  if (option.null_word != nullptr)
    value = "CASE WHEN " + text + " = '" + option.null_word + "' THEN NULL ELSE " + value + " END";
  if (option.fallback != nullptr) value = "coalesce(" + value + ", " + option.fallback + ")";
  return value;
}

std::string option_list_sql(const std::string& options, const std::vector<OptionSpec>& specs) {
  std::string list;
  for (const OptionSpec& option : specs) list += (list.empty() ? "" : ", ") + option_sql(options, option);
  return list;
}

namespace {

std::string pipeline_options_sql(const std::vector<OptionSpec>& options) {
  return "SELECT c.enabled, " + option_list_sql("c.options", options) +
         " FROM streamrec.pipeline_catalog c WHERE c.name = $1";
}

std::vector<bool> text_columns(const std::vector<OptionSpec>& options) {
  std::vector<bool> text{false};
  for (const OptionSpec& option : options)
    text.push_back(option.kind == OptionKind::text || option.kind == OptionKind::json_text);
  return text;
}

}  // namespace

PipelineOptions::PipelineOptions(const char* pipeline, const std::vector<OptionSpec>& options)
    : pipeline_(pipeline), text_columns_(text_columns(options)), plan_(pipeline_options_sql(options), {TEXTOID}) {}

std::vector<Cell> PipelineOptions::read() {
  // Read the generation before the row: a change committed after this read bumps it again, so
  // what is kept never outlives a change it did not see.
  uint64 generation = change_generation(Watched::catalog);
  if (kept_generation_ == generation && !changed_in_this_transaction(Watched::catalog)) return kept_;
  kept_generation_ = 0;
  kept_.clear();
  kept_text_.clear();
  if (plan_.run({text_datum(pipeline_)}, true) > 0) {
    kept_ = fetch_result(text_columns_);
    // Text cells point into SPI's memory: keep copies, then point the cells at them.
    kept_text_.reserve(kept_.size());
    for (const Cell& cell : kept_) kept_text_.push_back(cell.text != nullptr ? cell.str() : std::string());
    for (std::size_t i = 0; i < kept_.size(); i++)
      if (kept_[i].text != nullptr) kept_[i].text = kept_text_[i].data();
  }
  if (!changed_in_this_transaction(Watched::catalog)) kept_generation_ = generation;
  return kept_;
}

int64 checked_option_us(const char* pipeline, const char* option, int64 us, bool zero_ok) {
  if (us > 0 || (zero_ok && us == 0)) return us;
  throw Error(ERRCODE_INVALID_PARAMETER_VALUE,
              std::string("option \"") + option + "\" of pipeline " + pipeline + " is " + std::to_string(us) +
                  " microseconds wide",
              "",
              std::string("Set it again with streamrec.enable_pipeline('") + pipeline +
                  "', ...): an interval must be at least 1 microsecond wide (a year counts as 365.25 days, a month as "
                  "30 days).");
}

std::map<std::string, std::string> read_kafka_options(const char* table, const std::string& name) {
  std::string sql = std::string("SELECT key, value #>> '{}' FROM streamrec.") + table +
                    ", jsonb_each(coalesce(options -> 'kafka', '{}')) WHERE name = $1";
  // A SELECT that does not raise always reports SPI_OK_SELECT: cannot happen, so internal.
  if (spi_exec(sql.c_str(), {{TEXTOID, text_datum(name), false}}, true) != SPI_OK_SELECT)
    throw Error(ERRCODE_INTERNAL_ERROR, "cannot read kafka options");
  std::map<std::string, std::string> properties;
  for (uint64 i = 0; i < SPI_processed; i++) properties[spi_text(i, 1).value_or("")] = spi_text(i, 2).value_or("");
  return properties;
}

}  // namespace streamrec
