#pragma once
// The Pistache endpoint and the responder through which every response leaves.
//
// A Pistache thread parses the request, enforces limits, matches a route and calls its handler with a
// responder; the handler answers at once (pure CPU work) or hands the responder to the actor side
// (http/bridge.hpp) and returns. Pistache threads never wait for actors. The responder may be completed from
// any thread: ResponseWriter::send queues the write to the connection's reactor.
//
// Every response gets X-Request-Id, the security headers, and the right Connection header (Pistache 0.0.5
// closes HTTP/1.1 connections unless told otherwise: see LIBRARY-NOTES.md). Every response is counted in
// metrics and (sampled) written to the access log.

#include "http/request.hpp"
#include "http/response.hpp"
#include "http/router.hpp"

#include "actors/metrics.hpp"
#include "config/options.hpp"

#include <caf/error.hpp>
#include <pistache/http.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace Pistache::Http {
class Endpoint;
}

namespace troupe::http {

/// State shared by the Pistache handler clones and every responder.
class server_state {
public:
  server_state(const config::settings& settings, std::shared_ptr<router> routes,
               std::shared_ptr<metrics_registry> metrics);

  const router& routes() const { return *routes_; }
  /// The default body limit (http.max_body_bytes); a route may set its own (route_options::max_body_bytes).
  size_t max_body_bytes() const { return max_body_bytes_; }
  /// The largest body any route takes: Pistache must buffer requests that large.
  size_t largest_body_bytes() const { return std::max(max_body_bytes_, routes_->largest_body_limit()); }
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  int64_t in_flight() const { return in_flight_.load(std::memory_order_acquire); }

  /// Accounting done once per response, when it is handed to Pistache: request_finished (metrics, access log),
  /// then response_written, which counts it out of the in-flight gate.
  void request_started();
  void request_finished(const request& req, int status);
  void response_written();

  void begin_drain();
  /// Waits until no request is in flight or the grace time passed; true if idle.
  bool wait_idle(std::chrono::milliseconds grace);

  std::string next_request_id();

private:
  std::shared_ptr<router> routes_;
  std::shared_ptr<metrics_registry> metrics_;
  counter_family& requests_total_;
  histogram_family& request_seconds_;
  size_t max_body_bytes_;
  double access_log_sample_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> in_flight_{0};
  std::mutex idle_mutex_;
  std::condition_variable idle_;
  std::string id_prefix_;
  std::atomic<uint64_t> id_counter_{0};
};

/// A response sent in pieces as they are produced (chunked transfer encoding), e.g. Server-Sent Events. Obtained
/// from responder::stream. write and end may be called from any thread (one at a time is enforced by a mutex);
/// the bytes are queued to the connection's reactor, never written from the caller's thread. The request counts as
/// in flight until end() (or destruction), so a drain waits for open streams up to the grace time.
class response_stream {
public:
  ~response_stream();
  response_stream(const response_stream&) = delete;
  response_stream& operator=(const response_stream&) = delete;

  /// Sends `data` as one chunk now. false once the client has gone away or the stream ended: stop producing.
  bool write(std::string_view data);
  /// Sends the terminating chunk (unless the client has gone) and runs the responder's on_sent hooks. Idempotent.
  void end();

private:
  friend class responder;
  response_stream(Pistache::Http::ResponseStream stream, std::shared_ptr<server_state> server,
                  std::vector<std::function<void()>> on_end);
  bool enqueue(bool last_chunk);

  std::mutex mutex_;
  std::unique_ptr<Pistache::Http::ResponseStream> stream_;
  std::shared_ptr<server_state> server_;
  std::vector<std::function<void()>> on_end_;
  bool ended_ = false;
  bool gone_ = false;
};

/// Completes one request exactly once, from any thread. If it is destroyed unanswered (a handler lost it),
/// the client gets a 500 rather than a hung connection.
class responder {
public:
  responder(Pistache::Http::ResponseWriter writer, request req, std::shared_ptr<server_state> server, bool keep_alive);
  ~responder();
  responder(const responder&) = delete;
  responder& operator=(const responder&) = delete;

  const request& req() const { return req_; }
  /// Moves the request body out (large bodies such as upload chunks travel to actors without a copy); the
  /// request's body is empty afterwards. Call at most once, from the handler that owns the request.
  std::string take_body() { return std::move(req_.body); }

  /// Sends the response; later calls are ignored.
  void send(response res);
  /// Sends the error response for `err` (error_mapping.hpp).
  void fail(const caf::error& err);
  /// Starts a streamed answer instead: status, content type and headers of `head` (its body is ignored) go out
  /// with the first chunk. nullptr if the request was already answered. The on_sent hooks run when it ends.
  std::shared_ptr<response_stream> stream(response head);
  bool answered() const { return answered_.load(); }

  /// A header every response to this request carries (e.g. RateLimit), whatever the handler answers.
  void add_header(std::string name, std::string value);
  /// Runs `fn` once the response is handed to Pistache (e.g. to release an in-flight slot).
  void on_sent(std::function<void()> fn);

private:
  /// Sets the standard, extra and `res` headers on the writer; returns the on_sent hooks to run.
  std::vector<std::function<void()>> prepare_headers(response& res);

  Pistache::Http::ResponseWriter writer_;
  request req_;
  std::shared_ptr<server_state> server_;
  bool keep_alive_;
  std::atomic<bool> answered_{false};
  std::mutex extras_mutex_; // add_header/on_sent may run on another thread than send
  std::vector<std::pair<std::string, std::string>> extra_headers_;
  std::vector<std::function<void()>> on_sent_;
};

/// Owns the Pistache endpoint.
class server {
public:
  server(const config::settings& settings, std::shared_ptr<server_state> state);
  ~server();

  /// Binds and starts serving on background threads; returns the bound port (useful with port 0).
  /// Throws std::runtime_error if the address cannot be bound.
  uint16_t start();
  /// Closes the listener and every connection. Call after draining.
  void stop();

private:
  config::settings settings_;
  std::shared_ptr<server_state> state_;
  std::unique_ptr<Pistache::Http::Endpoint> endpoint_;
};

} // namespace troupe::http
