#pragma once
// Random tokens, base64 and constant-time comparison for credentials (libsodium). SHA-256 has one implementation,
// troupe::sha256_hex in config/digest.hpp (OpenSSL), included here for the routes that hash tokens and bodies.

#include "config/digest.hpp"

#include <string>
#include <string_view>

namespace troupe {

/// `bytes` random bytes (libsodium randombytes) as unpadded base64url.
std::string random_url_token(size_t bytes);

/// Decodes standard base64 (RFC 4648 section 4, padded or not) into `out`; false if `text` is not base64.
bool base64_decode(std::string_view text, std::string& out);

/// Encodes `bytes` as padded standard base64 (RFC 4648 section 4).
std::string base64_encode(std::string_view bytes);

/// HMAC-SHA-256 of `message` under `key` (libsodium), as lower-case hex.
std::string hmac_sha256_hex(std::string_view key, std::string_view message);

/// Constant-time equality of two strings of the same length (false when the lengths differ).
bool constant_time_equal(std::string_view a, std::string_view b);

} // namespace troupe
