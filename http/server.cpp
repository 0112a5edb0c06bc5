#include "http/server.hpp"

#include "http/error_mapping.hpp"
#include "http/revalidation.hpp"

#include "config/log.hpp"

#include <pistache/endpoint.h>
#include <pistache/http_headers.h>
#include <pistache/peer.h>
#include <pistache/transport.h>

#include <random>
#include <stdexcept>
#include <thread>

namespace troupe::http {
/// Tag for the ResponseStream specialisation below: enqueue what is buffered, report whether the peer is there.
struct stream_enqueue {
  bool last_chunk; // append the terminating zero-length chunk first
  bool* delivered;
};
} // namespace troupe::http

namespace Pistache::Http {
// ResponseStream::flush() also drains the transport's write queue from the calling thread (Transport::flush reads
// the reactor's peer table unlocked), which races with the reactor when called from an actor thread. Troupe's
// streams are written from actor threads, so they only enqueue the buffered bytes — exactly what
// ResponseWriter::send does from any thread — and the reactor writes them. operator<< is a friend template of
// ResponseStream; this specialisation for a Troupe tag type reaches the stream's buffer and transport.
template <>
ResponseStream& operator<<(ResponseStream& stream, const troupe::http::stream_enqueue& tag) {
  if (tag.last_chunk) {
    std::ostream os(&stream.buf_);
    os << "0" << crlf << crlf;
  }
  auto peer = stream.peer_.lock();
  if (!peer) {
    *tag.delivered = false;
    stream.buf_.clear();
    return stream;
  }
  stream.transport_->asyncWrite(peer->fd(), stream.buf_.buffer());
  stream.buf_.clear();
  *tag.delivered = true;
  return stream;
}
} // namespace Pistache::Http

namespace troupe::http {

namespace P = Pistache;

namespace {

// Room for the request line and headers on top of the largest body: Pistache's maxRequestSize covers all
// three together (LIBRARY-NOTES.md).
constexpr size_t header_allowance = 64 * 1024;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

const char* method_name(P::Http::Method m) {
  switch (m) {
  case P::Http::Method::Get:
    return "GET";
  case P::Http::Method::Post:
    return "POST";
  case P::Http::Method::Put:
    return "PUT";
  case P::Http::Method::Delete:
    return "DELETE";
  case P::Http::Method::Patch:
    return "PATCH";
  case P::Http::Method::Head:
    return "HEAD";
  case P::Http::Method::Options:
    return "OPTIONS";
  default:
    return "OTHER";
  }
}

/// Whether the connection may stay open after this request (HTTP/1.1 unless "close"; 1.0 only if asked).
bool wants_keep_alive(const P::Http::Request& req) {
  auto connection = req.headers().tryGet<P::Http::Header::Connection>();
  if (req.version() == P::Http::Version::Http11)
    return !connection || connection->control() != P::Http::ConnectionControl::Close;
  return connection && connection->control() == P::Http::ConnectionControl::KeepAlive;
}

/// A response header with a literal value. Pistache 0.0.5 writes only typed headers of a response (addRaw'd ones
/// are dropped), so custom headers need a Header subclass.
class literal_header : public P::Http::Header::Header {
public:
  literal_header(std::string name, std::string value) : name_(std::move(name)), value_(std::move(value)) {}
  const char* name() const override { return name_.c_str(); }
  void parse(const std::string& data) override { value_ = data; }
  void write(std::ostream& os) const override { os << value_; }
#ifdef SAFE_HEADER_CAST
  uint64_t hash() const override {
    return std::hash<std::string>{}(name_);
  }
#endif

private:
  std::string name_;
  std::string value_;
};

void set_header(P::Http::Header::Collection& headers, std::string name, std::string value) {
  headers.add(std::make_shared<literal_header>(std::move(name), std::move(value)));
}

/// Headers every response (or every JSON response) carries, allocated once and shared.
struct constant_headers {
  std::shared_ptr<literal_header> nosniff{std::make_shared<literal_header>("X-Content-Type-Options", "nosniff")};
  std::shared_ptr<literal_header> referrer{std::make_shared<literal_header>("Referrer-Policy", "no-referrer")};
  std::shared_ptr<literal_header> csp{
    std::make_shared<literal_header>("Content-Security-Policy", "default-src 'none'")};
  std::shared_ptr<literal_header> json{std::make_shared<literal_header>("Content-Type", "application/json")};
};

const constant_headers& shared_headers() {
  static const constant_headers instance;
  return instance;
}

std::string status_text(int status) {
  return std::to_string(status);
}

/// Copies what handlers need out of Pistache's request.
request copy_request(const P::Http::Request& req, server_state& state) {
  request result;
  result.started = std::chrono::steady_clock::now();
  result.method = method_name(req.method());
  result.path = req.resource();
  for (const auto& raw : req.headers().rawList())
    result.headers.emplace_back(raw.second.name(), raw.second.value());
  auto client_id = result.header("X-Request-Id");
  result.id = client_id && is_sane_request_id(*client_id) ? *client_id : state.next_request_id();
  for (auto it = req.query().parameters_begin(); it != req.query().parameters_end(); ++it)
    result.query.emplace_back(url_decode(it->first), url_decode(it->second));  // Pistache leaves them encoded
  result.remote_address = req.address().host();
  return result;
}

class handler : public P::Http::Handler {
public:
  HTTP_PROTOTYPE(handler)

