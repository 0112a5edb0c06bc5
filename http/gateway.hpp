#pragma once
// The AI gateway's routes: OpenAI-compatible and Anthropic-compatible fronts on the gateway's calls
// (actors/gateway_calls.hpp, which hold the cache, the upstreams, retry and failover, the quota and the usage).
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
// What a route does here: parse and validate the body (a JSON Schema: openai::chat_schema, schemas::generate;
// embeddings::validate_request), refuse what no upstream could serve, authenticate the caller under policy
// "generate" (its session reserves one generation of the daily quota and the call's estimated tokens and price:
// 429 or 402 when refused, 403 for a model its API key may not call), then hand the call over: a cacheable call asks
// its cache shard straight from the session's thread (a hit is answered there), everything else runs in a bridge
// worker (gateway_calls::run). The answer, a stream's head and an error come back through the call's exchange,
// which gives them the route's shape.
//
// Answers carry X-Troupe-Upstream (who answered) and X-Cache: HIT (the answer came from the cache or from an
// identical call in flight) or MISS. An embeddings answer is a HIT when every input came from the cache, and says
// in X-Troupe-Cached-Inputs how many did; its usage is what the upstream counted for the others.

#include "http/auth.hpp"
#include "http/router.hpp"
#include "http/traffic.hpp"

#include "actors/gateway_calls.hpp"
#include "ai/openai.hpp"
#include "config/json_schema.hpp"
#include "config/options.hpp"

#include <memory>
#include <string>

namespace troupe::http {

/// The gateway's settings (gateway_calls) and what its routes read: gateway.max_messages and the image limits.
struct gateway_options : gateway_settings {
  size_t max_messages = 1000;
  /// Image parts (gateway.max_images, gateway.max_image_bytes, gateway.max_image_request_bytes).
  openai::image_limits images;
};

/// The options the settings decide. The caller adds what the process shares: clients, cache, names, metrics, gauges.
gateway_options gateway_options_from(const config::settings& settings);

class gateway : public std::enable_shared_from_this<gateway> {
public:
  gateway(authenticator& auth, gateway_options options);

  void chat(const std::shared_ptr<responder>& r);
  void generate(const std::shared_ptr<responder>& r);
  void models(const std::shared_ptr<responder>& r);
  void embeddings(const std::shared_ptr<responder>& r);
  void messages(const std::shared_ptr<responder>& r);
  const gateway_options& options() const { return opts_; }

private:
  using call = gateway_calls::call;
  /// Refuses what no upstream could serve, then authenticates the caller (the session reserves the quota and the
  /// call's estimate) and hands the call over (look_up).
  void start(const std::shared_ptr<call>& c, const std::shared_ptr<gateway_exchange>& x);
  /// A cacheable call asks its cache shard directly (http/caller.hpp) and a hit is answered where the shard answers;
  /// everything else continues in a bridge worker.
  void look_up(const std::shared_ptr<call>& c, const std::shared_ptr<responder>& r);
  /// Answers a call whose spend reservation was refused: 429 with Retry-After for a window, 402 insufficient_quota
  /// (OpenAI's shape) with Retry-After until the budget renews, 403 for a model the API key may not call.
  void refuse_spend(const std::shared_ptr<gateway_exchange>& x, const identity& who, const std::string& model,
                    bool inputs, int64_t tokens, int64_t pusd);

  authenticator& auth_;
  gateway_options opts_;
  std::shared_ptr<gateway_calls> calls_;
  openai::chat_validator chat_schema_; // the chat request (openai::chat_schema)
  json_schema generate_schema_;        // POST /api/generate (schemas::generate)
};

void add_gateway_routes(router& routes, const std::shared_ptr<gateway>& gw, std::shared_ptr<inflight_gate> gate);

} // namespace troupe::http
