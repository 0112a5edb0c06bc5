#pragma once
// The service error vocabulary shared by every layer. Actors and persistence return these as caf::error;
// http/error_mapping.hpp turns each into an HTTP status and an OpenAI-shaped JSON body in one place.

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>

#include <cstdint>
#include <string>

namespace troupe {

enum class service_error : uint8_t {
  none = 0,
  invalid_input,          // the request is malformed or a field is out of range (400)
  invalid_json,           // the body is not valid JSON (400)
  unauthenticated,        // no credential, or an invalid one (401)
  forbidden,              // authenticated but not allowed (403)
  not_found,              // unknown route, or an object that is not the caller's (404)
  method_not_allowed,     // the route exists but not for this method (405)
  conflict,               // the object exists or the state forbids the change (409)
  payload_too_large,      // the body is over the configured limit (413)
  unsupported_media_type, // wrong Content-Type (415)
  rate_limited,           // over a rate limit or quota (429)
  overloaded,             // load shedding: the server refuses new work for now (503)
  shutting_down,          // the server is draining before exit (503)
  unavailable,            // a dependency (database, breaker) is unavailable (503)
  upstream_failed,        // an upstream answered with an error or garbage (502)
  timeout,                // an actor or upstream did not answer in time (504)
  request_timeout,        // the client was too slow sending its request (408)
  precondition_failed,    // a protocol precondition does not hold, e.g. an unsupported Tus-Resumable (412)
  locked,                 // the object is busy with another request, e.g. a concurrent PATCH of an upload (423)
  checksum_mismatch,      // the body does not match its Upload-Checksum; it was discarded (460, tus checksum)
  internal,               // a bug or an unexpected failure (500)
  uri_too_long,           // the request target is over http.max_request_line (414)
  expectation_failed,     // an Expect other than 100-continue (417)
  headers_too_large,      // the request head is over http.max_header_bytes (431)
  not_implemented,        // a transfer coding or feature of HTTP the server does not implement (501)
  version_not_supported,  // an HTTP version other than 1.0 and 1.1 (505)
  storage_quota_exceeded, // storing this would take the caller over its plan's storage quota (413)
  json_too_deep,          // the body nests arrays and objects deeper than http.max_json_depth (400)
  duplicate_key,          // an object in the body has the same key twice (400)
  insufficient_quota,     // a spend budget is used up until it renews (402, OpenAI's insufficient_quota)
};

/// The highest code: new codes go at the end (values cross nodes) and move this.
inline constexpr service_error last_service_error = service_error::insufficient_quota;

/// The CAF error category atom of service errors.
using service_error_category = caf::atom_constant<caf::atom("troupe")>;

/// Registers the category, so a service error renders as its code and message (in logs and across nodes).
void register_service_errors(caf::actor_system_config& cfg);

/// Stable snake_case name of a code, used as the `code` field of error bodies.
const char* to_string(service_error code);

/// Wraps a code (and an optional human sentence) into a caf::error.
caf::error make_error(service_error code);
caf::error make_error(service_error code, std::string message);

/// Extracts the service code from any caf::error: CAF's own errors map to the closest code
/// (request_timeout -> timeout, everything else -> internal).
service_error service_code(const caf::error& err);

/// The human sentence carried by an error made with make_error(code, message), or "" if none.
std::string service_message(const caf::error& err);

} // namespace troupe
