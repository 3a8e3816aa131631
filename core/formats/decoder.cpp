#include "core/formats/decoder.h"

#include <string>
#include <utility>

#include "core/formats/decoder_support.h"
#include "core/registry/schema_registry_client.h"

namespace streamrec {

namespace {
// The registry's error_code for "schema not found" (by id).
constexpr int kSchemaNotFound = 40403;
}  // namespace

bool decoder::decode(const message_view& message, std::string& line, column_mask& present) {
  const size_t rollback = line.size();
  try {
    const bool stored = decode_into(message, line, present);
    if (line.size() - rollback > max_decoded_bytes_) too_large(line.size() - rollback);
    return stored;
  } catch (...) {
    line.resize(rollback);
    throw;
  }
}

void decoder::decode_changes(const message_view& message, std::string& lines, std::vector<decoded_row>& rows) {
  const size_t line_rollback = lines.size();
  const size_t row_rollback = rows.size();
  try {
    changes_into(message, lines, rows);
    if (lines.size() - line_rollback > max_decoded_bytes_) too_large(lines.size() - line_rollback);
  } catch (...) {
    lines.resize(line_rollback);
    rows.resize(row_rollback);
    throw;
  }
}

void decoder::changes_into(const message_view& message, std::string& lines, std::vector<decoded_row>& rows) {
  decoded_row row;
  row.begin = lines.size();
  if (!decode_into(message, lines, row.present)) return;
  row.end = lines.size();
  rows.push_back(std::move(row));
}

bool decodes_changes(const decoder_config& config) {
  if (config.envelope != envelope_kind::none) return true;
  for (const column_binding& binding : config.columns)
    if (binding.from_key) return true;
  return false;
}

void decoder::too_large(size_t at_least) const {
  throw format_error("the message decodes to more than max_decoded_bytes (" + std::to_string(max_decoded_bytes_) +
                     " bytes; at least " + std::to_string(at_least) + " seen)");
}

std::unique_ptr<decoder> make_decoder(const decoder_config& config) {
  const bool avro_key = config.key == key_format::avro && decodes_changes(config);
  if ((config.format != wire_format::avro && !avro_key) || config.schema_registry_url.empty() ||
      (config.format == wire_format::avro && !config.inline_schema.empty())) {
    return make_decoder(config, nullptr);  // which also rejects a registry together with an inline schema
  }
  // One client per decoder: the client is not thread-safe and caches ids itself.
  auto client = std::make_shared<schema_registry_client>(config.schema_registry_url);
  return make_decoder(config, [client](int32_t schema_id) -> std::string {
    try {
      return client->schema_by_id(schema_id);
    } catch (const registry_error& e) {
      // The registry answered, in its own words (error_code 40403), that it has no schema of that
      // id: the message names an id never registered there, and waiting will not change that, so
      // it is dead-lettered. A 404 without those words comes from a URL that is not a registry's
      // (a wrong path or host): that is the source's problem, and every message would be lost.
      if (e.http_status() == 404 && e.registry_error_code() == kSchemaNotFound) {
        throw format_error("schema id " + std::to_string(schema_id) +
                           " is not known to the schema registry (HTTP 404, error_code " +
                           std::to_string(kSchemaNotFound) + ")");
      }
      // Down, overloaded, refusing our credentials or not a registry at all: never dead-letter
      // good data because of the registry; wait and retry.
      throw transient_error("schema id " + std::to_string(schema_id) + ": " + e.what());
    }
  });
}

std::unique_ptr<decoder> make_unbounded_decoder(const decoder_config& config, schema_fetcher fetch) {
  switch (config.format) {
    case wire_format::csv:
      return make_csv_decoder(config);
    case wire_format::json:
      return make_json_decoder(config);
    case wire_format::avro:
      if (!config.schema_registry_url.empty() && !config.inline_schema.empty()) {
        throw std::invalid_argument("avro: give either a schema registry or an inline schema, not both");
      }
      if (!config.inline_schema.empty()) return make_avro_decoder(config, nullptr);
      if (fetch == nullptr) {
        throw std::invalid_argument("avro needs a schema registry (Confluent framing) or an inline schema");
      }
      return make_avro_decoder(config, std::move(fetch));
  }
  throw std::invalid_argument("unknown wire format");
}

std::unique_ptr<decoder> make_decoder(const decoder_config& config, schema_fetcher fetch) {
  std::unique_ptr<decoder> made =
      decodes_changes(config) ? make_change_decoder(config, fetch) : make_unbounded_decoder(config, std::move(fetch));
  made->set_max_decoded_bytes(config.max_decoded_bytes);
  return made;
}

}  // namespace streamrec
