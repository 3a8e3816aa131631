#include "tools/sandbox_broker/sandbox_router.h"

#include <charconv>
#include <cmath>
#include <optional>

#include <simdjson.h>

#include "tools/sandbox_broker/http_text.h"
#include "tools/sandbox_broker/sandbox_options.h"
#include "core/formats/json_writer.h"

namespace streamrec {

namespace {

constexpr long long kMaxId = 2147483647;  // Confluent ids and versions are Java ints
constexpr double kMaxRegistryDownSeconds = 86400;

HttpResponse error_response(int status, int error_code, std::string_view message,
                            const char *content_type = kRegistryContentType) {
  std::string body = "{\"error_code\":" + std::to_string(error_code) + ",\"message\":";
  append_json_string(body, message);
  body += '}';
  return HttpResponse{status, content_type, std::move(body)};
}

HttpResponse registry_ok(std::string body) { return HttpResponse{200, kRegistryContentType, std::move(body)}; }

HttpResponse not_found(const char *content_type = kRegistryContentType) {
  return error_response(404, 404, "HTTP 404 Not Found", content_type);
}

HttpResponse method_not_allowed(const char *content_type = kRegistryContentType) {
  return error_response(405, 405, "HTTP 405 Method Not Allowed", content_type);
}

HttpResponse subject_not_found(const std::string &subject) {
  return error_response(404, 40401, "Subject '" + subject + "' not found.");
}

HttpResponse schema_not_found() { return error_response(404, 40403, "Schema not found"); }

// The optional "schemaType" member, which Confluent omits for Avro, and the "references" member,
// omitted when there are none.
void append_schema_type(std::string &out, const std::string &schema_type, const std::string &references = {}) {
  if (schema_type != "AVRO") {
    out += "\"schemaType\":";
    append_json_string(out, schema_type);
    out += ',';
  }
  if (!references.empty()) out += "\"references\":" + references + ',';
}

std::string version_json(const SubjectVersion &version) {
  std::string body = "{\"subject\":";
  append_json_string(body, version.subject);
  body += ",\"version\":" + std::to_string(version.version);
  body += ",\"id\":" + std::to_string(version.schema.id) + ',';
  append_schema_type(body, version.schema.schema_type, version.schema.references);
  body += "\"schema\":";
  append_json_string(body, version.schema.text);
  body += '}';
  return body;
}

struct SchemaBody {
  std::string schema_type;
  std::string text;
  std::string references;  // canonical JSON array, empty when none
};

// Reads {"schema": "...", "schemaType": ..., "references": [...]} the way Confluent does; on
// failure `error` holds the response to send. Each reference must name a subject version the
// registry holds, as Confluent requires.
std::optional<SchemaBody> parse_schema_body(const std::string &body, HttpResponse &error,
                                            const SchemaRegistry &registry) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(body).get(root) != simdjson::SUCCESS) {
    error = error_response(400, 400, "The request body is not valid JSON");
    return std::nullopt;
  }
  simdjson::dom::object object;
  std::string_view schema_text;
  if (root.get_object().get(object) != simdjson::SUCCESS ||
      object["schema"].get_string().get(schema_text) != simdjson::SUCCESS) {
    error = error_response(422, 42201, "Invalid schema: the body needs a string member \"schema\"");
    return std::nullopt;
  }

  SchemaBody parsed{"AVRO", std::string(schema_text)};
  simdjson::dom::element type_element;
  if (object["schemaType"].get(type_element) == simdjson::SUCCESS && !type_element.is_null()) {
    std::string_view type;
    if (type_element.get_string().get(type) != simdjson::SUCCESS ||
        (type != "AVRO" && type != "JSON" && type != "PROTOBUF")) {
      error = error_response(422, 42201,
                             "Invalid schema type: the sandbox registry stores AVRO, JSON and PROTOBUF schemas");
      return std::nullopt;
    }
    parsed.schema_type = std::string(type);
  }

