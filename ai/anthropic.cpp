#include "ai/anthropic.hpp"

#include "config/json.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <functional>

namespace troupe::anthropic {

namespace {

using rapidjson::Value;
using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;
using openai::request_error;

constexpr size_t max_depth = json::default_max_depth;

std::string_view text_of(const Value& v) {
  return {v.GetString(), v.GetStringLength()};
}

std::string compact(const Value& v) {
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  v.Accept(w);
  return {buffer.GetString(), buffer.GetSize()};
}

Value string_value(std::string_view s, rapidjson::Document::AllocatorType& a) {
  return Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
}

const Value* member(const Value& object, const char* name) {
  if (!object.IsObject())
    return nullptr;
  auto it = object.FindMember(name);
  return it == object.MemberEnd() || it->value.IsNull() ? nullptr : &it->value;
}

std::string str_member(const Value& object, const char* name) {
  const auto* v = member(object, name);
  return v && v->IsString() ? std::string{text_of(*v)} : std::string{};
}

int64_t int_member(const Value& object, const char* name) {
  const auto* v = member(object, name);
  return v && v->IsInt64() ? v->GetInt64() : 0;
}

/// Splits LF-framed SSE text (as sse_relay writes it) into events: each one's `event:` name and joined data.
void for_each_event(std::string_view framed, const std::function<void(std::string_view, const std::string&)>& f) {
  size_t pos = 0;
  while (pos < framed.size()) {
    auto end = framed.find("\n\n", pos);
    auto block = framed.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    pos = end == std::string_view::npos ? framed.size() : end + 2;
    std::string_view name;
    std::string data;
    bool has_data = false;
    size_t at = 0;
    while (at <= block.size()) {
      auto lf = block.find('\n', at);
      auto line = block.substr(at, lf == std::string_view::npos ? std::string_view::npos : lf - at);
      at = lf == std::string_view::npos ? block.size() + 1 : lf + 1;
      if (line.rfind("event: ", 0) == 0)
        name = line.substr(7);
      else if (line.rfind("data: ", 0) == 0) {
        if (has_data)
          data += '\n';
        data.append(line.substr(6));
        has_data = true;
      }
    }
    if (has_data)
      f(name, data);
  }
}

std::string sse(std::string_view event, const std::string& data_json) {
  std::string out = "event: ";
  out.append(event);
  out += "\ndata: ";
  out += data_json;
  out += "\n\n";
  return out;
}

/// A content_block_delta event: {"type":"content_block_delta","index":N,"delta":{"type":TYPE,FIELD:VALUE}}.
std::string delta_event(int index, const char* type, const char* field, std::string_view value) {
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  w.StartObject();
  w.Key("type");
  w.String("content_block_delta");
  w.Key("index");
  w.Int(index);
  w.Key("delta");
  w.StartObject();
  w.Key("type");
  w.String(type);
  w.Key(field);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  w.EndObject();
  w.EndObject();
  return sse("content_block_delta", {buffer.GetString(), buffer.GetSize()});
}

/// Anthropic's error object: {"type":"error","error":{"type":TYPE,"message":MESSAGE}}.
std::string error_json(std::string_view type, std::string_view message) {
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  w.StartObject();
  w.Key("type");
  w.String("error");
  w.Key("error");
  w.StartObject();
  w.Key("type");
  w.String(type.data(), static_cast<rapidjson::SizeType>(type.size()));
  w.Key("message");
  w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  w.EndObject();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

// --- inbound: Anthropic request -> OpenAI request ---

struct translator {
  rapidjson::Document& out;
  rapidjson::Document::AllocatorType& a;
  Value messages{rapidjson::kArrayType};

  std::optional<request_error> fail(std::string message, std::string param) {
    return request_error{std::move(message), std::move(param)};
  }

  /// A text block's text, or an error.
  std::optional<request_error> text_block(const Value& block, const std::string& where, std::string& text) {
    const auto* t = member(block, "text");
    if (!t || !t->IsString())
      return fail("`" + where + ".text` must be a string.", where + ".text");
    text.assign(t->GetString(), t->GetStringLength());
    return std::nullopt;
  }

  /// An image block as an OpenAI image_url part.
  std::optional<request_error> image_block(const Value& block, const std::string& where, Value& part) {
    const auto* source = member(block, "source");
    auto type = source ? str_member(*source, "type") : "";
    std::string url;
    if (type == "base64") {
      auto media = str_member(*source, "media_type");
      const auto* data = member(*source, "data");
      if (media.empty() || !data || !data->IsString())
        return fail("`" + where + ".source` needs a media_type and base64 data.", where + ".source");
      url = "data:" + media + ";base64," + std::string{text_of(*data)};
    } else if (type == "url") {
      url = str_member(*source, "url");
      if (url.empty())
        return fail("`" + where + ".source.url` must be a URL.", where + ".source.url");
    } else {
      return fail("`" + where + ".source.type` must be \"base64\" or \"url\".", where + ".source.type");
    }
    part.SetObject();
    part.AddMember("type", "image_url", a);
    Value image(rapidjson::kObjectType);
    image.AddMember("url", string_value(url, a), a);
    part.AddMember("image_url", image, a);
    return std::nullopt;
  }

  std::optional<request_error> check_keys(const Value& block, const std::string& where,
                                          std::initializer_list<std::string_view> allowed) {
    for (const auto& m : block.GetObject()) {
      auto name = text_of(m.name);
      if (name != "type" && name != "cache_control"
          && std::find(allowed.begin(), allowed.end(), name) == allowed.end())
        return fail("Unknown field `" + std::string{name} + "` in `" + where + "`.", where + "." + std::string{name});
    }
    return std::nullopt;
  }

  /// System: a string or text blocks.
  std::optional<request_error> system(const Value& v) {
    std::string text;
    if (v.IsString()) {
      text.assign(v.GetString(), v.GetStringLength());
    } else if (v.IsArray()) {
      for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
        auto where = "system[" + std::to_string(i) + "]";
        if (!v[i].IsObject() || str_member(v[i], "type") != "text")
          return fail("`" + where + "` must be a text block.", where);
        if (auto err = check_keys(v[i], where, {"text"}))
          return err;
        std::string part;
        if (auto err = text_block(v[i], where, part))
          return err;
        text += (text.empty() ? "" : "\n\n") + part;
      }
    } else {
      return fail("`system` must be a string or an array of text blocks.", "system");
    }
    Value m(rapidjson::kObjectType);
    m.AddMember("role", "system", a);
    m.AddMember("content", string_value(text, a), a);
    messages.PushBack(m, a);
    return std::nullopt;
  }

  std::optional<request_error> message(const Value& msg, size_t index) {
    auto where = "messages[" + std::to_string(index) + "]";
    if (!msg.IsObject())
      return fail("`" + where + "` must be an object.", where);
    for (const auto& m : msg.GetObject())
      if (text_of(m.name) != "role" && text_of(m.name) != "content")
        return fail("Unknown field `" + std::string{text_of(m.name)} + "` in `" + where + "`.",
                    where + "." + std::string{text_of(m.name)});
    auto role = str_member(msg, "role");
    if (role != "user" && role != "assistant")
      return fail("`" + where + ".role` must be \"user\" or \"assistant\".", where + ".role");
    const auto* content = member(msg, "content");
    if (!content)
      return fail("`" + where + ".content` is required.", where + ".content");
    if (content->IsString()) {
      Value m(rapidjson::kObjectType);
      m.AddMember("role", string_value(role, a), a);
      m.AddMember("content", Value(*content, a), a);
      messages.PushBack(m, a);
      return std::nullopt;
    }
    if (!content->IsArray() || content->Empty())
      return fail("`" + where + ".content` must be a string or a non-empty array of content blocks.",
                  where + ".content");
    Value parts(rapidjson::kArrayType);     // text and image parts of the turn
    Value tool_calls(rapidjson::kArrayType); // assistant: its tool_use blocks
    for (rapidjson::SizeType i = 0; i < content->Size(); ++i) {
      const auto& block = (*content)[i];
      auto at = where + ".content[" + std::to_string(i) + "]";
      auto type = block.IsObject() ? str_member(block, "type") : "";
      if (type == "text") {
        if (auto err = check_keys(block, at, {"text", "citations"}))
          return err;
        std::string text;
        if (auto err = text_block(block, at, text))
          return err;
        Value part(rapidjson::kObjectType);
        part.AddMember("type", "text", a);
        part.AddMember("text", string_value(text, a), a);
        parts.PushBack(part, a);
      } else if (type == "image" && role == "user") {
        if (auto err = check_keys(block, at, {"source"}))
          return err;
        Value part;
        if (auto err = image_block(block, at, part))
          return err;
        parts.PushBack(part, a);
      } else if (type == "tool_use" && role == "assistant") {
        if (auto err = check_keys(block, at, {"id", "name", "input"}))
          return err;
        auto id = str_member(block, "id"), name = str_member(block, "name");
        const auto* input = member(block, "input");
        if (id.empty() || name.empty() || !input || !input->IsObject())
          return fail("`" + at + "` needs an id, a name and an input object.", at);
        Value call(rapidjson::kObjectType);
        call.AddMember("id", string_value(id, a), a);
        call.AddMember("type", "function", a);
        Value function(rapidjson::kObjectType);
        function.AddMember("name", string_value(name, a), a);
        function.AddMember("arguments", string_value(compact(*input), a), a);
        call.AddMember("function", function, a);
        tool_calls.PushBack(call, a);
      } else if (type == "tool_result" && role == "user") {
        if (auto err = check_keys(block, at, {"tool_use_id", "content", "is_error"}))
          return err;
        auto id = str_member(block, "tool_use_id");
        if (id.empty())
          return fail("`" + at + ".tool_use_id` is required.", at + ".tool_use_id");
        std::string text;
        if (const auto* result = member(block, "content")) {
          if (result->IsString()) {
            text.assign(result->GetString(), result->GetStringLength());
          } else if (result->IsArray()) {
            for (rapidjson::SizeType j = 0; j < result->Size(); ++j) {
              auto part_at = at + ".content[" + std::to_string(j) + "]";
              if (!(*result)[j].IsObject() || str_member((*result)[j], "type") != "text")
                return fail("`" + part_at + "` must be a text block (other results cannot be passed on).", part_at);
              std::string part;
              if (auto err = text_block((*result)[j], part_at, part))
                return err;
              text += part;
            }
          } else {
            return fail("`" + at + ".content` must be a string or text blocks.", at + ".content");
          }
        }
        if (const auto* is_error = member(block, "is_error"); is_error && is_error->IsTrue())
          text = "Error: " + text;
        // A tool result is a message of its own in OpenAI's shape, before the rest of the user's turn.
        Value m(rapidjson::kObjectType);
        m.AddMember("role", "tool", a);
        m.AddMember("tool_call_id", string_value(id, a), a);
        m.AddMember("content", string_value(text, a), a);
        messages.PushBack(m, a);
      } else {
        return fail("`" + at + ".type` must be text" + (role == "user" ? ", image or tool_result in a user turn."
                                                                          : " or tool_use in an assistant turn."),
                    at + ".type");
      }
    }
    if (parts.Empty() && tool_calls.Empty())
      return std::nullopt; // only tool results
    Value m(rapidjson::kObjectType);
    m.AddMember("role", string_value(role, a), a);
    if (role == "assistant") {
      // An assistant turn's text is one string in OpenAI's shape.
      std::string text;
      for (const auto& part : parts.GetArray())
        text += text_of(part["text"]);
      if (parts.Empty())
        m.AddMember("content", Value(rapidjson::kNullType), a);
      else
        m.AddMember("content", string_value(text, a), a);
      if (!tool_calls.Empty())
        m.AddMember("tool_calls", tool_calls, a);
    } else {
      m.AddMember("content", parts, a);
    }
    messages.PushBack(m, a);
    return std::nullopt;
  }
};

} // namespace

std::optional<request_error> to_openai_request(const rapidjson::Document& doc, rapidjson::Document& out) {
  if (!doc.IsObject())
    return request_error{"The request body must be a JSON object.", ""};
  static const char* const known[] = {"model",       "max_tokens", "messages", "system", "stop_sequences", "stream",
                                      "temperature", "top_p",      "tools",    "tool_choice", "metadata"};
  for (const auto& m : doc.GetObject()) {
    auto name = text_of(m.name);
    if (std::find(std::begin(known), std::end(known), name) == std::end(known)) {
      auto why = name == "top_k" || name == "thinking"
                   ? "`" + std::string{name} + "` cannot be passed to an OpenAI-compatible upstream."
                   : "Unknown field `" + std::string{name} + "`.";
      return request_error{why, std::string{name}};
    }
  }
  out.SetObject();
  auto& a = out.GetAllocator();
  translator t{out, a};
  const auto* model = member(doc, "model");
  if (!model)
    return request_error{"`model` is required.", "model"};
  out.AddMember("model", Value(*model, a), a); // its type is checked as OpenAI's model
  const auto* max_tokens = member(doc, "max_tokens");
  if (!max_tokens)
    return request_error{"`max_tokens` is required.", "max_tokens"};
  if (const auto* system = member(doc, "system"))
    if (auto err = t.system(*system))
      return err;
  const auto* messages = member(doc, "messages");
  if (!messages || !messages->IsArray() || messages->Empty())
    return request_error{"`messages` must be a non-empty array.", "messages"};
  for (rapidjson::SizeType i = 0; i < messages->Size(); ++i)
    if (auto err = t.message((*messages)[i], i))
      return err;
  if (str_member((*messages)[0], "role") != "user")
    return request_error{"The first message must be the user's.", "messages[0].role"};
  out.AddMember("messages", t.messages, a);
  for (const char* same : {"temperature", "top_p"})
    if (const auto* v = member(doc, same)) {
      if (std::string_view{same} == "temperature" && v->IsNumber() && (v->GetDouble() < 0 || v->GetDouble() > 1))
        return request_error{"`temperature` must be a number from 0 to 1.", "temperature"};
      out.AddMember(rapidjson::StringRef(same), Value(*v, a), a);
    }
  out.AddMember("max_tokens", Value(*max_tokens, a), a);
  if (const auto* stop = member(doc, "stop_sequences"))
    out.AddMember("stop", Value(*stop, a), a);
  if (const auto* tools = member(doc, "tools")) {
    if (!tools->IsArray())
      return request_error{"`tools` must be an array.", "tools"};
    Value list(rapidjson::kArrayType);
    for (rapidjson::SizeType i = 0; i < tools->Size(); ++i) {
      const auto& tool = (*tools)[i];
      auto where = "tools[" + std::to_string(i) + "]";
      auto name = tool.IsObject() ? str_member(tool, "name") : "";
      const auto* schema = member(tool, "input_schema");
      if (name.empty() || !schema || !schema->IsObject())
        return request_error{"`" + where + "` needs a name and an input_schema object.", where};
      if (auto type = str_member(tool, "type"); !type.empty() && type != "custom")
        return request_error{"`" + where + "` is a server tool (" + type
                               + "); only client tools can be passed to an OpenAI-compatible upstream.",
                             where + ".type"};
      Value function(rapidjson::kObjectType);
      function.AddMember("name", string_value(name, a), a);
      if (const auto* d = member(tool, "description"); d && d->IsString())
        function.AddMember("description", Value(*d, a), a);
      function.AddMember("parameters", Value(*schema, a), a);
      Value entry(rapidjson::kObjectType);
      entry.AddMember("type", "function", a);
      entry.AddMember("function", function, a);
      list.PushBack(entry, a);
    }
    out.AddMember("tools", list, a);
  }
  if (const auto* choice = member(doc, "tool_choice")) {
    auto type = choice->IsObject() ? str_member(*choice, "type") : "";
    Value value;
    if (type == "auto" || type == "none") {
      value = string_value(type, a);
    } else if (type == "any") {
      value = Value("required", a);
    } else if (type == "tool" && !str_member(*choice, "name").empty()) {
      value.SetObject();
      value.AddMember("type", "function", a);
      Value function(rapidjson::kObjectType);
      function.AddMember("name", string_value(str_member(*choice, "name"), a), a);
      value.AddMember("function", function, a);
    } else {
      return request_error{"`tool_choice` must be {\"type\": \"auto\" | \"any\" | \"none\"} or {\"type\": \"tool\", "
                           "\"name\": ...}.",
                           "tool_choice"};
    }
    out.AddMember("tool_choice", value, a);
    if (const auto* serial = member(*choice, "disable_parallel_tool_use"); serial && serial->IsBool())
      out.AddMember("parallel_tool_calls", !serial->GetBool(), a);
  }
  if (const auto* stream = member(doc, "stream"))
    out.AddMember("stream", Value(*stream, a), a);
  if (const auto* metadata = member(doc, "metadata")) {
    if (!metadata->IsObject())
      return request_error{"`metadata` must be an object.", "metadata"};
    for (const auto& m : metadata->GetObject())
      if (text_of(m.name) != "user_id")
        return request_error{"Unknown field `" + std::string{text_of(m.name)} + "` in `metadata`.",
                             "metadata." + std::string{text_of(m.name)}};
    if (const auto* user = member(*metadata, "user_id"))
      out.AddMember("user", Value(*user, a), a);
  }
  return std::nullopt;
}

namespace {

/// OpenAI's finish_reason as Anthropic's stop_reason.
const char* stop_reason_of(std::string_view finish_reason) {
  if (finish_reason == "length")
    return "max_tokens";
  if (finish_reason == "tool_calls" || finish_reason == "function_call")
    return "tool_use";
  if (finish_reason == "content_filter")
    return "refusal";
  return "end_turn";
}

/// Anthropic's stop_reason as OpenAI's finish_reason.
const char* finish_reason_of(std::string_view stop_reason) {
  if (stop_reason == "max_tokens")
    return "length";
  if (stop_reason == "tool_use")
    return "tool_calls";
  if (stop_reason == "refusal")
    return "content_filter";
  return "stop";
}

/// A tool call's arguments as the object Anthropic wants ({} when they are not a JSON object).
void write_input(json_writer& w, std::string_view arguments) {
  auto parsed = json::parse(arguments, max_depth);
  if (parsed && parsed->IsObject())
    parsed->Accept(w);
  else {
    w.StartObject();
    w.EndObject();
  }
}

std::string message_id(std::string_view openai_id) {
  if (openai_id.rfind("chatcmpl-", 0) == 0)
    openai_id.remove_prefix(9);
  return "msg_" + std::string{openai_id.empty() ? std::string_view{"troupe"} : openai_id};
}

} // namespace

std::string to_anthropic_answer(std::string_view openai_body) {
  auto parsed = json::parse(openai_body, max_depth);
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  const Value empty(rapidjson::kObjectType);
  const Value& doc = parsed && parsed->IsObject() ? parsed.document() : empty;
  const Value* choice = nullptr;
  if (const auto* choices = member(doc, "choices"); choices && choices->IsArray() && !choices->Empty())
    choice = &(*choices)[0];
  const Value* message = choice ? member(*choice, "message") : nullptr;
  w.StartObject();
  w.Key("id");
  w.String(message_id(str_member(doc, "id")).c_str());
  w.Key("type");
  w.String("message");
  w.Key("role");
  w.String("assistant");
  w.Key("model");
  auto model = str_member(doc, "model");
  w.String(model.c_str(), static_cast<rapidjson::SizeType>(model.size()));
  w.Key("content");
  w.StartArray();
  if (message) {
    const auto* content = member(*message, "content");
    if (content && content->IsString() && content->GetStringLength() > 0) {
      w.StartObject();
      w.Key("type");
      w.String("text");
      w.Key("text");
      w.String(content->GetString(), content->GetStringLength());
      w.EndObject();
    }
    if (const auto* calls = member(*message, "tool_calls"); calls && calls->IsArray())
      for (const auto& call : calls->GetArray()) {
        const auto* function = member(call, "function");
        if (!function)
          continue;
        w.StartObject();
        w.Key("type");
        w.String("tool_use");
        w.Key("id");
        auto id = str_member(call, "id");
        w.String(id.c_str(), static_cast<rapidjson::SizeType>(id.size()));
        w.Key("name");
        auto name = str_member(*function, "name");
        w.String(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
        w.Key("input");
        write_input(w, str_member(*function, "arguments"));
        w.EndObject();
      }
  }
  w.EndArray();
  w.Key("stop_reason");
  w.String(stop_reason_of(choice ? str_member(*choice, "finish_reason") : ""));
  w.Key("stop_sequence");
  w.Null();
  w.Key("usage");
  w.StartObject();
  const Value* usage = member(doc, "usage");
  w.Key("input_tokens");
  w.Int64(usage ? int_member(*usage, "prompt_tokens") : 0);
  w.Key("output_tokens");
  w.Int64(usage ? int_member(*usage, "completion_tokens") : 0);
  w.EndObject();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

std::string error_body(int status, std::string_view message) {
  const char* type = status == 400   ? "invalid_request_error"
                     : status == 401 ? "authentication_error"
                     : status == 402 ? "billing_error"
                     : status == 403 ? "permission_error"
                     : status == 404 ? "not_found_error"
                     : status == 413 ? "request_too_large"
                     : status == 429 ? "rate_limit_error"
                     : status == 503 || status == 529 ? "overloaded_error"
                     : status == 504 ? "timeout_error"
                                     : "api_error";
  return error_json(type, message);
}

// --- stream_to_anthropic ---

std::string stream_to_anthropic::error_event(std::string_view type, std::string_view message) {
  return sse("error", error_json(type, message));
}

void stream_to_anthropic::start(std::string& out) {
  if (started_)
    return;
  started_ = true;
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  w.StartObject();
  w.Key("type");
  w.String("message_start");
  w.Key("message");
  w.StartObject();
  w.Key("id");
  w.String(message_id(id_).c_str());
  w.Key("type");
  w.String("message");
  w.Key("role");
  w.String("assistant");
  w.Key("model");
  w.String(model_.c_str(), static_cast<rapidjson::SizeType>(model_.size()));
  w.Key("content");
  w.StartArray();
  w.EndArray();
  w.Key("stop_reason");
  w.Null();
  w.Key("stop_sequence");
  w.Null();
  w.Key("usage");
  w.StartObject();
  w.Key("input_tokens");
  w.Int64(input_tokens_);
  w.Key("output_tokens");
  w.Int64(0);
  w.EndObject();
  w.EndObject();
  w.EndObject();
  out += sse("message_start", {buffer.GetString(), buffer.GetSize()});
}

int stream_to_anthropic::open(std::string& out, const std::string& block_json) {
  auto index = blocks_++;
  out += sse("content_block_start", R"({"type":"content_block_start","index":)" + std::to_string(index)
                                      + R"(,"content_block":)" + block_json + "}");
  return index;
}

void stream_to_anthropic::stop(std::string& out, int index) {
  out += sse("content_block_stop", R"({"type":"content_block_stop","index":)" + std::to_string(index) + "}");
}

void stream_to_anthropic::finish(std::string& out) {
  start(out);
  if (text_block_ >= 0)
    stop(out, text_block_);
  text_block_ = -1;
  for (const auto& call : calls_) {
    rapidjson::StringBuffer buffer;
    json_writer w(buffer);
    w.StartObject();
    w.Key("type");
    w.String("tool_use");
    w.Key("id");
    w.String(call.id.c_str(), static_cast<rapidjson::SizeType>(call.id.size()));
    w.Key("name");
    w.String(call.name.c_str(), static_cast<rapidjson::SizeType>(call.name.size()));
    w.Key("input");
    w.StartObject();
    w.EndObject();
    w.EndObject();
    auto index = open(out, {buffer.GetString(), buffer.GetSize()});
    if (!call.arguments.empty())
      out += delta_event(index, "input_json_delta", "partial_json", call.arguments);
    stop(out, index);
  }
  if (!calls_.empty() && stop_reason_ == "end_turn")
    stop_reason_ = "tool_use"; // some servers end tool calls with finish_reason "stop"
  out += sse("message_delta", R"({"type":"message_delta","delta":{"stop_reason":")" + stop_reason_
                                + R"(","stop_sequence":null},"usage":{"input_tokens":)" + std::to_string(input_tokens_)
                                + R"(,"output_tokens":)" + std::to_string(output_tokens_) + "}}");
  out += sse("message_stop", R"({"type":"message_stop"})");
  finished_ = true;
}

void stream_to_anthropic::chunk(const Value& c, std::string& out) {
  if (id_.empty())
    id_ = str_member(c, "id");
  if (model_.empty())
    model_ = str_member(c, "model");
  if (const auto* usage = member(c, "usage"); usage && usage->IsObject()) {
    input_tokens_ = int_member(*usage, "prompt_tokens");
    output_tokens_ = int_member(*usage, "completion_tokens");
  }
  const auto* choices = member(c, "choices");
  if (!choices || !choices->IsArray() || choices->Empty())
    return; // the usage chunk
  start(out);
  const auto& choice = (*choices)[0];
  if (const auto* delta = member(choice, "delta")) {
    if (const auto* text = member(*delta, "content"); text && text->IsString() && text->GetStringLength() > 0) {
      if (text_block_ < 0)
        text_block_ = open(out, R"({"type":"text","text":""})");
      out += delta_event(text_block_, "text_delta", "text", text_of(*text));
    }
    if (const auto* calls = member(*delta, "tool_calls"); calls && calls->IsArray())
      for (const auto& call : calls->GetArray()) {
        auto index = int_member(call, "index");
        const auto* function = member(call, "function");
        auto id = str_member(call, "id");
        auto known = current_.find(index);
        bool new_id = known != current_.end() && !id.empty() && !calls_[known->second].id.empty()
                      && id != calls_[known->second].id;
        if (known == current_.end() || new_id) {
          calls_.push_back(tool_call{});
          known = current_.insert_or_assign(index, calls_.size() - 1).first;
        }
        auto& gathered = calls_[known->second];
        if (gathered.id.empty())
          gathered.id = id;
        if (function) {
          if (gathered.name.empty())
            gathered.name = str_member(*function, "name");
          gathered.arguments += str_member(*function, "arguments");
        }
      }
  }
  if (auto reason = str_member(choice, "finish_reason"); !reason.empty())
    stop_reason_ = stop_reason_of(reason);
}

std::string stream_to_anthropic::feed(std::string_view events) {
  std::string out;
  for_each_event(events, [&](std::string_view, const std::string& data) {
    if (finished_)
      return;
    if (data == "[DONE]") {
      finish(out);
      return;
    }
    auto parsed = json::parse(data, max_depth);
    if (parsed && parsed->IsObject())
      chunk(parsed.document(), out);
  });
  return out;
}

// --- outbound: OpenAI request -> Anthropic request ---

namespace {

/// An OpenAI message content (string, null or parts) as Anthropic content blocks, appended to `blocks`.
bool content_blocks(const Value* content, Value& blocks, rapidjson::Document::AllocatorType& a, std::string& why) {
  if (!content)
    return true;
  auto text_block = [&](std::string_view text) {
    if (text.empty())
      return;
    Value b(rapidjson::kObjectType);
    b.AddMember("type", "text", a);
    b.AddMember("text", string_value(text, a), a);
    blocks.PushBack(b, a);
  };
  if (content->IsString()) {
    text_block(text_of(*content));
    return true;
  }
  if (!content->IsArray())
    return true;
  for (const auto& part : content->GetArray()) {
    auto type = str_member(part, "type");
    if (type == "text") {
      text_block(str_member(part, "text"));
    } else if (type == "image_url") {
      const auto* image = member(part, "image_url");
      auto url = image ? str_member(*image, "url") : "";
      Value source(rapidjson::kObjectType);
      if (url.rfind("data:", 0) == 0) {
        auto comma = url.find(',');
        auto semicolon = url.find(';');
        if (comma == std::string::npos || semicolon == std::string::npos || semicolon > comma) {
          why = "an image data URL is not base64";
          return false;
        }
        source.AddMember("type", "base64", a);
        source.AddMember("media_type", string_value(url.substr(5, semicolon - 5), a), a);
        source.AddMember("data", string_value(std::string_view{url}.substr(comma + 1), a), a);
      } else {
        source.AddMember("type", "url", a);
        source.AddMember("url", string_value(url, a), a);
      }
      Value b(rapidjson::kObjectType);
      b.AddMember("type", "image", a);
      b.AddMember("source", source, a);
      blocks.PushBack(b, a);
    } else {
      why = "content parts of type `" + type + "` cannot be sent to an Anthropic upstream";
      return false;
    }
  }
  return true;
}

/// Appends a turn, merging it into the previous one when that has the same role (Anthropic wants turns to alternate).
void add_turn(Value& messages, const char* role, Value& blocks, rapidjson::Document::AllocatorType& a) {
  if (blocks.Empty())
    return;
  if (!messages.Empty() && text_of(messages[messages.Size() - 1]["role"]) == role) {
    auto& content = messages[messages.Size() - 1]["content"];
    for (auto& b : blocks.GetArray())
      content.PushBack(Value(b, a), a);
    return;
  }
  Value m(rapidjson::kObjectType);
  m.AddMember("role", rapidjson::StringRef(role), a);
  m.AddMember("content", blocks, a);
  messages.PushBack(m, a);
}

} // namespace

std::optional<std::string> from_openai_request(std::string_view openai_body, int64_t default_max_tokens,
                                               std::string& why) {
  auto parsed = json::parse(openai_body, max_depth);
  if (!parsed || !parsed->IsObject()) {
    why = "the request is not a JSON object";
    return std::nullopt;
  }
  const auto& req = parsed.document();
  for (const char* unsupported : {"n", "seed", "logit_bias", "presence_penalty", "frequency_penalty", "logprobs",
                                  "top_logprobs", "audio", "prediction", "web_search_options", "functions",
                                  "function_call", "reasoning_effort", "verbosity"}) {
    const auto* v = member(req, unsupported);
    if (!v || (std::string_view{unsupported} == "n" && v->IsInt64() && v->GetInt64() == 1)
        || (std::string_view{unsupported} == "logprobs" && v->IsFalse()))
      continue;
    why = "`" + std::string{unsupported} + "` cannot be sent to an Anthropic upstream";
    return std::nullopt;
  }
  if (const auto* format = member(req, "response_format"); format && str_member(*format, "type") != "text") {
    why = "`response_format` other than text cannot be sent to an Anthropic upstream";
    return std::nullopt;
  }
  if (const auto* modalities = member(req, "modalities"); modalities && modalities->IsArray())
    for (const auto& m : modalities->GetArray())
      if (!m.IsString() || text_of(m) != "text") {
        why = "modalities other than text cannot be sent to an Anthropic upstream";
        return std::nullopt;
      }
  rapidjson::Document out(rapidjson::kObjectType);
  auto& a = out.GetAllocator();
  out.AddMember("model", Value(req["model"], a), a);
  int64_t max_tokens = int_member(req, "max_completion_tokens");
  if (max_tokens == 0)
    max_tokens = int_member(req, "max_tokens");
  out.AddMember("max_tokens", max_tokens > 0 ? max_tokens : default_max_tokens, a);
  std::string system;
  Value messages(rapidjson::kArrayType);
  for (const auto& m : req["messages"].GetArray()) {
    auto role = str_member(m, "role");
    const auto* content = member(m, "content");
    Value blocks(rapidjson::kArrayType);
    if (role == "system" || role == "developer") {
      Value parts(rapidjson::kArrayType);
      if (!content_blocks(content, parts, a, why))
        return std::nullopt;
      for (const auto& p : parts.GetArray())
        if (text_of(p["type"]) == "text")
          system += (system.empty() ? "" : "\n\n") + std::string{text_of(p["text"])};
      continue;
    }
    if (role == "tool") {
      Value b(rapidjson::kObjectType);
      b.AddMember("type", "tool_result", a);
      b.AddMember("tool_use_id", string_value(str_member(m, "tool_call_id"), a), a);
      Value parts(rapidjson::kArrayType);
      if (!content_blocks(content, parts, a, why))
        return std::nullopt;
      b.AddMember("content", parts, a);
      blocks.PushBack(b, a);
      add_turn(messages, "user", blocks, a);
      continue;
    }
    if (role != "user" && role != "assistant") {
      why = "messages with the role `" + role + "` cannot be sent to an Anthropic upstream";
      return std::nullopt;
    }
    if (!content_blocks(content, blocks, a, why))
      return std::nullopt;
    if (const auto* calls = member(m, "tool_calls"); calls && calls->IsArray() && role == "assistant")
      for (const auto& call : calls->GetArray()) {
        const auto* function = member(call, "function");
        Value b(rapidjson::kObjectType);
        b.AddMember("type", "tool_use", a);
        b.AddMember("id", string_value(str_member(call, "id"), a), a);
        b.AddMember("name", string_value(function ? str_member(*function, "name") : "", a), a);
        auto input = json::parse(function ? str_member(*function, "arguments") : "", max_depth);
        if (input && input->IsObject())
          b.AddMember("input", Value(input.document(), a), a);
        else
          b.AddMember("input", Value(rapidjson::kObjectType), a);
        blocks.PushBack(b, a);
      }
    add_turn(messages, role == "user" ? "user" : "assistant", blocks, a);
  }
  if (!system.empty())
    out.AddMember("system", string_value(system, a), a);
  if (messages.Empty() || text_of(messages[0]["role"]) != "user") {
    why = "an Anthropic upstream needs the conversation to start with a user turn";
    return std::nullopt;
  }
  out.AddMember("messages", messages, a);
  if (const auto* temperature = member(req, "temperature")) {
    if (temperature->GetDouble() > 1) {
      why = "a temperature above 1 cannot be sent to an Anthropic upstream";
      return std::nullopt;
    }
    out.AddMember("temperature", Value(*temperature, a), a);
  }
  if (const auto* top_p = member(req, "top_p"))
    out.AddMember("top_p", Value(*top_p, a), a);
  if (const auto* stop = member(req, "stop")) {
    Value list(rapidjson::kArrayType);
    if (stop->IsString())
      list.PushBack(Value(*stop, a), a);
    else if (stop->IsArray())
      for (const auto& s : stop->GetArray())
        list.PushBack(Value(s, a), a);
    out.AddMember("stop_sequences", list, a);
  }
  if (const auto* tools = member(req, "tools"); tools && tools->IsArray()) {
    Value list(rapidjson::kArrayType);
    for (const auto& tool : tools->GetArray()) {
      const auto* function = member(tool, "function");
      if (str_member(tool, "type") != "function" || !function) {
        why = "tools other than functions cannot be sent to an Anthropic upstream";
        return std::nullopt;
      }
      Value t(rapidjson::kObjectType);
      t.AddMember("name", string_value(str_member(*function, "name"), a), a);
      if (const auto* d = member(*function, "description"))
        t.AddMember("description", Value(*d, a), a);
      if (const auto* p = member(*function, "parameters"))
        t.AddMember("input_schema", Value(*p, a), a);
      else
        t.AddMember("input_schema", Value(rapidjson::kObjectType).AddMember("type", "object", a), a);
      list.PushBack(t, a);
    }
    out.AddMember("tools", list, a);
  }
  Value choice(rapidjson::kObjectType);
  if (const auto* tc = member(req, "tool_choice")) {
    auto text = tc->IsString() ? std::string{text_of(*tc)} : std::string{};
    const auto* function = tc->IsObject() ? member(*tc, "function") : nullptr;
    if (text == "auto" || text == "none") {
      choice.AddMember("type", string_value(text, a), a);
    } else if (text == "required") {
      choice.AddMember("type", "any", a);
    } else if (function) {
      choice.AddMember("type", "tool", a);
      choice.AddMember("name", string_value(str_member(*function, "name"), a), a);
    } else {
      why = "this tool_choice cannot be sent to an Anthropic upstream";
      return std::nullopt;
    }
  }
  if (const auto* parallel = member(req, "parallel_tool_calls"); parallel && parallel->IsFalse()) {
    if (!choice.HasMember("type"))
      choice.AddMember("type", "auto", a);
    choice.AddMember("disable_parallel_tool_use", true, a);
  }
  if (choice.HasMember("type"))
    out.AddMember("tool_choice", choice, a);
  if (const auto* user = member(req, "user")) {
    Value metadata(rapidjson::kObjectType);
    metadata.AddMember("user_id", Value(*user, a), a);
    out.AddMember("metadata", metadata, a);
  }
  if (const auto* stream = member(req, "stream"); stream && stream->IsTrue())
    out.AddMember("stream", true, a);
  return compact(out);
}

std::optional<std::string> from_anthropic_answer(std::string_view body, int64_t created, std::string& why) {
  auto parsed = json::parse(body, max_depth);
  if (!parsed) {
    why = openai::refusal(parsed.error(), "the upstream's answer");
    return std::nullopt;
  }
  const auto& doc = parsed.document();
  const auto* content = member(doc, "content");
  if (!doc.IsObject() || str_member(doc, "type") != "message" || !content || !content->IsArray()) {
    why = "the upstream's answer is not an Anthropic message";
    return std::nullopt;
  }
  std::string text;
  rapidjson::StringBuffer calls_buffer;
  json_writer calls(calls_buffer);
  calls.StartArray();
  int tools = 0;
  for (const auto& block : content->GetArray()) {
    auto type = str_member(block, "type");
    if (type == "text") {
      text += str_member(block, "text");
    } else if (type == "tool_use") {
      ++tools;
      calls.StartObject();
      calls.Key("id");
      auto id = str_member(block, "id");
      calls.String(id.c_str(), static_cast<rapidjson::SizeType>(id.size()));
      calls.Key("type");
      calls.String("function");
      calls.Key("function");
      calls.StartObject();
      calls.Key("name");
      auto name = str_member(block, "name");
      calls.String(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
      calls.Key("arguments");
      const auto* input = member(block, "input");
      auto arguments = input ? compact(*input) : std::string{"{}"};
      calls.String(arguments.c_str(), static_cast<rapidjson::SizeType>(arguments.size()));
      calls.EndObject();
      calls.EndObject();
    }
  }
  calls.EndArray();
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  w.StartObject();
  w.Key("id");
  auto id = "chatcmpl-" + str_member(doc, "id");
  w.String(id.c_str(), static_cast<rapidjson::SizeType>(id.size()));
  w.Key("object");
  w.String("chat.completion");
  w.Key("created");
  w.Int64(created);
  w.Key("model");
  auto model = str_member(doc, "model");
  w.String(model.c_str(), static_cast<rapidjson::SizeType>(model.size()));
  w.Key("choices");
  w.StartArray();
  w.StartObject();
  w.Key("index");
  w.Int(0);
  w.Key("message");
  w.StartObject();
  w.Key("role");
  w.String("assistant");
  w.Key("content");
  if (text.empty() && tools > 0)
    w.Null();
  else
    w.String(text.c_str(), static_cast<rapidjson::SizeType>(text.size()));
  if (tools > 0) {
    w.Key("tool_calls");
    w.RawValue(calls_buffer.GetString(), calls_buffer.GetSize(), rapidjson::kArrayType);
  }
  w.EndObject();
  w.Key("finish_reason");
  w.String(finish_reason_of(str_member(doc, "stop_reason")));
  w.EndObject();
  w.EndArray();
  const auto* usage = member(doc, "usage");
  auto input = usage ? int_member(*usage, "input_tokens") + int_member(*usage, "cache_read_input_tokens")
                         + int_member(*usage, "cache_creation_input_tokens")
                     : 0;
  auto output = usage ? int_member(*usage, "output_tokens") : 0;
  w.Key("usage");
  w.StartObject();
  w.Key("prompt_tokens");
  w.Int64(input);
  w.Key("completion_tokens");
  w.Int64(output);
  w.Key("total_tokens");
  w.Int64(input + output);
  w.EndObject();
  w.EndObject();
  return std::string{buffer.GetString(), buffer.GetSize()};
}

// --- stream_from_anthropic ---

stream_from_anthropic::stream_from_anthropic(int64_t created, size_t max_event_bytes)
  : framer_(0, true, max_event_bytes), created_(created) {}

std::string stream_from_anthropic::chunk(const std::string& delta_json, const char* finish_reason) {
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  w.StartObject();
  w.Key("id");
  auto id = "chatcmpl-" + id_;
  w.String(id.c_str(), static_cast<rapidjson::SizeType>(id.size()));
  w.Key("object");
  w.String("chat.completion.chunk");
  w.Key("created");
  w.Int64(created_);
  w.Key("model");
  w.String(model_.c_str(), static_cast<rapidjson::SizeType>(model_.size()));
  w.Key("choices");
  w.StartArray();
  w.StartObject();
  w.Key("index");
  w.Int(0);
  w.Key("delta");
  w.RawValue(delta_json.data(), delta_json.size(), rapidjson::kObjectType);
  w.Key("finish_reason");
  if (finish_reason)
    w.String(finish_reason);
  else
    w.Null();
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return "data: " + std::string{buffer.GetString(), buffer.GetSize()} + "\n\n";
}

void stream_from_anthropic::event(const Value& e, std::string& out) {
  auto type = str_member(e, "type");
  auto string_json = [](std::string_view s) {
    rapidjson::StringBuffer b;
    json_writer w(b);
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
    return std::string{b.GetString(), b.GetSize()};
  };
  if (type == "message_start") {
    const auto* message = member(e, "message");
    if (!message) {
      why_ = "message_start without a message";
      return;
    }
    id_ = str_member(*message, "id");
    model_ = str_member(*message, "model");
    if (const auto* usage = member(*message, "usage"))
      input_tokens_ = int_member(*usage, "input_tokens") + int_member(*usage, "cache_read_input_tokens")
                      + int_member(*usage, "cache_creation_input_tokens");
    out += chunk(R"({"role":"assistant","content":""})", nullptr);
  } else if (type == "content_block_start") {
    auto index = int_member(e, "index");
    const auto* block = member(e, "content_block");
    if (index < 0 || index > 4096 || !block) {
      why_ = "content_block_start without a valid index and block";
      return;
    }
    if (tool_of_block_.size() <= static_cast<size_t>(index))
      tool_of_block_.resize(static_cast<size_t>(index) + 1, -1);
    if (str_member(*block, "type") == "tool_use") {
      auto tool = tools_++;
      tool_of_block_[static_cast<size_t>(index)] = tool;
      out += chunk(R"({"tool_calls":[{"index":)" + std::to_string(tool) + R"(,"id":)"
                     + string_json(str_member(*block, "id")) + R"(,"type":"function","function":{"name":)"
                     + string_json(str_member(*block, "name")) + R"(,"arguments":""}}]})",
                   nullptr);
    } else if (const auto* text = member(*block, "text"); text && text->IsString() && text->GetStringLength() > 0) {
      out += chunk(R"({"content":)" + string_json(text_of(*text)) + "}", nullptr);
    }
  } else if (type == "content_block_delta") {
    auto index = int_member(e, "index");
    const auto* delta = member(e, "delta");
    if (!delta) {
      why_ = "content_block_delta without a delta";
      return;
    }
    auto kind = str_member(*delta, "type");
    if (kind == "text_delta") {
      out += chunk(R"({"content":)" + string_json(str_member(*delta, "text")) + "}", nullptr);
    } else if (kind == "input_json_delta") {
      auto tool = index >= 0 && static_cast<size_t>(index) < tool_of_block_.size()
                    ? tool_of_block_[static_cast<size_t>(index)]
                    : -1;
      if (tool < 0) {
        why_ = "input_json_delta outside a tool_use block";
        return;
      }
      out += chunk(R"({"tool_calls":[{"index":)" + std::to_string(tool) + R"(,"function":{"arguments":)"
                     + string_json(str_member(*delta, "partial_json")) + "}}]}",
                   nullptr);
    } // thinking, signature and citations deltas have no OpenAI chunk
  } else if (type == "message_delta") {
    if (const auto* usage = member(e, "usage"))
      output_tokens_ = int_member(*usage, "output_tokens");
    const auto* delta = member(e, "delta");
    if (delta && member(*delta, "stop_reason"))
      out += chunk("{}", finish_reason_of(str_member(*delta, "stop_reason")));
  } else if (type == "message_stop") {
    out += "data: {\"id\":" + string_json("chatcmpl-" + id_) + ",\"object\":\"chat.completion.chunk\",\"created\":"
           + std::to_string(created_) + ",\"model\":" + string_json(model_) + ",\"choices\":[],\"usage\":"
           + "{\"prompt_tokens\":" + std::to_string(input_tokens_) + ",\"completion_tokens\":"
           + std::to_string(output_tokens_) + ",\"total_tokens\":" + std::to_string(input_tokens_ + output_tokens_)
           + "}}\n\ndata: [DONE]\n\n";
    done_ = true;
  } else if (type == "error") {
    const auto* error = member(e, "error");
    why_ = "the upstream reported an error in its stream" + (error ? ": " + str_member(*error, "message") : "");
  } // ping, content_block_stop: nothing to say
}

std::string stream_from_anthropic::feed(std::string_view data) {
  std::string out;
  if (failed() || done_)
    return out;
  // The events before a bad one are checked and go out; the bad one ends the stream.
  auto events = framer_.feed(data);
  for_each_event(events, [&](std::string_view, const std::string& json_text) {
    if (failed() || done_)
      return;
    auto parsed = json::parse(json_text, max_depth);
    if (parsed && parsed->IsObject())
      event(parsed.document(), out);
  });
  if (framer_.failed() && !failed() && !done_) // after message_stop, nothing more is read
    why_ = framer_.why();
  return out;
}

} // namespace troupe::anthropic
