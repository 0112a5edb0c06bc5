#include "http/traffic.hpp"

#include "http/auth.hpp"
#include "http/error_mapping.hpp"

#include <strings.h>

#include <algorithm>
#include <cmath>

namespace troupe::http {

namespace {

response overloaded(const request& req, const std::string& message) {
  auto res = error_response(service_error::overloaded, message, req.id);
  return res;  // error_response adds Retry-After: 1 to every 503
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.15g", v);
  return buf;
}

} // namespace

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    auto comma = text.find(',', pos);
    if (comma == std::string::npos)
      comma = text.size();
    auto item = text.substr(pos, comma - pos);
    auto first = item.find_first_not_of(" \t");
    auto last = item.find_last_not_of(" \t");
    if (first != std::string::npos)
      out.push_back(item.substr(first, last - first + 1));
    pos = comma + 1;
  }
  return out;
}

// --- traffic_control ---

traffic_options traffic_options_from(const config::settings& s) {
  traffic_options traffic;
  const auto& lim = s.limits;
  traffic.enabled = lim.enabled;
  traffic.policies = {{"default", {"default", lim.default_per_minute, lim.default_burst}},
                      {"generate", {"generate", lim.generate_per_minute, lim.generate_burst}},
                      {"auth", {"auth", lim.auth_per_minute, lim.auth_burst}},
                      {"anonymous", {"anonymous", lim.anonymous_per_minute, lim.anonymous_burst}},
                      {"upload", {"upload", lim.upload_per_minute, lim.upload_burst}}};
  traffic.shards = limiter_shard_count(lim);
  traffic.trusted_proxies = split_list(s.http.trusted_proxies);
  traffic.max_failure_buckets = static_cast<size_t>(lim.max_keys);
  traffic.remote_timeout = std::chrono::milliseconds{s.cluster.request_timeout_ms};
  return traffic;
}

traffic_control::traffic_control(actor_bridge& bridge, traffic_options options)
  : bridge_(bridge), options_(std::move(options)),
    failure_bucket_cap_(std::max<size_t>(1, options_.max_failure_buckets / failure_stripes)),
    failures_(new failure_stripe[failure_stripes]) {
  if (options_.metrics)
    rejected_ = &options_.metrics->counter("troupe_rate_limited_total", "Requests refused by a rate limit (429).",
                                           {"policy"});
  failure_policy_ = policy("anonymous");
}

std::string client_address(const request& req, const std::vector<std::string>& trusted_proxies) {
  auto is_trusted = [&](const std::string& ip) {
    return std::find(trusted_proxies.begin(), trusted_proxies.end(), ip) != trusted_proxies.end();
  };
  if (!is_trusted(req.remote_address))
    return req.remote_address;
  // Every X-Forwarded-For line, in order, is one list (RFC 9110 5.3): a proxy that appends a line of its own after
  // the client's must not leave the client's first line deciding.
  std::string forwarded;
  for (const auto& [name, value] : req.headers)
    if (name.size() == 15 && ::strncasecmp(name.c_str(), "X-Forwarded-For", 15) == 0)
      forwarded += (forwarded.empty() ? "" : ",") + value;
  if (forwarded.empty())
    return req.remote_address;
  // Walk from the nearest hop outwards, skipping our own proxies: the first untrusted one is the client.
  auto hops = split_list(forwarded);
  for (auto i = hops.rbegin(); i != hops.rend(); ++i)
    if (!is_trusted(*i))
      return *i;
  return hops.empty() ? req.remote_address : hops.front();
}

bool is_local_client(const request& req, const std::vector<std::string>& trusted_proxies) {
  if (!is_loopback_address(client_address(req, trusted_proxies)))
    return false;
  if (std::find(trusted_proxies.begin(), trusted_proxies.end(), req.remote_address) != trusted_proxies.end())
    return true; // a trusted proxy said the client is on this machine
  for (const char* name : {"X-Forwarded-For", "Forwarded", "X-Real-IP"})
    if (req.header(name))
      return false; // a proxy we do not know forwarded it: its client is elsewhere
  return true;
}

std::string traffic_control::client_ip(const request& req) const {
  return client_address(req, options_.trusted_proxies);
}

bool traffic_control::is_local_client(const request& req) const {
  return http::is_local_client(req, options_.trusted_proxies);
}

// --- failed authentication ---

traffic_control::failure_stripe& traffic_control::stripe_of(const std::string& ip) const {
  return failures_[std::hash<std::string>{}(ip) % failure_stripes];
}

