// Parsing and validation of the upstream list (config/upstreams.hpp). Errors name the entry and field, e.g.
// upstreams[1].base_url, and never show a key.

#include "config/upstreams.hpp"
#include "config/json.hpp"
#include "config/loader.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <set>

namespace troupe::config {

namespace {

const char* const list_form = "a JSON array of upstream objects with name, base_url and models";

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 32)
    return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; });
}

/// http(s)://host[:port][/path], without userinfo, query, fragment, spaces or control characters.
bool valid_base_url(const std::string& url) {
  std::string rest;
  if (url.rfind("http://", 0) == 0)
    rest = url.substr(7);
  else if (url.rfind("https://", 0) == 0)
    rest = url.substr(8);
  else
    return false;
  if (rest.empty() || rest.front() == '/' || url.size() > 2048)
    return false;
  auto authority = rest.substr(0, rest.find('/'));
  if (authority.find('@') != std::string::npos)
    return false;
  return std::none_of(url.begin(), url.end(),
                      [](unsigned char c) { return c <= 0x20 || c == 0x7f || c == '?' || c == '#' || c == '\\'; });
}

bool valid_env_name(const std::string& name) {
  if (name.empty() || name.size() > 128 || (name[0] >= '0' && name[0] <= '9'))
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

struct field_reader {
  const rapidjson::Value& entry;
  std::string where; // "upstreams[0]"
  std::string source;
  std::optional<config_error> error;

  config_error fail(const std::string& field, const std::string& shown, const std::string& expected) {
    return config_error{where + "." + field, shown, expected, source};
  }

  std::string text_of(const rapidjson::Value& v) {
    if (v.IsString())
      return std::string(v.GetString(), v.GetStringLength());
    if (v.IsInt64())
      return std::to_string(v.GetInt64());
    return v.IsObject() ? "{...}" : v.IsArray() ? "[...]" : "a non-string value";
  }

  void string(const char* field, std::string& out, bool required) {
    if (error)
      return;
    auto it = entry.FindMember(field);
    if (it == entry.MemberEnd()) {
      if (required)
        error = fail(field, "", "a string (required)");
      return;
    }
    if (!it->value.IsString()) {
      error = fail(field, text_of(it->value), "a string");
      return;
    }
    out.assign(it->value.GetString(), it->value.GetStringLength());
  }

  void integer(const char* field, int64_t& out, int64_t min, int64_t max) {
    if (error)
      return;
    auto it = entry.FindMember(field);
    if (it == entry.MemberEnd())
      return;
    if (!it->value.IsInt64() || it->value.GetInt64() < min || it->value.GetInt64() > max) {
      error = fail(field, text_of(it->value), "an integer from " + std::to_string(min) + " to " + std::to_string(max));
      return;
    }
    out = it->value.GetInt64();
  }
};

std::optional<config_error> parse_entry(const rapidjson::Value& entry, size_t index, const std::string& source,
                                        const env_lookup& env, upstream_settings& u) {
  std::string where = "upstreams[" + std::to_string(index) + "]";
  if (!entry.IsObject())
    return config_error{where, "", "an object with name, base_url and models", source};
  static const std::set<std::string> known{
    "name",       "base_url",           "api_key_env",           "models",      "priority", "weight",
    "timeout_ms", "connect_timeout_ms", "first_byte_timeout_ms", "max_inflight", "health_check_path",
    "health_check_interval_ms", "health_check_timeout_ms", "type"};
  for (const auto& member : entry.GetObject()) {
    std::string key(member.name.GetString(), member.name.GetStringLength());
    // The value of an unknown field is not shown: it may be a misplaced key.
    if (!known.count(key))
      return config_error{where + "." + key, "",
                          "one of name, base_url, api_key_env, models, priority, weight, "
                          "timeout_ms, connect_timeout_ms, first_byte_timeout_ms, max_inflight, health_check_path, "
                          "health_check_interval_ms, health_check_timeout_ms, type",
                          "unknown field, " + source};
  }
  field_reader r{entry, where, source, std::nullopt};
  r.string("name", u.name, true);
  r.string("base_url", u.base_url, true);
  r.string("api_key_env", u.api_key_env, false);
  r.integer("priority", u.priority, 0, 1000);
  r.integer("weight", u.weight, 1, 1000);
  r.integer("timeout_ms", u.timeout_ms, 1, 3600000);
  r.integer("connect_timeout_ms", u.connect_timeout_ms, 1, 600000);
  u.first_byte_timeout_ms = u.timeout_ms;
  r.integer("first_byte_timeout_ms", u.first_byte_timeout_ms, 1, 3600000);
  r.integer("max_inflight", u.max_inflight, 1, 100000);
  r.string("health_check_path", u.health_check_path, false);
  r.string("type", u.type, false);
  r.integer("health_check_interval_ms", u.health_check_interval_ms, 100, 3600000);
  r.integer("health_check_timeout_ms", u.health_check_timeout_ms, 1, 600000);
  if (r.error)
    return r.error;
  if (!u.health_check_path.empty()
      && (u.health_check_path.front() != '/' || u.health_check_path.size() > 256
          || std::any_of(u.health_check_path.begin(), u.health_check_path.end(), [](unsigned char c) {
               return c <= 0x20 || c == 0x7f || c == '#' || c == '\\';
             })))
    return r.fail("health_check_path", u.health_check_path,
                  "a path starting with / of at most 256 characters, without spaces, controls or #");
  if (u.type != "openai" && u.type != "anthropic")
    return r.fail("type", u.type, "\"openai\" (the default) or \"anthropic\"");
  if (!valid_name(u.name))
    return r.fail("name", u.name, "1 to 32 characters of a-z, 0-9, _ and -");
  if (!valid_base_url(u.base_url))
    return r.fail("base_url", u.base_url, "an http:// or https:// URL without credentials, query or fragment");
  while (!u.base_url.empty() && u.base_url.back() == '/')
    u.base_url.pop_back();
  auto models = entry.FindMember("models");
  if (models == entry.MemberEnd() || !models->value.IsArray() || models->value.Empty())
    return r.fail("models", "", "a non-empty array of model names (required)");
  for (const auto& m : models->value.GetArray()) {
    if (!m.IsString() || m.GetStringLength() == 0 || m.GetStringLength() > 128)
      return r.fail("models", r.text_of(m), "model names of 1 to 128 characters");
    u.models.emplace_back(m.GetString(), m.GetStringLength());
  }
  if (!u.api_key_env.empty()) {
    if (!valid_env_name(u.api_key_env))
      return r.fail("api_key_env", u.api_key_env, "the name of an environment variable");
    auto key = env ? env(u.api_key_env) : std::nullopt;
    if (!key || key->empty())
      return r.fail("api_key_env", u.api_key_env, "the name of a set, non-empty environment variable");
    u.api_key = *key;
  }
  return std::nullopt;
}

} // namespace

std::optional<config_error> parse_upstreams(const std::string& json, const std::string& source, const env_lookup& env,
                                            std::vector<upstream_settings>& out) {
  auto text = json::parse(json);
  if (!text) {
    const auto& e = text.error();
    return config_error{
      "upstreams", json.size() > 60 ? json.substr(0, 60) + "..." : json, list_form,
      "parse error at offset " + std::to_string(e.offset) + ": " + e.reason
        + (e.param.empty() ? "" : " (at upstreams" + std::string(e.param.front() == '[' ? "" : ".") + e.param + ")")
        + ", " + source};
  }
  const auto& doc = text.document();
  if (!doc.IsArray())
    return config_error{"upstreams", "", list_form, source};
  std::vector<upstream_settings> parsed;
  std::set<std::string> names;
  for (rapidjson::SizeType i = 0; i < doc.Size(); ++i) {
    upstream_settings u;
    if (auto err = parse_entry(doc[i], i, source, env, u))
      return err;
    if (!names.insert(u.name).second)
      return config_error{"upstreams[" + std::to_string(i) + "].name", u.name, "a name no other upstream has", source};
    parsed.push_back(std::move(u));
  }
  out = std::move(parsed);
  return std::nullopt;
}

} // namespace troupe::config
