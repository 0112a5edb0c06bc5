#pragma once
// The JSON Schemas of the request bodies, in one place: the routes compile them (http/json_schema.hpp), and the
// body fuzzer (tests/fuzz) validates against the same texts. Each is a draft-4 schema that refuses unknown fields.

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

/// POST /v1/chat/completions (and the chat request a /v1/messages or /api/generate call stands for): OpenAI's fields,
/// each with its type and range; null stands for an absent optional field. `max_messages` is gateway.max_messages.
/// What a draft-4 schema cannot say is checked by openai::chat_validator after it: image parts (their URL, inline
/// bytes and the request's image budget) and the length of metadata's keys (at most 64 characters).
inline std::string chat_completion(size_t max_messages) {
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
          {"POST /v1/chat/completions", chat_completion(1000)},
          {"POST /api/generate", generate}};
}

} // namespace troupe::http::schemas
