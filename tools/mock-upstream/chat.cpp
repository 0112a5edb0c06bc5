#include "tools/mock-upstream/chat.hpp"

#include "tools/mock-upstream/json_text.hpp"

#include "config/json.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <vector>

namespace troupe::mock {

namespace {

constexpr std::string_view directive_open = "[[mock";
constexpr std::string_view directive_close = "]]";
constexpr uint64_t max_stream_event_content = 65536; // huge streams use more events rather than bigger ones
// Bytes the utf8 malformed mode puts into the content: a lead byte followed by a non-continuation byte, and two
// bytes that never occur in UTF-8.
constexpr std::string_view invalid_utf8 = "\xC3\x28\xFF\xFE";

bool is_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

/// The longest prefix of `text` of at most `limit` bytes that does not end inside a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view text, size_t limit) {
  if (text.size() <= limit)
    return text;
  size_t end = limit;
  while (end > 0 && is_continuation(text[end]))
    --end;
  return text.substr(0, end);
}

// ---- request parsing --------------------------------------------------------------------------------------

/// The text of a message's content: a string, or the "text" of its {"type":"text"} parts, concatenated.
bool content_text(const rapidjson::Value& content, const std::string& param, std::string& text, request_error& error) {
  text.clear();
  if (content.IsNull())
    return true;
  if (content.IsString()) {
    text.assign(content.GetString(), content.GetStringLength());
    return true;
  }
  if (!content.IsArray()) {
    error = {"Invalid type for '" + param + "': expected a string or an array of content parts.", param,
             "invalid_type"};
    return false;
  }
  for (rapidjson::SizeType i = 0; i < content.Size(); ++i) {
    const auto& part = content[i];
    auto part_param = param + "[" + std::to_string(i) + "]";
    if (!part.IsObject() || !part.HasMember("type") || !part["type"].IsString()) {
      error = {"Invalid '" + part_param + "': a content part needs a string 'type'.", part_param, "invalid_type"};
      return false;
    }
    if (std::string_view{part["type"].GetString()} != "text")
      continue; // images, audio, ...: no text to echo
    if (!part.HasMember("text") || !part["text"].IsString()) {
      error = {"Invalid '" + part_param + ".text': expected a string.", part_param + ".text", "invalid_type"};
      return false;
    }
    text.append(part["text"].GetString(), part["text"].GetStringLength());
  }
  return true;
}

bool parse_messages(const rapidjson::Value& messages, chat_request& out, request_error& error) {
  if (!messages.IsArray()) {
    error = {"Invalid type for 'messages': expected an array.", "messages", "invalid_type"};
    return false;
  }
  if (messages.Empty()) {
    error = {"Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages", "empty_array"};
    return false;
  }
  std::string text;
  for (rapidjson::SizeType i = 0; i < messages.Size(); ++i) {
    const auto& message = messages[i];
    auto param = "messages[" + std::to_string(i) + "]";
    if (!message.IsObject() || !message.HasMember("role") || !message["role"].IsString()) {
      error = {"Invalid '" + param + "': a message needs a string 'role'.", param + ".role", "invalid_type"};
      return false;
    }
    text.clear();
    if (message.HasMember("content") && !content_text(message["content"], param + ".content", text, error))
      return false;
    if (auto problem = scan_directives(text, out.directives); !problem.empty()) {
      error = {problem, param + ".content", "invalid_mock_directive"};
      return false;
    }
    out.prompt_bytes += text.size();
    std::string_view role{message["role"].GetString()};
    if (role == "system" && text.find("troupe-plan-v1") != std::string::npos)
      out.plan_prompt = true;
    if (role == "user") {
      out.last_user_text = text;
      if (++out.user_messages == 1)
        out.plan_text = text;
    }
  }
  return true;
}

bool parse_options(const rapidjson::Document& doc, chat_request& out, request_error& error) {
  if (doc.HasMember("stream") && !doc["stream"].IsNull()) {
    if (!doc["stream"].IsBool()) {
      error = {"Invalid type for 'stream': expected a boolean.", "stream", "invalid_type"};
      return false;
    }
    out.stream = doc["stream"].GetBool();
  }
  if (doc.HasMember("stream_options") && doc["stream_options"].IsObject()) {
    const auto& options = doc["stream_options"];
    if (options.HasMember("include_usage") && options["include_usage"].IsBool())
      out.include_usage = options["include_usage"].GetBool();
  }
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    if (!doc.HasMember(name) || doc[name].IsNull())
      continue;
    if (!doc[name].IsInt64() || doc[name].GetInt64() < 1) {
      error = {std::string{"Invalid '"} + name + "': expected an integer of at least 1.", name, "invalid_value"};
      return false;
    }
    out.max_tokens = doc[name].GetInt64();
  }
  return true;
}

