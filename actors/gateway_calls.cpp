#include "actors/gateway_calls.hpp"

#include "actors/guards.hpp"
#include "actors/persistence_supervisor.hpp"
#include "actors/upstream_outcome.hpp"
#include "config/json.hpp"
#include "config/service_error.hpp"
#include "persistence/ids.hpp"
#include "persistence/messages.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <random>
#include <utility>

namespace troupe {

using std::chrono::milliseconds;
namespace oa = openai;

struct gateway_calls::upstream {
  config::upstream_settings cfg;
  std::string url;            // base_url + "/chat/completions", or "/messages" for type anthropic
  bool anthropic = false;     // type anthropic: OpenAI-shaped calls are translated (ai/anthropic.hpp)
  std::string embeddings_url; // base_url + "/embeddings"
  actor_name<breaker_actor> breaker;
  std::shared_ptr<breaker_gauges> gauges; // what its breaker publishes (null in tests without one)
  std::atomic<int64_t> inflight{0};
  peak_ewma latency; // of its answers (ms), for the choice among upstreams of the same priority
};

/// One client request. Owned by the worker running it; the stream part is also touched by the upstream
/// client's thread while a transfer runs (and only then: the worker reads it after the transfer's answer).
struct gateway_calls::call {
  std::shared_ptr<gateway_exchange> x;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::string user_id;    // the caller (the cache's tenant)
  std::string api_key_id; // the API key it came with, "" for a user's token
  oa::chat_request req;
  /// Whether the answer may come from, and goes into, the cache; the key is built once the caller is known (key_of).
  bool cacheable = false;
  /// One generation of the user's daily quota, reserved by authentication: committed once the answer (or a stream's
  /// first byte) reaches the client, given back on failure, and given back too if the call is dropped unanswered.
  quota_reservation quota;
  /// The call's estimate (its prompt's tokens plus max_tokens per choice, and their price), reserved against the
  /// user's token window and spend budgets by authentication; settled to the recorded usage, or to 0 when the call
  /// produced nothing here (a failure, a cache hit, a shared flight).
  spend_reservation spend;
  bool produced = false;                                // this request made the upstream call (X-Cache: MISS)
  bool anthropic_client = false; // came in as POST /v1/messages: answers, events and errors in Anthropic's shape
  // The request as an upstream of type anthropic takes it, translated on the first attempt at one; or why it cannot.
  std::optional<std::string> anthropic_body;
  std::string anthropic_why;
  size_t type_refusals = 0; // upstreams of type anthropic skipped because they cannot take the request
  std::function<void(caf::expected<std::string>)> done; // the non-streamed result (an encoded gateway_answer)

  std::vector<upstream*> candidates;
  size_t next = 0;
  int attempt = 0;                    // attempts on the current upstream
  tracing::span_id upstream_span{};   // the current attempt's span (its traceparent's parent id)
  std::chrono::steady_clock::time_point upstream_began{}; // when the current attempt was sent
  bool attempted_any = false;         // some upstream was actually called
  int64_t refused_retry_after_ms = 0; // smallest Retry-After of the breakers that refused
  // The last failure, for the final error.
  service_error code = service_error::unavailable;
  std::string message;
  int64_t retry_after_ms = 0;

  // Streaming. The upstream client's thread feeds the relay (on_data) while a transfer runs; the worker sends
  // heartbeats and finishes it: `out` and the write times are shared between them under the mutex.
  struct relay {
    std::mutex mutex;
    std::unique_ptr<oa::sse_relay> sse;
    std::unique_ptr<anthropic::stream_from_anthropic> from_upstream; // an upstream of type anthropic: its events
    std::unique_ptr<anthropic::stream_to_anthropic> to_client;       // a /v1/messages client: its events
    std::shared_ptr<event_sink> out; // open once the first byte (an event or a heartbeat) reached the client
    std::string upstream;
    std::string error_body; // a non-2xx answer's body (bounded)
    bool client_gone = false;
    std::chrono::steady_clock::time_point gone_at; // when client_gone was found
    bool finished = false; // the transfer has ended: no more heartbeats
    bool watched = false;  // in the gateway's streams_ (heartbeats)
    std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();

    /// The client is gone (a write failed or its stream could not open). The upstream is still read for up to
    /// `drain` (nothing is sent or kept but its usage): returns whether the transfer goes on.
    bool client_left(std::chrono::milliseconds drain) {
      if (!client_gone) {
        client_gone = true;
        gone_at = std::chrono::steady_clock::now();
      }
      return std::chrono::steady_clock::now() - gone_at < drain && !sse->failed();
    }
  };
  std::shared_ptr<relay> stream;

  /// An embeddings call: its request and each distinct input's way through the cache and the upstream. Touched by
  /// the worker running the call only.
  struct embedding {
    embeddings::request req;
    std::vector<size_t> slot;         // input i -> its distinct input
    std::vector<size_t> first;        // distinct input -> the first input that is it
    std::vector<std::string> keys;    // distinct input -> cache key
    std::vector<std::string> vectors; // distinct input -> vector (base64 float32), "" until known
    std::vector<size_t> missing;      // distinct inputs asked of the upstream, in the order sent
    size_t waiting = 0;               // cache look-ups outstanding
    std::string model;                // as the upstream's answer names it
    oa::usage used;                   // what the upstream counted
  };
  std::shared_ptr<embedding> embed;

