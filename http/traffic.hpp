#pragma once
// Traffic control on the request path: rate limits (RateLimit headers, 429), failed authentication per client
// address, in-flight caps with a short bounded queue (503 within milliseconds beyond it), load shedding, and the
// client address behind trusted proxies.
//
// Headers follow draft-ietf-httpapi-ratelimit-headers-11 on every response of a limited route:
//   RateLimit-Policy: "generate";q=30;w=60      the policy: q requests per w seconds
//   RateLimit: "generate";r=12;t=20             r requests left now; t seconds until the bucket is full again

#include "http/bridge.hpp"
#include "http/router.hpp"
#include "http/server.hpp"

#include "actors/cluster.hpp"
#include "actors/rate_limit.hpp"
#include "config/options.hpp"

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace troupe::http {

/// What the load monitor decided; read on every request (atomics, no locks).
struct shed_state {
  std::atomic<bool> all{false};     // RSS over the limit: refuse all new work
  std::atomic<bool> writes{false};  // the DB writer is backed up: refuse new writes
  std::atomic<bool> api{false};     // sessions or limiters are backed up: refuse authenticated API work
};

struct traffic_options {
  bool enabled = true;
  std::map<std::string, rate_policy> policies;  // by name: default, generate, auth, anonymous
  size_t shards = 1;                            // limiter shards "limits.shard.<i>"
  std::shared_ptr<cluster_state> cluster;       // a key another node holds goes to its endpoint (null: all here)
  std::chrono::milliseconds remote_timeout{5000}; // a request to that node (cluster.request_timeout_ms)
  std::vector<std::string> trusted_proxies;     // exact addresses whose X-Forwarded-For is believed
  size_t max_failure_buckets = 100000;          // addresses whose failed authentications are counted at most
  std::shared_ptr<shed_state> shedding = std::make_shared<shed_state>();
  std::shared_ptr<metrics_registry> metrics;
  /// Called for (a sample of) rejections, to record a security event.
  std::function<void(const request&, const std::string& policy, const std::string& subject)> on_rejected;
};

/// The options the settings decide: limits.enabled, the five policies (limits.<policy>_per_minute and _burst),
/// limits.shards, http.trusted_proxies and limits.max_keys. The caller adds shedding, metrics and on_rejected.
traffic_options traffic_options_from(const config::settings& settings);

class traffic_control {
public:
  traffic_control(actor_bridge& bridge, traffic_options options);

  /// client_address with http.trusted_proxies. Every decision about "who is calling" (rate limits, login
  /// throttling, security events, debug routes, health details) goes through it (or is_local_client below).
  std::string client_ip(const request& req) const;

  /// is_local_client with http.trusted_proxies.
  bool is_local_client(const request& req) const;

  // Failed authentication (a bearer token or API key that was refused) is limited per client address with the
  // "anonymous" policy, in this process's memory (no actor hop, no database): an address that used up its allowance
  // gets 429 for further bad credentials, without a look-up or a security event. Valid credentials still pass.
  // Without limits (limits.enabled=false) nothing is counted.

  /// Whether `ip` has no failed authentication left right now (takes nothing).
  bool failures_exhausted(const std::string& ip) const;
  /// Answers 429 (RateLimit headers, Retry-After) to a request from an address whose failures are exhausted.
  void refuse_failure(const std::shared_ptr<responder>& r, const std::string& ip);
  /// Counts one failed authentication of `ip` and sets the "anonymous" RateLimit headers on `r`. True when the
  /// caller may answer (its 401); false when `ip` is over its allowance, in which case 429 has been answered.
  bool count_failure(const std::shared_ptr<responder>& r, const std::string& ip);

  /// Inside a bridge worker: takes a token of `policy` for `subject`, sets the RateLimit headers on `r`, and calls
  /// `then` when allowed; answers 429 with Retry-After when not. With limits disabled, calls `then` at once.
  void limit(caf::event_based_actor* self, const std::shared_ptr<responder>& r, const std::string& policy,
             const std::string& subject, std::function<void()> then);

  /// The policy of that name, when limits are enabled and it exists (else an empty name).
  rate_policy policy(const std::string& name) const;

  /// Sets the RateLimit headers for a decision already taken (e.g. by the user's session actor); when it is a
  /// refusal, answers 429 with Retry-After, counts it and (sampled) records a security event. True if allowed.
  bool apply(const std::shared_ptr<responder>& r, const rate_policy& policy, const limit_decision& decision,
             const std::string& subject);

  /// 503 with Retry-After when work of this kind is being shed; returns true if it answered.
  bool shed(const std::shared_ptr<responder>& r, bool write) const;

  const traffic_options& options() const { return options_; }

private:
  /// One stripe of the failed-authentication buckets (by client address), under its own lock.
  struct failure_stripe {
    mutable std::mutex mutex;
    std::unordered_map<std::string, token_bucket> buckets;
  };
  static constexpr size_t failure_stripes = 16;
  failure_stripe& stripe_of(const std::string& ip) const;

  actor_bridge& bridge_;
  traffic_options options_;
  counter_family* rejected_ = nullptr;
  std::atomic<uint64_t> rejections_{0};
  rate_policy failure_policy_; // "anonymous", or an empty name when failures are not limited
  size_t failure_bucket_cap_;  // per stripe
  std::unique_ptr<failure_stripe[]> failures_;
};

/// At most `max_inflight` requests of a route group run at once; up to `max_queue` more wait at most `max_wait`
/// for a slot; everything beyond gets 503 with Retry-After at once. No request waits without bound.
/// A running request holds its slot (a guard) until its response is sent, or its responder (with the slot) is
/// destroyed, whichever comes first; the freed slot goes to the oldest waiter. Always owned by a shared_ptr.
class inflight_gate : public std::enable_shared_from_this<inflight_gate> {
public:
  inflight_gate(std::string name, size_t max_inflight, size_t max_queue, std::chrono::milliseconds max_wait);

  /// Runs `handler(r)` now, later (when a slot frees up), or answers 503.
  void admit(const std::shared_ptr<responder>& r, const route_handler& handler);

  /// Answers 503 to waiters older than max_wait (also done whenever a slot frees up). Call periodically.
  void expire_waiting();

  size_t running() const;
  size_t waiting() const;
  const std::string& name() const { return name_; }

private:
  /// One running request's place: freed (release()) exactly once, when the slot is destroyed or freed early.
  class slot {
  public:
    explicit slot(std::shared_ptr<inflight_gate> gate) noexcept : gate_(std::move(gate)) {}
    slot(slot&&) noexcept = default;
    slot& operator=(slot&&) = delete;
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    ~slot() { free(); }
    void free() {
      if (auto gate = std::exchange(gate_, nullptr))
        gate->release();
    }

  private:
    std::shared_ptr<inflight_gate> gate_;
  };
  struct waiter {
    std::shared_ptr<responder> r;
    route_handler handler;
    std::chrono::steady_clock::time_point since;
  };
  /// Counts a running request in (under the mutex): its slot counts it out.
  slot take_slot_locked();
  void start(slot place, const std::shared_ptr<responder>& r, const route_handler& handler);
  void release();

  std::string name_;
  size_t max_inflight_;
  size_t max_queue_;
  std::chrono::milliseconds max_wait_;
  mutable std::mutex mutex_;
  size_t running_ = 0;
  std::deque<waiter> waiting_;
};

/// A route handler behind a gate (a null gate admits everything).
route_handler gated(std::shared_ptr<inflight_gate> gate, route_handler handler);

/// The client's address: the TCP peer's, or, when the peer is one of `trusted_proxies` (exact addresses), the
/// nearest address of X-Forwarded-For that is not one of them.
std::string client_address(const request& req, const std::vector<std::string>& trusted_proxies);

/// Whether the client is on this machine: client_address is a loopback address, and no proxy missing from
/// `trusted_proxies` forwarded the request (a loopback peer sending X-Forwarded-For, Forwarded or X-Real-IP is a
/// proxy on this host whose client is elsewhere).
bool is_local_client(const request& req, const std::vector<std::string>& trusted_proxies);

/// Splits a comma-separated list, trimming blanks.
std::vector<std::string> split_list(const std::string& text);

} // namespace troupe::http
