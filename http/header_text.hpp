#pragma once
// Text helpers of HTTP header values, shared by the parsers of http/ (HTTP/1.1 framing, tus headers, the WebSocket
// handshake).

#include <strings.h>

#include <string_view>

namespace troupe::http {

/// ASCII case-insensitive equality (header names, tokens).
inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

/// Without leading and trailing blanks (spaces and tabs: HTTP's optional whitespace).
inline std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

} // namespace troupe::http
