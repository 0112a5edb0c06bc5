#include "tools/mock-upstream/embeddings.hpp"

#include "tools/mock-upstream/json_text.hpp"

#include "config/json.hpp"
#include "config/hashing.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstring>

namespace troupe::mock {

namespace {

std::string compact(const rapidjson::Value& v) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  v.Accept(w);
  return {buffer.GetString(), buffer.GetSize()};
}

bool fail(request_error& error, std::string message, std::string param) {
  error = {std::move(message), std::move(param), "invalid_value"};
  return false;
}

bool add_input(const rapidjson::Value& v, const std::string& param, embeddings_request& out, request_error& error) {
  if (v.IsString()) {
    if (v.GetStringLength() == 0)
      return fail(error, "'" + param + "' must not be empty.", param);
    out.prompt_tokens += std::max<uint64_t>(1, (v.GetStringLength() + 3) / 4);
  } else if (v.IsArray() && !v.Empty()) {
    for (const auto& t : v.GetArray())
      if (!t.IsUint())
        return fail(error, "'" + param + "' must hold token ids.", param);
    out.prompt_tokens += v.Size();
  } else {
    return fail(error, "'" + param + "' must be a string or an array of token ids.", param);
  }
  out.inputs.push_back(compact(v));
  return true;
}

uint64_t fnv1a(std::string_view text, uint64_t h = 14695981039346656037ull) {
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

} // namespace

bool parse_embeddings_request(std::string_view body, embeddings_request& out, request_error& error) {
  auto parsed = json::parse(body);
  if (!parsed)
    return fail(error, "We could not parse the JSON body of your request: " + parsed.error().reason, "");
  const auto& doc = parsed.document();
  if (!doc.IsObject())
    return fail(error, "The request body must be a JSON object.", "");
  if (!doc.HasMember("model") || !doc["model"].IsString())
    return fail(error, "you must provide a model parameter", "model");
  out.model = doc["model"].GetString();
  if (!doc.HasMember("input"))
    return fail(error, "'input' is a required property", "input");
  const auto& input = doc["input"];
  if (input.IsArray() && !input.Empty() && (input[0].IsString() || input[0].IsArray())) {
    for (rapidjson::SizeType i = 0; i < input.Size(); ++i)
      if (!add_input(input[i], "input[" + std::to_string(i) + "]", out, error))
        return false;
  } else if (!add_input(input, "input", out, error)) {
    return false;
  }
  if (doc.HasMember("encoding_format")) {
    const auto& f = doc["encoding_format"];
    if (!f.IsString() || (std::string_view{f.GetString()} != "float" && std::string_view{f.GetString()} != "base64"))
      return fail(error, "'encoding_format' must be 'float' or 'base64'.", "encoding_format");
    out.base64 = std::string_view{f.GetString()} == "base64";
  }
  if (doc.HasMember("dimensions")) {
    const auto& d = doc["dimensions"];
    if (!d.IsInt64() || d.GetInt64() < 1 || d.GetInt64() > 65536)
      return fail(error, "'dimensions' must be an integer from 1 to 65536.", "dimensions");
    out.dimensions = d.GetInt64();
  }
  return true;
}

std::vector<float> mock_vector(std::string_view input, int64_t dimensions) {
  std::vector<float> v(static_cast<size_t>(dimensions));
  auto seed = fnv1a(input);
  for (size_t j = 0; j < v.size(); ++j) {
    auto h = fnv1a(std::string_view{reinterpret_cast<const char*>(&j), sizeof(j)}, seed);
    // 24 bits of the hash, as a float in [-1, 1): exactly representable in a float32.
    v[j] = static_cast<float>(static_cast<int64_t>(h >> 40) - (int64_t{1} << 23)) / static_cast<float>(1 << 23);
  }
  return v;
}

void plan_embeddings_answer(const embeddings_request& request, const admission& admitted,
                            const answer_context& context, plan& p) {
  const auto& k = admitted.resolved;
  p.close_after = !context.keep_alive;
  p.wait(k.latency_ms);
  if (admitted.status != 200) {
    plan_error(admitted, context, p);
    return;
  }
  if (k.malformed == malformed_mode::hangup) {
    p.close();
    return;
  }
  std::string out = "{\"object\":\"list\",\"data\":[";
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    auto v = mock_vector(request.inputs[i], request.dimensions);
    out += (i > 0 ? ",{" : "{");
    out += "\"object\":\"embedding\",\"index\":" + std::to_string(i) + ",\"embedding\":";
    if (request.base64) {
      std::string bytes(v.size() * sizeof(float), '\0');
      std::memcpy(bytes.data(), v.data(), bytes.size());
      append_json_string(out, base64_encode(bytes));
    } else {
      out += '[';
      for (size_t j = 0; j < v.size(); ++j)
        out += (j > 0 ? "," : "") + json_number(v[j]);
      out += ']';
    }
    out += '}';
  }
  out += "],\"model\":";
  append_json_string(out, request.model);
  out += ",\"usage\":{\"prompt_tokens\":" + std::to_string(request.prompt_tokens)
         + ",\"total_tokens\":" + std::to_string(request.prompt_tokens) + "}}";
  // json: a correct length for a body cut in half (a strict prefix of a JSON object is never JSON).
  if (k.malformed == malformed_mode::json)
    out.resize(out.size() / 2);
  p.write(response_head(200, "application/json", static_cast<int64_t>(out.size()), context.keep_alive,
                        "X-Request-Id: req_mock_" + std::to_string(admitted.number) + "\r\n"));
  p.write(out);
}

} // namespace troupe::mock
