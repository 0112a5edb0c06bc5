#include "ai/embeddings.hpp"

#include "config/hashing.hpp"

#include "config/json.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace troupe::embeddings {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "vectors are float32 little-endian, copied as they are");
static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559, "vectors are IEEE 754 float32");

namespace {

using rapidjson::Value;
using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;
using openai::request_error;

constexpr size_t max_answer_depth = json::default_max_depth;
constexpr int64_t max_token_id = std::numeric_limits<int32_t>::max();

std::string compact(const Value& v) {
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  v.Accept(w);
  return {buffer.GetString(), buffer.GetSize()};
}

/// A token-id array: non-empty, integers 0..2^31-1.
std::optional<request_error> check_tokens(const Value& v, const std::string& where) {
  if (v.Empty())
    return request_error{"`" + where + "` must not be an empty array of tokens.", where};
  for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
    if (!v[i].IsInt64() || v[i].GetInt64() < 0 || v[i].GetInt64() > max_token_id)
      return request_error{"`" + where + "` must hold token ids: integers from 0 to 2147483647.",
                           where + "[" + std::to_string(i) + "]"};
  }
  return std::nullopt;
}

void add(request& out, const Value& input) {
  auto chars = input.IsString() ? input.GetStringLength() : 4 * input.Size();
  out.inputs.push_back(compact(input));
  out.input_chars.push_back(chars);
  out.prompt_chars += chars;
}

std::optional<request_error> check_input(const Value& input, request& out) {
  constexpr const char* shapes = "`input` must be a string, an array of strings, an array of token ids or an array "
                                 "of token-id arrays.";
  if (input.IsString()) {
    if (input.GetStringLength() == 0)
      return request_error{"`input` must not be empty.", "input"};
    add(out, input);
    return std::nullopt;
  }
  if (!input.IsArray())
    return request_error{shapes, "input"};
  if (input.Empty())
    return request_error{"`input` must not be an empty array.", "input"};
  if (input[0].IsNumber()) { // one input, as tokens
    if (auto err = check_tokens(input, "input"))
      return err;
    add(out, input);
    return std::nullopt;
  }
  if (input.Size() > max_inputs)
    return request_error{"`input` holds " + std::to_string(input.Size()) + " inputs; at most "
                           + std::to_string(max_inputs) + " are allowed in one request.",
                         "input"};
  bool strings = input[0].IsString();
  for (rapidjson::SizeType i = 0; i < input.Size(); ++i) {
    const auto& item = input[i];
    auto where = "input[" + std::to_string(i) + "]";
    if (strings) {
      if (!item.IsString())
        return request_error{"`input` mixes strings with other values: every item must be a string.", where};
      if (item.GetStringLength() == 0)
        return request_error{"`" + where + "` must not be empty.", where};
    } else {
      if (!item.IsArray())
        return request_error{i == 0 ? std::string{shapes}
                                    : "`input` mixes token-id arrays with other values: every item must be one.",
                             where};
      if (auto err = check_tokens(item, where))
        return err;
    }
    add(out, item);
  }
  return std::nullopt;
}

/// Base64 of whole, finite float32s, at least one: the decoded bytes, or nullopt.
std::optional<std::string> vector_bytes(std::string_view vector) {
  std::string bytes;
  if (!base64_decode(vector, bytes) || bytes.empty() || bytes.size() % sizeof(float) != 0)
    return std::nullopt;
  for (size_t at = 0; at < bytes.size(); at += sizeof(float)) {
    float f;
    std::memcpy(&f, bytes.data() + at, sizeof(float));
    if (!std::isfinite(f)) // no JSON number for it
      return std::nullopt;
  }
  return bytes;
}

} // namespace