  explicit handler(std::shared_ptr<server_state> state) : state_(std::move(state)) {}

  void onRequest(const P::Http::Request& pistache_req, P::Http::ResponseWriter writer) override {
    // The request has arrived whole. Pistache's reactor checks every connection twice a second (endpoint.cc,
    // checkIdlePeers): one with a request "in flight" whose parser was reset (at dispatch) more than
    // http.header_timeout_ms ago gets 408 and is closed. So any answer slower than 5 s (an upstream call, a stream)
    // was cut off with a 408. Marked idle, the connection is held to http.keepalive_timeout_ms since dispatch
    // instead, which thus bounds the longest response; how long an actor may take to answer is ours to enforce
    // (http.request_timeout_ms, the upstream timeouts). Runs on the reactor thread, as that check does.
    if (auto peer = writer.getPeer())
      peer->setIdle(true);
    state_->request_started();
    auto req = copy_request(pistache_req, *state_);
    bool keep_alive = wants_keep_alive(pistache_req) && !state_->draining();
    auto match = find_route(req);
    req.route = match.route;
    req.params = std::move(match.params);
    auto body_limit = match.options.max_body_bytes > 0 ? match.options.max_body_bytes : state_->max_body_bytes();
    bool too_large = pistache_req.body().size() > body_limit;
    // Only the body of a request that will be handled is taken. It is moved, not copied: Pistache's parser owns
    // the (non-const) request it hands us as const, and resets it as soon as onRequest returns (http.cc,
    // Handler::onInput), so a body of up to uploads.max_chunk_bytes costs one buffer less.
    if (match.kind == router::match::found && !too_large && !state_->draining())
      req.body = std::move(const_cast<std::string&>(pistache_req.body()));
    auto r = std::make_shared<responder>(std::move(writer), std::move(req), state_, keep_alive);
    if (state_->draining()) {
      r->send(error_response(service_error::shutting_down, "", r->req().id));
    } else if (too_large) {
      r->send(error_response(service_error::payload_too_large,
                             "The request body is larger than the limit of " + std::to_string(body_limit)
                               + " bytes" + (match.options.max_body_bytes > 0 ? " for this route." : "."),
                             r->req().id));
    } else if (match.kind == router::match::not_found) {
      r->send(error_response(service_error::not_found, "No route for " + r->req().path + ".", r->req().id));
    } else if (match.kind == router::match::method_not_allowed) {
      std::string allow;
      for (const auto& m : match.allowed)
        allow += (allow.empty() ? "" : ", ") + m;
      auto res =
        error_response(service_error::method_not_allowed,
                       "Method " + r->req().method + " is not allowed here; allowed: " + allow + ".", r->req().id);
      res.header("Allow", allow);
      r->send(std::move(res));
    } else {
      // Handlers turn requests into messages; anything they throw is a bug, answered as 500.
      try {
        (*match.handler)(r);
      } catch (const std::exception& e) {
        log::error("route handler threw", log::fields{}.add("request_id", r->req().id).add("error", e.what()));
        r->send(error_response(service_error::internal, "", r->req().id));
      }
    }
  }

  void onTimeout(const P::Http::Request& pistache_req, P::Http::ResponseWriter writer) override {
    state_->request_started();
    auto req = copy_request(pistache_req, *state_);
    auto r = std::make_shared<responder>(std::move(writer), std::move(req), state_, false);
    r->send(error_response(service_error::request_timeout, "The request headers or body did not arrive in time.",
                           r->req().id));
  }

private:
  /// The route of the request; a POST with X-HTTP-Method-Override takes the overriding method's route when that
  /// route allows it (req.method then becomes that method).
  router::match find_route(request& req) const {
    if (req.method == "POST")
      if (auto override_method = req.header("X-HTTP-Method-Override")) {
        auto alt = state_->routes().find(*override_method, req.path);
        if (alt.kind == router::match::found && alt.options.method_override) {
          req.method = *override_method;
          return alt;
        }
      }
    return state_->routes().find(req.method, req.path);
  }

