// The upstream client actor (see upstream_client.hpp): one CURLM handle per detached actor, driven by a `tick`
// message the actor keeps sending itself. Each tick waits in curl_multi_poll (woken early by the doorbell when a
// caller has queued work), runs curl_multi_perform, answers the transfers that ended and enforces the first-byte
// deadlines libcurl does not know about. The state's destructor answers whatever is still in flight with
// transfer_error::aborted, so every request gets exactly one answer however the actor ends.

#include "actors/upstream_client.hpp"
#include "actors/health_checks.hpp"

#include "introspect/messages.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <unordered_map>

namespace troupe::client {

const char* to_string(transfer_error e) {
  switch (e) {
  case transfer_error::none:
    return "none";
  case transfer_error::connect:
    return "connect";
  case transfer_error::connect_timeout:
    return "connect_timeout";
  case transfer_error::first_byte_timeout:
    return "first_byte_timeout";
  case transfer_error::total_timeout:
    return "total_timeout";
  case transfer_error::idle_timeout:
    return "idle_timeout";
  case transfer_error::too_large:
    return "too_large";
  case transfer_error::aborted:
    return "aborted";
  case transfer_error::protocol:
    return "protocol";
  }
  return "unknown";
}

std::optional<std::string> upstream_response::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers)
    if (name == lower_name)
      return value;
  return std::nullopt;
}

void doorbell::ring() {
  std::lock_guard<std::mutex> lock{mutex_};
  if (multi_ != nullptr)
    curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void doorbell::attach(void* multi) {
  std::lock_guard<std::mutex> lock{mutex_};
  multi_ = multi;
}

void doorbell::detach(void* multi) {
  std::lock_guard<std::mutex> lock{mutex_};
  if (multi_ == multi)
    multi_ = nullptr;
}

namespace {

using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// The client's own heartbeat: one poll + perform round.
using tick_atom = caf::atom_constant<caf::atom("curltick")>;

/// Idle easy handles kept for reuse (their buffers; connections live in the multi handle's cache either way).
constexpr size_t max_idle_handles = 64;

/// curl_global_init is not guaranteed thread-safe on every libcurl build, so the first client to start calls it
/// exactly once for the process; curl_global_cleanup is never called (other libraries may still use libcurl).
void ensure_curl_initialized() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

/// One transfer in flight: the request, what has arrived so far and the promise to answer.
struct transfer {
  upstream_request request;
  upstream_response response;
  caf::typed_response_promise<upstream_response> promise;
  curl_slist* header_list = nullptr;
  clock_type::time_point started = clock_type::now();
  clock_type::time_point last_byte = started;           // the end of the headers, then of each body piece
  bool headers_complete = false;                       // the final (non-1xx) header block has ended
  transfer_error stopped_by_us = transfer_error::none; // set when our write callback made libcurl stop
  std::string stop_reason;
  char curl_error[CURL_ERROR_SIZE] = {};

  transfer() = default;
  transfer(const transfer&) = delete;
  transfer& operator=(const transfer&) = delete;
  ~transfer() { curl_slist_free_all(header_list); }

  clock_type::time_point first_byte_deadline() const { return started + request.first_byte_timeout; }
  /// When the transfer must end for want of progress: the first-byte deadline, then (with an idle timeout) the last
  /// byte plus that timeout; max() when nothing applies.
  clock_type::time_point deadline() const {
    if (!headers_complete)
      return first_byte_deadline();
    if (request.idle_timeout.count() > 0)
      return last_byte + request.idle_timeout;
    return clock_type::time_point::max();
  }
};

struct client_state {
  upstream_client_options options;
  CURLM* multi = nullptr;
  std::unordered_map<CURL*, std::unique_ptr<transfer>> transfers;
  std::vector<CURL*> idle_handles;

  client_state() = default;
  client_state(const client_state&) = delete;
  client_state& operator=(const client_state&) = delete;
  ~client_state();

  static inline const char* name = "upstream_client";
};

/// The interface with the client's own tick (a turn of curl_multi_poll between mailbox visits).
using client_self_actor = upstream_client_actor::extend<caf::reacts_to<tick_atom>>;

using client_actor = client_self_actor::stateful_base<client_state>;

// --- callbacks (run on the client's thread, inside curl_multi_perform) ---

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

/// "HTTP/1.1 200 OK" -> 200; 0 when the line is not a status line.
int parse_status_line(std::string_view line) {
  auto space = line.find(' ');
  if (space == std::string_view::npos || line.size() < space + 4)
    return 0;
  int status = 0;
  for (size_t i = space + 1; i < space + 4; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(line[i])))
      return 0;
    status = status * 10 + (line[i] - '0');
  }
  return status;
}

