#pragma once
// The JSON Schemas of the request bodies, in one place: the routes compile them (config/json_schema.hpp), and the
// body fuzzer (tests/fuzz) validates against the same texts. Each is a draft-4 schema that refuses unknown fields.

#include "ai/openai.hpp"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::http::schemas {

/// POST /api/auth/login
inline constexpr const char* credentials = R"({
  "type": "object", "additionalProperties": false, "required": ["email", "password"],
  "properties": {
    "email": {"type": "string", "minLength": 3, "maxLength": 254},
    "password": {"type": "string", "minLength": 1, "maxLength": 256}
  }
})";

/// POST /api/auth/register
inline constexpr const char* registration = R"({
  "type": "object", "additionalProperties": false, "required": ["email", "password"],
  "properties": {
    "email": {"type": "string", "minLength": 3, "maxLength": 254},
    "password": {"type": "string", "minLength": 10, "maxLength": 256}
  }
})";

/// POST /api/auth/refresh
inline constexpr const char* refresh = R"({
  "type": "object", "additionalProperties": false, "required": ["refresh_token"],
  "properties": {"refresh_token": {"type": "string", "minLength": 1, "maxLength": 200}}
})";

/// POST /api/auth/logout
inline constexpr const char* logout = R"({
  "type": "object", "additionalProperties": false,
  "properties": {"refresh_token": {"type": "string", "minLength": 1, "maxLength": 200}}
})";

/// POST /api/keys
/// POST /api/keys: a name, and optionally the key's own limits with LiteLLM's field names (budget in USD,
/// budget_duration like "30s", "30m", "12h" or "30d").
inline constexpr const char* api_key = R"({
  "type": "object", "additionalProperties": false, "required": ["name"],
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 100},
    "models": {"type": ["array", "null"], "minItems": 1, "maxItems": 64, "uniqueItems": true,
               "items": {"type": "string", "minLength": 1, "maxLength": 128}},
    "max_budget": {"type": ["number", "null"], "minimum": 0, "exclusiveMinimum": true, "maximum": 1000000},
    "budget_duration": {"type": ["string", "null"], "pattern": "^[1-9][0-9]{0,5}[smhd]$"},
    "tpm_limit": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000000000000},
    "rpm_limit": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000000000},
    "max_parallel_requests": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000000}
  }
})";

/// POST /api/events, one event
inline constexpr const char* event = R"({
  "type": "object",
  "additionalProperties": false,
  "required": ["event"],
  "properties": {
    "event": {"type": "string", "minLength": 1, "maxLength": 64},
    "session_id": {"type": "string", "maxLength": 128},
    "source": {"type": "string", "maxLength": 64},
    "lang": {"type": "string", "maxLength": 35},
    "properties": {"type": "object"},
    "occurred_at": {"type": "string", "maxLength": 40}
  }
})";

/// POST /api/events, {"events": [...]} of 1 to 1000 events
inline std::string event_batch() {
  return std::string{R"({"type": "object", "additionalProperties": false, "required": ["events"],
    "properties": {"events": {"type": "array", "minItems": 1, "maxItems": 1000, "items": )"}
         + event + "}}}";
}

/// POST /api/feedback
inline constexpr const char* feedback = R"({
  "type": "object",
  "additionalProperties": false,
  "required": ["rating"],
  "properties": {
    "rating": {"type": "integer", "minimum": 1, "maximum": 5},
    "comment": {"type": "string", "maxLength": 4000},
    "lang": {"type": "string", "maxLength": 35}
  }
})";

/// POST /api/repositories
inline constexpr const char* repository = R"({
  "type": "object",
  "additionalProperties": false,
  "required": ["name"],
  "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200}}
})";

/// POST /api/cache/clear
inline constexpr const char* cache_clear = R"({
  "type": "object", "additionalProperties": false,
  "properties": {
    "tag": {"type": "string", "minLength": 1, "maxLength": 512},
    "prefix": {"type": "string", "minLength": 1, "maxLength": 512}
  }
})";

/// POST /api/wishlist: lang is a language tag (BCP 47 shape: "en", "pt-BR", "zh-Hant-TW").
inline constexpr const char* wishlist = R"({
  "type": "object", "additionalProperties": false, "required": ["email"],
  "properties": {
    "email": {"type": "string", "minLength": 3, "maxLength": 254},
    "lang": {"type": "string", "maxLength": 35, "pattern": "^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"},
    "source": {"type": "string", "minLength": 1, "maxLength": 64},
    "note": {"type": "string", "minLength": 1, "maxLength": 2000}
  }
})";

/// POST /api/repositories/{id}/plans
inline constexpr const char* plan_request = R"({
  "type": "object", "additionalProperties": false, "required": ["prompt"],
  "properties": {
    "prompt": {"type": "string", "minLength": 1, "maxLength": 4000},
    "title": {"type": "string", "minLength": 1, "maxLength": 200},
    "model": {"type": "string", "minLength": 1, "maxLength": 128}
  }
})";

/// POST /api/generate: a prompt and what shapes its answer; null stands for an absent field.
inline constexpr const char* generate = R"({
  "type": "object", "additionalProperties": false, "required": ["prompt"],
  "properties": {
    "prompt": {"type": "string", "minLength": 1, "maxLength": 100000},
    "model": {"type": ["string", "null"], "minLength": 1, "maxLength": 128},
    "system": {"type": ["string", "null"], "minLength": 1, "maxLength": 100000},
    "max_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000000}
  }
})";

/// Every schema with the route whose body it describes.
inline std::vector<std::pair<std::string_view, std::string>> all() {
  return {{"POST /api/auth/login", credentials},
          {"POST /api/auth/register", registration},
          {"POST /api/auth/refresh", refresh},
          {"POST /api/auth/logout", logout},
          {"POST /api/keys", api_key},
          {"POST /api/events", event},
          {"POST /api/events (batch)", event_batch()},
          {"POST /api/feedback", feedback},
          {"POST /api/repositories", repository},
          {"POST /api/cache/clear", cache_clear},
          {"POST /api/wishlist", wishlist},
          {"POST /api/repositories/{id}/plans", plan_request},
          {"POST /v1/chat/completions", openai::chat_schema(1000)},
          {"POST /api/generate", generate}};
}

} // namespace troupe::http::schemas
