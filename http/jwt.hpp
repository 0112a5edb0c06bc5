// HS256 access tokens: issuing them and verifying the ones clients present.
//
// libjwt 1.10 checks signatures only: it does not look at exp, nbf, iss or aud, accepts unsigned tokens when given a
// NULL key and accepts an HS256 token MACed with whatever key it is handed (RSA/HMAC confusion). jwt_codec wraps it
// so that none of that reaches a caller: the algorithm is pinned to HS256 before and after libjwt, the key is always
// the configured secret, and the registered claims are checked here.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace troupe::http {

struct jwt_settings {
  std::string secret;                   ///< HS256 key, at least 32 bytes.
  std::string issuer = "troupe";        ///< iss we write and require.
  std::string audience = "troupe-api";  ///< aud we write and require (a string, or an array that contains it).
  std::chrono::seconds access_ttl{900}; ///< exp - iat of issued tokens.
  std::chrono::seconds leeway{30};      ///< Clock skew allowed on exp, nbf and iat.
  size_t max_token_bytes = 8192;        ///< Longer tokens are rejected before any decoding.
};

/// The claims of a verified access token.
struct access_claims {
  std::string subject;    ///< sub
  std::string jti;        ///< jti: unique token id (for revocation)
  std::string role;       ///< role, "" if absent
  int64_t issued_at = 0;  ///< iat, 0 if absent
  int64_t expires_at = 0; ///< exp
};

/// Why a token was rejected.
enum class jwt_failure {
  too_large,       ///< Longer than max_token_bytes.
  malformed,       ///< Not three base64url segments, header or payload not a JSON object, or a claim of the wrong type.
  wrong_algorithm, ///< Header alg is not exactly "HS256" (none, HS512, RS256, ...).
  bad_signature,   ///< MAC does not match our secret.
  expired,         ///< now >= exp + leeway.
  not_yet_valid,   ///< nbf or iat later than now + leeway.
  wrong_issuer,    ///< iss missing or not ours.
  wrong_audience,  ///< aud missing or does not name us.
  missing_claim,   ///< sub, jti or exp absent (or sub/jti empty).
};

/// snake_case name of a failure, for security events and logs.
const char* to_string(jwt_failure failure);

/// Issues and verifies HS256 access tokens. Immutable after construction: every member function may be called
/// concurrently from any thread.
class jwt_codec {
public:
  /// Throws std::invalid_argument if settings.secret is shorter than 32 bytes, access_ttl is not positive or leeway
  /// is negative.
  explicit jwt_codec(jwt_settings settings);

  /// A signed HS256 access token with iss, aud, sub, iat, nbf (= iat), exp (= iat + ttl), jti, role; header typ "JWT".
  /// Throws std::invalid_argument if an argument contains a NUL byte or is not valid UTF-8, std::runtime_error if
  /// libjwt fails otherwise (out of memory).
  std::string issue(const std::string& subject, const std::string& role, const std::string& jti,
                    int64_t now_unix) const;

  /// The claims of `token` if it is a valid access token at `now_unix`, else the first check it fails, in this
  /// order: size, shape, algorithm (read from the header before libjwt sees it), signature, libjwt's decoding,
  /// exp, nbf, iat, iss, aud, sub, jti. Header fields kid/jku/x5u/jwk are ignored: the key is always our secret.
  /// Never throws except std::bad_alloc.
  std::variant<access_claims, jwt_failure> verify(std::string_view token, int64_t now_unix) const;

  const jwt_settings& settings() const { return settings_; }

private:
  jwt_settings settings_;
};

/// 128 random bits as 32 lower-case hex characters (libsodium randombytes), for jti values. Throws
/// std::runtime_error if libsodium cannot be initialised.
std::string random_token_id();

} // namespace troupe::http