  std::shared_ptr<server_state> state_;
};

} // namespace

// --- server_state ---

server_state::server_state(const config::settings& settings, std::shared_ptr<router> routes,
                           std::shared_ptr<metrics_registry> metrics)
  : routes_(std::move(routes)), metrics_(std::move(metrics)),
    requests_total_(metrics_->counter("troupe_http_requests_total", "HTTP requests answered, by route and status.",
                                      {"route", "method", "status"})),
    request_seconds_(metrics_->histogram("troupe_http_request_duration_seconds",
                                         "Time from request parsed to response queued, by route and status.",
                                         {"route", "status"}, latency_buckets_seconds())),
    max_body_bytes_(static_cast<size_t>(settings.http.max_body_bytes)),
    access_log_sample_(settings.log.request_sample) {
  std::random_device rd;
  char prefix[16];
  std::snprintf(prefix, sizeof(prefix), "%08x", rd());
  id_prefix_ = prefix;
}

std::string server_state::next_request_id() {
  // "<8 hex digits of this process>-<12 hex digits of a counter>"
  static constexpr char hex[] = "0123456789abcdef";
  auto n = id_counter_.fetch_add(1, std::memory_order_relaxed);
  std::string id = id_prefix_;
  id += '-';
  char digits[12];
  for (int i = 11; i >= 0; --i, n >>= 4)
    digits[i] = hex[n & 0xF];
  id.append(digits, sizeof(digits));
  return id;
}

void server_state::request_started() {
  in_flight_.fetch_add(1, std::memory_order_acq_rel);
}

void server_state::request_finished(const request& req, int status) {
  auto status_label = status_text(status);
  auto elapsed = seconds_since(req.started);
  requests_total_.inc({req.route, req.method, status_label});
  request_seconds_.observe({req.route, status_label}, elapsed);
  if (access_log_sample_ > 0) {
    thread_local std::minstd_rand random{std::random_device{}()};
    if (access_log_sample_ >= 1 || std::uniform_real_distribution<double>{0, 1}(random) < access_log_sample_)
      log::access("request", log::fields{}
                               .add("request_id", req.id)
                               .add("method", req.method)
                               .add("route", req.route)
                               .add("status", status)
                               .add("latency_ms", elapsed * 1000));
  }
}

void server_state::response_written() {
  if (in_flight_.fetch_sub(1, std::memory_order_acq_rel) == 1 && draining()) {
    std::lock_guard<std::mutex> guard{idle_mutex_};
    idle_.notify_all();
  }
}

void server_state::begin_drain() {
  draining_.store(true, std::memory_order_release);
}

bool server_state::wait_idle(std::chrono::milliseconds grace) {
  std::unique_lock<std::mutex> guard{idle_mutex_};
  return idle_.wait_for(guard, grace, [this] { return in_flight() <= 0; });
}

// --- responder ---

responder::responder(P::Http::ResponseWriter writer, request req, std::shared_ptr<server_state> server, bool keep_alive)
  : writer_(std::move(writer)), req_(std::move(req)), server_(std::move(server)), keep_alive_(keep_alive) {}

responder::~responder() {
  if (!answered_.load())
    send(error_response(service_error::internal, "The request was dropped without an answer.", req_.id));
}

void responder::send(response res) {
  bool expected = false;
  if (!answered_.compare_exchange_strong(expected, true))
    return;
  // ETag on cacheable 200s; 304 with no body when If-None-Match matches (http/revalidation.hpp).
  apply_revalidation(req_, res);
  auto hooks = prepare_headers(res);
  if (req_.method == "HEAD")
    res.body.clear();
  server_->request_finished(req_, res.status);
  // Counted out once handed to Pistache: its promise may never settle when the client has gone away, and a count
  // that never returns to zero would hold every drain for the whole grace time. server::stop lets the reactors
  // flush what is queued before it closes connections.
  // ResponseWriter::send checks that the peer has not expired, then dereferences peer_.lock(): a client that goes
  // away in between (the reactor drops the peer on its own thread) would make it dereference null. Holding the
  // peer for the duration of the send closes that window; to a client already gone nothing is sent.
  if (auto peer = writer_.getPeer())
    writer_.send(static_cast<P::Http::Code>(res.status), res.body);
  server_->response_written();
  for (auto& hook : hooks)
    hook();
}

std::vector<std::function<void()>> responder::prepare_headers(response& res) {
  auto& headers = writer_.headers();
  headers.remove<P::Http::Header::Connection>();
  bool keep_alive = keep_alive_ && !server_->draining();
  headers.add<P::Http::Header::Connection>(keep_alive ? P::Http::ConnectionControl::KeepAlive
                                                      : P::Http::ConnectionControl::Close);
  const auto& constant = shared_headers();
  set_header(headers, "X-Request-Id", req_.id);
  headers.add(constant.nosniff);
  headers.add(constant.referrer);
  if (res.content_type.rfind("application/json", 0) == 0)
    headers.add(constant.csp);
  if (res.content_type == "application/json")
    headers.add(constant.json);
  else if (!res.content_type.empty())
    set_header(headers, "Content-Type", std::move(res.content_type));
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard<std::mutex> guard{extras_mutex_};
    for (auto& [name, value] : extra_headers_)
      set_header(headers, std::move(name), std::move(value));
    hooks.swap(on_sent_);
  }
  for (auto& [name, value] : res.headers)
    set_header(headers, std::move(name), std::move(value));
  return hooks;
}

