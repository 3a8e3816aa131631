#include "core/formats/decoder.h"

#include <algorithm>
#include <string>
#include <vector>
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

namespace {

// The registry's error_codes for "subject not found" and "version not found" (references).
constexpr int kSubjectNotFound = 40401;
constexpr int kVersionNotFound = 40402;
// The most files a Protobuf schema may pull in through its references.
constexpr size_t kMaxReferencedFiles = 255;

// A Protobuf schema and, transitively, the files its references name.
protobuf_schema_files fetch_protobuf_schema(schema_registry_client& client, int32_t schema_id) {
  const std::string what = "schema id " + std::to_string(schema_id);
  try {
    registered_schema schema = client.schema_details_by_id(schema_id);
    if (schema.schema_type != "PROTOBUF") {
      throw format_error(what + " has schemaType " + schema.schema_type + ", not PROTOBUF");
    }
    protobuf_schema_files files{std::move(schema.schema), {}};
    std::vector<schema_reference> pending = std::move(schema.references);
    std::vector<std::string> seen;
    while (!pending.empty()) {
      const schema_reference reference = std::move(pending.back());
      pending.pop_back();
      if (std::find(seen.begin(), seen.end(), reference.name) != seen.end()) continue;
      seen.push_back(reference.name);
      if (seen.size() > kMaxReferencedFiles) throw format_error(what + " references more than 255 files");
      registered_schema imported = client.subject_version_schema(reference.subject, reference.version);
      files.imports.emplace_back(reference.name, std::move(imported.schema));
      for (schema_reference& next : imported.references) pending.push_back(std::move(next));
    }
    return files;
  } catch (const registry_error& e) {
    // As for Avro: what the registry says it does not have (the id, or a referenced subject or
    // version) will not appear by waiting; anything else is retried.
    const int code = e.registry_error_code();
    if (e.http_status() == 404 && (code == kSchemaNotFound || code == kSubjectNotFound || code == kVersionNotFound)) {
      throw format_error(what + " cannot be resolved: " + e.what());
    }
    throw transient_error(what + ": " + e.what());
  }
}

}  // namespace

std::unique_ptr<decoder> make_decoder(const decoder_config& config) {
  if (config.format == wire_format::protobuf && !config.schema_registry_url.empty() && config.inline_schema.empty()) {
    auto client = std::make_shared<schema_registry_client>(config.schema_registry_url);
    return make_protobuf_decoder(config,
                                 [client](int32_t schema_id) { return fetch_protobuf_schema(*client, schema_id); });
  }
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
    case wire_format::protobuf:
      if (!config.schema_registry_url.empty() && !config.inline_schema.empty()) {
        throw std::invalid_argument("protobuf: give either a schema registry or an inline .proto, not both");
      }
      if (!config.inline_schema.empty() || fetch == nullptr) return make_protobuf_decoder(config, nullptr);
      return make_protobuf_decoder(config, [fetch = std::move(fetch)](int32_t schema_id) {
        return protobuf_schema_files{fetch(schema_id), {}};
      });
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
