#pragma once
// Maps (method, path) to a route. Patterns are literal segments and `{name}` parameters:
//   router.add("GET", "/api/repositories/{id}", handler)
// A path that matches a pattern under another method yields method_not_allowed with the allowed methods
// (for the Allow header). The pattern itself is the route's name in logs and metrics, so label cardinality
// stays bounded whatever paths clients send.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace troupe::http {

class responder;

using path_params = std::vector<std::pair<std::string, std::string>>;
using route_handler = std::function<void(const std::shared_ptr<responder>&)>;

class router {
public:
  struct match {
    enum kind_t { found, not_found, method_not_allowed } kind = not_found;
    const route_handler* handler = nullptr;
    std::string route; // the pattern, or "unmatched"
    path_params params;
    std::vector<std::string> allowed; // for method_not_allowed, sorted
  };

  /// Adds a route. Registering the same method and pattern twice replaces the handler.
  void add(const std::string& method, const std::string& pattern, route_handler handler);

  match find(std::string_view method, std::string_view path) const;

private:
  struct route {
    std::string pattern;
    std::vector<std::string> segments; // "{x}" marks a parameter
    std::unordered_map<std::string, route_handler> by_method;
  };
  std::vector<route> routes_;
};

/// Splits "/a/b/" into {"a", "b"}; empty segments are dropped.
std::vector<std::string_view> split_path(std::string_view path);

} // namespace troupe::http
