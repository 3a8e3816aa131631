// Schema registry client against a scripted in-process HTTP responder (the sandbox registry is
// tested on its own): request shape, response parsing, caching, and transient/permanent errors.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/registry/schema_registry_client.h"

namespace streamrec {
namespace {

struct http_request {
  std::string method;
  std::string path;
  std::string headers;  // raw header block, lower-cased
  std::string body;
};

std::string http_response(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) +
         " Whatever\r\n"
         "Content-Type: application/vnd.schemaregistry.v1+json\r\n"
         "Content-Length: " +
         std::to_string(body.size()) +
         "\r\n"
         "Connection: close\r\n\r\n" +
         body;
}

int listen_on_loopback(int backlog) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(fd, backlog) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int port_of(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

// Answers each connection with handler(request), one request per connection.
class canned_http_server {
 public:
  using handler = std::function<std::string(const http_request&)>;

  explicit canned_http_server(handler h) : handler_(std::move(h)), listen_fd_(listen_on_loopback(16)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~canned_http_server() {
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(listen_fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_of(listen_fd_)); }
  std::vector<http_request> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  void serve() {
    while (true) {
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      http_request request;
      if (read_request(fd, request)) {
        {
          std::lock_guard<std::mutex> lock(mutex_);
          requests_.push_back(request);
        }
        const std::string reply = handler_(request);
        ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      }
      ::close(fd);
    }
  }

  static bool read_request(int fd, http_request& request) {
    std::string data;
    char buf[4096];
    size_t header_end;
    while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      data.append(buf, static_cast<size_t>(n));
    }
    const std::string head = data.substr(0, header_end);
    const size_t first_space = head.find(' ');
    const size_t second_space = head.find(' ', first_space + 1);
    request.method = head.substr(0, first_space);
    request.path = head.substr(first_space + 1, second_space - first_space - 1);
    request.headers = head.substr(head.find("\r\n") + 2);
    for (char& c : request.headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t content_length = 0;
    if (const size_t at = request.headers.find("content-length:"); at != std::string::npos) {
      content_length = std::stoul(request.headers.substr(at + 15));
    }
    if (request.headers.find("expect: 100-continue") != std::string::npos) {
      const std::string go_on = "HTTP/1.1 100 Continue\r\n\r\n";
      ::send(fd, go_on.data(), go_on.size(), MSG_NOSIGNAL);
    }
    request.body = data.substr(header_end + 4);
    while (request.body.size() < content_length) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      request.body.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  handler handler_;
  int listen_fd_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<http_request> requests_;
};

constexpr const char* schema_text =
    R"({"type":"record","name":"t","fields":[{"name":"a","type":"string","doc":"line\nbreak"}]})";

TEST(SchemaRegistryClient, RegisterPostsEscapedSchemaUnderBasePath) {
  canned_http_server server([](const http_request&) { return http_response(200, R"({"id":7})"); });
  schema_registry_client client(server.url() + "/apis/ccompat/v6/");
  EXPECT_EQ(client.register_schema("clicks value/x", schema_text), 7);

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/apis/ccompat/v6/subjects/clicks%20value%2Fx/versions");
  EXPECT_NE(requests[0].headers.find("content-type: application/vnd.schemaregistry.v1+json"), std::string::npos)
      << requests[0].headers;
  simdjson::dom::parser parser;
  simdjson::dom::element body = parser.parse(requests[0].body);
  std::string_view schema;
  ASSERT_EQ(body["schema"].get_string().get(schema), simdjson::SUCCESS) << requests[0].body;
  EXPECT_EQ(schema, schema_text);

  // Registration fills the cache: the id resolves without another request.
  EXPECT_EQ(client.schema_by_id(7), schema_text);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(SchemaRegistryClient, SchemaByIdIsFetchedOnce) {
  canned_http_server server([](const http_request& request) {
    if (request.path == "/schemas/ids/3") return http_response(200, R"({"schema":"\"string\""})");
    return http_response(404, R"({"error_code":40403,"message":"Schema not found"})");
  });
  schema_registry_client client(server.url());
  EXPECT_EQ(client.schema_by_id(3), "\"string\"");
  EXPECT_EQ(client.schema_by_id(3), "\"string\"");
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(SchemaRegistryClient, LatestVersionOfSubject) {
  canned_http_server server([](const http_request& request) {
    EXPECT_EQ(request.method, "GET");
    EXPECT_EQ(request.path, "/subjects/clicks-value/versions/latest");
    return http_response(200, R"({"subject":"clicks-value","version":4,"id":12,"schema":"\"long\""})");
  });
  schema_registry_client client(server.url());
  const subject_version latest = client.latest("clicks-value");
  EXPECT_EQ(latest.id, 12);
  EXPECT_EQ(latest.version, 4);
  EXPECT_EQ(latest.schema, "\"long\"");
}

TEST(SchemaRegistryClient, NotFoundIsPermanent) {
  canned_http_server server([](const http_request&) {
    return http_response(404, R"({"error_code":40403,"message":"Schema 99 not found"})");
  });
  schema_registry_client client(server.url());
  try {
    client.schema_by_id(99);
    FAIL() << "expected registry_error";
  } catch (const registry_error& e) {
    EXPECT_FALSE(e.transient());
    EXPECT_EQ(e.http_status(), 404);
    EXPECT_EQ(e.registry_error_code(), 40403);
    EXPECT_EQ(e.url(), server.url() + "/schemas/ids/99");
    const std::string message = e.what();
    EXPECT_NE(message.find(server.url() + "/schemas/ids/99"), std::string::npos) << message;
    EXPECT_NE(message.find("HTTP 404"), std::string::npos) << message;
    EXPECT_NE(message.find("Schema 99 not found"), std::string::npos) << message;
  }
}

TEST(SchemaRegistryClient, IncompatibleSchemaIsPermanent) {
  canned_http_server server(
      [](const http_request&) { return http_response(409, R"({"error_code":409,"message":"incompatible"})"); });
  schema_registry_client client(server.url());
  try {
    client.register_schema("s", schema_text);
    FAIL() << "expected registry_error";
  } catch (const registry_error& e) {
    EXPECT_FALSE(e.transient());
    EXPECT_EQ(e.http_status(), 409);
  }
}

TEST(SchemaRegistryClient, ServerErrorsAndThrottlingAreTransient) {
  for (const int status : {500, 503, 429, 408}) {
    canned_http_server server([status](const http_request&) { return http_response(status, "overloaded"); });
    schema_registry_client client(server.url());
    try {
      client.schema_by_id(1);
      FAIL() << "expected registry_error for " << status;
    } catch (const registry_error& e) {
      EXPECT_TRUE(e.transient()) << status;
      EXPECT_EQ(e.http_status(), status);
      // A body that is no registry error object is never quoted.
      EXPECT_EQ(std::string(e.what()).find("overloaded"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("HTTP " + std::to_string(status)), std::string::npos) << e.what();
    }
  }
}

TEST(SchemaRegistryClient, AnswersOfOtherServersAreNeverQuoted) {
  // A URL pointed at some internal HTTP service: status and a fixed description, never its body.
  for (const auto& [status, body] :
       std::vector<std::pair<int, std::string>>{{403, "root:x:0:0:SECRET-BODY"},
                                                {401, R"({"message":"SECRET-BODY","token":"t"})"},
                                                {404, R"({"error_code":"40403","message":"SECRET-BODY"})"},
                                                {200, "SECRET-BODY"},
                                                {200, R"(["SECRET-BODY"])"}}) {
    canned_http_server server(
        [status = status, body = body](const http_request&) { return http_response(status, body); });
    schema_registry_client client(server.url());
    try {
      client.schema_by_id(1);
      FAIL() << "expected registry_error for " << body;
    } catch (const registry_error& e) {
      EXPECT_EQ(std::string(e.what()).find("SECRET"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("HTTP " + std::to_string(status)), std::string::npos) << e.what();
      EXPECT_EQ(e.http_status(), status);
    }
  }
}

TEST(SchemaRegistryClient, CredentialsInTheUrlAreNotShown) {
  canned_http_server server([](const http_request&) { return http_response(500, "down"); });
  std::string url = server.url();
  url.insert(url.find("://") + 3, "user:pa55word@");
  schema_registry_client client(url);
  try {
    client.schema_by_id(1);
    FAIL() << "expected registry_error";
  } catch (const registry_error& e) {
    EXPECT_EQ(std::string(e.what()).find("pa55word"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("***@"), std::string::npos) << e.what();
  }
}

TEST(SchemaRegistryClient, GarbageSuccessBodyIsPermanent) {
  canned_http_server server([](const http_request&) { return http_response(200, "<html>proxy</html>"); });
  schema_registry_client client(server.url());
  try {
    client.schema_by_id(1);
    FAIL() << "expected registry_error";
  } catch (const registry_error& e) {
    EXPECT_FALSE(e.transient());
    EXPECT_NE(std::string(e.what()).find("not a JSON object"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("proxy"), std::string::npos) << e.what();
  }
  canned_http_server no_id([](const http_request&) { return http_response(200, R"({"ok":true})"); });
  schema_registry_client client2(no_id.url());
  EXPECT_THROW(client2.register_schema("s", schema_text), registry_error);
}

TEST(SchemaRegistryClient, ConnectionRefusedIsTransient) {
  // A port that was just free: nothing listens there.
  const int fd = listen_on_loopback(1);
  const int port = port_of(fd);
  ::close(fd);
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  schema_registry_client client(base);
  try {
    client.schema_by_id(5);
    FAIL() << "expected registry_error";
  } catch (const registry_error& e) {
    EXPECT_TRUE(e.transient());
    EXPECT_EQ(e.http_status(), 0);
    EXPECT_NE(std::string(e.what()).find(base + "/schemas/ids/5"), std::string::npos) << e.what();
  }
}

TEST(SchemaRegistryClient, SilentServerTimesOutTransiently) {
  // The kernel completes the handshake for a listening socket nobody accepts on: the request
  // is sent and never answered.
  const int fd = listen_on_loopback(4);
  registry_options options;
  options.total_timeout = std::chrono::milliseconds(300);
  schema_registry_client client("http://127.0.0.1:" + std::to_string(port_of(fd)), options);
  const auto started = std::chrono::steady_clock::now();
  try {
    client.latest("s");
    FAIL() << "expected registry_error";
  } catch (const registry_error& e) {
    EXPECT_TRUE(e.transient()) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3));
  ::close(fd);
}

TEST(SchemaRegistryClient, MalformedUrlIsPermanent) {
  schema_registry_client client("htp://nowhere");
  try {
    client.schema_by_id(1);
    FAIL() << "expected registry_error";
  } catch (const registry_error& e) {
    EXPECT_FALSE(e.transient()) << e.what();
  }
}

}  // namespace
}  // namespace streamrec