/// Collects the status and headers of the final response; 1xx blocks are dropped, trailers ignored.
size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<transfer*>(user);
  size_t length = size * count;
  if (t->headers_complete)
    return length;
  std::string_view line = trim({data, length});
  auto& response = t->response;
  if (line.empty()) {
    if (response.status >= 200) {
      t->headers_complete = true;
      t->last_byte = clock_type::now();
    }
    else
      response.headers.clear();
    return length;
  }
  if (line.rfind("HTTP/", 0) == 0) {
    response.status = parse_status_line(line);
    response.headers.clear();
    return length;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0)
    return length; // obsolete line folding or junk: not a header we can use
  std::string name{trim(line.substr(0, colon))};
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  response.headers.emplace_back(std::move(name), std::string{trim(line.substr(colon + 1))});
  return length;
}

/// Accumulates or streams the body; returning less than `length` makes libcurl stop with CURLE_WRITE_ERROR.
size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<transfer*>(user);
  size_t length = size * count;
  if (length == 0)
    return 0;
  auto& response = t->response;
  if (response.body_bytes + length > t->request.max_response_bytes) {
    t->stopped_by_us = transfer_error::too_large;
    return 0;
  }
  response.body_bytes += length;
  t->last_byte = clock_type::now();
  if (!t->request.on_data) {
    response.body.append(data, length);
    return length;
  }
  bool more = false;
  try {
    more = t->request.on_data(response.status, response.headers, std::string_view{data, length});
    if (!more)
      t->stop_reason = "the consumer of the streamed upstream response stopped the transfer";
  } catch (const std::exception& e) {
    t->stop_reason = std::string{"the consumer of the streamed upstream response failed: "} + e.what();
  } catch (...) {
    t->stop_reason = "the consumer of the streamed upstream response failed";
  }
  if (more)
    return length;
  t->stopped_by_us = transfer_error::aborted;
  return 0;
}

// --- starting a transfer ---

CURL* take_handle(client_state& st) {
  if (st.idle_handles.empty())
    return curl_easy_init();
  CURL* easy = st.idle_handles.back();
  st.idle_handles.pop_back();
  return easy;
}

void recycle_handle(client_state& st, CURL* easy) {
  if (st.idle_handles.size() < max_idle_handles) {
    curl_easy_reset(easy);
    st.idle_handles.push_back(easy);
  } else {
    curl_easy_cleanup(easy);
  }
}

long at_least_one_ms(milliseconds d) {
  return static_cast<long>(std::max<milliseconds::rep>(1, d.count()));
}

bool has_header(const std::vector<std::string>& lines, std::string_view lower_name) {
  for (const auto& line : lines) {
    if (line.size() <= lower_name.size() || line[lower_name.size()] != ':')
      continue;
    bool same = std::equal(lower_name.begin(), lower_name.end(), line.begin(),
                           [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
    if (same)
      return true;
  }
  return false;
}

/// Sets every option of one transfer; false if libcurl refused one (out of memory, or an option this libcurl
/// lacks).
bool configure(CURL* easy, transfer& t) {
  const auto& req = t.request;
  for (const auto& line : req.headers) {
    auto* next = curl_slist_append(t.header_list, line.c_str());
    if (next == nullptr)
      return false;
    t.header_list = next;
  }
  // Several servers and proxies ignore Expect: 100-continue, which would stall a POST body for a second.
  if (!req.body.empty() && !has_header(req.headers, "expect")) {
    auto* next = curl_slist_append(t.header_list, "Expect:");
    if (next == nullptr)
      return false;
    t.header_list = next;
  }
  bool ok = true;
  auto set = [&](CURLoption option, auto value) { ok = ok && curl_easy_setopt(easy, option, value) == CURLE_OK; };
  set(CURLOPT_URL, req.url.c_str());
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_FOLLOWLOCATION, 0L);
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_TCP_NODELAY, 1L);
  set(CURLOPT_TCP_KEEPALIVE, 1L);
  set(CURLOPT_CONNECTTIMEOUT_MS, at_least_one_ms(req.connect_timeout));
  if (req.total_timeout.count() > 0)
    set(CURLOPT_TIMEOUT_MS, at_least_one_ms(req.total_timeout));
  set(CURLOPT_HTTPHEADER, t.header_list);
  set(CURLOPT_ERRORBUFFER, t.curl_error);
  set(CURLOPT_HEADERFUNCTION, on_header);
  set(CURLOPT_HEADERDATA, &t);
  set(CURLOPT_WRITEFUNCTION, on_body);
  set(CURLOPT_WRITEDATA, &t);
  if (req.body.empty()) {
    set(CURLOPT_HTTPGET, 1L);
  } else {
    // The transfer owns the request (and so the body) until it ends: no copy needed.
    set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    set(CURLOPT_POSTFIELDS, req.body.data());
  }
  return ok;
}