  /// What is left of gateway.max_generation_ms.
  std::chrono::milliseconds remaining(std::chrono::milliseconds max_generation) const {
    return max_generation
           - std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  }
};

namespace {

constexpr size_t max_error_body = 64 * 1024;
constexpr auto breaker_timeout = std::chrono::seconds{1};

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

int64_t now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string seconds_text(int64_t ms) {
  return std::to_string(std::max<int64_t>(1, (ms + 999) / 1000));
}


} // namespace

namespace {

std::string embeddings_too_large(size_t limit) {
  return "The answer to this request would be larger than " + std::to_string(limit)
         + " bytes (upstream.max_response_bytes): send fewer inputs, fewer dimensions, or use encoding_format "
           "base64.";
}

} // namespace

namespace {

/// The cache key of an authenticated call: its tenant (the user) and the hash of the request's deciding part
/// (openai::cache_key), after the format of what is kept there (gateway_answer_format: another version's entries are
/// never read). A single flight (a call that is not cacheable) has keys of its own, so a cached entry never answers
/// it.
std::string key_of(const gateway_calls::call& c, bool cacheable) {
  auto key = std::string{gateway_answer_format} + ":" + oa::cache_key(c.req, c.user_id);
  return cacheable ? key : "flight:" + key;
}

/// The cache tag of a tenant's answers: what clearing a user's cached answers names.
std::string tenant_tag(const std::string& user_id) {
  return "gw:" + user_id;
}

} // namespace

gateway_calls::gateway_calls(gateway_settings settings) : opts_(std::move(settings)) {
  for (const auto& cfg : opts_.upstreams) {
    auto u = std::make_unique<upstream>();
    u->cfg = cfg;
    u->anthropic = cfg.type == "anthropic";
    u->url = cfg.base_url + (u->anthropic ? "/messages" : "/chat/completions");
    u->embeddings_url = cfg.base_url + "/embeddings";
    u->breaker = breaker_name(cfg.name);
    if (upstreams_.size() < opts_.gauges.size())
      u->gauges = opts_.gauges[upstreams_.size()];
    upstreams_.push_back(std::move(u));
  }
  if (opts_.metrics) {
    upstream_requests_ = &opts_.metrics->counter(
      "troupe_upstream_requests_total", "Calls to upstreams, by upstream and outcome.", {"upstream", "outcome"});
    upstream_seconds_ = &opts_.metrics->histogram("troupe_upstream_request_duration_seconds",
                                                  "Duration of calls to upstreams, by upstream.", {"upstream"},
                                                  latency_buckets_seconds());
    slow_operations_ = &slow_operations(*opts_.metrics);
    cache_results_ = &opts_.metrics->counter("troupe_gateway_cache_total",
                                             "Chat completions by cache result (hit, miss, bypass).", {"result"});
    embedding_inputs_ = &opts_.metrics->counter(
      "troupe_gateway_embedding_inputs_total",
      "Inputs of embeddings requests by where their vector came from (hit: the cache, miss: an upstream, bypass: an "
      "upstream, the cache being off for the request).",
      {"result"});
    std::vector<std::pair<std::string, std::shared_ptr<breaker_gauges>>> gauges;
    for (size_t i = 0; i < upstreams_.size() && i < opts_.gauges.size(); ++i)
      gauges.emplace_back(upstreams_[i]->cfg.name, opts_.gauges[i]);
    opts_.metrics->add_collector([gauges](prometheus_writer& out) {
      out.family("troupe_upstream_breaker_state", "gauge", "Circuit breaker state: 0 closed, 1 open, 2 half-open.");
      for (const auto& [name, g] : gauges)
        out.sample("troupe_upstream_breaker_state", {{"upstream", name}}, g->state.load());
      out.family("troupe_upstream_breaker_opened_total", "counter", "Times the circuit breaker opened.");
      for (const auto& [name, g] : gauges)
        out.sample("troupe_upstream_breaker_opened_total", {{"upstream", name}}, static_cast<double>(g->opened.load()));
      out.family("troupe_upstream_breaker_rejected_total", "counter", "Calls the circuit breaker kept away.");
      for (const auto& [name, g] : gauges)
        out.sample("troupe_upstream_breaker_rejected_total", {{"upstream", name}},
                   static_cast<double>(g->rejected.load()));
    });
  }
  // GET /v1/models never changes while the process runs.
  std::map<std::string, std::vector<std::string>> owners;
  for (const auto& u : upstreams_)
    for (const auto& m : u->cfg.models)
      owners[m].push_back(u->cfg.name);
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("object");
  w.String("list");
  w.Key("data");
  w.StartArray();
  for (const auto& [model, names] : owners) {
    w.StartObject();
    w.Key("id");
    w.String(model.c_str());
    w.Key("object");
    w.String("model");
    w.Key("created");
    w.Int64(0);
    w.Key("owned_by");
    std::string joined;
    for (const auto& n : names)
      joined += (joined.empty() ? "" : ",") + n;
    w.String(joined.c_str());
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  models_body_.assign(buffer.GetString(), buffer.GetSize());
}

gateway_calls::~gateway_calls() = default;

std::string gateway_calls::default_model() const {
  return upstreams_.empty() || upstreams_.front()->cfg.models.empty() ? std::string{}
                                                                      : upstreams_.front()->cfg.models.front();
}

std::shared_ptr<gateway_calls::call> gateway_calls::chat_call(std::shared_ptr<gateway_exchange> x,
                                                              oa::chat_request req, bool cacheable,
                                                              bool anthropic_client) {
  auto c = std::make_shared<call>();
  // The call's time counts from the request's arrival, as the route's time limit does.
  c->started = x->started();
  c->x = std::move(x);
  c->req = std::move(req);
  c->cacheable = cacheable;
  c->anthropic_client = anthropic_client;
  c->candidates = candidates(c->req.model);
  return c;
}

std::shared_ptr<gateway_calls::call> gateway_calls::embeddings_call(std::shared_ptr<gateway_exchange> x,
                                                                    embeddings::request req, bool cacheable) {
  auto c = std::make_shared<call>();
  c->started = x->started();
  c->x = std::move(x);
  c->embed = std::make_shared<call::embedding>();
  auto& e = *c->embed;
  e.req = std::move(req);
  // What the rest of the call reads of a request: the model, and the characters its token estimate counts.
  c->req.model = e.req.model;
  c->req.prompt_chars = e.req.prompt_chars;
  c->cacheable = cacheable && opts_.cache;
  // Identical inputs of one batch are looked up, asked for and stored once.
  std::map<std::string_view, size_t> distinct;
  e.slot.reserve(e.req.inputs.size());
  for (size_t i = 0; i < e.req.inputs.size(); ++i) {
    auto [it, added] = distinct.emplace(e.req.inputs[i], e.first.size());
    if (added)
      e.first.push_back(i);
    e.slot.push_back(it->second);
  }
  e.vectors.resize(e.first.size());
  // Anthropic has no embeddings.
  c->candidates = candidates(c->req.model);
  c->candidates.erase(std::remove_if(c->candidates.begin(), c->candidates.end(),
                                     [](const upstream* u) { return u->anthropic; }),
                      c->candidates.end());
  return c;
}

std::optional<caf::error> gateway_calls::refuse(const call& c, std::string& param) const {
  if (c.embed && c.embed->req.dimensions > 0) {
    // A batch whose answer could not be sent is refused before it costs anything (when its dimensions are known;
    // the answer is measured again before it is written).
    const auto& r = c.embed->req;
    auto per_input = static_cast<size_t>(r.base64 ? (r.dimensions * 4 + 2) / 3 * 4 : r.dimensions * 16);
    if (per_input * r.inputs.size() > opts_.max_response_bytes) {
      param = "input";
      return make_error(service_error::invalid_input, embeddings_too_large(opts_.max_response_bytes));
    }
  }
  if (c.candidates.empty()) {
    param = "model";
    return make_error(service_error::not_found, "The model `" + c.req.model + "` does not exist or no upstream serves it"
                                                  + (c.embed ? " embeddings" : "") + ".");
  }
  return std::nullopt;
}

gateway_calls::estimate_t gateway_calls::estimate(const call& c) const {
  auto prompt_tokens = oa::estimate_tokens(c.req.prompt_chars);
  // max_tokens is only bounded below: past 10^9 (no model comes near) it counts as 10^9, so no sum can overflow.
  auto per_choice = std::min<int64_t>(c.req.max_output_tokens > 0 ? c.req.max_output_tokens : opts_.default_max_tokens,
                                      1000000000);
  auto completion_tokens = c.embed ? 0 : per_choice * std::max<int64_t>(1, c.req.choices);
  return {prompt_tokens + completion_tokens,
          config::cost_pusd(opts_.prices, c.req.model, prompt_tokens, completion_tokens), c.embed != nullptr};
}

const std::string& gateway_calls::model_of(const call& c) const {
  return c.req.model;
}

void gateway_calls::authenticated(call& c, std::string user_id, std::string api_key_id, quota_reservation quota,
                                  spend_reservation spend) {
  c.user_id = std::move(user_id);
  c.api_key_id = std::move(api_key_id);
  c.quota = std::move(quota);
  c.spend = std::move(spend);
}

std::optional<std::pair<cache_key_actor, std::string>> gateway_calls::direct_lookup(const call& c) const {
  if (c.embed || c.req.stream || !c.cacheable || !opts_.cache)
    return std::nullopt;
  auto key = key_of(c, true);
  auto shard = opts_.cache->first_stop(key);
  if (!shard)
    return std::nullopt;
  return std::make_pair(*shard, std::move(key));
}

bool gateway_calls::take_hit(call& c, const cache_reply& reply) {
  auto answer = reply.hit ? decode_gateway_answer(reply.value) : caf::expected<gateway_answer>{caf::error{}};
  if (!answer)
    return false; // a miss (or a damaged entry): the call runs, claims and produces, or waits for whoever produces
  if (cache_results_)
    cache_results_->inc({"hit"});
  c.x->mark("cache");
  c.quota.commit();     // a cached answer: the generation is used
  c.spend.settle(0, 0); // and costs nothing
  c.x->answer(*answer, true);
  return true;
}

std::vector<gateway_calls::upstream*> gateway_calls::candidates(const std::string& model) {
  std::vector<upstream*> serving;
  for (const auto& u : upstreams_)
    if (std::find(u->cfg.models.begin(), u->cfg.models.end(), model) != u->cfg.models.end())
      serving.push_back(u.get());
  // By priority; among equals, a weighted random order (Efraimidis-Spirakis keys).
  std::vector<std::pair<double, upstream*>> keyed;
  std::uniform_real_distribution<double> unit{0, 1};
  for (auto* u : serving)
    keyed.emplace_back(-std::log(std::max(1e-12, unit(gateway_random()))) / static_cast<double>(u->cfg.weight), u);
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) {
    if (a.second->cfg.priority != b.second->cfg.priority)
      return a.second->cfg.priority < b.second->cfg.priority;
    return a.first < b.first;
  });
  std::vector<upstream*> order;
  for (auto& [key, u] : keyed)
    order.push_back(u);
  // Power of two choices: the first two of each priority are a weighted random pair; the one expected to answer
  // sooner (peak-EWMA latency times calls in flight plus one) goes first, the other stays next in line.
  auto now = steady_ns();
  for (size_t i = 0; i + 1 < order.size(); ++i) {
    if (i > 0 && order[i - 1]->cfg.priority == order[i]->cfg.priority)
      continue; // not the first of its priority
    auto* a = order[i];
    auto* b = order[i + 1];
    if (a->cfg.priority != b->cfg.priority)
      continue;
    if (expected_cost(b->latency.value(now), b->inflight.load(std::memory_order_relaxed))
        < expected_cost(a->latency.value(now), a->inflight.load(std::memory_order_relaxed)))
      std::swap(order[i], order[i + 1]);
  }
  return order;
}

