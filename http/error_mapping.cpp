#include "http/error_mapping.hpp"

#include "config/log.hpp"

namespace troupe::http {

int status_of(service_error code) {
  switch (code) {
  case service_error::none:
    return 200;
  case service_error::invalid_input:
  case service_error::invalid_json:
  case service_error::json_too_deep:
  case service_error::duplicate_key:
    return 400;
  case service_error::unauthenticated:
    return 401;
  case service_error::insufficient_quota:
    return 402;
  case service_error::forbidden:
    return 403;
  case service_error::not_found:
    return 404;
  case service_error::method_not_allowed:
    return 405;
  case service_error::request_timeout:
    return 408;
  case service_error::conflict:
    return 409;
  case service_error::payload_too_large:
  case service_error::storage_quota_exceeded:
    return 413;
  case service_error::unsupported_media_type:
    return 415;
  case service_error::precondition_failed:
    return 412;
  case service_error::locked:
    return 423;
  case service_error::checksum_mismatch:
    return 460;
  case service_error::rate_limited:
    return 429;
  case service_error::internal:
    return 500;
  case service_error::upstream_failed:
    return 502;
  case service_error::overloaded:
  case service_error::shutting_down:
  case service_error::unavailable:
    return 503;
  case service_error::timeout:
    return 504;
  case service_error::uri_too_long:
    return 414;
  case service_error::expectation_failed:
    return 417;
  case service_error::headers_too_large:
    return 431;
  case service_error::not_implemented:
    return 501;
  case service_error::version_not_supported:
    return 505;
  }
  return 500;
}

const char* type_of(service_error code) {
  switch (code) {
  case service_error::unauthenticated:
    return "authentication_error";
  case service_error::forbidden:
    return "permission_error";
  case service_error::not_found:
    return "not_found_error";
  case service_error::rate_limited:
    return "rate_limit_error";
  case service_error::insufficient_quota:
    return "insufficient_quota";
  case service_error::internal:
  case service_error::upstream_failed:
  case service_error::overloaded:
  case service_error::shutting_down:
  case service_error::unavailable:
  case service_error::timeout:
  case service_error::not_implemented:
  case service_error::version_not_supported:
    return "server_error";
  default:
    return "invalid_request_error";
  }
}

const char* default_message(service_error code) {
  switch (code) {
  case service_error::none:
    return "OK.";
  case service_error::invalid_input:
    return "The request is invalid.";
  case service_error::invalid_json:
    return "The request body is not valid JSON.";
  case service_error::json_too_deep:
    return "The request body nests arrays and objects too deeply.";
  case service_error::duplicate_key:
    return "An object in the request body has the same key twice.";
  case service_error::insufficient_quota:
    return "Your spend budget is used up until it renews.";
  case service_error::unauthenticated:
    return "A valid credential is required.";
  case service_error::forbidden:
    return "You are not allowed to do this.";
  case service_error::not_found:
    return "No such resource.";
  case service_error::method_not_allowed:
    return "This method is not allowed on this resource.";
  case service_error::request_timeout:
    return "The request was not received in time.";
  case service_error::conflict:
    return "The request conflicts with the current state.";
  case service_error::payload_too_large:
    return "The request body is too large.";
  case service_error::storage_quota_exceeded:
    return "This would take you over your plan's storage quota.";
  case service_error::unsupported_media_type:
    return "Unsupported Content-Type.";
  case service_error::precondition_failed:
    return "A precondition of the request does not hold.";
  case service_error::locked:
    return "The resource is busy with another request; retry shortly.";
  case service_error::checksum_mismatch:
    return "The body does not match its checksum; it was discarded.";
  case service_error::rate_limited:
    return "Too many requests; retry later.";
  case service_error::internal:
    return "Internal error.";
  case service_error::upstream_failed:
    return "The upstream service failed.";
  case service_error::overloaded:
    return "The server is overloaded; retry later.";
  case service_error::shutting_down:
    return "The server is shutting down; retry on another node.";
  case service_error::unavailable:
    return "A required service is unavailable; retry later.";
  case service_error::timeout:
    return "The request timed out.";
  case service_error::uri_too_long:
    return "The request target is too long.";
  case service_error::expectation_failed:
    return "Only Expect: 100-continue is understood.";
  case service_error::headers_too_large:
    return "The request head is too large.";
  case service_error::not_implemented:
    return "The server does not implement this.";
  case service_error::version_not_supported:
    return "Only HTTP/1.0 and HTTP/1.1 are served.";
  }
  return "Internal error.";
}

response error_response(service_error code, const std::string& message, const std::string& request_id,
                        const std::string& param) {
  std::string body = R"({"error":{"type":")";
  body += type_of(code);
  body += R"(","code":")";
  body += to_string(code);
  body += R"(","message":")";
  log::append_json_escaped(body, message.empty() ? default_message(code) : message);
  body += R"(","request_id":")";
  log::append_json_escaped(body, request_id);
  body += '"';
  if (!param.empty()) {
    body += R"(,"param":")";
    log::append_json_escaped(body, param);
    body += '"';
  }
  body += "}}";
  response result = json_response(status_of(code), std::move(body));
  if (result.status == 503 || result.status == 429)
    result.header("Retry-After", "1");
  return result;
}

response error_response(const caf::error& err, const std::string& request_id, const std::string& param) {
  auto code = service_code(err);
  auto message = service_message(err);
  if (code == service_error::internal && message.empty())
    log::error("unexpected actor error", log::fields{}.add("request_id", request_id).add("error", to_string(err)));
  return error_response(code, message, request_id, param);
}

} // namespace troupe::http