bool traffic_control::failures_exhausted(const std::string& ip) const {
  if (failure_policy_.name.empty())
    return false;
  auto& stripe = stripe_of(ip);
  std::lock_guard<std::mutex> guard{stripe.mutex};
  auto i = stripe.buckets.find(ip);
  return i != stripe.buckets.end() && i->second.seconds_until_token(monotonic_seconds()) > 0;
}

void traffic_control::refuse_failure(const std::shared_ptr<responder>& r, const std::string& ip) {
  limit_decision d;
  d.per_minute = failure_policy_.per_minute;
  {
    auto& stripe = stripe_of(ip);
    std::lock_guard<std::mutex> guard{stripe.mutex};
    auto t = monotonic_seconds();
    auto i = stripe.buckets.find(ip);
    if (i != stripe.buckets.end()) {
      d.reset_s = static_cast<int64_t>(std::ceil(i->second.seconds_until_full(t) - 1e-9));
      d.retry_after_s = static_cast<int64_t>(std::ceil(i->second.seconds_until_token(t) - 1e-9));
    }
  }
  d.retry_after_s = std::max<int64_t>(1, d.retry_after_s); // a token may have come back meanwhile: still refused
  apply(r, failure_policy_, d, "ip:" + ip);
}

bool traffic_control::count_failure(const std::shared_ptr<responder>& r, const std::string& ip) {
  if (failure_policy_.name.empty())
    return true;
  limit_decision d;
  {
    auto& stripe = stripe_of(ip);
    std::lock_guard<std::mutex> guard{stripe.mutex};
    auto t = monotonic_seconds();
    auto i = stripe.buckets.find(ip);
    if (i == stripe.buckets.end()) {
      if (stripe.buckets.size() >= failure_bucket_cap_) {
        // Full buckets are as good as new ones; if every bucket is in use, forget one (it restarts full).
        for (auto j = stripe.buckets.begin(); j != stripe.buckets.end();)
          j = j->second.full(t) ? stripe.buckets.erase(j) : std::next(j);
        if (stripe.buckets.size() >= failure_bucket_cap_)
          stripe.buckets.erase(stripe.buckets.begin());
      }
      i = stripe.buckets.emplace(ip, token_bucket{failure_policy_.per_minute, failure_policy_.burst, t}).first;
    }
    d = take_token(i->second, failure_policy_, t);
  }
  return apply(r, failure_policy_, d, "ip:" + ip);
}

bool traffic_control::shed(const std::shared_ptr<responder>& r, bool write) const {
  const auto& s = *options_.shedding;
  if (s.all.load(std::memory_order_relaxed)) {
    r->send(overloaded(r->req(), "The server is low on memory and refuses new work; retry shortly."));
    return true;
  }
  if (write && s.writes.load(std::memory_order_relaxed)) {
    r->send(overloaded(r->req(), "Writes are backed up; retry shortly."));
    return true;
  }
  if (s.api.load(std::memory_order_relaxed)) {
    r->send(overloaded(r->req(), "The server is overloaded; retry shortly."));
    return true;
  }
  return false;
}

void traffic_control::limit(caf::event_based_actor* self, const std::shared_ptr<responder>& r,
                            const std::string& policy_name, const std::string& subject, std::function<void()> then) {
  auto policy = options_.policies.find(policy_name);
  if (!options_.enabled || policy == options_.policies.end()) {
    then();
    return;
  }
  auto key = subject;
  // In a cluster a subject's bucket lives on the node that holds the key (its endpoint hands the request to its
  // own shard), so one address gets one limit however requests are spread.
  auto owner = remote_owner(options_.cluster.get(), key);
  auto shard = owner ? std::nullopt : bridge_.find(limiter_shard_name(shard_of(key, options_.shards)));
  bool remote = owner.has_value();
  if (!owner && !shard) {
    r->fail(make_error(service_error::unavailable, "The rate limiter is restarting; retry shortly."));
    return;
  }
  auto p = policy->second;
  // A call to another node is a span of its own ("cluster"), the parent of the other node's.
  auto span = remote ? tracing::new_span_id() : tracing::span_id{};
  auto sent = std::chrono::steady_clock::now();
  auto answered = [this, r, p, subject, then = std::move(then), remote, span, sent](limit_decision& d) {
    if (remote)
      r->mark("cluster", span, sent);
    r->mark("rate_limit");
    if (apply(r, p, d, subject))
      then();
  };
  auto failed = [r, remote, span, sent](caf::error& err) {
    if (remote)
      r->mark("cluster", span, sent);
    r->fail(err);
  };
  if (remote)
    self
      ->request(*owner, caf::duration{options_.remote_timeout}, limit_atom::value, key, p,
                r->req().trace.traceparent_for(span), r->req().trace.tracestate)
      .then(std::move(answered), std::move(failed));
  else
    self->request(*shard, caf::duration{std::chrono::seconds{5}}, limit_atom::value, key, p)
      .then(std::move(answered), std::move(failed));
}