milliseconds gateway_calls::budget_of(const call& c) const {
  // A stream answers as soon as it starts (its first byte or heartbeat); a plain answer must be whole within the
  // route's time limit, so no attempt starts past it. The margin lets the gateway's own answer (its error, the quota
  // given back) go out before the server's 504, which the connection's tick sends up to 100 ms late anyway.
  constexpr milliseconds margin{250};
  return c.req.stream ? opts_.max_generation
                      : std::min(opts_.max_generation, std::max(opts_.request_timeout - margin, milliseconds{1}));
}

void gateway_calls::give_back(const std::shared_ptr<call>& c) {
  c->quota.give_back();
  c->spend.settle(0, 0);
}

void gateway_calls::run(caf::event_based_actor* self, const std::shared_ptr<call>& c) {
  if (c->embed) {
    embed_lookup(self, c);
    return;
  }
  if (c->req.stream) {
    if (cache_results_)
      cache_results_->inc({"bypass"});
    c->stream = std::make_shared<call::relay>();
    next_upstream(self, c);
    return;
  }
  auto me = shared_from_this();
  auto key = key_of(*c, c->cacheable);
  auto produce = [me, c](caf::event_based_actor* worker, cache_client::result_handler done) {
    c->produced = true;
    c->done = std::move(done);
    me->next_upstream(worker, c);
  };
  auto then = [me, c](caf::expected<std::string> result) {
    if (me->cache_results_)
      me->cache_results_->inc({c->produced ? "miss" : c->cacheable ? "hit" : "shared"});
    if (!result) {
      me->give_back(c);
      c->x->fail(result.error(), {}, c->produced ? c->retry_after_ms : 0);
      return;
    }
    auto answer = decode_gateway_answer(*result);
    if (!answer) {
      // Not an answer this node can read: nothing reached the client, so nothing is used.
      me->give_back(c);
      c->x->fail(answer.error());
      return;
    }
    c->quota.commit(); // an answer arrived (produced here, shared, or cached): the generation is used
    if (!c->produced)
      c->spend.settle(0, 0); // another call's answer: its producer recorded (and settled) the cost
    c->x->answer(*answer, !c->produced);
  };
  // A producer may need every attempt on every upstream.
  milliseconds budget{0};
  for (auto* u : c->candidates)
    budget += (milliseconds{u->cfg.timeout_ms} + opts_.retry_cap) * opts_.max_attempts;
  budget = std::min(budget, budget_of(*c) + milliseconds{1000});
  if (!opts_.cache) {
    produce(self, then);
    return;
  }
  if (c->cacheable)
    opts_.cache->get_or_compute(self, key, opts_.cache_ttl, {tenant_tag(c->user_id)}, produce, then, budget);
  else
    opts_.cache->single_flight(self, key, produce, then, budget);
}

