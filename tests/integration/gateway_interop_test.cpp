// Interoperability: the official OpenAI Node SDK (npm `openai`), pointed at troupe's base URL with a troupe API
// key, lists the models, completes a chat and a streamed chat through the gateway to a mock upstream (speaking
// OpenAI's API, or Anthropic's behind an upstream of type anthropic), and embeds; the official Anthropic TypeScript
// SDK (npm `@anthropic-ai/sdk`) creates and streams a message through POST /v1/messages. Node and the
// package come from scripts/test-deps (make test runs it); without them the test fails.

#include "tests/integration/harness.hpp"
#include "tests/interop/node_packages.hpp"
#include "tests/persistence/scratch_database.hpp"
#include "tests/tools/mock_upstream_harness.hpp"
#include "tools/mock-upstream/embeddings.hpp"

#include <gtest/gtest.h>

namespace troupe::testing {
namespace {

const std::string driver_dir = interop_dir();

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// A troupe on the scratch database with the mock as its one upstream, serving `models` (a JSON array), spoken to
/// as an upstream of `type`.
troupe_process::options gateway_options(const scratch_database& db, const mock_upstream_process& mock,
                                        const std::string& models, const std::string& type = "openai") {
  troupe_process::options opts;
  opts.env["TROUPE_DATABASE_URL"] = db.url();
  opts.env["TROUPE_UPSTREAMS"] = R"([{"name":"mock","type":")" + type + R"(","base_url":")" + mock.base_url()
                                 + R"(/v1","models":)" + models + "}]";
  return opts;
}

/// A new user's API key, as an application would hold one ("" if any step failed).
std::string api_key(const troupe_process& t, const std::string& email) {
  auto token = json_string(sign_up(t, email), "access_token");
  auto created = http({"POST",
                       t.url("/api/keys"),
                       R"({"name":"sdk"})",
                       {"Authorization: Bearer " + token, "Content-Type: application/json"},
                       10000});
  EXPECT_EQ(created.status, 201) << created.body;
  return json_string(created, "key");
}

/// Runs openai_chat.mjs against `t` with `key` and checks what it saw: the models, a chat and a streamed chat, each
/// reaching the mock once.
void openai_sdk_chats(const troupe_process& t, const mock_upstream_process& mock, const std::string& key) {
  std::string out;
  int status = run_command("node " + quote(driver_dir + "/openai_chat.mjs") + " --base-url " + quote(t.url("/v1"))
                             + " --api-key " + quote(key) + " 2>&1",
                           out);
  ASSERT_EQ(status, 0) << out;
  auto doc = parse_json(out);
  ASSERT_TRUE(doc.IsObject()) << out;
  EXPECT_EQ(std::string(doc["content"].GetString()), "mock reply: hello from the sdk");
  EXPECT_EQ(std::string(doc["model"].GetString()), "mock-1");
  EXPECT_EQ(std::string(doc["streamed"].GetString()), "mock reply: stream from the sdk");
  EXPECT_GE(doc["chunks"].GetInt(), 3);
  ASSERT_TRUE(doc["models"].IsArray());
  EXPECT_EQ(std::string(doc["models"][0].GetString()), "mock-1");
  auto stats = parse_json(http_get(mock.base_url() + "/mock/stats").body);
  EXPECT_EQ(stats["requests"].GetInt64(), 2);
  EXPECT_EQ(stats["streams"].GetInt64(), 1);
}

TEST(GatewayInterop, OpenAiNodeSdkCompletesAChatAndAStreamedChat) {
  auto missing = node_packages_missing({"openai"});
  ASSERT_TRUE(missing.empty()) << missing;
  scratch_database db;
  ASSERT_TRUE(db.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  mock_upstream_process mock;
  troupe_process t{gateway_options(db, mock, R"(["mock-1"])")};
  auto key = api_key(t, "sdk@example.com");
  ASSERT_FALSE(key.empty());
  openai_sdk_chats(t, mock, key);

  // A wrong key: the SDK surfaces troupe's OpenAI-shaped 401.
  std::string out;
  int status = run_command("node " + quote(driver_dir + "/openai_chat.mjs") + " --base-url " + quote(t.url("/v1"))
                             + " --api-key trp_wrong 2>&1",
                           out);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("status=401"), std::string::npos) << out;
}

