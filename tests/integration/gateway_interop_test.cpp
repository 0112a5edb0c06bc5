// Interoperability: the official OpenAI Node SDK (npm `openai`), pointed at troupe's base URL with a troupe API
// key, lists the models, completes a chat and a streamed chat through the gateway to a mock upstream. Node and the
// package come from scripts/test-deps (make test runs it); without them the test fails.

#include "tests/integration/harness.hpp"
#include "tests/interop/node_packages.hpp"
#include "tests/persistence/scratch_database.hpp"
#include "tests/tools/mock_upstream_harness.hpp"

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

TEST(GatewayInterop, OpenAiNodeSdkCompletesAChatAndAStreamedChat) {
  auto missing = node_packages_missing({"openai"});
  ASSERT_TRUE(missing.empty()) << missing;
  scratch_database db;
  ASSERT_TRUE(db.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  mock_upstream_process mock;
  troupe_process::options opts;
  opts.env["TROUPE_DATABASE_URL"] = db.url();
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

  // A wrong key: the SDK surfaces troupe's OpenAI-shaped 401.
  status = run_command("node " + quote(driver_dir + "/openai_chat.mjs") + " --base-url " + quote(t.url("/v1"))
                         + " --api-key trp_wrong 2>&1",
                       out);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("status=401"), std::string::npos) << out;
}

} // namespace
} // namespace troupe::testing
