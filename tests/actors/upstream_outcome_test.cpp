// How the gateway reads an upstream's answer (actors/upstream_outcome.hpp): what counts against the breaker, what is
// retried, what falls back to the next upstream, and what the caller is told.

#include "actors/upstream_outcome.hpp"

#include <gtest/gtest.h>

using namespace troupe;
using namespace troupe;
using client::transfer_error;
using client::upstream_response;
using std::chrono::milliseconds;

namespace {

upstream_response status(int s, std::string body = "", std::vector<std::pair<std::string, std::string>> headers = {}) {
  upstream_response r;
  r.status = s;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

} // namespace

TEST(UpstreamOutcome, SuccessIsOk) {
  auto v = judge_transfer("a", status(200), 1000);
  EXPECT_TRUE(v.ok);
  EXPECT_FALSE(v.breaker_failure);
}

// 429 and 5xx count against the breaker and are retried; 429 carries its Retry-After.
TEST(UpstreamOutcome, OverloadAndServerErrorsAreRetriedAndCountAgainstTheBreaker) {
  auto limited = judge_transfer("a", status(429, "", {{"retry-after", "7"}}), 1000);
  EXPECT_TRUE(limited.breaker_failure);
  EXPECT_TRUE(limited.retryable);
  EXPECT_EQ(limited.code, service_error::unavailable);
  EXPECT_EQ(limited.retry_after_ms, 7000);
  auto gateway_timeout = judge_transfer("a", status(504), 1000);
  EXPECT_EQ(gateway_timeout.code, service_error::timeout);
  EXPECT_TRUE(judge_transfer("a", status(502), 1000).breaker_failure);
}

// The caller's own mistakes go back with the upstream's explanation and are neither retried nor tried elsewhere.
TEST(UpstreamOutcome, ClientErrorsGoBackWithTheUpstreamsMessage) {
  auto v = judge_transfer("a", status(400, R"({"error":{"message":"max_tokens is too large"}})"), 1000);
  EXPECT_FALSE(v.retryable);
  EXPECT_FALSE(v.fallback);
  EXPECT_FALSE(v.breaker_failure);
  EXPECT_EQ(v.code, service_error::invalid_input);
  EXPECT_EQ(v.message, "max_tokens is too large");
  EXPECT_EQ(judge_transfer("a", status(404), 1000).code, service_error::not_found);
}

// Refused credentials are the gateway's problem: the next upstream may still work.
TEST(UpstreamOutcome, RefusedCredentialsFallBackWithoutRetry) {
  auto v = judge_transfer("a", status(401), 1000);
  EXPECT_FALSE(v.retryable);
  EXPECT_TRUE(v.fallback);
  EXPECT_FALSE(v.breaker_failure);
}

TEST(UpstreamOutcome, TransferErrors) {
  upstream_response r;
  r.error = transfer_error::first_byte_timeout;
  auto timeout = judge_transfer("a", r, 1000);
  EXPECT_EQ(timeout.code, service_error::timeout);
  EXPECT_TRUE(timeout.breaker_failure);
  r.error = transfer_error::too_large;
  auto huge = judge_transfer("a", r, 1000);
  EXPECT_FALSE(huge.retryable);
  EXPECT_FALSE(huge.breaker_failure);
  EXPECT_NE(huge.message.find("1000 bytes"), std::string::npos);
}

TEST(UpstreamOutcome, RetryAfterAndBackoffStayInBounds) {
  EXPECT_EQ(retry_after_ms_of(status(429, "", {{"retry-after", "Wed, 21 Oct 2026 07:28:00 GMT"}})), 0);
  EXPECT_EQ(retry_after_ms_of(status(429, "", {{"retry-after", "-1"}})), 0);
  EXPECT_EQ(retry_after_ms_of(status(429, "", {{"retry-after", "0.5"}})), 500);
  for (int attempt = 1; attempt <= 10; ++attempt) {
    auto wait = backoff(attempt, milliseconds{100}, milliseconds{1000});
    EXPECT_GE(wait.count(), 0);
    EXPECT_LE(wait.count(), std::min<int64_t>(1000, 100LL << (attempt - 1)));
  }
  EXPECT_EQ(backoff(3, milliseconds{0}, milliseconds{1000}).count(), 0);
}
