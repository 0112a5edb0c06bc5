// The gateway's protocol helpers (http/openai.hpp): request validation, cache keys, answer checks, SSE relay.

#include "http/openai.hpp"

#include <gtest/gtest.h>

namespace troupe::http::openai {
namespace {

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << text;
  return doc;
}

std::optional<request_error> validate(const std::string& text, chat_request* out = nullptr) {
  chat_request req;
  auto err = validate_chat_request(parse(text), 4, req);
  if (out)
    *out = req;
  return err;
}

TEST(OpenAiRequest, AcceptsAValidRequest) {
  chat_request req;
  EXPECT_FALSE(validate(R"({"model":"m","messages":[{"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"hello"}]}],"stream":true,"temperature":0,"max_tokens":5,
      "vendor_field":{"x":1}})",
                        &req));
  EXPECT_EQ(req.model, "m");
  EXPECT_TRUE(req.stream);
  EXPECT_EQ(req.temperature, 0.0);
  EXPECT_EQ(req.prompt_chars, 13u);
}

TEST(OpenAiRequest, NamesTheOffendingField) {
  auto param = [](const std::string& text) { return validate(text).value_or(request_error{"", "(none)"}).param; };
  EXPECT_EQ(param(R"({"messages":[{"role":"user","content":"x"}]})"), "model");
  EXPECT_EQ(param(R"({"model":"m"})"), "messages");
  EXPECT_EQ(param(R"({"model":"m","messages":[]})"), "messages");
  EXPECT_EQ(param(R"({"model":"m","messages":[1,2,3,4,5]})"), "messages");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user","content":"x"},{"role":"robot"}]})"), "messages[1].role");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user","content":5}]})"), "messages[0].content");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"stream":"yes"})"), "stream");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"temperature":3})"), "temperature");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"max_tokens":0})"), "max_tokens");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"n":9})"), "n");
  EXPECT_EQ(param(R"([1])"), "");
}

TEST(OpenAiCacheKey, IgnoresKeyOrderWhitespaceAndNonDecidingFields) {
  auto a = cache_key(parse(R"({"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]})"), "u1");
  auto b = cache_key(parse(R"({ "messages" : [ {"content":"hi", "role":"user"} ], "temperature":0, "model":"m",
                                "user":"someone", "stream_options":{"include_usage":true}})"),
                     "u1");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, cache_key(parse(R"({"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]})"), "u2"));
  EXPECT_NE(a, cache_key(parse(R"({"model":"m","temperature":0,"messages":[{"role":"user","content":"ho"}]})"), "u1"));
  EXPECT_NE(a, cache_key(parse(R"({"model":"m","temperature":0,"max_tokens":3,
                                   "messages":[{"role":"user","content":"hi"}]})"),
                         "u1"));
  EXPECT_EQ(a.rfind("gw:u1:", 0), 0u);
}

TEST(OpenAiCompletion, ChecksTheAnswer) {
  std::string why;
  auto u = check_completion(R"({"choices":[{"message":{"role":"assistant","content":"hey"}}],
                                "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})",
                            100, why);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->total_tokens, 5);
  EXPECT_FALSE(u->estimated);
  u = check_completion(R"({"choices":[{"message":{"role":"assistant","content":"12345678"}}]})", 40, why);
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->estimated);
  EXPECT_EQ(u->prompt_tokens, 10);
  EXPECT_EQ(u->completion_tokens, 2);
  EXPECT_FALSE(check_completion("{not json", 0, why));
  EXPECT_NE(why.find("not valid JSON"), std::string::npos);
  EXPECT_FALSE(check_completion("{\"choices\":[{\"message\":{\"content\":\"\xff\xfe\"}}]}", 0, why));
  EXPECT_NE(why.find("UTF-8"), std::string::npos);
  EXPECT_FALSE(check_completion(R"({"choices":[]})", 0, why));
  EXPECT_FALSE(check_completion(R"({"id":"x"})", 0, why));
  EXPECT_EQ(completion_text(R"({"choices":[{"message":{"content":"hey"}}]})"), "hey");
}

TEST(OpenAiUtf8, Validates) {
  EXPECT_TRUE(valid_utf8("plain"));
  EXPECT_TRUE(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(valid_utf8("\xc3"));         // truncated
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));     // overlong
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80")); // surrogate
  EXPECT_FALSE(valid_utf8("\xff"));
}

TEST(OpenAiSse, RelaysEventsSplitAnywhere) {
  sse_relay relay{40};
  std::string stream = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
                       ": keep-alive\n\n"
                       "data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\r\n\r\n"
                       "data: {\"choices\":[{\"delta\":{\"content\":\" world\"}}]}\n\n"
                       "data: [DONE]\n\n";
  std::string out;
  for (char c : stream) // one byte at a time: events leave only once complete
    out += relay.feed(std::string_view(&c, 1));
  EXPECT_FALSE(relay.failed()) << relay.why();
  EXPECT_TRUE(relay.done());
  EXPECT_FALSE(relay.pending());
  EXPECT_NE(out.find("data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\n\n"), std::string::npos);
  EXPECT_NE(out.find(": keep-alive\n\n"), std::string::npos);
  EXPECT_EQ(out.substr(out.size() - 14), "data: [DONE]\n\n");
  auto u = relay.totals();
  EXPECT_TRUE(u.estimated);
  EXPECT_EQ(u.completion_tokens, 3); // 11 characters
}

TEST(OpenAiSse, UsesReportedUsage) {
  sse_relay relay{0};
  relay.feed("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":9,\"total_tokens\":16}}\n\n");
  EXPECT_EQ(relay.totals().total_tokens, 16);
}

TEST(OpenAiSse, StopsAtTheFirstBadEvent) {
  sse_relay relay{0};
  auto out = relay.feed("data: {\"choices\":[]}\n\ndata: {broken\n\ndata: {\"choices\":[]}\n\n");
  EXPECT_TRUE(relay.failed());
  EXPECT_EQ(out, "data: {\"choices\":[]}\n\n");
  sse_relay bad_utf8{0};
  bad_utf8.feed("data: {\"x\":\"\xff\"}\n\n");
  EXPECT_TRUE(bad_utf8.failed());
  sse_relay huge{0, 64};
  huge.feed("data: " + std::string(100, 'x'));
  EXPECT_TRUE(huge.failed());
  EXPECT_EQ(
    sse_error_event("server_error", "upstream_failed", "a \"b\""),
    "data: {\"error\":{\"type\":\"server_error\",\"code\":\"upstream_failed\",\"message\":\"a \\\"b\\\"\"}}\n\n");
}

} // namespace
} // namespace troupe::http::openai
