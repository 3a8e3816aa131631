// libmicrohttpd glue: serves a SandboxRouter on 127.0.0.1 from one internal polling thread.
#pragma once

#include <cstdint>

struct MHD_Daemon;

namespace streamrec {

class SandboxRouter;

class HttpServer {
 public:
  // port 0: the kernel picks one. The server listens when the constructor returns.
  // Throws std::runtime_error.
  HttpServer(SandboxRouter &router, uint16_t port);
  ~HttpServer();
  HttpServer(const HttpServer &) = delete;
  HttpServer &operator=(const HttpServer &) = delete;

  uint16_t port() const { return port_; }

 private:
  SandboxRouter &router_;
  MHD_Daemon *daemon_ = nullptr;
  uint16_t port_ = 0;

  friend struct HttpServerCallbacks;
};

}  // namespace streamrec