std::optional<request_error> validate_request(const rapidjson::Document& doc, request& out) {
  if (!doc.IsObject())
    return request_error{"The request body must be a JSON object.", ""};
  for (const auto& m : doc.GetObject()) {
    std::string_view name{m.name.GetString(), m.name.GetStringLength()};
    if (name != "model" && name != "input" && name != "encoding_format" && name != "dimensions" && name != "user")
      return request_error{"Unknown field `" + std::string{name}
                             + "`; an embeddings request has model, input, encoding_format, dimensions and user.",
                           std::string{name}};
  }
  auto model = doc.FindMember("model");
  if (model == doc.MemberEnd() || model->value.IsNull())
    return request_error{"`model` is required.", "model"};
  if (!model->value.IsString() || model->value.GetStringLength() == 0 || model->value.GetStringLength() > 128)
    return request_error{"`model` must be a string of 1 to 128 characters.", "model"};
  out.model.assign(model->value.GetString(), model->value.GetStringLength());
  auto input = doc.FindMember("input");
  if (input == doc.MemberEnd() || input->value.IsNull())
    return request_error{"`input` is required.", "input"};
  if (auto err = check_input(input->value, out))
    return err;
  if (auto it = doc.FindMember("encoding_format"); it != doc.MemberEnd() && !it->value.IsNull()) {
    std::string_view format = it->value.IsString() ? std::string_view{it->value.GetString(), it->value.GetStringLength()}
                                                    : std::string_view{};
    if (format != "float" && format != "base64")
      return request_error{"`encoding_format` must be \"float\" or \"base64\".", "encoding_format"};
    out.base64 = format == "base64";
  }
  if (auto it = doc.FindMember("dimensions"); it != doc.MemberEnd() && !it->value.IsNull()) {
    if (!it->value.IsInt64() || it->value.GetInt64() < 1 || it->value.GetInt64() > max_dimensions)
      return request_error{"`dimensions` must be an integer from 1 to " + std::to_string(max_dimensions) + ".",
                           "dimensions"};
    out.dimensions = it->value.GetInt64();
  }
  if (auto it = doc.FindMember("user"); it != doc.MemberEnd() && !it->value.IsNull()) {
    if (!it->value.IsString() || it->value.GetStringLength() > 512)
      return request_error{"`user` must be a string of at most 512 characters.", "user"};
    out.user.assign(it->value.GetString(), it->value.GetStringLength());
  }
  return std::nullopt;
}

std::string input_key(const request& r, size_t i, const std::string& tenant) {
  // Hashed as the JSON array [model, dimensions, input]: no two different triples share a text.
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  w.StartArray();
  w.String(r.model.c_str(), static_cast<rapidjson::SizeType>(r.model.size()));
  w.Int64(r.dimensions);
  w.RawValue(r.inputs[i].data(), r.inputs[i].size(), rapidjson::kStringType);
  w.EndArray();
  return "emb:" + tenant + ":" + sha256_hex(std::string_view{buffer.GetString(), buffer.GetSize()});
}

std::string upstream_body(const request& r, const std::vector<size_t>& which) {
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  w.StartObject();
  w.Key("model");
  w.String(r.model.c_str(), static_cast<rapidjson::SizeType>(r.model.size()));
  w.Key("input");
  w.StartArray();
  for (auto i : which)
    w.RawValue(r.inputs[i].data(), r.inputs[i].size(), rapidjson::kStringType);
  w.EndArray();
  w.Key("encoding_format");
  w.String("base64");
  if (r.dimensions > 0) {
    w.Key("dimensions");
    w.Int64(r.dimensions);
  }
  if (!r.user.empty()) {
    w.Key("user");
    w.String(r.user.c_str(), static_cast<rapidjson::SizeType>(r.user.size()));
  }
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

std::optional<upstream_answer> check_answer(std::string_view body, size_t expected, size_t prompt_chars,
                                            std::string& why, int64_t dimensions) {
  auto parsed = json::parse(body, max_answer_depth);
  if (!parsed) {
    why = openai::refusal(parsed.error(), "the upstream's answer");
    return std::nullopt;
  }
  const auto& doc = parsed.document();
  if (!doc.IsObject()) {
    why = "the upstream's answer is not a JSON object";
    return std::nullopt;
  }
  auto data = doc.FindMember("data");
  if (data == doc.MemberEnd() || !data->value.IsArray()) {
    why = "the upstream's answer has no `data` array";
    return std::nullopt;
  }
  if (data->value.Size() != expected) {
    why = "the upstream answered " + std::to_string(data->value.Size()) + " embeddings for "
          + std::to_string(expected) + " inputs";
    return std::nullopt;
  }
  upstream_answer out;
  out.vectors.resize(expected);
  size_t floats = 0; // of every vector: they all have the first one's length
  for (const auto& item : data->value.GetArray()) {
    auto index = item.IsObject() ? item.FindMember("index") : Value::ConstMemberIterator{};
    if (!item.IsObject() || index == item.MemberEnd() || !index->value.IsUint64()
        || index->value.GetUint64() >= expected || !out.vectors[index->value.GetUint64()].empty()) {
      why = "the upstream's answer has an embedding without a valid, unique `index`";
      return std::nullopt;
    }
    auto embedding = item.FindMember("embedding");
    std::string bytes;
    if (embedding != item.MemberEnd() && embedding->value.IsString()) {
      if (auto decoded = vector_bytes({embedding->value.GetString(), embedding->value.GetStringLength()}))
        bytes = std::move(*decoded);
    } else if (embedding != item.MemberEnd() && embedding->value.IsArray() && !embedding->value.Empty()) {
      bytes.reserve(embedding->value.Size() * sizeof(float));
      for (const auto& number : embedding->value.GetArray()) {
        // Beyond the largest float32 there is no float32 (and the conversion would be undefined).
        auto d = number.IsNumber() ? number.GetDouble() : NAN;
        if (!(std::fabs(d) <= std::numeric_limits<float>::max())) {
          bytes.clear();
          break;
        }
        auto f = static_cast<float>(d);
        char raw[sizeof(float)];
        std::memcpy(raw, &f, sizeof(float));
        bytes.append(raw, sizeof(float));
      }
    }
    if (bytes.empty()) {
      why = "the upstream's answer has an embedding that is neither base64 of float32s nor an array of numbers";
      return std::nullopt;
    }
    if (floats == 0)
      floats = bytes.size() / sizeof(float);
    if (bytes.size() / sizeof(float) != floats) {
      why = "the upstream's embeddings differ in length";
      return std::nullopt;
    }
    if (dimensions > 0 && floats != static_cast<size_t>(dimensions)) {
      why = "the upstream answered embeddings of " + std::to_string(floats) + " dimensions for " +
            std::to_string(dimensions) + " asked";
      return std::nullopt;
    }
    out.vectors[index->value.GetUint64()] = base64_encode(bytes);
  }
  if (auto model = doc.FindMember("model"); model != doc.MemberEnd() && model->value.IsString())
    out.model.assign(model->value.GetString(), model->value.GetStringLength());
  auto usage = doc.FindMember("usage");
  auto prompt = usage != doc.MemberEnd() && usage->value.IsObject() ? usage->value.FindMember("prompt_tokens")
                                                                   : Value::ConstMemberIterator{};
  if (usage != doc.MemberEnd() && usage->value.IsObject() && prompt != usage->value.MemberEnd()
      && prompt->value.IsInt64() && prompt->value.GetInt64() >= 0) {
    out.used.prompt_tokens = prompt->value.GetInt64();
  } else {
    out.used.prompt_tokens = openai::estimate_tokens(prompt_chars);
    out.used.estimated = true;
  }
  out.used.total_tokens = out.used.prompt_tokens;
  return out;
}

bool valid_vector(std::string_view vector) {
  return vector_bytes(vector).has_value();
}

std::string as_numbers(std::string_view vector) {
  auto bytes = vector_bytes(vector);
  if (!bytes)
    return {};
  std::string out;
  out.reserve(bytes->size() * 3 + 2);
  out.push_back('[');
  char digits[32];
  for (size_t at = 0; at < bytes->size(); at += sizeof(float)) {
    float f;
    std::memcpy(&f, bytes->data() + at, sizeof(float));
    if (at > 0)
      out.push_back(',');
    // The shortest text that reads back as the same float32 (checked finite when it entered).
    auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), f);
    out.append(digits, ec == std::errc{} ? end : digits);
    if (std::signbit(f) && f == 0)
      out += ".0"; // "-0" reads back as the integer 0 in many parsers (RapidJSON, Python): "-0.0" keeps the sign
  }
  out.push_back(']');
  return out;
}

