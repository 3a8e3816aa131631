// Request routing for the sandbox's HTTP port: the Confluent-compatible registry endpoints and the
// admin (fault-injection) endpoints. Sockets live elsewhere (http_server.h) so that every
// response can be unit-tested as plain status + body.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "tools/sandbox_broker/schema_registry.h"

namespace streamrec {

struct HttpRequest {
  std::string method;
  std::string path;                          // still percent-encoded, without the query
  std::map<std::string, std::string> query;  // already decoded
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type;
  std::string body;
};

inline constexpr const char *kRegistryContentType = "application/vnd.schemaregistry.v1+json";
inline constexpr const char *kAdminContentType = "application/json";

enum class AdminStatus { ok, not_found, already_exists, invalid, failed };

struct AdminResult {
  AdminStatus status = AdminStatus::ok;
  std::string message;
};

// What the admin endpoints may do to the Kafka side; the mock cluster implements it, unit tests
// substitute a recorder. Called from the HTTP server's thread.
class ClusterControl {
 public:
  virtual ~ClusterControl() = default;
  // broker_id -1 means every broker.
  virtual AdminResult set_broker_up(int32_t broker_id, bool up) = 0;
  virtual AdminResult create_topic(const std::string &name, int partitions) = 0;
  // missing: Metadata answers UNKNOWN_TOPIC_OR_PART for the topic; present: it answers normally
  // again. Either creates the topic with `partitions` first if it does not exist.
  virtual AdminResult set_topic_missing(const std::string &name, bool missing, int partitions) = 0;
  // The next `count` Produce requests are answered with Kafka error code `error` for every
  // partition (a broker refusing a record for good, e.g. 10 MESSAGE_TOO_LARGE).
  virtual AdminResult fail_produce_requests(int count, int error) {
    (void)count;
    (void)error;
    return {AdminStatus::failed, "not supported"};
  }
};

class SandboxRouter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  SandboxRouter(SchemaRegistry &registry, ClusterControl &cluster, Clock clock = &std::chrono::steady_clock::now);

  // Thread-safe; never throws for any input.
  HttpResponse handle(const HttpRequest &request);

 private:
  HttpResponse route_registry(const std::string &method, const std::vector<std::string> &segments,
                              const std::string &body);
  HttpResponse route_admin(const std::string &method, const std::vector<std::string> &segments,
                           const std::map<std::string, std::string> &query);
  HttpResponse register_schema(const std::string &subject, const std::string &body);
  HttpResponse lookup_schema(const std::string &subject, const std::string &body);
  HttpResponse get_version(const std::string &subject, const std::string &version, bool raw);
  HttpResponse get_schema(const std::string &id, bool raw);
  bool registry_is_down();

  SchemaRegistry &registry_;
  ClusterControl &cluster_;
  Clock clock_;
  std::mutex down_mutex_;
  std::chrono::steady_clock::time_point registry_down_until_{};
};

}  // namespace streamrec
