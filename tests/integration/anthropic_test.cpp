// Anthropic's Messages API end to end (issue 16 item 5): the real binary, the mock upstream speaking OpenAI's API or
// Anthropic's, PostgreSQL started by the harness. POST /v1/messages reaches an OpenAI-compatible upstream as the chat
// request it stands for and answers in Anthropic's shape, streams included; an upstream of type anthropic serves
// OpenAI-shaped calls, translated both ways; both are metered from the upstream's own usage.

#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"
#include "tests/tools/mock_upstream_harness.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace troupe::testing {
namespace {

class Anthropic : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(db_.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)"; }

  scratch_database db_;
  mock_upstream_process mock;
  std::unique_ptr<troupe_process> troupe;
  std::string token;

  /// A troupe in front of the mock: as an OpenAI-compatible upstream ("openai"), or as an Anthropic one; or with
  /// `upstreams` as given.
  void start(const std::string& type = "openai", const std::string& upstreams = "") {
    troupe_process::options opts;
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    opts.env["TROUPE_UPSTREAMS"] = !upstreams.empty() ? upstreams
                                                      : R"([{"name":"up","type":")" + type + R"(","base_url":")"
                                                          + mock.base_url() + R"(/v1","models":["mock-1"]}])";
    opts.args = {"--set", "retry.base_ms=1"};
    troupe = std::make_unique<troupe_process>(opts);
    token = json_string(sign_up(*troupe, "anthropic@example.com"), "access_token");
    ASSERT_FALSE(token.empty());
  }

  http_result post(const std::string& path, const std::string& body, std::vector<std::string> headers = {}) {
    headers.push_back("Content-Type: application/json");
    if (headers.size() == 1)
      headers.push_back("Authorization: Bearer " + token);
    return http({"POST", troupe->url(path), body, headers, 20000});
  }

  rapidjson::Document seen() { return parse_json(http_get(mock.base_url() + "/mock/last_request").body); }

  /// The data of each event of `name` in an SSE body, parsed.
  static std::vector<rapidjson::Document> events(const std::string& body, const std::string& name) {
    std::vector<rapidjson::Document> out;
    std::string marker = "event: " + name + "\ndata: ";
    for (size_t at = body.find(marker); at != std::string::npos; at = body.find(marker, at + 1)) {
      auto start = at + marker.size();
      out.push_back(parse_json(body.substr(start, body.find('\n', start) - start)));
    }
    return out;
  }
};

