#pragma once
// The HTTP server: what every request and response goes through between the connection (http/connection.hpp:
// framing, timeouts, sockets) and the route handlers.
//
// On a reactor thread a complete request is matched to its route and its handler called with a responder; the
// handler answers at once (pure CPU work) or hands the responder to the actor side (http/bridge.hpp) and returns.
// Reactor threads never wait for actors. The responder may be completed from any thread: the response is
// serialised on the completing thread and its bytes travel to the connection's reactor, which writes them to that
// connection only (never to a later one that reused the socket).
//
// Every response gets X-Request-Id, the security headers, Date, and the right Connection header. Every response is
// counted in metrics and (sampled) written to the access log.

#include "http/connection.hpp"
#include "http/request.hpp"
#include "http/response.hpp"
#include "http/router.hpp"

#include "actors/event_sink.hpp"
#include "actors/metrics.hpp"
#include "config/log.hpp"
#include "config/options.hpp"

#include <caf/error.hpp>

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
#include <utility>
#include <vector>

namespace troupe::tracing {
class span_queue;
}

namespace troupe::http {

/// A stage a request passed (responder::mark): when it ended, and its span id (the traceparent sent to an upstream
/// names it; zero: one is made when the span is).
struct stage_mark {
  const char* name;
  std::chrono::steady_clock::time_point at;
  tracing::span_id span;
  std::chrono::steady_clock::time_point began; // its own start, when known (else: the previous stage's end)
};
using stage_marks = std::vector<stage_mark>;

/// State shared by the connections' sink and every responder.
class server_state {
public:
  server_state(const config::settings& settings, std::shared_ptr<router> routes,
               std::shared_ptr<metrics_registry> metrics);

  const router& routes() const { return *routes_; }
  const std::shared_ptr<metrics_registry>& metrics() const { return metrics_; }
  /// The default body limit (http.max_body_bytes); a route may set its own (route_options::max_body_bytes).
  size_t max_body_bytes() const { return max_body_bytes_; }
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  /// Whether routes are under admission control (http.admission_control).
  bool admission_control() const { return admission_control_; }
  /// Whether gzip applies to this response as its handler made it (http/compression.hpp): a 200 of a compressible
  /// type between http.gzip_min_bytes and http.gzip_max_bytes with no Content-Encoding in its own headers (one
  /// added with responder::add_header is not seen), with http.gzip on.
  bool compressible(const response& res) const;
  /// With `compressible` (decided before revalidation): adds Vary: Accept-Encoding, and for a client whose
  /// Accept-Encoding lines take gzip weakens the ETag and, on a 200, compresses the body (http.gzip_level).
  void compress(const request& req, response& res, bool compressible);
  int64_t in_flight() const { return in_flight_.load(std::memory_order_acquire); }
  /// Bytes of request bodies held right now (being received, or handed to a handler that has not answered).
  int64_t body_bytes_held() const { return body_bytes_.load(std::memory_order_acquire); }

  /// Accounting done once per response, when it is handed to its connection: request_finished (metrics, access
  /// log), then response_written, which counts it out of the in-flight gate.
  void request_started();
  /// A request slower than ops.slow_ms is logged once ("slow operation", kind request) with its stages and counted
  /// in troupe_slow_operations_total{kind="request"}.
  /// With a span queue (tracing.otlp_endpoint) a sampled request's spans go to it: the request's (SERVER) and one per
  /// stage.
  void request_finished(const request& req, int status, uint32_t handoffs = 0, const stage_marks* stages = nullptr);
  /// Where finished requests' spans go (set before the server starts; null: no export).
  void set_span_queue(std::shared_ptr<tracing::span_queue> queue) { spans_ = std::move(queue); }
  /// tracing.sample_ratio: the share of new traces recorded.
  double sample_ratio() const { return sample_ratio_; }
  void response_written();

  /// Reserves `bytes` of the body budget (http.max_body_memory_bytes); false when it is spent.
  bool reserve_body(int64_t bytes);
  void release_body(int64_t bytes);

  void begin_drain();
  /// Waits until no request is in flight or the grace time passed; true if idle.
  bool wait_idle(std::chrono::milliseconds grace);

  std::string next_request_id();

