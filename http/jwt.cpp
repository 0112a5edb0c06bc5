#include "http/jwt.hpp"

#include "config/json.hpp"

#include <jwt.h>
#include <sodium.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>

namespace troupe::http {

namespace {

struct jwt_deleter {
  void operator()(jwt_t* token) const { jwt_free(token); }
};
using jwt_ptr = std::unique_ptr<jwt_t, jwt_deleter>;

struct malloc_deleter {
  void operator()(char* text) const { std::free(text); }
};
using malloced_string = std::unique_ptr<char, malloc_deleter>;

constexpr size_t hs256_mac_bytes = crypto_auth_hmacsha256_BYTES;
constexpr size_t min_secret_bytes = 32;

/// sodium_init() once per process; throws std::runtime_error if it fails.
void ensure_sodium() {
  static const bool ready = sodium_init() >= 0;
  if (!ready)
    throw std::runtime_error("libsodium could not be initialised");
}

constexpr bool is_base64url(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/// Splits `token` into exactly three non-empty segments of unpadded base64url; false otherwise.
bool split_segments(std::string_view token, std::array<std::string_view, 3>& segments) {
  size_t start = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const size_t end = i + 1 < segments.size() ? token.find('.', start) : token.size();
    if (end == std::string_view::npos)
      return false;
    segments[i] = token.substr(start, end - start);
    // A length of 4n+1 cannot be base64. A fourth segment shows up as a '.' in the third.
    if (segments[i].empty() || segments[i].size() % 4 == 1)
      return false;
    for (char c : segments[i])
      if (!is_base64url(c))
        return false;
    start = end + 1;
  }
  return true;
}

/// Decodes unpadded base64url (libsodium: unused trailing bits must be zero); false on any error.
bool base64url_decode(std::string_view text, unsigned char* out, size_t capacity, size_t& length) {
  const char* end = nullptr;
  return sodium_base642bin(out, capacity, text.data(), text.size(), nullptr, &length, &end,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING)
           == 0
         && end == text.data() + text.size();
}

/// Arrays and objects may nest this deep in a header or payload (json::parse's depth: `{"a":[1]}` is 2). Ours are
/// flat objects; the bound keeps a hostile header's parse small.
constexpr size_t max_json_depth = 16;

/// The JSON text of a decoded header or payload, parsed by the project's safe reader (config/json.hpp): strict
/// RFC 8259 syntax, UTF-8 only, no NUL byte, no key twice in one object, nesting bounded by max_json_depth. A UTF-8
/// byte order mark, which json::parse would skip, is refused: no JOSE implementation writes one, and a text that
/// begins with one is not the JSON object RFC 7515 asks for. nullopt unless the text is such an object.
std::optional<json::parse_result> read_object(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF")
    return std::nullopt;
  auto parsed = json::parse(text, max_json_depth);
  if (!parsed || !parsed->IsObject())
    return std::nullopt;
  return std::optional<json::parse_result>{std::move(parsed)};
}

/// The value's string, all of its bytes (a \u0000 escape included): never cut at a NUL as a C string would be.
std::string_view string_of(const rapidjson::Value& value) {
  return {value.GetString(), value.GetStringLength()};
}

/// Checks the decoded header: malformed unless it is a JSON object (read_object: so no second "alg", nor any other
/// repeated key); wrong_algorithm unless its alg is exactly the string "HS256". Every other field (typ, kid, jku,
/// x5u, jwk, ...) is left unread.
std::optional<jwt_failure> check_header(std::string_view header_json) {
  const auto header = read_object(header_json);
  if (!header)
    return jwt_failure::malformed;
  const auto alg = (*header)->FindMember("alg");
  if (alg == (*header)->MemberEnd() || !alg->value.IsString() || string_of(alg->value) != "HS256")
    return jwt_failure::wrong_algorithm;
  return std::nullopt;
}

/// True if `signature` (base64url) is HMAC-SHA256(secret, signed_part); compared in constant time.
bool mac_matches(const std::string& secret, std::string_view signed_part, std::string_view signature) {
  std::array<unsigned char, hs256_mac_bytes> presented{};
  size_t presented_length = 0;
  if (!base64url_decode(signature, presented.data(), presented.size(), presented_length)
      || presented_length != presented.size())
    return false;
  std::array<unsigned char, hs256_mac_bytes> expected{};
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(secret.data()), secret.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size());
  crypto_auth_hmacsha256_final(&state, expected.data());
  sodium_memzero(&state, sizeof state);
  return sodium_memcmp(expected.data(), presented.data(), expected.size()) == 0;
}

/// The payload claims we look at, as found (absent ones empty / nullopt).
struct payload_claims {
  std::string subject, jti, role;
  std::optional<std::string> issuer;
  bool audience_matches = false;
  std::optional<int64_t> expires_at, not_before, issued_at;
};

/// Reads the payload JSON (as libjwt re-serialised it). False if it is not an object (read_object) or a claim we use
/// has the wrong type: sub, jti, role, iss strings; exp, nbf, iat integers that fit int64_t (no fraction or
/// exponent: 1.0 and 1e3 are refused); aud a string or an array of strings.
bool read_payload(std::string_view payload_json, const std::string& audience, payload_claims& claims) {
  const auto payload = read_object(payload_json);
  if (!payload)
    return false;
  const auto string_claim = [](const rapidjson::Value& value, std::string& out) {
    if (!value.IsString())
      return false;
    out.assign(string_of(value));
    return true;
  };
  const auto integer_claim = [](const rapidjson::Value& value, std::optional<int64_t>& out) {
    if (!value.IsInt64()) // json::parse keeps integers as integers; a double is never an Int64
      return false;
    out = value.GetInt64();
    return true;
  };
  const auto audience_claim = [&](const rapidjson::Value& value) {
    if (value.IsString()) {
      claims.audience_matches = string_of(value) == audience;
      return true;
    }
    if (!value.IsArray())
      return false;
    for (const auto& element : value.GetArray()) {
      if (!element.IsString())
        return false;
      claims.audience_matches = claims.audience_matches || string_of(element) == audience;
    }
    return true;
  };
  for (const auto& member : (*payload)->GetObject()) {
    const auto key = string_of(member.name);
    const auto& value = member.value;
    bool ok = true;
    if (key == "sub")
      ok = string_claim(value, claims.subject);
    else if (key == "jti")
      ok = string_claim(value, claims.jti);
    else if (key == "role")
      ok = string_claim(value, claims.role);
    else if (key == "iss")
      ok = string_claim(value, claims.issuer.emplace());
    else if (key == "aud")
      ok = audience_claim(value);
    else if (key == "exp")
      ok = integer_claim(value, claims.expires_at);
    else if (key == "nbf")
      ok = integer_claim(value, claims.not_before);
    else if (key == "iat")
      ok = integer_claim(value, claims.issued_at);
    if (!ok)
      return false;
  }
  return true;
}

} // namespace

