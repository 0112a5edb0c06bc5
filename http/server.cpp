#include "http/server.hpp"
#include "ops/span_queue.hpp"

#include "http/compression.hpp"
#include "http/header_text.hpp"

#include "http/error_mapping.hpp"
#include "http/revalidation.hpp"

#include "config/log.hpp"

#include <pthread.h>

#include <cstdio>
#include <ctime>
#include <random>
#include <stdexcept>
#include <thread>

namespace troupe::http {

namespace {

/// A number naming the calling thread (its pthread_t), to compare cheaply.
uint64_t this_thread_token() {
  return static_cast<uint64_t>(::pthread_self());
}

/// Bodies of requests whose method carries none by nature (GET, HEAD, DELETE, OPTIONS): what their routes take
/// unless they set a limit of their own.
constexpr uint64_t small_body_limit = 64 * 1024;

bool bodyless_method(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "DELETE" || method == "OPTIONS";
}

/// The Date header's value, formatted once a second per thread.
const char* http_date() {
  thread_local std::time_t formatted_second = 0;
  thread_local char text[40];
  auto now = std::time(nullptr);
  if (now != formatted_second) {
    std::tm utc{};
    ::gmtime_r(&now, &utc);
    std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &utc);
    formatted_second = now;
  }
  return text;
}

/// Appends "Name: value\r\n"; CR and LF in either become spaces, so no value can start a header or a body.
void append_header(std::string& out, std::string_view name, std::string_view value) {
  auto append_clean = [&out](std::string_view text) {
    for (char c : text)
      out += (c == '\r' || c == '\n') ? ' ' : c;
  };
  append_clean(name);
  out += ": ";
  append_clean(value);
  out += "\r\n";
}

bool status_has_body(int status) {
  return status >= 200 && status != 204 && status != 304;
}

void append_status_line(std::string& out, int status) {
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason_phrase(status);
  out += "\r\n";
}

/// The service code of a status the framing layer refuses with.
service_error code_for_status(int status) {
  switch (status) {
  case 401:
    return service_error::unauthenticated;
  case 403:
    return service_error::forbidden;
  case 408:
    return service_error::request_timeout;
  case 429:
    return service_error::rate_limited;
  case 413:
    return service_error::payload_too_large;
  case 414:
    return service_error::uri_too_long;
  case 417:
    return service_error::expectation_failed;
  case 431:
    return service_error::headers_too_large;
  case 501:
    return service_error::not_implemented;
  case 503:
    return service_error::overloaded;
  case 505:
    return service_error::version_not_supported;
  default:
    return service_error::invalid_input;
  }
}

/// Splits a request target into path and query: origin-form "/a/b?x=1", absolute-form "http://host/a/b?x=1"
/// (proxies), asterisk-form "*" (OPTIONS).
void split_target(std::string_view target, std::string& path, std::string_view& query) {
  auto scheme = target.find("://");
  if (!target.empty() && target.front() != '/' && scheme != std::string_view::npos) {
    auto slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view{"/"} : target.substr(slash);
  }
  auto fragment = target.find('#');
  if (fragment != std::string_view::npos)
    target = target.substr(0, fragment);
  auto question = target.find('?');
  path.assign(target.substr(0, question));
  query = question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);
}

/// Copies what handlers need out of the parsed head (the parser's buffers are reused for the next request).
request make_request(request_head& head, const connection& conn, server_state& state) {
  request result;
  result.started = std::chrono::steady_clock::now();
  result.method = std::move(head.method);
  std::string_view query;
  split_target(head.target, result.path, query);
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      if (eq == std::string_view::npos)
        result.query.emplace_back(url_decode(pair), std::string{});
      else
        result.query.emplace_back(url_decode(pair.substr(0, eq)), url_decode(pair.substr(eq + 1)));
    }
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
  }
  result.headers = std::move(head.headers);
  auto client_id = result.header("X-Request-Id");
  result.id = client_id && is_sane_request_id(*client_id) ? *client_id : state.next_request_id();
  result.remote_address = conn.remote_address();
  result.started_unix_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  // Trace Context: a repeated traceparent is invalid (a new trace starts); repeated tracestate headers are one list.
  std::optional<std::string> traceparent, tracestate;
  int traceparents = 0;
  for (const auto& [name, value] : result.headers) {
    if (iequals(name, "traceparent")) {
      ++traceparents;
      traceparent = value;
    } else if (iequals(name, "tracestate")) {
      tracestate = tracestate ? *tracestate + "," + value : value;
    }
  }
  if (traceparents != 1)
    traceparent.reset();
  result.trace = tracing::context_for(traceparent, tracestate, state.sample_ratio());
  return result;
}