void gateway_calls::embed_lookup(caf::event_based_actor* self, const std::shared_ptr<call>& c) {
  auto& e = *c->embed;
  if (!c->cacheable) {
    embed_fetch(self, c);
    return;
  }
  e.keys.reserve(e.first.size());
  for (auto i : e.first)
    e.keys.push_back(embeddings::input_key(e.req, i, c->user_id));
  e.waiting = e.keys.size();
  auto me = shared_from_this();
  // Every answer arrives in this worker, one at a time; the last one goes on. An error or a damaged entry is a miss.
  for (size_t d = 0; d < e.keys.size(); ++d)
    opts_.cache->get(self, e.keys[d], [me, self, c, d](caf::expected<std::optional<std::string>> value) {
      auto& e = *c->embed;
      if (value && *value && embeddings::valid_vector(**value))
        e.vectors[d] = std::move(**value);
      if (--e.waiting == 0)
        me->embed_fetch(self, c);
    });
}

void gateway_calls::embed_fetch(caf::event_based_actor* self, const std::shared_ptr<call>& c) {
  auto& e = *c->embed;
  std::vector<size_t> which; // the inputs asked for
  size_t chars = 0;
  for (size_t d = 0; d < e.vectors.size(); ++d) {
    if (!e.vectors[d].empty())
      continue;
    e.missing.push_back(d);
    which.push_back(e.first[d]);
    chars += e.req.input_chars[e.first[d]];
  }
  if (embedding_inputs_) {
    size_t missing_inputs = 0;
    for (auto d : e.slot)
      missing_inputs += e.vectors[d].empty() ? 1 : 0;
    auto result = c->cacheable ? "miss" : "bypass";
    if (missing_inputs < e.slot.size())
      embedding_inputs_->inc({"hit"}, e.slot.size() - missing_inputs);
    if (missing_inputs > 0)
      embedding_inputs_->inc({result}, missing_inputs);
  }
  if (e.missing.empty()) {
    c->quota.commit();     // an answer: the generation is used
    c->spend.settle(0, 0); // and costs nothing
    embed_answer(c, "");
    return;
  }
  c->req.body = embeddings::upstream_body(e.req, which);
  c->req.prompt_chars = chars;
  c->produced = true;
  auto me = shared_from_this();
  // on_response checked the answer, filled the vectors, stored them and recorded the usage before this runs. The
  // call is held weakly: whoever runs this holds it, and a handler dropped unrun (a worker that died) must not keep
  // it, and its reservations, alive.
  c->done = [me, weak = std::weak_ptr<call>(c)](caf::expected<std::string> result) {
    auto c = weak.lock();
    if (!c)
      return;
    if (!result) {
      me->give_back(c);
      c->x->fail(result.error(), {}, c->retry_after_ms);
      return;
    }
    c->quota.commit();
    auto answer = decode_gateway_answer(*result);
    me->embed_answer(c, answer ? answer->upstream : std::string{});
  };
  next_upstream(self, c);
}

void gateway_calls::embed_answer(const std::shared_ptr<call>& c, const std::string& upstream) {
  auto& e = *c->embed;
  // Cached and fresh vectors of one model must agree in size: two upstreams serving one model name with vectors of
  // different sizes is a configuration error, reported rather than answered with a mix.
  for (const auto& v : e.vectors)
    if (v.size() != e.vectors.front().size()) {
      c->x->fail(make_error(service_error::upstream_failed,
                            "The vectors for `" + e.req.model
                              + "` differ in size between the cache and the upstream; the upstreams serving it "
                                "must produce vectors of one size."));
      return;
    }
  auto model = e.model.empty() ? e.req.model : e.model;
  if (embeddings::answer_bytes(e.vectors, e.slot, e.req.base64, model) > opts_.max_response_bytes) {
    c->x->fail(make_error(service_error::invalid_input, embeddings_too_large(opts_.max_response_bytes)), "input");
    return;
  }
  std::vector<bool> asked(e.vectors.size());
  for (auto d : e.missing)
    asked[d] = true;
  size_t cached = 0;
  for (auto d : e.slot)
    cached += asked[d] ? 0 : 1;
  c->x->answer_embeddings(embeddings::answer_body(e.vectors, e.slot, e.req.base64, model, e.used), upstream,
                         e.missing.empty(), cached);
}

void gateway_calls::next_upstream(caf::event_based_actor* self, const std::shared_ptr<call>& c) {
  while (c->next < c->candidates.size()) {
    auto* u = c->candidates[c->next++];
    c->attempt = 0;
    if (u->anthropic && !c->anthropic_body) {
      if (c->anthropic_why.empty())
        c->anthropic_body = anthropic::from_openai_request(c->req.body, opts_.default_max_tokens, c->anthropic_why);
      if (!c->anthropic_body) {
        // This upstream cannot take the request; another type may. Not a failure of the upstream.
        ++c->type_refusals;
        continue;
      }
    }
    if (u->inflight.load(std::memory_order_relaxed) >= u->cfg.max_inflight) {
      if (upstream_requests_)
        upstream_requests_->inc({u->cfg.name, "busy"});
      c->refused_retry_after_ms =
        c->refused_retry_after_ms > 0 ? std::min<int64_t>(c->refused_retry_after_ms, 1000) : 1000;
      continue;
    }
    admit(self, c, u);
    return;
  }
  exhausted(c);
}