const char* to_string(jwt_failure failure) {
  switch (failure) {
  case jwt_failure::too_large:
    return "too_large";
  case jwt_failure::malformed:
    return "malformed";
  case jwt_failure::wrong_algorithm:
    return "wrong_algorithm";
  case jwt_failure::bad_signature:
    return "bad_signature";
  case jwt_failure::expired:
    return "expired";
  case jwt_failure::not_yet_valid:
    return "not_yet_valid";
  case jwt_failure::wrong_issuer:
    return "wrong_issuer";
  case jwt_failure::wrong_audience:
    return "wrong_audience";
  case jwt_failure::missing_claim:
    return "missing_claim";
  }
  return "unknown";
}

jwt_codec::jwt_codec(jwt_settings settings) : settings_(std::move(settings)) {
  if (settings_.secret.size() < min_secret_bytes)
    throw std::invalid_argument("jwt secret must be at least 32 bytes");
  if (settings_.access_ttl.count() <= 0 || settings_.leeway.count() < 0)
    throw std::invalid_argument("jwt access_ttl must be positive and leeway not negative");
  ensure_sodium();
}

std::string jwt_codec::issue(const std::string& subject, const std::string& role, const std::string& jti,
                             int64_t now_unix) const {
  for (const std::string* value : {&subject, &role, &jti})
    if (value->find('\0') != std::string::npos)
      throw std::invalid_argument("jwt claim contains a NUL byte");
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0)
    throw std::runtime_error("jwt_new failed");
  jwt_ptr token(raw);
  // Each libjwt call runs only while the previous ones succeeded; jansson rejects invalid UTF-8 with EINVAL.
  int rc = 0;
  const auto add = [&](const char* name, const std::string& value) {
    if (rc == 0)
      rc = jwt_add_grant(token.get(), name, value.c_str());
  };
  const auto add_int = [&](const char* name, int64_t value) {
    if (rc == 0)
      rc = jwt_add_grant_int(token.get(), name, value);
  };
  add("iss", settings_.issuer);
  add("aud", settings_.audience);
  add("sub", subject);
  add("jti", jti);
  add("role", role);
  add_int("iat", now_unix);
  add_int("nbf", now_unix);
  add_int("exp", now_unix + settings_.access_ttl.count());
  if (rc == 0)
    rc = jwt_set_alg(token.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(settings_.secret.data()),
                     static_cast<int>(settings_.secret.size()));
  if (rc == EINVAL)
    throw std::invalid_argument("jwt claim rejected by libjwt (not valid UTF-8?)");
  if (rc != 0)
    throw std::runtime_error("libjwt could not build the token");
  malloced_string encoded(jwt_encode_str(token.get()));
  if (!encoded)
    throw std::runtime_error("jwt_encode_str failed");
  return encoded.get();
}