/// The route of a request; a POST with X-HTTP-Method-Override takes the overriding method's route when that route
/// allows it (the method then becomes that one).
router::match find_route(const router& routes, std::string& method, const std::string& path,
                         const request_head& head) {
  if (method == "POST")
    if (const auto* override_method = head.header("X-HTTP-Method-Override")) {
      auto alt = routes.find(*override_method, path);
      if (alt.kind == router::match::found && alt.options.method_override) {
        method = *override_method;
        return alt;
      }
    }
  return routes.find(method, path);
}

/// Routes the requests of every connection: the request_sink of the listener.
class server_sink : public request_sink {
public:
  server_sink(std::shared_ptr<server_state> state, std::shared_ptr<metrics_registry> metrics)
    : state_(std::move(state)),
      refused_connections_(metrics->counter("troupe_http_connections_refused_total",
                                            "Connections closed at once because http.max_connections were open.",
                                            {})) {}

  body_decision decide(connection& c, const request_head& head) override {
    body_decision decision;
    if (state_->draining()) {
      decision.refuse = framing_error{503, "The server is shutting down; retry on another node."};
      return decision;
    }
    std::string method = head.method;
    std::string path;
    std::string_view query;
    split_target(head.target, path, query);
    c.match = find_route(state_->routes(), method, path, head);
    c.effective_method = method;
    if (c.match.kind == router::match::found && c.match.options.max_body_bytes > 0)
      decision.max_body_bytes = c.match.options.max_body_bytes;
    else if (c.match.kind == router::match::found && bodyless_method(method))
      decision.max_body_bytes = small_body_limit;
    else
      decision.max_body_bytes = state_->max_body_bytes();
    if (head.has_body() && c.match.kind == router::match::found && c.match.options.before_body) {
      if (auto refusal = c.match.options.before_body(head, c.remote_address())) {
        decision.refuse = std::move(refusal);
        return decision;
      }
    }
    if (head.has_body()) {
      // Memory for bodies is bounded across connections: a chunked body reserves its whole limit up front.
      auto bytes = static_cast<int64_t>(head.content_length.value_or(decision.max_body_bytes));
      if (head.content_length && *head.content_length > decision.max_body_bytes)
        return decision; // refused as too large by the parser, before any byte is read
      if (!state_->reserve_body(bytes)) {
        decision.refuse = framing_error{503, "Too many request bodies are being received; retry shortly."};
        return decision;
      }
      c.reservation = std::make_shared<body_reservation>(state_, bytes);
    }
    return decision;
  }

  void dispatch(const std::shared_ptr<connection>& c, request_head head, std::string body) override {
    state_->request_started();
    // A request asking for another protocol is answered and the connection closed, unless it is switched (101):
    // what the client sends next may not be HTTP.
    bool keep_alive = head.keep_alive && !state_->draining() && !head.header("Upgrade");
    bool http10 = head.version_minor == 0;
    auto req = make_request(head, *c, *state_);
    auto match = std::move(c->match);
    c->match = router::match{};
    if (match.kind == router::match::found)
      req.method = std::move(c->effective_method); // X-HTTP-Method-Override, when decide applied it
    req.route = match.route;
    req.params = std::move(match.params);
    if (match.kind == router::match::found)
      req.body = std::move(body);
    body_reservation reservation;
    if (auto held = std::static_pointer_cast<body_reservation>(std::move(c->reservation)))
      reservation = std::move(*held);
    c->reservation.reset();
    // Admission: over its route's limit a request is refused here, on the connection's thread, before any actor
    // sees it (the connection stays open: the body, if any, has been read).
    admission_ticket ticket;
    bool admitted = true;
    if (match.kind == router::match::found && match.options.admission && state_->admission_control()) {
      admitted = match.options.admission->try_acquire();
      if (admitted)
        ticket = admission_ticket{match.options.admission, req.started};
    }
    auto r = std::make_shared<responder>(c, std::move(req), state_, keep_alive, http10, std::move(reservation),
                                         std::move(ticket));
    c->set_answer_deadline(std::nullopt, nullptr);
    if (match.kind == router::match::found && admitted) {
      // The route's time limit: an answer not started by then is a 504 (a later one is dropped by the responder).
      auto limit = match.options.time_limit.count() > 0 ? match.options.time_limit : c->limits().route_timeout;
      c->set_answer_deadline(std::chrono::steady_clock::now() + limit, [weak = std::weak_ptr<responder>(r), limit] {
        auto late = weak.lock();
        if (!late || late->answered())
          return;
        late->send(error_response(service_error::timeout,
                                  "No answer within this route's time limit of " + std::to_string(limit.count())
                                    + " ms.",
                                  late->req().id));
      });
    }
    if (!admitted) {
      r->send(error_response(service_error::overloaded,
                             "This route is at capacity; retry shortly.", r->req().id));
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
      log::trace_scope trace{r->req().trace.trace_hex()};
      try {
        (*match.handler)(r);
      } catch (const std::exception& e) {
        log::error("route handler threw", log::fields{}.add("request_id", r->req().id).add("error", e.what()));
        r->send(error_response(service_error::internal, "", r->req().id));
      }
    }
  }

