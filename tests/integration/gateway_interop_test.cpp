// Interoperability: the official OpenAI Node SDK (npm `openai`), pointed at troupe's base URL with a troupe API
// key, lists the models, completes a chat and a streamed chat through the gateway to a mock upstream. Skipped,
// with the reason printed, only when Node or the npm package cannot be installed.

#include "tests/integration/harness.hpp"
#include "tests/tools/mock_upstream_harness.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace troupe::testing {
namespace {

const std::string interop_dir = std::string(TROUPE_SOURCE_DIR) + "/tests/interop";

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// "" when the SDK can run, else why not. Installs tests/interop/node_modules once (under the same lock as the JWT
/// interop test; bounded by timeout 120).
std::string sdk_unavailable() {
  std::string out;
  if (run_command("node --version", out) != 0)
    return "node is not installed";
  auto installed = [] { return std::filesystem::exists(interop_dir + "/node_modules/openai/package.json"); };
  if (!installed()) {
    auto dir = quote(interop_dir);
    auto install =
      "test -d " + dir + "/node_modules/openai || timeout 120 npm install --no-audit --no-fund --prefix " + dir;
    int status = run_command("flock /tmp/troupe-interop-npm.lock sh -c " + quote(install), out);
    if (status != 0 || !installed())
      return "npm install --prefix " + interop_dir + " failed (offline?): " + out.substr(0, 300);
  }
  return "";
}

TEST(GatewayInterop, OpenAiNodeSdkCompletesAChatAndAStreamedChat) {
  auto why = sdk_unavailable();
  if (!why.empty()) {
    std::printf("skipping interop test: %s\n", why.c_str());
    GTEST_SKIP() << why;
  }
  mock_upstream_process mock;
  troupe_process::options opts;
  opts.env["TROUPE_UPSTREAMS"] = R"([{"name":"mock","base_url":")" + mock.base_url() + R"(/v1","models":["mock-1"]}])";
  troupe_process t{opts};
  auto login = sign_up(t, "sdk@example.com");
  auto token = json_string(login, "access_token");
  ASSERT_FALSE(token.empty()) << login.body;
  auto created = http({"POST",
                       t.url("/api/keys"),
                       R"({"name":"sdk"})",
                       {"Authorization: Bearer " + token, "Content-Type: application/json"},
                       10000});
  ASSERT_EQ(created.status, 201) << created.body;
  auto key = json_string(created, "key");
  ASSERT_FALSE(key.empty());

  std::string out;
  int status = run_command("node " + quote(interop_dir + "/openai_chat.mjs") + " --base-url " + quote(t.url("/v1"))
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

  // A wrong key: the SDK surfaces troupe's OpenAI-shaped 401.
  status = run_command("node " + quote(interop_dir + "/openai_chat.mjs") + " --base-url " + quote(t.url("/v1"))
                         + " --api-key trp_wrong 2>&1",
                       out);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("status=401"), std::string::npos) << out;
}

} // namespace
} // namespace troupe::testing