void answer(transfer& t, transfer_error error, std::string text) {
  t.response.error = error;
  t.response.error_text = std::move(text);
  t.response.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t.started);
  t.promise.deliver(std::move(t.response));
}

void start_transfer(client_state& st, upstream_request req, caf::typed_response_promise<upstream_response> promise) {
  auto t = std::make_unique<transfer>();
  t->request = std::move(req);
  t->promise = std::move(promise);
  CURL* easy = take_handle(st);
  if (easy == nullptr) {
    answer(*t, transfer_error::aborted, "the upstream client could not allocate a transfer");
    return;
  }
  if (!configure(easy, *t) || curl_multi_add_handle(st.multi, easy) != CURLM_OK) {
    curl_easy_cleanup(easy);
    answer(*t, transfer_error::aborted, "the upstream client could not set up the transfer");
    return;
  }
  st.transfers.emplace(easy, std::move(t));
}

// --- ending a transfer ---

/// Removes `easy` from the multi handle and from the table; the caller answers the returned transfer.
std::unique_ptr<transfer> take_transfer(client_state& st, CURL* easy) {
  auto i = st.transfers.find(easy);
  if (i == st.transfers.end())
    return nullptr;
  auto t = std::move(i->second);
  st.transfers.erase(i);
  curl_multi_remove_handle(st.multi, easy);
  return t;
}

/// libcurl's explanation, with any userinfo of the URL blanked out (URLs come from configuration and may carry
/// credentials; libcurl's messages normally do not repeat them, this makes sure).
std::string curl_explanation(const transfer& t, CURLcode code) {
  std::string text = t.curl_error[0] != '\0' ? std::string{t.curl_error} : std::string{curl_easy_strerror(code)};
  while (!text.empty() && (text.back() == '\n' || text.back() == '.'))
    text.pop_back();
  const auto& url = t.request.url;
  auto scheme_end = url.find("://");
  auto authority_begin = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  auto at = url.find('@', authority_begin);
  auto slash = url.find('/', authority_begin);
  if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
    auto userinfo = url.substr(authority_begin, at - authority_begin);
    for (auto pos = text.find(userinfo); !userinfo.empty() && pos != std::string::npos; pos = text.find(userinfo))
      text.replace(pos, userinfo.size(), "***");
  }
  return text;
}

void complete(client_state& st, CURL* easy, CURLcode code) {
  auto t = take_transfer(st, easy);
  if (!t)
    return;
  auto& response = t->response;
  long new_connections = 0;
  curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &new_connections);
  curl_off_t connect_time = 0;
  curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect_time);
  long request_bytes = 0;
  curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_bytes);
  curl_off_t tls_time = 0, first_byte_time = 0;
  curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &tls_time);
  curl_easy_getinfo(easy, CURLINFO_STARTTRANSFER_TIME_T, &first_byte_time);
  response.connect_time = std::chrono::microseconds{std::max<curl_off_t>(connect_time, tls_time)};
  response.first_byte_time = std::chrono::microseconds{first_byte_time};
  bool connected = connect_time > 0 || request_bytes > 0 || response.status != 0;
  response.reused_connection = new_connections == 0 && connected;
  auto explanation = curl_explanation(*t, code);
  recycle_handle(st, easy);

  const auto& req = t->request;
  if (code == CURLE_OK && t->headers_complete) {
    answer(*t, transfer_error::none, "");
  } else if (t->stopped_by_us == transfer_error::too_large) {
    answer(*t, transfer_error::too_large,
           "the upstream response body exceeded " + std::to_string(req.max_response_bytes) + " bytes");
  } else if (t->stopped_by_us == transfer_error::aborted) {
    auto reason = std::move(t->stop_reason);
    answer(*t, transfer_error::aborted, std::move(reason));
  } else if (code == CURLE_OPERATION_TIMEDOUT && !connected) {
    answer(*t, transfer_error::connect_timeout,
           "the upstream did not accept a connection within " + std::to_string(req.connect_timeout.count()) + " ms ("
             + explanation + ")");
  } else if (code == CURLE_OPERATION_TIMEDOUT) {
    answer(*t, transfer_error::total_timeout,
           "the upstream response did not complete within " + std::to_string(req.total_timeout.count()) + " ms");
  } else if (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_COULDNT_RESOLVE_PROXY
             || code == CURLE_SSL_CONNECT_ERROR || code == CURLE_PEER_FAILED_VERIFICATION
             || code == CURLE_SSL_CERTPROBLEM || code == CURLE_SSL_CACERT_BADFILE || code == CURLE_URL_MALFORMAT
             || code == CURLE_UNSUPPORTED_PROTOCOL) {
    answer(*t, transfer_error::connect, "could not connect to the upstream (" + explanation + ")");
  } else {
    // CURLE_OK without a final header block cannot happen over HTTP; treat it like any broken exchange.
    answer(*t, transfer_error::protocol, "the upstream broke off the HTTP exchange (" + explanation + ")");
  }
}

