#include "tools/sandbox_broker/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "tools/sandbox_broker/http_text.h"
#include "tools/sandbox_broker/sandbox_router.h"

namespace streamrec {

namespace {

// Schemas are small; this only bounds memory against a runaway client.
constexpr size_t kMaxBodyBytes = size_t{16} * 1024 * 1024;

struct PendingRequest {
  std::string body;
  bool too_large = false;
};

MHD_Result send_response(MHD_Connection *connection, const HttpResponse &response) {
  MHD_Response *reply = MHD_create_response_from_buffer(response.body.size(), const_cast<char *>(response.body.data()),
                                                        MHD_RESPMEM_MUST_COPY);
  if (reply == nullptr) return MHD_NO;
  if (!response.content_type.empty()) {
    MHD_add_response_header(reply, MHD_HTTP_HEADER_CONTENT_TYPE, response.content_type.c_str());
  }
  const MHD_Result queued = MHD_queue_response(connection, static_cast<unsigned int>(response.status), reply);
  MHD_destroy_response(reply);
  return queued;
}

MHD_Result collect_query_argument(void *cls, MHD_ValueKind, const char *key, const char *value) {
  auto &query = *static_cast<std::map<std::string, std::string> *>(cls);
  if (key == nullptr) return MHD_YES;
  // MHD already turned '+' into ' '; the percent escapes are left to us (see keep_escaped).
  auto decode = [](const char *text) {
    if (text == nullptr) return std::string();
    auto decoded = decode_path_segment(text);
    return decoded ? *decoded : std::string(text);
  };
  query[decode(key)] = decode(value);
  return MHD_YES;
}

}  // namespace

struct HttpServerCallbacks {
  // MHD would percent-decode the path before routing, turning a subject "a%2Fb" into two path
  // segments; the router decodes each segment itself instead.
  static size_t keep_escaped(void *, MHD_Connection *, char *text) { return std::strlen(text); }

  static MHD_Result on_request(void *cls, MHD_Connection *connection, const char *url, const char *method, const char *,
                               const char *upload_data, size_t *upload_data_size, void **request_state) {
    auto *server = static_cast<HttpServer *>(cls);
    try {
      auto *pending = static_cast<PendingRequest *>(*request_state);
      if (pending == nullptr) {
        *request_state = new PendingRequest();
        return MHD_YES;
      }
      if (*upload_data_size > 0) {
        if (pending->body.size() + *upload_data_size > kMaxBodyBytes) {
          pending->too_large = true;
        } else {
          pending->body.append(upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
      }
      if (pending->too_large) {
        return send_response(connection, HttpResponse{413, kRegistryContentType,
                                                      "{\"error_code\":413,\"message\":"
                                                      "\"Request body too large\"}"});
      }

      HttpRequest request;
      request.method = method;
      request.path = url;
      request.body = std::move(pending->body);
      MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &collect_query_argument, &request.query);
      return send_response(connection, server->router_.handle(request));
    } catch (const std::exception &) {
      // Only allocation can fail here; the router catches everything else.
      return MHD_NO;
    }
  }

  static void on_completed(void *, MHD_Connection *, void **request_state, MHD_RequestTerminationCode) {
    delete static_cast<PendingRequest *>(*request_state);
    *request_state = nullptr;
  }
};

HttpServer::HttpServer(SandboxRouter &router, uint16_t port) : router_(router) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  daemon_ = MHD_start_daemon(
      MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, port, nullptr, nullptr, &HttpServerCallbacks::on_request, this,
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<const sockaddr *>(&address), MHD_OPTION_NOTIFY_COMPLETED,
      &HttpServerCallbacks::on_completed, nullptr, MHD_OPTION_UNESCAPE_CALLBACK, &HttpServerCallbacks::keep_escaped,
      nullptr, MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned int>(30), MHD_OPTION_END);
  if (daemon_ == nullptr) {
    throw std::runtime_error("cannot listen on 127.0.0.1:" + std::to_string(port) + " (port in use?)");
  }
  const MHD_DaemonInfo *info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
  if (info == nullptr || info->port == 0) {
    MHD_stop_daemon(daemon_);
    throw std::runtime_error("cannot tell which port the HTTP server listens on");
  }
  port_ = info->port;
}

HttpServer::~HttpServer() { MHD_stop_daemon(daemon_); }

}  // namespace streamrec