void gateway_calls::admit(caf::event_based_actor* self, const std::shared_ptr<call>& c, upstream* u) {
  bool started_stream = false;
  if (c->stream) {
    std::lock_guard<std::mutex> guard{c->stream->mutex};
    started_stream = c->stream->out != nullptr;
  }
  if (c->x->answered() && !started_stream) {
    // The server answered already (the route's time limit): no further attempt; the quota and spend go back.
    c->attempted_any = true;
    c->code = service_error::timeout;
    c->message = "The route's time limit passed before an answer.";
    c->retry_after_ms = 0;
    exhausted(c);
    return;
  }
  if (c->remaining(budget_of(*c)).count() <= 0) {
    // Retries and fallbacks used up the generation's time: no further attempt.
    c->attempted_any = true;
    c->code = service_error::timeout;
    c->message = "The generation took longer than " + std::to_string(budget_of(*c).count())
                 + (c->req.stream ? " ms (gateway.max_generation_ms)." : " ms (gateway.request_timeout_ms).");
    c->retry_after_ms = 0;
    exhausted(c);
    return;
  }
  auto me = shared_from_this();
  auto refused = [me, self, c, u](int64_t retry_after_ms) {
    if (me->upstream_requests_)
      me->upstream_requests_->inc({u->cfg.name, "breaker_open"});
    c->refused_retry_after_ms =
      c->refused_retry_after_ms > 0 ? std::min(c->refused_retry_after_ms, retry_after_ms) : retry_after_ms;
    me->next_upstream(self, c);
  };
  // A closed breaker admits every call: its permit is read from what it publishes, without a round trip (and the
  // CAF clock's timeout) per call. Open or half-open, the actor decides.
  if (u->gauges) {
    if (auto permit = admit_if_closed(*u->gauges)) {
      send(self, c, u, *permit);
      return;
    }
  }
  auto breaker = opts_.names->get(u->breaker);
  if (!breaker) {
    refused(1000);
    return;
  }
  self->request(*breaker, caf::duration{breaker_timeout}, breaker_admit_atom::value)
    .then(
      [me, self, c, u, refused](breaker_admission& a) {
        if (!a.allowed)
          refused(a.retry_after_ms);
        else
          me->send(self, c, u, a);
      },
      [refused](caf::error&) { refused(1000); });
}

namespace {

/// Opens the client's stream (200, text/event-stream) if it is not open yet; false if the client is gone.
/// Called with the relay's mutex held.
bool open_stream(gateway_calls::call& c, std::chrono::milliseconds stall_limit) {
  auto& st = *c.stream;
  if (st.out)
    return true;
  // The stream's request is finished (and its spans made) when its head goes out: the upstream's span ends here, at
  // its first byte.
  c.x->mark("upstream", c.upstream_span, c.upstream_began);
  st.out = c.x->open_stream(st.upstream);
  if (!st.out)
    return false; // the caller marks the client gone (relay::client_left)
  // The first byte is out: the generation is used, whatever happens to the rest of the stream.
  c.quota.commit();
  // A client that reads nothing of the stream for this long is dropped (and the upstream call with it).
  st.out->set_stall_limit(stall_limit);
  return true;
}

} // namespace

void gateway_calls::send(caf::event_based_actor* self, const std::shared_ptr<call>& c, upstream* u,
                   breaker_admission permit) {
  ++c->attempt;
  c->attempted_any = true;
  // admit() made sure some of the budget is left.
  auto left = std::max(c->remaining(budget_of(*c)), milliseconds{1});
  client::upstream_request req;
  req.url = c->embed ? u->embeddings_url : u->url;
  req.headers = {"Content-Type: application/json", "X-Request-Id: " + c->x->request_id()};
  // W3C trace context: this attempt is a span of its own, the upstream's parent (responder::mark names it).
  c->upstream_span = tracing::new_span_id();
  c->upstream_began = std::chrono::steady_clock::now();
  const auto& trace = c->x->trace();
  if (!tracing::is_zero(trace.trace.data(), trace.trace.size())) {
    req.headers.push_back("traceparent: " + trace.traceparent_for(c->upstream_span));
    if (!trace.tracestate.empty())
      req.headers.push_back("tracestate: " + trace.tracestate);
  }
  if (u->anthropic) {
    if (!u->cfg.api_key.empty())
      req.headers.push_back("x-api-key: " + u->cfg.api_key);
    req.headers.push_back(std::string{"anthropic-version: "} + anthropic::api_version);
    req.body = c->embed ? c->req.body : *c->anthropic_body;
  } else {
    if (!u->cfg.api_key.empty())
      req.headers.push_back("Authorization: Bearer " + u->cfg.api_key);
    req.body = c->req.body;
  }
  req.connect_timeout = milliseconds{u->cfg.connect_timeout_ms};
  req.first_byte_timeout = std::min(milliseconds{u->cfg.first_byte_timeout_ms}, left);
  req.max_response_bytes = opts_.max_response_bytes;
  if (c->req.stream) {
    // A stream is bounded by its progress (stream_idle between bytes) and the whole generation's budget, not by the
    // upstream's timeout_ms, which bounds a non-streamed answer: a long answer that keeps coming is never cut.
    req.total_timeout = left;
    req.idle_timeout = opts_.stream_idle;
    req.headers.push_back("Accept: text/event-stream");
    // A fresh relay per attempt: nothing of an earlier attempt reached the client.
    auto st = c->stream;
    {
      std::lock_guard<std::mutex> guard{st->mutex};
      // A /v1/messages client gets the usage in its message_delta: the translator reads the usage chunk.
      st->sse = std::make_unique<oa::sse_relay>(c->req.prompt_chars, c->req.include_usage || c->anthropic_client);
      st->from_upstream = u->anthropic ? std::make_unique<anthropic::stream_from_anthropic>(now_unix()) : nullptr;
      st->to_client = c->anthropic_client
                        ? std::make_unique<anthropic::stream_to_anthropic>(oa::estimate_tokens(c->req.prompt_chars))
                        : nullptr;
      st->error_body.clear();
      st->upstream = u->cfg.name;
      st->finished = false;
    }
    auto stall = opts_.stream_idle;
    auto drain = opts_.stream_drain;
    req.on_data = [st, c, stall, drain](int status, const std::vector<std::pair<std::string, std::string>>&,
                                        std::string_view data) {
      std::lock_guard<std::mutex> guard{st->mutex};
      if (status < 200 || status >= 300) {
        if (st->error_body.size() < max_error_body)
          st->error_body.append(data.data(), std::min(data.size(), max_error_body - st->error_body.size()));
        return true;
      }
      std::string translated;
      if (st->from_upstream) {
        translated = st->from_upstream->feed(data);
        if (st->from_upstream->failed())
          st->sse->fail("Anthropic stream: " + st->from_upstream->why());
        data = translated;
      }
      auto events = st->sse->failed() ? std::string{} : st->sse->feed(data);
      if (st->to_client && !events.empty())
        events = st->to_client->feed(events);
      if (st->client_gone) // read on for the usage the upstream reports at the end; nothing is sent or kept
        return st->client_left(drain);
      if (!events.empty()) {
        if (!open_stream(*c, stall) || !st->out->write(events))
          return st->client_left(drain);
        st->last_write = std::chrono::steady_clock::now();
      }
      return !st->sse->failed();
    };
    watch_stream(self, c);
  } else {
    req.total_timeout = std::min(milliseconds{u->cfg.timeout_ms}, left);
    req.headers.push_back("Accept: application/json");
  }
  auto me = shared_from_this();
  // One of the upstream's max_inflight until the client actor answers, or until the callback is dropped unrun (the
  // holder keeps the gateway, and so the upstream's count, alive).
  auto slot = std::make_shared<count_holder>(std::shared_ptr<std::atomic<int64_t>>(me, &u->inflight));
  opts_.clients->call(self, std::move(req), [me, self, c, u, permit, slot](client::upstream_response& res) {
    slot->release();
    if (c->stream) {
      std::lock_guard<std::mutex> guard{c->stream->mutex};
      c->stream->finished = true;
    }
    me->on_response(self, c, u, permit, res);
  });
}

