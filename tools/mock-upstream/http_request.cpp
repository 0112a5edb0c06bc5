#include "tools/mock-upstream/http_request.hpp"

#include <charconv>
#include <cstring>

namespace troupe::mock {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x != y && (x | 0x20) != (y | 0x20))
      return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

/// True when the comma-separated `list` contains `token` (case-insensitive).
bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    auto comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token))
      return true;
    if (comma == std::string_view::npos)
      break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool parse_request_line(std::string_view line, request_head& out) {
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0)
    return false;
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1)
    return false;
  out.method = line.substr(0, sp1);
  auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  auto version = line.substr(sp2 + 1);
  if (version.size() != 8 || version.substr(0, 7) != "HTTP/1." || version[7] < '0' || version[7] > '9')
    return false;
  if (target.empty() || target.front() != '/')
    return false;
  out.path = target.substr(0, target.find('?'));
  out.minor_version = version[7] - '0';
  out.keep_alive = out.minor_version >= 1;
  return true;
}

/// Applies one "Name: value" line; false (with `error`) when it is malformed or contradicts an earlier one.
bool apply_header(std::string_view line, request_head& out, bool& seen_length, std::string& error) {
  auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0 || line.front() == ' ' || line.front() == '\t') {
    error = "malformed header line";
    return false;
  }
  auto name = line.substr(0, colon);
  auto value = trim(line.substr(colon + 1));
  if (iequals(name, "content-length")) {
    uint64_t length = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
    if (value.empty() || ec != std::errc{} || end != value.data() + value.size()
        || (seen_length && length != out.content_length)) {
      error = "invalid Content-Length";
      return false;
    }
    seen_length = true;
    out.content_length = length;
  } else if (iequals(name, "transfer-encoding")) {
    out.has_transfer_encoding = true;
  } else if (iequals(name, "connection")) {
    if (has_token(value, "close"))
      out.keep_alive = false;
    else if (has_token(value, "keep-alive"))
      out.keep_alive = true;
  } else if (iequals(name, "expect")) {
    out.expect_continue = iequals(value, "100-continue");
  } else if (iequals(name, "authorization")) {
    out.authorization = value;
  } else if (iequals(name, "x-mock")) {
    out.x_mock = value;
  }
  return true;
}

} // namespace

head_parse parse_request_head(std::string_view buffer, size_t max_head_bytes, request_head& out, std::string& error) {
  auto* start = buffer.data();
  auto* blank = static_cast<const char*>(::memmem(start, buffer.size(), "\r\n\r\n", 4));
  if (blank == nullptr)
    return buffer.size() > max_head_bytes ? head_parse::too_large : head_parse::incomplete;
  size_t head_end = static_cast<size_t>(blank - start) + 4;
  if (head_end > max_head_bytes)
    return head_parse::too_large;

  out = request_head{};
  out.head_bytes = head_end;
  std::string_view head = buffer.substr(0, head_end - 2); // every line ends in CRLF
  auto eol = head.find("\r\n");
  if (!parse_request_line(head.substr(0, eol), out)) {
    error = "malformed request line";
    return head_parse::bad;
  }
  bool seen_length = false;
  for (size_t pos = eol + 2; pos < head.size();) {
    auto next = head.find("\r\n", pos);
    if (!apply_header(head.substr(pos, next - pos), out, seen_length, error))
      return head_parse::bad;
    pos = next + 2;
  }
  return head_parse::complete;
}

} // namespace troupe::mock
