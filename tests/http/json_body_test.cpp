// How a refused body is answered (http/json_body.hpp): the code, status and param of each json::parse refusal.

#include "http/json_body.hpp"

#include "config/json.hpp"

#include <gtest/gtest.h>

namespace troupe::http {
namespace {

struct answer {
  int status;
  std::string code, message, param;
};

answer answer_for(const std::string& body, size_t depth = json::default_max_depth) {
  auto parsed = json::parse(body, depth);
  EXPECT_FALSE(parsed.ok()) << body;
  if (parsed.ok())
    return {};
  auto res = json_body_error(parsed.error(), "req-1");
  auto doc = json::parse(res.body);
  EXPECT_TRUE(doc.ok()) << res.body;
  const auto& e = (*doc)["error"];
  return {res.status, e["code"].GetString(), e["message"].GetString(),
          e.HasMember("param") ? e["param"].GetString() : ""};
}

// Too deep: 400 json_too_deep naming the limit, its option and where; duplicates: 400 duplicate_key naming the
// key; bad JSON or UTF-8: 400 invalid_json with the offset.
TEST(JsonBody, RefusalsAreAnsweredWithTheirCodeAndPath) {
  auto deep = answer_for(R"({"messages":[[[1]]]})", 2);
  EXPECT_EQ(deep.status, 400);
  EXPECT_EQ(deep.code, "json_too_deep");
  EXPECT_EQ(deep.param, "messages[0]");
  EXPECT_EQ(deep.message,
            "The body is refused at byte 13: arrays and objects nest deeper than 2 levels (http.max_json_depth).");
  auto twice = answer_for(R"({"model":"a","model":"b"})");
  EXPECT_EQ(twice.status, 400);
  EXPECT_EQ(twice.code, "duplicate_key");
  EXPECT_EQ(twice.param, "model");
  EXPECT_EQ(twice.message, "The body is refused at byte 20: the key \"model\" appears twice in one object.");
  auto broken = answer_for("[1,]");
  EXPECT_EQ(broken.code, "invalid_json");
  EXPECT_EQ(broken.message, "The body is not valid JSON: Invalid value (at byte 3).");
  EXPECT_EQ(broken.param, "");
  auto bytes = answer_for("[\"\xff\"]");
  EXPECT_EQ(bytes.code, "invalid_json");
  EXPECT_EQ(bytes.message, "The body is not valid UTF-8: the byte 0xFF is not part of a valid UTF-8 sequence (at byte 2).");
}

// The limit is process-wide, set once from http.max_json_depth at start-up.
TEST(JsonBody, TheDepthLimitIsConfigured) {
  EXPECT_EQ(max_body_depth(), json::default_max_depth);
  set_max_body_depth(8);
  EXPECT_EQ(max_body_depth(), 8u);
  set_max_body_depth(json::default_max_depth);
}

} // namespace
} // namespace troupe::http
