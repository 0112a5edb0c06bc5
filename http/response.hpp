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

  response& header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
};

inline response json_response(int status, std::string body) {
  return response{status, std::move(body), "application/json", {}};
}

} // namespace troupe::http
