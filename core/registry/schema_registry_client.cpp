#include "core/registry/schema_registry_client.h"

#include <curl/curl.h>
#include <simdjson.h>

#include <mutex>
#include <utility>

#include "core/formats/json_writer.h"

namespace streamrec {

namespace {

CURL* as_curl(void* handle) { return static_cast<CURL*>(handle); }

size_t collect_body(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

bool transient_curl_error(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

// The URL as messages show it: a user:password@ in it (basic authentication) becomes ***@.
std::string shown_url(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const size_t host = scheme + 3;
  const size_t at = url.find('@', host);
  if (at == std::string::npos || url.find_first_of("/?#", host) < at) return url;
  return url.substr(0, host) + "***" + url.substr(at);
}

bool transient_http_status(long status) { return status >= 500 || status == 408 || status == 429; }

// Registries answer errors with {"error_code": N, "message": "..."}. Only a body of exactly
// that shape is quoted (its message, cut at 200 bytes): the URL may point at any HTTP server the
// database server can reach, and the text ends up in last_error and the server log, so the body
// of anything else is never shown.
void describe_error_body(const std::string& body, std::string& message, int& error_code) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object object;
  if (parser.parse(body).get(doc) != simdjson::SUCCESS || doc.get_object().get(object) != simdjson::SUCCESS ||
      object.size() != 2) {
    if (!body.empty()) message = "the answer is not a schema registry error (body not shown)";
    return;
  }
  int64_t code = 0;
  std::string_view text;
  if (doc["error_code"].get_int64().get(code) != simdjson::SUCCESS ||
      doc["message"].get_string().get(text) != simdjson::SUCCESS) {
    message = "the answer is not a schema registry error (body not shown)";
    return;
  }
  error_code = static_cast<int>(code);
  message = std::string(text.substr(0, 200));
}

}  // namespace

schema_registry_client::schema_registry_client(std::string base_url, registry_options options)
    : base_url_(std::move(base_url)), options_(std::move(options)) {
  // curl_global_init is not thread-safe and must run once per process before any handle.
  static std::once_flag curl_initialized;
  std::call_once(curl_initialized, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
  curl_ = curl_easy_init();
  if (curl_ == nullptr) {
    throw registry_error("curl_easy_init failed", false, 0, base_url_);
  }
}

schema_registry_client::~schema_registry_client() { curl_easy_cleanup(as_curl(curl_)); }

std::string schema_registry_client::escape_path_segment(std::string_view segment) {
  // Subjects may contain '/', '?', '#', spaces...: percent-encode everything but unreserved.
  char* escaped = curl_easy_escape(as_curl(curl_), segment.data(), static_cast<int>(segment.size()));
  if (escaped == nullptr) throw registry_error("curl_easy_escape failed", false, 0, base_url_);
  std::string result(escaped);
  curl_free(escaped);
  return result;
}

schema_registry_client::response schema_registry_client::perform(const char* method, const std::string& url,
                                                                 std::string_view body) {
  CURL* curl = as_curl(curl_);
  // Reset per request so no option leaks from the previous call; the connection cache survives.
  curl_easy_reset(curl);
  response result;
  char error_buffer[CURL_ERROR_SIZE] = {0};
  struct curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Accept: application/vnd.schemaregistry.v1+json, application/json;q=0.9");
  const bool has_body = std::string_view(method) == "POST";
  if (has_body) headers = curl_slist_append(headers, "Content-Type: application/vnd.schemaregistry.v1+json");

  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  // No signals: libcurl's DNS timeout would otherwise use SIGALRM, which is not ours to take in
  // a PostgreSQL backend or a multi-threaded program.
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.total_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 3L);
  curl_easy_setopt(curl, CURLOPT_POSTREDIR, static_cast<long>(CURL_REDIR_POST_ALL));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  if (!options_.basic_auth.empty()) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(curl, CURLOPT_USERPWD, options_.basic_auth.c_str());
  }
  if (has_body) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }

  const CURLcode code = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (code != CURLE_OK) {
    std::string detail = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
    const bool transient = transient_curl_error(code);
    throw registry_error(std::string("schema registry ") + method + " " + shown_url(url) + " failed: " + detail +
                             (transient ? " (transient, will retry)" : ""),
                         transient, 0, url);
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  if (result.status < 200 || result.status >= 300) {
    std::string message;
    int registry_code = 0;
    describe_error_body(result.body, message, registry_code);
    const bool transient = transient_http_status(result.status);
    std::string text = std::string("schema registry ") + method + " " + shown_url(url) + " returned HTTP " +
                       std::to_string(result.status);
    if (!message.empty()) text += ": " + message;
    if (registry_code != 0) text += " (error_code " + std::to_string(registry_code) + ")";
    if (transient) text += " (transient, will retry)";
    throw registry_error(text, transient, result.status, url, registry_code);
  }
  return result;
}

namespace {

// Parses a 2xx body; any surprise is permanent (retrying will not change the server's software).
simdjson::dom::element parse_success_body(simdjson::dom::parser& parser, const std::string& body,
                                          const std::string& url, long status) {
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
    throw registry_error("schema registry " + shown_url(url) + " returned HTTP " + std::to_string(status) +
                             " with a body that is not a JSON object (" + std::to_string(body.size()) +
                             " bytes, not shown): is the URL a schema registry?",
                         false, status, url);
  }
  return doc;
}

[[noreturn]] void missing_field(const std::string& url, long status, const char* field) {
  throw registry_error("schema registry " + shown_url(url) + " returned HTTP " + std::to_string(status) +
                           " without a valid \"" + field + "\" field",
                       false, status, url);
}

}  // namespace

