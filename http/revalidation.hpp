#pragma once
// HTTP revalidation (RFC 9110 sections 8.8.3 and 13.1.2): strong ETags on cacheable GET responses and 304 Not
// Modified for a matching If-None-Match. Handlers opt in with response::revalidate (or private_revalidated());
// responder::send calls apply_revalidation on every response before writing it.

#include "http/request.hpp"
#include "http/response.hpp"

#include <string>
#include <string_view>

namespace troupe::http {

/// The strong entity tag of a body: the quoted lower-case hex of its SHA-256.
std::string strong_etag(std::string_view body);

/// Whether an If-None-Match field value matches `etag` (a quoted tag): "*" matches any, otherwise a list of entity
/// tags compared with the weak comparison RFC 9110 prescribes for If-None-Match (a W/ prefix on either side is
/// ignored). A malformed list matches nothing from the first malformed element on.
bool if_none_match_matches(std::string_view field, std::string_view etag);

/// For a 200 answer with `revalidate` to a GET or HEAD: adds the ETag header, and turns the response into a 304
/// without body or Content-Type (keeping ETag, Cache-Control and the other headers) when any If-None-Match field
/// of the request matches. Any other response is left alone.
void apply_revalidation(const request& req, response& res);

} // namespace troupe::http