/// Ends every transfer past its deadline: still waiting for its headers after the first-byte timeout
/// (first_byte_timeout), or silent for longer than its idle timeout after them (idle_timeout).
void enforce_deadlines(client_state& st, clock_type::time_point now) {
  std::vector<CURL*> late;
  for (const auto& [easy, t] : st.transfers)
    if (now >= t->deadline())
      late.push_back(easy);
  for (CURL* easy : late) {
    auto t = take_transfer(st, easy);
    recycle_handle(st, easy);
    if (!t->headers_complete)
      answer(*t, transfer_error::first_byte_timeout,
             "the upstream sent no response headers within " + std::to_string(t->request.first_byte_timeout.count())
               + " ms");
    else
      answer(*t, transfer_error::idle_timeout,
             "the upstream sent nothing for " + std::to_string(t->request.idle_timeout.count()) + " ms");
  }
}

// --- the loop ---

/// How long the next curl_multi_poll may block: until libcurl's next timer, the nearest transfer deadline or
/// idle_poll, whichever comes first; 0 when the mailbox already holds work.
int poll_wait_ms(const client_state& st, bool mailbox_has_work, clock_type::time_point now) {
  if (mailbox_has_work)
    return 0;
  long wait = static_cast<long>(st.options.idle_poll.count());
  long curl_wait = -1;
  curl_multi_timeout(st.multi, &curl_wait);
  if (curl_wait >= 0)
    wait = std::min(wait, curl_wait);
  for (const auto& entry : st.transfers) {
    const auto& t = *entry.second;
    auto deadline = t.deadline();
    if (deadline == clock_type::time_point::max())
      continue;
    auto left = std::chrono::ceil<milliseconds>(deadline - now).count();
    wait = std::min<long>(wait, std::max<long>(0, static_cast<long>(left)));
  }
  return static_cast<int>(std::max<long>(0, wait));
}

void run_once(client_state& st, bool mailbox_has_work) {
  curl_multi_poll(st.multi, nullptr, 0, poll_wait_ms(st, mailbox_has_work, clock_type::now()), nullptr);
  int running = 0;
  curl_multi_perform(st.multi, &running);
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(st.multi, &queued))
    if (msg->msg == CURLMSG_DONE)
      complete(st, msg->easy_handle, msg->data.result);
  enforce_deadlines(st, clock_type::now());
}

client_state::~client_state() {
  std::vector<CURL*> pending;
  for (const auto& entry : transfers)
    pending.push_back(entry.first);
  for (CURL* easy : pending) {
    auto t = take_transfer(*this, easy);
    curl_easy_cleanup(easy);
    answer(*t, transfer_error::aborted, "the upstream client stopped before the transfer completed");
  }
  for (CURL* easy : idle_handles)
    curl_easy_cleanup(easy);
  if (multi != nullptr) {
    if (options.bell)
      options.bell->detach(multi);
    curl_multi_cleanup(multi);
  }
}