// ---- reply content ------------------------------------------------------------------------------------------

/// The reply content: `text` followed by `filler` bytes of the filler pattern.
struct reply_content {
  std::string text;
  uint64_t filler = 0;
  const char* finish_reason = "stop";

  uint64_t size() const { return text.size() + filler; }

  /// Appends bytes [from, to) as JSON string contents (escaped, without quotes) to `b`.
  void emit_escaped(uint64_t from, uint64_t to, body& b) const {
    if (from < text.size()) {
      std::string escaped;
      log::append_json_escaped(escaped,
                               std::string_view{text}.substr(from, std::min<uint64_t>(to, text.size()) - from));
      b.text(escaped);
    }
    if (to > text.size())
      b.filler(std::max<uint64_t>(from, text.size()) - text.size(), to - std::max<uint64_t>(from, text.size()));
  }

  /// Byte ranges splitting the content into at most `pieces` non-empty parts, not inside UTF-8 sequences.
  std::vector<std::pair<uint64_t, uint64_t>> split(uint64_t pieces) const {
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    uint64_t total = size(), start = 0;
    pieces = std::max<uint64_t>(1, pieces);
    for (uint64_t i = 1; i <= pieces && start < total; ++i) {
      uint64_t end = i == pieces ? total : total / pieces * i + std::min(i, total % pieces);
      while (end < text.size() && end > start && is_continuation(text[end]))
        ++end;
      if (end > start) {
        ranges.emplace_back(start, end);
        start = end;
      }
    }
    return ranges;
  }
};

uint64_t tokens_for(uint64_t bytes) {
  return std::max<uint64_t>(1, (bytes + 3) / 4);
}

reply_content make_content(const chat_request& request, const knobs& k) {
  reply_content content;
  if (k.huge_bytes > 0) {
    content.filler = static_cast<uint64_t>(k.huge_bytes);
  } else if (request.plan_prompt) {
    content.text = mock_plan(request);
  } else {
    content.text = "mock reply: ";
    if (k.malformed == malformed_mode::utf8)
      content.text += invalid_utf8;
    content.text += utf8_prefix(request.last_user_text, echo_limit_bytes);
  }
  if (k.huge_bytes > 0 && k.malformed == malformed_mode::utf8) {
    content.text = invalid_utf8;
    content.filler -= std::min<uint64_t>(content.filler, invalid_utf8.size());
  }
  if (request.max_tokens > 0) {
    auto limit = static_cast<uint64_t>(request.max_tokens) * 4;
    if (content.size() > limit) {
      content.finish_reason = "length";
      if (content.text.size() >= limit) {
        content.text = std::string{utf8_prefix(content.text, limit)};
        content.filler = 0;
      } else {
        content.filler = limit - content.text.size();
      }
    }
  }
  return content;
}

std::string usage_json(const chat_request& request, const reply_content& content) {
  auto prompt = tokens_for(request.prompt_bytes), completion = tokens_for(content.size());
  return "{\"prompt_tokens\":" + std::to_string(prompt) + ",\"completion_tokens\":" + std::to_string(completion)
         + ",\"total_tokens\":" + std::to_string(prompt + completion) + "}";
}

/// `{"id":"chatcmpl-mock-N","object":OBJECT,"created":T,"model":M,"system_fingerprint":"fp_mock"` (no brace closed).
std::string object_prefix(const chat_request& request, const admission& admitted, const answer_context& context,
                          std::string_view object) {
  std::string out = "{\"id\":\"chatcmpl-mock-" + std::to_string(admitted.number) + "\",\"object\":\"";
  out += object;
  out += "\",\"created\":" + std::to_string(context.created) + ",\"model\":";
  append_json_string(out, request.model);
  out += ",\"system_fingerprint\":\"fp_mock\"";
  return out;
}

