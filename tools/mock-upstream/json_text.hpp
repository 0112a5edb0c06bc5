#pragma once
// JSON text helpers for the mock's hand-assembled bodies: answers are written as text pieces (so a huge reply can
// be generated while it is sent, and malformed replies can be cut anywhere), and these keep the pieces valid.

#include "config/log.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace troupe::mock {

/// Appends `text` as a quoted JSON string. Bytes >= 0x80 pass through unchanged (the mock's own text is UTF-8;
/// the utf8 malformed mode relies on invalid bytes passing through).
inline void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  log::append_json_escaped(out, text);
  out.push_back('"');
}

inline std::string json_string(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

/// A double as JSON (shortest form that reads back the same value).
inline std::string json_number(double value) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value)
      break;
  }
  return buf;
}

} // namespace troupe::mock
