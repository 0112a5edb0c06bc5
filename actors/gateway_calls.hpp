#pragma once
// The AI gateway's calls, HTTP-free: one client request on its way through the cache and the upstreams, with its
// quota and spend settled and its usage written. http/gateway.cpp parses and validates the routes (OpenAI's chat and
// embeddings, Anthropic's Messages, /api/generate), authenticates the caller (its session reserves one generation
// and the call's estimate, gateway_calls::estimate), and hands the call over; what comes back goes to the call's
// gateway_exchange, which gives it the route's shape.
//
// A call, run by the actor that holds it (a bridge worker: its one hop from the session's thread):
//   1. deterministic calls (temperature 0, or `X-Troupe-Cache: on`; never `off`, never streams) go through the
//      cache's get_or_compute, keyed by the normalised request and the caller (openai::cache_key); other
//      non-streamed calls through its single flight, so identical concurrent calls reach an upstream once; a cached
//      answer is a gateway_answer (actors/gateway_answer.hpp);
//   2. the upstreams serving the model are tried by priority, then weighted at random among equals
//      (actors/balancing.hpp). Each call asks the upstream's breaker for a permit (actors/breaker.hpp) and respects
//      the upstream's max_inflight; a retryable failure (connect error, timeout, 429, 500, 502, 503, 504, a broken
//      transfer: actors/upstream_outcome.hpp) is retried on the same upstream after an exponential backoff with
//      full jitter, up to retry.max_attempts; then, or for a non-retryable upstream failure (garbage, an answer over
//      the size cap, refused credentials), the next upstream is tried. A client error the upstream reports (400, 404,
//      413, 422) is the caller's and ends the call. A stream is never retried after its first byte reached the
//      client: a later failure ends it with an error event instead of [DONE];
//   3. every outcome is reported to the breaker; token usage (reported, else estimated) is added to the caller's day
//      and to the usage ledger through the DB writer, and the spend reservation is settled to it.
// All upstreams exhausted: unavailable (503, Retry-After) when no upstream could be tried (breakers open, all busy),
// else the last failure (502) or timeout (504), naming the upstream and what happened, never a key.

#include "actors/balancing.hpp"
#include "actors/breaker.hpp"
#include "actors/cache.hpp"
#include "actors/directory.hpp"
#include "actors/event_sink.hpp"
#include "actors/gateway_answer.hpp"
#include "actors/metrics.hpp"
#include "actors/ops.hpp"
#include "actors/sessions.hpp"
#include "actors/upstream_client.hpp"
#include "actors/worker_job.hpp"
#include "ai/anthropic.hpp"
#include "ai/embeddings.hpp"
#include "ai/openai.hpp"
#include "config/log.hpp"
#include "config/options.hpp"
#include "config/prices.hpp"
#include "config/upstreams.hpp"
#include "ops/tracing.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

/// What the settings decide of the gateway's calls, and what the process shares with them.
struct gateway_settings {
  std::vector<config::upstream_settings> upstreams;
  std::shared_ptr<client::upstream_clients> clients;
  std::shared_ptr<cache_client> cache;
  std::shared_ptr<directory> names; // breakers ("upstream.<name>.breaker") and "db.writer"
  int64_t max_attempts = 3;
  std::chrono::milliseconds retry_base{200};
  std::chrono::milliseconds retry_cap{5000};
  size_t max_response_bytes = 8 * 1024 * 1024;
  std::chrono::milliseconds cache_ttl{3600000};
  /// The whole of a generation: every attempt and fallback (gateway.max_generation_ms).
  std::chrono::milliseconds max_generation{600000};
  /// Upstream calls slower than this are logged once ("slow operation", kind upstream) with their stages (ops.slow_ms).
  std::chrono::milliseconds slow{1000};
  /// The time a generation route has to start its answer (gateway.request_timeout_ms): the budget of a non-streamed
  /// call's attempts.
  std::chrono::milliseconds request_timeout{60000};
  /// A stream's longest silence, from the upstream or towards a client that stops reading (gateway.stream_idle_ms).
  std::chrono::milliseconds stream_idle{60000};
  /// SSE comments while a stream has nothing to send (gateway.stream_heartbeat_ms).
  std::chrono::milliseconds stream_heartbeat{15000};
  /// How long a stream's upstream is still read after its client left, for its real usage (gateway.stream_drain_ms).
  std::chrono::milliseconds stream_drain{30000};
  /// What a model's tokens cost (the top-level "prices" table): each call's cost goes into its usage_events row.
  config::price_table prices;
  /// Completion tokens a reservation assumes per choice when the request sets no max_tokens (quota.default_max_tokens).
  int64_t default_max_tokens = 4096;
  int quota_reset_utc_hour = 0;
  std::shared_ptr<metrics_registry> metrics;
  /// Per upstream, in the order of `upstreams`: what its breaker actor publishes (for /metrics).
  std::vector<std::shared_ptr<breaker_gauges>> gauges;
};

