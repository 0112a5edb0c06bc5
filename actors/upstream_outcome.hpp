#pragma once
// What an upstream's answer means for a gateway call (http/gateway.cpp): whether it succeeded, counts as a failure
// for the upstream's circuit breaker, is worth another attempt on the same upstream or on the next one, and which
// error and message the caller gets if it is the last word. Also the backoff between attempts.

#include "config/service_error.hpp"
#include "actors/upstream_client.hpp"

#include <chrono>
#include <cstdint>
#include <random>
#include <string>

namespace troupe {

/// The gateway's random engine (one per thread): backoff jitter and the weighted order of upstreams.
std::mt19937_64& gateway_random();

/// Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))].
std::chrono::milliseconds backoff(int attempt, std::chrono::milliseconds base, std::chrono::milliseconds cap);

/// Retry-After in milliseconds, from seconds (the HTTP-date form is not used by AI providers and is ignored); 0 if
/// absent or unreadable.
int64_t retry_after_ms_of(const client::upstream_response& res);

/// The message of an upstream's OpenAI-shaped error body, cut short; "" if there is none.
std::string upstream_error_message(const std::string& body);

/// What an attempt's outcome means for the call.
struct verdict {
  bool ok = false;
  bool breaker_failure = false; // reported to the breaker as a failure
  bool retryable = false;       // worth another attempt on the same upstream
  bool fallback = true;         // worth trying the next upstream
  service_error code = service_error::upstream_failed;
  std::string message;
  int64_t retry_after_ms = 0;
};

/// Judges one transfer to the upstream named `name`; max_bytes is the response cap it was made with.
verdict judge_transfer(const std::string& name, const client::upstream_response& res, size_t max_bytes);

} // namespace troupe
