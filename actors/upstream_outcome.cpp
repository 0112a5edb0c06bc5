// See upstream_outcome.hpp.

#include "actors/upstream_outcome.hpp"

#include "actors/breaker.hpp"
#include "config/json.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace troupe {

using std::chrono::milliseconds;

std::mt19937_64& gateway_random() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return engine;
}

milliseconds backoff(int attempt, milliseconds base, milliseconds cap) {
  double ceiling = std::min<double>(static_cast<double>(cap.count()),
                                    static_cast<double>(base.count()) * std::pow(2.0, std::max(0, attempt - 1)));
  if (ceiling <= 0)
    return milliseconds{0};
  std::uniform_real_distribution<double> pick{0, ceiling};
  return milliseconds{static_cast<int64_t>(pick(gateway_random()))};
}

int64_t retry_after_ms_of(const client::upstream_response& res) {
  auto value = res.header("retry-after");
  if (!value)
    return 0;
  char* end = nullptr;
  double seconds = std::strtod(value->c_str(), &end);
  if (end == value->c_str() || seconds < 0 || seconds > 86400)
    return 0;
  return static_cast<int64_t>(seconds * 1000);
}

std::string upstream_error_message(const std::string& body) {
  auto parsed = json::parse(body);
  if (!parsed || !parsed->IsObject())
    return "";
  const auto& doc = parsed.document();
  auto error = doc.FindMember("error");
  if (error == doc.MemberEnd() || !error->value.IsObject())
    return "";
  auto message = error->value.FindMember("message");
  if (message == error->value.MemberEnd() || !message->value.IsString())
    return "";
  std::string text(message->value.GetString(), message->value.GetStringLength());
  return text.size() > 500 ? text.substr(0, 500) + "..." : text;
}

verdict judge_transfer(const std::string& name, const client::upstream_response& res, size_t max_bytes) {
  verdict v;
  using te = client::transfer_error;
  switch (res.error) {
  case te::none:
    break;
  case te::connect:
    return {false,
            true,
            true,
            true,
            service_error::upstream_failed,
            "Could not connect to upstream " + name + ": " + res.error_text,
            0};
  case te::connect_timeout:
  case te::first_byte_timeout:
  case te::total_timeout:
  case te::idle_timeout:
    return {false,
            true,
            true,
            true,
            service_error::timeout,
            "Upstream " + name + " timed out (" + client::to_string(res.error) + ").",
            0};
  case te::protocol:
    return {false,
            true,
            true,
            true,
            service_error::upstream_failed,
            "Upstream " + name + " broke the connection: " + res.error_text,
            0};
  case te::too_large:
    return {false,
            false,
            false,
            true,
            service_error::upstream_failed,
            "Upstream " + name + " answered more than " + std::to_string(max_bytes) + " bytes.",
            0};
  case te::aborted:
    return {false,
            false,
            true,
            true,
            service_error::unavailable,
            "The call to upstream " + name + " was aborted: " + res.error_text,
            0};
  }
  int s = res.status;
  if (s >= 200 && s < 300) {
    v.ok = true;
    return v;
  }
  v.retry_after_ms = retry_after_ms_of(res);
  auto said = upstream_error_message(res.body);
  auto status_text = "HTTP " + std::to_string(s);
  if (is_breaker_failure_status(s)) {
    v.breaker_failure = true;
    v.retryable = true;
    v.code = s == 429 ? service_error::unavailable : s == 504 ? service_error::timeout : service_error::upstream_failed;
    v.message = "Upstream " + name + " answered " + status_text + (s == 429 ? " (rate limited)." : ".");
    return v;
  }
  if (s == 401 || s == 403) {
    v.message = "Upstream " + name + " refused the gateway's credentials (" + status_text + ").";
    return v;
  }
  if (s == 400 || s == 404 || s == 413 || s == 422) {
    // The caller's request is at fault: the upstream's explanation goes back, and nothing else is tried.
    v.fallback = false;
    v.code = s == 404   ? service_error::not_found
             : s == 413 ? service_error::payload_too_large
                        : service_error::invalid_input;
    v.message = said.empty() ? "Upstream " + name + " rejected the request (" + status_text + ")." : said;
    return v;
  }
  v.message = "Upstream " + name + " answered " + status_text + ".";
  return v;
}

} // namespace troupe