/// The settings' part: the upstreams, retry.*, upstream.max_response_bytes, gateway.* and quota.*. The caller adds
/// what the process shares: clients, cache, names, metrics, gauges.
gateway_settings gateway_settings_from(const config::settings& settings);

/// The client's side of a call, as the HTTP layer gives it (http/gateway.cpp): where the answer goes, in the route's
/// shape (OpenAI's, Anthropic's, /api/generate's), and what the call reads of the request. Called on the thread that
/// runs the call, except that a stream's bytes come from the upstream client's thread (under the call's relay lock).
class gateway_exchange {
public:
  virtual ~gateway_exchange() = default;
  virtual const std::string& request_id() const = 0;
  virtual const tracing::context& trace() const = 0;
  /// When the request arrived: the call's time counts from it, as the route's time limit does.
  virtual std::chrono::steady_clock::time_point started() const = 0;
  /// True once the server has answered (the route's time limit passed): no further attempt.
  virtual bool answered() const = 0;
  /// A stage of the request's timing (and a span of its trace when `span` is set).
  virtual void mark(const char* stage, const tracing::span_id& span = {},
                    std::chrono::steady_clock::time_point began = {}) = 0;
  /// Opens the client's event stream (200, text/event-stream, X-Troupe-Upstream: `upstream`, X-Cache: MISS);
  /// nullptr when the client is gone.
  virtual std::shared_ptr<event_sink> open_stream(const std::string& upstream) = 0;
  /// A whole chat answer; `hit`: it came from the cache or from an identical call in flight.
  virtual void answer(const gateway_answer& answer, bool hit) = 0;
  /// An embeddings answer (OpenAI's body); `upstream` "" when every input came from the cache.
  virtual void answer_embeddings(std::string body, const std::string& upstream, bool hit, size_t cached_inputs) = 0;
  /// The call failed: `err` (a service_error) mapped to its status; `param` names the field at fault, if any;
  /// `retry_after_ms` > 0 becomes a Retry-After.
  virtual void fail(const caf::error& err, const std::string& param = {}, int64_t retry_after_ms = 0) = 0;
};

class gateway_calls : public std::enable_shared_from_this<gateway_calls> {
public:
  explicit gateway_calls(gateway_settings settings);
  ~gateway_calls();

  struct upstream; // one configured upstream and its live counters
  struct call;     // one client request on its way through the upstreams

  const gateway_settings& settings() const { return opts_; }
  /// GET /v1/models: every configured model and who serves it (OpenAI's list).
  const std::string& models_body() const { return models_body_; }
  /// The first model of the first upstream ("" when none is configured): /api/generate's default.
  std::string default_model() const;

  /// A chat call (`req` validated), answered through `x`. `cacheable`: it may be answered from, and goes into, the
  /// cache. `anthropic_client`: it came in as Anthropic's Messages (its stream's events are translated).
  std::shared_ptr<call> chat_call(std::shared_ptr<gateway_exchange> x, openai::chat_request req, bool cacheable,
                                  bool anthropic_client);
  /// An embeddings call (`req` validated).
  std::shared_ptr<call> embeddings_call(std::shared_ptr<gateway_exchange> x, embeddings::request req, bool cacheable);
  /// nullopt, or what refuses `c` before anything is reserved: a batch whose answer could not be sent, a model no
  /// upstream serves (the error's param is in `param`).
  std::optional<caf::error> refuse(const call& c, std::string& param) const;
  /// What the call may use at most, as far as can be known before it runs: the prompt's tokens (estimated, four
  /// characters a token) plus max_tokens (or quota.default_max_tokens) per choice, and what that costs (pusd).
  struct estimate_t {
    int64_t tokens = 0;
    int64_t pusd = 0;
    bool inputs = false; // an embeddings call: the estimate is of its inputs' tokens
  };
  estimate_t estimate(const call& c) const;
  const std::string& model_of(const call& c) const;

