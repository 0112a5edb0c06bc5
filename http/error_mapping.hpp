#pragma once
// The one place where a service error becomes an HTTP status and an OpenAI-shaped JSON body:
//   {"error":{"type":"...","code":"snake_case","message":"...","request_id":"...","param":"..."}}

#include "http/response.hpp"

#include "config/service_error.hpp"

#include <caf/error.hpp>

#include <string>

namespace troupe::http {

int status_of(service_error code);

/// OpenAI's error "type" for a code (invalid_request_error, authentication_error, ...).
const char* type_of(service_error code);

/// The default human sentence for a code, used when the error carries none.
const char* default_message(service_error code);

/// Builds the full response: status, body, and Retry-After / Allow where the code calls for them.
/// `param` is the JSON path of the failing field of a validation error ("" for none).
response error_response(service_error code, const std::string& message, const std::string& request_id,
                        const std::string& param = "");

/// Same, from any caf::error (CAF's own errors map through troupe::service_code).
response error_response(const caf::error& err, const std::string& request_id, const std::string& param = "");

} // namespace troupe::http
