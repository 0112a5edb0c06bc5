// Fuzz target: bearer tokens (http/jwt.hpp). The input is tried as a token against a fixed secret; its pieces
// (split at NUL bytes) are also used as subject, role and token id of a token issued with that secret.
//
// Invariants: verify never accepts a token whose signature was not made with the secret (the input, unless it is
// one of ours, is refused); a token we issue verifies, with the claims it was issued with, while it is valid.

#include "tests/fuzz/fuzz_check.hpp"

#include "http/jwt.hpp"

#include <stdexcept>
#include <string>
#include <variant>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  using namespace troupe;
  using fuzz::check;
  static const http::jwt_codec codec = [] {
    http::jwt_settings settings;
    settings.secret = "fuzz-secret-0123456789abcdef0123456789";
    settings.issuer = "troupe";
    settings.audience = "troupe-api";
    settings.access_ttl = std::chrono::seconds{900};
    return http::jwt_codec{settings};
  }();
  constexpr int64_t now = 1800000000;
  const auto text = fuzz::text_of(data, size);

  auto verdict = codec.verify(text, now);
  if (auto* claims = std::get_if<http::access_claims>(&verdict))
    check(!claims->subject.empty() && !claims->jti.empty(), "an accepted token has a subject and an id");

  auto first = text.find('\0');
  auto second = first == std::string_view::npos ? first : text.find('\0', first + 1);
  if (second == std::string_view::npos)
    return 0;
  std::string subject{text.substr(0, first)}, role{text.substr(first + 1, second - first - 1)},
    jti{text.substr(second + 1)};
  std::string token;
  try {
    token = codec.issue(subject, role, jti, now);
  } catch (const std::invalid_argument&) {
    return 0; // a NUL or invalid UTF-8 in a claim: refused when issuing
  }
  auto again = codec.verify(token, now + 10);
  if (token.size() > http::jwt_settings{}.max_token_bytes) { // claims full of escapes: refused before decoding
    check(std::get_if<http::jwt_failure>(&again) && std::get<http::jwt_failure>(again) == http::jwt_failure::too_large,
          "an oversized token is refused as too large");
    return 0;
  }
  if (subject.empty() || jti.empty()) {
    check(std::holds_alternative<http::jwt_failure>(again), "a token without subject or id is refused");
    return 0;
  }
  auto* claims = std::get_if<http::access_claims>(&again);
  check(claims != nullptr, "a token we issued verifies");
  check(claims->subject == subject && claims->role == role && claims->jti == jti, "its claims survive");
  check(std::holds_alternative<http::jwt_failure>(codec.verify(token, now + 100000)), "an expired token is refused");
  return 0;
}
