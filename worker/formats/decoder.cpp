#include "worker/formats/decoder.h"

#include <utility>

#include "worker/formats/decoder_support.h"
#include "worker/formats/schema_registry_client.h"

namespace streamrec {

bool decoder::decode(const message_view& message, std::string& line, column_mask& present) {
  const size_t rollback = line.size();
  try {
    return decode_into(message, line, present);
  } catch (...) {
    line.resize(rollback);
    throw;
  }
}

std::unique_ptr<decoder> make_decoder(const decoder_config& config) {
  if (config.format != wire_format::avro || config.schema_registry_url.empty() || !config.inline_schema.empty()) {
    return make_decoder(config, nullptr);  // which also rejects a registry together with an inline schema
  }
  // One client per decoder: the client is not thread-safe and caches ids itself.
  auto client = std::make_shared<schema_registry_client>(config.schema_registry_url);
  return make_decoder(config, [client](int32_t schema_id) -> std::string {
    try {
      return client->schema_by_id(schema_id);
    } catch (const registry_error& e) {
      // Down, overloaded, or not (yet) knowing the id: DESIGN section 5 says wait and retry,
      // never dead-letter good data because of the registry.
      throw transient_error("schema id " + std::to_string(schema_id) + ": " + e.what());
    }
  });
}

std::unique_ptr<decoder> make_decoder(const decoder_config& config, schema_fetcher fetch) {
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

}  // namespace streamrec
