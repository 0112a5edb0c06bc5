#include "tools/mock-upstream/messages.hpp"

#include "tools/mock-upstream/json_text.hpp"

#include "config/json.hpp"

#include <algorithm>

namespace troupe::mock {

namespace {

bool fail(request_error& error, std::string message, std::string param) {
  error = {std::move(message), std::move(param), "invalid_request_error"};
  return false;
}

/// The text of a content value (a string, or the text of its text blocks); false if it is neither.
bool text_of(const rapidjson::Value& content, std::string& text) {
  text.clear();
  if (content.IsString()) {
    text.assign(content.GetString(), content.GetStringLength());
    return true;
  }
  if (!content.IsArray())
    return false;
  for (const auto& block : content.GetArray()) {
    if (!block.IsObject() || !block.HasMember("type") || !block["type"].IsString())
      return false;
    if (std::string_view{block["type"].GetString()} == "text" && block.HasMember("text") && block["text"].IsString())
      text.append(block["text"].GetString(), block["text"].GetStringLength());
  }
  return true;
}

uint64_t tokens_for(uint64_t bytes) {
  return std::max<uint64_t>(1, (bytes + 3) / 4);
}

/// The longest prefix of `text` of at most `limit` bytes that does not end inside a UTF-8 sequence.
std::string utf8_prefix(const std::string& text, size_t limit) {
  if (text.size() <= limit)
    return text;
  size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
    --end;
  return text.substr(0, end);
}

std::string sse(std::string_view event, const std::string& data) {
  return "event: " + std::string{event} + "\ndata: " + data + "\n\n";
}

} // namespace

std::string anthropic_error_body(int status, std::string_view message) {
  // Anthropic's error types are OpenAI's names for these statuses, but for 5xx ones.
  std::string type = status == 529 ? "overloaded_error" : status >= 500 ? "api_error" : std::string{error_type_for(status)};
  return "{\"type\":\"error\",\"error\":{\"type\":\"" + type + "\",\"message\":" + json_string(message) + "}}";
}

bool parse_messages_request(std::string_view body, chat_request& out, request_error& error) {
  auto parsed = json::parse(body);
  if (!parsed)
    return fail(error, "The request body is not valid JSON: " + parsed.error().reason, "");
  const auto& doc = parsed.document();
  if (!doc.IsObject())
    return fail(error, "The request body must be a JSON object.", "");
  if (!doc.HasMember("model") || !doc["model"].IsString())
    return fail(error, "model: Field required", "model");
  out.model = doc["model"].GetString();
  if (!doc.HasMember("max_tokens") || !doc["max_tokens"].IsInt64() || doc["max_tokens"].GetInt64() < 1)
    return fail(error, "max_tokens: Field required", "max_tokens");
  out.max_tokens = doc["max_tokens"].GetInt64();
  if (!doc.HasMember("messages") || !doc["messages"].IsArray() || doc["messages"].Empty())
    return fail(error, "messages: Field required", "messages");
  if (doc.HasMember("stream") && doc["stream"].IsBool())
    out.stream = doc["stream"].GetBool();
  std::string text;
  if (doc.HasMember("system")) {
    if (!text_of(doc["system"], text))
      return fail(error, "system: Input should be a valid string or list", "system");
    out.prompt_bytes += text.size();
  }
  for (const auto& m : doc["messages"].GetArray()) {
    if (!m.IsObject() || !m.HasMember("role") || !m["role"].IsString() || !m.HasMember("content")
        || !text_of(m["content"], text))
      return fail(error, "messages: each message needs a role and content", "messages");
    out.prompt_bytes += text.size();
    if (std::string_view{m["role"].GetString()} == "user")
      out.last_user_text = text;
    if (auto problem = scan_directives(text, out.directives); !problem.empty())
      return fail(error, problem, "messages");
  }
  return true;
}

void plan_messages_answer(const chat_request& request, const admission& admitted, const answer_context& context,
                          plan& p) {
  const auto& k = admitted.resolved;
  p.close_after = !context.keep_alive;
  p.wait(k.latency_ms);
  std::string request_id = "X-Request-Id: req_mock_" + std::to_string(admitted.number) + "\r\n";
  if (admitted.status != 200) {
    std::string extra = request_id;
    if (k.retry_after >= 0)
      extra += "Retry-After: " + std::to_string(k.retry_after) + "\r\n";
    respond(p, admitted.status, "application/json",
            anthropic_error_body(admitted.status,
                                 "mock upstream answered " + std::to_string(admitted.status) + " as configured"),
            context.keep_alive, extra);
    return;
  }
  if (k.malformed == malformed_mode::hangup) {
    p.close();
    return;
  }
  auto content = "mock reply: " + utf8_prefix(request.last_user_text, echo_limit_bytes);
  const char* stop_reason = "end_turn";
  if (request.max_tokens > 0 && content.size() > static_cast<size_t>(request.max_tokens) * 4) {
    content = utf8_prefix(content, static_cast<size_t>(request.max_tokens) * 4);
    stop_reason = "max_tokens";
  }
  auto id = "msg_mock_" + std::to_string(admitted.number);
  auto input = std::to_string(tokens_for(request.prompt_bytes));
  auto output = std::to_string(tokens_for(content.size()));
  if (!request.stream) {
    auto body = "{\"id\":\"" + id + "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"
                + json_string(request.model) + ",\"content\":[{\"type\":\"text\",\"text\":" + json_string(content)
                + "}],\"stop_reason\":\"" + stop_reason + "\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":"
                + input + ",\"output_tokens\":" + output + "}}";
    if (k.malformed == malformed_mode::json)
      body.resize(body.size() / 2);
    respond(p, 200, "application/json", body, context.keep_alive, request_id);
    return;
  }
  p.write(response_head(200, "text/event-stream; charset=utf-8", chunked_body, context.keep_alive,
                        request_id + "Cache-Control: no-cache\r\n"));
  auto event = [&](const std::string& e) {
    p.write(chunk_size_line(e.size()) + e + "\r\n");
  };
  event(sse("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"" + id
                               + "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":" + json_string(request.model)
                               + ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
                                 "{\"input_tokens\":" + input + ",\"output_tokens\":1}}}"));
  event(sse("content_block_start",
            R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"));
  event(sse("ping", R"({"type":"ping"})"));
  auto pieces = static_cast<size_t>(std::max<int64_t>(1, k.chunks));
  size_t from = 0;
  for (size_t i = 0; i < pieces && from < content.size(); ++i) {
    size_t to = i + 1 == pieces ? content.size() : content.size() * (i + 1) / pieces;
    while (to < content.size() && (static_cast<unsigned char>(content[to]) & 0xC0) == 0x80)
      ++to; // never inside a UTF-8 sequence
    if (i > 0)
      p.wait(k.drip_ms);
    event(sse("content_block_delta", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":)"
                                       + json_string(content.substr(from, to - from)) + "}}"));
    from = to;
  }
  event(sse("content_block_stop", R"({"type":"content_block_stop","index":0})"));
  event(sse("message_delta", std::string{R"({"type":"message_delta","delta":{"stop_reason":")"} + stop_reason
                               + R"(","stop_sequence":null},"usage":{"output_tokens":)" + output + "}}"));
  event(sse("message_stop", R"({"type":"message_stop"})"));
  p.write(std::string{last_chunk});
}

} // namespace troupe::mock