void gateway_calls::watch_stream(caf::event_based_actor* self, const std::shared_ptr<call>& c) {
  {
    std::lock_guard<std::mutex> guard{c->stream->mutex};
    if (!c->stream->watched) {
      c->stream->watched = true;
      std::lock_guard<std::mutex> streams{streams_mutex_};
      streams_.push_back(c);
    }
  }
  schedule_sweep(self);
}

void gateway_calls::schedule_sweep(caf::event_based_actor* self) {
  auto period = std::max(opts_.stream_heartbeat / 4, milliseconds{1});
  auto period_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(period).count();
  auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
               .count();
  auto due = sweep_due_ns_.load(std::memory_order_acquire);
  if (due != 0 && now < due + period_ns)
    return; // one is pending
  if (!sweep_due_ns_.compare_exchange_strong(due, now + period_ns, std::memory_order_acq_rel))
    return; // another worker scheduled it
  auto me = shared_from_this();
  self->delayed_send(caf::actor_cast<caf::actor>(self), period,
                     worker_job{[me](caf::event_based_actor* worker) { me->sweep_streams(worker); }});
}

void gateway_calls::sweep_streams(caf::event_based_actor* self) {
  sweep_due_ns_.store(0, std::memory_order_release);
  std::vector<std::weak_ptr<call>> current;
  {
    std::lock_guard<std::mutex> guard{streams_mutex_};
    current.swap(streams_);
  }
  // Never both locks at once here: watch_stream takes the relay's, then streams_mutex_.
  std::vector<std::weak_ptr<call>> keep;
  auto now = std::chrono::steady_clock::now();
  for (auto& weak : current) {
    auto c = weak.lock();
    if (!c)
      continue;
    auto& st = *c->stream;
    std::lock_guard<std::mutex> guard{st.mutex};
    if (st.finished || st.client_gone) {
      st.watched = false; // a retry's transfer watches it again
      continue;
    }
    if (now - st.last_write >= opts_.stream_heartbeat) {
      // Nothing went out for a while (the upstream thinks): a comment keeps proxies from dropping the connection.
      // The first one commits the answer: from here on a failure ends the stream instead of being retried.
      if (!open_stream(*c, opts_.stream_idle) || !st.out->write(": keep-alive\n\n")) {
        // The transfer notices at its next byte: it reads on for gateway.stream_drain_ms, or ends if that is 0.
        st.client_left(opts_.stream_drain);
        st.watched = false;
        continue;
      }
      st.last_write = now;
    }
    keep.push_back(std::move(weak));
  }
  bool any;
  {
    std::lock_guard<std::mutex> guard{streams_mutex_};
    streams_.insert(streams_.end(), std::make_move_iterator(keep.begin()), std::make_move_iterator(keep.end()));
    any = !streams_.empty();
  }
  if (any)
    schedule_sweep(self);
}

