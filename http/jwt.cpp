#include "http/jwt.hpp"

#include <jwt.h>
#include <sodium.h>

#include <array>
#include <cerrno>
#include <charconv>
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

/// A strict reader of the small JSON texts in a JWT (RFC 8259 syntax). Each function consumes one value at the
/// cursor and returns false on a syntax error or on a value of another type.
class json_reader {
public:
  explicit json_reader(std::string_view text) : text_(text) {}

  /// True if only whitespace is left.
  bool at_end() {
    peek();
    return pos_ == text_.size();
  }

  /// Skips whitespace and returns the next character, or '\0' at the end (a NUL is never valid there anyway).
  char peek() {
    while (pos_ < text_.size() && std::string_view(" \t\n\r").find(text_[pos_]) != std::string_view::npos)
      ++pos_;
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }

  /// Reads an object, calling on_member(key) with the cursor on each value; on_member must consume it.
  template <class OnMember>
  bool object(OnMember&& on_member) {
    if (!eat('{'))
      return false;
    if (eat('}'))
      return true;
    std::string key;
    do {
      if (!string(key) || !eat(':') || !on_member(key))
        return false;
    } while (eat(','));
    return eat('}');
  }

  /// Reads an array, calling on_element() with the cursor on each element; on_element must consume it.
  template <class OnElement>
  bool array(OnElement&& on_element) {
    if (!eat('['))
      return false;
    if (eat(']'))
      return true;
    do {
      if (!on_element())
        return false;
    } while (eat(','));
    return eat(']');
  }

  /// Reads a string, decoding escapes (\uXXXX and surrogate pairs to UTF-8).
  bool string(std::string& out) {
    if (!eat('"'))
      return false;
    out.clear();
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"')
        return true;
      if (static_cast<unsigned char>(c) < 0x20)
        return false;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ == text_.size())
        return false;
      const char escape = text_[pos_++];
      if (escape != 'u') {
        const size_t index = std::string_view("\"\\/bfnrt").find(escape);
        if (index == std::string_view::npos)
          return false;
        out += "\"\\/\b\f\n\r\t"[index];
        continue;
      }
      uint32_t code_point = 0;
      if (!hex4(code_point) || (code_point >= 0xDC00 && code_point <= 0xDFFF))
        return false;
      if (code_point >= 0xD800 && code_point <= 0xDBFF) {
        uint32_t low = 0;
        if (text_.substr(pos_, 2) != "\\u")
          return false;
        pos_ += 2;
        if (!hex4(low) || low < 0xDC00 || low > 0xDFFF)
          return false;
        code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
      }
      append_utf8(out, code_point);
    }
    return false;
  }

  /// Reads a number that is an integer (no fraction or exponent) fitting int64_t.
  bool integer(int64_t& out) {
    std::optional<int64_t> value;
    if (!number(value) || !value)
      return false;
    out = *value;
    return true;
  }

  /// Consumes any value, nested at most max_depth deep.
  bool skip(int depth = 0) {
    if (depth > max_depth)
      return false;
    std::string ignored;
    std::optional<int64_t> ignored_number;
    switch (peek()) {
    case '{':
      return object([&](const std::string&) { return skip(depth + 1); });
    case '[':
      return array([&] { return skip(depth + 1); });
    case '"':
      return string(ignored);
    case 't':
      return literal("true");
    case 'f':
      return literal("false");
    case 'n':
      return literal("null");
    default:
      return number(ignored_number);
    }
  }

