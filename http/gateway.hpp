#pragma once
// The AI gateway: OpenAI-compatible routes in front of the configured upstreams.
//
//   POST /v1/chat/completions   OpenAI's request and answer; `stream: true` relays the upstream's Server-Sent
//                               Events event by event as they arrive, ending with `data: [DONE]`
//   GET  /v1/models             the configured models
//   POST /api/generate          {prompt, model?, system?, max_tokens?} -> {text, model, upstream, cached, usage}
//   POST /v1/messages           Anthropic's Messages API (ai/anthropic.hpp): the request becomes the OpenAI chat
//                               request it stands for and goes the same way (cache, metering, upstreams); the answer,
//                               a stream's events and errors come back in Anthropic's shape
//   POST /v1/embeddings         OpenAI's request and answer (ai/embeddings.hpp); each input is cached on its own
//                               (per user, model and dimensions, by the input's content), a batch asks the upstream
//                               only for the inputs the cache lacks, and the answer is put back together in order
//
// A call, inside a bridge worker once the caller is authenticated (policy "generate") and under the generation
// in-flight gate:
//   1. reserve one generation of the caller's daily quota on their session (429 when used up; given back if the
//      call fails);
//   2. deterministic calls (temperature 0, or `X-Troupe-Cache: on`; never `off`, never streams) go through the
//      cache's get_or_compute, keyed by the normalised request and the caller (ai/openai.hpp); other
//      non-streamed calls through its single flight, so identical concurrent calls reach an upstream once;
//   3. the upstreams serving the model are tried by priority, then weighted at random among equals. Each call asks
//      the upstream's breaker for a permit (actors/breaker.hpp) and respects the upstream's max_inflight; a
//      retryable failure (connect error, timeout, 429, 500, 502, 503, 504, a broken transfer) is retried on the same
//      upstream after an exponential backoff with full jitter, up to retry.max_attempts; then, or for a
//      non-retryable upstream failure (garbage, an answer over the size cap, refused credentials), the next
//      upstream is tried. A client error the upstream reports (400, 404, 413, 422) is the caller's and ends the
//      call. A stream is never retried after its first byte reached the client: a later failure ends it with an
//      error event instead of [DONE];
//   4. every outcome is reported to the breaker; token usage (reported, else estimated) is added to the caller's
//      day through the DB writer.
// All upstreams exhausted: 503 with Retry-After when no upstream could be tried (breakers open, all busy), else
// 502 (failure) or 504 (timeout) naming the upstream and what happened, never a key.
//
// Answers carry X-Troupe-Upstream (who answered) and X-Cache: HIT (the answer came from the cache or from an
// identical call in flight) or MISS. An embeddings answer is a HIT when every input came from the cache, and says
// in X-Troupe-Cached-Inputs how many did; its usage is what the upstream counted for the others.

#include "http/auth.hpp"
#include "actors/upstream_client.hpp"
#include "config/json_schema.hpp"
#include "ai/openai.hpp"
#include "http/router.hpp"
#include "http/traffic.hpp"

#include "actors/breaker.hpp"
#include "actors/cache.hpp"
#include "actors/metrics.hpp"
#include "config/log.hpp"
#include "actors/ops.hpp"
#include "config/options.hpp"
#include "config/upstreams.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace troupe::http {

struct gateway_options {
  std::vector<config::upstream_settings> upstreams;
  std::shared_ptr<client::upstream_clients> clients;
  std::shared_ptr<cache_client> cache;
  std::shared_ptr<directory> names; // breakers ("upstream.<name>.breaker") and "db.writer"
  int64_t max_attempts = 3;
  std::chrono::milliseconds retry_base{200};
  std::chrono::milliseconds retry_cap{5000};
  size_t max_response_bytes = 8 * 1024 * 1024;
  size_t max_messages = 1000;
  /// Image parts (gateway.max_images, gateway.max_image_bytes, gateway.max_image_request_bytes).
  openai::image_limits images;
  std::chrono::milliseconds cache_ttl{3600000};
  /// The whole of a generation: every attempt and fallback (gateway.max_generation_ms).
  std::chrono::milliseconds max_generation{600000};
  /// Upstream calls slower than this are logged once ("slow operation", kind upstream) with their stages (ops.slow_ms).
  std::chrono::milliseconds slow{1000};
  /// The time a generation route has to start its answer (gateway.request_timeout_ms): the routes' time limit, and
  /// the budget of a non-streamed call's attempts.
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

/// The options the settings decide: the upstreams, retry.*, upstream.max_response_bytes, gateway.* and
/// quota.reset_utc_hour. The caller adds what the process shares: clients, cache, names, metrics, gauges.
gateway_options gateway_options_from(const config::settings& settings);

class gateway : public std::enable_shared_from_this<gateway> {
public:
  gateway(authenticator& auth, gateway_options options);
  ~gateway();

