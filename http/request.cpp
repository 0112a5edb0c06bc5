#include "http/request.hpp"

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

std::optional<std::string> request::query_param(std::string_view name) const {
  return lookup(query, name, false);
}

std::optional<std::string> request::param(std::string_view name) const {
  return lookup(params, name, false);
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
