// Anthropic's Messages API both ways (ai/anthropic.hpp): a Messages request as the OpenAI request it stands for,
// an OpenAI answer and stream as Anthropic's, and an OpenAI request, answer and stream through an Anthropic upstream.

#include "ai/anthropic.hpp"

#include "config/json.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace troupe::anthropic {
namespace {

rapidjson::Document parse(const std::string& text) {
  auto parsed = json::parse(text);
  EXPECT_TRUE(parsed.ok()) << text;
  return std::move(parsed.document());
}

std::string compact(const rapidjson::Value& v) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  v.Accept(w);
  return {buffer.GetString(), buffer.GetSize()};
}

std::string to_openai(const std::string& anthropic) {
  rapidjson::Document out;
  auto err = to_openai_request(parse(anthropic), out);
  EXPECT_FALSE(err) << anthropic << ": " << (err ? err->message : "");
  return err ? "" : compact(out);
}

std::string refused(const std::string& anthropic) {
  rapidjson::Document out;
  auto err = to_openai_request(parse(anthropic), out);
  EXPECT_TRUE(err) << anthropic;
  return err ? err->param : "<accepted>";
}

/// The `event:` names of an SSE text, in order.
std::vector<std::string> event_names(const std::string& sse) {
  std::vector<std::string> names;
  for (size_t at = sse.find("event: "); at != std::string::npos; at = sse.find("event: ", at + 1))
    names.push_back(sse.substr(at + 7, sse.find('\n', at) - at - 7));
  return names;
}

TEST(AnthropicInbound, TranslatesAConversationWithSystemImagesAndTools) {
  EXPECT_EQ(to_openai(R"({"model":"m","max_tokens":50,"system":"be brief","messages":[{"role":"user","content":"hi"}],)"
                      R"("temperature":0.5,"stop_sequences":["END"],"stream":true,"metadata":{"user_id":"u1"}})"),
            R"({"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],)"
            R"("temperature":0.5,"max_tokens":50,"stop":["END"],"stream":true,"user":"u1"})");
  EXPECT_EQ(
    to_openai(
      R"({"model":"m","max_tokens":5,"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},)"
      R"({"type":"text","text":"b"}],"messages":[)"
      R"({"role":"user","content":[{"type":"text","text":"look"},{"type":"image","source":{"type":"base64",)"
      R"("media_type":"image/png","data":"iVBORw0KGgo="}}]},)"
      R"({"role":"assistant","content":[{"type":"text","text":"calling"},{"type":"tool_use","id":"t1","name":"f",)"
      R"("input":{"x":1}}]},)"
      R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"42"},{"type":"text","text":"ok?"}]}],)"
      R"("tools":[{"name":"f","description":"d","input_schema":{"type":"object"}}],)"
      R"("tool_choice":{"type":"any","disable_parallel_tool_use":true}})"),
    R"({"model":"m","messages":[{"role":"system","content":"a\n\nb"},)"
    R"({"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":)"
    R"("data:image/png;base64,iVBORw0KGgo="}}]},)"
    R"({"role":"assistant","content":"calling","tool_calls":[{"id":"t1","type":"function","function":{"name":"f",)"
    R"("arguments":"{\"x\":1}"}}]},)"
    R"({"role":"tool","tool_call_id":"t1","content":"42"},{"role":"user","content":[{"type":"text","text":"ok?"}]}],)"
    R"("max_tokens":5,"tools":[{"type":"function","function":{"name":"f","description":"d","parameters":)"
    R"({"type":"object"}}}],"tool_choice":"required","parallel_tool_calls":false})");
}

TEST(AnthropicInbound, RefusesWhatItCannotPassOn) {
  EXPECT_EQ(refused(R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}]})"), "model");
  EXPECT_EQ(refused(R"({"model":"m","messages":[{"role":"user","content":"x"}]})"), "max_tokens");
  EXPECT_EQ(refused(R"({"model":"m","max_tokens":5,"messages":[]})"), "messages");
  EXPECT_EQ(refused(R"({"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":"x"}]})"),
            "messages[0].role");
  EXPECT_EQ(refused(R"({"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]})"),
            "messages[0].role");
  EXPECT_EQ(refused(R"({"model":"m","max_tokens":5,"top_k":3,"messages":[{"role":"user","content":"x"}]})"), "top_k");
  EXPECT_EQ(refused(R"({"model":"m","max_tokens":5,"thinking":{},"messages":[{"role":"user","content":"x"}]})"),
            "thinking");
  EXPECT_EQ(refused(R"({"model":"m","max_tokens":5,"temperature":1.5,"messages":[{"role":"user","content":"x"}]})"),
            "temperature");
  EXPECT_EQ(refused(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document"}]}]})"),
            "messages[0].content[0].type");
  EXPECT_EQ(refused(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_use",)"
                    R"("id":"t","name":"f","input":{}}]}]})"),
            "messages[0].content[0].type");
  EXPECT_EQ(refused(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text",)"
                    R"("text":"x","extra":1}]}]})"),
            "messages[0].content[0].extra");
  EXPECT_EQ(refused(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],)"
                    R"("tools":[{"type":"web_search_20250305","name":"web_search","input_schema":{}}]})"),
            "tools[0].type");
  EXPECT_EQ(refused(R"({"model":"m","max_tokens":5,"metadata":{"tags":1},"messages":[{"role":"user","content":"x"}]})"),
            "metadata.tags");
}