  void refuse(const std::shared_ptr<connection>& c, const request_head* head, const framing_error& err) override {
    state_->request_started();
    request req;
    req.started = std::chrono::steady_clock::now();
    if (head) {
      request_head copy = *head;
      req = make_request(copy, *c, *state_);
    } else {
      req.id = state_->next_request_id();
      req.remote_address = c->remote_address();
      req.trace = tracing::context_for(std::nullopt, std::nullopt, 0); // a trace id for its log lines, not recorded
    }
    req.route = "unmatched";
    c->reservation.reset();
    auto r = std::make_shared<responder>(c, std::move(req), state_, false);
    auto code = code_for_status(err.status);
    if (err.status == 503 && state_->draining())
      code = service_error::shutting_down;
    r->send(error_response(code, err.message, r->req().id));
  }

  std::string over_capacity_response() override {
    refused_connections_.inc({});
    auto id = state_->next_request_id();
    auto res = error_response(service_error::overloaded, "Too many connections are open; retry shortly.", id);
    std::string out;
    append_status_line(out, 503);
    append_header(out, "Date", http_date());
    append_header(out, "Content-Length", std::to_string(res.body.size()));
    append_header(out, "Connection", "close");
    append_header(out, "Content-Type", "application/json");
    append_header(out, "Retry-After", "1");
    append_header(out, "X-Request-Id", id);
    out += state_->node_header();
    append_header(out, "X-Content-Type-Options", "nosniff");
    out += "\r\n";
    out += res.body;
    return out;
  }

private:
  std::shared_ptr<server_state> state_;
  counter_family& refused_connections_;
};

} // namespace

// --- server_state ---

void server_state::set_node_id(const std::string& node_id) {
  if (node_header_storage_)
    return;
  std::string line;
  append_header(line, "X-Troupe-Node", node_id);
  node_header_storage_ = std::make_unique<const std::string>(std::move(line));
  node_header_.store(node_header_storage_.get(), std::memory_order_release);
}

