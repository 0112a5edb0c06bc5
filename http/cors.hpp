#pragma once
// CORS for browser clients (tus-js-client in a page, a web UI listing repositories and jobs).
//
// Origins are configured (http.cors_origins: a comma-separated list of exact scheme://host[:port], or *). A request
// from an allowed Origin gets Access-Control-Allow-Origin (its origin, with Vary: Origin; or * when any is allowed)
// and Access-Control-Expose-Headers naming the tus and rate-limit headers, so a page can read Location and
// Upload-Offset. A preflight (OPTIONS) also gets the methods and request headers it may use. Requests from other
// origins get no CORS headers: the browser keeps their answers from the page. Credentials are bearer tokens in
// Authorization, never cookies, so Access-Control-Allow-Credentials is not sent.

#include "http/server.hpp"

#include <memory>
#include <string>
#include <vector>

namespace troupe::http {

class cors_policy {
public:
  /// `origins`: the value of http.cors_origins.
  explicit cors_policy(const std::string& origins);

  /// Adds the CORS headers for `r`'s Origin, if it is allowed; `preflight` adds those of an OPTIONS answer.
  void apply(const std::shared_ptr<responder>& r, bool preflight) const;

  bool allows(const std::string& origin) const;

private:
  bool any_ = false;
  std::vector<std::string> origins_;
};

/// Answers a preflight (OPTIONS) with 204 and, when `policy` allows the request's origin, its CORS headers.
void answer_preflight(const cors_policy* policy, const std::shared_ptr<responder>& r);

} // namespace troupe::http