  /// The caller is known and its reservations are held (taken over by the call: given back if it fails, committed
  /// when its answer reaches the client). `api_key_id`: the key it came with, "" for a user's token.
  void authenticated(call& c, std::string user_id, std::string api_key_id, quota_reservation quota,
                     spend_reservation spend);

  /// Where a cacheable call's look-up may go straight from the caller's thread (a shard and the key), before the call
  /// needs a worker; nullopt for the others.
  std::optional<std::pair<cache_key_actor, std::string>> direct_lookup(const call& c) const;
  /// The direct look-up's reply: true when it answered the call (a hit), false when the call goes on to run().
  bool take_hit(call& c, const cache_reply& reply);

  /// Runs the call inside `self` (a worker): the cache, the upstreams, the answer. Every answer, error and settlement
  /// goes through the call's exchange and reservations.
  void run(caf::event_based_actor* self, const std::shared_ptr<call>& c);

  /// Keeps idle streams' connections alive with SSE comments (gateway.stream_heartbeat_ms). Every stream whose
  /// transfer runs is watched; one sweep every quarter heartbeat walks them all and writes a comment to those quiet
  /// for a heartbeat: one timer for the whole gateway instead of one per stream (each CAF timer wakes the clock
  /// thread twice and the worker once).
  void watch_stream(caf::event_based_actor* self, const std::shared_ptr<call>& c);
  void sweep_streams(caf::event_based_actor* self);
  void schedule_sweep(caf::event_based_actor* self);

private:
  void embed_lookup(caf::event_based_actor* self, const std::shared_ptr<call>& c);
  void embed_fetch(caf::event_based_actor* self, const std::shared_ptr<call>& c);
  void embed_answer(const std::shared_ptr<call>& c, const std::string& upstream);
  void next_upstream(caf::event_based_actor* self, const std::shared_ptr<call>& c);
  void admit(caf::event_based_actor* self, const std::shared_ptr<call>& c, upstream* u);
  void send(caf::event_based_actor* self, const std::shared_ptr<call>& c, upstream* u, breaker_admission permit);
  void on_response(caf::event_based_actor* self, const std::shared_ptr<call>& c, upstream* u, breaker_admission permit,
                   client::upstream_response& res);
  void exhausted(const std::shared_ptr<call>& c);
  void succeed(const std::shared_ptr<call>& c, upstream* u, std::string body);
  void finish_stream(const std::shared_ptr<call>& c, upstream* u, breaker_admission permit,
                     client::upstream_response& res);
  /// Writes what the call cost: its tokens added to the user's day (usage) and its row in the ledger
  /// (usage_events: model, upstream, API key, tokens, cost, whether estimated, `outcome`).
  void record_usage(call& c, const upstream& u, const openai::usage& used, const char* outcome);
  void give_back(const std::shared_ptr<call>& c);
  std::vector<upstream*> candidates(const std::string& model);
  /// The time a call's attempts may take: gateway.max_generation_ms for a stream, at most gateway.request_timeout_ms
  /// for a plain answer.
  std::chrono::milliseconds budget_of(const call& c) const;

  gateway_settings opts_;
  std::vector<std::unique_ptr<upstream>> upstreams_;
  counter_family* upstream_requests_ = nullptr;
  histogram_family* upstream_seconds_ = nullptr;
  counter_family* cache_results_ = nullptr;
  counter_family* slow_operations_ = nullptr;
  log::line_budget slow_lines_{10}; // slow upstream calls: counted all, logged at most 10 a second
  counter_family* embedding_inputs_ = nullptr;
  std::string models_body_;
  // The watched streams (weak: a call that ended is dropped at the next sweep) and when the pending sweep is due
  // (steady clock, ns; 0: none). A sweep overdue by a whole period was lost with a restarted worker: the next
  // stream schedules another.
  std::mutex streams_mutex_;
  std::vector<std::weak_ptr<call>> streams_;
  std::atomic<int64_t> sweep_due_ns_{0};
};

/// The readiness check "upstreams": each breaker's state, counts and last failure (degraded while one is not closed).
health_probe upstreams_probe(const std::vector<config::upstream_settings>& upstreams, std::shared_ptr<directory> names);

} // namespace troupe
