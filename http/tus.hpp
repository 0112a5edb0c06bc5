#pragma once
// The tus 1.0.0 header grammar (https://tus.io/protocols/resumable-upload): pure parsing and formatting, used by
// http/upload_routes.cpp and tested on its own.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace troupe::http::tus {

constexpr const char* version = "1.0.0";
constexpr const char* extensions = "creation,creation-with-upload,termination,checksum,expiration";
constexpr const char* checksum_algorithms = "sha1,sha256";
constexpr const char* offset_content_type = "application/offset+octet-stream";
constexpr size_t max_metadata_bytes = 4096;

/// Upload-Offset and Upload-Length: a non-negative decimal integer (at most 18 digits); nullopt otherwise.
std::optional<int64_t> parse_size(std::string_view text);

/// Upload-Metadata: comma-separated "key base64value" pairs (the value and its space may be left out); keys are
/// non-empty, printable ASCII without spaces or commas, and unique. Returns the decoded values by key, or nullopt
/// with `why` set.
std::optional<std::map<std::string, std::string>> parse_metadata(std::string_view header, std::string& why);

struct checksum {
  std::string algorithm; // "sha1" or "sha256"
  std::string digest;    // raw bytes (20 or 32)
};

/// Upload-Checksum: "<algorithm> <base64 digest>" with a supported algorithm and a digest of its length; nullopt
/// with `why` set otherwise.
std::optional<checksum> parse_checksum(std::string_view header, std::string& why);

/// Whether a Content-Type is application/offset+octet-stream (case-insensitive, parameters ignored).
bool is_offset_content_type(std::string_view content_type);

/// An HTTP date (RFC 9110 IMF-fixdate), e.g. "Wed, 25 Jun 2014 16:00:00 GMT", for Upload-Expires.
std::string http_date(int64_t unix_ms);

} // namespace troupe::http::tus
