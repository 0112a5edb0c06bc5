// Tests of http/jwt.cpp: issuing and verifying HS256 access tokens, and rejecting forged ones with the specific
// jwt_failure. Forged tokens are built by hand (base64url + HMAC from libsodium), HS384 through libjwt. The clock is
// a fixed now_unix.

#include "http/jwt.hpp"

#include <gtest/gtest.h>
#include <jwt.h>
#include <sodium.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace troupe::http {
// Lets gtest print failures by name.
void PrintTo(jwt_failure failure, std::ostream* out) {
  *out << to_string(failure);
}
} // namespace troupe::http

using troupe::http::access_claims;
using troupe::http::jwt_codec;
using troupe::http::jwt_failure;
using troupe::http::jwt_settings;

namespace {

constexpr int64_t now = 1'700'000'000;
const std::string secret = "troupe-unit-test-secret-0123456789abcdef";
const std::string standard_header = R"({"alg":"HS256","typ":"JWT"})";

// A 2048-bit RSA public key: what an attacker knows and would use as the HMAC key in an RS256/HS256 confusion.
const std::string rsa_public_key_pem = R"(-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1xftQW4+gojAfHYGCgkF
1KhlzD4KsohEJpu5rfOFYZtZ8VK4X/PFSpA5/6+UREoQgjPdPyHzkWdRX6on3w/r
nMZr2eDWaXlq+rxRGtnlvMnZAZcz1Yqo+hz20VmpTpGsxNvlT3ej8wGNtXIHUxNK
ebuh+gkJMFi1ZDvlgQDosdxb4w4jaffDBPJ3XPgBG9Mg5gnzzz1WWTwaTqQHZtK2
yUr7Xzk/tYYfpVQLC3n2oBz8F6y5SpJnVMO8uORoyeIIzcja1rWT2fNDdaoAHSxJ
SyA0sWwtBbnZjGNqJCYeO6oMoGuGY3nWRjs6hs7KUh2yf2KO+T/uKm7oP1bF1uOO
cwIDAQAB
-----END PUBLIC KEY-----
)";

