// Tests of http/jwt.cpp against real third-party signers: tokens made by jose (SignJWT) and jsonwebtoken through
// tests/interop/sign_jwt.mjs under Node must verify with the right claims, and one made with another secret must
// not. Node and the packages come from scripts/test-deps (make test runs it); without them the tests fail.

#include "http/jwt.hpp"
#include "tests/interop/node_packages.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>
#include <variant>

using troupe::http::access_claims;
using troupe::http::jwt_codec;
using troupe::http::jwt_failure;
using troupe::http::jwt_settings;

namespace {

constexpr int64_t issued_at = 1'700'000'000;
const std::string secret = "troupe-interop-test-secret-0123456789abcdef";
const std::string driver_dir = troupe::testing::interop_dir();

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text)
    quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

struct command_result {
  int status = -1;
  std::string output; ///< stdout only; stderr goes to the test log.
};

command_result run(const std::string& command) {
  command_result result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe)
    return result;
  std::array<char, 4096> buffer;
  for (size_t n; (n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0;)
    result.output.append(buffer.data(), n);
  result.status = pclose(pipe);
  return result;
}

/// Runs sign_jwt.mjs with `lib` and returns the token ("" on failure).
std::string sign(const std::string& lib, const std::string& key) {
  const std::string command = "node " + shell_quote(driver_dir + "/sign_jwt.mjs") + " --lib " + lib + " --secret "
                              + shell_quote(key) + " --sub user-42 --role admin --jti "
                              + "0123456789abcdef0123456789abcdef --iss troupe --aud troupe-api --iat "
                              + std::to_string(issued_at) + " --exp " + std::to_string(issued_at + 900);
  command_result result = run(command);
  EXPECT_EQ(result.status, 0) << command;
  while (!result.output.empty() && (result.output.back() == '\n' || result.output.back() == '\r'))
    result.output.pop_back();
  return result.status == 0 ? result.output : "";
}

/// Parameter: the signing library, "jose" or "jsonwebtoken".
class JwtInterop : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    const auto missing = troupe::testing::node_packages_missing({"jose", "jsonwebtoken"});
    ASSERT_TRUE(missing.empty()) << missing;
  }

  static jwt_settings settings() {
    jwt_settings s;
    s.secret = secret;
    return s;
  }
  jwt_codec codec{settings()};
};

// A token the library signs with our secret verifies, with the subject, role, jti, iat and exp it was given.
TEST_P(JwtInterop, AcceptsTokenSignedWithOurSecret) {
  const std::string token = sign(GetParam(), secret);
  ASSERT_FALSE(token.empty());
  const auto result = codec.verify(token, issued_at + 60);
  ASSERT_TRUE(std::holds_alternative<access_claims>(result))
    << to_string(std::get<jwt_failure>(result)) << ": " << token;
  const auto& claims = std::get<access_claims>(result);
  EXPECT_EQ(claims.subject, "user-42");
  EXPECT_EQ(claims.role, "admin");
  EXPECT_EQ(claims.jti, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(claims.issued_at, issued_at);
  EXPECT_EQ(claims.expires_at, issued_at + 900);
}

// The same token is expired once exp plus the leeway has passed.
TEST_P(JwtInterop, HonoursExpiryOfThirdPartyToken) {
  const std::string token = sign(GetParam(), secret);
  ASSERT_FALSE(token.empty());
  const auto result = codec.verify(token, issued_at + 900 + 30);
  ASSERT_TRUE(std::holds_alternative<jwt_failure>(result));
  EXPECT_EQ(std::get<jwt_failure>(result), jwt_failure::expired);
}

// A token the library signs with another secret is a bad signature.
TEST_P(JwtInterop, RejectsTokenSignedWithAnotherSecret) {
  const std::string token = sign(GetParam(), secret + "-other");
  ASSERT_FALSE(token.empty());
  const auto result = codec.verify(token, issued_at + 60);
  ASSERT_TRUE(std::holds_alternative<jwt_failure>(result));
  EXPECT_EQ(std::get<jwt_failure>(result), jwt_failure::bad_signature);
}

INSTANTIATE_TEST_SUITE_P(Signers, JwtInterop, ::testing::Values("jose", "jsonwebtoken"),
                         [](const auto& info) { return info.param; });

} // namespace