TEST(AnthropicInbound, AnswersAsAnAnthropicMessage) {
  EXPECT_EQ(to_anthropic_answer(
              R"({"id":"chatcmpl-7","object":"chat.completion","model":"m","choices":[{"index":0,"message":)"
              R"({"role":"assistant","content":"hello","tool_calls":[{"id":"c1","type":"function","function":)"
              R"({"name":"f","arguments":"{\"a\":[1]}"}}]},"finish_reason":"tool_calls"}],)"
              R"("usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})"),
            R"({"id":"msg_7","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"hello"},)"
            R"({"type":"tool_use","id":"c1","name":"f","input":{"a":[1]}}],"stop_reason":"tool_use",)"
            R"("stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":4}})");
  EXPECT_NE(to_anthropic_answer(R"({"choices":[{"message":{"content":"x"},"finish_reason":"length"}]})")
              .find(R"("stop_reason":"max_tokens")"),
            std::string::npos);
  EXPECT_EQ(error_body(429, "slow down"),
            R"({"type":"error","error":{"type":"rate_limit_error","message":"slow down"}})");
}

TEST(AnthropicInbound, StreamsAnthropicsEvents) {
  stream_to_anthropic s{9};
  std::string out;
  out += s.feed(R"(data: {"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":{"role":"assistant"}}]})"
                "\n\n");
  out += s.feed(R"(data: {"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]})"
                "\n\n"
                R"(data: {"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":{"content":"lo"}}]})"
                "\n\n");
  out += s.feed(R"(data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":)"
                R"({"name":"f","arguments":"{\"a\""}}]}}]})"
                "\n\n"
                R"(data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]})"
                "\n\n");
  out += s.feed(R"(data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})"
                "\n\n"
                R"(data: {"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}})"
                "\n\ndata: [DONE]\n\n");
  EXPECT_TRUE(s.finished());
  EXPECT_EQ(event_names(out),
            (std::vector<std::string>{"message_start", "content_block_start", "content_block_delta",
                                      "content_block_delta", "content_block_stop", "content_block_start",
                                      "content_block_delta", "content_block_stop", "message_delta", "message_stop"}));
  EXPECT_NE(out.find(R"("message":{"id":"msg_1","type":"message","role":"assistant","model":"m")"), std::string::npos)
    << out;
  EXPECT_NE(out.find(R"("usage":{"input_tokens":9,"output_tokens":0})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"({"type":"text_delta","text":"Hel"})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("index":1,"content_block":{"type":"tool_use","id":"c1","name":"f","input":{}})"),
            std::string::npos)
    << out;
  EXPECT_NE(out.find(R"({"type":"input_json_delta","partial_json":"{\"a\":1}"})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":11,)"
                     R"("output_tokens":5}})"),
            std::string::npos)
    << out;
  EXPECT_EQ(stream_to_anthropic::error_event("overloaded_error", "gone"),
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"gone\"}}\n\n");
}

// Parallel tool calls whose pieces interleave, and a server numbering every call 0 with new ids: each call is one
// tool_use block with its whole input, in the order the calls began, every block stopped before the next starts.
TEST(AnthropicInbound, GathersInterleavedAndRenumberedToolCalls) {
  stream_to_anthropic s{1};
  std::string out;
  auto chunk = [&](const std::string& delta) {
    out += s.feed(R"(data: {"id":"x","model":"m","choices":[{"index":0,"delta":)" + delta + "}]}\n\n");
  };
  chunk(R"({"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":""}},)"
        R"({"index":1,"id":"b","function":{"name":"g","arguments":""}}]})");
  chunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]})");
  chunk(R"({"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]})");
  chunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]})");
  chunk(R"({"tool_calls":[{"index":0,"id":"c","function":{"name":"h","arguments":"{\"y\":2}"}}]})");
  out += s.feed("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
  EXPECT_EQ(event_names(out),
            (std::vector<std::string>{"message_start", "content_block_start", "content_block_delta",
                                      "content_block_stop", "content_block_start", "content_block_delta",
                                      "content_block_stop", "content_block_start", "content_block_delta",
                                      "content_block_stop", "message_delta", "message_stop"}));
  EXPECT_NE(out.find(R"("index":0,"content_block":{"type":"tool_use","id":"a","name":"f","input":{}})"),
            std::string::npos)
    << out;
  EXPECT_NE(out.find(R"("index":0,"delta":{"type":"input_json_delta","partial_json":"{\"x\":1}"})"),
            std::string::npos)
    << out;
  EXPECT_NE(out.find(R"("index":1,"delta":{"type":"input_json_delta","partial_json":"{}"})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("index":2,"content_block":{"type":"tool_use","id":"c","name":"h","input":{}})"),
            std::string::npos)
    << out;
  // finish_reason "stop" with tool calls: the message stops for its tools.
  EXPECT_NE(out.find(R"("stop_reason":"tool_use")"), std::string::npos) << out;
}