// A message through an OpenAI-compatible upstream: the upstream sees the chat request (system first, max_tokens),
// the client an Anthropic message with the upstream's usage.
TEST_F(Anthropic, AMessageReachesAnOpenAiUpstreamAsAChat) {
  start();
  auto res = post("/v1/messages", R"({"model":"mock-1","max_tokens":64,"system":"be brief",)"
                                  R"("messages":[{"role":"user","content":"hello there"}]})");
  ASSERT_EQ(res.status, 200) << res.body;
  auto doc = parse_json(res.body);
  EXPECT_EQ(std::string(doc["type"].GetString()), "message");
  EXPECT_EQ(std::string(doc["role"].GetString()), "assistant");
  EXPECT_EQ(std::string(doc["content"][0]["type"].GetString()), "text");
  EXPECT_EQ(std::string(doc["content"][0]["text"].GetString()), "mock reply: hello there");
  EXPECT_EQ(std::string(doc["stop_reason"].GetString()), "end_turn");
  EXPECT_EQ(std::string(doc["id"].GetString()).rfind("msg_", 0), 0u);
  EXPECT_EQ(doc["usage"]["input_tokens"].GetInt64(), 5); // ceil(19 bytes / 4)
  EXPECT_EQ(doc["usage"]["output_tokens"].GetInt64(), 6);
  auto upstream = seen();
  EXPECT_EQ(std::string(upstream["messages"][0]["role"].GetString()), "system");
  EXPECT_EQ(std::string(upstream["messages"][0]["content"].GetString()), "be brief");
  EXPECT_EQ(upstream["max_tokens"].GetInt64(), 64);

  // Errors in Anthropic's shape.
  auto no_max = post("/v1/messages", R"({"model":"mock-1","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(no_max.status, 400);
  auto err = parse_json(no_max.body);
  EXPECT_EQ(std::string(err["type"].GetString()), "error") << no_max.body;
  EXPECT_EQ(std::string(err["error"]["type"].GetString()), "invalid_request_error");
  auto unknown = post("/v1/messages", R"({"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(std::string(parse_json(unknown.body)["error"]["type"].GetString()), "not_found_error") << unknown.body;
  // The key as Anthropic's SDKs send it.
  auto created = post("/api/keys", R"({"name":"sdk"})");
  ASSERT_EQ(created.status, 201);
  auto by_header = post("/v1/messages", R"({"model":"mock-1","max_tokens":5,"messages":[{"role":"user","content":"k"}]})",
                        {"x-api-key: " + json_string(created, "key")});
  EXPECT_EQ(by_header.status, 200) << by_header.body;
}

// A streamed message: Anthropic's events in order, the text as the upstream sent it, the usage in message_delta.
TEST_F(Anthropic, AStreamedMessageIsAnthropicsEvents) {
  start();
  auto res = post("/v1/messages", R"({"model":"mock-1","max_tokens":64,"stream":true,)"
                                  R"("messages":[{"role":"user","content":"[[mock chunks=4]] stream it"}]})");
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.header("content-type").rfind("text/event-stream", 0), 0u);
  ASSERT_EQ(events(res.body, "message_start").size(), 1u) << res.body;
  ASSERT_EQ(events(res.body, "content_block_start").size(), 1u) << res.body;
  std::string text;
  for (const auto& d : events(res.body, "content_block_delta"))
    text += d["delta"]["text"].GetString();
  EXPECT_EQ(text, "mock reply: [[mock chunks=4]] stream it");
  auto delta = events(res.body, "message_delta");
  ASSERT_EQ(delta.size(), 1u) << res.body;
  EXPECT_EQ(std::string(delta[0]["delta"]["stop_reason"].GetString()), "end_turn");
  EXPECT_GT(delta[0]["usage"]["output_tokens"].GetInt64(), 0);
  EXPECT_EQ(events(res.body, "message_stop").size(), 1u);
  EXPECT_EQ(res.body.find("[DONE]"), std::string::npos) << res.body;
  EXPECT_EQ(res.body.find("chat.completion"), std::string::npos) << res.body;
}

// An upstream of type anthropic serves OpenAI-shaped chats, streamed or not, and what it cannot do is refused.
TEST_F(Anthropic, AnAnthropicUpstreamServesOpenAiChats) {
  start("anthropic");
  auto res = post("/v1/chat/completions", R"({"model":"mock-1","messages":[{"role":"system","content":"sys"},)"
                                          R"({"role":"user","content":"hi claude"}],"max_tokens":32})");
  ASSERT_EQ(res.status, 200) << res.body;
  auto doc = parse_json(res.body);
  EXPECT_EQ(std::string(doc["object"].GetString()), "chat.completion");
  EXPECT_EQ(std::string(doc["choices"][0]["message"]["content"].GetString()), "mock reply: hi claude");
  EXPECT_EQ(std::string(doc["choices"][0]["finish_reason"].GetString()), "stop");
  EXPECT_EQ(doc["usage"]["prompt_tokens"].GetInt64(), 3); // ceil((3 + 9) bytes / 4)
  auto upstream = seen();
  EXPECT_EQ(std::string(upstream["system"].GetString()), "sys");
  EXPECT_EQ(upstream["max_tokens"].GetInt64(), 32);
  EXPECT_EQ(std::string(upstream["messages"][0]["content"][0]["text"].GetString()), "hi claude");

  auto streamed = post("/v1/chat/completions", R"({"model":"mock-1","stream":true,)"
                                               R"("messages":[{"role":"user","content":"[[mock chunks=3]] flow"}]})");
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  std::string text;
  for (size_t at = streamed.body.find("\"content\":\""); at != std::string::npos;
       at = streamed.body.find("\"content\":\"", at + 1)) {
    auto start = at + 11;
    text += streamed.body.substr(start, streamed.body.find('"', start) - start);
  }
  EXPECT_EQ(text, "mock reply: [[mock chunks=3]] flow");
  EXPECT_EQ(streamed.body.substr(streamed.body.size() - 14), "data: [DONE]\n\n");
  EXPECT_EQ(std::string(seen()["max_tokens"].IsInt64() ? "set" : "unset"), "set"); // Anthropic needs it

  auto two = post("/v1/chat/completions", R"({"model":"mock-1","n":2,"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(two.status, 400) << two.body;
  EXPECT_NE(two.body.find("`n`"), std::string::npos) << two.body;
  // Anthropic in, Anthropic out, through the translation both ways.
  auto both = post("/v1/messages", R"({"model":"mock-1","max_tokens":16,"messages":[{"role":"user","content":"round"}]})");
  ASSERT_EQ(both.status, 200) << both.body;
  EXPECT_EQ(std::string(parse_json(both.body)["content"][0]["text"].GetString()), "mock reply: round");
}

// A request an Anthropic upstream cannot take goes to an OpenAI-compatible upstream of the same model instead: the
// Anthropic one is passed over, not counted as a failure.
TEST_F(Anthropic, WhatAnAnthropicUpstreamCannotTakeGoesToAnotherType) {
  mock_upstream_process openai_mock;
  start("", R"([{"name":"claude","type":"anthropic","priority":0,"base_url":")" + mock.base_url()
              + R"(/v1","models":["mock-1"]},{"name":"gpt","priority":1,"base_url":")" + openai_mock.base_url()
              + R"(/v1","models":["mock-1"]}])");
  auto first = post("/v1/chat/completions", R"({"model":"mock-1","messages":[{"role":"user","content":"x"}]})");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-troupe-upstream"), "claude");
  auto two = post("/v1/chat/completions", R"({"model":"mock-1","n":2,"messages":[{"role":"user","content":"x"}]})");
  ASSERT_EQ(two.status, 200) << two.body;
  EXPECT_EQ(two.header("x-troupe-upstream"), "gpt");
  // Passing claude over was no failure of claude's.
  EXPECT_EQ(http_get(troupe->url("/api/health")).body.find("claude: breaker open"), std::string::npos);
}

} // namespace
} // namespace troupe::testing
