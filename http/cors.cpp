#include "http/cors.hpp"

#include "http/traffic.hpp"

#include <algorithm>

namespace troupe::http {

namespace {

constexpr const char* exposed_headers =
  "Location, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Upload-Offset, "
  "Upload-Length, Upload-Metadata, Upload-Expires, Troupe-Job-Id, X-Request-Id, RateLimit, RateLimit-Policy, "
  "Retry-After, ETag";
constexpr const char* allowed_methods = "GET, HEAD, POST, PATCH, DELETE, OPTIONS";
constexpr const char* allowed_headers =
  "Authorization, Content-Type, Tus-Resumable, Upload-Length, Upload-Metadata, Upload-Offset, Upload-Checksum, "
  "Upload-Defer-Length, Upload-Concat, X-HTTP-Method-Override, X-Request-Id, X-Requested-With, If-None-Match";

} // namespace

cors_policy::cors_policy(const std::string& origins) {
  for (auto& origin : split_list(origins)) {
    while (!origin.empty() && origin.back() == '/')
      origin.pop_back();
    if (origin == "*")
      any_ = true;
    else if (!origin.empty())
      origins_.push_back(origin);
  }
}

bool cors_policy::allows(const std::string& origin) const {
  return any_ || std::find(origins_.begin(), origins_.end(), origin) != origins_.end();
}

void cors_policy::apply(const std::shared_ptr<responder>& r, bool preflight) const {
  auto origin = r->req().header("Origin");
  if (!origin || !allows(*origin))
    return;
  r->add_header("Access-Control-Allow-Origin", any_ ? "*" : *origin);
  if (!any_)
    r->add_header("Vary", "Origin");
  r->add_header("Access-Control-Expose-Headers", exposed_headers);
  if (preflight) {
    r->add_header("Access-Control-Allow-Methods", allowed_methods);
    r->add_header("Access-Control-Allow-Headers", allowed_headers);
    r->add_header("Access-Control-Max-Age", "86400");
  }
}

void answer_preflight(const cors_policy* policy, const std::shared_ptr<responder>& r) {
  if (policy)
    policy->apply(r, true);
  r->send(response{204, "", "", {}});
}

} // namespace troupe::http
