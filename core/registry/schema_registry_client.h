// Client for a Confluent-compatible schema registry (Confluent, Karapace, Apicurio's
// /apis/ccompat/v6, the sandbox broker's endpoint), over libcurl.
//
// Sources call schema_by_id for every new id they meet in message headers; sinks and the data
// generator call register_schema once per subject. A failure must tell the caller whether to
// retry: a registry that is down or overloaded must not turn good messages into dead letters
// (they wait for it instead), while an unknown id or subject will not fix itself. registry_error
// carries that decision.
#pragma once

#include "core/postgres_free.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace streamrec {

class registry_error : public std::runtime_error {
 public:
  registry_error(const std::string& message, bool transient, long http_status, std::string url,
                 int registry_error_code = 0)
      : std::runtime_error(message),
        transient_(transient),
        http_status_(http_status),
        url_(std::move(url)),
        registry_error_code_(registry_error_code) {}

  // True for connection failures, timeouts, HTTP 5xx, 408 and 429: retry later.
  // False for 4xx (unknown subject or id, incompatible or invalid schema) and bad responses.
  bool transient() const { return transient_; }
  // 0 when no HTTP response arrived.
  long http_status() const { return http_status_; }
  const std::string& url() const { return url_; }
  // The registry's own "error_code" (e.g. 40403 schema not found, 40401 subject not found,
  // 409 incompatible), 0 when the body had none.
  int registry_error_code() const { return registry_error_code_; }

 private:
  bool transient_;
  long http_status_;
  std::string url_;
  int registry_error_code_;
};

struct registry_options {
  std::chrono::milliseconds connect_timeout{2000};
  // Whole request, connect included.
  std::chrono::milliseconds total_timeout{5000};
  // "user:password" for HTTP basic auth (Confluent Cloud, secured Karapace); empty for none.
  std::string basic_auth;
};

struct subject_version {
  int32_t id = 0;
  int32_t version = 0;
  std::string schema;
};

// A schema's references (Protobuf imports, Avro/JSON named types in other subjects): the name
// the schema uses for it (a Protobuf import path) and the subject version that holds it.
struct schema_reference {
  std::string name;
  std::string subject;
  int32_t version = 0;
};

// A schema with its type ("AVRO" when the registry gives none) and references.
struct registered_schema {
  std::string schema;
  std::string schema_type = "AVRO";
  std::vector<schema_reference> references;
};

// Not thread-safe: one client per thread (each worker owns one).
class schema_registry_client {
 public:
  // base_url like "http://127.0.0.1:8081" or "http://host/apis/ccompat/v6"; a trailing '/' is
  // ignored.
  explicit schema_registry_client(std::string base_url, registry_options options = {});
  ~schema_registry_client();
  schema_registry_client(const schema_registry_client&) = delete;
  schema_registry_client& operator=(const schema_registry_client&) = delete;

  // POST /subjects/{subject}/versions. Returns the schema id; registering an identical schema
  // again returns the same id, so calling this at every start is fine.
  int32_t register_schema(std::string_view subject, std::string_view schema_json);

  // GET /schemas/ids/{id}, answered from the cache after the first success: an id's schema
  // never changes. The reference stays valid for the client's lifetime.
  const std::string& schema_by_id(int32_t id);

  // The same, with a schemaType ("PROTOBUF", "JSON"; omitted for "AVRO") and references.
  int32_t register_schema(std::string_view subject, std::string_view schema_text, std::string_view schema_type,
                          const std::vector<schema_reference>& references);

  // GET /schemas/ids/{id} with its schemaType and references (not cached).
  registered_schema schema_details_by_id(int32_t id);

  // GET /subjects/{subject}/versions/{version}: a referenced schema (not cached).
  registered_schema subject_version_schema(std::string_view subject, int32_t version);

  // GET /subjects/{subject}/versions/latest (not cached: a new version may appear any time).
  subject_version latest(std::string_view subject);

  const std::string& base_url() const { return base_url_; }

 private:
  struct response {
    long status = 0;
    std::string body;
  };
  response perform(const char* method, const std::string& url, std::string_view body);
  std::string escape_path_segment(std::string_view segment);

  std::string base_url_;
  registry_options options_;
  // CURL handle kept across requests so HTTP keep-alive reuses the connection.
  void* curl_ = nullptr;
  std::unordered_map<int32_t, std::string> schema_cache_;
};

}  // namespace streamrec
