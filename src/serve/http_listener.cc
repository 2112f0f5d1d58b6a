#include "http_listener.h"

#include <sys/socket.h>

#include <chrono>
#include <vector>

#include "larserve/core/thread_pool.h"

namespace larserve::serve {

StatusOr<std::unique_ptr<HttpListener>> HttpListener::Start(std::unique_ptr<httplib::Server> server,
                                                            const std::string& host, int port,
                                                            std::string_view what) {
  if (port < 0 || port > 65535) {
    return InvalidArgument(std::string(what) + " port " + std::to_string(port) +
                           " is out of range");
  }
  const std::string address =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  // httplib listens with a backlog of 5 (compiled into Debian's library). A client opening
  // dozens of connections at once (perf_analyzer at concurrency 64) overflowed it: the kernel
  // dropped handshakes and reset some connections ("Failure when receiving data from the peer").
  // The socket is noted here as httplib creates it, and listened on again with a larger backlog
  // once bound (Linux applies a second listen() to the queue length).
  std::vector<int> sockets;
  // httplib's defaults also set SO_REUSEPORT, with which a second server on a port in use binds
  // it as well and silently takes part of the connections: one server per port.
  server->set_socket_options([&sockets](socket_t sock) {
    httplib::default_socket_options(sock);
#ifdef SO_REUSEPORT
    const int no = 0;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEPORT, &no, sizeof no);
#endif
    sockets.push_back(static_cast<int>(sock));
  });
  int bound = port;
  if (port == 0) {
    bound = server->bind_to_any_port(host);
  } else if (!server->bind_to_port(host, port)) {
    bound = -1;
  }
  if (bound <= 0) {
    return Unavailable("cannot serve " + std::string(what) + " on " + address +
                       " (address in use, or not an address of this machine)");
  }
  if (!sockets.empty()) ::listen(sockets.back(), SOMAXCONN);  // the socket that was bound
  server->set_socket_options(httplib::default_socket_options);
  std::unique_ptr<HttpListener> l(new HttpListener());
  l->server_ = std::move(server);
  l->port_ = bound;
  httplib::Server* s = l->server_.get();
  std::atomic<bool>* finished = &l->finished_;
  l->thread_ = std::thread([s, finished] {
    SetCurrentThreadName("lsv-accept");
    s->listen_after_bind();
    finished->store(true);
  });
  // Server::stop() does nothing before the accept loop runs: wait for it, so that a Shutdown
  // right after Start cannot leave the loop running forever.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!s->is_running() && !l->finished_.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!s->is_running()) {
    l->Shutdown();
    return Unavailable("the " + std::string(what) + " server on " + address + " did not start");
  }
  return l;
}

HttpListener::~HttpListener() { Shutdown(); }

void HttpListener::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace larserve::serve