std::shared_ptr<response_stream> responder::stream(response head) {
  bool expected = false;
  if (!answered_.compare_exchange_strong(expected, true))
    return nullptr;
  auto hooks = prepare_headers(head);
  server_->request_finished(req_, head.status);
  auto out = std::shared_ptr<response_stream>(
    new response_stream(writer_.stream(static_cast<P::Http::Code>(head.status)), server_, std::move(hooks)));
  return out;
}

// --- response_stream ---

response_stream::response_stream(P::Http::ResponseStream stream, std::shared_ptr<server_state> server,
                                 std::vector<std::function<void()>> on_end)
  : stream_(std::make_unique<P::Http::ResponseStream>(std::move(stream))), server_(std::move(server)),
    on_end_(std::move(on_end)) {}

response_stream::~response_stream() {
  end();
}

bool response_stream::enqueue(bool last_chunk) {
  bool delivered = false;
  *stream_ << stream_enqueue{last_chunk, &delivered};
  return delivered;
}

bool response_stream::write(std::string_view data) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (ended_ || gone_)
    return false;
  if (data.empty())
    return true;
  stream_->write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!enqueue(false))
    gone_ = true;
  return !gone_;
}

void response_stream::end() {
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (ended_)
      return;
    ended_ = true;
    // The terminating chunk; the connection then serves its next request (keep-alive).
    if (!gone_)
      enqueue(true);
    hooks.swap(on_end_);
  }
  server_->response_written();
  for (auto& hook : hooks)
    hook();
}

void responder::add_header(std::string name, std::string value) {
  std::lock_guard<std::mutex> guard{extras_mutex_};
  extra_headers_.emplace_back(std::move(name), std::move(value));
}

void responder::on_sent(std::function<void()> fn) {
  std::unique_lock<std::mutex> guard{extras_mutex_};
  if (answered_.load()) {
    guard.unlock();
    fn(); // already sent: run at once
    return;
  }
  on_sent_.push_back(std::move(fn));
}

void responder::fail(const caf::error& err) {
  send(error_response(err, req_.id));
}

// --- server ---

server::server(const config::settings& settings, std::shared_ptr<server_state> state)
  : settings_(settings), state_(std::move(state)) {}

server::~server() {
  stop();
}

uint16_t server::start() {
  auto threads = settings_.http.threads > 0 ? static_cast<int>(settings_.http.threads)
                                            : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  P::Address address{settings_.http.address, P::Port{static_cast<uint16_t>(settings_.http.port)}};
  endpoint_ = std::make_unique<P::Http::Endpoint>(address);
  auto opts = P::Http::Endpoint::options()
                .threads(threads)
                .flags(P::Tcp::Options::ReuseAddr)
                .maxRequestSize(state_->largest_body_bytes() + header_allowance)
                .headerTimeout(std::chrono::milliseconds{settings_.http.header_timeout_ms})
                .bodyTimeout(std::chrono::milliseconds{settings_.http.body_timeout_ms})
                .keepaliveTimeout(std::chrono::milliseconds{settings_.http.keepalive_timeout_ms});
  endpoint_->init(opts);
  endpoint_->setHandler(P::Http::make_handler<handler>(state_));
  endpoint_->serveThreaded();
  return static_cast<uint16_t>(endpoint_->getPort());
}

void server::stop() {
  if (endpoint_) {
    // Responses handed over just before the drain ended are queued in the reactors: give them time to leave.
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
    endpoint_->shutdown();
    endpoint_.reset();
  }
}

} // namespace troupe::http
