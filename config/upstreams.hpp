#pragma once
// The upstream list: the AI providers Troupe calls, configured as the top-level "upstreams" array of the
// configuration file (README, AI gateway), or as the same JSON array in TROUPE_UPSTREAMS (which replaces the file's list).
//
//   {"name": "openai", "base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY",
//    "models": ["gpt-4o-mini"], "priority": 1, "weight": 1, "timeout_ms": 60000, "connect_timeout_ms": 5000,
//    "first_byte_timeout_ms": 60000, "max_inflight": 64, "health_check_path": "/models",
//    "health_check_interval_ms": 10000, "health_check_timeout_ms": 2000}
//
// Only name, base_url and models are required. Base URLs come only from here (clients never supply URLs). The
// key is read from the environment variable api_key_env names when the configuration is loaded; it is sent only
// to its upstream and never printed, logged or returned.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace troupe::config {

struct upstream_settings {
  std::string name;        // [a-z0-9_-], 1..32 characters; unique
  std::string base_url;    // http:// or https://, no userinfo, no query; "/chat/completions" is appended
  std::string type = "openai"; // "openai", or "anthropic": the Messages API ("/messages"), calls translated
  std::string api_key_env; // the environment variable holding the key ("" = no key, e.g. a local mock)
  std::string api_key;     // secret: read from api_key_env at load time
  std::vector<std::string> models;
  int64_t priority = 1;       // lower is tried first
  int64_t weight = 1;         // share among upstreams of the same priority
  int64_t timeout_ms = 60000; // whole call
  int64_t connect_timeout_ms = 5000;
  int64_t first_byte_timeout_ms = 60000; // until the response headers arrive
  int64_t max_inflight = 64;             // calls to this upstream at once; more fall back or get 503
  // Active health check: GET base_url + health_check_path every health_check_interval_ms; an answer other than 2xx
  // within health_check_timeout_ms opens the upstream's breaker at once. "" = none.
  std::string health_check_path;
  int64_t health_check_interval_ms = 10000;
  int64_t health_check_timeout_ms = 2000;
};

} // namespace troupe::config