server_state::server_state(const config::settings& settings, std::shared_ptr<router> routes,
                           std::shared_ptr<metrics_registry> metrics)
  : routes_(std::move(routes)), metrics_(std::move(metrics)),
    requests_total_(metrics_->counter("troupe_http_requests_total", "HTTP requests answered, by route and status.",
                                      {"route", "method", "status"})),
    handoffs_total_(metrics_->counter("troupe_http_handoffs_total",
                                      "Thread hand-offs of answered requests, by route (divide by requests).",
                                      {"route"})),
    request_seconds_(metrics_->histogram("troupe_http_request_duration_seconds",
                                         "Time from request parsed to response queued, by route and status.",
                                         {"route", "status"}, latency_buckets_seconds())),
    compressed_bytes_(metrics_->counter("troupe_http_compressed_bytes_total",
                                        "Bytes of response bodies gzip-compressed, before (in) and after (out).",
                                        {"stage"})),
    slow_operations_(slow_operations(*metrics_)), slow_(std::chrono::milliseconds{settings.ops.slow_ms}),
    sample_ratio_(settings.tracing.sample_ratio),
    max_body_bytes_(static_cast<size_t>(settings.http.max_body_bytes)),
    body_budget_(settings.http.max_body_memory_bytes), admission_control_(settings.http.admission_control),
    gzip_(settings.http.gzip), gzip_min_bytes_(static_cast<size_t>(settings.http.gzip_min_bytes)),
    gzip_max_bytes_(static_cast<size_t>(settings.http.gzip_max_bytes)),
    gzip_level_(static_cast<int>(settings.http.gzip_level)), access_log_sample_(settings.log.request_sample) {
  // A weak reference: the routes hold handlers that hold the metrics registry (the gateway's counters), so a strong
  // one would keep the registry, the routes and everything they hold alive for ever (LeakSanitizer's finding).
  metrics_->add_collector([weak_routes = std::weak_ptr<router>(routes_)](prometheus_writer& out) {
    auto routes = weak_routes.lock();
    if (!routes)
      return;
    out.family("troupe_http_admission_limit", "gauge",
               "Requests of a route admitted at once (adapted to its latency; beyond it 503).");
    routes->for_each_admission([&out](const std::string& route, const std::string& method, const admission_limit& l) {
      out.sample("troupe_http_admission_limit", {{"route", route}, {"method", method}}, static_cast<double>(l.limit()));
    });
    out.family("troupe_http_admission_refused_total", "counter", "Requests refused by admission control.");
    routes->for_each_admission([&out](const std::string& route, const std::string& method, const admission_limit& l) {
      out.sample("troupe_http_admission_refused_total", {{"route", route}, {"method", method}},
                 static_cast<double>(l.refused()));
    });
  });
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

namespace {

/// The spans of a finished request: its own (SERVER, the caller's span as parent) and one per stage, each from the
/// previous stage's end (or the request's start) to its own.
std::vector<tracing::span> request_spans(const request& req, int status, std::chrono::steady_clock::time_point finished,
                                         const stage_marks* stages,
                                         tracing::span_kind kind = tracing::span_kind::server) {
  auto at_ns = [&req](std::chrono::steady_clock::time_point t) {
    return req.started_unix_ns + std::chrono::duration_cast<std::chrono::nanoseconds>(t - req.started).count();
  };
  std::vector<tracing::span> spans;
  spans.reserve(1 + (stages ? stages->size() : 0));
  tracing::span root;
  root.trace = req.trace.trace;
  root.id = req.trace.span;
  root.parent = req.trace.parent;
  root.name = req.method + " " + req.route;
  root.kind = kind;
  root.start_unix_ns = req.started_unix_ns;
  root.end_unix_ns = at_ns(finished);
  root.attributes = {{"http.request.method", req.method}, {"http.route", req.route},
                     {"url.path", req.path.substr(0, 1024)}, {"troupe.request_id", req.id}};
  root.int_attributes = {{"http.response.status_code", status}};
  root.error = status >= 500;
  root.tracestate = req.trace.tracestate;
  spans.push_back(std::move(root));
  auto previous = req.started;
  if (stages)
    for (const auto& stage : *stages) {
      tracing::span child;
      child.trace = req.trace.trace;
      child.id = tracing::is_zero(stage.span.data(), stage.span.size()) ? tracing::new_span_id() : stage.span;
      child.parent = req.trace.span;
      child.name = stage.name;
      // A call out of the process: to an upstream, or to another node of the cluster (its span the other's parent).
      auto out = std::string_view{stage.name} == "upstream" || std::string_view{stage.name} == "cluster";
      child.kind = out ? tracing::span_kind::client : tracing::span_kind::internal;
      // From its own start when the stage knows it (an upstream attempt), else from the previous stage's end.
      child.start_unix_ns = at_ns(stage.began != std::chrono::steady_clock::time_point{} ? stage.began : previous);
      child.end_unix_ns = at_ns(stage.at);
      spans.push_back(std::move(child));
      previous = stage.at;
    }
  return spans;
}

} // namespace

void server_state::request_finished(const request& req, int status, uint32_t handoffs, const stage_marks* stages) {
  auto status_label = std::to_string(status);
  auto finished = std::chrono::steady_clock::now();
  auto elapsed = std::chrono::duration<double>(finished - req.started).count();
  bool slow = finished - req.started >= slow_;
  if (slow)
    slow_operations_.inc({"request"});
  // Logged at most 10 a second (an anonymous flood of slow requests must not become a flood of lines).
  if (slow && slow_lines_.take()) {
    // "auth=3 rate_limit=1 upstream=1520 respond=2": each stage's time since the previous mark, in ms.
    std::string timeline;
    auto previous = req.started;
    auto add = [&](const char* name, std::chrono::steady_clock::time_point at) {
      if (!timeline.empty())
        timeline += ' ';
      timeline += name;
      timeline += '=';
      timeline += std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(at - previous).count());
      previous = at;
    };
    if (stages)
      for (const auto& stage : *stages)
        add(stage.name, stage.at);
    add("respond", finished);
    log::warn("slow operation", log::fields{}
                                  .add("kind", "request")
                                  .add("request_id", req.id)
                                  .add("method", req.method)
                                  .add("route", req.route)
                                  .add("status", status)
                                  .add("duration_ms", static_cast<int64_t>(elapsed * 1000))
                                  .add("stages_ms", timeline)
                                  .add("trace_id", req.trace.trace_hex())
                                  .add("not_logged_before", slow_lines_.suppressed()));
  }
  if (spans_ && req.trace.sampled)
    spans_->push(request_spans(req, status, finished, stages));
  requests_total_.inc({req.route, req.method, status_label});
  if (handoffs > 0)
    handoffs_total_.inc({req.route}, handoffs);
  request_seconds_.observe({req.route, status_label}, elapsed);
  if (access_log_sample_ > 0) {
    thread_local std::minstd_rand random{std::random_device{}()};
    if (access_log_sample_ >= 1 || std::uniform_real_distribution<double>{0, 1}(random) < access_log_sample_)
      log::access("request", log::fields{}
                               .add("request_id", req.id)
                               .add("method", req.method)
                               .add("route", req.route)
                               .add("status", status)
                               .add("latency_ms", elapsed * 1000)
                               .add("trace_id", req.trace.trace_hex()));
  }
}