void gateway_calls::on_response(caf::event_based_actor* self, const std::shared_ptr<call>& c, upstream* u,
                          breaker_admission permit, client::upstream_response& res) {
  if (upstream_seconds_)
    upstream_seconds_->observe({u->cfg.name}, std::chrono::duration<double>(res.elapsed).count());
  c->x->mark("upstream", c->upstream_span, c->upstream_began); // a stream's answer was marked at its first byte
  // A stream's length is its generation's: for one, slow means a late first byte.
  auto waited = c->stream && res.first_byte_time.count() > 0 ? res.first_byte_time : res.elapsed;
  bool slow = waited >= opts_.slow;
  if (slow && slow_operations_)
    slow_operations_->inc({"upstream"});
  if (slow && slow_lines_.take()) { // at most 10 lines a second, like slow requests
    auto ms = [](std::chrono::microseconds t) { return std::max<int64_t>(0, t.count() / 1000); };
    log::warn("slow operation", log::fields{}
                                  .add("kind", "upstream")
                                  .add("request_id", c->x->request_id())
                                  .add("upstream", u->cfg.name)
                                  .add("status", res.status)
                                  .add("streamed", c->stream != nullptr)
                                  .add("duration_ms", ms(res.elapsed))
                                  .add("attempt", static_cast<int64_t>(c->attempt))
                                  .add("trace_id", c->x->trace().trace_hex())
                                  .add("not_logged_before", slow_lines_.suppressed())
                                  .add("stages_ms", "connect=" + std::to_string(ms(res.connect_time))
                                                      + " first_byte=" + std::to_string(ms(res.first_byte_time - res.connect_time))
                                                      + " body=" + std::to_string(ms(res.elapsed - res.first_byte_time))));
  }
  // The choice among upstreams learns from non-streamed answers (a stream's time is its length, not a latency). A
  // failure counts as the upstream's whole timeout, however fast it failed: an upstream that refuses at once must
  // not look like the fastest one.
  bool failed = res.error != client::transfer_error::none || res.status < 200 || res.status >= 300;
  if (failed)
    u->latency.observe(static_cast<double>(u->cfg.timeout_ms), steady_ns());
  else if (!c->stream)
    u->latency.observe(std::chrono::duration<double, std::milli>(res.elapsed).count(), steady_ns());
  if (c->stream && c->stream->out) {
    finish_stream(c, u, permit, res);
    return;
  }
  verdict v;
  std::string body;
  if (c->stream) {
    // Nothing reached the client yet: judge the transfer like a plain one.
    if (res.status < 200 || res.status >= 300)
      res.body = c->stream->error_body;
    v = judge_transfer(u->cfg.name, res, opts_.max_response_bytes);
    if (c->stream->client_gone) {
      // Whatever ended the transfer (its end, or the drain cut short), nobody waits for a retry.
      v = {false, false, false, false, service_error::unavailable, "The client went away.", 0};
      if (c->stream->sse->produced()) {
        // The upstream answered (and was read on for its usage) but the client left before its stream opened:
        // the generation was made, so it is used and recorded.
        c->quota.commit();
        record_usage(*c, *u, c->stream->sse->totals(), "client_gone");
      }
    } else if (v.ok) {
      auto why = c->stream->sse->failed() ? c->stream->sse->why() : "the upstream's stream ended without events";
      v = {false, false, false, true, service_error::upstream_failed, "Upstream " + u->cfg.name + ": " + why + ".", 0};
    }
  } else if (u->anthropic) {
    v = judge_transfer(u->cfg.name, res, opts_.max_response_bytes);
    if (v.ok) {
      // An Anthropic message, as the OpenAI answer the rest of the call reads.
      std::string why;
      auto converted = anthropic::from_anthropic_answer(res.body, now_unix(), why);
      std::optional<oa::usage> usage;
      if (converted) {
        res.body = std::move(*converted);
        usage = oa::check_completion(res.body, c->req.prompt_chars, why);
      }
      if (!usage)
        v = {false, false, false, true, service_error::upstream_failed, "Upstream " + u->cfg.name + ": " + why + ".",
             0};
      else
        record_usage(*c, *u, *usage, "complete");
    }
  } else if (c->embed) {
    v = judge_transfer(u->cfg.name, res, opts_.max_response_bytes);
    if (v.ok) {
      std::string why;
      auto& e = *c->embed;
      auto answer = embeddings::check_answer(res.body, e.missing.size(), c->req.prompt_chars, why, e.req.dimensions);
      if (!answer) {
        v = {false, false, false, true, service_error::upstream_failed, "Upstream " + u->cfg.name + ": " + why + ".",
             0};
      } else {
        for (size_t k = 0; k < e.missing.size(); ++k) {
          auto d = e.missing[k];
          e.vectors[d] = std::move(answer->vectors[k]);
          if (c->cacheable)
            opts_.cache->put(self, e.keys[d], e.vectors[d], opts_.cache_ttl, {tenant_tag(c->user_id)});
        }
        e.model = std::move(answer->model);
        e.used = answer->used;
        record_usage(*c, *u, e.used, "complete");
      }
    }
  } else {
    v = judge_transfer(u->cfg.name, res, opts_.max_response_bytes);
    if (v.ok) {
      std::string why;
      auto usage = oa::check_completion(res.body, c->req.prompt_chars, why);
      if (!usage) {
        v = {false, false, false, true, service_error::upstream_failed, "Upstream " + u->cfg.name + ": " + why + ".",
             0};
      } else {
        record_usage(*c, *u, *usage, "complete");
      }
    }
  }
  if (auto breaker = opts_.names->get(u->breaker))
    caf::anon_send(*breaker, breaker_result_atom::value, permit.permit, !v.breaker_failure,
                   res.status == 429 ? v.retry_after_ms : int64_t{0}, v.ok ? std::string{} : v.message);
  if (upstream_requests_)
    upstream_requests_->inc({u->cfg.name, v.ok ? "ok" : v.breaker_failure ? "failure" : "error"});
  if (v.ok) {
    succeed(c, u, std::move(res.body));
    return;
  }
  c->code = v.code;
  c->message = v.message;
  c->retry_after_ms = v.retry_after_ms;
  if (!v.fallback) {
    exhausted(c);
    return;
  }
  bool retry_soon = v.retry_after_ms <= opts_.retry_cap.count();
  if (v.retryable && retry_soon && c->attempt < opts_.max_attempts) {
    auto wait = std::max(backoff(c->attempt, opts_.retry_base, opts_.retry_cap), milliseconds{v.retry_after_ms});
    auto me = shared_from_this();
    self->delayed_send(caf::actor_cast<caf::actor>(self), wait,
                       worker_job{[me, c, u](caf::event_based_actor* worker) { me->admit(worker, c, u); }});
    return;
  }
  next_upstream(self, c);
}

void gateway_calls::succeed(const std::shared_ptr<call>& c, upstream* u, std::string body) {
  // The cache's handler is taken out of the call before it runs (here and in exhausted()): it holds the single
  // flight's waiters, which hold the call (c -> done -> then -> c), a cycle that kept every cached call, and the
  // gateway with everything it references, alive until exit (LeakSanitizer under make test-sanitize).
  if (auto done = std::exchange(c->done, nullptr))
    done(encode(gateway_answer{u->cfg.name, std::move(body)}));
}

void gateway_calls::finish_stream(const std::shared_ptr<call>& c, upstream* u, breaker_admission permit,
                                  client::upstream_response& res) {
  auto& st = *c->stream;
  // The client has its whole answer once [DONE] went out; what the transfer did after that (more bytes, a reset)
  // changes nothing for it. (An Anthropic client's stream has ended with message_stop then.)
  bool complete = st.sse->done();
  bool breaker_failure = false;
  std::string failure;
  if (complete) {
    st.out->end();
  } else if (st.client_gone) {
    st.out->end();
    failure = "the client went away";
  } else {
    // The first byte is out: no retry, no fallback. The client learns why instead of seeing [DONE].
    auto v = judge_transfer(u->cfg.name, res, opts_.max_response_bytes);
    breaker_failure = v.breaker_failure;
    failure = st.sse->failed() ? "Upstream " + u->cfg.name + ": " + st.sse->why() + "."
              : !v.ok          ? v.message
                               : "Upstream " + u->cfg.name + " ended the stream before [DONE].";
    breaker_failure = breaker_failure && !st.sse->failed();
    // An error event in OpenAI's shape, then the stream's terminator: the client's SDK sees why it ended early,
    // never a silently truncated body.
    if (st.to_client) {
      st.out->write(anthropic::stream_to_anthropic::error_event(
        v.code == service_error::timeout ? "timeout_error" : "api_error", failure));
    } else {
      st.out->write(oa::sse_error_event(v.code == service_error::timeout ? "timeout" : "server_error",
                                        to_string(v.ok ? service_error::upstream_failed : v.code), failure));
      st.out->write("data: [DONE]\n\n");
    }
    st.out->end();
    log::warn("stream failed after its first byte",
              log::fields{}.add("request_id", c->x->request_id()).add("upstream", u->cfg.name).add("error", failure));
  }
  // A stream opened by a heartbeat whose upstream then produced nothing costs nothing.
  record_usage(*c, *u, st.sse->produced() ? st.sse->totals() : oa::usage{},
               st.client_gone ? "client_gone" : complete ? "complete" : "failed");
  if (auto breaker = opts_.names->get(u->breaker))
    caf::anon_send(*breaker, breaker_result_atom::value, permit.permit, !breaker_failure, int64_t{0},
                   breaker_failure ? failure : std::string{});
  if (upstream_requests_)
    upstream_requests_->inc({u->cfg.name, complete ? "ok" : breaker_failure ? "failure" : "error"});
}