std::string base64url(std::string_view bytes) {
  std::string out(sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(out.find('\0'));
  return out;
}

std::string base64url_decode(std::string_view text) {
  std::string out(text.size(), '\0');
  size_t length = 0;
  sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                    &length, nullptr, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(length);
  return out;
}

enum class hmac { sha256, sha512 };

std::string mac(hmac kind, std::string_view key, std::string_view message) {
  const auto* key_bytes = reinterpret_cast<const unsigned char*>(key.data());
  const auto* message_bytes = reinterpret_cast<const unsigned char*>(message.data());
  if (kind == hmac::sha256) {
    unsigned char out[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state state;
    crypto_auth_hmacsha256_init(&state, key_bytes, key.size());
    crypto_auth_hmacsha256_update(&state, message_bytes, message.size());
    crypto_auth_hmacsha256_final(&state, out);
    return std::string(reinterpret_cast<char*>(out), sizeof out);
  }
  unsigned char out[crypto_auth_hmacsha512_BYTES];
  crypto_auth_hmacsha512_state state;
  crypto_auth_hmacsha512_init(&state, key_bytes, key.size());
  crypto_auth_hmacsha512_update(&state, message_bytes, message.size());
  crypto_auth_hmacsha512_final(&state, out);
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

/// "header.payload" of a hand-made token.
std::string signing_input(std::string_view header_json, std::string_view payload_json) {
  return base64url(header_json) + "." + base64url(payload_json);
}

/// A hand-made token MACed with `key`.
std::string forge(std::string_view header_json, std::string_view payload_json, std::string_view key,
                  hmac kind = hmac::sha256) {
  const std::string input = signing_input(header_json, payload_json);
  return input + "." + base64url(mac(kind, key, input));
}

/// Claim name -> raw JSON value; a valid access token's payload for our settings at `now`.
using claim_map = std::map<std::string, std::string>;
claim_map standard_claims() {
  return {{"iss", R"("troupe")"},       {"aud", R"("troupe-api")"},
          {"sub", R"("user-42")"},      {"jti", R"("0123456789abcdef0123456789abcdef")"},
          {"role", R"("member")"},      {"iat", std::to_string(now)},
          {"nbf", std::to_string(now)}, {"exp", std::to_string(now + 900)}};
}

std::string to_json(const claim_map& claims) {
  std::string json = "{";
  for (const auto& [name, value] : claims)
    json += (json.size() > 1 ? ",\"" : "\"") + name + "\":" + value;
  return json + "}";
}

/// A hand-made token with our header and secret whose claims are the standard ones with `changes` applied
/// (an empty value removes the claim).
std::string token_with(const claim_map& changes) {
  claim_map claims = standard_claims();
  for (const auto& [name, value] : changes) {
    if (value.empty())
      claims.erase(name);
    else
      claims[name] = value;
  }
  return forge(standard_header, to_json(claims), secret);
}

/// A token MACed with HS384 by libjwt (libsodium has no HMAC-SHA-384).
std::string libjwt_hs384(const std::string& payload_json, const std::string& key) {
  jwt_t* token = nullptr;
  EXPECT_EQ(jwt_new(&token), 0);
  EXPECT_EQ(jwt_add_grants_json(token, payload_json.c_str()), 0);
  EXPECT_EQ(
    jwt_set_alg(token, JWT_ALG_HS384, reinterpret_cast<const unsigned char*>(key.data()), static_cast<int>(key.size())),
    0);
  char* encoded = jwt_encode_str(token);
  std::string result = encoded ? encoded : "";
  std::free(encoded);
  jwt_free(token);
  return result;
}

class Jwt : public ::testing::Test {
protected:
  static jwt_settings settings() {
    jwt_settings s;
    s.secret = secret;
    return s;
  }

  /// The failure verify() reports, or nullopt if it accepts the token.
  std::optional<jwt_failure> rejection(std::string_view token, int64_t at = now) const {
    auto result = codec.verify(token, at);
    if (auto* failure = std::get_if<jwt_failure>(&result))
      return *failure;
    return std::nullopt;
  }

  access_claims accepted(std::string_view token) const {
    auto result = codec.verify(token, now);
    if (auto* failure = std::get_if<jwt_failure>(&result)) {
      ADD_FAILURE() << "rejected as " << to_string(*failure) << ": " << token;
      return {};
    }
    return std::get<access_claims>(result);
  }

  jwt_codec codec{settings()};
};

// issue() then verify() returns the claims it was given, and the token carries the documented header and claims.
TEST_F(Jwt, IssuedTokenVerifiesWithItsClaims) {
  const std::string token = codec.issue("user-42", "admin", "jti-1", now);
  const access_claims claims = accepted(token);
  EXPECT_EQ(claims.subject, "user-42");
  EXPECT_EQ(claims.role, "admin");
  EXPECT_EQ(claims.jti, "jti-1");
  EXPECT_EQ(claims.issued_at, now);
  EXPECT_EQ(claims.expires_at, now + 900);

  const std::string header = base64url_decode(token.substr(0, token.find('.')));
  EXPECT_EQ(header, standard_header);
  const size_t payload_start = token.find('.') + 1;
  const std::string payload = base64url_decode(token.substr(payload_start, token.rfind('.') - payload_start));
  for (const char* name : {"iss", "aud", "iat", "nbf", "exp"}) {
    const std::string claim = '"' + std::string(name) + "\":" + standard_claims()[name];
    EXPECT_NE(payload.find(claim), std::string::npos) << claim << " in " << payload;
  }
}

// Claims with quotes, non-ASCII and \u escapes survive issue/verify and hand-made JSON escapes are decoded.
TEST_F(Jwt, DecodesEscapedClaims) {
  EXPECT_EQ(accepted(codec.issue("us\"er\\é😀", "", "j", now)).subject, "us\"er\\é😀");
  EXPECT_EQ(accepted(token_with({{"sub", R"("\u00e9\ud83d\ude00\n\/")"}})).subject, "é😀\n/");
}

// A hand-made token with the standard claims is accepted: the forging helpers make tokens the codec would take.
TEST_F(Jwt, AcceptsHandMadeTokenWithOurSecret) {
  const access_claims claims = accepted(token_with({}));
  EXPECT_EQ(claims.subject, "user-42");
  EXPECT_EQ(claims.role, "member");
}

// alg "none" in any spelling is refused: unsigned, with a bogus signature, or even with a valid MAC.
TEST_F(Jwt, RejectsAlgNone) {
  for (const std::string alg : {"none", "None", "NONE"}) {
    const std::string header = R"({"alg":")" + alg + R"(","typ":"JWT"})";
    const std::string input = signing_input(header, to_json(standard_claims()));
    EXPECT_EQ(rejection(input), jwt_failure::malformed) << alg;
    EXPECT_EQ(rejection(input + "."), jwt_failure::malformed) << alg;
    EXPECT_EQ(rejection(input + "." + base64url("bogus")), jwt_failure::wrong_algorithm) << alg;
    EXPECT_EQ(rejection(forge(header, to_json(standard_claims()), secret)), jwt_failure::wrong_algorithm) << alg;
  }
}

// An HS256 token MACed with a key other than our secret has a bad signature.
TEST_F(Jwt, RejectsHs256SignedWithAnotherKey) {
  EXPECT_EQ(rejection(forge(standard_header, to_json(standard_claims()), secret + "x")), jwt_failure::bad_signature);
}

// HS512 and HS384 tokens are refused even when MACed with our secret: the algorithm is pinned to HS256.
TEST_F(Jwt, RejectsOtherHmacAlgorithmsWithOurKey) {
  const std::string payload = to_json(standard_claims());
  EXPECT_EQ(rejection(forge(R"({"alg":"HS512","typ":"JWT"})", payload, secret, hmac::sha512)),
            jwt_failure::wrong_algorithm);
  const std::string hs384 = libjwt_hs384(payload, secret);
  ASSERT_FALSE(hs384.empty());
  EXPECT_EQ(rejection(hs384), jwt_failure::wrong_algorithm);
}

// RS256/HS256 confusion: an HS256 token MACed with the RSA public key fails (our key is the secret), and a token
// declaring RS256 is refused for its algorithm before any key is involved.
TEST_F(Jwt, RejectsRsaHmacConfusion) {
  const std::string payload = to_json(standard_claims());
  EXPECT_EQ(rejection(forge(standard_header, payload, rsa_public_key_pem)), jwt_failure::bad_signature);
  const std::string rs256 =
    signing_input(R"({"alg":"RS256","typ":"JWT"})", payload) + "." + base64url(std::string(256, '\x5a'));
  EXPECT_EQ(rejection(rs256), jwt_failure::wrong_algorithm);
}

// exp is honoured with 30 s of leeway: 29 s past is accepted, 30 s and more is expired.
TEST_F(Jwt, AppliesLeewayToExpiry) {
  EXPECT_EQ(rejection(token_with({{"exp", std::to_string(now - 29)}})), std::nullopt);
  EXPECT_EQ(rejection(token_with({{"exp", std::to_string(now - 30)}})), jwt_failure::expired);
  EXPECT_EQ(rejection(token_with({{"exp", std::to_string(now - 3600)}})), jwt_failure::expired);
  EXPECT_EQ(rejection(codec.issue("u", "r", "j", now), now + 900 + 29), std::nullopt);
  EXPECT_EQ(rejection(codec.issue("u", "r", "j", now), now + 900 + 30), jwt_failure::expired);
}

// nbf more than the leeway in the future is not yet valid; within the leeway it is accepted.
TEST_F(Jwt, RejectsNotBeforeInTheFuture) {
  EXPECT_EQ(rejection(token_with({{"nbf", std::to_string(now + 30)}})), std::nullopt);
  EXPECT_EQ(rejection(token_with({{"nbf", std::to_string(now + 31)}})), jwt_failure::not_yet_valid);
}

// iat more than the leeway in the future is not yet valid; within the leeway it is accepted.
TEST_F(Jwt, RejectsIssuedAtInTheFuture) {
  EXPECT_EQ(rejection(token_with({{"iat", std::to_string(now + 30)}})), std::nullopt);
  EXPECT_EQ(rejection(token_with({{"iat", std::to_string(now + 31)}})), jwt_failure::not_yet_valid);
}

// iss must be present and equal ours.
TEST_F(Jwt, RejectsWrongIssuer) {
  EXPECT_EQ(rejection(token_with({{"iss", R"("evil")"}})), jwt_failure::wrong_issuer);
  EXPECT_EQ(rejection(token_with({{"iss", R"("Troupe")"}})), jwt_failure::wrong_issuer);
  EXPECT_EQ(rejection(token_with({{"iss", ""}})), jwt_failure::wrong_issuer);
}

// aud must be present and equal ours.
TEST_F(Jwt, RejectsWrongAudience) {
  EXPECT_EQ(rejection(token_with({{"aud", R"("other-api")"}})), jwt_failure::wrong_audience);
  EXPECT_EQ(rejection(token_with({{"aud", ""}})), jwt_failure::wrong_audience);
  EXPECT_EQ(rejection(token_with({{"aud", "[]"}})), jwt_failure::wrong_audience);
}

// aud may be an array: accepted if it contains ours, rejected if not.
TEST_F(Jwt, ChecksAudienceArrays) {
  EXPECT_EQ(rejection(token_with({{"aud", R"(["billing","troupe-api"])"}})), std::nullopt);
  EXPECT_EQ(rejection(token_with({{"aud", R"(["billing","troupe-api-v2"])"}})), jwt_failure::wrong_audience);
}

// Changing a claim while keeping the signature breaks the signature.
TEST_F(Jwt, RejectsTamperedPayload) {
  const std::string token = codec.issue("user-42", "member", "jti-1", now);
  const size_t first_dot = token.find('.'), last_dot = token.rfind('.');
  std::string payload = base64url_decode(token.substr(first_dot + 1, last_dot - first_dot - 1));
  payload.replace(payload.find("member"), 6, "admin");
  const std::string tampered = token.substr(0, first_dot + 1) + base64url(payload) + token.substr(last_dot);
  EXPECT_EQ(rejection(tampered), jwt_failure::bad_signature);
}

// A token whose signature segment is stripped ("h.p." or "h.p") is refused before libjwt sees it.
TEST_F(Jwt, RejectsStrippedSignature) {
  const std::string token = codec.issue("user-42", "member", "jti-1", now);
  const std::string input = token.substr(0, token.rfind('.'));
  EXPECT_EQ(rejection(input + "."), jwt_failure::malformed);
  EXPECT_EQ(rejection(input), jwt_failure::malformed);
}

// Anything but exactly three non-empty segments is malformed.
TEST_F(Jwt, RejectsWrongSegmentCount) {
  const std::string token = codec.issue("user-42", "member", "jti-1", now);
  EXPECT_EQ(rejection(""), jwt_failure::malformed);
  EXPECT_EQ(rejection(token.substr(0, token.find('.'))), jwt_failure::malformed);
  EXPECT_EQ(rejection(token + ".AAAA"), jwt_failure::malformed);
  EXPECT_EQ(rejection(token + "."), jwt_failure::malformed);
  EXPECT_EQ(rejection("." + token), jwt_failure::malformed);
  EXPECT_EQ(rejection("a..b"), jwt_failure::malformed);
}

// Characters outside base64url (standard base64, padding, whitespace, non-ASCII, NUL) make a token malformed.
TEST_F(Jwt, RejectsCharactersOutsideBase64url) {
  const std::string token = codec.issue("user-42", "member", "jti-1", now);
  const std::vector<std::string> outside_alphabet = {"+", "/", "=", " ", "\n", "\xc3\xa9", std::string(1, '\0')};
  for (const std::string& bad : outside_alphabet) {
    for (size_t at : {size_t{0}, token.find('.') + 1, token.size()})
      EXPECT_EQ(rejection(std::string(token).insert(at, bad)), jwt_failure::malformed) << at;
  }
  // Padding on the header, although libjwt would accept it.
  const std::string input = base64url(standard_header) + "=." + base64url(to_json(standard_claims()));
  EXPECT_EQ(rejection(input + "." + base64url(mac(hmac::sha256, secret, input))), jwt_failure::malformed);
}

// A base64url signature with non-zero unused bits (another spelling of the same MAC) is refused.
TEST_F(Jwt, RejectsNonCanonicalSignatureEncoding) {
  std::string token = codec.issue("user-42", "member", "jti-1", now);
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  token.back() = alphabet[alphabet.find(token.back()) | 1]; // 43 chars encode 32 bytes + 2 unused bits
  EXPECT_EQ(rejection(token), jwt_failure::bad_signature);
}

// Tokens longer than max_token_bytes are refused before decoding; exactly the limit is fine.
TEST_F(Jwt, RejectsTokensOverTheSizeLimit) {
  const std::string huge = token_with({{"pad", '"' + std::string(7000, 'x') + '"'}});
  ASSERT_GT(huge.size(), 8192u);
  EXPECT_EQ(rejection(huge), jwt_failure::too_large);
  EXPECT_EQ(rejection(std::string(8193, 'A')), jwt_failure::too_large);

  const std::string token = token_with({});
  jwt_settings limited = settings();
  limited.max_token_bytes = token.size();
  EXPECT_TRUE(std::holds_alternative<access_claims>(jwt_codec(limited).verify(token, now)));
  limited.max_token_bytes = token.size() - 1;
  EXPECT_EQ(std::get<jwt_failure>(jwt_codec(limited).verify(token, now)), jwt_failure::too_large);
}

// Hostile kid values never select a key: tokens MACed with an empty key (/dev/null's content) or the kid itself
// are bad signatures, and a token MACed with our secret is accepted whatever its kid says.
TEST_F(Jwt, IgnoresHostileKid) {
  const std::string payload = to_json(standard_claims());
  const std::vector<std::string> hostile_kids = {"../../../../dev/null", "' OR 1=1 --", std::string(5000, 'k')};
  for (const std::string& kid : hostile_kids) {
    const std::string header = R"({"alg":"HS256","typ":"JWT","kid":")" + kid + R"("})";
    EXPECT_EQ(rejection(forge(header, payload, "")), jwt_failure::bad_signature) << kid.substr(0, 20);
    EXPECT_EQ(rejection(forge(header, payload, kid)), jwt_failure::bad_signature) << kid.substr(0, 20);
    EXPECT_EQ(rejection(forge(header, payload, secret)), std::nullopt) << kid.substr(0, 20);
  }
  const std::string jku = R"({"alg":"HS256","jku":"https://evil.example/jwks","jwk":{"kty":"oct","k":""}})";
  EXPECT_EQ(rejection(forge(jku, payload, "")), jwt_failure::bad_signature);
}

// sub, jti and exp are required; an empty sub or jti counts as missing.
TEST_F(Jwt, RejectsMissingRequiredClaims) {
  for (const char* claim : {"sub", "jti", "exp"})
    EXPECT_EQ(rejection(token_with({{claim, ""}})), jwt_failure::missing_claim) << claim;
  EXPECT_EQ(rejection(token_with({{"sub", R"("")"}})), jwt_failure::missing_claim);
  EXPECT_EQ(rejection(token_with({{"jti", R"("")"}})), jwt_failure::missing_claim);
}

// A claim we use with the wrong JSON type is malformed, not silently read as 0 or "".
TEST_F(Jwt, RejectsClaimsOfTheWrongType) {
  const std::vector<std::pair<std::string, std::string>> wrong = {{"exp", R"("1700000900")"},
                                                                  {"exp", "1.7e9"},
                                                                  {"exp", "1" + std::string(30, '0')},
                                                                  {"nbf", R"("1800000000")"},
                                                                  {"iat", "true"},
                                                                  {"sub", "42"},
                                                                  {"jti", "null"},
                                                                  {"role", "[]"},
                                                                  {"aud", "1"},
                                                                  {"aud", R"(["troupe-api",1])"},
                                                                  {"iss", "{}"}};
  for (const auto& [name, value] : wrong)
    EXPECT_EQ(rejection(token_with({{name, value}})), jwt_failure::malformed) << name << "=" << value;
}

// A correctly MACed token whose payload or header is not a JSON object, or whose typ libjwt refuses, is malformed.
TEST_F(Jwt, RejectsBadlyFormedContentWithValidMac) {
  EXPECT_EQ(rejection(forge(standard_header, "not json", secret)), jwt_failure::malformed);
  EXPECT_EQ(rejection(forge(standard_header, "[1,2]", secret)), jwt_failure::malformed);
  EXPECT_EQ(rejection(forge(R"({"alg":"HS256","typ":"at+jwt"})", to_json(standard_claims()), secret)),
            jwt_failure::malformed);
  EXPECT_EQ(rejection(forge("not json", to_json(standard_claims()), secret)), jwt_failure::malformed);
  EXPECT_EQ(rejection(forge(R"(["HS256"])", to_json(standard_claims()), secret)), jwt_failure::malformed);
  EXPECT_EQ(rejection(forge(R"({"alg":"HS256"} x)", to_json(standard_claims()), secret)), jwt_failure::malformed);
}

// The header must carry one alg, exactly the string "HS256": duplicates are malformed (JSON parsers disagree on
// which wins), a missing or non-string alg is the wrong algorithm.
TEST_F(Jwt, ReadsAlgStrictly) {
  const std::string payload = to_json(standard_claims());
  EXPECT_EQ(rejection(forge(R"({"alg":"HS256","alg":"none"})", payload, secret)), jwt_failure::malformed);
  EXPECT_EQ(rejection(forge(R"({"alg":"none","alg":"HS256"})", payload, secret)), jwt_failure::malformed);
  EXPECT_EQ(rejection(forge(R"({"typ":"JWT"})", payload, secret)), jwt_failure::wrong_algorithm);
  EXPECT_EQ(rejection(forge(R"({"alg":256})", payload, secret)), jwt_failure::wrong_algorithm);
  EXPECT_EQ(rejection(forge(R"({"alg":"hs256"})", payload, secret)), jwt_failure::wrong_algorithm);
  EXPECT_EQ(rejection(forge(R"({"alg":"HS256 "})", payload, secret)), jwt_failure::wrong_algorithm);
  // An escaped spelling of "HS256" is still HS256, and a header without typ is accepted (libjwt allows it).
  EXPECT_EQ(rejection(forge(R"({"\u0061lg":"HS\u0032\u0035\u0036"})", payload, secret)), std::nullopt);
}

/// `{"alg":"HS256","x":[[...]]}` whose arrays and objects nest `depth` deep (json::parse's depth: the object is 1).
std::string header_nested(int depth) {
  return R"({"alg":"HS256","x":)" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
}

// The header is read by the project's JSON reader (config/json.hpp) with the checks of the hand-written reader it
// replaced (strict syntax, one value, bounded nesting, no repeated alg) and the ones that reader adds: no key twice
// at all, UTF-8 only, no NUL, numbers in range. A byte order mark, which json::parse would skip, is refused. Each of
// these tokens carries a valid MAC, so only the header check can refuse it.
TEST_F(Jwt, ReadsTheHeaderWithTheSafeJsonReader) {
  const std::string payload = to_json(standard_claims());
  EXPECT_EQ(rejection(forge(header_nested(16), payload, secret)), std::nullopt);
  EXPECT_EQ(rejection(forge(header_nested(17), payload, secret)), jwt_failure::malformed);
  EXPECT_EQ(rejection(forge("\xEF\xBB\xBF" + standard_header, payload, secret)), jwt_failure::malformed);
  EXPECT_EQ(rejection(forge(R"({"alg":"HS256","typ":"JWT","typ":"JWT"})", payload, secret)), jwt_failure::malformed);
  EXPECT_EQ(rejection(forge(R"({"alg":"HS256","kid":")" + std::string("\xFF") + R"("})", payload, secret)),
            jwt_failure::malformed);
  EXPECT_EQ(rejection(forge(R"({"alg":"HS256","kid":"\udc00"})", payload, secret)), jwt_failure::malformed);
  EXPECT_EQ(rejection(forge(std::string(R"({"alg":"HS256"})") + '\0', payload, secret)), jwt_failure::malformed);
  EXPECT_EQ(rejection(forge(R"({"alg":"HS256","x":1e999})", payload, secret)), jwt_failure::malformed);
  EXPECT_EQ(rejection(forge(R"({"alg":"HS256",})", payload, secret)), jwt_failure::malformed);
  EXPECT_EQ(rejection(forge(R"({"alg":"HS256"}{})", payload, secret)), jwt_failure::malformed);
  // alg is compared with all its bytes: an escaped NUL cannot cut "HS256\u0000none" down to "HS256".
  EXPECT_EQ(rejection(forge(R"({"alg":"HS256\u0000none"})", payload, secret)), jwt_failure::wrong_algorithm);
}

// The payload is read the same way: an unknown claim may nest 16 deep in all, no deeper; integer claims must fit
// int64_t and have no fraction.
TEST_F(Jwt, ReadsThePayloadWithTheSafeJsonReader) {
  EXPECT_EQ(rejection(token_with({{"x", std::string(15, '[') + std::string(15, ']')}})), std::nullopt);
  EXPECT_EQ(rejection(token_with({{"x", std::string(16, '[') + std::string(16, ']')}})), jwt_failure::malformed);
  EXPECT_EQ(rejection(token_with({{"exp", "9223372036854775808"}})), jwt_failure::malformed);
  EXPECT_EQ(rejection(token_with({{"exp", std::to_string(now + 900) + ".0"}})), jwt_failure::malformed);
  EXPECT_EQ(rejection(token_with({{"aud", R"(["other","troupe-api"])"}})), std::nullopt);
}

// A secret shorter than 32 bytes, a non-positive ttl or a negative leeway is refused at construction.
TEST_F(Jwt, RejectsInvalidSettings) {
  jwt_settings invalid;
  invalid.secret = std::string(31, 's');
  EXPECT_THROW(jwt_codec{invalid}, std::invalid_argument);
  invalid.secret += 's';
  EXPECT_NO_THROW(jwt_codec{invalid});
  invalid.access_ttl = std::chrono::seconds{0};
  EXPECT_THROW(jwt_codec{invalid}, std::invalid_argument);
  invalid.access_ttl = std::chrono::seconds{900};
  invalid.leeway = std::chrono::seconds{-1};
  EXPECT_THROW(jwt_codec{invalid}, std::invalid_argument);
}

// issue() refuses claims libjwt would truncate (NUL) or cannot encode (invalid UTF-8).
TEST_F(Jwt, IssueRejectsUnencodableClaims) {
  EXPECT_THROW(codec.issue(std::string("a\0b", 3), "r", "j", now), std::invalid_argument);
  EXPECT_THROW(codec.issue("\xff\xfe", "r", "j", now), std::invalid_argument);
}

// random_token_id() gives 32 lower-case hex characters, different each time.
TEST_F(Jwt, RandomTokenIdsAreHexAndDistinct) {
  const std::string a = troupe::http::random_token_id(), b = troupe::http::random_token_id();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

// Every failure has a distinct snake_case name.
TEST_F(Jwt, NamesEveryFailure) {
  const std::vector<std::string> expected = {"too_large",     "malformed",      "wrong_algorithm",
                                             "bad_signature", "expired",        "not_yet_valid",
                                             "wrong_issuer",  "wrong_audience", "missing_claim"};
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(to_string(static_cast<jwt_failure>(i)), expected[i]);
}

// One codec serves several threads at once with the same results as one thread.
TEST_F(Jwt, VerifiesConcurrently) {
  const std::string good = codec.issue("user-42", "member", "jti-1", now);
  const std::string forged = forge(standard_header, to_json(standard_claims()), rsa_public_key_pem);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        if (!std::holds_alternative<access_claims>(codec.verify(good, now)))
          ++wrong;
        if (rejection(forged) != jwt_failure::bad_signature)
          ++wrong;
      }
    });
  for (auto& thread : threads)
    thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

} // namespace