void server_state::response_written() {
  if (in_flight_.fetch_sub(1, std::memory_order_acq_rel) == 1 && draining()) {
    std::lock_guard<std::mutex> guard{idle_mutex_};
    idle_.notify_all();
  }
}

bool server_state::reserve_body(int64_t bytes) {
  auto held = body_bytes_.fetch_add(bytes, std::memory_order_acq_rel) + bytes;
  // One body alone may always be received (it is within its route's limit), so no limit locks a route out.
  if (held > body_budget_ && held != bytes) {
    body_bytes_.fetch_sub(bytes, std::memory_order_acq_rel);
    return false;
  }
  return true;
}

void server_state::release_body(int64_t bytes) {
  body_bytes_.fetch_sub(bytes, std::memory_order_acq_rel);
}

void server_state::begin_drain() {
  draining_.store(true, std::memory_order_release);
}

bool server_state::wait_idle(std::chrono::milliseconds grace) {
  std::unique_lock<std::mutex> guard{idle_mutex_};
  return idle_.wait_for(guard, grace, [this] { return in_flight() <= 0; });
}

// --- responder ---

responder::responder(std::shared_ptr<connection> conn, request req, std::shared_ptr<server_state> server,
                     bool keep_alive, bool http10, body_reservation body, admission_ticket ticket)
  : conn_(std::move(conn)), req_(std::move(req)), server_(std::move(server)), keep_alive_(keep_alive),
    http10_(http10), body_(std::move(body)), ticket_(std::move(ticket)), reactor_thread_(this_thread_token()),
    last_thread_(reactor_thread_) {}

responder::responder(request req, std::function<void(response)> deliver)
  : req_(std::move(req)), keep_alive_(false), http10_(false), reactor_thread_(this_thread_token()),
    last_thread_(reactor_thread_), deliver_(std::move(deliver)) {
  // A request the server makes of itself joins the trace its maker gave it, or starts one (recorded only when its
  // maker asks, export_spans, and that trace is sampled).
  if (tracing::is_zero(req_.trace.trace.data(), req_.trace.trace.size()))
    req_.trace = tracing::context_for(std::nullopt, std::nullopt, 0);
}

responder::responder(request req, std::function<void(response)> deliver, std::shared_ptr<stream_consumer> consumer)
  : responder(std::move(req), std::move(deliver)) {
  consumer_ = std::move(consumer);
}