  void chat(const std::shared_ptr<responder>& r);
  void generate(const std::shared_ptr<responder>& r);
  void models(const std::shared_ptr<responder>& r);
  void embeddings(const std::shared_ptr<responder>& r);
  void messages(const std::shared_ptr<responder>& r);
  const gateway_options& options() const { return opts_; }

  struct upstream; // one configured upstream and its live counters
  struct call;     // one client request on its way through the upstreams

  /// Keeps an idle stream's connection alive (SSE comments) until its transfer ends; bridge worker only.
  /// Keeps idle streams' connections alive with SSE comments (gateway.stream_heartbeat_ms). Every stream whose
  /// transfer runs is watched; one sweep every quarter heartbeat walks them all and writes a comment to those quiet
  /// for a heartbeat: one timer for the whole gateway instead of one per stream (each CAF timer wakes the clock
  /// thread twice and the worker once). Bridge worker only.
  void watch_stream(caf::event_based_actor* self, const std::shared_ptr<call>& c);
  void sweep_streams(caf::event_based_actor* self);
  void schedule_sweep(caf::event_based_actor* self);

private:
  void start(const std::shared_ptr<call>& c);
  /// A cacheable call asks its cache shard directly (http/caller.hpp) and a hit is answered where the shard answers;
  /// everything else continues in a bridge worker (run).
  void look_up(const std::shared_ptr<call>& c);
  void run(caf::event_based_actor* self, const std::shared_ptr<call>& c);
  /// Embeddings: look up every distinct input in the cache (in the worker), then ask an upstream for the missing
  /// ones (embed_fetch) and answer in the request's order (embed_answer).
  void embed_lookup(caf::event_based_actor* self, const std::shared_ptr<call>& c);
  void embed_fetch(caf::event_based_actor* self, const std::shared_ptr<call>& c);
  void embed_answer(const std::shared_ptr<call>& c, const std::string& upstream);
  void next_upstream(caf::event_based_actor* self, const std::shared_ptr<call>& c);
  void admit(caf::event_based_actor* self, const std::shared_ptr<call>& c, upstream* u);
  void send(caf::event_based_actor* self, const std::shared_ptr<call>& c, upstream* u, breaker_admission permit);
  void on_response(caf::event_based_actor* self, const std::shared_ptr<call>& c, upstream* u, breaker_admission permit,
                   client::upstream_response& res);
  void exhausted(const std::shared_ptr<call>& c);
  void succeed(caf::event_based_actor* self, const std::shared_ptr<call>& c, upstream* u, std::string body);
  void finish_stream(caf::event_based_actor* self, const std::shared_ptr<call>& c, upstream* u,
                     breaker_admission permit, client::upstream_response& res);
  /// Writes what the call cost: its tokens added to the user's day (usage) and its row in the ledger
  /// (usage_events: model, upstream, API key, tokens, cost, whether estimated, `outcome`).
  void record_usage(call& c, const upstream& u, const openai::usage& used, const char* outcome);
  /// Answers a call whose spend reservation was refused: 429 with Retry-After for the token window, 402
  /// insufficient_quota (OpenAI's shape) with Retry-After until the budget renews.
  void refuse_spend(const std::shared_ptr<call>& c, const spend_status& spend, int64_t tokens, int64_t pusd);
  void give_back_quota(const std::shared_ptr<call>& c);
  /// Sends an error answer of the call: as it is, or in Anthropic's shape for a /v1/messages call.
  void send_error(const std::shared_ptr<call>& c, response res);
  std::vector<upstream*> candidates(const std::string& model);
  /// The time a call's attempts may take: gateway.max_generation_ms for a stream, at most gateway.request_timeout_ms
  /// for a plain answer.
  std::chrono::milliseconds budget_of(const call& c) const;

  authenticator& auth_;
  gateway_options opts_;
  std::vector<std::unique_ptr<upstream>> upstreams_;
  openai::chat_validator chat_schema_;  // the chat request (schemas::chat_completion)
  json_schema generate_schema_;         // POST /api/generate (schemas::generate)
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

void add_gateway_routes(router& routes, const std::shared_ptr<gateway>& gw, std::shared_ptr<inflight_gate> gate);

} // namespace troupe::http