std::string answer_headers(const admission& admitted) {
  return "X-Request-Id: req_mock_" + std::to_string(admitted.number) + "\r\n";
}

/// Writes `b`'s bytes [0, upto): in one go, or with drip_ms in `chunks` pieces and waits between them.
void emit_dripped(const body& b, uint64_t upto, const knobs& k, plan& p) {
  if (k.drip_ms <= 0 || upto == 0) {
    b.emit(0, upto, p);
    return;
  }
  auto pieces = std::min<uint64_t>(static_cast<uint64_t>(k.chunks), upto);
  for (uint64_t i = 0; i < pieces; ++i) {
    if (i > 0)
      p.wait(k.drip_ms);
    b.emit(upto * i / pieces, upto * (i + 1) / pieces, p);
  }
}

// ---- non-streaming answers ----------------------------------------------------------------------------------

void plan_completion(const chat_request& request, const admission& admitted, const answer_context& context, plan& p) {
  const auto& k = admitted.resolved;
  auto content = make_content(request, k);
  body b;
  b.text(object_prefix(request, admitted, context, "chat.completion"));
  if (k.malformed != malformed_mode::no_choices) {
    b.text(",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"");
    content.emit_escaped(0, content.size(), b);
    b.text("\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"");
    b.text(content.finish_reason);
    b.text("\"}]");
  }
  b.text(",\"usage\":" + usage_json(request, content) + "}");

  // json: a correct length for a body cut in half (a strict prefix of a JSON object is never JSON).
  // truncated: the full length announced, half of it sent, then the connection closed.
  uint64_t sent = b.size();
  int64_t announced = static_cast<int64_t>(b.size());
  if (k.malformed == malformed_mode::json) {
    sent = b.size() / 2;
    announced = static_cast<int64_t>(sent);
  } else if (k.malformed == malformed_mode::truncated) {
    sent = b.size() / 2;
  }
  p.write(response_head(200, "application/json", announced, context.keep_alive, answer_headers(admitted)));
  emit_dripped(b, sent, k, p);
  if (k.malformed == malformed_mode::truncated)
    p.close();
}

// ---- streaming answers -------------------------------------------------------------------------------------

/// Writes SSE events as HTTP chunks (or raw, when the stream ends by closing), with drip_ms between them.
class event_writer {
public:
  event_writer(plan& p, const knobs& k, const answer_context& context) : p_(p), k_(k), chunked_(context.chunked_ok) {}

  void event(const body& e) {
    if (events_ == 0 && k_.think_ms > 0)
      p_.wait(k_.think_ms); // headers are out; the first event takes its time
    if (events_ > 0 && events_ == k_.pause_after && k_.pause_ms > 0)
      p_.wait(k_.pause_ms); // silent once, mid-stream
    if (events_++ > 0)
      p_.wait(k_.drip_ms);
    if (chunked_)
      p_.write(chunk_size_line(e.size()));
    e.emit(0, e.size(), p_);
    if (chunked_)
      p_.write("\r\n");
  }
  void event(std::string_view text) {
    body e;
    e.text(text);
    event(e);
  }
  /// The end of the stream: the last chunk, or closing the connection.
  void finish() {
    if (chunked_)
      p_.write(std::string{last_chunk});
    else
      p_.close();
  }

private:
  plan& p_;
  const knobs& k_;
  bool chunked_;
  int events_ = 0;
};

void plan_stream(const chat_request& request, const admission& admitted, const answer_context& context, plan& p) {
  const auto& k = admitted.resolved;
  auto content = make_content(request, k);
  bool no_choices = k.malformed == malformed_mode::no_choices;
  auto prefix = object_prefix(request, admitted, context, "chat.completion.chunk");
  std::string suffix = request.include_usage ? "],\"usage\":null}\n\n" : "]}\n\n";
  auto choice_event = [&](std::string_view delta_open, const reply_content* part, uint64_t from, uint64_t to,
                          std::string_view finish) {
    body e;
    e.text("data: " + prefix);
    if (no_choices) {
      e.text("}\n\n");
      return e;
    }
    e.text(",\"choices\":[{\"index\":0,\"delta\":");
    e.text(delta_open);
    if (part != nullptr) {
      part->emit_escaped(from, to, e);
      e.text("\"}");
    }
    e.text(",\"logprobs\":null,\"finish_reason\":");
    e.text(finish);
    e.text("}");
    e.text(suffix);
    return e;
  };

  std::string extra = answer_headers(admitted) + "Cache-Control: no-cache\r\n";
  p.write(response_head(200, "text/event-stream; charset=utf-8", context.chunked_ok ? chunked_body : body_until_close,
                        context.chunked_ok && context.keep_alive, extra));
  if (!context.chunked_ok)
    p.close_after = true;

  event_writer events{p, k, context};
  events.event(choice_event("{\"role\":\"assistant\"}", nullptr, 0, 0, "null"));
  auto pieces = std::max<uint64_t>(static_cast<uint64_t>(k.chunks),
                                   (content.size() + max_stream_event_content - 1) / max_stream_event_content);
  auto ranges = content.split(pieces);
  // truncated: the role event and the first half of the content events, then the connection closes.
  size_t content_events =
    k.malformed == malformed_mode::truncated ? std::max<size_t>(1, ranges.size() / 2) : ranges.size();
  for (size_t i = 0; i < content_events && i < ranges.size(); ++i) {
    events.event(choice_event("{\"content\":\"", &content, ranges[i].first, ranges[i].second, "null"));
    if (i == 0 && k.malformed == malformed_mode::sse)
      events.event("data: " + prefix + ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\n\n");
  }
  if (k.malformed == malformed_mode::truncated) {
    p.close();
    return;
  }
  events.event(choice_event("{}", nullptr, 0, 0, std::string{"\""} + content.finish_reason + "\""));
  if (request.include_usage)
    events.event("data: " + prefix + ",\"choices\":[],\"usage\":" + usage_json(request, content) + "}\n\n");
  events.event("data: [DONE]\n\n");
  events.finish();
}

} // namespace

void plan_error(const admission& admitted, const answer_context& context, plan& p) {
  const auto& k = admitted.resolved;
  std::string extra = answer_headers(admitted);
  if (k.retry_after >= 0)
    extra += "Retry-After: " + std::to_string(k.retry_after) + "\r\n";
  auto message = "mock upstream answered " + std::to_string(admitted.status) + " as configured";
  body b;
  b.text(openai_error_body(message, error_type_for(admitted.status), error_code_for(admitted.status)));
  p.write(
    response_head(admitted.status, "application/json", static_cast<int64_t>(b.size()), context.keep_alive, extra));
  emit_dripped(b, b.size(), k, p);
}

std::string mock_plan(const chat_request& request) {
  std::string_view text = request.plan_text;
  std::string_view line = text.substr(0, text.find('\n'));
  constexpr std::string_view prefix = "Request: ";
  if (line.substr(0, prefix.size()) == prefix)
    line.remove_prefix(prefix.size());
  bool invalid = line.find("[invalid-plan]") != std::string_view::npos
                 || (line.find("[invalid-plan-once]") != std::string_view::npos && request.user_messages < 2);
  std::string out = "{\"title\":";
  append_json_string(out, "Plan: " + std::string{utf8_prefix(line, 60)});
  if (invalid)
    return out + ",\"overview\":\"An answer without sections.\"}";
  // The excerpts' distinct paths, in order.
  std::vector<std::string> paths;
  for (size_t at = text.find("\n--- "); at != std::string_view::npos && paths.size() < 8;
       at = text.find("\n--- ", at + 1)) {
    auto start = at + 5;
    auto end = text.find('\n', start);
    auto entry = text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    auto colon = entry.rfind(':');
    std::string path{entry.substr(0, colon)};
    if (std::find(paths.begin(), paths.end(), path) == paths.end())
      paths.push_back(std::move(path));
  }
  out += ",\"overview\":";
  append_json_string(out, "A plan for: " + std::string{utf8_prefix(line, 200)} + " It touches "
                            + std::to_string(paths.size()) + " file" + (paths.size() == 1 ? "" : "s") + ".");
  out += ",\"sections\":[";
  auto goal = std::string{utf8_prefix(line, 80)};
  if (paths.empty()) {
    out += "{\"title\":\"Start\",\"files\":[],\"steps\":[";
    append_json_string(out, "Find where to begin: " + goal);
    out += "]}";
  }
  for (size_t i = 0; i < paths.size(); ++i) {
    if (i > 0)
      out += ',';
    out += "{\"title\":";
    append_json_string(out, "Update " + paths[i]);
    out += ",\"files\":[";
    append_json_string(out, paths[i]);
    out += "],\"steps\":[";
    append_json_string(out, "Read " + paths[i] + ".");
    out += ',';
    append_json_string(out, "Change it for: " + goal);
    out += ",\"Test the change.\"]}";
  }
  return out + "]}";
}

std::string scan_directives(std::string_view text, knob_overrides& directives) {
  for (size_t pos = text.find(directive_open); pos != std::string_view::npos; pos = text.find(directive_open, pos)) {
    auto inner_start = pos + directive_open.size();
    // "[[mocking" is not a directive: the name must end at a space or the closing brackets.
    if (inner_start < text.size() && text[inner_start] != ' ' && text[inner_start] != ']') {
      pos = inner_start;
      continue;
    }
    auto close = text.find(directive_close, inner_start);
    if (close == std::string_view::npos)
      return "unterminated [[mock ...]] directive";
    if (auto error = parse_knob_list(text.substr(inner_start, close - inner_start), directives); !error.empty())
      return error;
    pos = close + directive_close.size();
  }
  return {};
}

bool parse_chat_request(std::string_view body_text, chat_request& out, request_error& error) {
  auto parsed = json::parse(body_text);
  if (!parsed) {
    const auto& e = parsed.error();
    error = {std::string{"We could not parse the JSON body of your request: "} + e.reason + " (at byte "
               + std::to_string(e.offset) + ").",
             e.param, e.code == json::parse_errc::duplicate_key ? "duplicate_key" : "invalid_json"};
    return false;
  }
  const auto& doc = parsed.document();
  if (!doc.IsObject()) {
    error = {"The request body must be a JSON object.", "", "invalid_json"};
    return false;
  }
  if (!doc.HasMember("model") || !doc["model"].IsString() || doc["model"].GetStringLength() == 0) {
    error = {"You must provide a model parameter.", "model", "missing_required_parameter"};
    return false;
  }
  out.model.assign(doc["model"].GetString(), doc["model"].GetStringLength());
  if (!doc.HasMember("messages")) {
    error = {"Missing required parameter: 'messages'.", "messages", "missing_required_parameter"};
    return false;
  }
  return parse_messages(doc["messages"], out, error) && parse_options(doc, out, error);
}

void plan_chat_answer(const chat_request& request, const admission& admitted, const answer_context& context, plan& p) {
  const auto& k = admitted.resolved;
  p.close_after = !context.keep_alive;
  p.wait(k.latency_ms);
  if (admitted.status != 200) {
    plan_error(admitted, context, p);
    return;
  }
  switch (k.malformed) {
  case malformed_mode::hangup:
    p.close();
    return;
  case malformed_mode::json:
    plan_completion(request, admitted, context, p);
    return;
  case malformed_mode::sse:
    plan_stream(request, admitted, context, p);
    return;
  default:
    break;
  }
  if (request.stream)
    plan_stream(request, admitted, context, p);
  else
    plan_completion(request, admitted, context, p);
}

std::string_view error_type_for(int status) {
  switch (status) {
  case 401:
    return "authentication_error";
  case 403:
    return "permission_error";
  case 404:
    return "not_found_error";
  case 429:
    return "rate_limit_error";
  default:
    return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string_view error_code_for(int status) {
  switch (status) {
  case 401:
    return "invalid_api_key";
  case 404:
    return "model_not_found";
  case 429:
    return "rate_limit_exceeded";
  case 500:
    return "internal_error";
  case 502:
    return "bad_gateway";
  case 503:
    return "service_unavailable";
  case 504:
    return "timeout";
  default:
    return status >= 500 ? "server_error" : "invalid_request";
  }
}

} // namespace troupe::mock