void responder::arrived() {
  auto me = this_thread_token();
  if (last_thread_.exchange(me, std::memory_order_relaxed) != me)
    handoffs_.fetch_add(1, std::memory_order_relaxed);
}

uint32_t responder::handoffs_to_answer() {
  arrived();
  // The bytes go back to the reactor through its inbox unless this is the reactor.
  return handoffs() + (this_thread_token() != reactor_thread_ ? 1 : 0);
}

responder::~responder() {
  if (!answered_.load())
    send(error_response(service_error::internal, "The request was dropped without an answer.", req_.id));
}

bool responder::client_gone() const {
  return conn_ && conn_->gone();
}

void responder::send(response res) {
  bool expected = false;
  if (!answered_.compare_exchange_strong(expected, true))
    return;
  if (deliver_) {
    std::vector<std::function<void()>> hooks;
    {
      std::lock_guard<std::mutex> guard{extras_mutex_};
      res.headers.insert(res.headers.begin(), extra_headers_.begin(), extra_headers_.end());
      hooks.swap(on_sent_);
    }
    record_internal(res.status);
    deliver_(std::move(res));
    for (auto& hook : hooks)
      hook();
    return;
  }
  body_.release();
  ticket_.release();
  // ETag on cacheable 200s; 304 with no body when If-None-Match matches (http/revalidation.hpp); then gzip, decided
  // on the 200 (its 304 carries the same Vary and ETag).
  bool compressible = server_->compressible(res);
  apply_revalidation(req_, res);
  server_->compress(req_, res, compressible);
  bool keep_alive = keep_alive_ && !server_->draining();
  std::string out;
  bool with_body = status_has_body(res.status) && req_.method != "HEAD";
  out.reserve(320 + (with_body ? res.body.size() : 0));
  auto hooks = write_head(out, res, keep_alive, false);
  if (with_body)
    out += res.body;
  stages_settled();
  server_->request_finished(req_, res.status, handoffs_to_answer(), &stages_);
  outbound item;
  item.bytes = std::move(out);
  item.last = true;
  item.close = !keep_alive;
  conn_->send(std::move(item));
  // Counted out once handed to the connection: a client that has gone would otherwise hold a drain for the whole
  // grace time. server::stop lets the reactors flush what is queued before it closes connections.
  server_->response_written();
  for (auto& hook : hooks)
    hook();
}

std::vector<std::function<void()>> responder::write_head(std::string& out, response& res, bool keep_alive,
                                                         bool streamed, bool upgrade) {
  append_status_line(out, res.status);
  append_header(out, "Date", http_date());
  if (upgrade) {
    // 101: no body follows; the connection is the new protocol's from the blank line on.
  } else if (streamed) {
    if (!http10_)
      out += "Transfer-Encoding: chunked\r\n";
  } else if (status_has_body(res.status)) {
    append_header(out, "Content-Length", std::to_string(res.body.size()));
  }
  if (upgrade)
    out += "Connection: Upgrade\r\n";
  else
    out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  append_header(out, "X-Request-Id", req_.id);
  out += server_->node_header();
  out += "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n";
  if (res.content_type.rfind("application/json", 0) == 0)
    out += "Content-Security-Policy: default-src 'none'\r\n";
  if (!res.content_type.empty() && status_has_body(res.status))
    append_header(out, "Content-Type", res.content_type);
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard<std::mutex> guard{extras_mutex_};
    for (const auto& [name, value] : extra_headers_)
      append_header(out, name, value);
    hooks.swap(on_sent_);
  }
  for (const auto& [name, value] : res.headers)
    append_header(out, name, value);
  out += "\r\n";
  return hooks;
}