void gateway_calls::exhausted(const std::shared_ptr<call>& c) {
  caf::error err;
  if (c->type_refusals == c->candidates.size()) {
    // Every upstream of the model is of type anthropic and none can take the request: the caller's to change.
    err = make_error(service_error::invalid_input, "The upstreams serving `" + c->req.model
                                                     + "` speak Anthropic's Messages API, which cannot take this "
                                                       "request: " + c->anthropic_why + ".");
  } else if (!c->attempted_any) {
    auto wait = std::max<int64_t>(1000, c->refused_retry_after_ms);
    c->retry_after_ms = wait;
    err = make_error(service_error::unavailable, "Every upstream serving `" + c->req.model
                                                   + "` is unavailable (circuit open or at capacity); retry in "
                                                   + seconds_text(wait) + " s.");
  } else {
    if (c->code == service_error::unavailable && c->retry_after_ms <= 0)
      c->retry_after_ms = 1000;
    err = make_error(c->code, c->message);
  }
  if (auto done = std::exchange(c->done, nullptr)) {
    done(std::move(err));
    return;
  }
  // A stream that never started.
  give_back(c);
  c->x->fail(err, {}, c->retry_after_ms);
}

void gateway_calls::record_usage(call& c, const upstream& u, const oa::usage& used, const char* outcome) {
  auto cost = config::cost_pusd(opts_.prices, c.req.model, used.prompt_tokens, used.completion_tokens);
  c.spend.settle(used.prompt_tokens + used.completion_tokens, cost);
  auto writer = opts_.names->get(db_writer_name);
  if (!writer)
    return;
  write_request w;
  w.result = "{}";
  if (used.total_tokens > 0)
    w.usage.push_back(
      usage_row{c.user_id, quota_day_of(now_unix(), opts_.quota_reset_utc_hour).date, 0, used.total_tokens});
  usage_event_row e;
  e.id = random_uuid(gateway_random());
  e.user_id = c.user_id;
  e.api_key_id = c.api_key_id;
  e.request_id = c.x->request_id().substr(0, 128);
  e.model = c.req.model;
  e.upstream = u.cfg.name;
  e.prompt_tokens = used.prompt_tokens;
  e.completion_tokens = used.completion_tokens;
  e.cost_pusd = cost;
  e.estimated = used.estimated;
  e.outcome = outcome;
  w.usage_events.push_back(std::move(e));
  caf::anon_send(*writer, write_later_atom::value, std::move(w));
}

gateway_settings gateway_settings_from(const config::settings& s) {
  gateway_settings gw;
  gw.upstreams = s.upstreams;
  gw.max_attempts = s.retry.max_attempts;
  gw.retry_base = milliseconds{s.retry.base_ms};
  gw.retry_cap = milliseconds{s.retry.max_backoff_ms};
  gw.slow = milliseconds{s.ops.slow_ms};
  gw.max_response_bytes = static_cast<size_t>(s.upstream.max_response_bytes);
  gw.cache_ttl = milliseconds{s.gateway.cache_ttl_ms};
  gw.max_generation = milliseconds{s.gateway.max_generation_ms};
  gw.request_timeout = milliseconds{s.gateway.request_timeout_ms};
  gw.stream_idle = milliseconds{s.gateway.stream_idle_ms};
  gw.stream_heartbeat = milliseconds{s.gateway.stream_heartbeat_ms};
  gw.stream_drain = milliseconds{s.gateway.stream_drain_ms};
  gw.prices = s.prices;
  gw.default_max_tokens = s.quota.default_max_tokens;
  gw.quota_reset_utc_hour = static_cast<int>(s.quota.reset_utc_hour);
  return gw;
}

health_probe upstreams_probe(const std::vector<config::upstream_settings>& upstreams,
                             std::shared_ptr<directory> names) {
  std::vector<actor_name<breaker_actor>> breakers;
  for (const auto& u : upstreams)
    breakers.push_back(breaker_name(u.name));
  return {"upstreams", [breakers, names](caf::event_based_actor* self, std::function<void(health_check)> done) {
            if (breakers.empty()) {
              done(health_check{"upstreams", "healthy", 0, "no upstream is configured"});
              return;
            }
            struct tally {
              size_t waiting;
              size_t open = 0;
              std::string detail;
              std::function<void(health_check)> done;
            };
            auto t = std::make_shared<tally>(tally{breakers.size(), 0, "", std::move(done)});
            // An open breaker degrades readiness but never fails it: every node shares the same upstreams.
            auto arrive = [t](const std::string& line, bool open) {
              t->detail += (t->detail.empty() ? "" : "; ") + line;
              t->open += open ? 1 : 0;
              if (--t->waiting > 0)
                return;
              auto status = t->open == 0 ? "healthy" : "degraded";
              t->done(health_check{"upstreams", status, 0, t->detail});
            };
            for (const auto& name : breakers) {
              auto b = names->get(name);
              if (!b) {
                arrive(name.value + ": restarting", true);
                continue;
              }
              self->request(*b, caf::duration{breaker_timeout}, breaker_state_atom::value)
                .then(
                  [arrive](breaker_snapshot& s) {
                    std::string line = s.upstream + ": breaker " + to_string(s.state) + ", "
                                       + std::to_string(s.successes) + " ok, " + std::to_string(s.failures)
                                       + " failed, opened " + std::to_string(s.opened) + " times";
                    if (s.state == breaker_state::open)
                      line += ", " + seconds_text(s.open_remaining_ms) + " s left";
                    if (!s.last_failure.empty())
                      line += ", last failure: " + s.last_failure;
                    arrive(line, s.state != breaker_state::closed);
                  },
                  [arrive, name](caf::error&) { arrive(name.value + ": no answer", true); });
            }
          }};
}

} // namespace troupe