std::variant<access_claims, jwt_failure> jwt_codec::verify(std::string_view token, int64_t now_unix) const {
  // Size and shape, before anything is decoded.
  if (token.size() > settings_.max_token_bytes)
    return jwt_failure::too_large;
  std::array<std::string_view, 3> segments;
  if (!split_segments(token, segments))
    return jwt_failure::malformed;

  // Algorithm, from the header as we read it: none, HS512, RS256 ... never reach libjwt.
  std::string header(segments[0].size() * 3 / 4 + 1, '\0');
  size_t header_length = 0;
  if (!base64url_decode(segments[0], reinterpret_cast<unsigned char*>(header.data()), header.size(), header_length))
    return jwt_failure::malformed;
  header.resize(header_length);
  if (const auto failure = check_header(header))
    return *failure;

  // Signature, in constant time with our secret (whatever kid/jku the header names).
  const std::string_view signed_part = token.substr(0, segments[0].size() + 1 + segments[1].size());
  if (!mac_matches(settings_.secret, signed_part, segments[2]))
    return jwt_failure::bad_signature;

  // libjwt verifies again, always with our secret (a NULL key would accept anything). The MAC matched, so a refusal
  // is about content: payload not JSON, typ other than "JWT".
  const std::string terminated(token);
  jwt_t* raw = nullptr;
  const int rc = jwt_decode(&raw, terminated.c_str(), reinterpret_cast<const unsigned char*>(settings_.secret.data()),
                            static_cast<int>(settings_.secret.size()));
  const jwt_ptr decoded(raw);
  if (rc != 0 || !decoded)
    return jwt_failure::malformed;
  if (jwt_get_alg(decoded.get()) != JWT_ALG_HS256)
    return jwt_failure::wrong_algorithm;
  const malloced_string payload_json(jwt_get_grants_json(decoded.get(), nullptr));
  payload_claims claims;
  if (!payload_json || !read_payload(payload_json.get(), settings_.audience, claims))
    return jwt_failure::malformed;

  // Registered claims. exp is compared as exp <= now - leeway so that a huge exp cannot overflow.
  const int64_t leeway = settings_.leeway.count();
  if (!claims.expires_at)
    return jwt_failure::missing_claim;
  if (*claims.expires_at <= now_unix - leeway)
    return jwt_failure::expired;
  if ((claims.not_before && *claims.not_before > now_unix + leeway)
      || (claims.issued_at && *claims.issued_at > now_unix + leeway))
    return jwt_failure::not_yet_valid;
  if (claims.issuer != settings_.issuer)
    return jwt_failure::wrong_issuer;
  if (!claims.audience_matches)
    return jwt_failure::wrong_audience;
  if (claims.subject.empty() || claims.jti.empty())
    return jwt_failure::missing_claim;
  return access_claims{std::move(claims.subject), std::move(claims.jti), std::move(claims.role),
                       claims.issued_at.value_or(0), *claims.expires_at};
}

std::string random_token_id() {
  ensure_sodium();
  std::array<unsigned char, 16> bytes{};
  randombytes_buf(bytes.data(), bytes.size());
  std::array<char, 2 * 16 + 1> hex{};
  sodium_bin2hex(hex.data(), hex.size(), bytes.data(), bytes.size());
  return std::string(hex.data(), 2 * 16);
}

} // namespace troupe::http