size_t answer_bytes(const std::vector<std::string>& vectors, const std::vector<size_t>& slot, bool base64,
                    const std::string& model) {
  constexpr size_t per_item = 64;   // {"object":"embedding","index":N,"embedding":...}, and a comma
  constexpr size_t per_float = 16;  // "-1.2345678e-38," at most
  size_t total = 256 + 6 * model.size(); // the envelope, usage, and the model at its most escaped
  for (auto d : slot) {
    const auto& v = vectors[d];
    total += per_item + (base64 ? v.size() + 2 : (v.size() / 4 * 3) / sizeof(float) * per_float + 2);
  }
  return total;
}

std::string answer_body(const std::vector<std::string>& vectors, const std::vector<size_t>& slot, bool base64,
                        const std::string& model, const openai::usage& used) {
  std::vector<std::string> numbers; // vectors[d] as numbers, written when first needed
  if (!base64)
    numbers.resize(vectors.size());
  rapidjson::StringBuffer buffer;
  json_writer w(buffer);
  w.StartObject();
  w.Key("object");
  w.String("list");
  w.Key("data");
  w.StartArray();
  for (size_t i = 0; i < slot.size(); ++i) {
    const auto& vector = vectors[slot[i]];
    w.StartObject();
    w.Key("object");
    w.String("embedding");
    w.Key("index");
    w.Uint64(i);
    w.Key("embedding");
    if (base64) {
      w.String(vector.c_str(), static_cast<rapidjson::SizeType>(vector.size()));
    } else {
      auto& text = numbers[slot[i]];
      if (text.empty())
        text = as_numbers(vector);
      w.RawValue(text.data(), text.size(), rapidjson::kArrayType);
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("model");
  w.String(model.c_str(), static_cast<rapidjson::SizeType>(model.size()));
  w.Key("usage");
  w.StartObject();
  w.Key("prompt_tokens");
  w.Int64(used.prompt_tokens);
  w.Key("total_tokens");
  w.Int64(used.prompt_tokens);
  w.EndObject();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

} // namespace troupe::embeddings
