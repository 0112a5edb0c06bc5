#pragma once
// The mock's HTTP/1.1 server: N worker threads, each with its own epoll loop and its own listening socket on the
// shared port (SO_REUSEPORT: the kernel spreads connections evenly). A connection stays on the worker that
// accepted it.
//
// Per connection: read a request head (at most max_head_bytes, else 431) and its Content-Length body (at most
// max_body_bytes, else 413; a Transfer-Encoding header gets 411), answering "100 Continue" when asked; hand head
// and body to the request handler, which returns a plan (plan.hpp); execute the plan: bytes are written as
// the socket takes them, waits are per-connection deadlines in the worker's timer heap (epoll_wait's timeout),
// so thousands of slow answers cost no threads. Then the next request on the same connection (keep-alive), or
// a close: shutdown(SHUT_WR), then the unread input is drained for up to 2 s so the client sees the answer rather
// than a reset. Connections over max_connections are closed as soon as they are accepted; an idle connection
// (no request in progress, or a client that stopped reading its answer) is closed after idle_timeout_ms.
// A client that closes its side during an answer has left, as nginx sees it too: the answer ends at once and
// counts as aborted (so tests can see a gateway cancel). Requests read before such a close are still answered.

#include "tools/mock-upstream/control.hpp"
#include "tools/mock-upstream/http_request.hpp"
#include "tools/mock-upstream/plan.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace troupe::mock {

struct server_options {
  std::string host = "127.0.0.1";
  uint16_t port = 0; // 0: an ephemeral port
  int threads = 2;
  int64_t max_connections = 1024;
  uint64_t max_body_bytes = 1 << 20;
  size_t max_head_bytes = 64 << 10;
  int64_t idle_timeout_ms = 60'000;
};

/// Turns a complete request into a plan. Called on a worker thread; must not block.
using request_handler = std::function<plan(const request_head& head, std::string_view body)>;

class worker;

class server {
public:
  server(server_options options, request_handler handler, connection_counters& counters);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds and listens. Returns "" or a sentence saying what failed.
  std::string listen();
  /// The bound port (after listen()).
  uint16_t port() const { return port_; }
  /// Starts the worker threads.
  void start();
  /// Asks every worker to close its connections and return; safe from any thread. join() waits for them.
  void stop();
  void join();

private:
  server_options options_;
  request_handler handler_;
  connection_counters& counters_;
  std::vector<int> listen_fds_; // one per worker, all on port_ (SO_REUSEPORT)
  int wake_fd_ = -1;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<worker>> workers_;
  std::vector<std::thread> threads_;
};

} // namespace troupe::mock
