#include "http/openai.hpp"

#include "http/hashing.hpp"

#include "config/log.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <set>

namespace troupe::http::openai {

namespace {

using rapidjson::Value;

const std::set<std::string>& known_roles() {
  static const std::set<std::string> roles{"system", "developer", "user", "assistant", "tool", "function"};
  return roles;
}

size_t text_chars(const Value& content) {
  if (content.IsString())
    return content.GetStringLength();
  size_t n = 0;
  if (content.IsArray())
    for (const auto& part : content.GetArray())
      if (part.IsObject()) {
        auto text = part.FindMember("text");
        if (text != part.MemberEnd() && text->value.IsString())
          n += text->value.GetStringLength();
      }
  return n;
}

/// Writes `v` with object keys sorted, recursively: the same request always gives the same text.
void write_canonical(const Value& v, rapidjson::Writer<rapidjson::StringBuffer>& w) {
  if (v.IsObject()) {
    std::vector<const Value::Member*> members;
    for (const auto& m : v.GetObject())
      members.push_back(&m);
    std::sort(members.begin(), members.end(), [](const Value::Member* a, const Value::Member* b) {
      return std::string_view(a->name.GetString(), a->name.GetStringLength())
             < std::string_view(b->name.GetString(), b->name.GetStringLength());
    });
    w.StartObject();
    for (const auto* m : members) {
      w.Key(m->name.GetString(), m->name.GetStringLength());
      write_canonical(m->value, w);
    }
    w.EndObject();
  } else if (v.IsArray()) {
    w.StartArray();
    for (const auto& x : v.GetArray())
      write_canonical(x, w);
    w.EndArray();
  } else {
    v.Accept(w);
  }
}

bool parse_strict(rapidjson::Document& doc, std::string_view text) {
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(text.data(), text.size());
  return !doc.HasParseError();
}

} // namespace

std::optional<request_error> validate_chat_request(const rapidjson::Document& doc, size_t max_messages,
                                                   chat_request& out) {
  if (!doc.IsObject())
    return request_error{"The request body must be a JSON object.", ""};
  auto model = doc.FindMember("model");
  if (model == doc.MemberEnd() || !model->value.IsString() || model->value.GetStringLength() == 0
      || model->value.GetStringLength() > 128)
    return request_error{"`model` is required: a string of 1 to 128 characters.", "model"};
  out.model.assign(model->value.GetString(), model->value.GetStringLength());
  auto messages = doc.FindMember("messages");
  if (messages == doc.MemberEnd() || !messages->value.IsArray() || messages->value.Empty())
    return request_error{"`messages` is required: a non-empty array.", "messages"};
  if (messages->value.Size() > max_messages)
    return request_error{"`messages` has more than " + std::to_string(max_messages) + " entries.", "messages"};
  out.prompt_chars = 0;
  rapidjson::SizeType i = 0;
  for (const auto& m : messages->value.GetArray()) {
    auto at = "messages[" + std::to_string(i++) + "]";
    if (!m.IsObject())
      return request_error{"Each message must be an object.", at};
    auto role = m.FindMember("role");
    if (role == m.MemberEnd() || !role->value.IsString()
        || !known_roles().count(std::string(role->value.GetString(), role->value.GetStringLength())))
      return request_error{"`role` must be one of system, developer, user, assistant, tool, function.", at + ".role"};
    auto content = m.FindMember("content");
    if (content != m.MemberEnd()) {
      if (!content->value.IsString() && !content->value.IsArray() && !content->value.IsNull())
        return request_error{"`content` must be a string, an array of content parts, or null.", at + ".content"};
      out.prompt_chars += text_chars(content->value);
    }
  }
  auto stream = doc.FindMember("stream");
  if (stream != doc.MemberEnd()) {
    if (!stream->value.IsBool() && !stream->value.IsNull())
      return request_error{"`stream` must be true or false.", "stream"};
    out.stream = stream->value.IsBool() && stream->value.GetBool();
  }
  auto temperature = doc.FindMember("temperature");
  if (temperature != doc.MemberEnd() && !temperature->value.IsNull()) {
    if (!temperature->value.IsNumber() || temperature->value.GetDouble() < 0 || temperature->value.GetDouble() > 2)
      return request_error{"`temperature` must be a number from 0 to 2.", "temperature"};
    out.temperature = temperature->value.GetDouble();
  }
  for (const char* field : {"max_tokens", "max_completion_tokens"}) {
    auto it = doc.FindMember(field);
    if (it != doc.MemberEnd() && !it->value.IsNull() && (!it->value.IsInt64() || it->value.GetInt64() < 1))
      return request_error{std::string("`") + field + "` must be a positive integer.", field};
  }
  auto n = doc.FindMember("n");
  if (n != doc.MemberEnd() && !n->value.IsNull()
      && (!n->value.IsInt64() || n->value.GetInt64() < 1 || n->value.GetInt64() > 8))
    return request_error{"`n` must be an integer from 1 to 8.", "n"};
  return std::nullopt;
}

std::string cache_key(const rapidjson::Document& doc, const std::string& tenant) {
  static const char* const deciding[] = {"model",
                                         "messages",
                                         "temperature",
                                         "top_p",
                                         "max_tokens",
                                         "max_completion_tokens",
                                         "n",
                                         "stop",
                                         "presence_penalty",
                                         "frequency_penalty",
                                         "seed",
                                         "logit_bias",
                                         "logprobs",
                                         "top_logprobs",
                                         "tools",
                                         "tool_choice",
                                         "parallel_tool_calls",
                                         "response_format",
                                         "functions",
                                         "function_call",
                                         "reasoning_effort",
                                         "modalities"};
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  std::vector<std::string_view> names(std::begin(deciding), std::end(deciding));
  std::sort(names.begin(), names.end());
  for (auto name : names) {
    auto it = doc.FindMember(rapidjson::StringRef(name.data(), name.size()));
    if (it == doc.MemberEnd() || it->value.IsNull())
      continue;
    writer.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    write_canonical(it->value, writer);
  }
  writer.EndObject();
  return "gw:" + tenant + ":" + sha256_hex(std::string_view(buffer.GetString(), buffer.GetSize()));
}

int64_t estimate_tokens(size_t chars) {
  return std::max<int64_t>(1, static_cast<int64_t>((chars + 3) / 4));
}

namespace {

std::optional<usage> reported_usage(const Value& root) {
  auto u = root.FindMember("usage");
  if (u == root.MemberEnd() || !u->value.IsObject())
    return std::nullopt;
  auto get = [&](const char* name) -> int64_t {
    auto it = u->value.FindMember(name);
    return it != u->value.MemberEnd() && it->value.IsInt64() ? std::max<int64_t>(0, it->value.GetInt64()) : 0;
  };
  usage result{get("prompt_tokens"), get("completion_tokens"), get("total_tokens"), false};
  if (result.total_tokens == 0)
    result.total_tokens = result.prompt_tokens + result.completion_tokens;
  return result;
}

} // namespace

std::optional<usage> check_completion(std::string_view body, size_t prompt_chars, std::string& why) {
  rapidjson::Document doc;
  if (!parse_strict(doc, body)) {
    why =
      doc.GetParseError() == rapidjson::kParseErrorStringInvalidEncoding
        ? "the upstream's answer is not valid UTF-8"
        : std::string("the upstream's answer is not valid JSON: ") + rapidjson::GetParseError_En(doc.GetParseError());
    return std::nullopt;
  }
  if (!doc.IsObject()) {
    why = "the upstream's answer is not a JSON object";
    return std::nullopt;
  }
  auto choices = doc.FindMember("choices");
  if (choices == doc.MemberEnd() || !choices->value.IsArray() || choices->value.Empty()) {
    why = "the upstream's answer has no choices";
    return std::nullopt;
  }
  if (auto u = reported_usage(doc))
    return u;
  auto text = completion_text(body);
  usage u{estimate_tokens(prompt_chars), estimate_tokens(text.size()), 0, true};
  u.total_tokens = u.prompt_tokens + u.completion_tokens;
  return u;
}

std::string completion_text(std::string_view body) {
  rapidjson::Document doc;
  if (!parse_strict(doc, body) || !doc.IsObject())
    return "";
  auto choices = doc.FindMember("choices");
  if (choices == doc.MemberEnd() || !choices->value.IsArray() || choices->value.Empty())
    return "";
  const auto& first = choices->value[0];
  if (!first.IsObject())
    return "";
  auto message = first.FindMember("message");
  if (message == first.MemberEnd() || !message->value.IsObject())
    return "";
  auto content = message->value.FindMember("content");
  if (content == message->value.MemberEnd() || !content->value.IsString())
    return "";
  return std::string(content->value.GetString(), content->value.GetStringLength());
}

bool valid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t size = text.size();
  size_t i = 0;
  while (i < size) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0; // continuation bytes
    uint32_t cp = 0;
    if ((c >> 5) == 0x6) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c >> 4) == 0xE) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c >> 3) == 0x1E) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= size)
      return false;
    for (size_t k = 1; k <= n; ++k) {
      if ((s[i + k] & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    // Overlong forms, surrogates and code points beyond Unicode are invalid.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF
        || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

sse_relay::sse_relay(size_t prompt_chars, size_t max_event_bytes)
  : prompt_chars_(prompt_chars), max_event_bytes_(max_event_bytes) {}

std::string sse_relay::feed(std::string_view data) {
  std::string out;
  if (failed())
    return out;
  buffer_.append(data.data(), data.size());
  // Events end with a blank line; accept \n\n and \r\n\r\n.
  for (;;) {
    auto lf = buffer_.find("\n\n");
    auto crlf = buffer_.find("\r\n\r\n");
    size_t end = std::min(lf, crlf);
    if (end == std::string::npos)
      break;
    size_t sep = end == lf ? 2 : 4;
    std::string block = buffer_.substr(0, end);
    buffer_.erase(0, end + sep);
    event(block, out);
    if (failed())
      return out;
  }
  if (buffer_.size() > max_event_bytes_)
    why_ = "an upstream event is larger than " + std::to_string(max_event_bytes_) + " bytes";
  return out;
}

void sse_relay::event(std::string_view block, std::string& out) {
  if (!valid_utf8(block)) {
    why_ = "the upstream's stream is not valid UTF-8";
    return;
  }
  if (done_) {
    why_ = "the upstream sent events after [DONE]";
    return;
  }
  std::string data;
  bool has_data = false;
  std::string kept; // comments and other fields, passed through
  size_t pos = 0;
  while (pos <= block.size()) {
    auto nl = block.find('\n', pos);
    auto line = block.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (line.rfind("data:", 0) == 0) {
      auto value = line.substr(5);
      if (!value.empty() && value.front() == ' ')
        value.remove_prefix(1);
      if (has_data)
        data += '\n';
      data.append(value.data(), value.size());
      has_data = true;
    } else if (!line.empty()) {
      kept.append(line.data(), line.size());
      kept += '\n';
    }
    if (nl == std::string_view::npos)
      break;
    pos = nl + 1;
  }
  if (!has_data) {
    if (!kept.empty())
      out += kept + "\n";
    return;
  }
  if (data == "[DONE]") {
    done_ = true;
    out += kept + "data: [DONE]\n\n";
    return;
  }
  rapidjson::Document doc;
  if (!parse_strict(doc, data) || !doc.IsObject()) {
    why_ = "the upstream's stream has an event that is not JSON";
    return;
  }
  if (doc.HasMember("error")) {
    why_ = "the upstream reported an error in its stream";
    return;
  }
  if (auto u = reported_usage(doc))
    reported_ = u;
  auto choices = doc.FindMember("choices");
  if (choices != doc.MemberEnd() && choices->value.IsArray())
    for (const auto& c : choices->value.GetArray())
      if (c.IsObject()) {
        auto delta = c.FindMember("delta");
        if (delta != c.MemberEnd() && delta->value.IsObject()) {
          auto content = delta->value.FindMember("content");
          if (content != delta->value.MemberEnd() && content->value.IsString())
            completion_chars_ += content->value.GetStringLength();
        }
      }
  out += kept + "data: " + data + "\n\n";
}

usage sse_relay::totals() const {
  if (reported_)
    return *reported_;
  usage u{estimate_tokens(prompt_chars_), estimate_tokens(completion_chars_), 0, true};
  u.total_tokens = u.prompt_tokens + u.completion_tokens;
  return u;
}

std::string sse_error_event(const std::string& type, const std::string& code, const std::string& message) {
  std::string body = R"(data: {"error":{"type":")";
  log::append_json_escaped(body, type);
  body += R"(","code":")";
  log::append_json_escaped(body, code);
  body += R"(","message":")";
  log::append_json_escaped(body, message);
  body += "\"}}\n\n";
  return body;
}

} // namespace troupe::http::openai