  /// The "X-Troupe-Node: <id>\r\n" line every response carries from now on (call once, when the node id is known;
  /// responses before it carry none).
  void set_node_id(const std::string& node_id);
  /// That line, or "" before set_node_id.
  std::string_view node_header() const {
    auto* line = node_header_.load(std::memory_order_acquire);
    return line ? std::string_view{*line} : std::string_view{};
  }

private:
  std::unique_ptr<const std::string> node_header_storage_;
  std::atomic<const std::string*> node_header_{nullptr};
  std::shared_ptr<router> routes_;
  std::shared_ptr<metrics_registry> metrics_;
  counter_family& requests_total_;
  counter_family& handoffs_total_;
  histogram_family& request_seconds_;
  counter_family& compressed_bytes_;
  counter_family& slow_operations_;
  std::chrono::milliseconds slow_{1000};
  log::line_budget slow_lines_{10}; // slow requests are counted all, logged at most 10 a second
  std::shared_ptr<tracing::span_queue> spans_;
  double sample_ratio_ = 1;
  size_t max_body_bytes_;
  int64_t body_budget_;
  bool admission_control_;
  bool gzip_;
  size_t gzip_min_bytes_;
  size_t gzip_max_bytes_;
  int gzip_level_;
  double access_log_sample_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> body_bytes_{0};
  std::mutex idle_mutex_;
  std::condition_variable idle_;
  std::string id_prefix_;
  std::atomic<uint64_t> id_counter_{0};
};

/// A slot of a route's admission limit (http/admission.hpp), held until the answer is handed over; gives the slot
/// back with the request's latency.
class admission_ticket {
public:
  admission_ticket() = default;
  admission_ticket(std::shared_ptr<admission_limit> limit, std::chrono::steady_clock::time_point started)
    : limit_(std::move(limit)), started_(started) {}
  ~admission_ticket() { release(); }
  admission_ticket(admission_ticket&& other) noexcept
    : limit_(std::move(other.limit_)), started_(other.started_) {}
  admission_ticket& operator=(admission_ticket&& other) noexcept {
    if (this != &other) {
      release();
      limit_ = std::move(other.limit_);
      started_ = other.started_;
    }
    return *this;
  }
  void release() {
    if (auto limit = std::move(limit_))
      limit->release(std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_));
  }

private:
  std::shared_ptr<admission_limit> limit_;
  std::chrono::steady_clock::time_point started_;
};

/// Bytes of the body budget held by a request until its response is handed over (or it is dropped).
class body_reservation {
public:
  body_reservation() = default;
  body_reservation(std::shared_ptr<server_state> server, int64_t bytes) : server_(std::move(server)), bytes_(bytes) {}
  ~body_reservation() { release(); }
  body_reservation(body_reservation&& other) noexcept
    : server_(std::move(other.server_)), bytes_(std::exchange(other.bytes_, 0)) {}
  body_reservation& operator=(body_reservation&& other) noexcept {
    if (this != &other) {
      release();
      server_ = std::move(other.server_);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }
  void release() {
    if (server_ && bytes_ > 0)
      server_->release_body(bytes_);
    bytes_ = 0;
  }

private:
  std::shared_ptr<server_state> server_;
  int64_t bytes_ = 0;
};

/// Where the streamed answer of an internal request goes (responder(request, deliver, stream_consumer)): the
/// server asking itself (the WebSocket channel relaying a streamed chat) reads the stream's bytes as they come.
struct stream_consumer {
  std::function<void(const response& head)> start; // status and headers, once, before any bytes
  std::function<bool(std::string_view bytes)> write; // false: the consumer has gone (stop producing)
  std::function<void(bool cut_off)> end;           // once; cut_off: abort() (the answer is incomplete)
  std::function<bool()> gone;                      // the consumer has gone
  std::function<int64_t()> backlog;                // bytes it has not passed on yet
};

/// A response sent in pieces as they are produced (chunked transfer encoding), e.g. Server-Sent Events. Obtained
/// from responder::stream. write and end may be called from any thread (one at a time is enforced by a mutex); the
/// bytes are queued to the connection's reactor, never written from the caller's thread. The request counts as in
/// flight until end() (or destruction), so a drain waits for open streams up to the grace time.
class response_stream final : public event_sink {
public:
  ~response_stream();
  response_stream(const response_stream&) = delete;
  response_stream& operator=(const response_stream&) = delete;

  /// Sends `data` as one chunk now. false once the client has gone away or the stream ended: stop producing.
  bool write(std::string_view data) override;
  /// Sends the terminating chunk (unless the client has gone) and runs the responder's on_sent hooks. Idempotent.
  void end() override;
  /// Ends without the terminating chunk and closes the connection: the client sees the stream cut off (only for
  /// when nothing valid can be said any more).
  void abort();
  /// True once the client has gone (its connection closed).
  bool gone() const;
  /// True once the server is draining before it exits: a stream that could last for ever should end now (its
  /// client reconnects elsewhere, or to the restarted server).
  bool draining() const;
  /// Bytes written to the stream that have not reached the client's socket yet: a producer far ahead of a slow
  /// reader should slow down.
  int64_t backlog() const;
  /// The longest time the client may leave the stream's bytes unread before the connection is closed (default
  /// http.send_timeout_ms). Applies from the next write.
  void set_stall_limit(std::chrono::milliseconds limit) override;

private:
  friend class responder;
  response_stream(std::shared_ptr<connection> conn, std::shared_ptr<server_state> server, bool chunked,
                  bool close_after, std::vector<std::function<void()>> on_end);
  response_stream(std::shared_ptr<stream_consumer> consumer, std::vector<std::function<void()>> on_end);
  void send(std::string bytes, bool last, bool close);

