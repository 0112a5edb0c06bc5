#include "http/tus.hpp"
#include "http/header_text.hpp"

#include "config/hashing.hpp"

#include <strings.h>

#include <ctime>

namespace troupe::http::tus {

namespace {

bool valid_key(std::string_view key) {
  if (key.empty())
    return false;
  for (unsigned char c : key)
    if (c <= 0x20 || c >= 0x7F || c == ',')
      return false;
  return true;
}

} // namespace

std::optional<int64_t> parse_size(std::string_view text) {
  if (text.empty() || text.size() > 18)
    return std::nullopt;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

std::optional<std::map<std::string, std::string>> parse_metadata(std::string_view header, std::string& why) {
  std::map<std::string, std::string> values;
  if (header.size() > max_metadata_bytes) {
    why = "Upload-Metadata is longer than " + std::to_string(max_metadata_bytes) + " bytes.";
    return std::nullopt;
  }
  if (trim(header).empty())
    return values;
  size_t start = 0;
  for (;;) {
    auto comma = header.find(',', start);
    auto pair = trim(header.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    auto space = pair.find(' ');
    auto key = pair.substr(0, space);
    auto encoded = space == std::string_view::npos ? std::string_view{} : trim(pair.substr(space + 1));
    if (!valid_key(key)) {
      why = "Upload-Metadata must be comma-separated \"key base64value\" pairs with keys of printable ASCII.";
      return std::nullopt;
    }
    std::string value;
    if (!base64_decode(encoded, value)) {
      why = "The Upload-Metadata value of \"" + std::string{key} + "\" is not base64.";
      return std::nullopt;
    }
    if (!values.emplace(std::string{key}, std::move(value)).second) {
      why = "Upload-Metadata has the key \"" + std::string{key} + "\" twice.";
      return std::nullopt;
    }
    if (comma == std::string_view::npos)
      return values;
    start = comma + 1;
  }
}

std::optional<checksum> parse_checksum(std::string_view header, std::string& why) {
  header = trim(header);
  auto space = header.find(' ');
  checksum result;
  result.algorithm = std::string{header.substr(0, space)};
  size_t expected = result.algorithm == "sha1" ? 20 : result.algorithm == "sha256" ? 32 : 0;
  if (expected == 0) {
    why = "Upload-Checksum algorithm \"" + result.algorithm + "\" is not supported; use sha1 or sha256.";
    return std::nullopt;
  }
  auto encoded = space == std::string_view::npos ? std::string_view{} : trim(header.substr(space + 1));
  if (!base64_decode(encoded, result.digest) || result.digest.size() != expected) {
    why = "Upload-Checksum must be \"" + result.algorithm + " <base64 of the " + std::to_string(expected)
          + "-byte digest>\".";
    return std::nullopt;
  }
  return result;
}

bool is_offset_content_type(std::string_view content_type) {
  auto semicolon = content_type.find(';');
  auto type = trim(content_type.substr(0, semicolon));
  std::string_view expected{offset_content_type};
  return type.size() == expected.size() && ::strncasecmp(type.data(), expected.data(), expected.size()) == 0;
}

std::string http_date(int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm utc{};
  ::gmtime_r(&t, &utc);
  static const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[utc.tm_wday], utc.tm_mday,
                months[utc.tm_mon], utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
  return buf;
}

} // namespace troupe::http::tus