client_self_actor::behavior_type client_impl(client_actor* self, upstream_client_options options) {
  ensure_curl_initialized();
  auto& st = self->state;
  st.options = std::move(options);
  if (!st.options.bell)
    st.options.bell = std::make_shared<doorbell>();
  st.multi = curl_multi_init();
  if (st.multi == nullptr) {
    // The behavior below never runs: the actor ends as soon as this function returns.
    self->quit(caf::make_error(caf::sec::runtime_error, "curl_multi_init failed"));
  } else {
    curl_multi_setopt(st.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, st.options.max_total_connections);
    curl_multi_setopt(st.multi, CURLMOPT_MAX_HOST_CONNECTIONS, st.options.max_host_connections);
    // Keep as many idle connections as may be open at once, so a burst's connections survive for reuse.
    curl_multi_setopt(st.multi, CURLMOPT_MAXCONNECTS, st.options.max_total_connections);
    st.options.bell->attach(st.multi);
    self->send(self, tick_atom::value);
  }
  return {
    [self](upstream_call_atom, upstream_request& req) {
      auto promise = self->make_response_promise<upstream_response>();
      start_transfer(self->state, std::move(req), promise);
      return promise;
    },
    [self](tick_atom) {
      run_once(self->state, !self->mailbox().empty());
      self->send(self, tick_atom::value);
    },
    // The mailbox watch (actors/ops.hpp) asks every named actor for its backlog.
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

upstream_client_actor spawn_upstream_client(caf::actor_system& sys, upstream_client_options options) {
  return sys.spawn<caf::detached>(client_impl, std::move(options));
}

// --- callers ---

upstream_clients::upstream_clients(std::shared_ptr<directory> names, std::vector<std::shared_ptr<doorbell>> bells)
  : names_(std::move(names)), bells_(std::move(bells)) {}

actor_name<upstream_client_actor> upstream_clients::client_name(size_t i) {
  return {"upstream.client." + std::to_string(i)};
}

namespace {

upstream_response client_unavailable(const std::string& why) {
  upstream_response response;
  response.error = transfer_error::aborted;
  response.error_text = why;
  return response;
}

} // namespace

void upstream_clients::call(caf::event_based_actor* self, upstream_request req,
                            std::function<void(upstream_response&)> then) {
  // Round robin, skipping clients that are between incarnations.
  size_t count = bells_.size();
  size_t first = count == 0 ? 0 : next_.fetch_add(1, std::memory_order_relaxed) % count;
  for (size_t k = 0; k < count; ++k) {
    size_t i = (first + k) % count;
    auto client = names_->get(client_name(i));
    if (!client)
      continue;
    auto done = std::make_shared<std::function<void(upstream_response&)>>(std::move(then));
    self->request(*client, caf::infinite, upstream_call_atom::value, std::move(req))
      .then([done](upstream_response& response) { (*done)(response); },
            [done](caf::error&) {
              auto response = client_unavailable("the upstream client stopped (it is restarting); try again");
              (*done)(response);
            });
    bells_[i]->ring();
    return;
  }
  auto response = client_unavailable("no upstream client is running (it is restarting); try again");
  then(response);
}

// --- the subsystem ---

upstream_handles make_upstream_handles(const config::settings& s) {
  upstream_handles handles;
  for (size_t i = 0; i < s.upstreams.size(); ++i)
    handles.breakers.push_back(std::make_shared<breaker_gauges>());
  for (int64_t i = 0; i < s.upstream.clients; ++i)
    handles.doorbells.push_back(std::make_shared<doorbell>());
  return handles;
}

supervisor_config make_upstreams_supervisor(const config::settings& s, const supervision_context& context,
                                            const upstream_handles& handles) {
  using std::chrono::milliseconds;
  // A circuit breaker per upstream, and the HTTP client actors (libcurl multi, detached) that call them.
  auto upstreams = subsystem_supervisor("upstreams", supervision_strategy::one_for_one, context);
  for (size_t i = 0; i < s.upstreams.size(); ++i) {
    breaker_options b;
    b.upstream = s.upstreams[i].name;
    b.failures = s.breaker.failures;
    b.open_for = milliseconds{s.breaker.open_ms};
    b.half_open_probes = s.breaker.half_open_probes;
    b.gauges = handles.breakers.at(i); // made from the same settings: one per upstream
    upstreams.children.push_back(worker_child(
      breaker_name(b.upstream).value,
      [b](caf::actor_system& sys) { return caf::actor_cast<caf::actor>(spawn_breaker(sys, b)); }, milliseconds{1000}));
  }
  for (size_t i = 0; i < handles.doorbells.size(); ++i) {
    upstream_client_options client;
    client.bell = handles.doorbells[i];
    upstreams.children.push_back(worker_child(
      upstream_clients::client_name(i).value,
      [client](caf::actor_system& sys) { return caf::actor_cast<caf::actor>(spawn_upstream_client(sys, client)); },
      milliseconds{5000}));
  }
  // After the clients and breakers it uses.
  if (auto checks = make_health_checks(s.upstreams, context.names, handles.doorbells))
    upstreams.children.push_back(std::move(*checks));
  return upstreams;
}

} // namespace troupe::client