rate_policy traffic_control::policy(const std::string& name) const {
  auto i = options_.policies.find(name);
  return options_.enabled && i != options_.policies.end() ? i->second : rate_policy{"", 0, 0};
}

bool traffic_control::apply(const std::shared_ptr<responder>& r, const rate_policy& p, const limit_decision& d,
                            const std::string& subject) {
  auto quoted = "\"" + p.name + "\"";
  r->add_header("RateLimit-Policy", quoted + ";q=" + number(p.per_minute) + ";w=60");
  r->add_header("RateLimit", quoted + ";r=" + std::to_string(d.remaining) + ";t=" + std::to_string(d.reset_s));
  if (d.allowed)
    return true;
  if (rejected_)
    rejected_->inc({p.name});
  // Security events for rejections are sampled: a flood must not become a flood of writes.
  if (options_.on_rejected && rejections_.fetch_add(1, std::memory_order_relaxed) % 10 == 0)
    options_.on_rejected(r->req(), p.name, subject);
  auto res = error_response(service_error::rate_limited,
                            "Rate limit \"" + p.name + "\" exceeded; retry in " + std::to_string(d.retry_after_s)
                              + " seconds.",
                            r->req().id);
  for (auto& [name, value] : res.headers)
    if (name == "Retry-After")
      value = std::to_string(d.retry_after_s);
  r->send(std::move(res));
  return false;
}

// --- inflight_gate ---

inflight_gate::inflight_gate(std::string name, size_t max_inflight, size_t max_queue,
                             std::chrono::milliseconds max_wait)
  : name_(std::move(name)), max_inflight_(max_inflight), max_queue_(max_queue), max_wait_(max_wait) {
}

inflight_gate::slot inflight_gate::take_slot_locked() {
  ++running_;
  return slot{shared_from_this()};
}

void inflight_gate::start(slot place, const std::shared_ptr<responder>& r, const route_handler& handler) {
  // Answered while it waited (its route's time limit passed): nothing to run, the slot goes to the next one.
  if (r->answered()) {
    place.free();
    return;
  }
  // The slot rides on the responder's on_sent hook: freed when the response is sent, or when the hook is dropped
  // unrun (the responder, or the stream it handed its hooks to, destroyed).
  auto held = std::make_shared<slot>(std::move(place));
  r->on_sent([held] { held->free(); });
  handler(r);
}

void inflight_gate::admit(const std::shared_ptr<responder>& r, const route_handler& handler) {
  {
    std::unique_lock<std::mutex> guard{mutex_};
    if (running_ < max_inflight_) {
      auto place = take_slot_locked();
      guard.unlock();
      start(std::move(place), r, handler);
      return;
    }
    if (waiting_.size() < max_queue_) {
      waiting_.push_back(waiter{r, handler, std::chrono::steady_clock::now()});
      return;
    }
  }
  r->send(overloaded(r->req(), "Too many " + name_ + " requests in progress; retry shortly."));
}

void inflight_gate::release() {
  std::vector<waiter> expired;
  std::optional<waiter> next;
  std::optional<slot> place;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    --running_;
    auto now = std::chrono::steady_clock::now();
    while (!waiting_.empty() && now - waiting_.front().since >= max_wait_) {
      expired.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
    if (!waiting_.empty() && running_ < max_inflight_) {
      place.emplace(take_slot_locked());
      next = std::move(waiting_.front());
      waiting_.pop_front();
    }
  }
  for (auto& w : expired)
    w.r->send(overloaded(w.r->req(), "Waited too long for a free " + name_ + " slot; retry shortly."));
  if (next)
    start(std::move(*place), next->r, next->handler);
}

void inflight_gate::expire_waiting() {
  std::vector<waiter> expired;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    auto now = std::chrono::steady_clock::now();
    while (!waiting_.empty() && now - waiting_.front().since >= max_wait_) {
      expired.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
  }
  for (auto& w : expired)
    w.r->send(overloaded(w.r->req(), "Waited too long for a free " + name_ + " slot; retry shortly."));
}

size_t inflight_gate::running() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return running_;
}

size_t inflight_gate::waiting() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return waiting_.size();
}

route_handler gated(std::shared_ptr<inflight_gate> gate, route_handler handler) {
  if (!gate)
    return handler;
  return [gate, handler](const std::shared_ptr<responder>& r) { gate->admit(r, handler); };
}

} // namespace troupe::http
