#include "config/service_error.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace troupe {

const char* to_string(service_error code) {
  switch (code) {
  case service_error::none:
    return "none";
  case service_error::invalid_input:
    return "invalid_input";
  case service_error::invalid_json:
    return "invalid_json";
  case service_error::json_too_deep:
    return "json_too_deep";
  case service_error::duplicate_key:
    return "duplicate_key";
  case service_error::insufficient_quota:
    return "insufficient_quota";
  case service_error::unauthenticated:
    return "unauthenticated";
  case service_error::forbidden:
    return "forbidden";
  case service_error::not_found:
    return "not_found";
  case service_error::method_not_allowed:
    return "method_not_allowed";
  case service_error::conflict:
    return "conflict";
  case service_error::payload_too_large:
    return "payload_too_large";
  case service_error::storage_quota_exceeded:
    return "storage_quota_exceeded";
  case service_error::unsupported_media_type:
    return "unsupported_media_type";
  case service_error::rate_limited:
    return "rate_limited";
  case service_error::overloaded:
    return "overloaded";
  case service_error::shutting_down:
    return "shutting_down";
  case service_error::unavailable:
    return "unavailable";
  case service_error::upstream_failed:
    return "upstream_failed";
  case service_error::timeout:
    return "timeout";
  case service_error::request_timeout:
    return "request_timeout";
  case service_error::precondition_failed:
    return "precondition_failed";
  case service_error::locked:
    return "locked";
  case service_error::checksum_mismatch:
    return "checksum_mismatch";
  case service_error::internal:
    return "internal";
  case service_error::uri_too_long:
    return "uri_too_long";
  case service_error::expectation_failed:
    return "expectation_failed";
  case service_error::headers_too_large:
    return "headers_too_large";
  case service_error::not_implemented:
    return "not_implemented";
  case service_error::version_not_supported:
    return "version_not_supported";
  }
  return "internal";
}

caf::error make_error(service_error code) {
  return caf::error{static_cast<uint8_t>(code), service_error_category::value};
}

caf::error make_error(service_error code, std::string message) {
  return caf::error{static_cast<uint8_t>(code), service_error_category::value, caf::make_message(std::move(message))};
}

service_error service_code(const caf::error& err) {
  if (!err)
    return service_error::none;
  if (err.category() == service_error_category::value)
    return static_cast<service_error>(err.code());
  if (err.category() == caf::atom("system") && static_cast<caf::sec>(err.code()) == caf::sec::request_timeout)
    return service_error::timeout;
  return service_error::internal;
}

std::string service_message(const caf::error& err) {
  if (err.category() == service_error_category::value && err.context().match_elements<std::string>())
    return err.context().get_as<std::string>(0);
  return {};
}

void register_service_errors(caf::actor_system_config& cfg) {
  cfg.add_error_category(service_error_category::value,
                         [](uint8_t code, caf::atom_value, const caf::message& context) -> std::string {
                           std::string result = to_string(static_cast<service_error>(code));
                           if (context.match_elements<std::string>()) {
                             result += ": ";
                             result += context.get_as<std::string>(0);
                           }
                           return result;
                         });
}

} // namespace troupe
