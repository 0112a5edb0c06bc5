#pragma once
// What a route handler knows about a request: built by the connection (http/connection.cpp) from the request
// http/http1.hpp framed and the body it buffered, owning its bytes so that it can travel to actors and back.

#include "http/router.hpp"
#include "ops/tracing.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::http {

struct request {
  std::string id;     // X-Request-Id: the client's if sane, else generated
  std::string method; // "GET", "POST", ...
  std::string path;   // without the query string
  std::string route;  // the matched pattern, or "unmatched"
  path_params params; // values of the pattern's {name} segments
  std::vector<std::pair<std::string, std::string>> query;  // decoded (url_decode)
  std::vector<std::pair<std::string, std::string>> headers; // names as sent
  std::string body;
  std::string remote_address;
  std::chrono::steady_clock::time_point started;
  int64_t started_unix_ns = 0; // the same moment on the wall clock (span times)
  tracing::context trace;      // W3C trace context: the caller's traceparent, or a new trace

  /// First header with this name (case-insensitive).
  std::optional<std::string> header(std::string_view name) const;
  /// Every line of a list-valued header (e.g. Accept-Encoding) joined with commas, as RFC 9110 5.3 reads them; ""
  /// when absent.
  std::string header_list(std::string_view name) const;
  std::optional<std::string> query_param(std::string_view name) const;
  std::optional<std::string> param(std::string_view name) const;
};

/// Decodes a query-string component (application/x-www-form-urlencoded): "%2F" -> "/", "+" -> " ". A malformed
/// escape is kept as it is.
std::string url_decode(std::string_view text);

/// True if the client-supplied request id is safe to echo: 1..128 chars of [A-Za-z0-9._:-].
bool is_sane_request_id(std::string_view id);

} // namespace troupe::http