private:
  static constexpr int max_depth = 16;

  bool eat(char c) {
    if (peek() != c)
      return false;
    ++pos_;
    return true;
  }

  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word)
      return false;
    pos_ += word.size();
    return true;
  }

  /// Reads the four hex digits of a \u escape.
  bool hex4(uint32_t& value) {
    constexpr std::string_view hex_digits = "0123456789abcdef0123456789ABCDEF";
    value = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      const size_t digit = pos_ < text_.size() ? hex_digits.find(text_[pos_]) : std::string_view::npos;
      if (digit == std::string_view::npos)
        return false;
      value = value * 16 + static_cast<uint32_t>(digit % 16);
    }
    return true;
  }

  static void append_utf8(std::string& out, uint32_t code_point) {
    if (code_point < 0x80) {
      out += static_cast<char>(code_point);
    } else if (code_point < 0x800) {
      out += static_cast<char>(0xC0 | (code_point >> 6));
      out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else if (code_point < 0x10000) {
      out += static_cast<char>(0xE0 | (code_point >> 12));
      out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code_point >> 18));
      out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code_point & 0x3F));
    }
  }

  /// Reads any JSON number; `value` holds it if it is an integer that fits int64_t.
  bool number(std::optional<int64_t>& value) {
    peek();
    const size_t start = pos_;
    const auto digits = [&] {
      size_t count = 0;
      for (; pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9'; ++pos_)
        ++count;
      return count;
    };
    const auto next_is = [&](std::string_view chars) {
      return pos_ < text_.size() && chars.find(text_[pos_]) != std::string_view::npos;
    };
    if (next_is("-"))
      ++pos_;
    const size_t integer_start = pos_;
    const size_t integer_digits = digits();
    if (integer_digits == 0 || (integer_digits > 1 && text_[integer_start] == '0'))
      return false;
    bool integral = true;
    if (next_is(".")) {
      ++pos_;
      integral = false;
      if (digits() == 0)
        return false;
    }
    if (next_is("eE")) {
      ++pos_;
      integral = false;
      if (next_is("+-"))
        ++pos_;
      if (digits() == 0)
        return false;
    }
    value.reset();
    int64_t parsed = 0;
    if (integral && std::from_chars(text_.data() + start, text_.data() + pos_, parsed).ec == std::errc{})
      value = parsed;
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

/// Checks the decoded header: malformed unless it is a JSON object with at most one "alg"; wrong_algorithm unless
/// that alg is exactly the string "HS256". Every other field (typ, kid, jku, x5u, jwk, ...) is skipped unread.
std::optional<jwt_failure> check_header(std::string_view header_json) {
  json_reader json(header_json);
  int alg_count = 0;
  bool alg_is_hs256 = false;
  std::string alg;
  const bool parsed = json.object([&](const std::string& key) {
    if (key != "alg")
      return json.skip();
    ++alg_count;
    if (json.peek() != '"')
      return json.skip();
    if (!json.string(alg))
      return false;
    alg_is_hs256 = alg == "HS256";
    return true;
  }) && json.at_end();
  if (!parsed || alg_count > 1)
    return jwt_failure::malformed;
  if (!alg_is_hs256)
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

/// Reads the payload JSON (as libjwt re-serialised it). False if it is not an object or a claim we use has the
/// wrong type: sub, jti, role, iss strings; exp, nbf, iat integers; aud a string or an array of strings.
bool read_payload(std::string_view payload_json, const std::string& audience, payload_claims& claims) {
  json_reader json(payload_json);
  std::string text;
  const auto read_audience = [&] {
    if (json.peek() != '[') {
      if (!json.string(text))
        return false;
      claims.audience_matches = text == audience;
      return true;
    }
    return json.array([&] {
      if (!json.string(text))
        return false;
      claims.audience_matches = claims.audience_matches || text == audience;
      return true;
    });
  };
  return json.object([&](const std::string& key) {
    if (key == "sub")
      return json.string(claims.subject);
    if (key == "jti")
      return json.string(claims.jti);
    if (key == "role")
      return json.string(claims.role);
    if (key == "iss")
      return json.string(claims.issuer.emplace());
    if (key == "aud")
      return read_audience();
    if (key == "exp")
      return json.integer(claims.expires_at.emplace());
    if (key == "nbf")
      return json.integer(claims.not_before.emplace());
    if (key == "iat")
      return json.integer(claims.issued_at.emplace());
    return json.skip();
  }) && json.at_end();
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