  std::mutex mutex_;
  std::shared_ptr<connection> conn_;
  std::shared_ptr<server_state> server_;
  std::shared_ptr<stream_consumer> consumer_; // set: an internal request's stream (no connection, no server)
  std::vector<std::function<void()>> on_end_;
  std::chrono::milliseconds stall_limit_{0};
  bool chunked_ = true;     // HTTP/1.1 client: chunked; HTTP/1.0: the body ends when the connection closes
  bool close_after_ = false;
  bool ended_ = false;
};

/// Completes one request exactly once, from any thread. If it is destroyed unanswered (a handler lost it), the
/// client gets a 500 rather than a hung connection.
class responder {
public:
  responder(std::shared_ptr<connection> conn, request req, std::shared_ptr<server_state> server, bool keep_alive,
            bool http10 = false, body_reservation body = {}, admission_ticket ticket = {});
  /// A request the server makes of itself (a background job calling a route, such as a plan's generation through
  /// the gateway's own path): the response, with the headers every response to it carries, goes to `deliver`, on
  /// the thread that answers, instead of to a connection. Such a request cannot stream: stream() answers it with a
  /// 500 and returns nullptr. It is not counted in the server's metrics (its caller counts its own work).
  responder(request req, std::function<void(response)> deliver);
  /// An internal request that may stream: a streamed answer goes to `consumer` (not to `deliver`).
  responder(request req, std::function<void(response)> deliver, std::shared_ptr<stream_consumer> consumer);
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
  /// first. nullptr if the request was already answered. The on_sent hooks run when it ends.
  std::shared_ptr<response_stream> stream(response head);
  /// Answers 101 Switching Protocols with the headers of `head` (Upgrade and Connection are added) and hands the
  /// connection to `protocol` once those bytes are queued. False if the request was already answered, is internal,
  /// or the server is draining (the caller answers otherwise then).
  bool upgrade(response head, std::shared_ptr<upgraded_protocol> protocol);
  /// The connection the request arrived on (null for internal requests).
  const std::shared_ptr<connection>& conn() const { return conn_; }
  bool answered() const { return answered_.load(); }
  /// True once the client has gone (its connection closed): an answer would reach nobody.
  bool client_gone() const;

  /// A header every response to this request carries (e.g. RateLimit), whatever the handler answers.
  void add_header(std::string name, std::string value);
  /// Notes that the stage `stage` (a string literal: "auth", "rate_limit", "cache", "upstream", ...) of the request
  /// ended now; a slow request's log line lists its stages with their durations.
  void mark(const char* stage, const tracing::span_id& span = {}, std::chrono::steady_clock::time_point began = {});
  /// Runs `fn` once the response is handed to the connection (e.g. to release an in-flight slot).
  void on_sent(std::function<void()> fn);
  /// Notes that the request's code runs on the calling thread now: one thread hand-off more when it is not the
  /// thread that last ran it. Called where a request changes threads (bridge jobs, caller replies), and by send;
  /// the count (plus the hop back to the reactor, when the answer is sent from another thread) is added to
  /// troupe_http_handoffs_total{route}.
  void arrived();
  /// Hand-offs counted so far.
  uint32_t handoffs() const { return handoffs_.load(std::memory_order_relaxed); }
  /// An internal request (a WebSocket chat, a plan job's model call) whose trace is sampled records its spans into
  /// `spans` when it is answered: itself as an INTERNAL span under its trace's parent, and its stages. Set before
  /// the request is handed to its route.
  void export_spans(std::shared_ptr<tracing::span_queue> spans) { internal_spans_ = std::move(spans); }

private:
  /// An internal request's spans, when export_spans asked for them and its trace is sampled.
  void record_internal(int status);
  /// Waits for a mark() under way (after answered_ is set), so stages_ can be read without the lock.
  void stages_settled();
  /// arrived(), then the hand-offs including the one back to the reactor.
  uint32_t handoffs_to_answer();
  /// Serialises the status line and headers (standard, extra and `res`'s) into `out`; returns the on_sent hooks.
  std::vector<std::function<void()>> write_head(std::string& out, response& res, bool keep_alive, bool streamed,
                                                bool upgrade = false);

  std::shared_ptr<connection> conn_;
  request req_;
  std::shared_ptr<server_state> server_;
  bool keep_alive_;
  bool http10_;
  body_reservation body_;
  admission_ticket ticket_;
  std::atomic<bool> answered_{false};
  uint64_t reactor_thread_;                  // the thread that built the responder: the connection's reactor
  std::atomic<uint64_t> last_thread_;        // the thread that last ran the request's code
  std::atomic<uint32_t> handoffs_{0};
  std::mutex extras_mutex_; // add_header/on_sent may run on another thread than send
  std::vector<std::pair<std::string, std::string>> extra_headers_;
  std::vector<std::function<void()>> on_sent_;
  stage_marks stages_; // guarded by extras_mutex_
  std::function<void(response)> deliver_; // set: an internal request (no connection, no server)
  std::shared_ptr<stream_consumer> consumer_; // an internal request's stream, if it may have one
  std::shared_ptr<tracing::span_queue> internal_spans_; // an internal request's span export (export_spans)
};

/// Owns the listener and turns its requests into handler calls.
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
  std::unique_ptr<http_listener> listener_;
};

/// Connection limits from the configuration (http.*).
connection_limits connection_limits_from(const config::settings& settings);

} // namespace troupe::http
