#include "http/gateway.hpp"

#include "http/body_schemas.hpp"
#include "http/bridge.hpp"
#include "http/error_mapping.hpp"
#include "http/json_body.hpp"

#include "ai/anthropic.hpp"
#include "ai/embeddings.hpp"
#include "config/json.hpp"
#include "config/service_error.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <utility>

namespace troupe::http {

namespace oa = openai;

namespace {

/// How long the direct cache look-up waits for its shard before the call goes the worker's way.
constexpr auto cache_lookup_timeout = std::chrono::seconds{5};

int64_t now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void set_retry_after(response& res, int64_t ms) {
  res.headers.erase(
    std::remove_if(res.headers.begin(), res.headers.end(), [](const auto& h) { return h.first == "Retry-After"; }),
    res.headers.end());
  res.header("Retry-After", std::to_string(std::max<int64_t>(1, (ms + 999) / 1000)));
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : ", ") + item;
  return out;
}

/// The shape a route answers in.
enum class shape { openai, anthropic, generate, embeddings };

/// /api/generate's answer: {text, model, upstream, cached, usage}, from the chat answer (which passed
/// check_completion before it was cached or handed here).
std::string generate_body(const gateway_answer& cached, bool hit) {
  const auto& body = cached.body;
  auto parsed = json::parse(body);
  const auto& answer = parsed.document();
  auto text = oa::completion_text(body);
  std::string why;
  auto usage = oa::check_completion(body, 0, why).value_or(oa::usage{});
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("text");
  w.String(text.c_str(), static_cast<rapidjson::SizeType>(text.size()));
  w.Key("model");
  const rapidjson::Value* m = nullptr;
  if (answer.IsObject()) // MemberEnd() of a non-object is undefined
    if (auto it = answer.FindMember("model"); it != answer.MemberEnd() && it->value.IsString())
      m = &it->value;
  if (m)
    w.String(m->GetString(), m->GetStringLength());
  else
    w.Null();
  w.Key("upstream");
  w.String(cached.upstream.c_str(), static_cast<rapidjson::SizeType>(cached.upstream.size()));
  w.Key("cached");
  w.Bool(hit);
  w.Key("usage");
  w.StartObject();
  w.Key("prompt_tokens");
  w.Int64(usage.prompt_tokens);
  w.Key("completion_tokens");
  w.Int64(usage.completion_tokens);
  w.Key("total_tokens");
  w.Int64(usage.total_tokens);
  w.EndObject();
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

/// A call's client, on its responder: what the call produces, in the shape of the route it came in by.
class route_exchange final : public gateway_exchange {
public:
  route_exchange(std::shared_ptr<responder> r, shape s) : r_(std::move(r)), shape_(s) {}

  const std::string& request_id() const override { return r_->req().id; }
  const tracing::context& trace() const override { return r_->req().trace; }
  std::chrono::steady_clock::time_point started() const override { return r_->req().started; }
  bool answered() const override { return r_->answered(); }
  void mark(const char* stage, const tracing::span_id& span, std::chrono::steady_clock::time_point began) override {
    r_->mark(stage, span, began);
  }

  std::shared_ptr<event_sink> open_stream(const std::string& upstream) override {
    response head;
    head.content_type = "text/event-stream";
    head.header("Cache-Control", "no-cache");
    head.header("X-Troupe-Upstream", upstream);
    head.header("X-Cache", "MISS");
    return r_->stream(std::move(head));
  }

  void answer(const gateway_answer& a, bool hit) override {
    auto res = json_response(200, shape_ == shape::anthropic  ? anthropic::to_anthropic_answer(a.body)
                                  : shape_ == shape::generate ? generate_body(a, hit)
                                                              : a.body);
    res.header("X-Troupe-Upstream", a.upstream);
    res.header("X-Cache", hit ? "HIT" : "MISS");
    r_->send(std::move(res));
  }

  void answer_embeddings(std::string body, const std::string& upstream, bool hit, size_t cached_inputs) override {
    auto res = json_response(200, std::move(body));
    if (!upstream.empty())
      res.header("X-Troupe-Upstream", upstream);
    res.header("X-Cache", hit ? "HIT" : "MISS");
    res.header("X-Troupe-Cached-Inputs", std::to_string(cached_inputs));
    r_->send(std::move(res));
  }

  void fail(const caf::error& err, const std::string& param, int64_t retry_after_ms) override {
    auto res = error_response(err, r_->req().id, param);
    if (res.status == 503 && retry_after_ms > 0)
      set_retry_after(res, retry_after_ms);
    send_error(std::move(res));
  }

  /// An error answer as it is, or in Anthropic's shape for a /v1/messages call.
  void send_error(response res) {
    if (shape_ == shape::anthropic && res.status >= 400) {
      std::string message = res.body;
      auto parsed = json::parse(res.body);
      if (parsed && parsed->IsObject())
        if (auto e = parsed->FindMember("error"); e != parsed->MemberEnd() && e->value.IsObject())
          if (auto m = e->value.FindMember("message"); m != e->value.MemberEnd() && m->value.IsString())
            message.assign(m->value.GetString(), m->value.GetStringLength());
      res.body = anthropic::error_body(res.status, message);
    }
    r_->send(std::move(res));
  }

  const std::shared_ptr<responder>& r() const { return r_; }

private:
  std::shared_ptr<responder> r_;
  shape shape_;
};

/// Whether a chat call may be answered from, and goes into, the cache: deterministic (temperature 0) or asked for
/// (`X-Troupe-Cache: on`); never `off`, never a stream.
bool cacheable_chat(const responder& r, const oa::chat_request& req) {
  auto mode = r.req().header("X-Troupe-Cache");
  bool off = mode && *mode == "off";
  bool on = mode && *mode == "on";
  return !req.stream && !off && (on || (req.temperature && *req.temperature == 0));
}

bool cache_off(const responder& r) {
  auto mode = r.req().header("X-Troupe-Cache");
  return mode && *mode == "off";
}

} // namespace

gateway::gateway(authenticator& auth, gateway_options options)
  : auth_(auth), opts_(std::move(options)), calls_(std::make_shared<gateway_calls>(opts_)),
    chat_schema_(opts_.max_messages, opts_.images), generate_schema_(schemas::generate) {}

// --- Routes ---

void gateway::models(const std::shared_ptr<responder>& r) {
  auto body = calls_->models_body();
  auth_.identify(r, "default", [r, body](const identity&) { r->send(json_response(200, body)); });
}

void gateway::chat(const std::shared_ptr<responder>& r) {
  auto doc = parse_json_body(r);
  if (!doc)
    return;
  oa::chat_request req;
  if (auto err = chat_schema_.validate(*doc, req)) {
    r->send(error_response(service_error::invalid_input, err->message, r->req().id, err->param));
    return;
  }
  // req.body is the canonical form of the validated request: the client's bytes are never forwarded.
  auto cacheable = cacheable_chat(*r, req);
  auto x = std::make_shared<route_exchange>(r, shape::openai);
  start(calls_->chat_call(x, std::move(req), cacheable, false), x);
}

void gateway::generate(const std::shared_ptr<responder>& r) {
  auto doc = validated_json_body(r, generate_schema_);
  if (!doc)
    return;
  // The schema checked each field's type and length; null stands for an absent one.
  auto text = [&](const char* name) {
    auto it = doc->FindMember(name);
    return it != doc->MemberEnd() && it->value.IsString() ? std::string{it->value.GetString(), it->value.GetStringLength()}
                                                          : std::string{};
  };
  auto prompt = text("prompt");
  auto model = text("model");
  auto system = text("system");
  int64_t max_tokens = 0;
  if (auto it = doc->FindMember("max_tokens"); it != doc->MemberEnd() && it->value.IsInt64())
    max_tokens = it->value.GetInt64();
  if (model.empty()) {
    model = calls_->default_model();
    if (model.empty()) {
      r->send(error_response(service_error::unavailable, "No upstream is configured.", r->req().id));
      return;
    }
  }
  // The chat request it stands for: deterministic (temperature 0), so repeated prompts are served from the cache.
  rapidjson::Document chat_doc(rapidjson::kObjectType);
  auto& a = chat_doc.GetAllocator();
  chat_doc.AddMember("model", rapidjson::Value(model.c_str(), a), a);
  rapidjson::Value messages(rapidjson::kArrayType);
  auto message = [&](const char* role, const std::string& content) {
    rapidjson::Value m(rapidjson::kObjectType);
    m.AddMember("role", rapidjson::StringRef(role), a);
    m.AddMember("content", rapidjson::Value(content.c_str(), static_cast<rapidjson::SizeType>(content.size()), a), a);
    messages.PushBack(m, a);
  };
  if (!system.empty())
    message("system", system);
  message("user", prompt);
  chat_doc.AddMember("messages", messages, a);
  chat_doc.AddMember("temperature", 0, a);
  if (max_tokens > 0)
    chat_doc.AddMember("max_tokens", max_tokens, a);
  oa::chat_request req;
  if (auto err = chat_schema_.validate(chat_doc, req)) {
    r->send(error_response(service_error::invalid_input, err->message, r->req().id, err->param));
    return;
  }
  auto x = std::make_shared<route_exchange>(r, shape::generate);
  start(calls_->chat_call(x, std::move(req), !cache_off(*r), false), x);
}

void gateway::embeddings(const std::shared_ptr<responder>& r) {
  auto doc = parse_json_body(r);
  if (!doc)
    return;
  embeddings::request req;
  if (auto err = embeddings::validate_request(*doc, req)) {
    r->send(error_response(service_error::invalid_input, err->message, r->req().id, err->param));
    return;
  }
  auto x = std::make_shared<route_exchange>(r, shape::embeddings);
  start(calls_->embeddings_call(x, std::move(req), !cache_off(*r)), x);
}

void gateway::messages(const std::shared_ptr<responder>& r) {
  auto doc = parse_json_body(r);
  if (!doc)
    return;
  auto fail = [&](const oa::request_error& err) {
    auto res = json_response(400, anthropic::error_body(400, err.message));
    r->send(std::move(res));
  };
  rapidjson::Document chat_doc;
  if (auto err = anthropic::to_openai_request(*doc, chat_doc))
    return fail(*err);
  oa::chat_request req;
  if (auto err = chat_schema_.validate(chat_doc, req))
    return fail(*err);
  auto cacheable = cacheable_chat(*r, req);
  auto x = std::make_shared<route_exchange>(r, shape::anthropic);
  start(calls_->chat_call(x, std::move(req), cacheable, true), x);
}

// --- Handing the call over ---

void gateway::start(const std::shared_ptr<call>& c, const std::shared_ptr<gateway_exchange>& x) {
  auto ex = std::static_pointer_cast<route_exchange>(x);
  std::string param;
  if (auto err = calls_->refuse(*c, param)) {
    ex->send_error(error_response(*err, ex->request_id(), param));
    return;
  }
  auto me = shared_from_this();
  auto [tokens, pusd, inputs] = calls_->estimate(*c);
  // The session takes a token of the generate policy, reserves the estimate against the user's token window and
  // budgets and the API key's own limits (where any apply), and one generation of the daily quota, in one message;
  // its answer is handled on the session's thread (no bridge worker).
  auth_.identify(
    ex->r(), "generate",
    [me, c, ex, inputs = inputs, tokens = tokens, pusd = pusd](const identity& who) {
      if (!who.spend.allowed) {
        me->refuse_spend(ex, who, me->calls_->model_of(*c), inputs, tokens, pusd);
        return;
      }
      if (!who.quota.allowed) {
        auto wait = std::max<int64_t>(1, who.quota.resets_at - now_unix());
        auto res = error_response(service_error::rate_limited,
                                  "The daily quota of " + std::to_string(who.quota.limit)
                                    + " generations is used up; it resets in " + std::to_string(wait) + " s.",
                                  ex->request_id());
        set_retry_after(res, wait * 1000);
        ex->send_error(std::move(res));
        return;
      }
      const auto& sessions = me->auth_.options();
      auto key_id = who.via.kind == "api_key" ? who.via.key_id : std::string{};
      spend_reservation spend;
      if (who.spend.reservation != 0)
        spend = spend_reservation{sessions.sessions, who.user_id, who.spend.reservation, sessions.cluster, key_id};
      me->calls_->authenticated(*c, who.user_id, key_id,
                                quota_reservation{sessions.sessions, who.user_id, 1, sessions.cluster},
                                std::move(spend));
      me->look_up(c, ex->r());
    },
    1, false, tokens, pusd, calls_->model_of(*c));
}

void gateway::refuse_spend(const std::shared_ptr<gateway_exchange>& x, const identity& who, const std::string& model,
                           bool inputs, int64_t tokens, int64_t pusd) {
  auto ex = std::static_pointer_cast<route_exchange>(x);
  const auto& spend = who.spend;
  if (spend.refused == "key_model") {
    // Nothing was reserved: the session refused before the budgets, the windows and the quota.
    const auto& models = who.via.key_limits.models;
    ex->send_error(error_response(service_error::forbidden,
                                  "This API key may not call `" + model + "`; it may call "
                                    + std::to_string(models.size()) + " model(s): " + join(models) + ".",
                                  ex->request_id(), "model"));
    return;
  }
  auto refusal = explain_refusal(spend, tokens, pusd, inputs);
  auto res = error_response(refusal.code, refusal.message, ex->request_id());
  if (refusal.retry_after_s > 0)
    set_retry_after(res, refusal.retry_after_s * 1000);
  ex->send_error(std::move(res));
}

void gateway::look_up(const std::shared_ptr<call>& c, const std::shared_ptr<responder>& r) {
  auto me = shared_from_this();
  auto in_worker = [me, c, r] {
    me->auth_.bridge().run(r, [me, c](caf::event_based_actor* self) { me->calls_->run(self, c); });
  };
  auto direct = calls_->direct_lookup(*c);
  if (!direct) {
    in_worker();
    return;
  }
  auth_.bridge().direct().request<cache_reply>(
    direct->first, cache_lookup_timeout,
    [me, c, r, in_worker](cache_reply& reply) {
      r->arrived();
      if (!me->calls_->take_hit(*c, reply))
        in_worker(); // a miss (or a damaged entry): claim and produce, or wait for whoever produces
    },
    [in_worker](caf::error&) { in_worker(); }, // the worker's path asks again and reports what it finds
    cache_get_atom::value, std::move(direct->second));
}

gateway_options gateway_options_from(const config::settings& s) {
  gateway_options gw;
  static_cast<gateway_settings&>(gw) = gateway_settings_from(s);
  gw.max_messages = static_cast<size_t>(s.gateway.max_messages);
  gw.images.max_images = static_cast<size_t>(s.gateway.max_images);
  gw.images.max_image_bytes = static_cast<size_t>(s.gateway.max_image_bytes);
  gw.images.max_request_image_bytes = static_cast<size_t>(s.gateway.max_image_request_bytes);
  return gw;
}

void add_gateway_routes(router& routes, const std::shared_ptr<gateway>& gw, std::shared_ptr<inflight_gate> gate) {
  // Generations have their own gate (limits.generate_max_inflight): their latency is the upstream's, not a queue's.
  // Their time limit is gateway.request_timeout_ms.
  auto generation = without_admission_control();
  generation.time_limit = gw->options().request_timeout;
  routes.add("POST", "/v1/chat/completions", gated(gate, [gw](const std::shared_ptr<responder>& r) { gw->chat(r); }),
             generation);
  routes.add("POST", "/api/generate", gated(gate, [gw](const std::shared_ptr<responder>& r) { gw->generate(r); }),
             generation);
  routes.add("POST", "/v1/messages", gated(gate, [gw](const std::shared_ptr<responder>& r) { gw->messages(r); }),
             generation);
  routes.add("POST", "/v1/embeddings", gated(gate, [gw](const std::shared_ptr<responder>& r) { gw->embeddings(r); }),
             generation);
  routes.add("GET", "/v1/models", [gw](const std::shared_ptr<responder>& r) { gw->models(r); });
}

} // namespace troupe::http