std::shared_ptr<response_stream> responder::stream(response head) {
  if (deliver_ && consumer_) {
    bool expected = false;
    if (!answered_.compare_exchange_strong(expected, true))
      return nullptr;
    std::vector<std::function<void()>> hooks;
    {
      std::lock_guard<std::mutex> guard{extras_mutex_};
      head.headers.insert(head.headers.begin(), extra_headers_.begin(), extra_headers_.end());
      hooks.swap(on_sent_);
    }
    record_internal(head.status);
    consumer_->start(head);
    return std::shared_ptr<response_stream>(new response_stream(consumer_, std::move(hooks)));
  }
  if (deliver_) {
    send(error_response(service_error::internal, "An internal request cannot be answered with a stream.", req_.id));
    return nullptr;
  }
  bool expected = false;
  if (!answered_.compare_exchange_strong(expected, true))
    return nullptr;
  body_.release();
  ticket_.release(); // a stream's length is its own business, not a sign of queueing
  bool keep_alive = keep_alive_ && !server_->draining() && !http10_; // HTTP/1.0: the close ends the body
  std::string out;
  auto hooks = write_head(out, head, keep_alive, true);
  stages_settled();
  server_->request_finished(req_, head.status, handoffs_to_answer(), &stages_);
  auto stream = std::shared_ptr<response_stream>(
    new response_stream(conn_, server_, !http10_, !keep_alive, std::move(hooks)));
  stream->send(std::move(out), false, false);
  return stream;
}

bool responder::upgrade(response head, std::shared_ptr<upgraded_protocol> protocol) {
  if (deliver_ || !conn_ || server_->draining())
    return false;
  bool expected = false;
  if (!answered_.compare_exchange_strong(expected, true))
    return false;
  body_.release();
  ticket_.release();
  head.status = 101;
  std::string out;
  auto hooks = write_head(out, head, false, false, true);
  stages_settled();
  server_->request_finished(req_, 101, handoffs_to_answer(), &stages_);
  outbound item;
  item.bytes = std::move(out);
  item.last = true;
  item.upgrade = std::move(protocol);
  conn_->send(std::move(item));
  server_->response_written(); // the request is over; the connection now belongs to the protocol
  for (auto& hook : hooks)
    hook();
  return true;
}

void responder::record_internal(int status) {
  if (!internal_spans_ || !req_.trace.sampled)
    return;
  stages_settled();
  internal_spans_->push(request_spans(req_, status, std::chrono::steady_clock::now(), &stages_,
                                      tracing::span_kind::internal));
}

void responder::stages_settled() {
  // answered_ is set: a mark() that holds the lock now is the last one (later ones see answered_ and return).
  std::lock_guard<std::mutex> guard{extras_mutex_};
}

void responder::mark(const char* stage, const tracing::span_id& span, std::chrono::steady_clock::time_point began) {
  std::lock_guard<std::mutex> guard{extras_mutex_};
  if (!answered_.load() && stages_.size() < 32) // answered: request_finished reads them
    stages_.push_back(stage_mark{stage, std::chrono::steady_clock::now(), span, began});
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

bool server_state::compressible(const response& res) const {
  if (!gzip_ || res.status != 200 || res.body.size() < gzip_min_bytes_ || res.body.size() > gzip_max_bytes_
      || !compressible_type(res.content_type))
    return false;
  for (const auto& [name, value] : res.headers)
    if (iequals(name, "Content-Encoding"))
      return false; // already encoded by its handler
  return true;
}

void server_state::compress(const request& req, response& res, bool compressible) {
  if (!compressible)
    return;
  // On the 200 and on a 304 that stands for it alike (RFC 9110 15.4.5: a 304 sends the Vary and ETag the 200 would).
  res.header("Vary", "Accept-Encoding"); // a cache must not hand this answer to a client that asked otherwise
  auto accept = req.header_list("Accept-Encoding");
  if (accept.empty() || !accepts_gzip(accept))
    return;
  // The same ETag for two encodings would claim byte-identical bodies: the one a gzip client gets is weak (as nginx
  // does), on its 304s too; If-None-Match compares weakly, so either revalidates.
  for (auto& [name, value] : res.headers)
    if (iequals(name, "ETag") && value.rfind("W/", 0) != 0)
      value = "W/" + value;
  if (res.status != 200)
    return;
  std::optional<std::string> zipped;
  try {
    zipped = gzip_compress(res.body, gzip_level_);
  } catch (const std::bad_alloc&) {
    // Sent as it is.
  }
  if (!zipped || zipped->size() >= res.body.size())
    return;
  compressed_bytes_.inc({"in"}, res.body.size());
  compressed_bytes_.inc({"out"}, zipped->size());
  res.body = std::move(*zipped);
  res.header("Content-Encoding", "gzip");
}

// --- response_stream ---

response_stream::response_stream(std::shared_ptr<connection> conn, std::shared_ptr<server_state> server,
                                 bool chunked, bool close_after, std::vector<std::function<void()>> on_end)
  : conn_(std::move(conn)), server_(std::move(server)), on_end_(std::move(on_end)), chunked_(chunked),
    close_after_(close_after) {}

response_stream::response_stream(std::shared_ptr<stream_consumer> consumer, std::vector<std::function<void()>> on_end)
  : consumer_(std::move(consumer)), on_end_(std::move(on_end)) {}

response_stream::~response_stream() {
  end();
}

void response_stream::send(std::string bytes, bool last, bool close) {
  outbound item;
  item.bytes = std::move(bytes);
  item.last = last;
  item.close = close;
  item.stall_limit = stall_limit_;
  conn_->send(std::move(item));
}

bool response_stream::write(std::string_view data) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (consumer_) {
    if (ended_ || consumer_->gone())
      return false;
    return data.empty() || consumer_->write(data);
  }
  if (ended_ || conn_->gone())
    return false;
  if (data.empty())
    return true;
  std::string chunk;
  if (chunked_) {
    char size_line[24];
    int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
    chunk.reserve(static_cast<size_t>(n) + data.size() + 2);
    chunk.append(size_line, static_cast<size_t>(n));
    chunk.append(data);
    chunk += "\r\n";
  } else {
    chunk.assign(data);
  }
  send(std::move(chunk), false, false);
  return !conn_->gone();
}

