#include "http/revalidation.hpp"

#include "config/hashing.hpp"

#include <strings.h>

namespace troupe::http {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

/// The opaque tag of an entity tag, quotes included, without a W/ prefix.
std::string_view opaque(std::string_view etag) {
  if (etag.size() >= 2 && etag[0] == 'W' && etag[1] == '/')
    etag.remove_prefix(2);
  return etag;
}

} // namespace

std::string strong_etag(std::string_view body) {
  return "\"" + sha256_hex(body) + "\"";
}

bool if_none_match_matches(std::string_view field, std::string_view etag) {
  auto ours = opaque(etag);
  size_t i = 0;
  while (i < field.size()) {
    // Elements are separated by commas and optional whitespace; empty elements are allowed.
    while (i < field.size() && (is_space(field[i]) || field[i] == ','))
      ++i;
    if (i >= field.size())
      break;
    if (field[i] == '*')
      return true;
    size_t start = i;
    if (field.compare(i, 2, "W/") == 0)
      i += 2;
    if (i >= field.size() || field[i] != '"')
      return false;
    auto close = field.find('"', i + 1);
    if (close == std::string_view::npos)
      return false;
    if (opaque(field.substr(start, close + 1 - start)) == ours)
      return true;
    i = close + 1;
  }
  return false;
}

void apply_revalidation(const request& req, response& res) {
  if (!res.revalidate || res.status != 200 || (req.method != "GET" && req.method != "HEAD"))
    return;
  auto etag = strong_etag(res.body);
  bool matched = false;
  for (const auto& [name, value] : req.headers)
    if (::strcasecmp(name.c_str(), "If-None-Match") == 0 && if_none_match_matches(value, etag))
      matched = true;
  res.header("ETag", etag);
  if (matched) {
    res.status = 304;
    res.body.clear();
    res.content_type.clear();
  }
}

} // namespace troupe::http