// The OpenAI SDK in front of an upstream of type anthropic (the mock speaking Anthropic's Messages API): the same
// answers, translated both ways, streams included.
TEST(GatewayInterop, OpenAiNodeSdkThroughAnAnthropicUpstream) {
  auto missing = node_packages_missing({"openai"});
  ASSERT_TRUE(missing.empty()) << missing;
  scratch_database db;
  ASSERT_TRUE(db.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  mock_upstream_process mock;
  troupe_process t{gateway_options(db, mock, R"(["mock-1"])", "anthropic")};
  auto key = api_key(t, "sdk-anthropic-upstream@example.com");
  ASSERT_FALSE(key.empty());
  openai_sdk_chats(t, mock, key);
  auto seen = parse_json(http_get(mock.base_url() + "/mock/last_request").body);
  EXPECT_TRUE(seen.HasMember("max_tokens")) << "the mock was asked in Anthropic's shape";
}

// The official Anthropic SDK against POST /v1/messages (an OpenAI-compatible upstream behind): a message, and a
// streamed one through the SDK's MessageStream, whose events and final message are Anthropic's.
TEST(GatewayInterop, AnthropicSdkCreatesAndStreamsAMessage) {
  auto missing = node_packages_missing({"@anthropic-ai/sdk"});
  ASSERT_TRUE(missing.empty()) << missing;
  scratch_database db;
  ASSERT_TRUE(db.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  mock_upstream_process mock;
  troupe_process t{gateway_options(db, mock, R"(["mock-1"])")};
  auto key = api_key(t, "anthropic-sdk@example.com");
  ASSERT_FALSE(key.empty());
  std::string out;
  int status = run_command("node " + quote(driver_dir + "/anthropic_messages.mjs") + " --base-url "
                             + quote(t.url("")) + " --api-key " + quote(key) + " --model mock-1 2>&1",
                           out);
  ASSERT_EQ(status, 0) << out;
  auto doc = parse_json(out);
  ASSERT_TRUE(doc.IsObject()) << out;
  EXPECT_EQ(std::string(doc["text"].GetString()), "mock reply: hello from the anthropic sdk");
  EXPECT_EQ(std::string(doc["stop_reason"].GetString()), "end_turn");
  EXPECT_EQ(std::string(doc["id"].GetString()).rfind("msg_", 0), 0u);
  EXPECT_EQ(std::string(doc["model"].GetString()), "mock-1");
  EXPECT_GT(doc["usage"]["input_tokens"].GetInt64(), 0);
  EXPECT_GT(doc["usage"]["output_tokens"].GetInt64(), 0);
  EXPECT_EQ(std::string(doc["streamed"].GetString()), "mock reply: stream from the anthropic sdk");
  EXPECT_EQ(std::string(doc["final"].GetString()), "mock reply: stream from the anthropic sdk");
  EXPECT_GE(doc["deltas"].GetInt(), 2);
  EXPECT_EQ(std::string(doc["final_stop_reason"].GetString()), "end_turn");
  EXPECT_GT(doc["final_usage"]["output_tokens"].GetInt64(), 0);
  const auto& events = doc["events"];
  ASSERT_TRUE(events.IsArray() && events.Size() >= 5) << out;
  EXPECT_EQ(std::string(events[0].GetString()), "message_start");
  EXPECT_EQ(std::string(events[events.Size() - 1].GetString()), "message_stop");

  // A wrong key: the SDK raises its authentication error.
  status = run_command("node " + quote(driver_dir + "/anthropic_messages.mjs") + " --base-url " + quote(t.url(""))
                         + " --api-key trp_wrong --model mock-1 2>&1",
                       out);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("status=401"), std::string::npos) << out;
}

// The SDK's embeddings: its default asks for base64 and decodes float32s itself; floats asked for explicitly come as
// numbers. Both give the upstream's vectors, and the second call is served partly from the cache.
TEST(GatewayInterop, OpenAiNodeSdkEmbedsInBothEncodings) {
  auto missing = node_packages_missing({"openai"});
  ASSERT_TRUE(missing.empty()) << missing;
  scratch_database db;
  ASSERT_TRUE(db.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  mock_upstream_process mock;
  troupe_process t{gateway_options(db, mock, R"(["mock-1","mock-emb"])")};
  auto key = api_key(t, "sdk-embeddings@example.com");
  ASSERT_FALSE(key.empty());

  std::string out;
  int status = run_command("node " + quote(driver_dir + "/openai_embeddings.mjs") + " --base-url "
                             + quote(t.url("/v1")) + " --api-key " + quote(key) + " --model mock-emb 2>&1",
                           out);
  ASSERT_EQ(status, 0) << out;
  auto doc = parse_json(out);
  ASSERT_TRUE(doc.IsObject()) << out;
  auto as_floats = [](const rapidjson::Value& v) {
    std::vector<float> out;
    for (const auto& x : v.GetArray())
      out.push_back(static_cast<float>(x.GetDouble()));
    return out;
  };
  auto first = mock::mock_vector("\"the first text\"", 8);
  auto second = mock::mock_vector("\"the second text\"", 8);
  auto third = mock::mock_vector("\"a third text\"", 8);
  ASSERT_EQ(doc["base64"].Size(), 2u) << out;
  EXPECT_EQ(as_floats(doc["base64"][0]), first);
  EXPECT_EQ(as_floats(doc["base64"][1]), second);
  ASSERT_EQ(doc["float"].Size(), 3u) << out;
  EXPECT_EQ(as_floats(doc["float"][0]), second);
  EXPECT_EQ(as_floats(doc["float"][1]), third);
  EXPECT_EQ(as_floats(doc["float"][2]), first);
  EXPECT_EQ(std::string(doc["model"].GetString()), "mock-emb");
  // 4 + 4 tokens for the first batch; only "a third text" (3) reached the upstream in the second.
  EXPECT_EQ(doc["prompt_tokens"][0].GetInt64(), 8);
  EXPECT_EQ(doc["prompt_tokens"][1].GetInt64(), 3);
  auto stats = parse_json(http_get(mock.base_url() + "/mock/stats").body);
  EXPECT_EQ(stats["embedding_inputs"].GetInt64(), 3);
}

} // namespace
} // namespace troupe::testing