void response_stream::end() {
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (ended_)
      return;
    ended_ = true;
    if (consumer_)
      consumer_->end(false);
    else // the terminating chunk; the connection then serves its next request (keep-alive)
      send(chunked_ ? std::string{"0\r\n\r\n"} : std::string{}, true, close_after_ || !chunked_);
    hooks.swap(on_end_);
  }
  if (server_)
    server_->response_written();
  for (auto& hook : hooks)
    hook();
}

void response_stream::abort() {
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (ended_)
      return;
    ended_ = true;
    if (consumer_)
      consumer_->end(true);
    else
      send(std::string{}, true, true);
    hooks.swap(on_end_);
  }
  if (server_)
    server_->response_written();
  for (auto& hook : hooks)
    hook();
}

bool response_stream::gone() const {
  return consumer_ ? consumer_->gone() : conn_->gone();
}

bool response_stream::draining() const {
  return server_ && server_->draining();
}

int64_t response_stream::backlog() const {
  return consumer_ ? consumer_->backlog() : conn_->queued_bytes();
}

void response_stream::set_stall_limit(std::chrono::milliseconds limit) {
  std::lock_guard<std::mutex> guard{mutex_};
  stall_limit_ = limit;
}

// --- server ---

connection_limits connection_limits_from(const config::settings& settings) {
  connection_limits limits;
  const auto& h = settings.http;
  limits.framing.max_header_bytes = static_cast<size_t>(h.max_header_bytes);
  limits.framing.max_request_line = std::min<size_t>(8 * 1024, limits.framing.max_header_bytes);
  limits.header_timeout = std::chrono::milliseconds{h.header_timeout_ms};
  limits.body_timeout = std::chrono::milliseconds{h.body_timeout_ms};
  limits.idle_timeout = std::chrono::milliseconds{h.keepalive_timeout_ms};
  limits.send_timeout = std::chrono::milliseconds{h.send_timeout_ms};
  limits.route_timeout = std::chrono::milliseconds{h.request_timeout_ms};
  limits.max_connections = h.max_connections;
  return limits;
}

server::server(const config::settings& settings, std::shared_ptr<server_state> state)
  : settings_(settings), state_(std::move(state)) {}

server::~server() {
  stop();
}

uint16_t server::start() {
  auto threads = settings_.http.threads > 0 ? static_cast<size_t>(settings_.http.threads)
                                            : static_cast<size_t>(std::max(1u, std::thread::hardware_concurrency()));
  auto sink = std::make_shared<server_sink>(state_, state_->metrics());
  listener_ = std::make_unique<http_listener>(
    sink, std::make_shared<const connection_limits>(connection_limits_from(settings_)));
  return listener_->start(settings_.http.address, static_cast<uint16_t>(settings_.http.port), threads);
}

void server::stop() {
  if (listener_) {
    // Responses handed over just before the drain ended are queued to the reactors: give them time to leave.
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
    listener_->stop();
    listener_.reset();
  }
}

} // namespace troupe::http
