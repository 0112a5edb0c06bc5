// JSON bodies as an attacker sends them (issue 13, item 1), against the real binary: bodies nested a million levels
// deep, to an anonymous route and to authenticated ones, are refused with 400 naming the limit and the server keeps
// serving (RapidJSON's recursive parse used to overflow the stack and kill the process); objects with the same key
// twice, at the top or nested, are refused with 400 naming the key's path (they used to be read by the first
// occurrence while other parsers take the last).

#include "tests/integration/harness.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <memory>
#include <string>

using namespace troupe::testing;

namespace {

std::string error_member(const http_result& res, const char* name) {
  auto doc = parse_json(res.body);
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("error") || !doc["error"].IsObject()
      || !doc["error"].HasMember(name) || !doc["error"][name].IsString())
    return "<none>";
  return doc["error"][name].GetString();
}

std::string objects_deep(size_t depth) {
  std::string text;
  text.reserve(depth * 5);
  for (size_t i = 0; i < depth; ++i)
    text += "{\"a\":";
  return text;
}

class JsonBodies : public ::testing::Test {
protected:
  static constexpr size_t million = 1000000;

  void SetUp() override {
    if (!test_database_url())
      GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  }

  /// Starts troupe with room for a 5 MB body (a million levels of {"a": ) and signs up a user.
  void start(std::vector<std::string> args = {}) {
    troupe_process::options opts;
    opts.args = {"--set", "limits.enabled=false", "--set", "http.max_body_bytes=8388608"};
    opts.args.insert(opts.args.end(), args.begin(), args.end());
    troupe = std::make_unique<troupe_process>(opts);
    auto login = sign_up(*troupe, email);
    ASSERT_EQ(login.status, 200) << login.body;
    bearer = "Authorization: Bearer " + json_string(login, "access_token");
  }

  http_result post(const std::string& path, const std::string& body, bool authenticated) const {
    std::vector<std::string> headers{"Content-Type: application/json"};
    if (authenticated)
      headers.push_back(bearer);
    return http({"POST", troupe->url(path), body, headers, 30000});
  }

  /// The server is alive and still answers, anonymous and authenticated.
  void expect_serving() {
    EXPECT_EQ(http_get(troupe->url("/health")).status, 200);
    EXPECT_EQ(post("/api/events", R"({"event":"still_here"})", true).status, 201);
    EXPECT_FALSE(troupe->wait_exit(std::chrono::milliseconds{0}).has_value()) << troupe->output();
  }

  std::unique_ptr<troupe_process> troupe;
  std::string bearer;
  std::string email = "json" + std::to_string(::getpid()) + "-"
                      + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "@example.com";
};

// A million levels of arrays or objects, to login (anonymous) and to authenticated JSON routes: 400 json_too_deep
// naming the limit, and the process keeps serving.
TEST_F(JsonBodies, AMillionLevelsDeepIsRefusedAndTheServerKeepsServing) {
  start();
  const std::string arrays(million, '[');
  const std::string objects = objects_deep(million);
  std::string arrays_param, objects_param = "a";
  for (int i = 0; i < 64; ++i)
    arrays_param += "[0]";
  for (int i = 1; i < 64; ++i)
    objects_param += ".a";
  struct target {
    const char* path;
    bool authenticated;
  };
  for (auto t : {target{"/api/auth/login", false}, target{"/api/events", true}, target{"/api/feedback", true},
                 target{"/v1/chat/completions", true}, target{"/api/keys", true}}) {
    for (const std::string* body : {&arrays, &objects}) {
      auto res = post(t.path, *body, t.authenticated);
      ASSERT_EQ(res.status, 400) << t.path << ": " << res.error << " " << res.body.substr(0, 300);
      EXPECT_EQ(error_member(res, "code"), "json_too_deep") << t.path;
      EXPECT_NE(error_member(res, "message").find("deeper than 64 levels (http.max_json_depth)"), std::string::npos)
        << res.body.substr(0, 300);
      // param names the container one level too deep.
      EXPECT_EQ(error_member(res, "param"), body == &arrays ? arrays_param : objects_param) << t.path;
    }
    expect_serving();
  }
}

// http.max_json_depth moves the limit: exactly at it the body is read (and judged by its schema), one more is not.
TEST_F(JsonBodies, TheDepthLimitIsAnOption) {
  start({"--set", "http.max_json_depth=3"});
  auto at_limit = post("/api/events", R"({"event":"e","properties":{"a":{"b":1}}})", true);
  EXPECT_EQ(at_limit.status, 201) << at_limit.body;
  auto deeper = post("/api/events", R"({"event":"e","properties":{"a":{"b":[1]}}})", true);
  EXPECT_EQ(deeper.status, 400);
  EXPECT_EQ(error_member(deeper, "code"), "json_too_deep");
  EXPECT_EQ(error_member(deeper, "param"), "properties.a.b");
  EXPECT_NE(error_member(deeper, "message").find("deeper than 3 levels"), std::string::npos) << deeper.body;
}

// The same key twice in one object, at the top or nested, anonymous or authenticated: 400 duplicate_key with the
// key's path; nothing is written.
TEST_F(JsonBodies, DuplicateKeysAreRefusedWithTheirPath) {
  start();
  struct expectation {
    const char* path;
    bool authenticated;
    std::string body;
    const char* param;
  };
  for (const auto& e : {
         expectation{"/api/auth/login", false,
                     R"({"email":"someone@example.com","password":"correct horse battery","password":"x"})",
                     "password"},
         expectation{"/api/auth/register", false,
                     R"({"email":"a@example.com","email":"b@example.com","password":"correct horse battery"})",
                     "email"},
         expectation{"/api/events", true, R"({"event":"e","event":"f"})", "event"},
         expectation{"/api/events", true, R"({"event":"e","properties":{"plan":"free","plan":"pro"}})",
                     "properties.plan"},
         expectation{"/api/events", true, R"({"events":[{"event":"a"},{"event":"b","lang":"en","lang":"fr"}]})",
                     "events[1].lang"},
         expectation{"/api/feedback", true, R"({"rating":5,"rating":1})", "rating"},
       }) {
    auto res = post(e.path, e.body, e.authenticated);
    EXPECT_EQ(res.status, 400) << e.path << " " << e.body << ": " << res.body;
    EXPECT_EQ(error_member(res, "code"), "duplicate_key") << e.body;
    EXPECT_EQ(error_member(res, "param"), e.param) << e.body;
    EXPECT_NE(error_member(res, "message").find("appears twice"), std::string::npos) << res.body;
  }
  expect_serving();
}

} // namespace
