#include "ai/openai.hpp"

#include "config/hashing.hpp"

#include "config/json.hpp"
#include "config/log.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <sodium.h>

#include <algorithm>
#include <array>
#include <vector>

namespace troupe::openai {

namespace {

using rapidjson::Value;
using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

/// Upstream answers nest a few levels; anything deeper than a request body may be is not an OpenAI answer.
constexpr size_t max_answer_depth = json::default_max_depth;

std::string_view text_of(const Value& v) {
  return {v.GetString(), v.GetStringLength()};
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

/// An allowed field, in canonical order (the schema, chat_schema, says what each may hold).
struct field_rule {
  std::string_view name;
  bool deciding; // changes the answer: part of the cache key
};

/// The top-level fields other than model and messages, in canonical order: every deciding field before every other
/// one (see validate_chat_request).
const field_rule optional_fields[] = {
  {"temperature", true},     {"top_p", true},          {"max_tokens", true},         {"max_completion_tokens", true},
  {"n", true},               {"stop", true},           {"presence_penalty", true},   {"frequency_penalty", true},
  {"seed", true},            {"logit_bias", true},     {"logprobs", true},           {"top_logprobs", true},
  {"tools", true},           {"tool_choice", true},    {"parallel_tool_calls", true}, {"response_format", true},
  {"functions", true},       {"function_call", true},  {"reasoning_effort", true},   {"verbosity", true},
  {"modalities", true},      {"audio", true},          {"prediction", true},         {"web_search_options", true},
  {"stream", false},         {"stream_options", false}, {"user", false},             {"metadata", false},
  {"store", false},          {"service_tier", false},
};

/// The fields a message may have, in canonical order.
const std::string_view message_fields[] = {"role",         "name",          "content", "tool_calls",
                                           "tool_call_id", "function_call", "refusal", "audio"};

/// The images of one request so far (check_image counts them against the limits).
struct image_tally {
  const image_limits& limits;
  size_t count = 0;
  size_t inline_bytes = 0;
};

struct image_type {
  std::string_view media_type;
  bool (*matches)(const unsigned char* p, size_t n);
};

const image_type image_types[] = {
  {"image/png", [](const unsigned char* p, size_t n) {
     static const unsigned char sig[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
     return n >= sizeof sig && std::equal(std::begin(sig), std::end(sig), p);
   }},
  {"image/jpeg", [](const unsigned char* p, size_t n) { return n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff; }},
  {"image/gif", [](const unsigned char* p, size_t n) {
     return n >= 6 && (std::equal(p, p + 6, "GIF87a") || std::equal(p, p + 6, "GIF89a"));
   }},
  {"image/webp", [](const unsigned char* p, size_t n) {
     return n >= 12 && std::equal(p, p + 4, "RIFF") && std::equal(p + 8, p + 12, "WEBP");
   }},
};

constexpr size_t max_image_url_chars = 8192;

std::string mebibytes(size_t bytes) {
  auto tenths = (bytes * 10 + (1u << 19)) >> 20;
  return std::to_string(tenths / 10) + (tenths % 10 ? "." + std::to_string(tenths % 10) : "") + " MiB";
}

/// One {"type": "image_url"} part: its URL, inline bytes and detail; nullopt when it may be forwarded.
std::optional<request_error> check_image(const Value& part, const std::string& at, image_tally& tally) {
  if (++tally.count > tally.limits.max_images)
    return request_error{"A request may carry at most " + std::to_string(tally.limits.max_images) + " images.", at};
  auto image = part.FindMember("image_url");
  if (image == part.MemberEnd() || !image->value.IsObject())
    return request_error{"An image part needs an `image_url` object with a `url`.", at + ".image_url"};
  auto url = image->value.FindMember("url");
  if (url == image->value.MemberEnd() || !url->value.IsString())
    return request_error{"`image_url.url` must be a string: an http(s) URL or a base64 data URL.",
                         at + ".image_url.url"};
  auto detail = image->value.FindMember("detail");
  if (detail != image->value.MemberEnd() && !detail->value.IsNull()) {
    auto d = detail->value.IsString() ? text_of(detail->value) : std::string_view{};
    if (d != "auto" && d != "low" && d != "high")
      return request_error{"`image_url.detail` must be auto, low or high.", at + ".image_url.detail"};
  }
  auto text = text_of(url->value);
  auto where = at + ".image_url.url";
  if (text.rfind("https://", 0) == 0 || text.rfind("http://", 0) == 0) {
    if (text.size() > max_image_url_chars)
      return request_error{"An image URL may be at most " + std::to_string(max_image_url_chars) + " characters.",
                           where};
    return std::nullopt;
  }
  if (text.rfind("data:", 0) != 0)
    return request_error{"An image must be an http(s) URL or a base64 data URL (data:image/png;base64,...).", where};
  auto comma = text.find(',');
  auto header = text.substr(5, comma == std::string_view::npos ? std::string_view::npos : comma - 5);
  constexpr std::string_view base64_suffix = ";base64";
  if (comma == std::string_view::npos || header.size() < base64_suffix.size()
      || header.substr(header.size() - base64_suffix.size()) != base64_suffix)
    return request_error{"An inline image must be a base64 data URL (data:image/png;base64,...).", where};
  auto media_type = header.substr(0, header.size() - base64_suffix.size());
  auto type = std::find_if(std::begin(image_types), std::end(image_types),
                           [&](const image_type& t) { return t.media_type == media_type; });
  if (type == std::end(image_types))
    return request_error{"An inline image must be image/png, image/jpeg, image/gif or image/webp.", where};
  auto payload = text.substr(comma + 1);
  // Decoded size from the length alone, before any work: 3 bytes per 4 characters.
  auto most = payload.size() / 4 * 3 + 3;
  if (most - 3 > tally.limits.max_image_bytes)
    return request_error{"An image may be at most " + mebibytes(tally.limits.max_image_bytes) + ".", where};
  std::vector<unsigned char> bytes(most);
  size_t decoded = 0;
  const char* end = nullptr;
  if (sodium_base642bin(bytes.data(), bytes.size(), payload.data(), payload.size(), nullptr, &decoded, &end,
                        sodium_base64_VARIANT_ORIGINAL)
        != 0
      || end != payload.data() + payload.size() || decoded == 0)
    return request_error{"The image's base64 data is not valid.", where};
  if (decoded > tally.limits.max_image_bytes)
    return request_error{"An image may be at most " + mebibytes(tally.limits.max_image_bytes) + ".", where};
  if (!type->matches(bytes.data(), decoded))
    return request_error{"The image's bytes are not " + std::string{media_type} + ".", where};
  tally.inline_bytes += decoded;
  if (tally.inline_bytes > tally.limits.max_request_image_bytes)
    return request_error{"The images of a request may be at most "
                           + mebibytes(tally.limits.max_request_image_bytes) + " together.",
                         where};
  return std::nullopt;
}

/// What the schema cannot say of a (schema-valid) message: its image parts; and the characters its text adds.
std::optional<request_error> check_message(const Value& m, const std::string& at, size_t& prompt_chars,
                                           image_tally& images) {
  auto content = m.FindMember("content");
  if (content == m.MemberEnd())
    return std::nullopt;
  const auto& c = content->value;
  if (c.IsArray())
    for (rapidjson::SizeType j = 0; j < c.Size(); ++j)
      if (text_of(c[j]["type"]) == "image_url") // the schema: each part is an object with a string type
        if (auto err = check_image(c[j], at + ".content[" + std::to_string(j) + "]", images))
          return err;
  prompt_chars += text_chars(c);
  return std::nullopt;
}

void write_key(json_writer& w, std::string_view name) {
  w.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
}

/// A message with its fields in canonical order; values as parsed.
void write_message(const Value& m, json_writer& w) {
  w.StartObject();
  for (auto name : message_fields) {
    auto it = m.FindMember(rapidjson::StringRef(name.data(), name.size()));
    if (it == m.MemberEnd())
      continue;
    write_key(w, name);
    it->value.Accept(w); // bounded: the document passed json::parse's depth limit
  }
  w.EndObject();
}

} // namespace

/// What a draft-4 schema cannot say is checked by chat_validator after it: image parts (their URL, inline
/// bytes and the request's image budget) and the length of metadata's keys (at most 64 characters).
std::string chat_schema(size_t max_messages) {
  return std::string{R"({
  "type": "object", "additionalProperties": false, "required": ["model", "messages"],
  "properties": {
    "model": {"type": "string", "minLength": 1, "maxLength": 128},
    "messages": {"type": "array", "minItems": 1, "maxItems": )"} + std::to_string(max_messages) + R"(,
      "items": {
        "type": "object", "additionalProperties": false, "required": ["role"],
        "properties": {
          "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool", "function"]},
          "name": {"type": "string", "maxLength": 256},
          "content": {"type": ["string", "array", "null"],
                      "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}},
          "tool_calls": {"type": "array", "maxItems": 1024, "items": {"type": "object"}},
          "tool_call_id": {"type": "string", "maxLength": 256},
          "function_call": {"type": ["object", "null"]},
          "refusal": {"type": ["string", "null"], "maxLength": 1048576},
          "audio": {"type": ["object", "null"]}
        }
      }
    },
    "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
    "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    "max_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": 9223372036854775807},
    "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": 9223372036854775807},
    "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 8},
    "stop": {"type": ["string", "array", "null"], "maxItems": 4, "items": {"type": "string"}},
    "presence_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
    "frequency_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
    "seed": {"type": ["integer", "null"], "minimum": -9223372036854775808, "maximum": 9223372036854775807},
    "logit_bias": {"type": ["object", "null"], "maxProperties": 1024,
                   "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100}},
    "logprobs": {"type": ["boolean", "null"]},
    "top_logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": 20},
    "tools": {"type": ["array", "null"], "maxItems": 128,
              "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}},
    "tool_choice": {"type": ["string", "object", "null"]},
    "parallel_tool_calls": {"type": ["boolean", "null"]},
    "response_format": {"type": ["object", "null"], "required": ["type"], "properties": {"type": {"type": "string"}}},
    "functions": {"type": ["array", "null"], "maxItems": 128, "items": {"type": "object"}},
    "function_call": {"type": ["string", "object", "null"]},
    "reasoning_effort": {"type": ["string", "null"], "maxLength": 32},
    "verbosity": {"type": ["string", "null"], "maxLength": 32},
    "modalities": {"type": ["array", "null"], "maxItems": 4, "items": {"type": "string"}},
    "audio": {"type": ["object", "null"]},
    "prediction": {"type": ["object", "null"], "required": ["type"], "properties": {"type": {"type": "string"}}},
    "web_search_options": {"type": ["object", "null"]},
    "stream": {"type": ["boolean", "null"]},
    "stream_options": {"type": ["object", "null"], "properties": {"include_usage": {"type": "boolean"}}},
    "user": {"type": ["string", "null"], "maxLength": 512},
    "metadata": {"type": ["object", "null"], "maxProperties": 16,
                 "additionalProperties": {"type": "string", "maxLength": 512}},
    "store": {"type": ["boolean", "null"]},
    "service_tier": {"type": ["string", "null"], "maxLength": 32}
  }
})";
}

chat_validator::chat_validator(size_t max_messages, image_limits images)
  : schema_(chat_schema(max_messages)), images_(images) {}

std::optional<request_error> validate_chat_request(const rapidjson::Document& doc, size_t max_messages,
                                                   chat_request& out, const image_limits& images) {
  return chat_validator{max_messages, images}.validate(doc, out);
}

std::optional<request_error> chat_validator::validate(const rapidjson::Document& doc, chat_request& out) const {
  // The schema first: every field's type and range, and nothing it does not name (nothing else is ever forwarded).
  if (auto v = schema_.validate(doc))
    return request_error{std::move(v->message), std::move(v->param)};
  // Draft 4 has no propertyNames: metadata's keys are measured here.
  if (auto metadata = doc.FindMember("metadata"); metadata != doc.MemberEnd() && metadata->value.IsObject())
    for (const auto& m : metadata->value.GetObject())
      if (m.name.GetStringLength() > 64)
        return request_error{"metadata's keys must be at most 64 bytes.", "metadata"};
  auto model = doc.FindMember("model");
  auto messages = doc.FindMember("messages");
  size_t prompt_chars = 0;
  image_tally tally{images_};
  for (rapidjson::SizeType i = 0; i < messages->value.Size(); ++i)
    if (auto err = check_message(messages->value[i], "messages[" + std::to_string(i) + "]", prompt_chars, tally))
      return err;

  // Valid: fill `out` and write the canonical form, deciding fields first.
  out.model.assign(model->value.GetString(), model->value.GetStringLength());
  out.prompt_chars = prompt_chars;
  auto stream = doc.FindMember("stream");
  out.stream = stream != doc.MemberEnd() && stream->value.IsBool() && stream->value.GetBool();
  out.include_usage = false;
  out.max_output_tokens = 0;
  for (const char* name : {"max_tokens", "max_completion_tokens"}) // checked above: positive integers when present
    if (auto it = doc.FindMember(name); it != doc.MemberEnd() && it->value.IsInt64())
      out.max_output_tokens = it->value.GetInt64();
  auto n = doc.FindMember("n");
  out.choices = n != doc.MemberEnd() && n->value.IsInt64() ? n->value.GetInt64() : 1;
  auto temperature = doc.FindMember("temperature");
  out.temperature.reset();
  if (temperature != doc.MemberEnd() && temperature->value.IsNumber())
    out.temperature = temperature->value.GetDouble();

  rapidjson::StringBuffer buffer;
  json_writer w{buffer};
  w.StartObject();
  write_key(w, "model");
  w.String(model->value.GetString(), model->value.GetStringLength());
  write_key(w, "messages");
  w.StartArray();
  for (const auto& m : messages->value.GetArray())
    write_message(m, w);
  w.EndArray();
  // The deciding part ends before the first other field: as an object of its own, it is what the cache key hashes.
  bool deciding = true;
  auto end_of_deciding = [&] {
    std::string part{buffer.GetString(), buffer.GetSize()};
    part += '}';
    out.deciding_hash = sha256_hex(part);
    deciding = false;
  };
  for (const auto& rule : optional_fields) {
    if (deciding && !rule.deciding)
      end_of_deciding();
    auto it = doc.FindMember(rapidjson::StringRef(rule.name.data(), rule.name.size()));
    bool present = it != doc.MemberEnd() && !it->value.IsNull();
    if (rule.name == "stream_options" && out.stream) {
      // A stream always asks the upstream for its usage; whether the client sees the usage chunk is its own choice.
      write_key(w, rule.name);
      w.StartObject();
      if (present)
        for (const auto& option : it->value.GetObject()) {
          if (std::string_view{option.name.GetString(), option.name.GetStringLength()} == "include_usage") {
            out.include_usage = option.value.IsBool() && option.value.GetBool();
            continue;
          }
          w.Key(option.name.GetString(), option.name.GetStringLength());
          option.value.Accept(w); // bounded, as below
        }
      write_key(w, "include_usage");
      w.Bool(true);
      w.EndObject();
      continue;
    }
    if (!present)
      continue;
    write_key(w, rule.name);
    it->value.Accept(w); // bounded: the document passed json::parse's depth limit
  }
  if (deciding)
    end_of_deciding();
  w.EndObject();
  out.body.assign(buffer.GetString(), buffer.GetSize());
  return std::nullopt;
}

std::string cache_key(const chat_request& request, const std::string& tenant) {
  return "gw:" + tenant + ":" + request.deciding_hash;
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

std::string refusal(const json::parse_error& e, const char* what) {
  switch (e.code) {
  case json::parse_errc::invalid_utf8:
    return std::string{what} + " is not valid UTF-8";
  case json::parse_errc::too_deep:
    return std::string{what} + " is not an OpenAI answer: " + e.reason;
  case json::parse_errc::duplicate_key:
    return std::string{what} + " is ambiguous: " + e.reason + (e.param.empty() ? "" : " (" + e.param + ")");
  case json::parse_errc::syntax:
    break;
  }
  return std::string{what} + " is not valid JSON: " + e.reason;
}

namespace {

/// choices[0].message.content of a parsed answer, "" if absent.
std::string completion_text_of(const Value& doc) {
  if (!doc.IsObject())
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

} // namespace

std::optional<usage> check_completion(std::string_view body, size_t prompt_chars, std::string& why) {
  auto parsed = json::parse(body, max_answer_depth);
  if (!parsed) {
    why = refusal(parsed.error(), "the upstream's answer");
    return std::nullopt;
  }
  const auto& doc = parsed.document();
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
  auto text = completion_text_of(doc);
  usage u{estimate_tokens(prompt_chars), estimate_tokens(text.size()), 0, true};
  u.total_tokens = u.prompt_tokens + u.completion_tokens;
  return u;
}

std::string completion_text(std::string_view body) {
  auto parsed = json::parse(body, max_answer_depth);
  return parsed ? completion_text_of(parsed.document()) : std::string{};
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

sse_relay::sse_relay(size_t prompt_chars, bool relay_usage, size_t max_event_bytes)
  : prompt_chars_(prompt_chars), max_event_bytes_(max_event_bytes), relay_usage_(relay_usage) {}

std::string sse_relay::feed(std::string_view data) {
  std::string out;
  if (failed())
    return out;
  buffer_.append(data.data(), data.size());
  // Lines end with CRLF, LF or CR (the SSE grammar); a blank line ends an event. A CR as the last byte waits for
  // the next bytes, which may hold its LF. Bytes before scanned_ hold no line end: they are not searched again.
  size_t start = 0;
  size_t from = scanned_;
  for (;;) {
    size_t eol = buffer_.find_first_of("\r\n", from);
    if (eol == std::string::npos || (buffer_[eol] == '\r' && eol + 1 == buffer_.size())) {
      scanned_ = eol == std::string::npos ? buffer_.size() : eol;
      break;
    }
    std::string_view line{buffer_.data() + start, eol - start};
    size_t next = eol + 1 + (buffer_[eol] == '\r' && buffer_[eol + 1] == '\n' ? 1 : 0);
    if (line.empty()) {
      if (!lines_.empty()) {
        event(out);
        if (failed())
          return out;
      }
    } else {
      event_bytes_ += line.size() + 1;
      lines_.emplace_back(line);
    }
    start = from = next;
  }
  buffer_.erase(0, start);
  scanned_ -= start;
  if (event_bytes_ + buffer_.size() > max_event_bytes_)
    why_ = "an upstream event is larger than " + std::to_string(max_event_bytes_) + " bytes";
  return out;
}

void sse_relay::event(std::string& out) {
  auto lines = std::move(lines_);
  lines_.clear();
  event_bytes_ = 0;
  for (const auto& line : lines)
    if (!valid_utf8(line)) {
      why_ = "the upstream's stream is not valid UTF-8";
      return;
    }
  if (done_) {
    why_ = "the upstream sent events after [DONE]";
    return;
  }
  // Fields as a client reads them: the name up to the first colon (the whole line without one), the value after
  // it less one leading space; "data" values are joined by LF. Comments and other fields pass through.
  std::string data;
  bool has_data = false;
  std::string kept;
  for (const auto& line : lines) {
    auto colon = line.find(':');
    std::string_view field{line.data(), colon == std::string::npos ? line.size() : colon};
    if (colon == 0 || field != "data") {
      kept += line;
      kept += '\n';
      continue;
    }
    std::string_view value;
    if (colon != std::string::npos) {
      value = std::string_view{line}.substr(colon + 1);
      if (!value.empty() && value.front() == ' ')
        value.remove_prefix(1);
    }
    if (has_data)
      data += '\n';
    data.append(value.data(), value.size());
    has_data = true;
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
  auto parsed = json::parse(data, max_answer_depth);
  if (!parsed) {
    why_ = refusal(parsed.error(), "an event of the upstream's stream");
    return;
  }
  const auto& doc = parsed.document();
  if (!doc.IsObject()) {
    why_ = "the upstream's stream has an event that is not a JSON object";
    return;
  }
  if (doc.HasMember("error")) {
    why_ = "the upstream reported an error in its stream";
    return;
  }
  produced_ = true;
  auto choices = doc.FindMember("choices");
  if (auto u = reported_usage(doc)) {
    reported_ = u;
    // The usage chunk of a client that did not ask for it (the gateway asked the upstream): read, not relayed.
    if (!relay_usage_ && choices != doc.MemberEnd() && choices->value.IsArray() && choices->value.Empty())
      return;
  }
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
  // One "data:" line per line of the payload: the client reads exactly the data checked here.
  out += kept;
  for (size_t pos = 0;;) {
    auto lf = data.find('\n', pos);
    out += "data: ";
    out.append(data, pos, lf == std::string::npos ? std::string::npos : lf - pos);
    out += '\n';
    if (lf == std::string::npos)
      break;
    pos = lf + 1;
  }
  out += '\n';
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

} // namespace troupe::openai
