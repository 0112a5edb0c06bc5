// The gateway's calls without HTTP (actors/gateway_calls.hpp): what they refuse before anything is reserved, what
// they estimate, and how a cache hit reaches the client, through a fake exchange. The upstream path (retries,
// failover, streams, usage) runs against real upstreams in tests/integration (gateway_test, long_generation_test,
// anthropic_test, embeddings_test).

#include "actors/gateway_calls.hpp"

#include "config/service_error.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace troupe {
namespace {

/// Records what a call hands its client.
class fake_exchange final : public gateway_exchange {
public:
  std::string id = "req-1";
  tracing::context ctx;
  std::vector<std::string> marks;
  std::vector<std::pair<gateway_answer, bool>> answers;
  std::vector<std::pair<service_error, std::string>> failures;

  const std::string& request_id() const override { return id; }
  const tracing::context& trace() const override { return ctx; }
  std::chrono::steady_clock::time_point started() const override { return std::chrono::steady_clock::now(); }
  bool answered() const override { return !answers.empty() || !failures.empty(); }
  void mark(const char* stage, const tracing::span_id&, std::chrono::steady_clock::time_point) override {
    marks.emplace_back(stage);
  }
  std::shared_ptr<event_sink> open_stream(const std::string&) override { return nullptr; }
  void answer(const gateway_answer& a, bool hit) override { answers.emplace_back(a, hit); }
  void answer_embeddings(std::string, const std::string&, bool, size_t) override {}
  void fail(const caf::error& err, const std::string& param, int64_t) override {
    failures.emplace_back(service_code(err), param);
  }
};

config::upstream_settings upstream(std::string name, std::string type, std::vector<std::string> models) {
  config::upstream_settings u;
  u.name = std::move(name);
  u.type = std::move(type);
  u.base_url = "http://127.0.0.1:9";
  u.models = std::move(models);
  return u;
}

std::shared_ptr<gateway_calls> make_calls() {
  gateway_settings s;
  s.upstreams = {upstream("a", "openai", {"chat-1", "emb-1"}), upstream("b", "anthropic", {"chat-1", "claude-1"})};
  s.default_max_tokens = 50;
  s.prices["chat-1"] = config::model_price{2, 3};
  return std::make_shared<gateway_calls>(s);
}

openai::chat_request chat(std::string model) {
  openai::chat_request req;
  req.model = std::move(model);
  req.prompt_chars = 40; // 10 tokens
  return req;
}

TEST(GatewayCalls, RefusesAModelNoUpstreamServesBeforeAnythingIsReserved) {
  auto calls = make_calls();
  auto x = std::make_shared<fake_exchange>();
  std::string param;
  auto err = calls->refuse(*calls->chat_call(x, chat("nope"), false, false), param);
  ASSERT_TRUE(err);
  EXPECT_EQ(service_code(*err), service_error::not_found);
  EXPECT_EQ(param, "model");
  EXPECT_FALSE(calls->refuse(*calls->chat_call(x, chat("chat-1"), false, false), param));
  EXPECT_FALSE(calls->refuse(*calls->chat_call(x, chat("claude-1"), false, false), param));
}

TEST(GatewayCalls, EmbeddingsNeverGoToAnAnthropicUpstreamAndAnUnsendableBatchIsRefused) {
  auto calls = make_calls();
  auto x = std::make_shared<fake_exchange>();
  embeddings::request req;
  req.model = "claude-1";
  req.inputs = {"\"a\""};
  req.input_chars = {1};
  std::string param;
  auto err = calls->refuse(*calls->embeddings_call(x, req, true), param);
  ASSERT_TRUE(err); // its only upstream speaks Anthropic, which has no embeddings
  EXPECT_EQ(service_code(*err), service_error::not_found);
  EXPECT_NE(service_message(*err).find("embeddings"), std::string::npos);
  req.model = "emb-1";
  EXPECT_FALSE(calls->refuse(*calls->embeddings_call(x, req, true), param));
  // 16 bytes a float at most, 10^6 dimensions: an answer over upstream.max_response_bytes, refused before it costs.
  req.dimensions = 1000000;
  err = calls->refuse(*calls->embeddings_call(x, req, true), param);
  ASSERT_TRUE(err);
  EXPECT_EQ(service_code(*err), service_error::invalid_input);
  EXPECT_EQ(param, "input");
  EXPECT_TRUE(x->answers.empty() && x->failures.empty()); // a refusal is the route's to send
}

TEST(GatewayCalls, TheEstimateIsThePromptPlusMaxTokensForEachChoice) {
  auto calls = make_calls();
  auto x = std::make_shared<fake_exchange>();
  auto req = chat("chat-1");
  req.max_output_tokens = 100;
  req.choices = 2;
  auto e = calls->estimate(*calls->chat_call(x, req, false, false));
  EXPECT_EQ(e.tokens, 10 + 200);
  EXPECT_EQ(e.pusd, 10 * 2 + 200 * 3);
  EXPECT_FALSE(e.inputs);
  // Without max_tokens: quota.default_max_tokens per choice.
  e = calls->estimate(*calls->chat_call(x, chat("chat-1"), false, false));
  EXPECT_EQ(e.tokens, 10 + 50);
  embeddings::request emb;
  emb.model = "emb-1";
  emb.inputs = {"\"abcd\""};
  emb.input_chars = {4};
  emb.prompt_chars = 4;
  e = calls->estimate(*calls->embeddings_call(x, emb, false));
  EXPECT_EQ(e.tokens, 1); // inputs only
  EXPECT_TRUE(e.inputs);
}

TEST(GatewayCalls, ACacheHitIsAnsweredOnlyWhenTheEntryDecodes) {
  auto calls = make_calls();
  auto x = std::make_shared<fake_exchange>();
  auto c = calls->chat_call(x, chat("chat-1"), true, false);
  // A miss, a damaged entry and an entry of the old "upstream\nbody" form go on to run(): nothing is answered.
  EXPECT_FALSE(calls->take_hit(*c, cache_reply{false, "", 7}));
  EXPECT_FALSE(calls->take_hit(*c, cache_reply{true, "a\n{\"choices\":[]}", 0}));
  EXPECT_FALSE(calls->take_hit(*c, cache_reply{true, encode(gateway_answer{"a", "{}"}).substr(0, 3), 0}));
  EXPECT_TRUE(x->answers.empty());
  gateway_answer cached{"a", R"({"choices":[{"message":{"content":"hi"}}]})"};
  ASSERT_TRUE(calls->take_hit(*c, cache_reply{true, encode(cached), 0}));
  ASSERT_EQ(x->answers.size(), 1u);
  EXPECT_EQ(x->answers[0].first, cached);
  EXPECT_TRUE(x->answers[0].second); // a hit
  EXPECT_EQ(x->marks, std::vector<std::string>{"cache"});
}

TEST(GatewayCalls, OnlyCacheableNonStreamedChatsLookUpDirectly) {
  auto calls = make_calls(); // no cache configured
  auto x = std::make_shared<fake_exchange>();
  EXPECT_FALSE(calls->direct_lookup(*calls->chat_call(x, chat("chat-1"), true, false)));
  EXPECT_EQ(calls->default_model(), "chat-1");
  EXPECT_NE(calls->models_body().find(R"("id":"claude-1")"), std::string::npos);
}

} // namespace
} // namespace troupe