  // References must resolve, so that no test silently relies on a dangling one.
  simdjson::dom::array references;
  if (object["references"].get_array().get(references) == simdjson::SUCCESS && references.size() > 0) {
    std::string canonical = "[";
    for (const simdjson::dom::element reference : references) {
      std::string_view name;
      std::string_view subject;
      int64_t version = 0;
      if (reference["name"].get_string().get(name) != simdjson::SUCCESS ||
          reference["subject"].get_string().get(subject) != simdjson::SUCCESS ||
          reference["version"].get_int64().get(version) != simdjson::SUCCESS || version < 1 || version > kMaxId) {
        error = error_response(422, 42201,
                               "Invalid schema: a reference needs a string name and subject and a version number");
        return std::nullopt;
      }
      if (!registry.subject_version(std::string(subject), static_cast<int>(version))) {
        error = error_response(422, 42201,
                               "Invalid schema: reference \"" + std::string(name) + "\" names subject \"" +
                                   std::string(subject) + "\" version " + std::to_string(version) +
                                   ", which does not exist");
        return std::nullopt;
      }
      if (canonical.size() > 1) canonical += ',';
      canonical += "{\"name\":";
      append_json_string(canonical, name);
      canonical += ",\"subject\":";
      append_json_string(canonical, subject);
      canonical += ",\"version\":" + std::to_string(version) + "}";
    }
    parsed.references = canonical + "]";
  }

  // A .proto file is stored as it is (the consumers compile it).
  if (parsed.schema_type == "PROTOBUF") return parsed;
  // Both AVRO and JSON schemas are JSON documents; that is all the sandbox checks.
  simdjson::dom::parser schema_parser;
  simdjson::dom::element schema_root;
  if (schema_parser.parse(parsed.text).get(schema_root) != simdjson::SUCCESS) {
    error = error_response(422, 42201, "Invalid schema: the schema is not valid JSON");
    return std::nullopt;
  }
  return parsed;
}

// "latest" and -1 mean the newest version, as in Confluent.
std::optional<int> parse_version(const std::string &text) {
  if (text == "latest" || text == "-1") return -1;
  auto number = parse_bounded_integer(text, 1, kMaxId);
  if (!number) return std::nullopt;
  return static_cast<int>(*number);
}

std::optional<double> parse_seconds(const std::string &text) {
  double seconds = 0;
  const char *end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, seconds);
  if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(seconds) || seconds < 0 ||
      seconds > kMaxRegistryDownSeconds) {
    return std::nullopt;
  }
  return seconds;
}

HttpResponse admin_ok(const std::string &members) {
  return HttpResponse{200, kAdminContentType, "{\"ok\":true" + members + "}"};
}

HttpResponse admin_failure(const AdminResult &result) {
  switch (result.status) {
    case AdminStatus::not_found:
      return error_response(404, 404, result.message, kAdminContentType);
    case AdminStatus::already_exists:
      return error_response(409, 409, result.message, kAdminContentType);
    case AdminStatus::invalid:
      return error_response(400, 400, result.message, kAdminContentType);
    case AdminStatus::ok:
    case AdminStatus::failed:
      break;
  }
  return error_response(500, 500, result.message, kAdminContentType);
}

}  // namespace

SandboxRouter::SandboxRouter(SchemaRegistry &registry, ClusterControl &cluster, Clock clock)
    : registry_(registry), cluster_(cluster), clock_(std::move(clock)) {}

HttpResponse SandboxRouter::handle(const HttpRequest &request) {
  try {
    if (request.path.empty() || request.path[0] != '/') return not_found();

    // "/a/b/" -> {"a", "b"}; an empty segment in the middle ("//") matches no route.
    std::vector<std::string> segments;
    std::string_view rest(request.path);
    rest.remove_prefix(1);
    if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    while (!rest.empty()) {
      const size_t slash = rest.find('/');
      auto decoded = decode_path_segment(rest.substr(0, slash));
      if (!decoded) return error_response(400, 400, "Malformed percent-encoding in the path");
      segments.push_back(std::move(*decoded));
      if (slash == std::string_view::npos) break;
      rest.remove_prefix(slash + 1);
      if (rest.empty()) segments.emplace_back();
    }

    if (!segments.empty() && segments[0] == "admin") {
      return route_admin(request.method, segments, request.query);
    }
    // Apicurio serves its Confluent-compatible API under this base path.
    if (segments.size() >= 3 && segments[0] == "apis" && segments[1] == "ccompat" && segments[2] == "v6") {
      segments.erase(segments.begin(), segments.begin() + 3);
    }
    return route_registry(request.method, segments, request.body);
  } catch (const std::exception &e) {
    return error_response(500, 50001, std::string("Internal error: ") + e.what());
  }
}

bool SandboxRouter::registry_is_down() {
  std::lock_guard<std::mutex> lock(down_mutex_);
  return clock_() < registry_down_until_;
}

