#pragma once
// A response as route handlers and error mapping produce it; http/server.cpp adds the standard headers
// (X-Request-Id, security headers, Connection) and writes it.

#include <string>
#include <utility>
#include <vector>

namespace troupe::http {

struct response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  /// Set by cacheable GET handlers: a 200 gets a strong ETag (SHA-256 of the body), and a request whose
  /// If-None-Match matches it gets 304 with no body (http/server.cpp, responder::send).
  bool revalidate = false;

  response& header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
};

/// Marks a response of per-user data as revalidatable: Cache-Control "private, no-cache" (caches may keep it for
/// this user only, and must ask with If-None-Match before reusing it) plus the ETag/304 handling of `revalidate`.
inline response& private_revalidated(response& res) {
  res.revalidate = true;
  return res.header("Cache-Control", "private, no-cache");
}

inline response json_response(int status, std::string body) {
  return response{status, std::move(body), "application/json", {}};
}

} // namespace troupe::http