TEST(AnthropicOutbound, TranslatesARequestAndRefusesWhatAnthropicCannotDo) {
  std::string why;
  auto body = from_openai_request(
    R"({"model":"c","messages":[{"role":"system","content":"sys"},{"role":"user","content":[{"type":"text","text":"hi"},)"
    R"({"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/"}}]},{"role":"assistant","content":null,)"
    R"("tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"q\":2}"}}]},)"
    R"({"role":"tool","tool_call_id":"c1","content":"4"},{"role":"user","content":"thanks"}],"temperature":0.2,)"
    R"("stop":"X","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],)"
    R"("tool_choice":"auto","stream":true,"user":"u"})",
    100, why);
  ASSERT_TRUE(body) << why;
  EXPECT_EQ(*body,
            R"({"model":"c","max_tokens":100,"system":"sys","messages":[{"role":"user","content":[{"type":"text",)"
            R"("text":"hi"},{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/"}}]},)"
            R"({"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"f","input":{"q":2}}]},)"
            R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":[{"type":"text","text":"4"}]},)"
            R"({"type":"text","text":"thanks"}]}],"temperature":0.2,"stop_sequences":["X"],"tools":[{"name":"f",)"
            R"("input_schema":{"type":"object"}}],"tool_choice":{"type":"auto"},"metadata":{"user_id":"u"},)"
            R"("stream":true})");
  for (const auto* bad : {R"({"model":"c","messages":[{"role":"user","content":"x"}],"n":2})",
                          R"({"model":"c","messages":[{"role":"user","content":"x"}],"seed":1})",
                          R"({"model":"c","messages":[{"role":"user","content":"x"}],"temperature":1.5})",
                          R"({"model":"c","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}})",
                          R"({"model":"c","messages":[{"role":"assistant","content":"x"}]})"}) {
    why.clear();
    EXPECT_FALSE(from_openai_request(bad, 100, why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
  why.clear();
  auto max = from_openai_request(R"({"model":"c","messages":[{"role":"user","content":"x"}],"max_tokens":7,"n":1})",
                                 100, why);
  ASSERT_TRUE(max) << why;
  EXPECT_NE(max->find(R"("max_tokens":7)"), std::string::npos) << *max;
}

TEST(AnthropicOutbound, AnswersAndStreamsAsOpenAi) {
  std::string why;
  auto answer = from_anthropic_answer(
    R"({"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"hi"},)"
    R"({"type":"tool_use","id":"t","name":"f","input":{"a":1}}],"stop_reason":"tool_use","stop_sequence":null,)"
    R"("usage":{"input_tokens":3,"output_tokens":2,"cache_read_input_tokens":4}})",
    1700000000, why);
  ASSERT_TRUE(answer) << why;
  EXPECT_EQ(*answer,
            R"({"id":"chatcmpl-msg_1","object":"chat.completion","created":1700000000,"model":"c","choices":[{"index":0,)"
            R"("message":{"role":"assistant","content":"hi","tool_calls":[{"id":"t","type":"function","function":)"
            R"({"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":7,)"
            R"("completion_tokens":2,"total_tokens":9}})");
  std::string usage_why;
  EXPECT_TRUE(openai::check_completion(*answer, 0, usage_why)) << usage_why;
  EXPECT_FALSE(from_anthropic_answer(R"({"error":{"type":"x"}})", 0, why));

  stream_from_anthropic s{1700000000};
  std::string sse =
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"model\":\"c\","
    "\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
    "\"text\",\"text\":\"\"}}\n\n"
    "event: ping\ndata: {\"type\":\"ping\"}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"text_delta\",\"text\":\"Hi\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
    "\"usage\":{\"output_tokens\":3}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  // Cut anywhere: the same events come out.
  std::string out;
  for (size_t at = 0; at < sse.size(); at += 7)
    out += s.feed(std::string_view{sse}.substr(at, 7));
  EXPECT_FALSE(s.failed()) << s.why();
  openai::sse_relay relay{0};
  auto relayed = relay.feed(out);
  EXPECT_FALSE(relay.failed()) << relay.why() << "\n" << out;
  EXPECT_TRUE(relay.done());
  EXPECT_EQ(relay.totals().prompt_tokens, 5);
  EXPECT_EQ(relay.totals().completion_tokens, 3);
  EXPECT_FALSE(relay.totals().estimated);
  EXPECT_NE(out.find(R"("delta":{"content":"Hi"})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("finish_reason":"stop")"), std::string::npos) << out;

  stream_from_anthropic failing{0};
  failing.feed("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}"
               "\n\n");
  EXPECT_TRUE(failing.failed());
}

} // namespace
} // namespace troupe::anthropic
