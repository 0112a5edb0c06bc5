#pragma once
// Maps (method, path) to a route. Patterns are literal segments and `{name}` parameters:
//   router.add("GET", "/api/repositories/{id}", handler)
// A path that matches a pattern under another method yields method_not_allowed with the allowed methods
// (for the Allow header). The pattern itself is the route's name in logs and metrics, so label cardinality
// stays bounded whatever paths clients send.
//
// A route may take larger bodies than the server's default (route_options::max_body_bytes, e.g. tus PATCH
// chunks), and may be reached by a POST carrying `X-HTTP-Method-Override: <its method>` (for clients behind
// proxies that only pass GET and POST, as the tus protocol asks).

#include "http/admission.hpp"
#include "http/http1.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace troupe::http {

class responder;

using path_params = std::vector<std::pair<std::string, std::string>>;
using route_handler = std::function<void(const std::shared_ptr<responder>&)>;

/// What a route allows beyond the defaults.
struct route_options {
  size_t max_body_bytes = 0;     // largest body; 0 = the server's http.max_body_bytes
  bool method_override = false;  // reachable by POST + X-HTTP-Method-Override: <method>
  /// Admission control (http/admission.hpp): on by default. Off for routes operators must always reach (health,
  /// readiness, metrics, the /debug/actors API) and for routes with a gate of their own (generations). The debug
  /// page and /debug/sleep and /debug/echo (helpers for load tests, which must see admission at work) keep it.
  bool admission_control = true;
  std::shared_ptr<admission_limit> admission; // set by router::add when admission_control is on
  /// For routes that take large bodies: run on the connection's thread once the head has arrived and before any body
  /// byte is read (pure CPU, e.g. checking the credential), with the peer's address. A refusal is answered at once
  /// and the connection closed, so an anonymous client cannot make the server hold its body.
  std::function<std::optional<framing_error>(const request_head&, const std::string& peer_address)> before_body;
  /// The time the route has to start its answer (a response, or a stream's first bytes); then the server answers
  /// 504 and a later answer is dropped. 0: the server's http.request_timeout_ms.
  std::chrono::milliseconds time_limit{0};
};

/// Options of a route that admission control must never refuse (health, readiness, metrics, the /debug/actors API)
/// or that has a gate of its own (generations).
inline route_options without_admission_control() {
  route_options options;
  options.admission_control = false;
  return options;
}

class router {
public:
  struct match {
    enum kind_t { found, not_found, method_not_allowed } kind = not_found;
    const route_handler* handler = nullptr;
    std::string route; // the pattern, or "unmatched"
    path_params params;
    std::vector<std::string> allowed; // for method_not_allowed, sorted
    route_options options;            // for found
  };

  /// Adds a route. Registering the same method and pattern twice replaces the handler.
  void add(const std::string& method, const std::string& pattern, route_handler handler,
           route_options options = {});

  match find(std::string_view method, std::string_view path) const;

  /// Calls fn(pattern, method, limit) for every route under admission control (metrics).
  void for_each_admission(const std::function<void(const std::string&, const std::string&, const admission_limit&)>& fn)
    const;

private:
  struct method_route {
    route_handler handler;
    route_options options;
  };
  struct route {
    std::string pattern;
    std::vector<std::string> segments; // "{x}" marks a parameter
    std::unordered_map<std::string, method_route> by_method;
  };
  std::vector<route> routes_;
};

/// Splits "/a/b/" into {"a", "b"}; empty segments are dropped.
std::vector<std::string_view> split_path(std::string_view path);

} // namespace troupe::http