HttpResponse SandboxRouter::route_registry(const std::string &method, const std::vector<std::string> &segments,
                                           const std::string &body) {
  if (registry_is_down()) {
    return error_response(503, 50301, "Schema registry unavailable (sandbox fault injection)");
  }
  const size_t n = segments.size();
  const bool get = method == "GET";
  const bool post = method == "POST";

  if (n >= 1 && segments[0] == "subjects") {
    if (n == 1) {
      if (!get) return method_not_allowed();
      std::string out = "[";
      for (const std::string &subject : registry_.subjects()) {
        if (out.size() > 1) out += ',';
        append_json_string(out, subject);
      }
      return registry_ok(out + "]");
    }
    const std::string &subject = segments[1];
    if (n == 2) {
      if (!post) return method_not_allowed();
      return lookup_schema(subject, body);
    }
    if (segments[2] != "versions") return not_found();
    if (n == 3) {
      if (post) return register_schema(subject, body);
      if (!get) return method_not_allowed();
      const std::vector<int> versions = registry_.versions(subject);
      if (versions.empty()) return subject_not_found(subject);
      std::string out = "[";
      for (int version : versions) {
        if (out.size() > 1) out += ',';
        out += std::to_string(version);
      }
      return registry_ok(out + "]");
    }
    if (n == 4 || (n == 5 && segments[4] == "schema")) {
      if (!get) return method_not_allowed();
      return get_version(subject, segments[3], n == 5);
    }
    return not_found();
  }

  if (n >= 3 && segments[0] == "schemas" && segments[1] == "ids") {
    if (n == 3 || (n == 4 && segments[3] == "schema")) {
      if (!get) return method_not_allowed();
      return get_schema(segments[2], n == 4);
    }
  }
  return not_found();
}

HttpResponse SandboxRouter::register_schema(const std::string &subject, const std::string &body) {
  HttpResponse error;
  auto parsed = parse_schema_body(body, error, registry_);
  if (!parsed) return error;
  const RegisterOutcome outcome =
      registry_.register_schema(subject, parsed->schema_type, parsed->text, parsed->references);
  return registry_ok("{\"id\":" + std::to_string(outcome.id) + "}");
}

HttpResponse SandboxRouter::lookup_schema(const std::string &subject, const std::string &body) {
  HttpResponse error;
  auto parsed = parse_schema_body(body, error, registry_);
  if (!parsed) return error;
  if (!registry_.has_subject(subject)) return subject_not_found(subject);
  auto found = registry_.find_in_subject(subject, parsed->schema_type, parsed->text, parsed->references);
  if (!found) return schema_not_found();
  return registry_ok(version_json(*found));
}

HttpResponse SandboxRouter::get_version(const std::string &subject, const std::string &version_text, bool raw) {
  auto version = parse_version(version_text);
  if (!version) {
    return error_response(422, 42202,
                          "The specified version '" + version_text +
                              "' is not a valid version id. Allowed values are between "
                              "[1, 2^31-1] and the string \"latest\"");
  }
  if (!registry_.has_subject(subject)) return subject_not_found(subject);
  auto found = registry_.subject_version(subject, *version);
  if (!found) {
    return error_response(404, 40402, "Version " + version_text + " not found.");
  }
  // .../schema answers with the schema document itself, as Confluent does.
  if (raw) return registry_ok(found->schema.text);
  return registry_ok(version_json(*found));
}

HttpResponse SandboxRouter::get_schema(const std::string &id_text, bool raw) {
  auto id = parse_bounded_integer(id_text, 1, kMaxId);
  if (!id) return schema_not_found();
  auto schema = registry_.schema_by_id(static_cast<int>(*id));
  if (!schema) return schema_not_found();
  if (raw) return registry_ok(schema->text);
  std::string body = "{";
  append_schema_type(body, schema->schema_type, schema->references);
  body += "\"schema\":";
  append_json_string(body, schema->text);
  return registry_ok(body + "}");
}

