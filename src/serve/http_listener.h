#pragma once
// Runs a cpp-httplib server on a thread of its own (private to src/serve; the HTTP frontend and
// the metrics endpoint use it). Debian's cpp-httplib is a compiled library built with OpenSSL,
// zlib and brotli support: every file including <httplib.h> must be compiled with the same
// CPPHTTPLIB_* definitions (src/serve/CMakeLists.txt sets them from its pkg-config file).
//
// Threading: Start, port and Shutdown from one thread.
#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "larserve/core/status.h"

namespace larserve::serve {

class HttpListener {
 public:
  // Binds `server` (its handlers and settings already in place) to host:port, port 0 meaning any
  // free port, and serves on a new thread. `what` names the server in errors ("HTTP").
  static StatusOr<std::unique_ptr<HttpListener>> Start(std::unique_ptr<httplib::Server> server,
                                                       const std::string& host, int port,
                                                       std::string_view what);
  ~HttpListener();  // Shutdown()
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  int port() const { return port_; }
  // Closes the listening socket, lets the requests in flight finish, joins the workers.
  void Shutdown();

 private:
  HttpListener() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> finished_{false};  // listen_after_bind returned
  int port_ = 0;
  bool stopped_ = false;
};

}  // namespace larserve::serve
