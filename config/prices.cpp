// Parsing of the price table (config/prices.hpp) and the integer arithmetic of a call's cost.

#include "config/prices.hpp"
#include "config/json.hpp"
#include "config/loader.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <limits>

namespace troupe::config {

namespace {

const char* const table_form =
  R"(a JSON object of model names to {"input_per_mtok": USD, "output_per_mtok": USD}, e.g. {"gpt-4o-mini": )"
  R"({"input_per_mtok": 0.15, "output_per_mtok": 0.6}})";

std::string compact(const rapidjson::Value& v) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  v.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string shown(const rapidjson::Value& v) {
  if (v.IsNumber())
    return compact(v);
  if (v.IsString())
    return std::string(v.GetString(), v.GetStringLength());
  return v.IsObject() ? "{...}" : v.IsArray() ? "[...]" : compact(v);
}

int64_t saturating_add(int64_t a, int64_t b) {
  return a > std::numeric_limits<int64_t>::max() - b ? std::numeric_limits<int64_t>::max() : a + b;
}

int64_t saturating_mul(int64_t tokens, int64_t price) {
  if (tokens <= 0 || price <= 0)
    return 0;
  return tokens > std::numeric_limits<int64_t>::max() / price ? std::numeric_limits<int64_t>::max() : tokens * price;
}

} // namespace

std::optional<config_error> parse_prices(const std::string& json, const std::string& source, price_table& out) {
  auto parsed = json::parse(json);
  if (!parsed) {
    const auto& e = parsed.error();
    return config_error{"prices", json.size() > 60 ? json.substr(0, 60) + "..." : json, table_form,
                        "parse error at offset " + std::to_string(e.offset) + ": " + e.reason + ", " + source};
  }
  const auto& doc = parsed.document();
  if (!doc.IsObject())
    return config_error{"prices", shown(doc), table_form, source};
  price_table table;
  for (const auto& entry : doc.GetObject()) {
    std::string model(entry.name.GetString(), entry.name.GetStringLength());
    if (model.empty() || model.size() > 128)
      return config_error{"prices", model, "model names of 1 to 128 characters", source};
    std::string where = "prices." + model;
    if (!entry.value.IsObject())
      return config_error{where, shown(entry.value), R"({"input_per_mtok": USD, "output_per_mtok": USD})", source};
    model_price price;
    bool seen_input = false, seen_output = false;
    for (const auto& field : entry.value.GetObject()) {
      std::string name(field.name.GetString(), field.name.GetStringLength());
      bool input = name == "input_per_mtok";
      if (!input && name != "output_per_mtok")
        return config_error{where + "." + name, "", "input_per_mtok or output_per_mtok", "unknown field, " + source};
      const auto& v = field.value;
      if (!v.IsNumber() || !(v.GetDouble() >= 0) || v.GetDouble() > max_price_per_mtok)
        return config_error{where + "." + name, shown(v),
                            "a number of USD per million tokens from 0 to 100000",
                            source};
      // USD per 10^6 tokens = 10^12 pico-dollars per 10^6 tokens = 10^6 pico-dollars per token per USD.
      auto per_token = static_cast<int64_t>(std::llround(v.GetDouble() * 1e6));
      (input ? price.input_pusd_per_token : price.output_pusd_per_token) = per_token;
      (input ? seen_input : seen_output) = true;
    }
    if (!seen_input || !seen_output)
      return config_error{where + "." + (seen_input ? "output_per_mtok" : "input_per_mtok"), "",
                          "a number of USD per million tokens (required)", source};
    table[model] = price;
  }
  out = std::move(table);
  return std::nullopt;
}

int64_t cost_pusd(const price_table& prices, const std::string& model, int64_t prompt_tokens,
                  int64_t completion_tokens) {
  auto it = prices.find(model);
  if (it == prices.end())
    return 0;
  return saturating_add(saturating_mul(prompt_tokens, it->second.input_pusd_per_token),
                        saturating_mul(completion_tokens, it->second.output_pusd_per_token));
}

std::string usd_text(int64_t pusd) {
  constexpr int64_t per_usd = 1000000000000; // 10^12
  std::string fraction = std::to_string(pusd % per_usd);
  return std::to_string(pusd / per_usd) + "." + std::string(12 - fraction.size(), '0') + fraction;
}

} // namespace troupe::config