HttpResponse SandboxRouter::route_admin(const std::string &method, const std::vector<std::string> &segments,
                                        const std::map<std::string, std::string> &query) {
  const size_t n = segments.size();

  if (n == 2 && segments[1] == "health") {
    if (method != "GET") return method_not_allowed(kAdminContentType);
    return admin_ok("");
  }

  if (n == 4 && segments[1] == "brokers" && (segments[3] == "down" || segments[3] == "up")) {
    if (method != "POST") return method_not_allowed(kAdminContentType);
    long long broker_id = -1;
    if (segments[2] != "all") {
      auto parsed = parse_bounded_integer(segments[2], -1, kMaxId);
      if (!parsed) {
        return error_response(400, 400, "Broker id must be an integer or \"all\"", kAdminContentType);
      }
      broker_id = *parsed;
    }
    const bool up = segments[3] == "up";
    const AdminResult result = cluster_.set_broker_up(static_cast<int32_t>(broker_id), up);
    if (result.status != AdminStatus::ok) return admin_failure(result);
    std::string members = ",\"broker\":";
    members += broker_id == -1 ? "\"all\"" : std::to_string(broker_id);
    members += up ? ",\"state\":\"up\"" : ",\"state\":\"down\"";
    return admin_ok(members);
  }

  // topics/{name}: create. topics/{name}/missing|present: hide it from Metadata or show it again,
  // because the mock auto-creates any topic a client merely asks about.
  if ((n == 3 || (n == 4 && (segments[3] == "missing" || segments[3] == "present"))) && segments[1] == "topics") {
    if (method != "POST") return method_not_allowed(kAdminContentType);
    const std::string &topic = segments[2];
    if (!is_valid_topic_name(topic)) {
      return error_response(400, 400, "Invalid topic name: use 1 to 249 characters from [a-zA-Z0-9._-]",
                            kAdminContentType);
    }
    long long partitions = 1;
    if (auto given = query.find("partitions"); given != query.end()) {
      auto parsed = parse_bounded_integer(given->second, 1, kMaxSandboxPartitions);
      if (!parsed) {
        return error_response(400, 400,
                              "partitions must be an integer from 1 to " + std::to_string(kMaxSandboxPartitions),
                              kAdminContentType);
      }
      partitions = *parsed;
    }
    std::string members = ",\"topic\":";
    append_json_string(members, topic);
    if (n == 4) {
      const bool missing = segments[3] == "missing";
      const AdminResult result = cluster_.set_topic_missing(topic, missing, static_cast<int>(partitions));
      if (result.status != AdminStatus::ok) return admin_failure(result);
      return admin_ok(members + (missing ? ",\"state\":\"missing\"" : ",\"state\":\"present\""));
    }
    const AdminResult result = cluster_.create_topic(topic, static_cast<int>(partitions));
    if (result.status != AdminStatus::ok) return admin_failure(result);
    return admin_ok(members + ",\"partitions\":" + std::to_string(partitions));
  }

  // produce/fail?error=CODE&count=N: the next N Produce requests get Kafka error CODE.
  if (n == 3 && segments[1] == "produce" && segments[2] == "fail") {
    if (method != "POST") return method_not_allowed(kAdminContentType);
    auto error = query.find("error");
    auto count = query.find("count");
    auto parsed_error = error == query.end() ? std::nullopt : parse_bounded_integer(error->second, 1, 32767);
    auto parsed_count =
        count == query.end() ? std::optional<long long>(1) : parse_bounded_integer(count->second, 1, 1000);
    if (!parsed_error || !parsed_count)
      return error_response(400, 400, "error must be a Kafka error code from 1 to 32767 and count from 1 to 1000",
                            kAdminContentType);
    const AdminResult result =
        cluster_.fail_produce_requests(static_cast<int>(*parsed_count), static_cast<int>(*parsed_error));
    if (result.status != AdminStatus::ok) return admin_failure(result);
    return admin_ok(",\"error\":" + std::to_string(*parsed_error) + ",\"count\":" + std::to_string(*parsed_count));
  }

  if (n == 3 && segments[1] == "registry" && (segments[2] == "down" || segments[2] == "up")) {
    if (method != "POST") return method_not_allowed(kAdminContentType);
    double seconds = 0;
    if (segments[2] == "down") {
      auto given = query.find("seconds");
      auto parsed = given == query.end() ? std::nullopt : parse_seconds(given->second);
      if (!parsed) {
        return error_response(400, 400, "seconds must be a number from 0 to 86400 (0: back up now)", kAdminContentType);
      }
      seconds = *parsed;
    }
    {
      std::lock_guard<std::mutex> lock(down_mutex_);
      registry_down_until_ = clock_() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                            std::chrono::duration<double>(seconds));
    }
    if (seconds == 0) return admin_ok(",\"registry\":\"up\"");
    std::string members = ",\"registry\":\"down\",\"seconds\":";
    char number[32];
    const auto [end, ec] = std::to_chars(number, number + sizeof number, seconds);
    members.append(number, ec == std::errc() ? end : number);
    return admin_ok(members);
  }

  return not_found(kAdminContentType);
}

}  // namespace streamrec
