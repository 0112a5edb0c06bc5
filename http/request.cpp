#include "http/request.hpp"

#include "http/header_text.hpp"

#include <strings.h>

namespace troupe::http {

namespace {

template <class List>
std::optional<std::string> lookup(const List& list, std::string_view name, bool ignore_case) {
  for (const auto& [key, value] : list) {
    bool same = key.size() == name.size()
                && (ignore_case ? ::strncasecmp(key.data(), name.data(), name.size()) == 0 : key == name);
    if (same)
      return value;
  }
  return std::nullopt;
}

} // namespace

std::optional<std::string> request::header(std::string_view name) const {
  return lookup(headers, name, true);
}

std::string request::header_list(std::string_view name) const {
  std::string joined;
  for (const auto& [key, value] : headers)
    if (iequals(key, name))
      joined += (joined.empty() ? "" : ",") + value;
  return joined;
}

std::optional<std::string> request::query_param(std::string_view name) const {
  return lookup(query, name, false);
}

std::optional<std::string> request::param(std::string_view name) const {
  return lookup(params, name, false);
}

std::string url_decode(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

bool is_sane_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128)
    return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_'
              || c == ':' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

} // namespace troupe::http