int32_t schema_registry_client::register_schema(std::string_view subject, std::string_view schema_json) {
  const std::string url = base_url_ + "/subjects/" + escape_path_segment(subject) + "/versions";
  std::string body = "{\"schema\":";
  append_json_string(body, schema_json);
  body += "}";
  const response reply = perform("POST", url, body);

  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parse_success_body(parser, reply.body, url, reply.status);
  int64_t id = 0;
  if (doc["id"].get_int64().get(id) != simdjson::SUCCESS) missing_field(url, reply.status, "id");
  const auto schema_id = static_cast<int32_t>(id);
  schema_cache_.emplace(schema_id, std::string(schema_json));
  return schema_id;
}

const std::string& schema_registry_client::schema_by_id(int32_t id) {
  if (auto found = schema_cache_.find(id); found != schema_cache_.end()) return found->second;
  const std::string url = base_url_ + "/schemas/ids/" + std::to_string(id);
  const response reply = perform("GET", url, {});

  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parse_success_body(parser, reply.body, url, reply.status);
  std::string_view schema;
  if (doc["schema"].get_string().get(schema) != simdjson::SUCCESS) {
    missing_field(url, reply.status, "schema");
  }
  return schema_cache_.emplace(id, std::string(schema)).first->second;
}

int32_t schema_registry_client::register_schema(std::string_view subject, std::string_view schema_text,
                                                std::string_view schema_type,
                                                const std::vector<schema_reference>& references) {
  const std::string url = base_url_ + "/subjects/" + escape_path_segment(subject) + "/versions";
  std::string body = "{\"schema\":";
  append_json_string(body, schema_text);
  if (!schema_type.empty() && schema_type != "AVRO") {
    body += ",\"schemaType\":";
    append_json_string(body, schema_type);
  }
  if (!references.empty()) {
    body += ",\"references\":[";
    for (size_t i = 0; i < references.size(); ++i) {
      if (i != 0) body += ',';
      body += "{\"name\":";
      append_json_string(body, references[i].name);
      body += ",\"subject\":";
      append_json_string(body, references[i].subject);
      body += ",\"version\":" + std::to_string(references[i].version) + "}";
    }
    body += "]";
  }
  body += "}";
  const response reply = perform("POST", url, body);

  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parse_success_body(parser, reply.body, url, reply.status);
  int64_t id = 0;
  if (doc["id"].get_int64().get(id) != simdjson::SUCCESS) missing_field(url, reply.status, "id");
  return static_cast<int32_t>(id);
}

namespace {

// The schema, schemaType and references of a registry answer about one schema.
registered_schema read_registered_schema(const simdjson::dom::element& doc, const std::string& url, long status) {
  registered_schema result;
  std::string_view text;
  if (doc["schema"].get_string().get(text) != simdjson::SUCCESS) missing_field(url, status, "schema");
  result.schema = std::string(text);
  std::string_view type;
  if (doc["schemaType"].get_string().get(type) == simdjson::SUCCESS) result.schema_type = std::string(type);
  simdjson::dom::array references;
  if (doc["references"].get_array().get(references) == simdjson::SUCCESS) {
    for (const simdjson::dom::element reference : references) {
      schema_reference r;
      std::string_view name;
      std::string_view subject;
      int64_t version = 0;
      if (reference["name"].get_string().get(name) != simdjson::SUCCESS ||
          reference["subject"].get_string().get(subject) != simdjson::SUCCESS ||
          reference["version"].get_int64().get(version) != simdjson::SUCCESS) {
        missing_field(url, status, "references");
      }
      r.name = std::string(name);
      r.subject = std::string(subject);
      r.version = static_cast<int32_t>(version);
      result.references.push_back(std::move(r));
    }
  }
  return result;
}

}  // namespace

registered_schema schema_registry_client::schema_details_by_id(int32_t id) {
  const std::string url = base_url_ + "/schemas/ids/" + std::to_string(id);
  const response reply = perform("GET", url, {});
  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parse_success_body(parser, reply.body, url, reply.status);
  return read_registered_schema(doc, url, reply.status);
}

registered_schema schema_registry_client::subject_version_schema(std::string_view subject, int32_t version) {
  const std::string url =
      base_url_ + "/subjects/" + escape_path_segment(subject) + "/versions/" + std::to_string(version);
  const response reply = perform("GET", url, {});
  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parse_success_body(parser, reply.body, url, reply.status);
  return read_registered_schema(doc, url, reply.status);
}

subject_version schema_registry_client::latest(std::string_view subject) {
  const std::string url = base_url_ + "/subjects/" + escape_path_segment(subject) + "/versions/latest";
  const response reply = perform("GET", url, {});

  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parse_success_body(parser, reply.body, url, reply.status);
  int64_t id = 0;
  int64_t version = 0;
  std::string_view schema;
  if (doc["id"].get_int64().get(id) != simdjson::SUCCESS) missing_field(url, reply.status, "id");
  if (doc["version"].get_int64().get(version) != simdjson::SUCCESS) {
    missing_field(url, reply.status, "version");
  }
  if (doc["schema"].get_string().get(schema) != simdjson::SUCCESS) {
    missing_field(url, reply.status, "schema");
  }
  subject_version result{static_cast<int32_t>(id), static_cast<int32_t>(version), std::string(schema)};
  schema_cache_.emplace(result.id, result.schema);
  return result;
}

}  // namespace streamrec
